//! The mirror's state file: what `onionpkg-mirror status` prints.
//!
//! Small JSON in the state dir, replaced atomically (temp file, fsync,
//! rename), so a reader never sees half of it. `serve` writes it once its
//! listeners are bound, so a mirror that only serves (no sync, no onion
//! service) has one too; sync and the onion service add to it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The state file's name inside the state dir.
pub const STATE_FILE: &str = "mirror-state.json";

/// The largest state file read back.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// What the server and sync record for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The onion service's address, once launched.
    #[serde(default)]
    pub onion_address: Option<String>,
    /// When the last sync succeeded (RFC 3339).
    #[serde(default)]
    pub last_sync: Option<jiff::Timestamp>,
    /// When the last sync failed.
    #[serde(default)]
    pub last_sync_error_at: Option<jiff::Timestamp>,
    /// Why the last sync failed.
    #[serde(default)]
    pub last_sync_error: Option<String>,
    /// The version of the `timestamp.json` being served.
    #[serde(default)]
    pub served_version: Option<u64>,
    /// When `serve` last started and bound its listeners.
    #[serde(default)]
    pub serving_since: Option<jiff::Timestamp>,
}

/// The state file of the state dir `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

impl State {
    /// Reads the state file in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = state_path(dir);
        let err = |reason: String| Error::State {
            path: path.clone(),
            reason,
        };
        let meta = std::fs::metadata(&path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_STATE_BYTES {
            return Err(err(format!("larger than {MAX_STATE_BYTES} bytes")));
        }
        let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
    }

    /// Reads the state file in `dir`, or a fresh state if there is none.
    pub fn load_or_default(dir: &Path) -> Self {
        Self::load(dir).unwrap_or_default()
    }

    /// Changes the state file in `dir` with `f`, atomically.
    pub fn update(dir: &Path, f: impl FnOnce(&mut Self)) -> Result<Self> {
        let mut state = Self::load_or_default(dir);
        f(&mut state);
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| Error::State {
            path: state_path(dir),
            reason: e.to_string(),
        })?;
        write_atomic(&state_path(dir), &bytes)?;
        Ok(state)
    }
}

/// Writes `bytes` to `path` through a synced temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).is_err());
        State::update(dir.path(), |s| s.served_version = Some(4)).unwrap();
        State::update(dir.path(), |s| s.onion_address = Some("x.onion".into())).unwrap();
        let s = State::load(dir.path()).unwrap();
        assert_eq!(s.served_version, Some(4));
        assert_eq!(s.onion_address.as_deref(), Some("x.onion"));
    }
}
