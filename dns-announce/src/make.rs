//! Making the signed announcement of a repository's published state.
//!
//! The state is read from the repository directory of `onionpkg-repo`:
//! `metadata/timestamp.json` (its version is the serial, the SHA-256 of its
//! bytes is the hash) and `metadata/root.json` (the newest root, whose
//! timestamp role names the keys that may sign).
//!
//! # Invariants
//! - The serial and the hash come from one read of `timestamp.json`: a
//!   publish running meanwhile cannot pair the version of one file with the
//!   hash of another.
//! - Only keys of the root's timestamp role sign, at least its threshold of
//!   them, and every record made is verified with the same code appliances
//!   run before it is returned: what is published is what appliances accept.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{KeyDir, RepoDir};
use onionpkg_trust::announce::{self, Announcement};
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::keys::RoleKeys;
use onionpkg_trust::roles::TIMESTAMP;
use onionpkg_trust::sign::SecretKey;
use sha2::{Digest, Sha256};

use crate::err::{Error, Result};

/// The published state of a repository, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    /// The version of `timestamp.json`: the announcement's serial.
    pub serial: u64,
    /// SHA-256 of the bytes of `timestamp.json`.
    pub timestamp_hash: [u8; 32],
    /// The keys and threshold of the timestamp role in the newest root.
    pub timestamp_keys: RoleKeys,
}

/// Where the signing keys come from.
#[derive(Debug, Clone, Copy)]
pub enum Signers<'a> {
    /// The key directory of `onionpkg-repo`: every key of the timestamp role
    /// found there signs.
    KeyDir(&'a KeyDir),
    /// Key files loaded by the caller (the `timestamp_keys` of the config);
    /// each must belong to the timestamp role.
    Keys(&'a [SecretKey]),
}

/// A signed announcement, with what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The TXT value.
    pub text: String,
    /// What it announces, verified as appliances verify it.
    pub announcement: Announcement,
}

/// Reads the published state of the repository at `repo`.
pub fn read_state(repo: &RepoDir) -> Result<RepoState> {
    let md = repo.metadata_dir();
    let root_path = md.join("root.json");
    let root_bytes = std::fs::read(&root_path).map_err(Error::io("reading", &root_path))?;
    let root = onionpkg_trust::metadata::check_root(&root_bytes).map_err(|source| Error::Root {
        path: root_path.clone(),
        source,
    })?;
    let timestamp_keys =
        onionpkg_trust::metadata::role_keys(&root, TIMESTAMP).map_err(|source| Error::Root {
            path: root_path,
            source,
        })?;
    let ts_path = md.join("timestamp.json");
    let ts = std::fs::read(&ts_path).map_err(Error::io("reading", &ts_path))?;
    Ok(RepoState {
        serial: timestamp_version(&ts, &ts_path)?,
        timestamp_hash: Sha256::digest(&ts).into(),
        timestamp_keys,
    })
}

/// The `signed.version` of a `timestamp.json`.
fn timestamp_version(bytes: &[u8], path: &Path) -> Result<u64> {
    let bad = |reason: &str| {
        Error::Repo(onionpkg_repo::RepoError::BadFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    if value["signed"]["_type"] != "timestamp" {
        return Err(bad("not a timestamp metadata file"));
    }
    value["signed"]["version"]
        .as_u64()
        .filter(|v| *v > 0)
        .ok_or_else(|| bad("has no positive version"))
}

/// Makes the announcement of the state of `repo` for `owner` and `channel`,
/// valid for `valid_for` from `now`.
pub fn sign(
    repo: &RepoDir,
    signers: Signers<'_>,
    owner: &str,
    channel: &str,
    valid_for: SignedDuration,
    now: Timestamp,
) -> Result<Signed> {
    if !valid_for.is_positive() {
        return Err(Error::arg("--expires", "the validity must be positive"));
    }
    let state = read_state(repo)?;
    let role = &state.timestamp_keys;
    let loaded;
    let keys: Vec<&SecretKey> = match signers {
        Signers::KeyDir(dir) => {
            let ids: Vec<String> = role.keys.keys().cloned().collect();
            loaded = dir.signers(TIMESTAMP, &ids, role.threshold.max(1))?;
            loaded.iter().collect()
        }
        Signers::Keys(keys) => {
            for key in keys {
                let id = key.public().key_id();
                if !role.keys.contains_key(&id) {
                    return Err(Error::arg(
                        "timestamp_keys",
                        format!(
                            "key {id} is not a key of the timestamp role in {}",
                            repo.metadata_dir().join("root.json").display()
                        ),
                    ));
                }
            }
            if keys.len() < role.threshold.max(1) {
                return Err(Error::arg(
                    "timestamp_keys",
                    format!(
                        "the timestamp role needs {} signature(s); {} key(s) given",
                        role.threshold.max(1),
                        keys.len()
                    ),
                ));
            }
            keys.iter().collect()
        }
    };
    let issued =
        Timestamp::from_second(now.as_second()).map_err(|e| Error::arg("time", e.to_string()))?;
    let expires = issued
        .checked_add(valid_for)
        .map_err(|e| Error::arg("--expires", e.to_string()))?;
    let text = announce::make(
        owner,
        channel,
        state.serial,
        issued,
        expires,
        &state.timestamp_hash,
        &keys,
    )?;
    let announcement =
        announce::verify(&text, owner, channel, role, issued, Tolerance::ZERO, None)?;
    Ok(Signed { text, announcement })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timestamp_version() {
        let p = Path::new("timestamp.json");
        let ok = br#"{"signed":{"_type":"timestamp","version":7},"signatures":[]}"#;
        assert_eq!(timestamp_version(ok, p).unwrap(), 7);
        for bad in [
            &br#"{"signed":{"_type":"snapshot","version":7}}"#[..],
            br#"{"signed":{"_type":"timestamp","version":0}}"#,
            br#"{"signed":{"_type":"timestamp","version":"7"}}"#,
            b"not json",
        ] {
            assert!(timestamp_version(bad, p).is_err());
        }
    }
}
