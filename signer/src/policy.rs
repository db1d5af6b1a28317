//! What a payload must be before it is signed.
//!
//! - TUF metadata must be exactly the canonical JSON of a `signed` object of
//!   the role's type: `_type` `targets` for `targets`, `mirrors`, `feeds` and
//!   `bin-XX`; `snapshot`; `timestamp`. It must carry `spec_version`,
//!   `version` and `expires` (the request's), and the shape of its type:
//!   targets entries with a length and a SHA-256 under safe paths (the
//!   `mirrors` role only `mirrors.json`, `feeds` only `feeds/NAME/FILE`,
//!   delegations only in the top-level targets), snapshot `meta` entries with
//!   versions, and a timestamp's single `snapshot.json` entry.
//! - An announcement must be the bytes an onionpkg DNS announcement's
//!   signatures cover, its text a well-formed record naming the timestamp
//!   key, with the request's serial and expiry.
//!
//! The version, expiry, reference and rate rules that depend on the
//! signer's history are applied by the service (see docs/SIGNER.md).
//!
//! # Invariants
//! - Every refusal here is a [`Reason::Payload`]; nothing here reads state.

use std::collections::BTreeMap;
use std::str::FromStr;

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::roles;
use serde_json::Value;

use crate::entry::{Change, TargetChange};
use crate::request::{Reason, Refusal};

/// The prefix of the bytes an announcement's signatures cover.
pub const ANNOUNCE_DOMAIN: &[u8] = b"onionpkg-announce-v1\0";

/// A target path with its SHA-256 (hex) and length.
pub type Targets = BTreeMap<String, (String, u64)>;

/// What the policy read from a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The version (announcement: serial).
    pub version: u64,
    /// The expiry, unix seconds.
    pub expires: i64,
    /// An announcement's issue time.
    pub issued: Option<i64>,
    /// The versions of other roles it pins (snapshot: every targets-type
    /// role; timestamp: snapshot; announcement: timestamp).
    pub references: Vec<(String, u64)>,
    /// The targets listed (targets-type roles).
    pub targets: Option<Targets>,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal::new(Reason::Payload, message)
}

fn expires_of(signed: &Value) -> Result<i64, Refusal> {
    let text = signed["expires"]
        .as_str()
        .ok_or_else(|| refuse("no `expires` string"))?;
    jiff::Timestamp::from_str(text)
        .map(|t| t.as_second())
        .map_err(|e| refuse(format!("`expires` {text:?}: {e}")))
}

fn version_of(v: &Value, what: &str) -> Result<u64, Refusal> {
    v.as_u64()
        .filter(|n| *n >= 1)
        .ok_or_else(|| refuse(format!("{what} is not a version (an integer from 1)")))
}

/// The role type `_type` a TUF role's metadata has.
fn expected_type(role: &str) -> Option<&'static str> {
    match role {
        roles::TARGETS | roles::MIRRORS | roles::FEEDS => Some("targets"),
        _ if roles::is_bin(role) => Some("targets"),
        roles::SNAPSHOT => Some("snapshot"),
        roles::TIMESTAMP => Some("timestamp"),
        _ => None,
    }
}

/// Parses TUF canonical JSON (securesystemslib's form), which is not always
/// JSON: it escapes only the backslash and the double quote, so a string holding a control
/// character (the newlines of an ECDSA key's PEM, in a delegation) carries
/// it raw, which JSON forbids. Those bytes are escaped before parsing;
/// outside strings canonical JSON has none, and the caller compares the
/// payload with the canonical form of what was parsed, so a payload that
/// was not canonical to begin with is still refused.
fn parse_canonical(payload: &[u8]) -> serde_json::Result<Value> {
    // Plain JSON first: what parses so (pretty-printed JSON, say) is then
    // refused as not canonical, with that reason.
    let plain = serde_json::from_slice(payload);
    if plain.is_ok() || !payload.iter().any(|b| *b < 0x20) {
        return plain;
    }
    let mut json = Vec::with_capacity(payload.len() + 64);
    for b in payload {
        if *b < 0x20 {
            json.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            json.push(*b);
        }
    }
    serde_json::from_slice(&json).or(plain)
}

