//! Response-rate limiting over UDP, per client prefix, as BIND's and Knot's
//! RRL do: a token bucket per prefix, and over the limit either nothing or
//! (every `slip`-th time) an empty truncated answer that sends a real client
//! to TCP.
//!
//! # Invariants
//! - The table never holds more than `rate_table_size` prefixes: a new
//!   prefix on a full table evicts the one seen least recently. An evicted
//!   prefix comes back with a full bucket, which is what it would have had
//!   after being idle for `burst / responses_per_second` seconds anyway,
//!   unless the table is flooded with more fresh prefixes than it holds.
//! - The map's hasher is std's randomly keyed SipHash: the keys are chosen
//!   by whoever sends datagrams, so a predictable hash could be flooded.

use std::collections::hash_map::RandomState;
use std::net::IpAddr;
use std::time::Instant;

use hashlink::LruCache;
use onionpkg_config::announce::ServeLimits;

/// What to do with one UDP query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Answer,
    /// Over the limit: send an empty answer with TC=1 (the client may retry
    /// over TCP).
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

/// A client prefix: the address with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Prefix(IpAddr);

/// The token bucket of one prefix.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Queries over the limit so far, to pick every `slip`-th.
    over: u32,
}

/// The rate limiter of all UDP listeners.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    slip: u32,
    v4_bits: u8,
    v6_bits: u8,
    table: LruCache<Prefix, Bucket, RandomState>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("prefixes", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter with these limits (values out of range are clamped, so a
    /// limit built by hand cannot make it divide by zero or grow unbounded).
    pub fn new(limits: &ServeLimits) -> Self {
        let rate = f64::from(limits.responses_per_second.max(1));
        let capacity = usize::try_from(limits.rate_table_size.clamp(1, 1_000_000)).unwrap_or(1);
        Self {
            rate,
            burst: f64::from(limits.burst).max(1.0),
            slip: limits.slip,
            v4_bits: limits.ipv4_prefix.min(32),
            v6_bits: limits.ipv6_prefix.min(128),
            table: LruCache::with_hasher(capacity, RandomState::new()),
        }
    }

    /// How many prefixes are remembered now.
    pub fn prefixes(&self) -> usize {
        self.table.len()
    }

    /// The prefix `ip` counts under.
    fn prefix(&self, ip: IpAddr) -> Prefix {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.v4_bits))
                    .unwrap_or(0);
                Prefix(IpAddr::V4((bits & mask).into()))
            }
            IpAddr::V6(v6) => {
                // An IPv4-mapped address is the IPv4 client it maps.
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return self.prefix(IpAddr::V4(v4));
                }
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.v6_bits))
                    .unwrap_or(0);
                Prefix(IpAddr::V6((bits & mask).into()))
            }
        }
    }

    /// Takes one response from the bucket of `ip`'s prefix at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        let prefix = self.prefix(ip);
        let (rate, burst) = (self.rate, self.burst);
        let bucket = match self.table.get_mut(&prefix) {
            Some(b) => b,
            None => {
                self.table.insert(
                    prefix,
                    Bucket {
                        tokens: burst,
                        at: now,
                        over: 0,
                    },
                );
                match self.table.get_mut(&prefix) {
                    Some(b) => b,
                    // Only with a capacity of 0, which `new` rules out.
                    None => return Verdict::Drop,
                }
            }
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Answer;
        }
        bucket.over = bucket.over.wrapping_add(1);
        if self.slip != 0 && bucket.over % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(rate: u32, burst: u32, slip: u32, table: u32) -> ServeLimits {
        ServeLimits {
            responses_per_second: rate,
            burst,
            slip,
            rate_table_size: table,
            ..ServeLimits::default()
        }
    }

    #[test]
    fn a_burst_then_the_rate_then_slips() {
        let mut rl = RateLimiter::new(&limits(10, 20, 2, 16));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..30).map(|_| rl.check(ip, t0)).collect();
        assert!(verdicts[..20].iter().all(|v| *v == Verdict::Answer));
        let over = &verdicts[20..];
        assert_eq!(over.iter().filter(|v| **v == Verdict::Slip).count(), 5);
        assert_eq!(over.iter().filter(|v| **v == Verdict::Drop).count(), 5);
        // A neighbour in the same /24 shares the bucket; another /24 not.
        assert_ne!(
            rl.check("192.0.2.200".parse().unwrap(), t0),
            Verdict::Answer
        );
        assert_eq!(rl.check("192.0.3.1".parse().unwrap(), t0), Verdict::Answer);
        // 0.5 s later, five more tokens.
        let later = t0 + Duration::from_millis(500);
        let answered = (0..10)
            .filter(|_| rl.check(ip, later) == Verdict::Answer)
            .count();
        assert_eq!(answered, 5);
    }

    #[test]
    fn ipv6_counts_per_56_and_mapped_ipv4_as_ipv4() {
        let rl = RateLimiter::new(&ServeLimits::default());
        let a = rl.prefix("2001:db8:0:12ff:1::1".parse().unwrap());
        let b = rl.prefix("2001:db8:0:1200::2".parse().unwrap());
        let c = rl.prefix("2001:db8:0:1300::2".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            rl.prefix("::ffff:192.0.2.9".parse().unwrap()),
            rl.prefix("192.0.2.1".parse().unwrap())
        );
    }
}
