//! Where a feed's checked versions and its status live, under the mirror's
//! state dir: `feeds/NAME/status.json` and `feeds/NAME/versions/SHA256`;
//! and its version floor, `feeds/NAME/floor.json` (see [`super::floor`]).
//!
//! # Invariants
//! - `floor.json` is replaced atomically and never with a lower time. A
//!   missing file is no floor (a feed never fetched, or one whose versions
//!   have no time); a damaged one is an error, never taken for a missing one.
//! - A file under `versions/` passed every check; downloads land in hidden
//!   temp files beside it and are renamed in only after that.
//! - `status.json` is replaced atomically, and names as current only a
//!   version whose file is in place.
//! - The current version is never pruned; older ones beyond `keep` are.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::floor::{Floor, VersionTime};
use crate::state::write_atomic;
use crate::{Error, Result};

/// One checked version of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub size: u64,
    /// When it was fetched.
    pub fetched_at: Timestamp,
    /// What the content check saw.
    pub summary: String,
    /// When it was made, by its signature or its format; `None` when
    /// neither says (no version floor for such feeds).
    #[serde(default)]
    pub version_time: Option<VersionTime>,
}

/// What is known about one feed: its versions, and how the last fetch went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// The version served (and published, when publishing); the newest good.
    pub current: Option<Version>,
    /// Older good versions still stored, newest first.
    #[serde(default)]
    pub previous: Vec<Version>,
    /// When a fetch last started.
    pub last_attempt: Option<Timestamp>,
    /// When a fetch last passed every check (new content or not).
    pub last_success: Option<Timestamp>,
    /// When a fetch last failed.
    pub last_error_at: Option<Timestamp>,
    /// Why the last failed fetch failed; cleared by a success.
    pub last_error: Option<String>,
    /// SHA-256 of the version last published as a `feeds` target.
    pub published_sha256: Option<String>,
    /// The timestamp version that publish made.
    pub published_version: Option<u64>,
}

/// The files of one feed.
#[derive(Debug, Clone)]
pub struct FeedStore {
    dir: PathBuf,
}

impl FeedStore {
    /// The store of feed `name` under the mirror state dir `state_dir`.
    pub fn new(state_dir: &Path, name: &str) -> Self {
        Self {
            dir: state_dir.join("feeds").join(name),
        }
    }

