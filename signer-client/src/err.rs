//! The error type of the client.

use std::path::PathBuf;

use onionpkg_core::{ErrorKind, HasKind};

/// A result with the client's [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Why a request got no signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The signer broke the framing protocol (a frame too large, too slow,
    /// not JSON of the expected shape).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The transport to the signer failed (connect, read, deadline).
    #[error("talking to the signer at {path}: {source}")]
    Transport {
        /// The socket.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The signer refused the request; nothing was signed.
    #[error("the signer refused: {0}")]
    Refused(crate::request::Refusal),
    /// The request cannot be made: a bad argument.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Protocol(_) | Self::Invalid(_) => ErrorKind::BadInput,
            Self::Transport { .. } => ErrorKind::Network,
            Self::Refused(r) => r.kind(),
        }
    }
}
