//! The error type of configuration loading.

use std::fmt;
use std::path::{Path, PathBuf};

use onionpkg_core::{ErrorKind, HasKind};

/// Where in a configuration file something is: the file, and the line and
/// column (both counted from 1) when they are known.
///
/// Displays as `file:line:column`, the form editors and terminals turn into a
/// jump target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    file: PathBuf,
    line_col: Option<(usize, usize)>,
}

impl Location {
    /// A location covering a whole file.
    pub(crate) fn file(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            line_col: None,
        }
    }

    /// The location of byte `offset` of `text`, the contents of `file`.
    pub(crate) fn at(file: &Path, text: &str, offset: usize) -> Self {
        Self {
            file: file.to_path_buf(),
            line_col: Some(line_col(text, offset)),
        }
    }

    /// The file, as the caller named it.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The line, counted from 1, if known.
    pub fn line(&self) -> Option<usize> {
        self.line_col.map(|(line, _)| line)
    }

    /// The column in characters, counted from 1, if known.
    pub fn column(&self) -> Option<usize> {
        self.line_col.map(|(_, col)| col)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{line}:{col}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Line and column (characters, both from 1) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    // An offset past the end or inside a character still yields a position on
    // the right line rather than a panic.
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Everything that can be wrong with a configuration file.
///
/// Every variant names the file; all but the first two also carry the line
/// and column, and those about a key name it as a dotted path such as
/// `listen.http` or `feed[2].name` (array entries counted from 0).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_SIZE`](crate::MAX_FILE_SIZE).
    #[error("{}: file is larger than {limit} bytes; refusing to read it", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The size limit in bytes.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{at}: not valid utf-8 text")]
    NotUtf8 {
        /// Where the first invalid byte is.
        at: Location,
    },
    /// The file is not valid TOML.
    #[error("{at}: syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// What the parser expected.
        message: String,
    },
    /// A key the program does not know; usually a typo.
    #[error("{at}: key `{key}`: unknown key, {expected}")]
    UnknownKey {
        /// Where the key is.
        at: Location,
        /// The dotted path of the key.
        key: String,
        /// The keys allowed at this place.
        expected: String,
    },
    /// A required key is absent.
    #[error("{at}: key `{key}`: required, but missing")]
    MissingKey {
        /// The table that lacks the key, or the whole file for top-level keys.
        at: Location,
        /// The dotted path of the missing key.
        key: String,
    },
    /// A value has the wrong type, such as a number where a string belongs.
    #[error("{at}: key `{key}`: {message}")]
    WrongType {
        /// Where the value is.
        at: Location,
        /// The dotted path of the key.
        key: String,
        /// What was found and what was expected.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{at}: key `{key}`: {message}")]
    Invalid {
        /// Where the offending key or value is, or the closest place known
        /// when the problem is a key that is absent.
        at: Location,
        /// The dotted path of the key.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// Where the problem is; `None` when the file could not be read at all.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } | Self::TooLarge { .. } => None,
            Self::NotUtf8 { at }
            | Self::Syntax { at, .. }
            | Self::UnknownKey { at, .. }
            | Self::MissingKey { at, .. }
            | Self::WrongType { at, .. }
            | Self::Invalid { at, .. } => Some(at),
        }
    }

    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::TooLarge { path, .. } => path,
            Self::NotUtf8 { at }
            | Self::Syntax { at, .. }
            | Self::UnknownKey { at, .. }
            | Self::MissingKey { at, .. }
            | Self::WrongType { at, .. }
            | Self::Invalid { at, .. } => at.path(),
        }
    }

    /// The line, counted from 1, if known.
    pub fn line(&self) -> Option<usize> {
        self.location().and_then(Location::line)
    }

    /// The column in characters, counted from 1, if known.
    pub fn column(&self) -> Option<usize> {
        self.location().and_then(Location::column)
    }

    /// The dotted path of the key concerned, if the problem is about a key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. }
            | Self::MissingKey { key, .. }
            | Self::WrongType { key, .. }
            | Self::Invalid { key, .. } => Some(key),
            Self::Read { .. }
            | Self::TooLarge { .. }
            | Self::NotUtf8 { .. }
            | Self::Syntax { .. } => None,
        }
    }
}

impl HasKind for ConfigError {
    fn kind(&self) -> ErrorKind {
        // A configuration file that cannot be read is a setup mistake, like
        // one that does not parse: the program cannot start either way.
        match self {
            Self::Read { .. }
            | Self::TooLarge { .. }
            | Self::NotUtf8 { .. }
            | Self::Syntax { .. }
            | Self::UnknownKey { .. }
            | Self::MissingKey { .. }
            | Self::WrongType { .. }
            | Self::Invalid { .. } => ErrorKind::BadConfig,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters: the value is in column 6.
        assert_eq!(line_col(text, 12), (2, 6));
        // Past the end and inside a character: clamped, no panic.
        assert_eq!(line_col(text, 1000).0, 3);
        assert_eq!(line_col(text, 8), (2, 2));
    }

    #[test]
    fn display_reads_as_a_jump_target() {
        let text = "[listen]\nhttp = \"nope\"\n";
        let err = ConfigError::Invalid {
            at: Location::at(Path::new("mirror.toml"), text, 16),
            key: "listen.http".into(),
            message: "expected a socket address like 127.0.0.1:8080".into(),
        };
        assert_eq!(
            err.to_string(),
            "mirror.toml:2:8: key `listen.http`: expected a socket address like 127.0.0.1:8080"
        );
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert_eq!(
            (err.line(), err.column(), err.key()),
            (Some(2), Some(8), Some("listen.http"))
        );
    }

    #[test]
    fn an_unreadable_file_is_a_configuration_error() {
        let err = ConfigError::Read {
            path: "fetcher.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        assert_eq!(err.line(), None);
        assert_eq!(
            err.to_string(),
            "fetcher.toml: cannot read the configuration file"
        );
    }
}
