//! The error type of the trust layer.

use onionpkg_core::{ErrorKind, HasKind};

/// A result with the trust layer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the trust layer.
///
/// Narrower errors of each format ([`crate::announce::AnnounceError`],
/// [`crate::mirrors::MirrorListError`], [`crate::clock::ClockError`],
/// [`crate::metadata::VerifyError`]) convert into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Repository metadata failed verification.
    #[error(transparent)]
    Verify(#[from] crate::metadata::VerifyError),
    /// A DNS announcement is invalid.
    #[error(transparent)]
    Announce(#[from] crate::announce::AnnounceError),
    /// A mirror list is invalid.
    #[error(transparent)]
    MirrorList(#[from] crate::mirrors::MirrorListError),
    /// The clock cannot be trusted.
    #[error(transparent)]
    Clock(#[from] crate::clock::ClockError),
    /// A key is unusable.
    #[error(transparent)]
    Key(crate::keys::KeyError),
    /// A local file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::keys::KeyError> for Error {
    fn from(e: crate::keys::KeyError) -> Self {
        Self::Key(e)
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Verify(e) => e.kind(),
            Self::Announce(e) => e.kind(),
            Self::MirrorList(e) => e.kind(),
            Self::Clock(e) => e.kind(),
            Self::Key(e) => e.kind(),
            Self::Io { .. } => ErrorKind::Io,
        }
    }
}
