//! The update check through the signed DNS announcement.
//!
//! An idle appliance asks DNS once and contacts no mirror while the verified
//! announcement names the timestamp version it already trusts. How the
//! record is asked depends on the transport:
//! - `tor` and `socks`: DNS over TCP, inside a Tor stream of its own purpose
//!   ([`Purpose::Dns`]), to the configured resolver. No UDP socket is ever
//!   opened and the system resolver is never asked.
//! - `https`: the configured resolver, over UDP with TCP when the answer is
//!   truncated; the system's resolvers only when the configuration says so.
//!
//! No resolver here reads `/etc/hosts`.
//!
//! # Invariants
//! - Only a record verified against the trusted root's timestamp keys counts;
//!   a missing or invalid one never blocks an update: it means "ask a mirror".
//! - The highest serial verified is persisted before it is acted on: an
//!   older record is then a replay, and a mirror serving an older timestamp
//!   than announced is frozen.

use std::net::SocketAddr;
use std::time::Duration;

use onionpkg_announce::check::{AnnouncementState, Expectation, verify_records};
use onionpkg_announce::query::{
    query_announcement, resolver_for_server, resolver_for_system, resolver_over_streams,
};
use onionpkg_announce::state::SerialState;
use onionpkg_announce::{DnssecAnchors, StreamProvider};
use onionpkg_config::fetcher::AnnouncementConfig;
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::keys::RoleKeys;
use tracing::{debug, warn};

use onionpkg_net::tor::Purpose;
use onionpkg_net::transport::Transport;

/// How long one DNS exchange may take (through Tor included).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes buffered between hickory and a Tor stream.
const BRIDGE_BUFFER: usize = 16 * 1024;

/// What the announcement said, verified, compared with what we trust.
#[derive(Debug)]
pub struct DnsCheck {
    /// The state: up to date, update available, no announcement, invalid.
    pub state: AnnouncementState,
    /// DNS exchanges over TCP streams (Tor modes), for diagnostics.
    pub tcp_streams: usize,
    /// The signed issue time of the verified record, if one verified.
    pub issued: Option<jiff::Timestamp>,
    /// The verified record, if one verified.
    pub announcement: Option<onionpkg_trust::announce::Announcement>,
    /// Why no record could be used, for the operator.
    pub problem: Option<String>,
}

impl DnsCheck {
    /// The serial a mirror must at least serve, when the record verified.
    pub fn serial(&self) -> Option<u64> {
        match &self.state {
            AnnouncementState::UpToDate { serial }
            | AnnouncementState::UpdateAvailable { serial, .. } => Some(*serial),
            _ => None,
        }
    }
}

/// Asks DNS for the announcement at the configured name, verifies it against
/// `keys` (the trusted root's timestamp role), and compares it with the
/// trusted timestamp version. A verified serial is persisted in `serials`.
#[allow(clippy::too_many_arguments, reason = "each is one input of the check")]
pub async fn check_dns(
    config: &AnnouncementConfig,
    anchors: Option<&DnssecAnchors>,
    transport: &Transport,
    keys: &RoleKeys,
    trusted_timestamp_version: u64,
    serials: &mut SerialState,
    now: jiff::Timestamp,
    tolerance: Tolerance,
) -> DnsCheck {
    let name = config.name.to_string();
    let (records, tcp_streams) = match query(config, transport, anchors).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "the update announcement could not be fetched");
            return DnsCheck {
                state: AnnouncementState::Invalid(
                    onionpkg_trust::announce::AnnounceError::NoRecord,
                ),
                tcp_streams: 0,
                issued: None,
                announcement: None,
                problem: Some(format!("the record could not be fetched: {e}")),
            };
        }
    };
    let last_seen = serials.last_seen(&name, &config.channel, keys);
    let expect = Expectation {
        name: &name,
        channel: &config.channel,
        keys,
        now,
        tolerance,
        last_seen,
    };
    let verified = verify_records(&records, &expect);
    let issued = verified.as_ref().ok().map(|a| a.issued);
    let announcement = verified.as_ref().ok().cloned();
    if let Ok(a) = &verified
        && let Err(e) = serials.raise(&name, &config.channel, a, keys)
    {
        warn!(error = %e, "the announced serial could not be saved");
    }
    let state = AnnouncementState::from_result(verified, trusted_timestamp_version);
    debug!(state = state.name(), "update announcement checked");
    let problem = match &state {
        AnnouncementState::Invalid(e) => Some(e.to_string()),
        AnnouncementState::NoAnnouncement => Some(format!("no record at {name}")),
        _ => None,
    };
    DnsCheck {
        state,
        tcp_streams,
        issued,
        announcement,
        problem,
    }
}

