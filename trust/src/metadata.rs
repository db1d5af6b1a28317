//! Repository metadata verification (to be written).

use onionpkg_config::{ErrorKind, HasKind};

/// Why repository metadata is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Placeholder.
    #[error("malformed metadata: {0}")]
    Malformed(String),
}

impl HasKind for VerifyError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Verification
    }
}
