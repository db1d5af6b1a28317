//! The version floor of a feed: the newest version time accepted so far,
//! below which no version is accepted again, so neither an upstream, nor
//! anyone in its path, nor a replay of an old validly signed file can make
//! the distro sign last year's blocklist as new.
//!
//! A version's time comes from what vouches for it: the trusted comment of
//! its minisign signature (`timestamp:` seconds, covered by the signature's
//! global signature, read only once the signature verified), or else a
//! date the format carries inside the content (a libloc database's signed
//! `created_at`, a MaxMind DB's `build_epoch`, a Tor GeoIP file's
//! `Generated` comment; [`TimeSource`] says which;
//! a format with a date of its own adds a variant and has its check return
//! it). Formats with neither have no floor.
//!
//! # Invariants
//! - The floor never goes down: [`judge`] returns a new floor only when it
//!   is later than the old one, and the store refuses to write a lower one.
//! - A version older than the floor is a rollback; one of the floor's time
//!   with other content a replay; one without a time, once the feed has a
//!   floor, could be either. All are refused, and the last good version
//!   stays.
//! - No version time more than [`MAX_AHEAD`] ahead of the local clock is
//!   accepted: it would raise the floor past versions not made yet, and so
//!   refuse the upstream's next real versions.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::FeedError;

/// How far ahead of the local clock a version time may be (clock skew).
pub const MAX_AHEAD: SignedDuration = SignedDuration::from_hours(1);

/// Where a version time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TimeSource {
    /// The `timestamp:` of the minisign signature's trusted comment.
    MinisignTrustedComment,
    /// The `build_epoch` of a MaxMind DB's metadata.
    MmdbBuildEpoch,
    /// The `created_at` of a libloc database's header, covered by its
    /// signature.
    LiblocCreatedAt,
    /// The `# Generated:` date in a Tor GeoIP file's leading comments.
    TorGeoipGenerated,
}

impl std::fmt::Display for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MinisignTrustedComment => "minisign trusted comment",
            Self::MmdbBuildEpoch => "mmdb build_epoch",
            Self::LiblocCreatedAt => "libloc created_at, signed",
            Self::TorGeoipGenerated => "Tor GeoIP Generated comment",
        })
    }
}

/// When a version was made, by what vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTime {
    /// The time, to the second.
    pub time: Timestamp,
    /// Where it comes from.
    pub from: TimeSource,
}

/// The newest version time accepted for a feed, and the content it was
/// accepted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    /// The newest version time accepted.
    pub time: Timestamp,
    /// Where that time came from.
    pub from: TimeSource,
    /// SHA-256 (hex) of the content accepted with that time.
    pub sha256: String,
}

/// The time in a minisign trusted comment (`timestamp:SECONDS`, tab
/// separated from the other fields, as `minisign -S` writes it); `None`
/// when it has none. Call only for a signature that verified: only then
/// is the comment the signer's.
pub fn trusted_comment_time(comment: &str) -> Result<Option<VersionTime>, FeedError> {
    let Some(value) = comment
        .split('\t')
        .find_map(|field| field.strip_prefix("timestamp:"))
    else {
        return Ok(None);
    };
    let shown: String = value.chars().take(40).collect();
    let time = value
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or_else(|| {
            FeedError::Signature(format!(
                "the trusted comment's timestamp {shown:?} is not a time in Unix seconds"
            ))
        })?;
    Ok(Some(VersionTime {
        time,
        from: TimeSource::MinisignTrustedComment,
    }))
}

