//! The mirror's onion service: launched with arti, served with hyper.
//!
//! `[onion]`'s per-circuit stream cap and introduction rate limit are
//! arti's to enforce ([`service_config`]); the streams it lets through take
//! slots of the mirror's onion budget.
//!
//! arti keeps the service's identity key in its keystore under the client's
//! state dir, keyed by the nickname; launching again with the same state dir
//! and nickname therefore yields the same .onion address.

use std::sync::Arc;
use std::time::Duration;

use arti_client::config::onion_service::{OnionServiceConfig, OnionServiceConfigBuilder};
use futures::StreamExt;
use onionpkg_config::mirror::OnionConfig;
use tor_hsservice::config::TokenBucketConfig;

use onionpkg_net::tor::Client;
use safelog::DisplayRedacted;
use tor_cell::relaycell::msg::{Connected, End, EndReason};
use tor_hsservice::status::OnionServiceStatus;
use tor_hsservice::{HsNickname, RunningOnionService, StreamRequest};
use tor_proto::stream::IncomingStreamRequest;
use tracing::{debug, info};

use crate::budget::Listener;
use crate::metrics::Metrics;
use crate::serve::{ConnLimits, Conns, HttpService, ServedBody};
use crate::{Error, Result};

/// The only virtual port served; streams to any other port close the circuit,
/// as C tor does for unknown ports.
pub const HTTP_PORT: u16 = 80;

/// Default cap on concurrently served onion streams.
pub const DEFAULT_MAX_STREAMS: usize = 64;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A running onion service; dropping it stops serving.
pub struct OnionService {
    address: String,
    service: Arc<RunningOnionService>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for OnionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnionService")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl OnionService {
    /// The service's address, `<56 chars>.onion`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// arti's view of the service's health. It flaps on small networks while
    /// the service stays reachable, so never wait on it in place of a fetch.
    pub fn status(&self) -> OnionServiceStatus {
        self.service.status()
    }
}

impl Drop for OnionService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Launches the onion service `nickname` on `client` and serves `service`
/// over HTTP/1.1 on its port 80, at most `max_streams` streams at a time,
/// with the other `[onion]` settings at their defaults.
///
/// Must be called within a tokio runtime; serving runs on that runtime.
pub fn serve_onion<S, B>(
    client: &Client,
    nickname: &str,
    max_streams: usize,
    service: S,
) -> Result<OnionService>
where
    S: HttpService<B> + Clone,
    B: ServedBody,
{
    let defaults = onionpkg_config::mirror::LimitsConfig::default();
    let mut limits = ConnLimits::from_config(&defaults);
    limits.budgets.onion = max_streams;
    limits.header_read_timeout = HEADER_READ_TIMEOUT;
    // Never signalled: this service ends when dropped.
    let (_never, shutdown) = tokio::sync::watch::channel(false);
    let conns = Conns::new(limits, Arc::new(Metrics::default()), shutdown);
    let onion = OnionConfig {
        enabled: true,
        nickname: nickname.to_owned(),
        ..OnionConfig::default()
    };
    serve_onion_with(client, &onion, conns, service)
}

/// arti's configuration of the service `onion` describes: its nickname,
/// the per-circuit stream cap and the rate limit asked of its
/// introduction points.
pub fn service_config(onion: &OnionConfig) -> Result<OnionServiceConfig> {
    let nick: HsNickname = onion
        .nickname
        .parse()
        .map_err(|_| Error::Nickname(onion.nickname.clone()))?;
    let mut b = OnionServiceConfigBuilder::default();
    b.nickname(nick)
        .max_concurrent_streams_per_circuit(onion.max_streams_per_circuit);
    if let (Some(rate), Some(burst)) = (onion.intro_rate, onion.intro_burst) {
        b.rate_limit_at_intro(Some(TokenBucketConfig::new(rate, burst)));
    }
    Ok(b.build()?)
}

/// Like [`serve_onion`], but as `onion` configures it, with the connection
/// budgets, deadlines and shutdown signal shared with the mirror's other
/// listeners (its streams take slots of the onion budget).
pub fn serve_onion_with<S, B>(
    client: &Client,
    onion: &OnionConfig,
    conns: Conns,
    service: S,
) -> Result<OnionService>
where
    S: HttpService<B> + Clone,
    B: ServedBody,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let config = service_config(onion)?;
    let nickname = onion.nickname.as_str();
    let (running, rend_requests) = client
        .launch_onion_service(config)
        .map_err(Error::Launch)?
        .ok_or(Error::Disabled)?;
    let address = running
        .onion_address()
        .ok_or(Error::NoAddress)?
        .display_unredacted()
        .to_string();
    info!(%address, nickname, "onion service launched");

    let task = runtime.spawn(async move {
        let mut streams = std::pin::pin!(tor_hsservice::handle_rend_requests(rend_requests));
        while let Some(req) = streams.next().await {
            dispatch(req, &conns, service.clone());
        }
        debug!("onion service request stream ended");
    });
    Ok(OnionService {
        address,
        service: running,
        task,
    })
}

/// Accepts, refuses or drops one stream request without blocking the loop.
fn dispatch<S, B>(req: StreamRequest, conns: &Conns, service: S)
where
    S: HttpService<B>,
    B: ServedBody,
{
    let wanted = matches!(req.request(), IncomingStreamRequest::Begin(b) if b.port() == HTTP_PORT);
    if !wanted {
        debug!("stream to an unserved port: closing its circuit");
        if let Err(e) = req.shutdown_circuit() {
            debug!(error = %e, "cannot close circuit");
        }
        return;
    }
    let Some(slot) = conns.try_slot(Listener::Onion, None) else {
        tokio::spawn(async move {
            let _ = req
                .reject(End::new_with_reason(EndReason::RESOURCELIMIT))
                .await;
        });
        return;
    };
    let conns = conns.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let stream = match req.accept(Connected::new_empty()).await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "cannot accept onion stream");
                return;
            }
        };
        conns.serve(stream, service).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_onion_limits_reach_arti() {
        let onion = OnionConfig {
            enabled: true,
            nickname: "mirror".to_owned(),
            max_streams_per_circuit: 7,
            intro_rate: Some(25),
            intro_burst: Some(200),
        };
        let c = service_config(&onion).unwrap();
        assert_eq!(c.nickname().to_string(), "mirror");
        assert_eq!(*c.max_concurrent_streams_per_circuit(), 7);
        assert_eq!(
            c.rate_limit_at_intro(),
            &Some(TokenBucketConfig::new(25, 200))
        );

        // Without a rate, the introduction points keep their own default.
        let c = service_config(&OnionConfig::default()).unwrap();
        assert_eq!(
            *c.max_concurrent_streams_per_circuit(),
            onionpkg_config::mirror::DEFAULT_MAX_STREAMS_PER_CIRCUIT
        );
        assert_eq!(c.rate_limit_at_intro(), &None);
    }

    #[test]
    fn a_bad_nickname_is_refused_by_name() {
        let onion = OnionConfig {
            nickname: "not a nickname".to_owned(),
            ..OnionConfig::default()
        };
        let e = service_config(&onion).unwrap_err();
        assert!(
            matches!(e, Error::Nickname(ref n) if n == "not a nickname"),
            "{e:?}"
        );
    }
}
