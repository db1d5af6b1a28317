//! The fetcher's state directory.
//!
//! ```text
//! STATE/root.json          the pinned root, copied there by `init`
//! STATE/metadata/          trusted TUF metadata (the version floors)
//! STATE/mirrors.json       the last verified mirror list
//! STATE/mirror-health.json mirrors marked bad (until when, why), last mirror used
//! STATE/time-floor.json    the newest signed time seen
//! ```
//!
//! Every file is written atomically (temp file, fsync, rename), so a power
//! cut leaves the old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onionpkg_trust::util::write_atomic;
use serde::{Deserialize, Serialize};

use crate::app::{AppError, AppResult};

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

    /// The pinned root.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.json")
    }

    /// The trusted metadata store.
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    /// The cached mirror list.
    pub fn mirrors(&self) -> PathBuf {
        self.dir.join("mirrors.json")
    }

    /// Mirror health.
    pub fn health(&self) -> PathBuf {
        self.dir.join("mirror-health.json")
    }

    /// The highest announced serial verified (a mirror must serve at least it).
    pub fn announced(&self) -> PathBuf {
        self.dir.join("announced.json")
    }

    /// The signed time floor.
    pub fn time_floor(&self) -> PathBuf {
        self.dir.join("time-floor.json")
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
        let bytes = match read_capped(path, MAX_HEALTH_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
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

    /// Writes the health file atomically.
    pub fn save(&self, path: &Path) -> AppResult<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| AppError::State {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes, None)?;
        Ok(())
    }

    /// Whether `url` is in its cooldown at `now`.
    pub fn is_bad(&self, url: &str, now: Timestamp) -> Option<&BadMark> {
        self.bad.get(url).filter(|m| m.until > now)
    }

    /// Marks `url` bad until `until`.
    pub fn mark_bad(&mut self, url: &str, until: Timestamp, reason: String) {
        self.bad.insert(url.to_owned(), BadMark { until, reason });
    }

    /// Forgets cooldowns that are over.
    pub fn prune(&mut self, now: Timestamp) {
        self.bad.retain(|_, m| m.until > now);
    }
}

/// Reads at most `max` bytes of `path`; a longer file is an error.
pub(crate) fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}
