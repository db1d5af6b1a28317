//! What `onionpkg-fetch` does: the commands, over the state directory, the
//! mirrors and a transport. The command line lives in `cli.rs`; this module
//! never prints, it returns reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use onionpkg_config::FetcherConfig;
use onionpkg_config::fetcher::Transport as TransportKind;
use onionpkg_trust::clock::{ClockError, ClockPolicy, SystemClock, TimeFloor, Tolerance};
use onionpkg_trust::metadata::{Client, VerifyError};
use onionpkg_trust::mirrors::{MirrorCache, MirrorList};
use onionpkg_trust::roles;
use tracing::{info, warn};

use crate::select::{Candidate, candidates};
use crate::state::{Health, StateDir};
use onionpkg_net::remote::RemoteRepository;
use onionpkg_net::transport::{SocksTransport, Tls, Transport};

/// Shorthand for results of the commands.
pub type AppResult<T> = Result<T, AppError>;

/// Exit codes of `onionpkg-fetch`.
pub mod exit {
    /// Success; for `check`: no update.
    pub const OK: u8 = 0;
    /// An unexpected failure (local I/O, damaged state).
    pub const FAILURE: u8 = 1;
    /// Bad command line or configuration.
    pub const USAGE: u8 = 2;
    /// `init` has not been run: no pinned root.
    pub const NOT_INITIALIZED: u8 = 3;
    /// Trusted metadata has expired and no mirror could refresh it.
    pub const EXPIRED: u8 = 4;
    /// The clock is behind signed time already seen.
    pub const CLOCK: u8 = 5;
    /// Every mirror failed.
    pub const MIRRORS: u8 = 6;
    /// Tor could not be started or reached.
    pub const TOR: u8 = 7;
    /// Verification refused something (the root at `init`, an unknown target).
    pub const VERIFY: u8 = 8;
    /// `check`: an update is available.
    pub const UPDATE_AVAILABLE: u8 = 10;
}

/// One mirror tried, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// The mirror's base URL.
    pub mirror: String,
    /// What went wrong.
    pub reason: String,
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

impl AppError {
    /// The exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Usage(_) => exit::USAGE,
            Self::NotInitialized(_) => exit::NOT_INITIALIZED,
            Self::Expired { .. } => exit::EXPIRED,
            Self::Clock(ClockError::BehindFloor { .. }) => exit::CLOCK,
            Self::Clock(_) => exit::USAGE,
            Self::AllMirrorsFailed { .. } => exit::MIRRORS,
            Self::Transport(_) => exit::TOR,
            Self::Verify(_) => exit::VERIFY,
            Self::Trust(_) | Self::State { .. } | Self::Io { .. } => exit::FAILURE,
        }
    }
}

/// The fetcher's local side: configuration, state and clock.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub config: FetcherConfig,
    /// The state directory.
    pub state: StateDir,
    /// The clock policy (system clock, configured tolerance, persisted floor).
    pub clock: ClockPolicy,
    /// Warnings for the operator, collected while a command runs.
    pub warnings: Vec<String>,
}

impl App {
    /// Opens the state described by `config`.
    pub fn new(config: FetcherConfig) -> AppResult<Self> {
        let state = StateDir::new(config.state_dir.clone());
        let tolerance = Tolerance::from_secs(config.clock.skew_tolerance.as_secs())?;
        let floor = TimeFloor::load(state.time_floor())?;
        let clock = ClockPolicy::new(Box::new(SystemClock), tolerance, floor);
        Ok(Self {
            config,
            state,
            clock,
            warnings: Vec::new(),
        })
    }

    /// Checks `root_file` and pins it in the state directory.
    pub fn init(&self, root_file: &Path) -> AppResult<u64> {
        let bytes =
            crate::state::read_capped(root_file, roles::ROOT_MAX_BYTES).map_err(|source| {
                AppError::Io {
                    path: root_file.to_owned(),
                    source,
                }
            })?;
        let root = onionpkg_trust::metadata::check_root(&bytes)?;
        std::fs::create_dir_all(self.state.metadata()).map_err(|source| AppError::Io {
            path: self.state.metadata(),
            source,
        })?;
        onionpkg_trust::util::write_atomic(&self.state.root(), &bytes, None)?;
        Ok(root.version)
    }

