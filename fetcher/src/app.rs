//! What `onionpkg-fetch` does: the commands, over the state directory, the
//! mirrors and a transport. The command line lives in `cli.rs`; this module
//! never prints, it returns reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use onionpkg_config::FetcherConfig;
use onionpkg_config::fetcher::Transport as TransportKind;
use onionpkg_trust::clock::{ClockError, ClockPolicy, SystemClock, TimeFloor, Tolerance};
use onionpkg_trust::keys::RoleKeys;
use onionpkg_trust::metadata::{Client, VerifyError};
use onionpkg_trust::mirrors::{MirrorCache, MirrorList};
use onionpkg_trust::roles;
use tracing::{info, warn};

use crate::freeze::{Floor, Verdict, judge};
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
    /// An update is announced, but no mirror serves it yet.
    pub const NOT_YET_ON_MIRRORS: u8 = 9;
    /// `check`: an update is available.
    pub const UPDATE_AVAILABLE: u8 = 10;
    /// `feeds sync`: a feed's `on_update` action failed; the verified files
    /// are in place.
    pub const ACTION_FAILED: u8 = 11;
}

/// How far before its valid-after time a Tor consensus may honestly reach
/// a client: the authorities sign it ahead of the hour it starts, and
/// caches hand it out as soon as they have it. The consensus raises the
/// time floor to its valid-after minus this, so an appliance whose clock is
/// right is never refused, and a clock set back by more than this (plus the
/// tolerance) still is.
pub const CONSENSUS_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

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

impl AppError {
    /// The exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Usage(_) => exit::USAGE,
            Self::NotInitialized(_) => exit::NOT_INITIALIZED,
            Self::Expired { .. } => exit::EXPIRED,
            Self::Clock(ClockError::BehindFloor { .. }) => exit::CLOCK,
            Self::Clock(_) => exit::USAGE,
            Self::AllMirrorsFailed { .. } | Self::Deadline { .. } => exit::MIRRORS,
            Self::NotYetOnMirrors { .. } => exit::NOT_YET_ON_MIRRORS,
            Self::RootPinned { .. } => exit::USAGE,
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

