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
//! - Only keys of the root's timestamp role sign (key files, or the one key
//!   `onionpkg-signer` holds, whose signature is checked before use), at
//!   least its threshold of them, and every record made is verified with the
//!   same code appliances run before it is returned: what is published is
//!   what appliances accept.
//! - A record never outlives the timestamp it names: its expiry is at or
//!   before that `timestamp.json`'s `signed.expires` (read in the same read
//!   as its version and hash). [`Validity::Exactly`] refuses a longer
//!   validity, [`Validity::AtMost`] cuts it there; no record at all is made
//!   for an expired timestamp. The announcement is a pointer to the
//!   timestamp, so it may never extend the trust the timestamp gives.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{KeyDir, RemoteSigner, RepoDir};
use onionpkg_trust::announce::{self, Announcement};
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::keys::{PublicKey, RoleKeys};
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
    /// The `signed.expires` of `timestamp.json`: no record naming it may be
    /// valid later.
    pub timestamp_expires: Timestamp,
    /// The keys and threshold of the timestamp role in the newest root.
    pub timestamp_keys: RoleKeys,
    /// The key ids on the signatures of `timestamp.json`.
    pub timestamp_signers: Vec<String>,
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
    /// `onionpkg-signer`, which holds one key of the timestamp role: the
    /// role's only key, or else the one key of the role that signed
    /// `timestamp.json`. The role's threshold must be 1.
    Signer(&'a RemoteSigner),
}

/// How long a record stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Exactly this long; refused ([`Error::OutlivesTimestamp`]) when it
    /// would end after the named timestamp's expiry. An explicit `--expires`.
    Exactly(SignedDuration),
    /// This long, or until the named timestamp's expiry if that comes
    /// sooner. The default of `make`, and what `serve` does.
    AtMost(SignedDuration),
}

impl Validity {
    fn duration(self) -> SignedDuration {
        match self {
            Self::Exactly(d) | Self::AtMost(d) => d,
        }
    }
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
    let (serial, timestamp_expires, timestamp_signers) = timestamp_fields(&ts, &ts_path)?;
    Ok(RepoState {
        serial,
        timestamp_hash: Sha256::digest(&ts).into(),
        timestamp_expires,
        timestamp_keys,
        timestamp_signers,
    })
}

