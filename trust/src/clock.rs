//! The clock policy: what `now` is, and how far it may be trusted.
//!
//! Every expiry and freshness check in onionpkg takes `now` as an argument;
//! this module is the one place that decides its value. It owns:
//!
//! - [`Clock`]: where the time comes from ([`SystemClock`], or a
//!   [`FixedClock`] injected by tests and tools).
//! - [`Tolerance`]: the configured clock skew tolerance, zero by default and
//!   never more than [`MAX_TOLERANCE`]. A bounded tolerance lets an appliance
//!   with a slightly wrong clock keep updating, without letting a large skew
//!   revive long-expired metadata (a freeze attack).
//! - [`TimeFloor`]: the newest signed issue time seen, persisted, so that a
//!   clock that was set back (by accident, or by an attacker who controls NTP)
//!   is detected instead of making stale metadata look fresh.
//! - [`ClockPolicy`]: the three together; [`ClockPolicy::now`] refuses a clock
//!   that reads earlier than the floor by more than the tolerance.
//!
//! # Invariants
//! - A [`Tolerance`] is never negative and never above [`MAX_TOLERANCE`].
//! - A [`TimeFloor`] only moves up, and is on disk before [`TimeFloor::raise`]
//!   returns `Ok`. A damaged floor file is an error, never silently dropped:
//!   dropping it would remove the protection it exists for.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use onionpkg_core::{ErrorKind, HasKind};

use crate::{Error, Result};

/// The largest skew tolerance that may be configured: one hour.
///
/// Tor itself stops working when the clock is more than about an hour slow,
/// and every extra hour is an hour longer that withheld metadata is accepted.
pub const MAX_TOLERANCE: SignedDuration = SignedDuration::from_hours(1);

/// Why the clock, or the clock configuration, cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The clock reads earlier than signed metadata already seen: it is wrong,
    /// or it was set back.
    #[error(
        "the {clock} reads {now}, but signed metadata issued at {floor} was already seen: \
         the {clock} is behind; set it right (NTP) and retry"
    )]
    BehindFloor {
        /// The clock's name, such as "system clock".
        clock: String,
        /// What the clock reads.
        now: Timestamp,
        /// The newest signed issue time seen.
        floor: Timestamp,
    },
    /// A skew tolerance above [`MAX_TOLERANCE`] was asked for.
    #[error("clock skew tolerance {requested} is more than the maximum {max}")]
    ToleranceTooLarge {
        /// The requested tolerance.
        requested: SignedDuration,
        /// The maximum, [`MAX_TOLERANCE`].
        max: SignedDuration,
    },
    /// A negative skew tolerance was asked for.
    #[error("clock skew tolerance {0} is negative")]
    NegativeTolerance(SignedDuration),
    /// The time floor file exists but cannot be used.
    #[error(
        "time floor file {path} is damaged ({reason}); refusing to drop the floor: \
         restore the file, or remove it to trust the clock again"
    )]
    CorruptFloor {
        /// The floor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl HasKind for ClockError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BehindFloor { .. } => ErrorKind::ClockBehind,
            Self::ToleranceTooLarge { .. } | Self::NegativeTolerance(_) => ErrorKind::BadConfig,
            Self::CorruptFloor { .. } => ErrorKind::BadInput,
        }
    }
}

/// A source of the current time.
pub trait Clock: std::fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A name for messages, such as "system clock".
    fn name(&self) -> &str;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn name(&self) -> &str {
        "system clock"
    }
}

/// A clock stopped at a given time, for tests and for tools that evaluate
/// metadata as of a chosen moment.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(Timestamp);

impl FixedClock {
    /// A clock that always reads `at`.
    pub fn new(at: Timestamp) -> Self {
        Self(at)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
    fn name(&self) -> &str {
        "fixed clock"
    }
}

/// A clock skew tolerance: between zero and [`MAX_TOLERANCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tolerance(SignedDuration);

impl Tolerance {
    /// No tolerance: the default.
    pub const ZERO: Self = Self(SignedDuration::ZERO);

