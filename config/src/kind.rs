//! Error kinds shared by every onionpkg crate.
//!
//! Callers branch on the kind (retry, exit code, "is this an attack?"), but
//! always report the whole error. Kinds say what went wrong from the caller's
//! point of view; they do not mirror code paths.

/// What kind of failure an error is, as far as a caller needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration file or command-line value is invalid.
    BadConfig,
    /// Input from a file or the network is malformed.
    BadInput,
    /// Signed data failed verification: a likely attack or a broken repository.
    Verification,
    /// Signed data is valid but expired, or the clock cannot be trusted.
    Expired,
    /// A newer version was already trusted: a rollback or a replay.
    Rollback,
    /// The network failed (connect, timeout, refused); retrying elsewhere may help.
    Network,
    /// A local file or directory could not be read or written.
    Io,
    /// Something that should exist does not.
    NotFound,
    /// A key or secret is unusable (wrong passphrase, wrong type).
    Key,
    /// A bug in onionpkg.
    Internal,
}

/// Implemented by every onionpkg error type, so callers can branch on the kind.
pub trait HasKind {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}
