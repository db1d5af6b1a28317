//! The embedded Tor client's settings, from the fetcher configuration.

use base64::Engine;
use onionpkg_config::FetcherConfig;

use crate::tor::{Authority, FallbackCache, Network, TorSettings};

/// The Tor client settings of `config`: the public network unless a
/// private one is configured.
pub fn tor_settings(config: &FetcherConfig) -> TorSettings {
    let t = &config.tor;
    let network = if t.authority.is_empty() {
        Network::Public
    } else {
        Network::Custom {
            authorities: t
                .authority
                .iter()
                .map(|a| Authority {
                    v3ident: hex_upper(&a.v3ident),
                    dir_addrs: vec![a.dir_addr],
                })
                .collect(),
            fallbacks: t
                .fallback
                .iter()
                .map(|f| FallbackCache {
                    rsa_identity: hex_upper(&f.rsa_identity),
                    ed_identity: base64::engine::general_purpose::STANDARD_NO_PAD
                        .encode(f.ed_identity),
                    orports: f.orports.clone(),
                })
                .collect(),
            single_host: t.is_private_network(),
            preemptive_ports: Vec::new(),
        }
    };
    TorSettings {
        state_dir: t.state_dir.clone(),
        cache_dir: t.cache_dir.clone(),
        network,
        bootstrap_timeout: t.bootstrap_timeout,
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