    /// A tolerance; refuses a negative one or one above [`MAX_TOLERANCE`].
    pub fn new(d: SignedDuration) -> Result<Self, ClockError> {
        if d.is_negative() {
            return Err(ClockError::NegativeTolerance(d));
        }
        if d > MAX_TOLERANCE {
            return Err(ClockError::ToleranceTooLarge {
                requested: d,
                max: MAX_TOLERANCE,
            });
        }
        Ok(Self(d))
    }

    /// A tolerance of `secs` seconds (as a configuration file gives it).
    pub fn from_secs(secs: u64) -> Result<Self, ClockError> {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        Self::new(SignedDuration::from_secs(secs))
    }

    /// The tolerance as a duration.
    pub fn get(self) -> SignedDuration {
        self.0
    }

    /// Whether something that expires at `expires` is expired at `now`:
    /// iff `now > expires + tolerance`.
    pub fn is_expired(self, expires: Timestamp, now: Timestamp) -> bool {
        now.duration_since(expires) > self.0
    }

    /// Whether `t` lies after `now` by more than the tolerance (a signed time
    /// "from the future": the clock is slow, or the signer's clock was fast).
    pub fn is_future(self, t: Timestamp, now: Timestamp) -> bool {
        t.duration_since(now) > self.0
    }

