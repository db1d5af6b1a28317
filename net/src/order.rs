//! Transports in the configured order: the first one that can be set up is
//! used, and each one passed over is reported.
//!
//! "Set up" means what can fail before any mirror is asked: the embedded Tor
//! bootstrapping, a Tor daemon's SOCKS port accepting connections. A
//! transport that is up but whose mirrors fail is not passed over here: the
//! mirror fallback handles that, and switching transports mid-run would
//! change what the network sees without the operator's say.
//!
//! # Invariants
//! - Transports are tried strictly in the given order, each once, and none
//!   after the first that opens.
//! - When none can be set up, the error is the main transport's (the one the
//!   operator chose), and every reason is in the passed-over list.

use std::fmt::Display;
use std::future::Future;

/// A transport passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver<K> {
    /// Which transport.
    pub kind: K,
    /// Why it could not be set up.
    pub reason: String,
}

/// The transport set up, and those passed over before it.
#[derive(Debug)]
pub struct Opened<K, T> {
    /// Which transport is used.
    pub kind: K,
    /// The transport itself.
    pub transport: T,
    /// The transports tried before it, in order.
    pub passed_over: Vec<PassedOver<K>>,
}

/// The first of `main` and then `fallbacks` that `open` sets up.
///
/// When none can, `main`'s error is returned together with every
/// transport's reason, in order.
pub async fn open_first<K, T, E, F, Fut>(
    main: K,
    fallbacks: impl IntoIterator<Item = K>,
    mut open: F,
) -> Result<Opened<K, T>, (E, Vec<PassedOver<K>>)>
where
    K: Copy,
    E: Display,
    F: FnMut(K) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let main_error = match open(main).await {
        Ok(transport) => {
            return Ok(Opened {
                kind: main,
                transport,
                passed_over: Vec::new(),
            });
        }
        Err(e) => e,
    };
    let mut passed_over = vec![PassedOver {
        kind: main,
        reason: main_error.to_string(),
    }];
    for kind in fallbacks {
        match open(kind).await {
            Ok(transport) => {
                return Ok(Opened {
                    kind,
                    transport,
                    passed_over,
                });
            }
            Err(e) => passed_over.push(PassedOver {
                kind,
                reason: e.to_string(),
            }),
        }
    }
    Err((main_error, passed_over))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_first_that_opens_is_used_and_earlier_ones_are_reported() {
        let opened = run(open_first("tor", ["socks", "https"], |k| async move {
            if k == "tor" {
                Err("no bootstrap")
            } else {
                Ok(k.len())
            }
        }))
        .unwrap();
        assert_eq!(opened.kind, "socks");
        assert_eq!(opened.transport, 5);
        assert_eq!(
            opened.passed_over,
            vec![PassedOver {
                kind: "tor",
                reason: "no bootstrap".into()
            }]
        );
    }

    #[test]
    fn later_transports_are_not_touched_once_one_opens() {
        let mut tried = Vec::new();
        let opened = run(open_first("tor", ["socks"], |k| {
            tried.push(k);
            async move { Ok::<_, &str>(k) }
        }))
        .unwrap();
        assert_eq!(opened.kind, "tor");
        assert!(opened.passed_over.is_empty());
        assert_eq!(tried, ["tor"]);
    }

    #[test]
    fn when_none_opens_the_first_error_is_returned_with_every_reason() {
        let (e, passed) = run(open_first("tor", ["socks"], |k| async move {
            Err::<(), _>(format!("{k} down"))
        }))
        .unwrap_err();
        assert_eq!(e, "tor down");
        assert_eq!(
            passed.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(),
            ["tor down", "socks down"]
        );
    }
}
