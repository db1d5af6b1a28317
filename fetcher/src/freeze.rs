//! Freeze detection: is what a mirror serves as new as the signed DNS
//! announcement says it should be?
//!
//! The announcement's serial is a floor for the timestamp version a mirror
//! must serve. A floor is only worth what the keys that signed it are worth,
//! and a floor no mirror ever reaches must not stop updates for longer than
//! the metadata's own freeze bound, so [`judge`] weighs a mirror's fresh,
//! verified timestamp against the floor in this order:
//!
//! 1. At the announced serial, the timestamp's SHA-256 must be the
//!    announced hash: a different one is equivocation (two timestamps of
//!    one version, both signed), and the mirror is refused.
//! 2. At or above the floor: fresh.
//! 3. Below the floor, while the timestamp trusted before this refresh has
//!    expired: the floor lapses. The mirror's timestamp is verified and
//!    unexpired, so TUF's own freeze bound (one timestamp lifetime) holds;
//!    a serial that no mirror served during a whole lifetime of the trusted
//!    timestamp was never going to be served, and keeping it would block
//!    updates for good (a stolen timestamp key signing `n=2^64-1`).
//! 4. Below the floor, within the grace period after the announcement was
//!    signed: not yet synced. The mirror is skipped but not blamed, since
//!    mirrors sync on their own schedule.
//! 5. Below the floor after the grace period: frozen. The mirror is
//!    skipped and cooled down.
//!
//! The floor itself is dropped by the announcement state when a newer
//! trusted root rotates the keys that signed it (fast-forward recovery);
//! what reaches [`judge`] is a floor the current timestamp keys vouch for.
//!
//! # Invariants
//! - [`Verdict::Fresh`] and [`Verdict::Lapsed`] are the only verdicts that
//!   let a mirror's metadata be used.
//! - Nothing here reads a clock: `now` comes from the clock policy.

use jiff::{SignedDuration, Timestamp};

/// What the announcement vouched for: the floor a mirror is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    /// The announced timestamp version.
    pub serial: u64,
    /// When the announcement was signed.
    pub issued: Timestamp,
    /// SHA-256 of the announced `timestamp.json`, when known (a floor kept
    /// from an older state file has none).
    pub timestamp_hash: Option<[u8; 32]>,
}

/// What a mirror served, verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The version of its `timestamp.json`.
    pub version: u64,
    /// SHA-256 of the bytes of its `timestamp.json`, when they were seen.
    pub hash: Option<[u8; 32]>,
}

/// How a mirror's fresh metadata compares with the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// As new as announced, or no announcement: use it.
    Fresh,
    /// Below a floor that lapsed: use it, and drop the floor.
    Lapsed {
        /// The version served.
        served: u64,
        /// The floor dropped.
        announced: u64,
    },
    /// Below the floor, announced recently: try another mirror, blame none.
    NotYetSynced {
        /// The version served.
        served: u64,
        /// The announced serial.
        announced: u64,
    },
    /// Below the floor for longer than the grace period: a frozen or stale
    /// mirror.
    Frozen {
        /// The version served.
        served: u64,
        /// The announced serial.
        announced: u64,
    },
    /// The announced version with another hash: two signed timestamps of
    /// one version.
    Equivocation {
        /// The version.
        version: u64,
    },
}

/// Judges what a mirror served against the announcement's `floor`.
///
/// `trusted_expired` says whether the timestamp trusted before this refresh
/// had expired (false when none was trusted); `grace` is how long after an
/// announcement was signed a mirror may still lag behind it.
pub fn judge(
    served: Served,
    floor: Option<&Floor>,
    trusted_expired: bool,
    now: Timestamp,
    grace: SignedDuration,
) -> Verdict {
    let Some(floor) = floor else {
        return Verdict::Fresh;
    };
    if served.version == floor.serial
        && let (Some(got), Some(announced)) = (served.hash, floor.timestamp_hash)
        && got != announced
    {
        return Verdict::Equivocation {
            version: served.version,
        };
    }
    if served.version >= floor.serial {
        return Verdict::Fresh;
    }
    let (served, announced) = (served.version, floor.serial);
    if trusted_expired {
        return Verdict::Lapsed { served, announced };
    }
    if now.duration_since(floor.issued) < grace {
        return Verdict::NotYetSynced { served, announced };
    }
    Verdict::Frozen { served, announced }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    fn floor(serial: u64) -> Floor {
        Floor {
            serial,
            issued: at("2026-12-01T10:00:00Z"),
            timestamp_hash: Some([7; 32]),
        }
    }

    fn served(version: u64, hash: Option<[u8; 32]>) -> Served {
        Served { version, hash }
    }

    #[test]
    fn without_a_floor_everything_is_fresh() {
        let v = judge(
            served(1, None),
            None,
            false,
            at("2026-12-01T10:00:00Z"),
            HOUR,
        );
        assert_eq!(v, Verdict::Fresh);
    }

    #[test]
    fn at_or_above_the_floor_is_fresh_unless_the_hash_differs() {
        let now = at("2026-12-01T12:00:00Z");
        let f = floor(5);
        assert_eq!(
            judge(served(5, Some([7; 32])), Some(&f), false, now, HOUR),
            Verdict::Fresh
        );
        assert_eq!(
            judge(served(6, Some([1; 32])), Some(&f), false, now, HOUR),
            Verdict::Fresh
        );
        assert_eq!(
            judge(served(5, Some([1; 32])), Some(&f), false, now, HOUR),
            Verdict::Equivocation { version: 5 }
        );
        // Equivocation wins over a lapsed floor: both timestamps are signed.
        assert_eq!(
            judge(served(5, Some([1; 32])), Some(&f), true, now, HOUR),
            Verdict::Equivocation { version: 5 }
        );
    }

    #[test]
    fn below_the_floor_grace_then_frozen() {
        let f = floor(5);
        let soon = at("2026-12-01T10:30:00Z");
        let late = at("2026-12-01T11:00:01Z");
        assert_eq!(
            judge(served(4, None), Some(&f), false, soon, HOUR),
            Verdict::NotYetSynced {
                served: 4,
                announced: 5
            }
        );
        assert_eq!(
            judge(served(4, None), Some(&f), false, late, HOUR),
            Verdict::Frozen {
                served: 4,
                announced: 5
            }
        );
        // No grace at all: frozen at once.
        assert_eq!(
            judge(served(4, None), Some(&f), false, soon, SignedDuration::ZERO),
            Verdict::Frozen {
                served: 4,
                announced: 5
            }
        );
    }

    #[test]
    fn a_floor_lapses_once_the_trusted_timestamp_expired() {
        let f = floor(u64::MAX);
        let soon = at("2026-12-01T10:00:01Z");
        assert_eq!(
            judge(served(9, None), Some(&f), true, soon, HOUR),
            Verdict::Lapsed {
                served: 9,
                announced: u64::MAX
            }
        );
    }
}