/// The TXT records at the configured name, and how many TCP streams it took.
async fn query(
    config: &AnnouncementConfig,
    transport: &Transport,
    anchors: Option<&DnssecAnchors>,
) -> Result<(Vec<String>, usize), String> {
    let name = config.name.to_string();
    match transport {
        Transport::Tor { .. } | Transport::Socks { .. } => {
            let Some(server) = config.resolver else {
                return Err(
                    "in tor and socks mode the announcement needs a configured resolver \
                     (asked through Tor); the system resolver is never used there"
                        .into(),
                );
            };
            let transport = transport.clone();
            let provider = StreamProvider::new(move |addr: SocketAddr| {
                let transport = transport.clone();
                async move { tor_stream(&transport, addr).await }
            });
            let resolver = resolver_over_streams(provider.clone(), server, DNS_TIMEOUT, anchors)
                .map_err(|e| e.to_string())?;
            let records = query_announcement(&resolver, &name)
                .await
                .map_err(|e| e.to_string())?;
            Ok((records, provider.tcp_connects()))
        }
        Transport::Https { .. } => {
            let resolver = match (config.resolver, config.use_system_resolver) {
                (Some(server), _) => resolver_for_server(server, DNS_TIMEOUT, anchors),
                (None, true) => {
                    let conf = std::fs::read_to_string("/etc/resolv.conf")
                        .map_err(|e| format!("reading the system resolver configuration: {e}"))?;
                    resolver_for_system(&conf, DNS_TIMEOUT, anchors)
                }
                (None, false) => return Err("no resolver is configured".into()),
            }
            .map_err(|e| e.to_string())?;
            let records = query_announcement(&resolver, &name)
                .await
                .map_err(|e| e.to_string())?;
            Ok((records, 0))
        }
    }
}

/// A Tor stream to `addr` for DNS, bridged to a `Sync` in-memory stream:
/// hickory needs `Sync` streams, and arti's and SOCKS streams are not.
async fn tor_stream(
    transport: &Transport,
    addr: SocketAddr,
) -> std::io::Result<tokio::io::DuplexStream> {
    let host = addr.ip().to_string();
    let stream: onionpkg_net::transport::BoxedStream = match transport {
        Transport::Tor { tor, .. } => Box::new(
            tor.connect(Purpose::Dns, &host, addr.port())
                .await
                .map_err(std::io::Error::other)?,
        ),
        Transport::Socks { socks, .. } => Box::new(
            socks
                .connect(Purpose::Dns, &host, addr.port())
                .await
                .map_err(std::io::Error::other)?,
        ),
        Transport::Https { .. } => {
            return Err(std::io::Error::other(
                "DNS through Tor needs the tor or socks transport",
            ));
        }
    };
    let (near, mut far) = tokio::io::duplex(BRIDGE_BUFFER);
    tokio::spawn(async move {
        let mut stream = stream;
        if let Err(e) = tokio::io::copy_bidirectional(&mut far, &mut stream).await {
            debug!(error = %e, "dns stream closed");
        }
    });
    Ok(near)
}
