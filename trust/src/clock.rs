//! The clock policy (to be written).

use onionpkg_config::{ErrorKind, HasKind};

/// Why the clock cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// Placeholder.
    #[error("clock behind the signed time floor")]
    BehindFloor,
}

impl HasKind for ClockError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Expired
    }
}
