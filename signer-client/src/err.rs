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
    /// A TLS certificate or key cannot be used, or a TLS link failed (an
    /// unpinned peer, a handshake that did not complete).
    #[error("TLS: {0}")]
    Tls(String),
    /// A local file (a certificate, a key) cannot be read.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A socket of the relay cannot be opened.
    #[error("{what}: {source}")]
    Listen {
        /// What was being opened (the socket and its address).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Protocol(_) | Self::Invalid(_) => ErrorKind::BadInput,
            Self::Transport { .. } | Self::Tls(_) => ErrorKind::Network,
            Self::File { .. } | Self::Listen { .. } => ErrorKind::Io,
            Self::Refused(r) => r.kind(),
        }
    }
}
