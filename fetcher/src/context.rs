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
    /// Warnings for the operator, collected while a command runs; behind a
    /// lock so that the parallel downloads, which share the `App`, can warn.
    warnings: std::sync::Mutex<Vec<String>>,
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
            warnings: std::sync::Mutex::default(),
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
    pub fn warn(&self, warning: String) {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(warning);
    }

    /// The warnings recorded so far, which are then forgotten.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(
            self.warnings
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The transport the configuration asks for, or the first of its
    /// `fallback` transports that can be set up when it cannot (each one
    /// passed over is a warning); bootstraps Tor if needed.
    ///
    /// In Tor mode the consensus' signed valid-after time raises the time
    /// floor, and the clock is checked against it before anything else is
    /// fetched: arti accepts a consensus up to a day early, so a clock set
    /// hours back would otherwise go unnoticed.
    pub async fn transport(&mut self) -> AppResult<Arc<Transport>> {
        let tls = Tls::load(self.config.https.extra_ca.as_deref())?;
        let config = &self.config;
        let opened = onionpkg_net::order::open_first(
            config.transport,
            config.fallback.iter().copied(),
            |kind| open(kind, config, tls.clone()),
        )
        .await;
        let opened = match opened {
            Ok(opened) => opened,
            Err((main_error, passed_over)) => {
                for p in passed_over.iter().skip(1) {
                    warn!(transport = p.kind.as_str(), reason = %p.reason, "fallback transport unusable too");
                }
                return Err(main_error);
            }
        };
        for p in &opened.passed_over {
            warn!(transport = p.kind.as_str(), reason = %p.reason, using = opened.kind.as_str(), "transport unusable, falling back");
            self.warn(format!(
                "transport {:?} could not be set up ({}); using the fallback {:?}",
                p.kind.as_str(),
                p.reason,
                opened.kind.as_str()
            ));
        }
        if let Transport::Tor { tor, .. } = &opened.transport {
            match onionpkg_net::tor::consensus_valid_after(tor.client()) {
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
        }
        Ok(Arc::new(opened.transport))
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
                self.warn(format!(
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
        // It works again: a cooldown from an earlier failure is over.
        health.clear(url.as_str());
        health.last_used = Some((url.to_string(), now));
        health.save(&path)
    }
}

/// How long a Tor daemon's SOCKS port may take to accept a connection
/// before the transport counts as down.
const SOCKS_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

/// Sets up one transport: bootstraps the embedded Tor, or checks that the
/// Tor daemon's SOCKS port answers.
async fn open(kind: TransportKind, config: &FetcherConfig, tls: Tls) -> AppResult<Transport> {
    Ok(match kind {
        TransportKind::Tor => {
            let settings = onionpkg_net::tor::TorSettings::from(&config.tor);
            let client = onionpkg_net::tor::bootstrap(&settings).await?;
            Transport::Tor {
                tor: onionpkg_net::tor::TorTransport::new(client),
                tls,
            }
        }
        TransportKind::Socks => {
            let Some(socks) = &config.socks else {
                return Err(AppError::Usage(format!(
                    "transport {:?} needs a [socks] section",
                    kind.as_str()
                )));
            };
            let socks = SocksTransport::new(socks.addr);
            socks.probe(SOCKS_PROBE).await?;
            Transport::Socks { socks, tls }
        }
        TransportKind::Https => Transport::Https {
            tls,
            loopback_http: false,
        },
    })
}
