//! The error type of the signer.

use std::path::{Path, PathBuf};

use onionpkg_core::{ErrorKind, HasKind};

/// A result with the signer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the signer, on the service's side and in
/// the client library. Refusals of a request are not errors of the service:
/// they are [`crate::request::Refusal`]s, which a client sees as
/// [`Error::Refused`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] onionpkg_config::ConfigError),
    /// A PKCS#11 call failed; the token or its module is unusable, or the PIN
    /// is wrong. Retrying does not help until an operator looks.
    #[error("PKCS#11: {action}: {source}")]
    Token {
        /// What was being done.
        action: String,
        /// The module's error.
        #[source]
        source: cryptoki::error::Error,
    },
    /// A key the signer needs is not in the key store.
    #[error(
        "no {role} key in {store}; make one with `onionpkg-signer keys generate --role {role}`"
    )]
    KeyMissing {
        /// The key's role.
        role: String,
        /// The token or directory searched.
        store: String,
    },
    /// A key exists already where a new one was to be made.
    #[error("a {role} key exists already in {store}; refusing to make a second one")]
    KeyExists {
        /// The key's role.
        role: String,
        /// The token or directory.
        store: String,
    },
    /// A key in the token could be read out: the signer refuses to use it.
    #[error(
        "key {label:?} is exportable ({attribute}); the signer uses only keys that never left the token"
    )]
    KeyExportable {
        /// The key's label in the token.
        label: String,
        /// The attribute that allows it (such as `CKA_EXTRACTABLE=true`).
        attribute: &'static str,
    },
    /// A key has another type than the signer expects, or is not the key
    /// the configuration names.
    #[error("key {label:?}: {reason}")]
    KeyUnusable {
        /// The key's label or file.
        label: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret (PIN, passphrase) cannot be read.
    #[error("cannot read the {what}: {reason}")]
    Secret {
        /// Which secret.
        what: String,
        /// Why (never the secret itself).
        reason: String,
    },
    /// The trust layer refused something (a key file, canonical JSON).
    #[error(transparent)]
    Trust(#[from] onionpkg_trust::Error),
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] onionpkg_core::IoError),
    /// The key-holding process failed or broke the protocol.
    #[error("key holder: {0}")]
    Holder(String),
    /// A peer broke the framing protocol (a frame too large, too slow, not
    /// JSON of the expected shape).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client side of a request failed: the transport, the signer's
    /// refusal, a broken answer.
    #[error(transparent)]
    Client(#[from] onionpkg_signer_client::ClientError),
    /// The signer answered with a signature that does not verify.
    #[error("the signer's signature does not verify with key {key_id}")]
    BadSignature {
        /// The key the signature claims.
        key_id: String,
    },
    /// The log on disk is damaged or does not match its checkpoints; names
    /// the first entry found wrong when one can be named.
    #[error("log: {0}")]
    Log(String),
    /// Another signer holds the state directory.
    #[error("another onionpkg-signer uses {0}")]
    Busy(PathBuf),
    /// The request cannot be made (client side): a bad argument.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The configuration loads, but `serve` could not start with it
    /// (`check-config`).
    #[error("not ready to serve: {0}")]
    NotReady(String),
}

impl Error {
    /// An [`Error::Io`] maker for `map_err`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        onionpkg_core::IoError::maker(action, path)
    }

    /// An [`Error::Token`] maker for `map_err`.
    pub(crate) fn token(action: impl Into<String>) -> impl FnOnce(cryptoki::error::Error) -> Self {
        let action = action.into();
        move |source| Self::Token { action, source }
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(e) => e.kind(),
            Self::Trust(e) => e.kind(),
            Self::Token { .. }
            | Self::KeyMissing { .. }
            | Self::KeyExists { .. }
            | Self::KeyExportable { .. }
            | Self::KeyUnusable { .. }
            | Self::Secret { .. } => ErrorKind::Key,
            Self::Io(_) | Self::Busy(_) => ErrorKind::Io,
            Self::Holder(_) => ErrorKind::Internal,
            Self::Protocol(_) | Self::Invalid(_) => ErrorKind::BadInput,
            Self::NotReady(_) => ErrorKind::BadConfig,
            Self::Client(e) => e.kind(),
            Self::BadSignature { .. } | Self::Log(_) => ErrorKind::Verification,
        }
    }
}
