//! arti configurations for the private network, and the guard that keeps
//! them private.
//!
//! Tests and demos get a [`TorClientConfig`] only from [`arti_config`], which
//! goes through the fetcher's custom-network path and then checks the result
//! with [`check_private`]: every authority and fallback address is loopback,
//! and no identity is one of arti's built-in public ones.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arti_client::TorClientConfig;
use onionpkg_net::tor::{self, Client, Network, TorSettings};
use tor_linkspec::{HasAddrs, HasRelayIdsLegacy};

use super::ports::EXIT_PORTS;
use super::{Error, PrivateNetwork, Result};

/// Default deadline for an arti bootstrap on the private network (it takes
/// well under a second once the network is usable).
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

fn settings(net: &PrivateNetwork, dir: &Path, bootstrap_timeout: Duration) -> TorSettings {
    TorSettings {
        state_dir: dir.join("state"),
        cache_dir: dir.join("cache"),
        network: Network::Custom {
            authorities: net.authorities.clone(),
            fallbacks: net.fallbacks.clone(),
            single_host: true,
            preemptive_ports: vec![EXIT_PORTS.start],
        },
        bootstrap_timeout,
    }
}

/// The arti configuration for a client of `net` keeping its state and cache
/// under `dir`; checked with [`check_private`].
pub fn arti_config(net: &PrivateNetwork, dir: &Path) -> Result<TorClientConfig> {
    let cfg = tor::client_config(&settings(net, dir, BOOTSTRAP_TIMEOUT))?;
    check_private(&cfg)?;
    Ok(cfg)
}

/// Builds and bootstraps an arti client of `net` within `timeout`.
pub async fn bootstrap_arti(
    net: &PrivateNetwork,
    dir: &Path,
    timeout: Duration,
) -> Result<Arc<Client>> {
    let cfg = arti_config(net, dir)?;
    Ok(tor::bootstrap_config(cfg, timeout).await?)
}

/// Fails unless `cfg` names only loopback directory addresses and none of
/// arti's built-in (public) authorities or fallbacks.
pub fn check_private(cfg: &TorClientConfig) -> Result<()> {
    let not_private = |m: String| Error::NotPrivate(m);
    let net = cfg
        .dir_mgr_config()
        .map_err(|e| not_private(e.to_string()))?
        .network;
    let public = TorClientConfig::default()
        .dir_mgr_config()
        .map_err(|e| not_private(e.to_string()))?
        .network;

    let auth = net.authorities();
    if auth.v3idents().is_empty() || net.fallback_caches().is_empty() {
        return Err(not_private("no private authorities or fallbacks".into()));
    }
    let public_v3: HashSet<_> = public.authorities().v3idents().iter().collect();
    if let Some(id) = auth.v3idents().iter().find(|id| public_v3.contains(id)) {
        return Err(not_private(format!("public authority {id}")));
    }
    for (kind, list) in [
        ("upload", auth.uploads()),
        ("download", auth.downloads()),
        ("vote", auth.votes()),
    ] {
        if list.is_empty() {
            return Err(not_private(format!("no {kind} addresses")));
        }
        if let Some(a) = list.iter().flatten().find(|a| !a.ip().is_loopback()) {
            return Err(not_private(format!("{kind} address {a} is not loopback")));
        }
    }
    let public_fb: HashSet<_> = public
        .fallback_caches()
        .iter()
        .map(|f| *f.rsa_identity())
        .collect();
    for fb in net.fallback_caches().iter() {
        if public_fb.contains(fb.rsa_identity()) {
            return Err(not_private(format!(
                "public fallback {}",
                fb.rsa_identity()
            )));
        }
        if let Some(a) = fb.addrs().find(|a| !a.ip().is_loopback()) {
            return Err(not_private(format!("fallback address {a} is not loopback")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onionpkg_net::tor::{Authority, FallbackCache};

    fn fake_net() -> PrivateNetwork {
        let ids = [
            "1111111111111111111111111111111111111111",
            "2222222222222222222222222222222222222222",
            "3333333333333333333333333333333333333333",
        ];
        PrivateNetwork {
            authorities: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Authority {
                    v3ident: (*id).into(),
                    dir_addrs: vec![format!("127.0.0.1:{}", 7001 + i).parse().unwrap()],
                })
                .collect(),
            fallbacks: ids
                .iter()
                .enumerate()
                .map(|(i, id)| FallbackCache {
                    rsa_identity: (*id).into(),
                    ed_identity: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
                    orports: vec![format!("127.0.0.1:{}", 5001 + i).parse().unwrap()],
                })
                .collect(),
        }
    }

    #[test]
    fn config_names_no_public_authority_or_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = arti_config(&fake_net(), dir.path()).unwrap();
        let net = cfg.dir_mgr_config().unwrap().network;
        let dflt = TorClientConfig::default().dir_mgr_config().unwrap().network;
        // The defaults really are public, so the disjointness below means something.
        assert!(dflt.authorities().v3idents().len() >= 5);
        assert!(dflt.fallback_caches().len() >= 10);

        let auth = net.authorities();
        assert_eq!(auth.v3idents().len(), 3);
        let v3: HashSet<_> = auth.v3idents().iter().collect();
        assert!(
            dflt.authorities()
                .v3idents()
                .iter()
                .all(|id| !v3.contains(id))
        );
        for list in [auth.uploads(), auth.downloads(), auth.votes()] {
            assert_eq!(list.len(), 3);
            assert!(list.iter().flatten().all(|a| a.ip().is_loopback()));
        }
        assert_eq!(net.fallback_caches().len(), 3);
        for fb in net.fallback_caches().iter() {
            assert!(fb.addrs().all(|a| a.ip().is_loopback()));
            assert!(
                dflt.fallback_caches()
                    .iter()
                    .all(|d| d.rsa_identity() != fb.rsa_identity())
            );
        }
    }

    #[test]
    fn guard_rejects_public_configs() {
        let dflt = TorClientConfig::default();
        assert!(matches!(check_private(&dflt), Err(Error::NotPrivate(_))));

        // A private-looking network whose authority address is off-host.
        let mut net = fake_net();
        net.authorities[0].dir_addrs = vec!["192.0.2.1:80".parse().unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let e = arti_config(&net, dir.path()).unwrap_err().to_string();
        assert!(e.contains("not loopback"), "{e}");

        // A fallback off-host.
        let mut net = fake_net();
        net.fallbacks[1].orports = vec!["192.0.2.1:443".parse().unwrap()];
        let e = arti_config(&net, dir.path()).unwrap_err().to_string();
        assert!(e.contains("fallback address"), "{e}");
    }

    #[test]
    fn guard_rejects_a_public_authority_identity() {
        let dflt = TorClientConfig::default().dir_mgr_config().unwrap().network;
        let mut net = fake_net();
        net.authorities[2].v3ident = dflt.authorities().v3idents()[0]
            .to_string()
            .replace('$', "");
        let dir = tempfile::tempdir().unwrap();
        let e = arti_config(&net, dir.path()).unwrap_err().to_string();
        assert!(e.contains("public authority"), "{e}");
    }
}
