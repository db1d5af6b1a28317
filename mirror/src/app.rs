//! A running mirror: every listener of one configuration, the shared
//! connection limits, metrics, TLS reload and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use onionpkg_config::mirror::MirrorConfig;
use onionpkg_net::tor::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::http::RepoService;
use crate::metrics::{Metrics, OnionState};
use crate::onion::{OnionService, serve_onion_with};
use crate::serve::{ConnLimits, Conns, Listeners, start_clearnet};
use crate::state::State;
use crate::{Error, Result};

/// Loads and validates a mirror configuration file.
pub fn load_config(path: &std::path::Path) -> Result<MirrorConfig> {
    Ok(onionpkg_config::load_mirror(path)?)
}

/// A mirror serving one configuration; [`Mirror::shutdown`] stops it.
#[derive(Debug)]
pub struct Mirror {
    config: MirrorConfig,
    service: RepoService,
    metrics: Arc<Metrics>,
    conns: Conns,
    listeners: Listeners,
    shutdown: watch::Sender<bool>,
    onion: Option<OnionService>,
}

impl Mirror {
    /// Checks the root and TLS files, binds every clearnet listener and starts
    /// serving. The onion service is launched separately
    /// ([`Mirror::launch_onion`]) because it needs a bootstrapped Tor client.
    pub async fn start(config: &MirrorConfig) -> Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let service = RepoService::new(&config.root, Arc::clone(&metrics), config.log.access_log)
            .map_err(|source| Error::Root {
            path: config.root.clone(),
            source,
        })?;
        let served = served_version(service.root()).or_else(|| {
            State::load(&config.state_dir)
                .ok()
                .and_then(|s| s.served_version)
        });
        if let Some(v) = served {
            metrics.served_version(v);
        }
        metrics.onion(if config.onion.enabled {
            OnionState::Starting
        } else {
            OnionState::Disabled
        });
        let (shutdown, rx) = watch::channel(false);
        let conns = Conns::new(
            ConnLimits::from_config(&config.limits),
            Arc::clone(&metrics),
            rx,
        );
        let listeners = start_clearnet(config, &service, &metrics, &conns).await?;
        record_start(config, served);
        Ok(Self {
            config: config.clone(),
            service,
            metrics,
            conns,
            listeners,
            shutdown,
            onion: None,
        })
    }

    /// The bound clearnet HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.listeners.http
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.listeners.https
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listeners.metrics
    }

    /// The mirror's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The onion address, once launched.
    pub fn onion_address(&self) -> Option<&str> {
        self.onion.as_ref().map(OnionService::address)
    }

    /// Reads the TLS certificate and key again (SIGHUP). Connections already
    /// open keep theirs; a failed reload keeps the old certificate.
    pub fn reload_tls(&self) -> Result<()> {
        match &self.listeners.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Launches the onion service on `client` and records its address in
    /// the state file.
    pub fn launch_onion(&mut self, client: &Client) -> Result<&str> {
        let service = self.service.for_peer(crate::http::Via::Onion, None);
        match serve_onion_with(client, &self.config.onion, self.conns.clone(), service) {
            Ok(onion) => {
                self.metrics.onion(OnionState::Running);
                let address = onion.address().to_owned();
                if let Err(e) = State::update(&self.config.state_dir, |s| {
                    s.onion_address = Some(address);
                }) {
                    warn!(error = %e, "cannot record the onion address");
                }
                Ok(self.onion.insert(onion).address())
            }
            Err(e) => {
                self.metrics.onion(OnionState::Failed);
                Err(e)
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `deadline`,
    /// then drops what is left. True if every connection closed in time.
    pub async fn shutdown(mut self, deadline: Duration) -> bool {
        let _ = self.shutdown.send(true);
        // The onion service stops accepting streams when dropped; its open
        // streams drain like the others.
        self.onion = None;
        let drained = self.conns.drained(deadline).await;
        if drained {
            info!("all connections closed");
        } else {
            warn!(
                ?deadline,
                "connections still open at the shutdown deadline: dropping them"
            );
        }
        drained
    }
}

/// Records in the state file that the mirror serves (so that `status`
/// works before any sync or onion service), with the served version; an
/// onion address from an earlier run is forgotten when the service is off.
/// A state dir that cannot be written is a warning: serving matters more.
fn record_start(config: &MirrorConfig, served: Option<u64>) {
    let onion = config.onion.enabled;
    if let Err(e) = State::update(&config.state_dir, |s| {
        s.serving_since = Some(jiff::Timestamp::now());
        if served.is_some() {
            s.served_version = served;
        }
        if !onion {
            s.onion_address = None;
        }
    }) {
        warn!(error = %e, "cannot record the mirror's state; `status` will not show it");
    }
}

/// The version of the served `metadata/timestamp.json`, read from the tree
/// itself so a tree updated by other means than sync is reported too.
pub fn served_version(root: &std::path::Path) -> Option<u64> {
    let path = root.join("metadata/timestamp.json");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() > onionpkg_trust::roles::TIMESTAMP_MAX_BYTES {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    doc.get("signed")?.get("version")?.as_u64()
}
