//! Errors of the mirror: configuration, serving, onion service and sync.

use std::path::PathBuf;

use onionpkg_core::{ErrorKind, HasKind};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while serving or syncing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service nickname is not a valid arti nickname.
    #[error("invalid onion service nickname {0:?}")]
    Nickname(String),

    /// arti refused the onion service configuration.
    #[error("invalid onion service configuration: {0}")]
    Config(#[from] arti_client::config::ConfigBuildError),

    /// arti could not launch the service (keystore, state dir, bootstrap).
    #[error("cannot launch the onion service: {0}")]
    Launch(#[source] arti_client::Error),

    /// The service is disabled in its configuration.
    #[error("the onion service is disabled in its configuration")]
    Disabled,

    /// The service has no identity key, so no address.
    #[error("the onion service has no address (no identity key in the keystore)")]
    NoAddress,

    /// Serving needs a tokio runtime, and none is running on this thread.
    #[error("no tokio runtime is running")]
    NoRuntime,

    /// The configuration file is missing or invalid.
    #[error(transparent)]
    BadConfig(#[from] onionpkg_config::ConfigError),

    /// The repository root to serve is missing or not a directory.
    #[error("repository root {path}: {source}")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why it cannot be served.
        #[source]
        source: std::io::Error,
    },

    /// The trusted root of `[sync]` is missing or not a valid root
    /// (`check-config`).
    #[error("[sync] trust_root {path}: {reason}")]
    TrustRoot {
        /// The configured file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// The TLS certificate chain or key cannot be read or used.
    #[error("tls {what} {path}: {reason}")]
    Tls {
        /// "certificate" or "key".
        what: &'static str,
        /// The PEM file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },

    /// A listener cannot be bound (address in use, permission denied).
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The configured address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// Tor could not be started for the onion service or for sync.
    #[error("tor: {0}")]
    Tor(#[from] onionpkg_net::Error),

    /// A sync was asked for, but the configuration has no `[sync]` section.
    #[error("no [sync] section in the configuration")]
    NoSync,

    /// The clock cannot be trusted (behind the signed time floor), or the
    /// floor file is damaged; nothing was fetched.
    #[error(transparent)]
    Clock(#[from] onionpkg_trust::clock::ClockError),

    /// The upstream repository failed verification; nothing was changed.
    #[error("upstream repository refused: {0}")]
    Verify(#[from] onionpkg_trust::metadata::VerifyError),

    /// The upstream could not be reached or sent something unusable.
    #[error("upstream {url}: {reason}")]
    Upstream {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },

    /// The TLS connection to the upstream failed: its certificate is not
    /// from a Mozilla root nor from `[sync] extra_ca`, names another host,
    /// or the handshake failed. Nothing was verified, so nothing is refused.
    #[error("cannot reach upstream {url} over tls: {source}")]
    UpstreamTls {
        /// The upstream's base URL.
        url: String,
        /// The transport's error.
        #[source]
        source: onionpkg_net::Error,
    },

    /// An upstream URL that sync may not use (given with `--upstream`, or
    /// one the transport refuses).
    #[error("upstream {url}: {reason}")]
    UpstreamUrl {
        /// The URL as given.
        url: String,
        /// Why it is not allowed.
        reason: String,
    },

    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] onionpkg_core::IoError),

    /// Another sync of this mirror is running.
    #[error("another sync of this mirror is running (lock {0} is held)")]
    SyncBusy(PathBuf),

    /// A feed name that is not configured.
    #[error("no feed named {0:?} in the configuration")]
    UnknownFeed(String),

    /// Some feeds could not be fetched; their last good versions stay.
    #[error("some feeds failed:\n{0}")]
    FeedsFailed(String),

    /// A feed's version floor file cannot be read or parsed. Never taken
    /// for an absent floor: that would accept any older version again.
    #[error(
        "the version floor {path} is damaged: {reason}; no version of the feed is accepted \
         until it is repaired (removing it accepts any version once, older ones included)"
    )]
    DamagedFloor {
        /// The floor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A write would lower a feed's version floor; a bug, never done.
    #[error("refusing to lower the version floor {path} from {from} to {to}")]
    FloorDown {
        /// The floor file.
        path: PathBuf,
        /// The floor on disk.
        from: jiff::Timestamp,
        /// The lower floor that was to be written.
        to: jiff::Timestamp,
    },

    /// A feed's configured key cannot be used.
    #[error("feed {feed}: {reason}")]
    FeedKey {
        /// The feed.
        feed: String,
        /// What is wrong with its key.
        reason: String,
    },

    /// Another fetch of the same feed held the feed's lock for too long.
    #[error("another fetch of this feed holds its lock {0} too long")]
    FeedBusy(PathBuf),

    /// The state file is missing or unreadable.
    #[error("no usable state file {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

impl Error {
    /// An I/O error while doing `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        onionpkg_core::IoError::maker(action, path)
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Nickname(_) | Self::Config(_) | Self::Disabled | Self::NoSync => {
                ErrorKind::BadConfig
            }
            Self::BadConfig(e) => e.kind(),
            Self::Root { .. } | Self::Tls { .. } | Self::TrustRoot { .. } => ErrorKind::BadConfig,
            Self::Launch(_) | Self::NoAddress | Self::Bind { .. } | Self::Io(_) => ErrorKind::Io,
            Self::NoRuntime => ErrorKind::Internal,
            Self::Tor(e) => e.kind(),
            Self::Verify(e) => e.kind(),
            Self::Clock(e) => e.kind(),
            Self::Upstream { .. } | Self::UpstreamTls { .. } | Self::SyncBusy(_) => {
                ErrorKind::Network
            }
            Self::UpstreamUrl { .. } => ErrorKind::BadConfig,
            Self::State { .. } => ErrorKind::NotInitialized,
            Self::UnknownFeed(_) => ErrorKind::NotFound,
            Self::FeedKey { .. } => ErrorKind::BadConfig,
            Self::FeedsFailed(_) => ErrorKind::Network,
            Self::DamagedFloor { .. } => ErrorKind::Io,
            Self::FloorDown { .. } => ErrorKind::Internal,
            Self::FeedBusy(_) => ErrorKind::Io,
        }
    }
}
