//! The configuration of `onionpkg-announce`, which publishes the signed DNS
//! TXT record announcing the repository's current timestamp.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::common::{DnsName, WebUrl, check_slug, de_with};
use crate::load::{ConfigFile, Invalid, resolve};

/// The longest TTL allowed: a cached announcement delays updates this long.
pub const MAX_TTL: u32 = 86_400;

/// The configuration of `onionpkg-announce`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// The DNS zone the record lives in. Required.
    pub zone: DnsName,
    /// The owner name of the TXT record; `zone` or a name below it. Required.
    pub name: DnsName,
    /// The release channel announced. Default: `"stable"`.
    #[serde(default = "crate::fetcher::default_channel")]
    pub channel: String,
    /// The record's TTL in seconds, 1 to 86400. Default: `300`.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The repository tree whose timestamp metadata is announced. Required.
    pub repo: PathBuf,
    /// Private keys of the timestamp role that sign the announcement; at
    /// least one. Required unless `signer` is set; refused with it.
    #[serde(default)]
    pub timestamp_keys: Vec<PathBuf>,
    /// The Unix socket of `onionpkg-signer`: the announcement is signed
    /// there with the timestamp role's key, and no key file of the role is
    /// read. Needs `signer_key`. Default: none, sign with `timestamp_keys`.
    #[serde(default)]
    pub signer: Option<PathBuf>,
    /// This client's own key file (`onionpkg-repo keygen`), which
    /// authenticates its requests to the signer; the signer's `[[client]]`
    /// lists its public key with the role `announcement`. Unlocked with
    /// `--passphrase-env` when given. Required with `signer`, refused
    /// without it.
    #[serde(default)]
    pub signer_key: Option<PathBuf>,
    /// Answer queries from a small authoritative server. Default: none.
    #[serde(default)]
    pub serve: Option<ServeConfig>,
    /// Push the record to a primary server with RFC 2136 dynamic updates.
    /// Default: none.
    #[serde(default)]
    pub push: Option<PushConfig>,
    /// The main mirrors that must serve a timestamp before it is announced.
    /// Default: none, announce as soon as the repository has it.
    #[serde(default)]
    pub mirrors: Option<MirrorsConfig>,
}

/// `[mirrors]`: announce a serial only once these mirrors serve it, so
/// appliances that check at once do not find every mirror behind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorsConfig {
    /// Base URLs of the mirrors to wait for: `https://`, or plain `http://`
    /// to a loopback address (a mirror on this host). Onion mirrors cannot
    /// be waited for (the announcer has no Tor client). At least one.
    /// Required.
    #[serde(deserialize_with = "de_with::local_base_urls")]
    pub wait_for: Vec<WebUrl>,
    /// Extra CA certificates (PEM) trusted besides the Mozilla roots for
    /// these mirrors. Default: none.
    #[serde(default)]
    pub extra_ca: Option<PathBuf>,
}

fn default_ttl() -> u32 {
    300
}

/// `[serve]`: the built-in authoritative server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Addresses to answer on, over both UDP and TCP; at least one. Required.
    #[serde(deserialize_with = "de_with::socket_addrs")]
    pub listen: Vec<SocketAddr>,
    /// What keeps the server from being used against others. Default: the
    /// defaults of [`ServeLimits`].
    #[serde(default)]
    pub limits: ServeLimits,
}

/// `[serve.limits]`: what keeps the built-in server from being used
/// against others (as a reflector or amplifier of spoofed UDP queries) and
/// from being exhausted.
///
/// Over UDP, responses to one client prefix (an IPv4 /24, an IPv6 /56 by
/// default) are rate-limited with a token bucket of `burst` responses
/// refilled at `responses_per_second`; of the queries over the limit every
/// `slip`-th gets an empty truncated answer (TC=1, so a real client asks
/// again over TCP) and the others none. No UDP response is larger than
/// `udp_amplification` times its query: a larger answer goes out empty with
/// TC=1. TCP, where a source address cannot be spoofed, is not rate-limited
/// but capped: `max_tcp_connections` at once, `max_tcp_per_address` from one
/// address, each closed after `tcp_idle_timeout` without a complete query.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeLimits {
    /// UDP responses per second to one client prefix, 1 to 10000.
    /// Default: `20`.
    pub responses_per_second: u32,
    /// UDP responses one client prefix may get at once (the bucket's
    /// size), `responses_per_second` to 100000. Default: `40`.
    pub burst: u32,
    /// Of the UDP queries over the limit, every `slip`-th gets an empty
    /// truncated answer (TC=1) and the others none; 0: none gets one. 0 to
    /// 10. Default: `2` (as BIND's and Knot's rate limiting).
    pub slip: u32,
    /// The IPv4 prefix length that counts as one client, 8 to 32.
    /// Default: `24`.
    pub ipv4_prefix: u8,
    /// The IPv6 prefix length that counts as one client, 16 to 128.
    /// Default: `56`.
    pub ipv6_prefix: u8,
    /// Client prefixes whose rate is remembered, 16 to 1000000; the one
    /// seen least recently is forgotten first. Default: `10000`.
    pub rate_table_size: u32,
    /// A UDP response is at most this many times the size of its query, 1
    /// to 10; a larger answer goes out empty with TC=1 and the client asks
    /// again over TCP. Default: `3`.
    pub udp_amplification: u32,
    /// TCP connections open at once, over all listeners, 1 to 10000; one
    /// more is closed at once. Default: `64`.
    pub max_tcp_connections: u32,
    /// TCP connections open at once from one address, 1 to
    /// `max_tcp_connections`. Default: `4`.
    pub max_tcp_per_address: u32,
    /// How long a TCP connection may take to send its next complete query
    /// (and to take a response), 1 s to 2 min; then it is closed.
    /// Default: `"10s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub tcp_idle_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            responses_per_second: 20,
            burst: 40,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            rate_table_size: 10_000,
            udp_amplification: 3,
            max_tcp_connections: 64,
            max_tcp_per_address: 4,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeLimits {
    /// Refuses values outside their documented ranges.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        fn within<T: PartialOrd + std::fmt::Display>(
            key: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), Invalid> {
            if v < lo || v > hi {
                return Err(Invalid::new(
                    format!("serve.limits.{key}"),
                    format!("must be from {lo} to {hi}, found {v}"),
                ));
            }
            Ok(())
        }
        within("responses_per_second", self.responses_per_second, 1, 10_000)?;
        within("burst", self.burst, self.responses_per_second, 100_000)?;
        within("slip", self.slip, 0, 10)?;
        within("ipv4_prefix", self.ipv4_prefix, 8, 32)?;
        within("ipv6_prefix", self.ipv6_prefix, 16, 128)?;
        within("rate_table_size", self.rate_table_size, 16, 1_000_000)?;
        within("udp_amplification", self.udp_amplification, 1, 10)?;
        within("max_tcp_connections", self.max_tcp_connections, 1, 10_000)?;
        within(
            "max_tcp_per_address",
            self.max_tcp_per_address,
            1,
            self.max_tcp_connections,
        )?;
        if !(Duration::from_secs(1)..=Duration::from_secs(120)).contains(&self.tcp_idle_timeout) {
            return Err(Invalid::new(
                "serve.limits.tcp_idle_timeout",
                "must be from 1s to 2m",
            ));
        }
        Ok(())
    }
}

