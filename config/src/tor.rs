//! The `[tor]` section shared by the fetcher and the mirror: where the
//! embedded Tor client keeps its state, and optionally a private Tor network
//! to use instead of the public one.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::common::de_with;
use crate::load::{Invalid, resolve};

/// The embedded Tor client (arti).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TorConfig {
    /// Tor's persistent state (guards, onion service keys). Default: `tor`
    /// inside the program's `state_dir`.
    pub state_dir: PathBuf,
    /// Tor's directory cache, which may be deleted at any time. Default: `tor`
    /// inside the program's cache directory.
    pub cache_dir: PathBuf,
    /// How long to wait for Tor to bootstrap before giving up. Default: `"120s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub bootstrap_timeout: Duration,
    /// Directory authorities of a private Tor network. Default: none, use the
    /// public Tor network. Must be given together with `fallback`.
    pub authority: Vec<Authority>,
    /// Fallback directory caches of a private Tor network. Default: none, use
    /// the public Tor network. Must be given together with `authority`.
    pub fallback: Vec<Fallback>,
}

impl Default for TorConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::new(),
            cache_dir: PathBuf::new(),
            bootstrap_timeout: Duration::from_secs(120),
            authority: Vec::new(),
            fallback: Vec::new(),
        }
    }
}

/// A directory authority of a private Tor network (`[[tor.authority]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authority {
    /// The authority's nickname. Required.
    pub name: String,
    /// The fingerprint of its v3 authority identity key, 40 hex digits. Required.
    #[serde(deserialize_with = "de_with::hex20")]
    pub v3ident: [u8; 20],
    /// Its directory port, where consensus documents are fetched. Required.
    #[serde(deserialize_with = "de_with::socket_addr")]
    pub dir_addr: SocketAddr,
}

/// A fallback directory cache of a private Tor network (`[[tor.fallback]]`),
/// the relays a client first contacts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The relay's RSA identity fingerprint, 40 hex digits. Required.
    #[serde(deserialize_with = "de_with::hex20")]
    pub rsa_identity: [u8; 20],
    /// The relay's ed25519 identity, 43 characters of base64. Required.
    #[serde(deserialize_with = "de_with::base64_32")]
    pub ed_identity: [u8; 32],
    /// The relay's OR ports; at least one. Required.
    #[serde(deserialize_with = "de_with::socket_addrs")]
    pub orports: Vec<SocketAddr>,
}

impl TorConfig {
    /// Whether a private Tor network is configured instead of the public one.
    pub fn is_private_network(&self) -> bool {
        !self.authority.is_empty()
    }

    /// Checks the section; `prefix` is its dotted path (`tor`).
    pub(crate) fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if self.bootstrap_timeout.is_zero() {
            return Err(Invalid::new(
                format!("{prefix}.bootstrap_timeout"),
                "must be longer than 0s",
            ));
        }
        match (self.authority.is_empty(), self.fallback.is_empty()) {
            (false, true) => {
                return Err(Invalid::new(
                    format!("{prefix}.fallback"),
                    "a private network with authorities needs fallbacks too",
                )
                .near(format!("{prefix}.authority")));
            }
            (true, false) => {
                return Err(Invalid::new(
                    format!("{prefix}.authority"),
                    "a private network with fallbacks needs authorities too",
                )
                .near(format!("{prefix}.fallback")));
            }
            _ => {}
        }
        let mut idents = HashSet::new();
        for (i, a) in self.authority.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(Invalid::new(
                    format!("{prefix}.authority[{i}].name"),
                    "must not be empty",
                ));
            }
            if !idents.insert(a.v3ident) {
                return Err(Invalid::new(
                    format!("{prefix}.authority[{i}].v3ident"),
                    "the same identity is listed twice",
                ));
            }
        }
        for (i, f) in self.fallback.iter().enumerate() {
            if f.orports.is_empty() {
                return Err(Invalid::new(
                    format!("{prefix}.fallback[{i}].orports"),
                    "needs at least one address",
                ));
            }
        }
        Ok(())
    }

    /// Resolves paths against `base` and defaults the directories to `tor`
    /// inside `state_dir` and `cache_dir`.
    pub(crate) fn finish(&mut self, base: &Path, state_dir: &Path, cache_dir: &Path) {
        resolve(base, &mut self.state_dir);
        resolve(base, &mut self.cache_dir);
        if self.state_dir.as_os_str().is_empty() {
            self.state_dir = state_dir.join("tor");
        }
        if self.cache_dir.as_os_str().is_empty() {
            self.cache_dir = cache_dir.join("tor");
        }
    }
}
