//! Which mirrors to try, in which order.
//!
//! The candidates are the mirrors of the verified, cached mirror list (while
//! it has not expired) and the configured main mirrors. List mirrors come
//! first, in a weighted random order (so load spreads by the signed
//! weights), then the main mirrors in configured order. Through Tor, onion
//! addresses come before clearnet ones; direct HTTPS skips onion and
//! plain-http addresses. Mirrors in their cooldown go last: tried only when
//! every other one has failed.

use jiff::Timestamp;
use onionpkg_core::url::WebUrl;
use onionpkg_trust::mirrors::MirrorList;
use rand::Rng;

use crate::state::Health;

/// A mirror to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name in the mirror list, or `main` for a configured main mirror.
    pub name: String,
    /// Its base URL.
    pub url: WebUrl,
}

/// Orders the candidates. `list` is the cached list if it is still fresh.
pub fn candidates(
    list: Option<&MirrorList>,
    main: &[WebUrl],
    via_tor: bool,
    health: &Health,
    now: Timestamp,
    rng: &mut impl Rng,
) -> Vec<Candidate> {
    let mut pool: Vec<(Candidate, u32)> = Vec::new();
    if let Some(list) = list {
        for m in list.mirrors() {
            let onion = m.onion().cloned();
            let clear = m.clearnet().cloned();
            let url = if via_tor { onion.or(clear) } else { clear };
            if let Some(url) = url {
                pool.push((
                    Candidate {
                        name: m.name().to_owned(),
                        url,
                    },
                    u32::from(m.weight()).max(1),
                ));
            }
        }
    }
    let mut out = Vec::new();
    // Weighted sampling without replacement.
    while !pool.is_empty() {
        let total: u32 = pool.iter().map(|(_, w)| *w).sum();
        let mut pick = rng.gen_range(0..total);
        let mut idx = 0;
        for (i, (_, w)) in pool.iter().enumerate() {
            if pick < *w {
                idx = i;
                break;
            }
            pick -= *w;
        }
        out.push(pool.swap_remove(idx).0);
    }
    for url in main {
        out.push(Candidate {
            name: "main".to_owned(),
            url: url.clone(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.url.clone()));
    out.retain(|c| via_tor || (c.url.is_https() && !c.url.is_onion()));
    if via_tor {
        // Stable: keeps the weighted order within each group.
        out.sort_by_key(|c| !c.url.is_onion());
    }
    out.sort_by_key(|c| health.is_bad(c.url.as_str(), now).is_some());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const ONION: &str = "http://oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd.onion/";

    #[test]
    fn orders_by_transport_and_health() {
        let now: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let main: Vec<WebUrl> = ["https://a.example/x", ONION, "https://b.example/"]
            .iter()
            .map(|u| WebUrl::parse_base(u).unwrap())
            .collect();
        let mut health = Health::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let urls = |c: Vec<Candidate>| {
            c.into_iter()
                .map(|c| c.url.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls(candidates(None, &main, true, &health, now, &mut rng)),
            [ONION, "https://a.example/x/", "https://b.example/"]
        );
        assert_eq!(
            urls(candidates(None, &main, false, &health, now, &mut rng)),
            ["https://a.example/x/", "https://b.example/"]
        );
        health.mark_bad(
            "https://a.example/x/",
            "2026-11-20T13:00:00Z".parse().unwrap(),
            "tampered".into(),
        );
        assert_eq!(
            urls(candidates(None, &main, false, &health, now, &mut rng)),
            ["https://b.example/", "https://a.example/x/"]
        );
        // The cooldown ends.
        let later: Timestamp = "2026-11-20T14:00:00Z".parse().unwrap();
        assert_eq!(
            urls(candidates(None, &main, false, &health, later, &mut rng)),
            ["https://a.example/x/", "https://b.example/"]
        );
    }
}