    /// Checks `root_file` (the configured `trust_root` when `None`) and pins
    /// it in the state directory. A different root already pinned is kept
    /// unless `replace` is set: pinning decides what the appliance trusts.
    /// Returns the version pinned and whether anything changed.
    pub fn init(&self, root_file: Option<&Path>, replace: bool) -> AppResult<(u64, bool)> {
        let root_file = root_file.unwrap_or(&self.config.trust_root);
        let bytes =
            crate::state::read_capped(root_file, roles::ROOT_MAX_BYTES).map_err(|source| {
                AppError::Io {
                    path: root_file.to_owned(),
                    source,
                }
            })?;
        let root = onionpkg_trust::metadata::check_root(&bytes)?;
        let pinned_path = self.state.root();
        match crate::state::read_capped(&pinned_path, roles::ROOT_MAX_BYTES) {
            Ok(pinned) if pinned == bytes => return Ok((root.version, false)),
            Ok(pinned) if !replace => {
                let pinned_version = onionpkg_trust::metadata::check_root(&pinned)
                    .map(|r| r.version)
                    .unwrap_or(0);
                return Err(AppError::RootPinned {
                    pinned: self.state.root(),
                    pinned_version,
                    new: root_file.to_owned(),
                    new_version: root.version,
                });
            }
            Ok(_) => {
                // Another root: what was trusted under the old one (metadata,
                // the announcement floor, completed downloads) is not
                // evidence under the new one.
                self.forget_trusted()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AppError::Io {
                    path: pinned_path,
                    source,
                });
            }
        }
        self.pin(&bytes)?;
        Ok((root.version, true))
    }

    fn forget_trusted(&self) -> AppResult<()> {
        let io = |path: PathBuf| move |source| AppError::Io { path, source };
        match std::fs::remove_dir_all(self.state.metadata()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(self.state.metadata())(e));
            }
            _ => {}
        }
        for file in [self.state.announced(), self.state.completed()] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(file)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    fn pin(&self, bytes: &[u8]) -> AppResult<()> {
        std::fs::create_dir_all(self.state.metadata()).map_err(|source| AppError::Io {
            path: self.state.metadata(),
            source,
        })?;
        onionpkg_trust::util::write_atomic(&self.state.root(), bytes, None)?;
        Ok(())
    }

    /// The pinned root. On first use, when nothing is pinned yet, the
    /// configured `trust_root` (the root shipped with the appliance's image)
    /// is checked and pinned; after that the pinned root and the chain of
    /// roots verified from it rule.
    pub fn pinned_root(&self) -> AppResult<Vec<u8>> {
        let path = self.state.root();
        match crate::state::read_capped(&path, roles::ROOT_MAX_BYTES) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let shipped = &self.config.trust_root;
                let bytes = match crate::state::read_capped(shipped, roles::ROOT_MAX_BYTES) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(AppError::NotInitialized(path));
                    }
                    Err(source) => {
                        return Err(AppError::Io {
                            path: shipped.clone(),
                            source,
                        });
                    }
                };
                let root = onionpkg_trust::metadata::check_root(&bytes)?;
                self.pin(&bytes)?;
                info!(version = root.version, file = %shipped.display(), "pinned the configured trust root");
                Ok(bytes)
            }
            Err(source) => Err(AppError::Io { path, source }),
        }
    }

    /// The transport the configuration asks for; bootstraps Tor if needed.
    ///
    /// In Tor mode the consensus' signed valid-after time raises the time
    /// floor, and the clock is checked against it before anything else is
    /// fetched: arti accepts a consensus up to a day early, so a clock set
    /// hours back would otherwise go unnoticed.
    pub async fn transport(&mut self) -> AppResult<Arc<Transport>> {
        let tls = Tls::load(self.config.https.extra_ca.as_deref())?;
        Ok(Arc::new(match self.config.transport {
            TransportKind::Tor => {
                let settings = onionpkg_net::tor::TorSettings::from(&self.config.tor);
                let client = onionpkg_net::tor::bootstrap(&settings).await?;
                match onionpkg_net::tor::consensus_valid_after(&client) {
                    Some(valid_after) => {
                        let floor = valid_after
                            .checked_sub(CONSENSUS_SLACK)
                            .unwrap_or(valid_after);
                        if self.clock.raise_floor(floor)? {
                            info!(%valid_after, "time floor raised to the tor consensus");
                        }
                    }
                    None => warn!("no tor consensus to check the clock against"),
                }
                self.clock.now()?;
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

    fn serial_state(&self) -> AppResult<onionpkg_announce::state::SerialState> {
        let path = self.state.announced();
        onionpkg_announce::state::SerialState::load(&path).map_err(|e| AppError::State {
            path,
            reason: e.to_string(),
        })
    }

    /// The announcement floor a mirror is held to, when announcements are
    /// configured: the newest verified record, while `keys` (the timestamp
    /// role of the newest trusted root) still vouch for the keys that
    /// signed it.
    pub fn announced_floor(&self, keys: &RoleKeys) -> AppResult<Option<Floor>> {
        let Some(a) = &self.config.announcement else {
            return Ok(None);
        };
        Ok(self
            .serial_state()?
            .floor(a.name.as_str(), &a.channel, keys)
            .map(|f| Floor {
                serial: f.serial,
                issued: f.issued,
                timestamp_hash: Some(f.timestamp_sha256),
            }))
    }

    /// The timestamp role of the newest root the store trusts; before the
    /// first update, of the pinned root.
    fn trusted_timestamp_keys(&self) -> AppResult<RoleKeys> {
        let store = self.state.metadata();
        let root = match crate::state::read_capped(&store.join("root.json"), roles::ROOT_MAX_BYTES)
        {
            Ok(bytes) => bytes,
            Err(_) => self.pinned_root()?,
        };
        let root = onionpkg_trust::metadata::check_root(&root)?;
        Ok(onionpkg_trust::metadata::role_keys(
            &root,
            roles::TIMESTAMP,
        )?)
    }

    /// Forgets the announcement floor (it lapsed: no mirror served it while
    /// the trusted metadata was valid).
    pub fn drop_announced_floor(&self) -> AppResult<()> {
        let Some(a) = &self.config.announcement else {
            return Ok(());
        };
        let path = self.state.announced();
        self.serial_state()?
            .drop_floor(a.name.as_str(), &a.channel)
            .map_err(|e| AppError::State {
                path,
                reason: e.to_string(),
            })?;
        Ok(())
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
        let keys = self.trusted_timestamp_keys()?;
        let trusted = trusted_timestamp_version(&store).unwrap_or(0);
        let now = self.clock.now()?;
        let mut serials = self.serial_state()?;
        let tolerance = self.clock.tolerance();
        // A bad anchors file is a configuration error, not a missing record.
        let anchors = config
            .dnssec_anchors
            .as_deref()
            .map(onionpkg_announce::load_anchors)
            .transpose()
            .map_err(|e| AppError::Usage(e.to_string()))?;
        let checked = crate::announce::check_dns(
            &config,
            anchors.as_ref(),
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

    /// Refreshes metadata from the first mirror that gives verified metadata
    /// as new as the DNS announcement says (see [`crate::freeze`]); the
    /// others are listed on failure, and those that misbehaved cooled down.
    /// The whole refresh ends by `deadline`.
    pub async fn refresh(
        &mut self,
        transport: &Arc<Transport>,
        deadline: tokio::time::Instant,
    ) -> AppResult<(Client, Candidate, Timestamp)> {
        let root = self.pinned_root()?;
        let now = self.clock.now()?;
        let store = self.state.metadata();
        let trusted_expired =
            trusted_timestamp_expiry(&store).is_some_and(|e| self.clock.is_expired(e, now));
        let stored_timestamp =
            crate::state::read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES)
                .ok();
        let grace = self
            .config
            .announcement
            .as_ref()
            .map(|a| a.mirror_grace)
            .unwrap_or_default();
        let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
        let mut tried = Vec::new();
        let mut not_yet = None;
        for c in self.candidates(transport.is_tor(), now)? {
            let attempt = |reason: String| Attempt {
                mirror: c.url.clone(),
                reason,
            };
            let repo = match RemoteRepository::new(transport.clone(), &c.url) {
                Ok(r) => r,
                Err(e) => {
                    tried.push(attempt(e.to_string()));
                    continue;
                }
            };
            let (repo, seen) = Recording::new(repo);
            // Staged: a mirror refused below must not move the floor.
            let mut client = Client::new_staged(&root, &store, repo)?;
            let refreshed =
                tokio::time::timeout_at(deadline, client.refresh(self.clock.expiry_now(now))).await;
            let Ok(refreshed) = refreshed else {
                tried.push(attempt("the update deadline passed".into()));
                return Err(AppError::Deadline {
                    after: self.config.download.deadline,
                    tried,
                });
            };
            match refreshed {
                Ok(()) => {
                    let served = served(&client, &seen);
                    let floor = self.announced_floor(&client.role_keys(roles::TIMESTAMP)?)?;
                    let verdict = if stored_differs(&seen, stored_timestamp.as_deref()) {
                        Verdict::Equivocation {
                            version: served.version,
                        }
                    } else {
                        judge(served, floor.as_ref(), trusted_expired, now, grace)
                    };
                    match verdict {
                        Verdict::Fresh => {}
                        Verdict::Lapsed { served, announced } => {
                            let w = format!(
                                "timestamp version {announced} was announced, but no mirror \
                                 served it while the trusted metadata was valid; the \
                                 announcement floor is dropped and version {served} from \
                                 {} is used (a timestamp signing key may be compromised: \
                                 tell the distribution)",
                                c.name
                            );
                            warn!(mirror = %c.name, served, announced, "announcement floor dropped");
                            self.warnings.push(w);
                            self.drop_announced_floor()?;
                        }
                        Verdict::NotYetSynced { served, announced } => {
                            let reason = format!(
                                "serves timestamp version {served}; version {announced} is \
                                 announced and not synced here yet"
                            );
                            info!(mirror = %c.name, %reason, "mirror not yet synced");
                            not_yet = Some(announced);
                            tried.push(attempt(reason));
                            continue;
                        }
                        Verdict::Frozen { served, announced } => {
                            let reason = format!(
                                "serves timestamp version {served}, older than the announced \
                                 {announced} (a frozen or stale mirror)"
                            );
                            warn!(mirror = %c.name, %reason, "mirror refused");
                            self.mark_bad(&c.url, &reason, now)?;
                            tried.push(attempt(reason));
                            continue;
                        }
                        Verdict::Equivocation { version } => {
                            let reason = format!(
                                "serves a timestamp version {version} whose bytes differ from \
                                 the version {version} announced or trusted: two signed \
                                 timestamps of one version (equivocation; a timestamp key may \
                                 be compromised)"
                            );
                            warn!(mirror = %c.name, %reason, "mirror refused");
                            self.mark_bad(&c.url, &reason, now)?;
                            tried.push(attempt(reason));
                            continue;
                        }
                    }
                    client.commit()?;
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
                    tried.push(attempt(reason));
                }
            }
        }
        if let Some(announced) = not_yet {
            return Err(AppError::NotYetOnMirrors { announced, tried });
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

/// The bytes of the last `timestamp.json` a mirror served.
type Seen = Arc<std::sync::Mutex<Option<Vec<u8>>>>;

/// A repository that keeps the bytes of the `timestamp.json` it serves, so
/// they can be compared with the hash the announcement names: the TUF
/// client keeps only what it trusts, and an equal version is not stored.
struct Recording {
    inner: RemoteRepository,
    timestamp: Seen,
}

impl Recording {
    fn new(inner: RemoteRepository) -> (Self, Seen) {
        let seen = Seen::default();
        let me = Self {
            inner,
            timestamp: Arc::clone(&seen),
        };
        (me, seen)
    }
}

impl onionpkg_trust::metadata::Repository for Recording {
    fn fetch_metadata<'a>(
        &'a self,
        name: &'a str,
        max_length: u64,
    ) -> onionpkg_trust::metadata::FetchFuture<'a> {
        Box::pin(async move {
            let got = self.inner.fetch_metadata(name, max_length).await;
            if name == "timestamp.json"
                && let Ok(Some(bytes)) = &got
                && let Ok(mut seen) = self.timestamp.lock()
            {
                *seen = Some(bytes.clone());
            }
            got
        })
    }

    fn fetch_target<'a>(
        &'a self,
        path: &'a str,
        max_length: u64,
    ) -> onionpkg_trust::metadata::FetchFuture<'a> {
        self.inner.fetch_target(path, max_length)
    }
}

/// The `signed.version` of a `timestamp.json`, if it parses.
fn version_of(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

/// What the mirror behind `client` served: the trusted version now, and the
/// hash of the bytes it sent when they are that version.
fn served(client: &Client, seen: &Seen) -> crate::freeze::Served {
    use sha2::Digest as _;
    let version = client.timestamp_version().unwrap_or(0);
    let bytes = seen.lock().ok().and_then(|s| s.clone());
    let hash = bytes
        .filter(|b| version_of(b) == Some(version))
        .map(|b| sha2::Sha256::digest(&b).into());
    crate::freeze::Served { version, hash }
}

/// Whether the mirror served a `timestamp.json` of the version already
/// trusted, with other bytes: both are signed, so one version has two
/// timestamps.
fn stored_differs(seen: &Seen, stored: Option<&[u8]>) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    let Some(bytes) = seen.lock().ok().and_then(|s| s.clone()) else {
        return false;
    };
    version_of(&bytes).is_some() && version_of(&bytes) == version_of(stored) && bytes != stored
}
