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
//! # Invariants
//! - hickory-resolver is built without its `system-config` feature, hosts
//!   file lookups are off and the cache is empty: nothing is read from
//!   `/etc/resolv.conf` or `/etc/hosts` unless the caller hands it in, and
//!   every query goes to the network.
//! - A record whose strings are not ASCII or exceed the announcement size
//!   limit is skipped, never truncated or "repaired".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::rr::RData;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::{ConnectionProvider, Resolver};

use crate::err::{Error, Result};
use crate::transport::StreamProvider;

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

/// A resolver asking only `server`, over UDP and (for truncated answers) TCP.
pub fn resolver_for_server(
    server: SocketAddr,
    timeout: Duration,
) -> Result<Resolver<TokioRuntimeProvider>> {
    let ns = NameServerConfig::new(server.ip(), true, udp_and_tcp(server.port()));
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options(timeout))
        .build()
        .map_err(|e| Error::Network {
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
/// and TCP on port 53.
pub fn resolver_for_system(
    resolv_conf: &str,
    timeout: Duration,
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
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options(timeout))
        .build()
        .map_err(|e| Error::Network {
            what: "resolver setup",
            server: "the system resolver".into(),
            reason: e.to_string(),
        })
}

/// A resolver whose every query goes over TCP streams from `provider`
/// (which refuses UDP). `server` is passed to the provider's connect
/// function; with Tor it names the resolver the exit connects to.
pub fn resolver_over_streams<S>(
    provider: StreamProvider<S>,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Resolver<StreamProvider<S>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![tcp]);
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    Resolver::builder_with_config(config, provider)
        .with_options(options(timeout))
        .build()
        .map_err(|e| Error::Network {
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
pub async fn query_announcement<P: ConnectionProvider>(
    resolver: &Resolver<P>,
    name: &str,
) -> Result<Vec<String>> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let lookup = match resolver.txt_lookup(fqdn.as_str()).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Network {
                what: "TXT query",
                server: "the configured name servers".into(),
                reason: e.to_string(),
            });
        }
    };
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
        let err = resolver_for_system("search example.org\n", DEFAULT_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("no usable name server"), "{err}");
    }
}
