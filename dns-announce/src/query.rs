//! Asking DNS for the announcement.
//!
//! Three ways to build the resolver, one way to ask:
//!
//! - [`resolver_for_server`]: one given server, over UDP first and TCP when
//!   the answer is truncated (both are always configured).
//! - [`resolver_for_system`]: the name servers of a `resolv.conf` text the
//!   caller read (only on explicit request: `check --system-resolver`).
//! - [`resolver_over_streams`]: TCP only, through a [`StreamProvider`] (Tor).
//! - [`query_announcement`]: the TXT records at a name, each record's
//!   strings joined.
//!
//! Each resolver takes optional [`DnssecAnchors`]; with them it sets the DO
//! bit, fetches the zone's DNSKEYs (over the same transport) and validates
//! every answer: one that does not validate is refused
//! ([`Error::Dnssec`]).
//!
//! # Invariants
//! - Every query is bounded by the timeout, and a whole lookup by
//!   [`LOOKUP_DEADLINE_QUERIES`] times it.
//! - hickory-resolver is built without its `system-config` feature, hosts
//!   file lookups are off and the cache is empty: nothing is read from
//!   `/etc/resolv.conf` or `/etc/hosts` unless the caller hands it in, and
//!   every query goes to the network.
//! - A record whose strings are not ASCII or exceed the announcement size
//!   limit is skipped, never truncated or "repaired".
//! - With anchors, records are returned only if every answer record's proof
//!   is `Secure`; a bogus or unprovable answer is [`Error::Dnssec`], never
//!   an empty list. (A negative answer hickory accepts as proven is an empty
//!   list: a missing record never blocks updates anyway.)

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::dnssec::Proof;
use hickory_proto::rr::RData;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{ConnectionProvider, Resolver};

use crate::dnssec::DnssecAnchors;
use crate::err::{Error, Result};
use crate::transport::StreamProvider;

/// A whole lookup may take as long as this many queries: with validation,
/// the TXT and the DNSKEY query, each tried twice.
pub const LOOKUP_DEADLINE_QUERIES: u32 = 4;

/// The default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The resolver options every resolver here uses.
fn options(timeout: Duration) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts
}

/// A UDP and a TCP connection to `port`.
fn udp_and_tcp(port: u16) -> Vec<ConnectionConfig> {
    let mut udp = ConnectionConfig::udp();
    udp.port = port;
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = port;
    vec![udp, tcp]
}

/// Builds a resolver on `provider`, validating with `anchors` if given.
fn build<P: ConnectionProvider>(
    config: ResolverConfig,
    provider: P,
    timeout: Duration,
    anchors: Option<&DnssecAnchors>,
) -> std::result::Result<Resolver<P>, NetError> {
    let mut builder =
        Resolver::builder_with_config(config, provider).with_options(options(timeout));
    if let Some(anchors) = anchors {
        builder = builder.with_trust_anchor(anchors.trust_anchors());
    }
    builder.build()
}

/// A resolver asking only `server`, over UDP and (for truncated answers) TCP;
/// with `anchors`, answers must validate.
pub fn resolver_for_server(
    server: SocketAddr,
    timeout: Duration,
    anchors: Option<&DnssecAnchors>,
) -> Result<Resolver<TokioRuntimeProvider>> {
    let ns = NameServerConfig::new(server.ip(), true, udp_and_tcp(server.port()));
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    build(config, TokioRuntimeProvider::default(), timeout, anchors).map_err(|e| Error::Network {
        what: "resolver setup",
        server: server.to_string(),
        reason: e.to_string(),
    })
}

/// The `nameserver` addresses of a `resolv.conf` text, in order.
pub fn system_nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        // A link-local IPv6 server may carry a zone (`fe80::1%eth0`); the
        // resolver cannot use the zone, so such servers are skipped.
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// A resolver asking the name servers of `resolv_conf` (its text), over UDP
/// and TCP on port 53; with `anchors`, answers must validate.
pub fn resolver_for_system(
    resolv_conf: &str,
    timeout: Duration,
    anchors: Option<&DnssecAnchors>,
) -> Result<Resolver<TokioRuntimeProvider>> {
    let servers = system_nameservers(resolv_conf);
    if servers.is_empty() {
        return Err(Error::arg(
            "--system-resolver",
            "the system resolver configuration names no usable name server",
        ));
    }
    let ns = servers
        .into_iter()
        .map(|ip| NameServerConfig::new(ip, true, udp_and_tcp(53)))
        .collect();
    let config = ResolverConfig::from_parts(None, vec![], ns);
    build(config, TokioRuntimeProvider::default(), timeout, anchors).map_err(|e| Error::Network {
        what: "resolver setup",
        server: "the system resolver".into(),
        reason: e.to_string(),
    })
}

