//! Why metadata or a target is refused ([`VerifyError`]), what transports
//! report ([`FetchError`]), and how sigstore-tuf's errors map onto ours.
//!
//! # Invariants
//! - Each attack has its own variant, told apart by a `match`, never by
//!   parsing a message; a network failure is never reported as an attack.
//! - A missed threshold names the role's keys onionpkg cannot verify, where
//!   the caller knows them ([`super::bindings::explain`]).

use onionpkg_core::{ErrorKind, HasKind};

use super::bindings;
use crate::keys::UnusableKey;

/// Why repository metadata or a target is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A metadata file is not well-formed.
    #[error("malformed metadata: {0}")]
    Malformed(String),
    /// Too few valid signatures: a forgery, or a repository signed with the
    /// wrong keys, or with keys of a scheme onionpkg does not verify.
    #[error(
        "{role} metadata has {found} valid signature(s), {threshold} required{}",
        bindings::note(.unusable)
    )]
    ThresholdNotMet {
        /// The role.
        role: String,
        /// Distinct valid signatures found.
        found: usize,
        /// Signatures required.
        threshold: usize,
        /// The role's keys onionpkg cannot verify (their signatures count
        /// for nothing), where known.
        unusable: Vec<UnusableKey>,
    },
    /// One key's signature is listed more than once: an attempt to make one
    /// key count twice towards a threshold. Refused outright, as python-tuf
    /// does, even when the other signatures would meet the threshold.
    #[error("{role} metadata lists more than one signature of key {keyid}")]
    DuplicateSignature {
        /// The role.
        role: String,
        /// The key whose signature is listed twice.
        keyid: String,
    },
    /// The keys of a role that onionpkg can verify cannot meet its threshold,
    /// because others are of a scheme it does not verify, or malformed.
    #[error(
        "the {role} role needs {threshold} signature(s), and onionpkg can verify only {usable} \
         of its keys: {}",
        bindings::list(.unusable)
    )]
    UnusableKeys {
        /// The role.
        role: String,
        /// Signatures required.
        threshold: usize,
        /// The role's keys onionpkg can verify.
        usable: usize,
        /// The others, and why each cannot be used.
        unusable: Vec<UnusableKey>,
    },
    /// A version went backwards: a rollback or a replay of old metadata.
    #[error(
        "{role} version {offered} is older than the trusted version {trusted} (rollback or replay)"
    )]
    Rollback {
        /// The role.
        role: String,
        /// The version already trusted.
        trusted: u64,
        /// The older version offered.
        offered: u64,
    },
    /// Metadata has expired: the repository was not re-signed in time, the
    /// mirror is serving stale data (freeze), or the clock is wrong.
    #[error("{role} metadata expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        expires: jiff::Timestamp,
    },
    /// A new root is not the next version.
    #[error("root version {offered} does not follow the trusted root version {trusted}")]
    BadRootVersion {
        /// The trusted root version.
        trusted: u64,
        /// The offered version.
        offered: u64,
    },
    /// Metadata does not match what its parent role pinned (mix-and-match).
    #[error("metadata does not match what its parent pinned: {0}")]
    Mismatch(String),
    /// A metadata file is larger than its cap (endless-data attack).
    #[error("{name} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        name: String,
        /// The cap.
        limit: u64,
    },
    /// A target is longer than its signed length.
    #[error("target {path} is longer than its signed length {length}")]
    TargetTooLong {
        /// The target.
        path: String,
        /// The signed length.
        length: u64,
    },
    /// A target is shorter than its signed length.
    #[error("target {path} has {got} bytes, {length} signed")]
    TargetTooShort {
        /// The target.
        path: String,
        /// The signed length.
        length: u64,
        /// The bytes received.
        got: u64,
    },
    /// A target's hash differs from the signed one: it was tampered with.
    #[error("target {path} does not match its signed hash")]
    TargetHashMismatch {
        /// The target.
        path: String,
    },
    /// No trusted role lists the target.
    #[error("no trusted role lists target {0}")]
    TargetNotFound(String),
    /// A delegated role signed a target outside the paths delegated to it.
    #[error("role {role} signed {path}, which is outside its delegated paths")]
    OutsideDelegation {
        /// The delegated role.
        role: String,
        /// The target it had no authority over.
        path: String,
    },
    /// A file could not be fetched.
    #[error("could not fetch {name}: {reason}")]
    Unreachable {
        /// The file.
        name: String,
        /// Why.
        reason: String,
    },
    /// The local store of trusted metadata could not be used.
    #[error("trusted metadata store: {0}")]
    Store(String),
    /// Metadata is used before a successful refresh.
    #[error("no trusted metadata yet: refresh first")]
    NotRefreshed,
}

