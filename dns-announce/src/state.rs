//! The state file of `check --state` and of the fetcher: per owner name and
//! channel, the *floor*, the record with the highest serial verified, so
//! that a replayed older record is refused.
//!
//! A floor belongs to the keys that signed it. A stolen timestamp key can
//! sign one record with serial 2^64-1; were the floor a bare number, every
//! genuine record would be refused as a rollback for good, and rotating the
//! key would not help. So each floor keeps the TUF key ids whose signatures
//! verified ([`Announcement::signed_by`]), and it counts only while those
//! keys still meet the threshold of the timestamp role of the newest trusted
//! root: once the root rotates them out, the floor they set is ignored and
//! the next verified record replaces it (TUF's fast-forward recovery, for the
//! announcement).
//!
//! Format (JSON):
//!
//! ```json
//! {"floors": {"_update.example.org": {"stable": {
//!     "serial": 42, "issued": "2026-11-24T00:34:24Z", "expires": "2026-11-25T00:34:24Z",
//!     "timestamp_sha256": "30803e0a…", "signed_by": ["b3a1f0…"]}}}}
//! ```
//!
//! The format before floors were bound to keys, `{"highest_serial": {name:
//! {channel: N}}}`, still loads. Its entries name no signers, so no keys
//! vouch for them: they never count as a floor, and the first record
//! verified for that name and channel replaces them. (Until then the replay
//! protection of that pair starts afresh; the serial itself is still held by
//! the TUF timestamp version the appliance trusts.) Entries not yet replaced
//! are kept in the file as they were.
//!
//! # Invariants
//! - [`SerialState::floor`] returns a floor only while its signers meet the
//!   threshold (at least 1) of the keys given: a floor is never enforced on
//!   the authority of keys the current root no longer names.
//! - A floor vouched for by the keys only rises: [`SerialState::raise`]
//!   replaces it only with a higher serial. One not vouched for is replaced
//!   by the next record verified, whatever its serial.
//! - Only floors the given keys vouch for are stored: `raise` refuses an
//!   announcement whose signers do not meet their threshold.
//! - Every change is on disk (written atomically: temp file, fsync, rename)
//!   before the call returns.
//! - A damaged file is an error, never treated as empty: that would drop the
//!   replay protection it exists for. A missing file is empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onionpkg_trust::announce::Announcement;
use onionpkg_trust::keys::RoleKeys;
use serde::{Deserialize, Serialize};

use crate::err::{Error, Result};

/// The record that set a floor: the highest serial verified for one owner
/// name and channel, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// The serial: no lower one is accepted while this floor counts.
    pub serial: u64,
    /// When the record that set it was signed.
    pub issued: Timestamp,
    /// When that record expired (or expires).
    pub expires: Timestamp,
    /// SHA-256 of the `timestamp.json` that record announced.
    #[serde(with = "hex32")]
    pub timestamp_sha256: [u8; 32],
    /// TUF key ids of the keys whose signatures on it verified.
    pub signed_by: Vec<String>,
}

impl Floor {
    /// The floor set by a verified announcement.
    pub fn of(a: &Announcement) -> Self {
        Self {
            serial: a.serial,
            issued: a.issued,
            expires: a.expires,
            timestamp_sha256: a.timestamp_hash,
            signed_by: a.signed_by.clone(),
        }
    }

    /// Whether `keys` (a timestamp role) still vouch for this floor: at least
    /// its threshold (and at least one) of the keys that signed it are keys
    /// of the role.
    pub fn vouched_for_by(&self, keys: &RoleKeys) -> bool {
        signers_meet(&self.signed_by, keys)
    }
}

/// Whether the distinct key ids in `signed_by` that belong to `keys` reach
/// its threshold (at least one).
fn signers_meet(signed_by: &[String], keys: &RoleKeys) -> bool {
    let mut ids: Vec<&String> = signed_by
        .iter()
        .filter(|id| keys.keys.contains_key(*id))
        .collect();
    ids.sort();
    ids.dedup();
    ids.len() >= keys.threshold.max(1)
}

/// What [`SerialState::raise`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FloorChange {
    /// The announcement is not above the floor: nothing written.
    Unchanged,
    /// The announcement set the first floor, or raised one the keys vouch
    /// for.
    Raised,
    /// The stored floor was not vouched for by the keys (set by keys rotated
    /// out since, or a floor of the old format) and was replaced.
    Replaced {
        /// The serial of the floor replaced.
        previous_serial: u64,
    },
}

