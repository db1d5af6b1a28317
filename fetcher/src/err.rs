//! Why an `onionpkg-fetch` command failed, and the exit code that says so.

use std::path::PathBuf;

use jiff::Timestamp;
use onionpkg_core::url::WebUrl;
use onionpkg_core::{ErrorKind, HasKind};
use onionpkg_trust::clock::ClockError;
use onionpkg_trust::metadata::VerifyError;

/// Shorthand for results of the commands.
pub type AppResult<T> = Result<T, AppError>;

/// One mirror tried, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// The mirror's base URL.
    pub mirror: String,
    /// What went wrong.
    pub reason: String,
    /// What kind of failure it was: when every mirror refused what it
    /// served, the run ends as a verification failure, not a network one.
    #[serde(skip)]
    pub kind: ErrorKind,
}

impl Attempt {
    /// A mirror tried, what went wrong, and its kind.
    pub fn new(mirror: &WebUrl, reason: String, kind: ErrorKind) -> Self {
        Self {
            mirror: mirror.to_string(),
            reason,
            kind,
        }
    }
}

/// The kind of a run in which every mirror in `tried` failed: a
/// verification failure if each one served something refused (a tampered
/// file is the same failure whichever program meets it), else the network.
fn all_failed(tried: &[Attempt]) -> ErrorKind {
    let refused = |k: ErrorKind| {
        matches!(
            k,
            ErrorKind::Verification | ErrorKind::Rollback | ErrorKind::BadInput
        )
    };
    if !tried.is_empty() && tried.iter().all(|a| refused(a.kind)) {
        ErrorKind::Verification
    } else {
        ErrorKind::Network
    }
}

fn list_attempts(tried: &[Attempt]) -> String {
    tried
        .iter()
        .map(|a| format!("\n  - {}: {}", a.mirror, a.reason))
        .collect()
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] onionpkg_config::ConfigError),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// No root is pinned yet.
    #[error("not initialized: no pinned root at {0}; run `onionpkg-fetch init --root FILE`")]
    NotInitialized(PathBuf),
    /// No root is pinned and the configured `trust_root` is missing too:
    /// the service could not start (`check-config`).
    #[error(
        "no trust root: none pinned at {pinned} and no {configured} (trust_root) to pin; \
         install the distribution's root.json there, or run `onionpkg-fetch init --root FILE`"
    )]
    NoTrustRoot {
        /// Where the pinned root would be.
        pinned: PathBuf,
        /// The configured `trust_root`.
        configured: PathBuf,
    },
    /// Trusted metadata expired and could not be refreshed.
    #[error(
        "trusted metadata expired at {expires} and no mirror could refresh it; updates stop until one can{}",
        list_attempts(tried)
    )]
    Expired {
        /// When the trusted timestamp expired.
        expires: Timestamp,
        /// The mirrors tried.
        tried: Vec<Attempt>,
    },
    /// The clock cannot be trusted.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Every mirror failed.
    #[error("every mirror failed:{}", list_attempts(tried))]
    AllMirrorsFailed {
        /// The mirrors tried, in order.
        tried: Vec<Attempt>,
    },
    /// The announced update is not on any mirror yet (they sync on their
    /// own schedule): try again later.
    #[error(
        "timestamp version {announced} is announced, but no mirror serves it yet; \
         try again later{}",
        list_attempts(tried)
    )]
    NotYetOnMirrors {
        /// The announced serial.
        announced: u64,
        /// The mirrors tried, in order.
        tried: Vec<Attempt>,
    },
    /// The deadline of the whole update passed.
    #[error(
        "the update did not finish within {after:?} (download.deadline){}",
        list_attempts(tried)
    )]
    Deadline {
        /// The configured deadline.
        after: std::time::Duration,
        /// The mirrors tried, in order.
        tried: Vec<Attempt>,
    },
    /// `init` would replace a pinned root with another one.
    #[error(
        "a root is already pinned ({pinned}: version {pinned_version}); {new} is version \
         {new_version} and differs; run `init --replace` to replace it"
    )]
    RootPinned {
        /// The pinned root file.
        pinned: PathBuf,
        /// Its version.
        pinned_version: u64,
        /// The root given.
        new: PathBuf,
        /// Its version.
        new_version: u64,
    },
    /// A transport could not be set up (Tor bootstrap, TLS settings).
    #[error(transparent)]
    Transport(#[from] onionpkg_net::Error),
    /// Verification refused something.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The trust layer failed (its state files).
    #[error(transparent)]
    Trust(onionpkg_trust::Error),
    /// A state file is damaged.
    #[error("state file {path} is damaged: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl From<onionpkg_trust::Error> for AppError {
    fn from(e: onionpkg_trust::Error) -> Self {
        match e {
            onionpkg_trust::Error::Clock(c) => Self::Clock(c),
            onionpkg_trust::Error::Verify(v) => Self::Verify(v),
            other => Self::Trust(other),
        }
    }
}

impl HasKind for AppError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(e) => e.kind(),
            Self::Usage(_) | Self::RootPinned { .. } => ErrorKind::BadConfig,
            Self::NotInitialized(_) | Self::NoTrustRoot { .. } => ErrorKind::NotInitialized,
            Self::Expired { .. } => ErrorKind::Expired,
            Self::Clock(e) => e.kind(),
            Self::AllMirrorsFailed { tried } => all_failed(tried),
            Self::Deadline { .. } => ErrorKind::Network,
            Self::NotYetOnMirrors { .. } => ErrorKind::NotYetAvailable,
            Self::Transport(e) => e.kind(),
            Self::Verify(e) => e.kind(),
            Self::Trust(e) => e.kind(),
            Self::State { .. } | Self::Io { .. } => ErrorKind::Io,
        }
    }
}

impl AppError {
    /// The exit code for this error, from the table every onionpkg program
    /// shares ([`onionpkg_core::exit`]).
    pub fn exit_code(&self) -> u8 {
        onionpkg_core::exit::code(self.kind())
    }
}