/// Checks TUF metadata for `role`: canonical JSON of the role's shape.
pub fn check_tuf(role: &str, payload: &[u8]) -> Result<Checked, Refusal> {
    let want = expected_type(role).ok_or_else(|| refuse(format!("no online role {role:?}")))?;
    let signed = parse_canonical(payload).map_err(|e| refuse(format!("not JSON: {e}")))?;
    let canonical = onionpkg_trust::sign::canonical_bytes(&signed)
        .map_err(|e| refuse(format!("no canonical form: {e}")))?;
    if canonical != payload {
        return Err(refuse("not the canonical JSON of the `signed` object"));
    }
    let ty = signed["_type"].as_str().unwrap_or_default();
    if ty != want {
        return Err(refuse(format!(
            "`_type` is {ty:?}; {role} metadata has {want:?}"
        )));
    }
    if !signed["spec_version"].is_string() {
        return Err(refuse("no `spec_version` string"));
    }
    let version = version_of(&signed["version"], "`version`")?;
    let expires = expires_of(&signed)?;
    let mut checked = Checked {
        version,
        expires,
        issued: None,
        references: Vec::new(),
        targets: None,
    };
    match want {
        "targets" => checked.targets = Some(targets_shape(role, &signed)?),
        "snapshot" => {
            let meta = signed["meta"]
                .as_object()
                .ok_or_else(|| refuse("no `meta` object"))?;
            for (name, m) in meta {
                let r = name
                    .strip_suffix(".json")
                    .filter(|r| {
                        *r == roles::TARGETS
                            || *r == roles::MIRRORS
                            || *r == roles::FEEDS
                            || roles::is_bin(r)
                    })
                    .ok_or_else(|| {
                        refuse(format!("snapshot lists {name:?}, not a targets role"))
                    })?;
                checked.references.push((
                    r.to_string(),
                    version_of(&m["version"], &format!("meta {name:?} version"))?,
                ));
            }
        }
        _ => {
            let meta = signed["meta"]
                .as_object()
                .filter(|m| m.len() == 1)
                .ok_or_else(|| refuse("a timestamp's `meta` holds exactly `snapshot.json`"))?;
            let snap = meta
                .get("snapshot.json")
                .ok_or_else(|| refuse("a timestamp's `meta` holds exactly `snapshot.json`"))?;
            checked.references.push((
                roles::SNAPSHOT.to_string(),
                version_of(&snap["version"], "meta snapshot.json version")?,
            ));
        }
    }
    Ok(checked)
}

fn targets_shape(role: &str, signed: &Value) -> Result<Targets, Refusal> {
    let list = signed["targets"]
        .as_object()
        .ok_or_else(|| refuse("no `targets` object"))?;
    if role != roles::TARGETS && signed.get("delegations").is_some() {
        return Err(refuse(format!("{role} delegates nothing in this layout")));
    }
    let mut out = Targets::new();
    for (path, t) in list {
        if !roles::is_safe_target_path(path) {
            return Err(refuse(format!("unsafe target path {path:?}")));
        }
        let allowed = match role {
            roles::MIRRORS => path == roles::MIRRORS_TARGET,
            roles::FEEDS => path.starts_with("feeds/") && path.split('/').count() == 3,
            _ => path != roles::MIRRORS_TARGET && !path.starts_with("feeds/"),
        };
        if !allowed {
            return Err(refuse(format!("{path:?} does not belong to {role}")));
        }
        let length = t["length"]
            .as_u64()
            .ok_or_else(|| refuse(format!("target {path:?} has no length")))?;
        let sha = t["hashes"]["sha256"]
            .as_str()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| refuse(format!("target {path:?} has no SHA-256")))?;
        out.insert(path.clone(), (sha.to_ascii_lowercase(), length));
    }
    Ok(out)
}

/// The targets of a payload signed before (for the change list).
pub fn targets_of(payload: &[u8]) -> Option<Targets> {
    let signed = parse_canonical(payload).ok()?;
    let list = signed["targets"].as_object()?;
    Some(
        list.iter()
            .filter_map(|(p, t)| {
                Some((
                    p.clone(),
                    (
                        t["hashes"]["sha256"].as_str()?.to_ascii_lowercase(),
                        t["length"].as_u64()?,
                    ),
                ))
            })
            .collect(),
    )
}