impl HasKind for VerifyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed(_) => ErrorKind::BadInput,
            Self::Rollback { .. } => ErrorKind::Rollback,
            Self::Expired { .. } => ErrorKind::Expired,
            Self::Unreachable { .. } => ErrorKind::Network,
            Self::TargetNotFound(_) => ErrorKind::NotFound,
            Self::Store(_) => ErrorKind::Io,
            Self::NotRefreshed => ErrorKind::Internal,
            Self::UnusableKeys { .. } => ErrorKind::Key,
            _ => ErrorKind::Verification,
        }
    }
}

/// What a transport reports when a fetch fails; wrapped into
/// `sigstore_tuf::Error::Transport` and recovered by [`Client`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The file is larger than the cap the caller gave.
    #[error("{name} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        name: String,
        /// The cap.
        limit: u64,
    },
    /// Any other failure (connection, timeout, I/O).
    #[error("{name}: {reason}")]
    Failed {
        /// The file.
        name: String,
        /// Why.
        reason: String,
    },
}

impl FetchError {
    /// Wraps this error for a [`Repository`] implementation to return.
    pub fn into_tuf(self) -> sigstore_tuf::Error {
        sigstore_tuf::Error::transport_with_source("fetch failed", self)
    }
}

/// Where in the workflow an error arose, which decides how integrity errors read.
#[derive(Clone, Copy)]
pub(super) enum Context<'a> {
    Metadata,
    Target(&'a str, u64),
}

pub(super) fn map_err(e: sigstore_tuf::Error, ctx: Context<'_>) -> VerifyError {
    use sigstore_tuf::Error as E;
    match e {
        E::ThresholdNotMet {
            role,
            found,
            threshold,
        } => VerifyError::ThresholdNotMet {
            role,
            found,
            threshold,
            unusable: Vec::new(),
        },
        E::DuplicateSignature { role, key_id } => VerifyError::DuplicateSignature {
            role,
            keyid: key_id,
        },
        E::Rollback { role, trusted, new } => VerifyError::Rollback {
            role: role_name(&role),
            trusted,
            offered: new,
        },
        E::Expired { role, expires } => VerifyError::Expired { role, expires },
        E::BadRootVersion { trusted, new } => VerifyError::BadRootVersion {
            trusted,
            offered: new,
        },
        E::IntegrityMismatch(msg) => match ctx {
            Context::Target(path, length) if msg.contains(": length ") => {
                // sigstore-tuf reports "PATH: length GOT != pinned LENGTH".
                let got = msg
                    .split(": length ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                VerifyError::TargetTooShort {
                    path: path.to_string(),
                    length,
                    got,
                }
            }
            Context::Target(path, _) => VerifyError::TargetHashMismatch {
                path: path.to_string(),
            },
            Context::Metadata => VerifyError::Mismatch(msg),
        },
        E::TargetNotFound(p) => VerifyError::TargetNotFound(p),
        E::NotRefreshed => VerifyError::NotRefreshed,
        E::Io { context, source } => VerifyError::Store(format!("{context}: {source}")),
        E::Transport { message, source } => {
            match source
                .as_deref()
                .and_then(|s| s.downcast_ref::<FetchError>())
            {
                Some(FetchError::TooLarge { name, limit }) => match ctx {
                    Context::Target(path, length) => VerifyError::TargetTooLong {
                        path: path.to_string(),
                        length,
                    },
                    Context::Metadata => VerifyError::TooLarge {
                        name: name.clone(),
                        limit: *limit,
                    },
                },
                Some(FetchError::Failed { name, reason }) => VerifyError::Unreachable {
                    name: name.clone(),
                    reason: reason.clone(),
                },
                None => VerifyError::Unreachable {
                    name: String::new(),
                    reason: message,
                },
            }
        }
        other => VerifyError::Malformed(crate_error_chain(&other)),
    }
}

/// An error pinning the root `bytes`: a missed threshold names the root's
/// keys onionpkg cannot verify.
pub(super) fn pinned_root_error(e: sigstore_tuf::Error, bytes: &[u8]) -> VerifyError {
    let root = bindings::parse_root(bytes);
    bindings::explain(map_err(e, Context::Metadata), root.as_ref(), None)
}

/// sigstore-tuf names roles in rollback errors as seen from the pinning role
/// ("snapshot (via timestamp)", "targets.json (via snapshot)"); we report the
/// plain role name.
fn role_name(label: &str) -> String {
    let first = label.split(' ').next().unwrap_or(label);
    first.strip_suffix(".json").unwrap_or(first).to_string()
}

fn crate_error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
