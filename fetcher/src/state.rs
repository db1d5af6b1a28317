//! The fetcher's state directory.
//!
//! ```text
//! STATE/root.json          the pinned root, copied there by `init`
//! STATE/metadata/          trusted TUF metadata (the version floors)
//! STATE/mirrors.json       the last verified mirror list
//! STATE/mirror-health.json mirrors marked bad (until when, why), last mirror used
//! STATE/time-floor.json    the newest signed time seen
//! STATE/announced.json     the announcement floor (serial, hash, signers)
//! STATE/completed.json     the timestamp version each kind of download
//!                          last completed at (an update is pending until
//!                          the downloads catch up with the trusted metadata)
//! STATE/feed-actions.json  the version of each feed file whose on_update
//!                          action succeeded (see `hooks`)
//! ```
//!
//! Every file is written atomically (temp file, fsync, rename), so a power
//! cut leaves the old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onionpkg_trust::util::write_atomic;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use onionpkg_trust::roles;

use crate::err::{AppError, AppResult};

/// The largest health file read: it lists at most a few thousand mirrors.
const MAX_HEALTH_BYTES: u64 = 1 << 20;

/// Paths inside the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One accessor per file of the state directory: its path.
macro_rules! state_files {
    ($($(#[$doc:meta])* $name:ident => $file:literal,)*) => {
        impl StateDir {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> PathBuf {
                    self.dir.join($file)
                }
            )*
        }
    };
}

state_files! {
    /// The pinned root.
    root => "root.json",
    /// The trusted metadata store.
    metadata => "metadata",
    /// The cached mirror list.
    mirrors => "mirrors.json",
    /// Mirror health.
    health => "mirror-health.json",
    /// The highest announced serial verified (a mirror must serve at least it).
    announced => "announced.json",
    /// The signed time floor.
    time_floor => "time-floor.json",
    /// The versions downloads last completed at.
    completed => "completed.json",
}

/// What a completed download covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every package (`download --all`).
    Packages,
    /// Every feed (`feeds sync` without names).
    Feeds,
}

/// The trusted timestamp version at which each kind of download last
/// completed.
///
/// Packages are always tracked: until `download --all` has completed for
/// the trusted metadata, an update is pending, so an update interrupted
/// after its metadata was taken is retried instead of forgotten. Feeds are
/// tracked once a full `feeds sync` has completed, since an appliance may
/// not use them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completed {
    /// The version `download --all` last completed at.
    #[serde(default)]
    pub packages: Option<u64>,
    /// The version a full `feeds sync` last completed at.
    #[serde(default)]
    pub feeds: Option<u64>,
}

impl Completed {
    /// Loads the file; a missing one means nothing completed yet.
    pub fn load(path: &Path) -> AppResult<Self> {
        load_json(path, MAX_HEALTH_BYTES)
    }

    /// Records that `kind` completed at `version`, atomically.
    pub fn record(path: &Path, kind: Kind, version: u64) -> AppResult<()> {
        let mut c = Self::load(path)?;
        match kind {
            Kind::Packages => c.packages = Some(version),
            Kind::Feeds => c.feeds = Some(version),
        }
        save_json(path, &c)
    }

    /// Whether downloads are behind the `trusted` timestamp version: the
    /// metadata moved on but the packages (or, once synced, the feeds) did
    /// not follow.
    pub fn pending(&self, trusted: Option<u64>) -> bool {
        let Some(trusted) = trusted else {
            return false;
        };
        self.packages.is_none_or(|v| v < trusted) || self.feeds.is_some_and(|v| v < trusted)
    }
}

/// Why and until when a mirror is avoided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadMark {
    /// The end of the cooldown.
    pub until: Timestamp,
    /// What the mirror did.
    pub reason: String,
}

/// Mirrors marked bad, and the last mirror that worked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Mirrors in their cooldown, by base URL.
    #[serde(default)]
    pub bad: BTreeMap<String, BadMark>,
    /// The base URL of the last mirror an update came from, and when.
    #[serde(default)]
    pub last_used: Option<(String, Timestamp)>,
}

impl Health {
    /// Loads the health file; a missing file is an empty record.
    pub fn load(path: &Path) -> AppResult<Self> {
        load_json(path, MAX_HEALTH_BYTES)
    }

    /// Writes the health file atomically.
    pub fn save(&self, path: &Path) -> AppResult<()> {
        save_json(path, self)
    }

    /// Whether `url` is in its cooldown at `now`.
    pub fn is_bad(&self, url: &str, now: Timestamp) -> Option<&BadMark> {
        self.bad.get(url).filter(|m| m.until > now)
    }

    /// Marks `url` bad until `until`.
    pub fn mark_bad(&mut self, url: &str, until: Timestamp, reason: String) {
        self.bad.insert(url.to_owned(), BadMark { until, reason });
    }

    /// Ends `url`'s cooldown: it served a verified update.
    pub fn clear(&mut self, url: &str) {
        self.bad.remove(url);
    }

    /// Forgets cooldowns that are over.
    pub fn prune(&mut self, now: Timestamp) {
        self.bad.retain(|_, m| m.until > now);
    }
}

/// Reads at most `max` bytes of `path`; a longer file is an error. A
/// symlink in the last component is refused, not followed: nothing in the
/// state directory is a link, and one planted there must not redirect what
/// the fetcher trusts.
/// Loads the JSON record at `path`, reading at most `max` bytes; a missing
/// file is the empty record.
pub(crate) fn load_json<T: DeserializeOwned + Default>(path: &Path, max: u64) -> AppResult<T> {
    let bytes = match read_capped(path, max) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(AppError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| AppError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes `value` to `path` as JSON, atomically.
pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> AppResult<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| AppError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes, None)?;
    Ok(())
}

pub(crate) fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut buf = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// The expiry of the trusted timestamp in the metadata store, if any.
pub fn trusted_timestamp_expiry(store: &Path) -> Option<Timestamp> {
    let bytes = read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("signed")?.get("expires")?.as_str()?.parse().ok()
}

/// The version of the trusted timestamp in the metadata store, if any.
pub fn trusted_timestamp_version(store: &Path) -> Option<u64> {
    let bytes = read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_pending_until_every_tracked_download_caught_up() {
        let none = Completed::default();
        assert!(!none.pending(None), "nothing trusted, nothing pending");
        assert!(none.pending(Some(1)), "packages never downloaded");
        let packages = Completed {
            packages: Some(3),
            feeds: None,
        };
        assert!(!packages.pending(Some(3)));
        assert!(packages.pending(Some(4)));
        let both = Completed {
            packages: Some(4),
            feeds: Some(3),
        };
        assert!(both.pending(Some(4)), "feeds are tracked once synced");
    }

    #[test]
    fn completions_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("completed.json");
        Completed::record(&path, Kind::Packages, 5).unwrap();
        Completed::record(&path, Kind::Feeds, 4).unwrap();
        assert_eq!(
            Completed::load(&path).unwrap(),
            Completed {
                packages: Some(5),
                feeds: Some(4)
            }
        );
    }

    #[test]
    fn a_planted_link_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.json");
        std::fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("completed.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_capped(&link, 100).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
    }
}
