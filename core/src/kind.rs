//! Error kinds shared by every onionpkg crate.
//!
//! Callers branch on the kind (retry, exit code, "is this an attack?"), but
//! always report the whole error. Kinds say what went wrong from the caller's
//! point of view; they do not mirror code paths. Every binary turns a kind
//! into its exit code through one table, [`crate::exit`].

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
    /// Signed data is valid but expired.
    Expired,
    /// The clock reads earlier than signed time already seen: it is wrong,
    /// or it was set back.
    ClockBehind,
    /// A newer version was already trusted: a rollback or a replay.
    Rollback,
    /// The network failed (connect, timeout, refused); retrying elsewhere may help.
    Network,
    /// Tor could not be started or reached.
    Tor,
    /// What is asked for is announced but not available yet (mirrors sync
    /// on their own schedule); retrying later helps.
    NotYetAvailable,
    /// A local file or directory could not be read or written.
    Io,
    /// Nothing to work on yet: no pinned root, no repository.
    NotInitialized,
    /// Something that should exist does not.
    NotFound,
    /// A key or secret is unusable (wrong passphrase, wrong type), or too
    /// few keys to sign.
    Key,
    /// A peer refused the request (a DNS server refusing an update, the
    /// signing service refusing to sign).
    Refused,
    /// A bug in onionpkg.
    Internal,
}

/// Implemented by every onionpkg error type, so callers can branch on the kind.
pub trait HasKind {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}
