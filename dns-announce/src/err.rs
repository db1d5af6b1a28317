//! The error type of `onionpkg-announce`, and the exit codes of the program.
//!
//! # Invariants
//! - No message carries a TSIG secret or a private key: errors about a TSIG
//!   key file name the file and the problem, never its content.
//! - Every error maps to exactly one exit code ([`Error::exit_code`]), and
//!   the codes are the ones documented in [`exit`].

use std::path::{Path, PathBuf};

use onionpkg_core::{ErrorKind, HasKind};
use onionpkg_trust::announce::AnnounceError;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exit codes, the table every onionpkg program shares.
pub use onionpkg_core::exit;

/// Everything that can go wrong while making, publishing, serving or checking
/// an announcement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The announcement is refused (or could not be made) by the trust layer.
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    /// The repository could not be read, or its keys could not sign.
    #[cfg(feature = "release")]
    #[error(transparent)]
    Repo(#[from] onionpkg_repo::RepoError),
    /// A trust-layer error (key files, atomic writes).
    #[error(transparent)]
    Trust(#[from] onionpkg_trust::Error),
    /// The root file does not hold a valid, self-signed root.
    #[error("{path} is not a valid root: {source}")]
    Root {
        /// The root file.
        path: PathBuf,
        /// Why.
        #[source]
        source: onionpkg_trust::metadata::VerifyError,
    },
    /// A TSIG key file is unusable. Never holds the secret.
    #[error("TSIG key file {path}: {reason}")]
    TsigKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] onionpkg_core::IoError),
    /// The state file (highest serial seen) is damaged. It is never dropped
    /// silently: that would remove the replay protection it exists for.
    #[error("state file {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument or configuration value is unusable.
    #[error("{what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A DNS exchange failed (connect, timeout, server failure).
    #[error("DNS {what} via {server} failed: {reason}")]
    Network {
        /// What was being done.
        what: &'static str,
        /// The server, or the transport.
        server: String,
        /// Why.
        reason: String,
    },
    /// The primary server refused the update: wrong TSIG key or no permission.
    #[error("the server {server} refused the update of zone {zone}: {reason}")]
    UpdateRefused {
        /// The server.
        server: String,
        /// The zone.
        zone: String,
        /// The response code, and what it likely means.
        reason: String,
    },
    /// The primary server accepted the key but failed the update.
    #[error("the server {server} did not apply the update of zone {zone}: response code {rcode}")]
    UpdateFailed {
        /// The server.
        server: String,
        /// The zone.
        zone: String,
        /// The response code.
        rcode: String,
    },
    /// The record asked for would stay valid after the `timestamp.json` it
    /// names expires: an announcement may never extend the timestamp's trust.
    #[error(
        "an announcement valid until {expires} would outlive the timestamp.json it names \
         (version {version}, which expires at {timestamp_expires}): give a shorter --expires \
         (--expires {suggestion} fits), or re-sign the timestamp first"
    )]
    OutlivesTimestamp {
        /// The version of the timestamp.
        version: u64,
        /// When the record would expire.
        expires: jiff::Timestamp,
        /// When the timestamp expires.
        timestamp_expires: jiff::Timestamp,
        /// An `--expires` value that fits.
        suggestion: String,
    },
    /// The `timestamp.json` to announce is expired: no record may name it.
    #[error(
        "timestamp.json version {version} expired at {expired}, so no announcement may name \
         it: the cron job that re-signs the timestamp (onionpkg-repo timestamp) must be looked at"
    )]
    TimestampExpired {
        /// The version of the timestamp.
        version: u64,
        /// When it expired.
        expired: jiff::Timestamp,
    },
    /// The DNSSEC trust anchors file is unusable.
    #[error("DNSSEC anchors file {path} {reason}")]
    Anchors {
        /// The anchors file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// With DNSSEC anchors configured, the answer did not validate: the zone
    /// is unsigned, signed by another key, or the answer was forged.
    #[error(
        "the DNS answer for {name} failed DNSSEC validation against the configured anchors \
         ({reason}): the zone is not signed by an anchored key, or the answer was forged"
    )]
    Dnssec {
        /// The name asked for.
        name: String,
        /// What the validator said.
        reason: String,
    },
    /// A mirror that must serve a timestamp before it is announced does not
    /// serve it (yet): it lags, is unreachable, or serves other bytes.
    #[error(
        "timestamp version {serial} is not announced yet: {mirror} {reason}; it is announced \
         once every mirror in [mirrors] wait_for serves it"
    )]
    NotYetOnMirrors {
        /// The serial that would be announced.
        serial: u64,
        /// The mirror's base URL.
        mirror: String,
        /// What it serves, or why it could not be asked.
        reason: String,
    },
    /// The built-in server could not start or stopped with an error.
    #[error("serving: {0}")]
    Serve(String),
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        onionpkg_core::IoError::maker(action, path)
    }

    /// An invalid argument.
    pub(crate) fn arg(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// The exit code of the program for this error, from the table every
    /// onionpkg program shares (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Announce(e) => announce_exit_code(e),
            e => exit::code(e.kind()),
        }
    }
}

