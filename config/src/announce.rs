//! The configuration of `onionpkg-announce`, which publishes the signed DNS
//! TXT record announcing the repository's current timestamp.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
