//! Connection budgets: one per kind of listener, and on the clearnet one a
//! cap per client address.
//!
//! # Invariants
//! - Onion streams, clearnet connections and metrics connections take
//!   slots from three separate budgets, so filling one (a flood on the
//!   clearnet port, a scraper gone wrong) never refuses the others.
//! - A clearnet address never holds more than `per_client` slots; an IPv6
//!   address counts by its /64 prefix (what one host is usually given), an
//!   IPv4-mapped IPv6 address as the IPv4 address it is.
//! - A slot is given back when its [`Slot`] is dropped, and an address
//!   holding no slot leaves the table: it grows with the connections
//!   open, never with the addresses ever seen.
//! - A refused connection is refused at once, never queued.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::metrics::{Listener, Refusal};
use crate::metrics::{Metrics, OpenConnection};

/// The sizes of the budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSizes {
    /// Clearnet connections at once.
    pub clearnet: usize,
    /// Clearnet connections at once from one client address.
    pub per_client: usize,
    /// Onion streams at once.
    pub onion: usize,
    /// Metrics connections at once.
    pub metrics: usize,
}

/// The three budgets of one mirror.
#[derive(Debug)]
pub struct Budgets {
    clearnet: Budget,
    onion: Budget,
    metrics: Budget,
    per_client: usize,
    held: Mutex<HashMap<ClientKey, usize>>,
    counters: Arc<Metrics>,
}

/// One budget: its slots and their number.
#[derive(Debug)]
struct Budget {
    slots: Arc<Semaphore>,
    size: u32,
}

impl Budget {
    fn new(size: usize) -> Self {
        // Draining acquires a whole budget at once, which takes a u32; the
        // configuration's sizes are u32 already.
        let size = u32::try_from(size.max(1)).unwrap_or(u32::MAX >> 3);
        Self {
            slots: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }
}

/// A connection's slot, its place in the open-connections gauge and, on
/// clearnet, its count against its address; all given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _open: OpenConnection,
    _client: Option<ClientHold>,
}

/// The address whose per-client count a clearnet connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.to_bits()),
                None => Self::V6Prefix(prefix64(v6)),
            },
        }
    }
}

/// The upper 64 bits, the network part of an IPv6 address.
fn prefix64(v6: Ipv6Addr) -> u64 {
    u64::try_from(v6.to_bits() >> 64).unwrap_or(u64::MAX)
}

/// A count held against one address in [`Budgets`]'s table.
#[derive(Debug)]
struct ClientHold {
    budgets: Arc<Budgets>,
    key: ClientKey,
}

impl Drop for ClientHold {
    fn drop(&mut self) {
        let mut held = self
            .budgets
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Budgets {
    /// Budgets of `sizes`, counting into `counters`.
    pub fn new(sizes: BudgetSizes, counters: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            clearnet: Budget::new(sizes.clearnet),
            onion: Budget::new(sizes.onion),
            metrics: Budget::new(sizes.metrics),
            per_client: sizes.per_client.max(1),
            held: Mutex::new(HashMap::new()),
            counters,
        })
    }

    fn budget(&self, listener: Listener) -> &Budget {
        match listener {
            Listener::Clearnet => &self.clearnet,
            Listener::Onion => &self.onion,
            Listener::Metrics => &self.metrics,
        }
    }

    /// A slot of `listener`'s budget for a client at `peer` (counted
    /// against its address on clearnet), or the reason there is none,
    /// counted as refused.
    pub fn try_slot(
        self: &Arc<Self>,
        listener: Listener,
        peer: Option<IpAddr>,
    ) -> Result<Slot, Refusal> {
        let r = self.take(listener, peer);
        if let Err(why) = r {
            self.counters.refused(listener, why);
        }
        r
    }

    fn take(self: &Arc<Self>, listener: Listener, peer: Option<IpAddr>) -> Result<Slot, Refusal> {
        let permit = Arc::clone(&self.budget(listener).slots)
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        let client = match (listener, peer) {
            (Listener::Clearnet, Some(ip)) => {
                let key = ClientKey::of(ip);
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                let n = held.entry(key).or_insert(0);
                if *n >= self.per_client {
                    return Err(Refusal::PerClient);
                }
                *n += 1;
                Some(ClientHold {
                    budgets: Arc::clone(self),
                    key,
                })
            }
            _ => None,
        };
        Ok(Slot {
            _permit: permit,
            _open: self.counters.open(),
            _client: client,
        })
    }

