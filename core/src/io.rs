//! The error for a local file that could not be read or written, one type
//! for every crate that touches files: what was being done, which file, and
//! the operating system's reason.
//!
//! Its message is `{action} {path}: {reason}`, and its source is the
//! operating system's error, so that a crate's error can wrap it
//! transparently and still say which file failed.

use std::fmt;
use std::path::PathBuf;

use crate::kind::{ErrorKind, HasKind};

/// A local file could not be read or written.
#[derive(Debug)]
pub struct IoError {
    /// What was being done ("reading", "creating").
    pub action: &'static str,
    /// The file concerned.
    pub path: PathBuf,
    /// The operating system's reason.
    pub source: std::io::Error,
}

impl IoError {
    /// A maker for `map_err` that turns the operating system's error on
    /// `path` into any error that wraps an [`IoError`].
    pub fn maker<E: From<Self>>(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> E {
        let path = path.into();
        move |source| {
            Self {
                action,
                path,
                source,
            }
            .into()
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl HasKind for IoError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_action_the_file_and_the_reason() {
        let e: IoError =
            IoError::maker("reading", "/x/y")(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "reading /x/y: entity not found");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.kind(), ErrorKind::Io);
    }
}