/// `[push]`: RFC 2136 dynamic updates signed with TSIG.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The primary server of the zone, such as `192.0.2.53:53`. Required.
    #[serde(deserialize_with = "de_with::socket_addr")]
    pub server: SocketAddr,
    /// The TSIG key file (BIND `key` clause syntax). Required.
    pub tsig_key: PathBuf,
}

impl ConfigFile for AnnounceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if !self.name.is_within(&self.zone) {
            return Err(Invalid::new(
                "name",
                format!("{} is not inside the zone {}", self.name, self.zone),
            ));
        }
        check_slug(&self.channel, 32).map_err(|e| Invalid::new("channel", e))?;
        if !(1..=MAX_TTL).contains(&self.ttl) {
            return Err(Invalid::new(
                "ttl",
                format!("must be from 1 to {MAX_TTL} seconds, found {}", self.ttl),
            ));
        }
        if self.repo.as_os_str().is_empty() {
            return Err(Invalid::new("repo", "must not be empty"));
        }
        match (
            self.timestamp_keys.is_empty(),
            &self.signer,
            &self.signer_key,
        ) {
            (false, None, None) | (true, Some(_), Some(_)) => {}
            (false, Some(_), _) => {
                return Err(Invalid::new(
                    "timestamp_keys",
                    "refused with signer: the announcement is signed through the signer, so \
                     no key file may be named",
                ));
            }
            (_, Some(_), None) => {
                return Err(Invalid::new(
                    "signer_key",
                    "required with signer: the client key that authenticates the requests",
                )
                .near("signer"));
            }
            (_, None, Some(_)) => {
                return Err(Invalid::new("signer_key", "given, but signer is not set"));
            }
            (true, None, None) => {
                return Err(Invalid::new(
                    "timestamp_keys",
                    "needs at least one key file, or signer and signer_key to sign through \
                     onionpkg-signer",
                ));
            }
        }
        for (i, k) in self.timestamp_keys.iter().enumerate() {
            if k.as_os_str().is_empty() {
                return Err(Invalid::new(
                    format!("timestamp_keys[{i}]"),
                    "must not be empty",
                ));
            }
        }
        if let Some(serve) = &self.serve {
            if serve.listen.is_empty() {
                return Err(Invalid::new("serve.listen", "needs at least one address"));
            }
            let mut seen = HashSet::new();
            for (i, a) in serve.listen.iter().enumerate() {
                if !seen.insert(a) {
                    return Err(Invalid::new(format!("serve.listen[{i}]"), "listed twice"));
                }
            }
            serve.limits.validate()?;
        }
        if let Some(push) = &self.push
            && push.tsig_key.as_os_str().is_empty()
        {
            return Err(Invalid::new("push.tsig_key", "must not be empty"));
        }
        if let Some(m) = &self.mirrors {
            if m.wait_for.is_empty() {
                return Err(Invalid::new(
                    "mirrors.wait_for",
                    "needs at least one mirror",
                ));
            }
            if let Some(i) = m.wait_for.iter().position(WebUrl::is_onion) {
                return Err(Invalid::new(
                    format!("mirrors.wait_for[{i}]"),
                    "an onion mirror cannot be waited for: the announcer has no Tor client; \
                     name the mirror's https address",
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self, base: &Path) {
        resolve(base, &mut self.repo);
        for k in &mut self.timestamp_keys {
            resolve(base, k);
        }
        for path in [&mut self.signer, &mut self.signer_key]
            .into_iter()
            .flatten()
        {
            resolve(base, path);
        }
        if let Some(push) = &mut self.push {
            resolve(base, &mut push.tsig_key);
        }
        if let Some(ca) = self.mirrors.as_mut().and_then(|m| m.extra_ca.as_mut()) {
            resolve(base, ca);
        }
    }
}