/// The on-disk form.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Floors bound to their signers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    floors: BTreeMap<String, BTreeMap<String, Floor>>,
    /// Serials of the old format, with no known signers: never a floor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    highest_serial: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The floors, persisted in one file.
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

    /// The floor for `name` and `channel`, if one is stored and `keys` (the
    /// timestamp role of the newest trusted root) vouch for it.
    pub fn floor(&self, name: &str, channel: &str, keys: &RoleKeys) -> Option<&Floor> {
        self.stored(name, channel)
            .filter(|floor| floor.vouched_for_by(keys))
    }

    /// The serial of [`SerialState::floor`]: the lowest serial still
    /// accepted (an equal one is fine), for the replay check.
    pub fn last_seen(&self, name: &str, channel: &str, keys: &RoleKeys) -> Option<u64> {
        self.floor(name, channel, keys).map(|f| f.serial)
    }

    fn stored(&self, name: &str, channel: &str) -> Option<&Floor> {
        self.file
            .floors
            .get(&normalize(name))
            .and_then(|m| m.get(channel))
    }

    fn legacy(&self, name: &str, channel: &str) -> Option<u64> {
        self.file
            .highest_serial
            .get(&normalize(name))
            .and_then(|m| m.get(channel))
            .copied()
    }

    /// Makes `a` the floor for `name` and `channel` when its serial is above
    /// the floor `keys` vouch for, or when no stored floor is vouched for
    /// (then it replaces it), and writes the file.
    ///
    /// `keys` must be the keys `a` was verified with: an announcement whose
    /// signers do not meet their threshold is refused, since the floor it
    /// would set would never count.
    pub fn raise(
        &mut self,
        name: &str,
        channel: &str,
        a: &Announcement,
        keys: &RoleKeys,
    ) -> Result<FloorChange> {
        if !signers_meet(&a.signed_by, keys) {
            return Err(Error::arg(
                "announcement floor",
                format!(
                    "serial {} was not signed by the threshold of the keys given; \
                     verify it with the same keys",
                    a.serial
                ),
            ));
        }
        let change = match self.stored(name, channel) {
            Some(f) if f.vouched_for_by(keys) => {
                if a.serial <= f.serial {
                    return Ok(FloorChange::Unchanged);
                }
                FloorChange::Raised
            }
            Some(f) => FloorChange::Replaced {
                previous_serial: f.serial,
            },
            None => match self.legacy(name, channel) {
                Some(previous_serial) => FloorChange::Replaced { previous_serial },
                None => FloorChange::Raised,
            },
        };
        let key = normalize(name);
        remove(&mut self.file.highest_serial, &key, channel);
        self.file
            .floors
            .entry(key)
            .or_default()
            .insert(channel.to_string(), Floor::of(a));
        self.save()?;
        if let FloorChange::Replaced { previous_serial } = change {
            tracing::warn!(
                name,
                channel,
                previous_serial,
                serial = a.serial,
                "the announcement floor was set by keys the root no longer vouches for; \
                 replaced by a record of the current timestamp keys"
            );
        }
        Ok(change)
    }

    /// Removes the floor of `name` and `channel` (also one of the old
    /// format), and writes the file. Returns whether there was one.
    ///
    /// For a caller that learned the floor is not genuine, for example
    /// because no mirror served its serial within a timestamp lifetime.
    pub fn drop_floor(&mut self, name: &str, channel: &str) -> Result<bool> {
        let key = normalize(name);
        let dropped = remove(&mut self.file.floors, &key, channel).is_some()
            | remove(&mut self.file.highest_serial, &key, channel).is_some();
        if dropped {
            self.save()?;
        }
        Ok(dropped)
    }

    fn save(&self) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| Error::State {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        onionpkg_trust::util::write_atomic(&self.path, &bytes, Some(0o644))?;
        Ok(())
    }
}

/// Removes `map[name][channel]`, and `map[name]` once empty.
fn remove<V>(
    map: &mut BTreeMap<String, BTreeMap<String, V>>,
    name: &str,
    channel: &str,
) -> Option<V> {
    let channels = map.get_mut(name)?;
    let removed = channels.remove(channel);
    if channels.is_empty() {
        map.remove(name);
    }
    removed
}

/// Owner names compare case-insensitively and without the trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A 32-byte hash as 64 hex digits.
mod hex32 {
    use hex::FromHex as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        <[u8; 32]>::from_hex(text).map_err(|e| D::Error::custom(format!("timestamp_sha256: {e}")))
    }
}

#[cfg(test)]
mod tests;