/// The `signed.version` and `signed.expires` of a `timestamp.json`, and the
/// key ids of its signatures.
fn timestamp_fields(bytes: &[u8], path: &Path) -> Result<(u64, Timestamp, Vec<String>)> {
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
    let version = value["signed"]["version"]
        .as_u64()
        .filter(|v| *v > 0)
        .ok_or_else(|| bad("has no positive version"))?;
    let expires = value["signed"]["expires"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or_else(|| bad("has no valid expiry time (signed.expires)"))?;
    let signers = value["signatures"]
        .as_array()
        .map(|sigs| {
            sigs.iter()
                .filter_map(|s| s["keyid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((version, expires, signers))
}

/// The key of the timestamp role the signer holds: the role's only key, or
/// the one key of the role that signed `timestamp.json`.
fn signer_key(state: &RepoState, repo: &RepoDir) -> Result<PublicKey> {
    let role = &state.timestamp_keys;
    let root = repo.metadata_dir().join("root.json");
    if role.threshold > 1 {
        return Err(Error::arg(
            "signer",
            format!(
                "the timestamp role in {} needs {} signatures; the signer makes one",
                root.display(),
                role.threshold
            ),
        ));
    }
    // By key id: a key id listed twice is one key.
    let candidates: std::collections::BTreeMap<&String, &PublicKey> = if role.keys.len() == 1 {
        role.keys.iter().collect()
    } else {
        state
            .timestamp_signers
            .iter()
            .filter_map(|id| role.keys.get_key_value(id))
            .collect()
    };
    let candidates: Vec<&PublicKey> = candidates.into_values().collect();
    match candidates.as_slice() {
        [key] => Ok((*key).clone()),
        _ => Err(Error::arg(
            "signer",
            format!(
                "cannot tell which of the {} keys of the timestamp role in {} the signer holds: \
                 {} of them signed timestamp.json; re-sign the timestamp through the signer",
                role.keys.len(),
                root.display(),
                candidates.len()
            ),
        )),
    }
}

/// The expiry of a record issued at `issued` for `validity`, bounded by the
/// expiry of the timestamp it names (both in whole seconds).
fn bounded_expiry(state: &RepoState, issued: Timestamp, validity: Validity) -> Result<Timestamp> {
    // Whole seconds, rounded down: the record's expiry is encoded so.
    let ts_expires = Timestamp::from_second(state.timestamp_expires.as_second())
        .map_err(|e| Error::arg("timestamp.json", e.to_string()))?;
    if ts_expires <= issued {
        return Err(Error::TimestampExpired {
            version: state.serial,
            expired: state.timestamp_expires,
        });
    }
    let wanted = issued
        .checked_add(validity.duration())
        .map_err(|e| Error::arg("--expires", e.to_string()))?;
    match validity {
        _ if wanted <= ts_expires => Ok(wanted),
        Validity::AtMost(_) => Ok(ts_expires),
        Validity::Exactly(_) => Err(Error::OutlivesTimestamp {
            version: state.serial,
            expires: wanted,
            timestamp_expires: state.timestamp_expires,
            suggestion: suggest_expires(ts_expires.duration_since(issued)),
        }),
    }
}

/// An `--expires` value no longer than `max`, in the largest whole unit.
fn suggest_expires(max: SignedDuration) -> String {
    let secs = max.as_secs();
    match secs {
        86_400.. => format!("{}d", secs / 86_400),
        3600.. => format!("{}h", secs / 3600),
        60.. => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// Makes the announcement of the state of `repo` for `owner` and `channel`,
/// issued at `now` and valid as `validity` says, never past the expiry of
/// the `timestamp.json` it names ([`Error::OutlivesTimestamp`],
/// [`Error::TimestampExpired`]).
pub fn sign(
    repo: &RepoDir,
    signers: Signers<'_>,
    owner: &str,
    channel: &str,
    validity: Validity,
    now: Timestamp,
) -> Result<Signed> {
    if !validity.duration().is_positive() {
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
        // Signed below, once the record's text is known.
        Signers::Signer(_) => Vec::new(),
    };
    let issued =
        Timestamp::from_second(now.as_second()).map_err(|e| Error::arg("time", e.to_string()))?;
    let expires = bounded_expiry(&state, issued, validity)?;
    let text = match signers {
        Signers::Signer(remote) => {
            let key = signer_key(&state, repo)?;
            let draft = announce::Draft::new(
                owner,
                channel,
                state.serial,
                issued,
                expires,
                &state.timestamp_hash,
                std::slice::from_ref(&key),
            )?;
            let sig =
                remote.sign_announcement(&draft.message(), state.serial, expires, &key, now)?;
            draft.finish(&[&sig[..]])?
        }
        _ => announce::make(
            owner,
            channel,
            state.serial,
            issued,
            expires,
            &state.timestamp_hash,
            &keys,
        )?,
    };
    let announcement = announce::verify(
        &text,
        &announce::Expectation {
            name: owner,
            channel,
            keys: role,
            now: issued,
            tolerance: Tolerance::ZERO,
            last_seen: None,
        },
    )?;
    Ok(Signed { text, announcement })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timestamp_version_and_expiry() {
        let p = Path::new("timestamp.json");
        let ok = br#"{"signed":{"_type":"timestamp","version":7,"expires":"2030-01-02T03:04:05Z"},"signatures":[]}"#;
        assert_eq!(
            timestamp_fields(ok, p).unwrap(),
            (7, "2030-01-02T03:04:05Z".parse().unwrap(), Vec::new())
        );
        for bad in [
            &br#"{"signed":{"_type":"snapshot","version":7,"expires":"2030-01-02T03:04:05Z"}}"#[..],
            br#"{"signed":{"_type":"timestamp","version":0,"expires":"2030-01-02T03:04:05Z"}}"#,
            br#"{"signed":{"_type":"timestamp","version":"7","expires":"2030-01-02T03:04:05Z"}}"#,
            br#"{"signed":{"_type":"timestamp","version":7}}"#,
            br#"{"signed":{"_type":"timestamp","version":7,"expires":"soon"}}"#,
            b"not json",
        ] {
            assert!(timestamp_fields(bad, p).is_err());
        }
    }

    fn state(expires: &str) -> RepoState {
        RepoState {
            serial: 7,
            timestamp_hash: [0; 32],
            timestamp_expires: expires.parse().unwrap(),
            timestamp_keys: RoleKeys::new(Default::default(), 1),
            timestamp_signers: Vec::new(),
        }
    }

    #[test]
    fn a_record_never_outlives_its_timestamp() {
        let issued: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let s = state("2030-01-01T20:00:00.9Z");
        let hours = SignedDuration::from_hours;
        let end: Timestamp = "2030-01-01T20:00:00Z".parse().unwrap();
        assert_eq!(
            bounded_expiry(&s, issued, Validity::Exactly(hours(12))).unwrap(),
            issued.checked_add(hours(12)).unwrap()
        );
        assert_eq!(
            bounded_expiry(&s, issued, Validity::Exactly(hours(20))).unwrap(),
            end
        );
        assert_eq!(
            bounded_expiry(&s, issued, Validity::AtMost(hours(24))).unwrap(),
            end
        );
        let err = bounded_expiry(&s, issued, Validity::Exactly(hours(24))).unwrap_err();
        assert!(
            matches!(err, Error::OutlivesTimestamp { version: 7, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("2030-01-02T00:00:00Z"), "{msg}");
        assert!(msg.contains("2030-01-01T20:00:00.9Z"), "{msg}");
        assert!(msg.contains("--expires 20h"), "{msg}");
        assert_eq!(err.exit_code(), crate::exit::USAGE);

        let at_end = bounded_expiry(&s, end, Validity::AtMost(hours(1))).unwrap_err();
        assert!(
            matches!(at_end, Error::TimestampExpired { version: 7, .. }),
            "{at_end}"
        );
        assert!(at_end.to_string().contains("cron"), "{at_end}");
        assert_eq!(at_end.exit_code(), crate::exit::EXPIRED);
    }

    #[test]
    fn the_signer_s_key_is_the_role_s_only_key_or_the_one_that_signed_the_timestamp() {
        let (a, b) = (
            SecretKey::generate().public(),
            SecretKey::generate().public(),
        );
        let repo = RepoDir::new("/srv/repo");
        let with = |keys: &[&PublicKey], threshold, signers: &[&PublicKey]| RepoState {
            timestamp_keys: RoleKeys::new(
                keys.iter().map(|k| (k.key_id(), (*k).clone())).collect(),
                threshold,
            ),
            timestamp_signers: signers.iter().map(|k| k.key_id()).collect(),
            ..state("2030-01-01T00:00:00Z")
        };
        assert_eq!(signer_key(&with(&[&a], 1, &[]), &repo).unwrap(), a);
        assert_eq!(signer_key(&with(&[&a, &b], 1, &[&b]), &repo).unwrap(), b);
        let none = signer_key(&with(&[&a, &b], 1, &[]), &repo).unwrap_err();
        assert!(
            none.to_string().contains("cannot tell which of the 2 keys"),
            "{none}"
        );
        let both = signer_key(&with(&[&a, &b], 1, &[&a, &b]), &repo).unwrap_err();
        assert!(both.to_string().contains("2 of them signed"), "{both}");
        let two = signer_key(&with(&[&a, &b], 2, &[&a, &b]), &repo).unwrap_err();
        assert!(
            two.to_string()
                .contains("needs 2 signatures; the signer makes one"),
            "{two}"
        );
    }

    #[test]
    fn suggests_the_largest_whole_unit() {
        let s = SignedDuration::from_secs;
        assert_eq!(suggest_expires(s(2 * 86_400 + 5)), "2d");
        assert_eq!(suggest_expires(s(86_399)), "23h");
        assert_eq!(suggest_expires(s(3599)), "59m");
        assert_eq!(suggest_expires(s(59)), "59s");
    }
}
