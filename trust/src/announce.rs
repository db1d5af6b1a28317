//! The signed DNS TXT announcement (to be written).

use onionpkg_config::{ErrorKind, HasKind};

/// Why an announcement is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// Placeholder.
    #[error("malformed announcement: {0}")]
    Malformed(String),
}

impl HasKind for AnnounceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}
