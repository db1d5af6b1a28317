//! The fetcher's local side: its configuration, state directory and clock
//! policy, the transport the configuration asks for, and the mirrors to try.
//! The commands (`commands.rs`) and the refresh (`refresh.rs`) work through
//! it; it never prints.

use std::sync::Arc;

use jiff::Timestamp;
use onionpkg_config::FetcherConfig;
use onionpkg_config::fetcher::Transport as TransportKind;
use onionpkg_core::url::WebUrl;
use onionpkg_net::transport::{SocksTransport, Tls, Transport};
use onionpkg_trust::clock::{ClockPolicy, SystemClock, TimeFloor, Tolerance};
use onionpkg_trust::mirrors::MirrorCache;
use tracing::{info, warn};

use crate::err::{AppError, AppResult};
use crate::select::{Candidate, candidates};
use crate::state::{Health, StateDir};

/// How far before its valid-after time a Tor consensus may honestly reach
/// a client: the authorities sign it ahead of the hour it starts, and
/// caches hand it out as soon as they have it. The consensus raises the
/// time floor to its valid-after minus this, so an appliance whose clock is
/// right is never refused, and a clock set back by more than this (plus the
/// tolerance) still is.
pub const CONSENSUS_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The fetcher's local side: configuration, state and clock.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    config: FetcherConfig,
    /// The state directory.
    state: StateDir,
    /// The clock policy (system clock, configured tolerance, persisted floor).
    clock: ClockPolicy,
    /// Warnings for the operator, collected while a command runs.
    warnings: Vec<String>,
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

    /// The configuration.
    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The clock policy.
    pub fn clock(&self) -> &ClockPolicy {
        &self.clock
    }

    /// The clock policy, to raise its signed time floor.
    pub fn clock_mut(&mut self) -> &mut ClockPolicy {
        &mut self.clock
    }

    /// Records a warning for the operator.
    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// The warnings recorded so far, which are then forgotten.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
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
        Ok(candidates(
            list,
            &self.config.main_mirrors,
            via_tor,
            &health,
            now,
            &mut rand::thread_rng(),
        ))
    }

    /// Marks a mirror bad for the configured cooldown.
    pub fn mark_bad(&self, url: &WebUrl, reason: &str, now: Timestamp) -> AppResult<()> {
        let path = self.state.health();
        let mut health = Health::load(&path)?;
        health.prune(now);
        let until = now
            .checked_add(
                jiff::SignedDuration::try_from(self.config.mirror_cooldown)
                    .unwrap_or(jiff::SignedDuration::from_hours(1)),
            )
            .unwrap_or(now);
        health.mark_bad(url.as_str(), until, reason.to_owned());
        health.save(&path)
    }

    pub(crate) fn note_used(&self, url: &WebUrl, now: Timestamp) -> AppResult<()> {
        let path = self.state.health();
        let mut health = Health::load(&path)?;
        health.prune(now);
        health.last_used = Some((url.to_string(), now));
        health.save(&path)
    }
}
