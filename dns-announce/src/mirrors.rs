//! Announcing only what the mirrors serve (`[mirrors] wait_for`).
//!
//! An announcement tells appliances to fetch a new timestamp. Announced
//! before the main mirrors have synced it, it sends every appliance that
//! checks in that window to mirrors that are all behind. So before a serial
//! is published (served or pushed), every mirror named in the configuration
//! is asked for its `metadata/timestamp.json`.
//!
//! # Invariants
//! - A serial is published only when every configured mirror serves a
//!   `timestamp.json` of at least that version, and at that version the
//!   very bytes announced (same SHA-256): a mirror serving another
//!   timestamp of the same version would have appliances refuse it as
//!   equivocation.
//! - Every request is bounded in size (the timestamp's cap) and in time; an
//!   unreachable mirror counts as not serving it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use onionpkg_core::url::WebUrl;
use onionpkg_net::remote::RemoteRepository;
use onionpkg_net::transport::{Tls, Transport};
use onionpkg_trust::metadata::Repository as _;
use onionpkg_trust::roles;
use sha2::{Digest, Sha256};

use crate::err::{Error, Result};

/// How long one mirror may take to answer.
pub const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// The mirrors a serial must be on before it is announced.
#[derive(Debug, Clone)]
pub struct MirrorGate {
    mirrors: Vec<RemoteRepository>,
}

impl MirrorGate {
    /// A gate over the mirrors at `bases` (`https://`, or plain `http://` on
    /// a loopback address), trusting `extra_ca` besides the Mozilla roots.
    pub fn new(bases: &[WebUrl], extra_ca: Option<&Path>) -> Result<Self> {
        let tls =
            Tls::load(extra_ca).map_err(|e| Error::arg("[mirrors] extra_ca", e.to_string()))?;
        let transport = Arc::new(Transport::Https {
            tls,
            loopback_http: true,
        });
        let mirrors = bases
            .iter()
            .map(|b| {
                RemoteRepository::new(Arc::clone(&transport), b)
                    .map(|r| r.with_timeouts(MIRROR_TIMEOUT, MIRROR_TIMEOUT))
                    .map_err(|e| Error::arg("[mirrors] wait_for", e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { mirrors })
    }

    /// Succeeds when every mirror serves timestamp version `serial` (with
    /// SHA-256 `hash`) or a newer one.
    pub async fn check(&self, serial: u64, hash: &[u8; 32]) -> Result<()> {
        for m in &self.mirrors {
            let not_yet = |reason: String| Error::NotYetOnMirrors {
                serial,
                mirror: m.base_url().to_string(),
                reason,
            };
            let bytes = match m
                .fetch_metadata("timestamp.json", roles::TIMESTAMP_MAX_BYTES)
                .await
            {
                Ok(Some(b)) => b,
                Ok(None) => return Err(not_yet("serves no timestamp.json".into())),
                Err(e) => return Err(not_yet(format!("could not be asked ({e})"))),
            };
            let version = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["signed"]["version"].as_u64());
            match version {
                None => {
                    return Err(not_yet(
                        "serves a timestamp.json that does not parse".into(),
                    ));
                }
                Some(v) if v < serial => return Err(not_yet(format!("serves version {v}"))),
                Some(v) if v == serial && Sha256::digest(&bytes).as_slice() != hash => {
                    return Err(not_yet(format!(
                        "serves another timestamp.json of version {v} (other bytes)"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
