//! A log entry: the record of one signature.
//!
//! Each entry is one line of compact JSON in `STATE_DIR/entries.jsonl` and,
//! byte for byte, one leaf of the log (`tile/entries/…`):
//!
//! ```json
//! {"index":0,"time":1767139200,"client":"release","client_key":"<key id>",
//!  "role":"bin-0a","kind":"tuf","version":3,"expires":1774915200,
//!  "sha256":"<hex of the signed bytes>","key_id":"<signing key id>",
//!  "nonce":"<hex>","request_time":1767139199,
//!  "targets":[{"path":"pkg/a.tar","change":"added","sha256":"…","length":10}]}
//! ```
//!
//! `targets` lists what a targets-type role added, changed or removed since
//! the last version this signer signed for it; when the list would make the
//! entry larger than a C2SP entry bundle allows, the entry carries
//! `targets_sha256` and `targets_count` instead, and the list is kept in
//! `LOG_DIR/changes/<sha256>.json`. `issued` is an announcement's issue time.
//!
//! # Invariants
//! - An entry's `index` is its position in the log.
//! - Everything needed to rebuild the signer's state after a crash (last
//!   versions, nonces, rate windows) is in the entries.

use serde::{Deserialize, Serialize};

use crate::request::Kind;

/// How a target changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New path.
    Added,
    /// Same path, other hash or length.
    Changed,
    /// No longer listed.
    Removed,
}

/// One target path's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetChange {
    /// The target path.
    pub path: String,
    /// What happened to it.
    pub change: Change,
    /// Its SHA-256 now (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Its length now (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

/// The record of one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The position in the log.
    pub index: u64,
    /// When the signer signed, unix seconds.
    pub time: i64,
    /// The client's configured name.
    pub client: String,
    /// The TUF key id of the client's key.
    pub client_key: String,
    /// The TUF role signed for.
    pub role: String,
    /// What was signed.
    pub kind: Kind,
    /// Its version (announcement: serial).
    pub version: u64,
    /// Its expiry, unix seconds.
    pub expires: i64,
    /// SHA-256 of the signed bytes, hex.
    pub sha256: String,
    /// The TUF key id of the key that signed.
    pub key_id: String,
    /// The request's nonce.
    pub nonce: String,
    /// The request's time, unix seconds.
    pub request_time: i64,
    /// An announcement's issue time, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<i64>,
    /// Targets added, changed or removed (targets-type roles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetChange>,
    /// SHA-256 of the change list kept beside the log when it is too long
    /// for the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_sha256: Option<String>,
    /// The number of changes in that list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_count: Option<u64>,
}

impl Entry {
    /// The key this entry's role counts under for limits: `bins` for every
    /// `bin-XX`, `announcement` for announcements, else the role.
    pub fn limit_role(&self) -> &str {
        limit_role(&self.role, self.kind)
    }

    /// The key under which the last signed version is tracked: the role, or
    /// `announcement`.
    pub fn track_key(&self) -> &str {
        track_key(&self.role, self.kind)
    }
}

/// See [`Entry::limit_role`].
pub fn limit_role(role: &str, kind: Kind) -> &str {
    match kind {
        Kind::Announcement => "announcement",
        Kind::Tuf if onionpkg_trust::roles::is_bin(role) => "bins",
        Kind::Tuf => role,
    }
}

/// See [`Entry::track_key`].
pub fn track_key(role: &str, kind: Kind) -> &str {
    match kind {
        Kind::Announcement => "announcement",
        Kind::Tuf => role,
    }
}