    /// Waits until every slot of every budget is free again (all
    /// connections closed), up to `deadline`; true if they all closed in
    /// time.
    pub async fn drained(&self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, async {
            for b in [&self.clearnet, &self.onion, &self.metrics] {
                if b.slots.acquire_many(b.size).await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(clearnet: usize, per_client: usize, onion: usize, metrics: usize) -> Arc<Budgets> {
        Budgets::new(
            BudgetSizes {
                clearnet,
                per_client,
                onion,
                metrics,
            },
            Arc::new(Metrics::default()),
        )
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_full_clearnet_budget_leaves_the_onion_and_metrics_budgets_free() {
        let b = budgets(3, 3, 2, 1);
        let held: Vec<Slot> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| b.try_slot(Listener::Clearnet, ip(a)).unwrap())
            .collect();
        assert_eq!(
            b.try_slot(Listener::Clearnet, ip("10.0.0.4")).unwrap_err(),
            Refusal::Full
        );
        let onion: Vec<Slot> = (0..2)
            .map(|_| b.try_slot(Listener::Onion, None).unwrap())
            .collect();
        assert_eq!(
            b.try_slot(Listener::Onion, None).unwrap_err(),
            Refusal::Full
        );
        let metrics = b.try_slot(Listener::Metrics, ip("127.0.0.1")).unwrap();
        assert_eq!(
            b.try_slot(Listener::Metrics, ip("127.0.0.1")).unwrap_err(),
            Refusal::Full
        );
        // Neither the onion nor the metrics budget counted against clearnet.
        drop(onion);
        drop(metrics);
        assert_eq!(
            b.try_slot(Listener::Clearnet, ip("10.0.0.4")).unwrap_err(),
            Refusal::Full
        );
        drop(held);
        assert!(b.try_slot(Listener::Clearnet, ip("10.0.0.4")).is_ok());
        let text = b.counters.render();
        assert!(
            text.contains(
                "onionpkg_mirror_connections_refused_total{listener=\"clearnet\",reason=\"full\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "onionpkg_mirror_connections_refused_total{listener=\"onion\",reason=\"full\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_onion_flood_leaves_clearnet_free() {
        let b = budgets(1, 1, 2, 1);
        let _onion: Vec<Slot> = (0..2)
            .map(|_| b.try_slot(Listener::Onion, None).unwrap())
            .collect();
        assert_eq!(
            b.try_slot(Listener::Onion, None).unwrap_err(),
            Refusal::Full
        );
        assert!(b.try_slot(Listener::Clearnet, ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn one_address_gets_per_client_slots_and_others_still_get_theirs() {
        let b = budgets(10, 2, 1, 1);
        let first: Vec<Slot> = (0..2)
            .map(|_| b.try_slot(Listener::Clearnet, ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            b.try_slot(Listener::Clearnet, ip("127.0.0.1")).unwrap_err(),
            Refusal::PerClient
        );
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert_eq!(
            b.try_slot(Listener::Clearnet, ip("::ffff:127.0.0.1"))
                .unwrap_err(),
            Refusal::PerClient
        );
        let _other = b.try_slot(Listener::Clearnet, ip("127.0.0.2")).unwrap();
        // A refusal by address gave its budget slot back.
        assert_eq!(b.clearnet.slots.available_permits(), 7);
        drop(first);
        assert!(b.try_slot(Listener::Clearnet, ip("127.0.0.1")).is_ok());
        // The table holds only addresses with open connections.
        assert_eq!(b.held.lock().unwrap().len(), 1);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_prefix() {
        let b = budgets(10, 1, 1, 1);
        let _a = b
            .try_slot(Listener::Clearnet, ip("2001:db8:1:2::1"))
            .unwrap();
        assert_eq!(
            b.try_slot(Listener::Clearnet, ip("2001:db8:1:2:ffff::9"))
                .unwrap_err(),
            Refusal::PerClient
        );
        assert!(
            b.try_slot(Listener::Clearnet, ip("2001:db8:1:3::1"))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn drained_waits_for_every_budget() {
        let b = budgets(2, 2, 2, 2);
        let onion = b.try_slot(Listener::Onion, None).unwrap();
        assert!(!b.drained(Duration::from_millis(50)).await);
        drop(onion);
        assert!(b.drained(Duration::from_secs(5)).await);
    }
}