    /// The pinned root.
    pub fn pinned_root(&self) -> AppResult<Vec<u8>> {
        let path = self.state.root();
        match crate::state::read_capped(&path, roles::ROOT_MAX_BYTES) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(AppError::NotInitialized(path))
            }
            Err(source) => Err(AppError::Io { path, source }),
        }
    }

    /// The transport the configuration asks for; bootstraps Tor if needed.
    pub async fn transport(&self) -> AppResult<Arc<Transport>> {
        let tls = Tls::load(self.config.https.extra_ca.as_deref())?;
        Ok(Arc::new(match self.config.transport {
            TransportKind::Tor => {
                let settings = onionpkg_net::tor::TorSettings::from(&self.config.tor);
                let client = onionpkg_net::tor::bootstrap(&settings).await?;
                Transport::Tor {
                    tor: onionpkg_net::tor::TorTransport::new(client),
                    tls,
                }
            }
            TransportKind::Socks => {
                let Some(socks) = &self.config.socks else {
                    return Err(AppError::Usage(
                        "transport \"socks\" needs a [socks] section".into(),
                    ));
                };
                Transport::Socks {
                    socks: SocksTransport::new(socks.addr),
                    tls,
                }
            }
            TransportKind::Https => Transport::Https {
                tls,
                loopback_http: false,
            },
        }))
    }

    /// The cached mirror list, if it verified when stored.
    pub fn mirror_cache(&self) -> AppResult<MirrorCache> {
        Ok(MirrorCache::load(self.state.mirrors())?)
    }

    /// The mirrors to try now, in order; warns when the cached list expired.
    pub fn candidates(&mut self, via_tor: bool, now: Timestamp) -> AppResult<Vec<Candidate>> {
        let cache = self.mirror_cache()?;
        let health = Health::load(&self.state.health())?;
        let list = match cache.list() {
            Some(l) if l.is_expired(now, self.clock.tolerance()) => {
                self.warnings.push(format!(
                    "the cached mirror list (version {}) expired at {}; using the main mirror(s) until a fresh one is fetched",
                    l.version(),
                    l.expires()
                ));
                None
            }
            other => other,
        };
        let main: Vec<String> = self
            .config
            .main_mirrors
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect();
        Ok(candidates(
            list,
            &main,
            via_tor,
            &health,
            now,
            &mut rand::thread_rng(),
        ))
    }

    /// The highest announced serial verified so far, when announcements are
    /// configured: no mirror serving less is accepted.
    pub fn announced_serial(&self) -> AppResult<Option<u64>> {
        let Some(a) = &self.config.announcement else {
            return Ok(None);
        };
        let path = self.state.announced();
        let serials = onionpkg_announce::state::SerialState::load(&path)
            .map_err(|e| AppError::Usage(e.to_string()))?;
        Ok(serials.get(a.name.as_str(), &a.channel))
    }

    /// `Some((served, announced))` when `client`'s fresh timestamp is older
    /// than the announcement promised.
    fn is_frozen(&self, client: &Client) -> AppResult<Option<(u64, u64)>> {
        let served = client.timestamp_version().unwrap_or(0);
        Ok(self
            .announced_serial()?
            .filter(|&announced| served < announced)
            .map(|announced| (served, announced)))
    }

    /// Checks the DNS announcement, when one is configured: verified against
    /// the newest trusted root's timestamp keys, its serial persisted, its
    /// signed issue time raising the time floor.
    pub async fn check_announcement(
        &mut self,
        transport: &Transport,
    ) -> AppResult<Option<crate::announce::DnsCheck>> {
        let Some(config) = self.config.announcement.clone() else {
            return Ok(None);
        };
        let store = self.state.metadata();
        // The newest root the store trusts names the current timestamp keys;
        // before the first update, the pinned root does.
        let root = match crate::state::read_capped(&store.join("root.json"), roles::ROOT_MAX_BYTES)
        {
            Ok(bytes) => bytes,
            Err(_) => self.pinned_root()?,
        };
        let root = onionpkg_trust::metadata::check_root(&root)?;
        let keys = onionpkg_trust::metadata::role_keys(&root, roles::TIMESTAMP)?;
        let trusted = trusted_timestamp_version(&store).unwrap_or(0);
        let now = self.clock.now()?;
        let path = self.state.announced();
        let mut serials = onionpkg_announce::state::SerialState::load(&path)
            .map_err(|e| AppError::Usage(e.to_string()))?;
        let tolerance = self.clock.tolerance();
        let checked = crate::announce::check_dns(
            &config,
            transport,
            &keys,
            trusted,
            &mut serials,
            now,
            tolerance,
        )
        .await;
        if let Some(issued) = checked.issued {
            self.clock.raise_floor(issued)?;
        }
        Ok(Some(checked))
    }

    /// Marks a mirror bad for the configured cooldown.
    pub fn mark_bad(&self, url: &str, reason: &str, now: Timestamp) -> AppResult<()> {
        let path = self.state.health();
        let mut health = Health::load(&path)?;
        health.prune(now);
        let until = now
            .checked_add(
                jiff::SignedDuration::try_from(self.config.mirror_cooldown)
                    .unwrap_or(jiff::SignedDuration::from_hours(1)),
            )
            .unwrap_or(now);
        health.mark_bad(url, until, reason.to_owned());
        health.save(&path)
    }

    fn note_used(&self, url: &str, now: Timestamp) -> AppResult<()> {
        let path = self.state.health();
        let mut health = Health::load(&path)?;
        health.prune(now);
        health.last_used = Some((url.to_owned(), now));
        health.save(&path)
    }

    /// Refreshes metadata from the first mirror that gives verified,
    /// current metadata; the others are marked bad and listed on failure.
    pub async fn refresh(
        &mut self,
        transport: &Arc<Transport>,
    ) -> AppResult<(Client, Candidate, Timestamp)> {
        let root = self.pinned_root()?;
        let now = self.clock.now()?;
        let store = self.state.metadata();
        let mut tried = Vec::new();
        for c in self.candidates(transport.is_tor(), now)? {
            let repo = match RemoteRepository::new(transport.clone(), &c.url) {
                Ok(r) => r,
                Err(e) => {
                    tried.push(Attempt {
                        mirror: c.url.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let mut client = Client::new(&root, Some(&store), repo)?;
            match client.refresh(self.clock.expiry_now(now)).await {
                Ok(()) => {
                    if let Some((served, announced)) = self.is_frozen(&client)? {
                        let reason = format!(
                            "serves timestamp version {served}, older than the announced \
                             {announced} (a frozen or stale mirror)"
                        );
                        warn!(mirror = %c.name, %reason, "mirror refused");
                        self.mark_bad(&c.url, &reason, now)?;
                        tried.push(Attempt {
                            mirror: c.url.clone(),
                            reason,
                        });
                        continue;
                    }
                    info!(mirror = %c.name, "metadata refreshed");
                    self.note_used(&c.url, now)?;
                    return Ok((client, c, now));
                }
                Err(VerifyError::Store(s)) => {
                    return Err(AppError::Verify(VerifyError::Store(s)));
                }
                Err(e) => {
                    let reason = match &e {
                        VerifyError::Rollback { .. } => {
                            format!("{e} (the mirror serves older metadata than already trusted)")
                        }
                        _ => e.to_string(),
                    };
                    warn!(mirror = %c.name, %reason, "mirror refused");
                    self.mark_bad(&c.url, &reason, now)?;
                    tried.push(Attempt {
                        mirror: c.url.clone(),
                        reason,
                    });
                }
            }
        }
        match trusted_timestamp_expiry(&store) {
            Some(expires) if self.clock.is_expired(expires, now) => {
                Err(AppError::Expired { expires, tried })
            }
            _ => Err(AppError::AllMirrorsFailed { tried }),
        }
    }

    /// Fetches the signed mirror list from the refreshed `client` and caches
    /// it; a failure is a warning, the main mirrors still work.
    pub async fn refresh_mirror_list(
        &mut self,
        client: &mut Client,
        now: Timestamp,
    ) -> Option<u64> {
        if let Err(e) = client.load_delegated(roles::MIRRORS, now).await {
            self.warnings
                .push(format!("the mirror list could not be refreshed: {e}"));
            return None;
        }
        let fetched = client
            .fetch_target(roles::MIRRORS_TARGET, self.clock.expiry_now(now))
            .await;
        let bytes = match fetched {
            Ok(b) => b,
            Err(VerifyError::TargetNotFound(_)) => return None,
            Err(e) => {
                self.warnings
                    .push(format!("the mirror list could not be refreshed: {e}"));
                return None;
            }
        };
        let list = match MirrorList::parse(&bytes) {
            Ok(l) => l,
            Err(e) => {
                self.warnings
                    .push(format!("the signed mirror list is invalid: {e}"));
                return None;
            }
        };
        if let Err(e) = list.check_fresh(now, self.clock.tolerance()) {
            self.warnings.push(format!(
                "the mirror list could not be refreshed: the signed list is stale ({e})"
            ));
            return None;
        }
        let version = list.version();
        match self.mirror_cache().and_then(|mut c| Ok(c.store(list)?)) {
            Ok(()) => Some(version),
            Err(e) => {
                self.warnings
                    .push(format!("the mirror list could not be cached: {e}"));
                None
            }
        }
    }
}

/// The expiry of the trusted timestamp in the metadata store, if any.
pub fn trusted_timestamp_expiry(store: &Path) -> Option<Timestamp> {
    let bytes =
        crate::state::read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES)
            .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("signed")?.get("expires")?.as_str()?.parse().ok()
}

/// The version of the trusted timestamp in the metadata store, if any.
pub fn trusted_timestamp_version(store: &Path) -> Option<u64> {
    let bytes =
        crate::state::read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES)
            .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}