    /// The feed's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the version with hash `sha256`.
    pub fn version_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("versions").join(sha256)
    }

    fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    fn floor_path(&self) -> PathBuf {
        self.dir.join("floor.json")
    }

    /// The version floor: the newest version time accepted; `None` when
    /// no version with a time was accepted yet.
    pub fn floor(&self) -> Result<Option<Floor>> {
        let path = self.floor_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::DamagedFloor {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::DamagedFloor {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Writes `floor` atomically; refuses one below the floor on disk.
    pub fn raise_floor(&self, floor: &Floor) -> Result<()> {
        let path = self.floor_path();
        if let Some(old) = self.floor()?
            && old.time > floor.time
        {
            return Err(Error::FloorDown {
                path,
                from: old.time,
                to: floor.time,
            });
        }
        let bytes = serde_json::to_vec_pretty(floor).map_err(|e| Error::DamagedFloor {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }

    /// Takes the feed's lock (`.lock`), waiting at most `wait` for another
    /// process or task that holds it; held until the file is dropped.
    pub fn lock(&self, wait: std::time::Duration) -> Result<std::fs::File> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("creating", &self.dir))?;
        let path = self.dir.join(".lock");
        let file =
            onionpkg_trust::util::open_lock_file(&path).map_err(Error::io("opening", &path))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            use rustix::fs::{FlockOperation, flock};
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR)
                    if std::time::Instant::now() < deadline =>
                {
                    // Held for a rename or two: a short poll, bounded above.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(Error::FeedBusy(path)),
                Err(e) => return Err(Error::io("locking", &path)(e.into())),
            }
        }
    }

    /// The recorded status; the default when there is none yet.
    pub fn status(&self) -> Result<FeedStatus> {
        let path = self.status_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FeedStatus::default()),
            Err(e) => Err(Error::io("reading", path)(e)),
        }
    }

    /// Changes the status with `f` and writes it atomically.
    pub fn update(&self, f: impl FnOnce(&mut FeedStatus)) -> Result<FeedStatus> {
        let mut status = self.status()?;
        f(&mut status);
        let bytes = serde_json::to_vec_pretty(&status).map_err(|e| Error::State {
            path: self.status_path(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.status_path(), &bytes)?;
        Ok(status)
    }

    /// A new hidden temp file in the store for a download; removed when
    /// dropped unless [`FeedStore::commit`] moved it in.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let versions = self.dir.join("versions");
        std::fs::create_dir_all(&versions).map_err(Error::io("creating", &versions))?;
        tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&self.dir)
            .map_err(Error::io("creating a temp file in", &self.dir))
    }

    /// Moves a checked download in as the current version and prunes the
    /// versions beyond `keep`. The same content fetched again only updates
    /// the times.
    pub fn commit(
        &self,
        tmp: tempfile::NamedTempFile,
        version: Version,
        keep: usize,
    ) -> Result<FeedStatus> {
        let dest = self.version_path(&version.sha256);
        tmp.as_file()
            .sync_all()
            .map_err(Error::io("syncing", tmp.path()))?;
        let mut perms = tmp
            .as_file()
            .metadata()
            .map_err(Error::io("reading", tmp.path()))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(tmp.path(), perms).map_err(Error::io("chmod", tmp.path()))?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("renaming into place", &dest)(e.error))?;
        let mut pruned = Vec::new();
        let status = self.update(|s| {
            let now = version.fetched_at;
            s.last_success = Some(now);
            s.last_error = None;
            s.last_error_at = None;
            if s.current
                .as_ref()
                .is_some_and(|c| c.sha256 == version.sha256)
            {
                return;
            }
            s.previous.retain(|v| v.sha256 != version.sha256);
            if let Some(old) = s.current.replace(version.clone()) {
                s.previous.insert(0, old);
            }
            while s.previous.len() + 1 > keep.max(1) {
                if let Some(v) = s.previous.pop() {
                    pruned.push(v.sha256);
                }
            }
        })?;
        for sha in pruned {
            let _ = std::fs::remove_file(self.version_path(&sha));
        }
        Ok(status)
    }

    /// Records a failed fetch; the current version stays.
    pub fn record_error(&self, at: Timestamp, reason: &str) -> Result<FeedStatus> {
        self.update(|s| {
            s.last_error_at = Some(at);
            s.last_error = Some(reason.to_owned());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::floor::TimeSource;

    fn floor(s: i64, sha: &str) -> Floor {
        Floor {
            time: Timestamp::from_second(s).unwrap(),
            from: TimeSource::MinisignTrustedComment,
            sha256: sha.into(),
        }
    }

    #[test]
    fn the_floor_persists_and_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedStore::new(dir.path(), "list");
        assert_eq!(store.floor().unwrap(), None);
        store.raise_floor(&floor(200, "a")).unwrap();
        // Another store over the same state dir, as after a restart.
        let again = FeedStore::new(dir.path(), "list");
        assert_eq!(again.floor().unwrap(), Some(floor(200, "a")));
        let e = again.raise_floor(&floor(100, "b")).unwrap_err();
        assert!(matches!(e, Error::FloorDown { .. }), "{e}");
        assert_eq!(again.floor().unwrap(), Some(floor(200, "a")));
        again.raise_floor(&floor(300, "c")).unwrap();
        assert_eq!(store.floor().unwrap(), Some(floor(300, "c")));
        // Floors are per feed.
        assert_eq!(FeedStore::new(dir.path(), "other").floor().unwrap(), None);
    }

    #[test]
    fn a_damaged_floor_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedStore::new(dir.path(), "list");
        store.raise_floor(&floor(200, "a")).unwrap();
        let path = store.dir().join("floor.json");
        for damage in [&b""[..], b"{", b"{\"time\": 5}", b"null"] {
            std::fs::write(&path, damage).unwrap();
            let e = store.floor().unwrap_err();
            assert!(matches!(e, Error::DamagedFloor { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("version floor") && msg.contains(&path.display().to_string()),
                "{msg}"
            );
            // Not overwritten as if absent either.
            store.raise_floor(&floor(1, "b")).unwrap_err();
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            store.floor().unwrap_err(),
            Error::DamagedFloor { .. }
        ));
    }

    #[test]
    fn the_lock_is_exclusive_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedStore::new(dir.path(), "list");
        let held = store.lock(std::time::Duration::from_secs(5)).unwrap();
        let e = store
            .lock(std::time::Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(e, Error::FeedBusy(_)), "{e}");
        drop(held);
        store.lock(std::time::Duration::from_secs(5)).unwrap();
    }
}
