//! The state file of `check --state`: the highest serial seen per owner name
//! and channel, so that a replayed older record is refused.
//!
//! Format (JSON): `{"highest_serial": {"_update.example.org": {"stable": 42}}}`.
//!
//! # Invariants
//! - A stored serial only rises, and is on disk (written atomically: temp
//!   file, fsync, rename) before [`SerialState::raise`] returns.
//! - A damaged file is an error, never treated as empty: that would drop the
//!   replay protection it exists for. A missing file is empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::err::{Error, Result};

/// The on-disk form.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    highest_serial: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The highest serials seen, persisted in one file.
#[derive(Debug)]
pub struct SerialState {
    path: PathBuf,
    file: File,
}

impl SerialState {
    /// Loads the state at `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Self> {
        let file = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.to_path_buf(),
                reason: format!(
                    "damaged ({e}); it holds the highest serial seen, so it is not ignored: \
                     repair or remove it by hand"
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(Error::io("reading", path)(e)),
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The highest serial seen for `name` and `channel`.
    pub fn get(&self, name: &str, channel: &str) -> Option<u64> {
        self.file
            .highest_serial
            .get(&normalize(name))
            .and_then(|m| m.get(channel))
            .copied()
    }

    /// Records `serial` for `name` and `channel` if it is higher than the
    /// one stored, and writes the file. Returns whether it rose.
    pub fn raise(&mut self, name: &str, channel: &str, serial: u64) -> Result<bool> {
        if self.get(name, channel).is_some_and(|s| s >= serial) {
            return Ok(false);
        }
        self.file
            .highest_serial
            .entry(normalize(name))
            .or_default()
            .insert(channel.to_string(), serial);
        let mut bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| Error::State {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        onionpkg_trust::util::write_atomic(&self.path, &bytes, Some(0o644))?;
        Ok(true)
    }
}

/// Owner names compare case-insensitively and without the trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_only_rise_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        let mut state = SerialState::load(&path).unwrap();
        assert_eq!(state.get("_u.example.org", "stable"), None);
        assert!(state.raise("_u.example.org.", "stable", 5).unwrap());
        assert!(!state.raise("_U.example.org", "stable", 4).unwrap());
        assert!(!state.raise("_u.example.org", "stable", 5).unwrap());
        assert!(state.raise("_u.example.org", "beta", 1).unwrap());
        let again = SerialState::load(&path).unwrap();
        assert_eq!(again.get("_u.EXAMPLE.org", "stable"), Some(5));
        assert_eq!(again.get("_u.example.org", "beta"), Some(1));
        assert_eq!(again.get("_other.example.org", "stable"), None);
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"highest_serial\": 3}").unwrap();
        let err = SerialState::load(&path).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