/// The exit code for a refused announcement.
pub fn announce_exit_code(e: &AnnounceError) -> u8 {
    match e {
        AnnounceError::InvalidOwner { .. } | AnnounceError::InvalidArgument { .. } => exit::USAGE,
        _ => exit::code(e.kind()),
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Announce(e) => e.kind(),
            #[cfg(feature = "release")]
            Self::Repo(e) => e.kind(),
            Self::Trust(e) => e.kind(),
            Self::Root { .. }
            | Self::InvalidArgument { .. }
            | Self::TsigKey { .. }
            | Self::OutlivesTimestamp { .. }
            | Self::Anchors { .. } => ErrorKind::BadConfig,
            Self::Dnssec { .. } => ErrorKind::Verification,
            Self::TimestampExpired { .. } => ErrorKind::Expired,
            Self::Io(_) | Self::State { .. } => ErrorKind::Io,
            Self::Network { .. } | Self::UpdateFailed { .. } => ErrorKind::Network,
            Self::NotYetOnMirrors { .. } => ErrorKind::NotYetAvailable,
            Self::UpdateRefused { .. } => ErrorKind::Refused,
            Self::Serve(_) => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_refusals_map_to_their_codes() {
        assert_eq!(
            announce_exit_code(&AnnounceError::NoRecord),
            exit::NOT_FOUND
        );
        let t = jiff::Timestamp::UNIX_EPOCH;
        assert_eq!(
            announce_exit_code(&AnnounceError::Expired { expires: t, now: t }),
            exit::EXPIRED
        );
        assert_eq!(
            announce_exit_code(&AnnounceError::Rollback {
                serial: 1,
                last_seen: 2
            }),
            exit::VERIFICATION
        );
        assert_eq!(
            announce_exit_code(&AnnounceError::NoValidSignature { owner: "a".into() }),
            exit::VERIFICATION
        );
        assert_eq!(
            announce_exit_code(&AnnounceError::NotAnnouncement),
            exit::VERIFICATION
        );
        let nested = AnnounceError::NoneValid {
            count: 2,
            first: Box::new(AnnounceError::Expired { expires: t, now: t }),
        };
        assert_eq!(announce_exit_code(&nested), exit::EXPIRED);
    }

    #[test]
    fn refused_updates_have_their_own_code() {
        let e = Error::UpdateRefused {
            server: "127.0.0.1:53".into(),
            zone: "example.org".into(),
            reason: "NOTAUTH".into(),
        };
        assert_eq!(e.exit_code(), exit::REFUSED);
        let codes = [
            exit::OK,
            exit::FAILURE,
            exit::USAGE,
            exit::VERIFICATION,
            exit::EXPIRED,
            exit::NOT_FOUND,
            exit::REFUSED,
        ];
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }
}