/// What changed from `old` (the last version signed, if known) to `new`.
pub fn diff(old: Option<&Targets>, new: &Targets) -> Vec<TargetChange> {
    let empty = Targets::new();
    let old = old.unwrap_or(&empty);
    let mut out = Vec::new();
    for (path, (sha, len)) in new {
        let change = match old.get(path) {
            None => Change::Added,
            Some(o) if o != &(sha.clone(), *len) => Change::Changed,
            Some(_) => continue,
        };
        out.push(TargetChange {
            path: path.clone(),
            change,
            sha256: Some(sha.clone()),
            length: Some(*len),
        });
    }
    for path in old.keys().filter(|p| !new.contains_key(*p)) {
        out.push(TargetChange {
            path: path.clone(),
            change: Change::Removed,
            sha256: None,
            length: None,
        });
    }
    out
}

/// Checks an announcement's signed bytes; `timestamp_key` must be among the
/// keys it names.
pub fn check_announcement(payload: &[u8], timestamp_key: &PublicKey) -> Result<Checked, Refusal> {
    let rest = payload
        .strip_prefix(ANNOUNCE_DOMAIN)
        .ok_or_else(|| refuse("not the signed bytes of an onionpkg announcement"))?;
    let split = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| refuse("no owner name"))?;
    let (owner, body) = (&rest[..split], &rest[split + 1..]);
    let owner = std::str::from_utf8(owner).map_err(|_| refuse("the owner name is not ASCII"))?;
    if owner.is_empty()
        || !owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(refuse("the owner name is not a DNS name"));
    }
    let body = std::str::from_utf8(body)
        .ok()
        .filter(|b| b.is_ascii() && !b.contains(";s="))
        .ok_or_else(|| refuse("the announcement text is not ASCII up to `;s=`"))?;
    // The trust layer's strict parser reads whole records: give it
    // placeholder signatures, one per key named.
    let keys = body
        .split(';')
        .find_map(|f| f.strip_prefix("k="))
        .ok_or_else(|| refuse("the announcement names no key"))?;
    let placeholders = vec!["A".repeat(86); keys.split(',').count()].join(",");
    let record = onionpkg_trust::announce::parse(&format!("{body};s={placeholders}"))
        .map_err(|e| refuse(format!("not an announcement: {e}")))?;
    if !record.short_ids().contains(&timestamp_key.short_id()) {
        return Err(refuse(
            "the announcement does not name this signer's timestamp key",
        ));
    }
    Ok(Checked {
        version: record.serial(),
        expires: record.expires().as_second(),
        issued: Some(record.issued().as_second()),
        references: vec![(roles::TIMESTAMP.to_string(), record.serial())],
        targets: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Targets metadata delegating to an ECDSA key: its canonical form holds
    /// the PEM's newlines raw.
    fn delegating_to_pem() -> Value {
        serde_json::json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 2,
            "expires": "2099-01-01T00:00:00Z", "targets": {},
            "delegations": {
                "keys": { "k1": { "keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256",
                    "keyval": { "public": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" } } },
                "roles": [{ "name": "mirrors", "keyids": ["k1"], "threshold": 1,
                    "terminating": true, "paths": ["mirrors.json"] }],
            },
        })
    }

    #[test]
    fn canonical_json_with_raw_newlines_in_strings_is_accepted() {
        let payload = onionpkg_trust::sign::canonical_bytes(&delegating_to_pem()).unwrap();
        assert!(payload.contains(&b'\n'), "the PEM newlines are raw");
        let checked = check_tuf("targets", &payload).unwrap();
        assert_eq!(checked.version, 2);
        assert!(targets_of(&payload).is_some());
    }

    #[test]
    fn a_control_character_outside_a_string_is_still_refused() {
        let mut payload = onionpkg_trust::sign::canonical_bytes(&delegating_to_pem()).unwrap();
        payload.insert(1, b'\n');
        let refused = check_tuf("targets", &payload).unwrap_err();
        assert_eq!(refused.reason, Reason::Payload, "{refused}");
    }
}
