//! The signed mirror list (to be written).

use onionpkg_config::{ErrorKind, HasKind};

/// Why a mirror list is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorListError {
    /// Placeholder.
    #[error("malformed mirror list: {0}")]
    Malformed(String),
}

impl HasKind for MirrorListError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}
