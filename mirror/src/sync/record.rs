//! The record of the targets sync placed in the served tree, so that a file
//! changed behind its back (a bad disk, a careless hand, an intruder) is
//! noticed and repaired instead of served for ever.
//!
//! For each target file: its path under `targets/`, length, mtime and the
//! SHA-256 it was verified against, kept in the state dir
//! ([`TARGETS_RECORD`], replaced atomically after each published sync).
//!
//! # Invariants
//! - A present file counts as the signed target without hashing only when
//!   its length and mtime are those recorded and the recorded hash is the
//!   signed one. Any other present file is hashed against its signed hashes
//!   first; one that does not verify is downloaded again and replaced
//!   through the staged publish.
//! - A missing, oversized or damaged record is an empty one: everything is
//!   hashed again. That costs time, never trust.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use onionpkg_trust::metadata::{TargetFile, TargetVerifier};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::state::write_atomic;
use crate::{Error, Result};

/// The record's file in the state dir.
pub const TARGETS_RECORD: &str = "sync-targets.json";

/// The largest record read back (a few hundred thousand targets).
const MAX_RECORD_BYTES: u64 = 64 << 20;

/// What sync knows of one file it placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Placed {
    length: u64,
    mtime: jiff::Timestamp,
    /// The signed hash it was verified against (see [`signed_hash`]); read
    /// under its former name too, so an upgraded mirror keeps its record.
    #[serde(alias = "sha256")]
    hash: String,
}

/// The hash a target is named and recorded by: its sha256, or its sha512
/// when the metadata gives no sha256.
pub(super) fn signed_hash(info: &TargetFile) -> String {
    info.hashes
        .get("sha256")
        .or_else(|| info.hashes.get("sha512"))
        .cloned()
        .unwrap_or_default()
}

/// The placed targets, by path under `targets/` (`dir/HASH.name`).
#[derive(Debug)]
pub(super) struct Record {
    path: PathBuf,
    placed: BTreeMap<String, Placed>,
}

/// A file's length and mtime, as the record compares them.
fn stat(file: &Path) -> Option<(u64, jiff::Timestamp)> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime = jiff::Timestamp::try_from(meta.modified().ok()?).ok()?;
    Some((meta.len(), mtime))
}

impl Record {
    /// The record in `state_dir`; empty when there is none or it is unusable.
    pub(super) fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(TARGETS_RECORD);
        let placed = match Self::read(&path) {
            Ok(placed) => placed,
            Err(reason) => {
                if path.exists() {
                    warn!(path = %path.display(), %reason, "unusable target record; every served target is hashed again");
                }
                BTreeMap::new()
            }
        };
        Self { path, placed }
    }

    fn read(path: &Path) -> std::result::Result<BTreeMap<String, Placed>, String> {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if meta.len() > MAX_RECORD_BYTES {
            return Err(format!("larger than {MAX_RECORD_BYTES} bytes"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// Whether `file` (target `rel`, signed with `hash`) is, by length and
    /// mtime, the file sync placed and verified.
    pub(super) fn unchanged(&self, rel: &str, file: &Path, hash: &str) -> bool {
        let Some(placed) = self.placed.get(rel) else {
            return false;
        };
        placed.hash == hash && stat(file) == Some((placed.length, placed.mtime))
    }

    /// Notes `file` (target `rel`) as verified against `hash` as it is now.
    pub(super) fn note(&mut self, rel: &str, file: &Path, hash: &str) {
        match stat(file) {
            Some((length, mtime)) => {
                self.placed.insert(
                    rel.to_owned(),
                    Placed {
                        length,
                        mtime,
                        hash: hash.to_owned(),
                    },
                );
            }
            None => {
                self.placed.remove(rel);
            }
        }
    }

    /// Keeps only the targets in `current` (those the metadata still lists).
    pub(super) fn retain(&mut self, current: &BTreeSet<String>) {
        self.placed.retain(|rel, _| current.contains(rel));
    }

    /// Writes the record atomically.
    pub(super) fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.placed).map_err(|e| Error::State {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.path, &bytes)
    }
}

/// Whether the file at `file` is target `path` as signed in `info`: its
/// length and every signed hash. Reads on the blocking pool.
pub(super) async fn verifies(path: &str, info: &TargetFile, file: &Path) -> bool {
    let (path, info, file) = (path.to_owned(), info.clone(), file.to_owned());
    let check = move || -> std::result::Result<(), String> {
        let mut v = TargetVerifier::new(&path, &info).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            v.update(buf.get(..n).unwrap_or_default())
                .map_err(|e| e.to_string())?;
        }
        v.finish().map_err(|e| e.to_string())
    };
    match tokio::task::spawn_blocking(check).await {
        Ok(Ok(())) => true,
        Ok(Err(reason)) => {
            warn!(%reason, "a served target does not verify; it is downloaded again");
            false
        }
        Err(e) => {
            warn!(error = %e, "hashing a served target failed; it is downloaded again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn vouches_only_for_the_file_as_placed_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, b"abc").unwrap();
        let mut r = Record::load(dir.path());
        assert!(
            !r.unchanged("pkg/h.t", &file, "h"),
            "no record, no vouching"
        );
        r.note("pkg/h.t", &file, "h");
        r.save().unwrap();

        let r = Record::load(dir.path());
        assert!(r.unchanged("pkg/h.t", &file, "h"));
        assert!(
            !r.unchanged("pkg/h.t", &file, "other"),
            "another signed hash"
        );
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        let mtime = f.metadata().unwrap().modified().unwrap();
        f.set_modified(mtime + Duration::from_secs(1)).unwrap();
        assert!(!r.unchanged("pkg/h.t", &file, "h"), "a new mtime");
        f.set_modified(mtime).unwrap();
        f.set_len(2).unwrap();
        f.set_modified(mtime).unwrap();
        assert!(!r.unchanged("pkg/h.t", &file, "h"), "another length");

        std::fs::write(dir.path().join(TARGETS_RECORD), b"{").unwrap();
        assert!(Record::load(dir.path()).placed.is_empty(), "damaged: empty");
    }
}