/// Whether content with hash `sha256` and version time `new` may be
/// accepted over `floor` at `now`: the floor to keep from then on (`None`:
/// the old one stays, or there is none), or why not.
pub fn judge(
    floor: Option<&Floor>,
    new: Option<&VersionTime>,
    sha256: &str,
    now: Timestamp,
) -> Result<Option<Floor>, FeedError> {
    if let Some(v) = new
        && v.time > now + MAX_AHEAD
    {
        return Err(FeedError::FromTheFuture {
            version: v.time,
            from: v.from,
            now,
        });
    }
    let raised = |v: &VersionTime| Floor {
        time: v.time,
        from: v.from,
        sha256: sha256.to_owned(),
    };
    match (floor, new) {
        (None, None) => Ok(None),
        (None, Some(v)) => Ok(Some(raised(v))),
        // The accepted content itself, whatever its signature's age: no
        // rollback, and the floor only ever goes up.
        (Some(f), v) if f.sha256 == sha256 => Ok(v.filter(|v| v.time > f.time).map(raised)),
        (Some(f), None) => Err(FeedError::Undated { floor: f.time }),
        (Some(f), Some(v)) if v.time < f.time => Err(FeedError::Rollback {
            version: v.time,
            from: v.from,
            floor: f.time,
        }),
        (Some(f), Some(v)) if v.time == f.time => Err(FeedError::Replay {
            version: v.time,
            from: v.from,
            sha256: sha256.to_owned(),
            accepted: f.sha256.clone(),
        }),
        (Some(_), Some(v)) => Ok(Some(raised(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn signed(s: i64) -> VersionTime {
        VersionTime {
            time: at(s),
            from: TimeSource::MinisignTrustedComment,
        }
    }

    #[test]
    fn trusted_comments() {
        let t = trusted_comment_time("timestamp:1795000000\tfile:drop.txt\thashed").unwrap();
        assert_eq!(t, Some(signed(1_795_000_000)));
        // The first timestamp counts, not one in a file name after it.
        let t = trusted_comment_time("timestamp:5\tfile:a\ttimestamp:9").unwrap();
        assert_eq!(t, Some(signed(5)));
        assert_eq!(trusted_comment_time("release 2026-11").unwrap(), None);
        for bad in [
            "timestamp:soon",
            "timestamp:",
            "timestamp:99999999999999999",
        ] {
            let e = trusted_comment_time(bad).unwrap_err();
            assert!(matches!(e, FeedError::Signature(_)), "{bad}: {e}");
            assert!(e.to_string().contains("not a time in Unix seconds"), "{e}");
        }
    }

    #[test]
    fn the_floor_only_goes_up() {
        let now = at(2_000_000_000);
        let floor = Floor {
            time: at(100),
            from: TimeSource::MinisignTrustedComment,
            sha256: "a".into(),
        };
        let f = Some(&floor);
        // Newer: the new floor.
        let up = judge(f, Some(&signed(200)), "b", now).unwrap().unwrap();
        assert_eq!((up.time, up.sha256.as_str()), (at(200), "b"));
        // Older: a rollback naming both times.
        let e = judge(f, Some(&signed(50)), "b", now).unwrap_err();
        assert!(matches!(e, FeedError::Rollback { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&at(50).to_string()) && msg.contains(&at(100).to_string()));
        // The same time, other content: a replay.
        let e = judge(f, Some(&signed(100)), "b", now).unwrap_err();
        assert!(matches!(e, FeedError::Replay { .. }), "{e}");
        // No time, once there is a floor.
        let e = judge(f, None, "b", now).unwrap_err();
        assert!(matches!(e, FeedError::Undated { .. }), "{e}");
        // The accepted content: fine at any time; the floor never drops.
        assert_eq!(judge(f, Some(&signed(50)), "a", now).unwrap(), None);
        assert_eq!(judge(f, None, "a", now).unwrap(), None);
        assert_eq!(judge(f, Some(&signed(100)), "a", now).unwrap(), None);
        let same = judge(f, Some(&signed(150)), "a", now).unwrap().unwrap();
        assert_eq!((same.time, same.sha256.as_str()), (at(150), "a"));
        // No floor yet.
        assert_eq!(judge(None, None, "a", now).unwrap(), None);
        assert_eq!(
            judge(None, Some(&signed(7)), "a", now)
                .unwrap()
                .unwrap()
                .time,
            at(7)
        );
    }

    #[test]
    fn times_ahead_of_the_clock_are_refused() {
        let now = at(1_000_000);
        let ok = signed(1_000_000 + MAX_AHEAD.as_secs());
        judge(None, Some(&ok), "a", now).unwrap();
        let ahead = signed(1_000_000 + MAX_AHEAD.as_secs() + 1);
        let e = judge(None, Some(&ahead), "a", now).unwrap_err();
        assert!(matches!(e, FeedError::FromTheFuture { .. }), "{e}");
    }
}