/// A resolver whose every query goes over TCP streams from `provider`
/// (which refuses UDP). `server` is passed to the provider's connect
/// function; with Tor it names the resolver the exit connects to. With
/// `anchors`, answers must validate (the DNSKEY queries go through the
/// provider too).
pub fn resolver_over_streams<S>(
    provider: StreamProvider<S>,
    server: SocketAddr,
    timeout: Duration,
    anchors: Option<&DnssecAnchors>,
) -> Result<Resolver<StreamProvider<S>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![tcp]);
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    build(config, provider, timeout, anchors).map_err(|e| Error::Network {
        what: "resolver setup",
        server: server.to_string(),
        reason: e.to_string(),
    })
}

/// The TXT records at `name`, each record's character-strings joined
/// without separator ([`onionpkg_trust::announce::join`]).
///
/// An empty list means the name has no TXT record (NXDOMAIN or no data).
/// Records that are not ASCII or too long for an announcement are skipped.
/// TXT records reached through a CNAME are included: the signature binds
/// the name asked for, so a record made for the CNAME's target does not
/// verify here.
///
/// A resolver built with anchors validates: an answer that does not is
/// [`Error::Dnssec`].
pub async fn query_announcement<P: ConnectionProvider>(
    resolver: &Resolver<P>,
    name: &str,
) -> Result<Vec<String>> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let validating = resolver.options().validate;
    let dnssec = |reason: String| Error::Dnssec {
        name: fqdn.trim_end_matches('.').to_string(),
        reason,
    };
    // The resolver bounds each query; this bounds them all together (a
    // validator refusing an answer asks for DS and DNSKEY records many
    // times, up to its depth limit).
    let deadline = resolver.options().timeout * LOOKUP_DEADLINE_QUERIES;
    let looked_up = tokio::time::timeout(deadline, resolver.txt_lookup(fqdn.as_str()))
        .await
        .map_err(|_| Error::Network {
            what: "TXT query",
            server: "the configured name servers".into(),
            reason: format!(
                "no complete answer within {} s (the queries of DNSSEC validation included)",
                deadline.as_secs()
            ),
        })?;
    let lookup = match looked_up {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e @ NetError::Dns(DnsError::DnssecBogus | DnsError::Nsec { .. })) if validating => {
            return Err(dnssec(e.to_string()));
        }
        Err(e) => {
            return Err(Error::Network {
                what: "TXT query",
                server: "the configured name servers".into(),
                reason: e.to_string(),
            });
        }
    };
    if validating && let Some(record) = lookup.answers().iter().find(|r| r.proof != Proof::Secure) {
        return Err(dnssec(format!(
            "the {} record at {} is {}, not secure",
            record.record_type(),
            record.name,
            record.proof
        )));
    }
    let mut out = Vec::new();
    for record in lookup.answers() {
        if let RData::TXT(txt) = &record.data {
            match onionpkg_trust::announce::join(&txt.txt_data) {
                Ok(text) => out.push(text),
                Err(e) => tracing::debug!(error = %e, "skipping a TXT record"),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_only() {
        let conf = "# comment\nsearch example.org\nnameserver 192.0.2.53\n\
                    nameserver  2001:db8::53\nnameserver fe80::1%eth0\noptions ndots:2\n\
                    nameserver\n";
        assert_eq!(
            system_nameservers(conf),
            vec![
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        assert!(system_nameservers("").is_empty());
    }

    #[tokio::test]
    async fn a_system_resolver_needs_a_server() {
        let err = resolver_for_system("search example.org\n", DEFAULT_TIMEOUT, None).unwrap_err();
        assert!(err.to_string().contains("no usable name server"), "{err}");
    }
}