    /// `now - tolerance`: the time to hand to expiry checks that take no
    /// tolerance of their own, such as `sigstore-tuf`'s.
    pub fn expiry_now(self, now: Timestamp) -> Timestamp {
        // Subtracting a duration never fails; it saturates at the minimum.
        now.saturating_sub(self.0).unwrap_or(Timestamp::MIN)
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

/// The on-disk form of the time floor.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorFile {
    floor: Timestamp,
}

/// The newest signed issue time seen, optionally persisted in a small JSON
/// file (`{"floor": "2026-11-20T10:00:00Z"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFloor {
    path: Option<PathBuf>,
    floor: Option<Timestamp>,
}

impl TimeFloor {
    /// A floor kept in memory only, starting empty.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            floor: None,
        }
    }

    /// Loads the floor from `path`. A missing file means no floor yet; a file
    /// that cannot be read or parsed is an error.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: Some(path),
                    floor: None,
                });
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        let file: FloorFile =
            serde_json::from_slice(&bytes).map_err(|e| ClockError::CorruptFloor {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path: Some(path),
            floor: Some(file.floor),
        })
    }

    /// The floor, if any signed time was seen yet.
    pub fn get(&self) -> Option<Timestamp> {
        self.floor
    }

    /// The file the floor is kept in, if it is persisted.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Raises the floor to `t` if `t` is newer, and persists it. Returns
    /// whether the floor moved; an older `t` changes nothing.
    ///
    /// Only pass issue times of verified signed data that was not issued in
    /// the future (verification refuses that): the floor is trusted from then
    /// on, and a floor ahead of the true time would refuse a correct clock.
    pub fn raise(&mut self, t: Timestamp) -> Result<bool> {
        if self.floor.is_some_and(|f| f >= t) {
            return Ok(false);
        }
        if let Some(path) = &self.path {
            let mut bytes = serde_json::to_vec(&FloorFile { floor: t }).map_err(|e| {
                ClockError::CorruptFloor {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            bytes.push(b'\n');
            crate::util::write_atomic(path, &bytes, None)?;
        }
        // Raised only once on disk, so memory and file never disagree.
        self.floor = Some(t);
        Ok(true)
    }
}

/// The clock policy: a clock, a skew tolerance and a signed time floor.
#[derive(Debug)]
pub struct ClockPolicy {
    clock: Box<dyn Clock>,
    tolerance: Tolerance,
    floor: TimeFloor,
}

impl ClockPolicy {
    /// A policy from its parts.
    pub fn new(clock: Box<dyn Clock>, tolerance: Tolerance, floor: TimeFloor) -> Self {
        Self {
            clock,
            tolerance,
            floor,
        }
    }

    /// The default policy: the system clock, no tolerance, no floor.
    pub fn system() -> Self {
        Self::new(
            Box::new(SystemClock),
            Tolerance::ZERO,
            TimeFloor::in_memory(),
        )
    }

    /// The current time, checked against the floor.
    ///
    /// Refuses with [`ClockError::BehindFloor`] when the clock reads earlier
    /// than the floor by more than the tolerance: such a clock would make
    /// expired metadata look valid.
    pub fn now(&self) -> Result<Timestamp, ClockError> {
        let now = self.clock.now();
        match self.floor.get() {
            Some(floor) if self.tolerance.is_future(floor, now) => Err(ClockError::BehindFloor {
                clock: self.clock.name().to_string(),
                now,
                floor,
            }),
            _ => Ok(now),
        }
    }

    /// Whether something that expires at `expires` is expired at `now`,
    /// honouring the tolerance.
    pub fn is_expired(&self, expires: Timestamp, now: Timestamp) -> bool {
        self.tolerance.is_expired(expires, now)
    }

    /// `now - tolerance`, for expiry checks that take no tolerance of their own.
    pub fn expiry_now(&self, now: Timestamp) -> Timestamp {
        self.tolerance.expiry_now(now)
    }

    /// The skew tolerance.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    /// The clock's name, for messages.
    pub fn clock_name(&self) -> &str {
        self.clock.name()
    }

    /// The signed time floor.
    pub fn floor(&self) -> &TimeFloor {
        &self.floor
    }

    /// Raises the floor to a verified signed issue time (see
    /// [`TimeFloor::raise`]).
    pub fn raise_floor(&mut self, t: Timestamp) -> Result<bool> {
        self.floor.raise(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn fixed(s: &str) -> Box<dyn Clock> {
        Box::new(FixedClock::new(ts(s)))
    }

    #[test]
    fn expiry_follows_the_injected_clock() {
        let expires = ts("2026-12-01T00:00:00Z");
        let before = ClockPolicy::new(
            fixed("2026-11-30T23:59:59Z"),
            Tolerance::ZERO,
            TimeFloor::in_memory(),
        );
        let now = before.now().unwrap();
        assert!(!before.is_expired(expires, now));
        // At the expiry instant itself the data is still valid.
        assert!(!before.is_expired(expires, expires));

        let after = ClockPolicy::new(
            fixed("2026-12-01T00:00:01Z"),
            Tolerance::ZERO,
            TimeFloor::in_memory(),
        );
        let now = after.now().unwrap();
        assert!(after.is_expired(expires, now));
        assert_eq!(after.expiry_now(now), now);
    }

    #[test]
    fn tolerance_is_honoured() {
        let expires = ts("2026-12-01T00:00:00Z");
        let tol = Tolerance::new(SignedDuration::from_mins(5)).unwrap();
        let policy = ClockPolicy::new(fixed("2026-12-01T00:04:00Z"), tol, TimeFloor::in_memory());
        let now = policy.now().unwrap();
        assert!(!policy.is_expired(expires, now));
        assert_eq!(policy.expiry_now(now), ts("2026-11-30T23:59:00Z"));
        assert!(policy.is_expired(expires, ts("2026-12-01T00:05:01Z")));
        assert!(!policy.is_expired(expires, ts("2026-12-01T00:05:00Z")));
        assert_eq!(policy.tolerance().get(), SignedDuration::from_mins(5));
    }

    #[test]
    fn tolerance_is_bounded() {
        assert!(Tolerance::new(MAX_TOLERANCE).is_ok());
        let err = Tolerance::new(MAX_TOLERANCE + SignedDuration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ClockError::ToleranceTooLarge { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::BadConfig);
        let err = Tolerance::from_secs(u64::MAX).unwrap_err();
        assert!(matches!(err, ClockError::ToleranceTooLarge { .. }), "{err}");
        let err = Tolerance::new(SignedDuration::from_secs(-1)).unwrap_err();
        assert!(matches!(err, ClockError::NegativeTolerance(_)), "{err}");
        assert_eq!(Tolerance::default(), Tolerance::ZERO);
        assert_eq!(Tolerance::from_secs(3600).unwrap().get(), MAX_TOLERANCE);
    }

    #[test]
    fn floor_persists_and_refuses_a_clock_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("time-floor.json");
        let seen = ts("2026-11-20T10:00:00Z");

        let mut first = ClockPolicy::new(
            fixed("2026-11-20T10:05:00Z"),
            Tolerance::ZERO,
            TimeFloor::load(&path).unwrap(),
        );
        assert_eq!(first.floor().get(), None);
        assert!(first.raise_floor(seen).unwrap());
        assert!(path.exists());

        // A new run, with a clock that was set back.
        let second = ClockPolicy::new(
            fixed("2026-01-01T00:00:00Z"),
            Tolerance::ZERO,
            TimeFloor::load(&path).unwrap(),
        );
        assert_eq!(second.floor().get(), Some(seen));
        assert_eq!(second.floor().path(), Some(path.as_path()));
        let err = second.now().unwrap_err();
        assert!(matches!(err, ClockError::BehindFloor { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::ClockBehind);
        assert_eq!(
            err.to_string(),
            "the fixed clock reads 2026-01-01T00:00:00Z, but signed metadata issued at \
             2026-11-20T10:00:00Z was already seen: the fixed clock is behind; set it right \
             (NTP) and retry"
        );
    }

    #[test]
    fn floor_respects_the_tolerance() {
        let mut floor = TimeFloor::in_memory();
        floor.raise(ts("2026-11-20T10:00:00Z")).unwrap();
        let tol = Tolerance::new(SignedDuration::from_mins(10)).unwrap();
        let within = ClockPolicy::new(fixed("2026-11-20T09:50:00Z"), tol, floor.clone());
        assert_eq!(within.now().unwrap(), ts("2026-11-20T09:50:00Z"));
        let beyond = ClockPolicy::new(fixed("2026-11-20T09:49:59Z"), tol, floor);
        assert!(matches!(beyond.now(), Err(ClockError::BehindFloor { .. })));
    }

    #[test]
    fn floor_is_never_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor.json");
        let mut floor = TimeFloor::load(&path).unwrap();
        assert!(floor.raise(ts("2026-11-20T10:00:00Z")).unwrap());
        assert!(!floor.raise(ts("2026-11-19T10:00:00Z")).unwrap());
        assert!(!floor.raise(ts("2026-11-20T10:00:00Z")).unwrap());
        assert_eq!(floor.get(), Some(ts("2026-11-20T10:00:00Z")));
        assert_eq!(
            TimeFloor::load(&path).unwrap().get(),
            Some(ts("2026-11-20T10:00:00Z"))
        );
        assert!(floor.raise(ts("2026-11-21T00:00:00Z")).unwrap());
        assert_eq!(
            TimeFloor::load(&path).unwrap().get(),
            Some(ts("2026-11-21T00:00:00Z"))
        );
    }

    #[test]
    fn corrupt_floor_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor.json");
        for bad in [
            &b""[..],
            b"{",
            b"{\"floor\": \"yesterday\"}",
            b"{\"floor\": \"2026-11-20T10:00:00Z\", \"extra\": 1}",
            b"\xff\xfe",
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = TimeFloor::load(&path).unwrap_err();
            assert!(
                matches!(err, Error::Clock(ClockError::CorruptFloor { .. })),
                "{err}"
            );
        }
    }

    #[test]
    fn system_clock_is_named() {
        let policy = ClockPolicy::system();
        assert_eq!(policy.clock_name(), "system clock");
        assert_eq!(policy.tolerance(), Tolerance::ZERO);
    }
}
