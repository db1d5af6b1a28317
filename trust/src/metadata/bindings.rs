//! The keys a role is bound to, read for onionpkg's own use (the DNS
//! announcement, reports), and the keys of a role onionpkg cannot verify.
//!
//! # Invariants
//! - A key onionpkg cannot verify (an unsupported scheme such as RSA, a
//!   malformed key, a key id bound but not defined) counts towards no
//!   threshold, in sigstore-tuf's checks as in ours; it is never dropped
//!   silently either: [`role_keys`] refuses a role whose usable keys cannot
//!   meet its threshold and names each unusable key, and a missed threshold
//!   ([`VerifyError::ThresholdNotMet`]) names the role's unusable keys.

use std::collections::BTreeMap;

use sigstore_tuf::{Delegations, Key, Root};

use super::VerifyError;
use crate::keys::{KeyError, PublicKey, RoleKeys, UnusableKey};

/// The keys and threshold that `root` gives `role`.
///
/// Refuses the role ([`VerifyError::UnusableKeys`]) when the keys onionpkg
/// can verify cannot meet its threshold because some are unusable, naming
/// each of those (its scheme, for an unsupported one). Unusable keys of a
/// role that can still meet its threshold are logged and listed in
/// [`RoleKeys::unusable`].
pub fn role_keys(root: &Root, role: &str) -> Result<RoleKeys, VerifyError> {
    let binding = root
        .role(role)
        .ok_or_else(|| VerifyError::Malformed(format!("root has no {role} role")))?;
    let bound = bind(&root.keys, &binding.keyids, binding.threshold);
    if !bound.unusable.is_empty() && bound.keys.len() < bound.threshold.max(1) {
        return Err(VerifyError::UnusableKeys {
            role: role.to_string(),
            threshold: bound.threshold,
            usable: bound.keys.len(),
            unusable: bound.unusable,
        });
    }
    for key in &bound.unusable {
        tracing::warn!(role, "{key}: its signatures count towards no threshold");
    }
    Ok(bound)
}

/// The keys of `keyids`, looked up in `keys`, split into usable and not.
fn bind(keys: &BTreeMap<String, Key>, keyids: &[String], threshold: usize) -> RoleKeys {
    let mut bound = RoleKeys::new(BTreeMap::new(), threshold);
    for id in keyids {
        let parsed = keys
            .get(id)
            .ok_or_else(|| {
                KeyError::BadPublicKey("bound to the role but not defined in the metadata".into())
            })
            .and_then(PublicKey::from_tuf);
        match parsed {
            Ok(key) => {
                bound.keys.insert(id.clone(), key);
            }
            Err(error) => bound.unusable.push(UnusableKey {
                key_id: id.clone(),
                error,
            }),
        }
    }
    bound
}

/// Adds to a missed threshold the keys of its role that onionpkg cannot
/// verify, looked up in `root` (top-level roles) or `delegations` (the
/// roles the top-level targets role delegates to).
pub(super) fn explain(
    err: VerifyError,
    root: Option<&Root>,
    delegations: Option<&Delegations>,
) -> VerifyError {
    let VerifyError::ThresholdNotMet {
        role,
        found,
        threshold,
        unusable,
    } = err
    else {
        return err;
    };
    let from_root = root.and_then(|r| Some((&r.keys, &r.role(&role)?.keyids)));
    let delegated = || {
        delegations.and_then(|d| {
            let bound = d.roles.iter().find(|r| r.name == role)?;
            Some((&d.keys, &bound.keyids))
        })
    };
    let unusable = match from_root.or_else(delegated) {
        Some((keys, keyids)) if unusable.is_empty() => bind(keys, keyids, threshold).unusable,
        _ => unusable,
    };
    VerifyError::ThresholdNotMet {
        role,
        found,
        threshold,
        unusable,
    }
}

/// The `signed` part of a root file, if it parses; for error reports only.
pub(super) fn parse_root(bytes: &[u8]) -> Option<Root> {
    let mut envelope: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    serde_json::from_value(envelope.get_mut("signed")?.take()).ok()
}

/// The unusable keys and why, for messages: `; ` between them.
pub(super) fn list(unusable: &[UnusableKey]) -> String {
    let reasons: Vec<String> = unusable.iter().map(ToString::to_string).collect();
    reasons.join("; ")
}

/// The unusable keys as a message suffix, empty if there are none.
pub(super) fn note(unusable: &[UnusableKey]) -> String {
    if unusable.is_empty() {
        String::new()
    } else {
        format!("; {}", list(unusable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root binding `role` to the given key objects with `threshold`.
    fn root_with(role: &str, keys: &[(&str, serde_json::Value)], threshold: usize) -> Root {
        let ids: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
        let mut roles = serde_json::Map::new();
        for name in ["root", "targets", "snapshot", "timestamp"] {
            let keyids = if name == role { ids.clone() } else { vec![] };
            roles.insert(
                name.into(),
                serde_json::json!({ "keyids": keyids, "threshold": threshold }),
            );
        }
        let keys: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|(id, k)| ((*id).to_string(), k.clone()))
            .collect();
        serde_json::from_value(serde_json::json!({
            "_type": "root",
            "spec_version": "1.0.31",
            "version": 1,
            "expires": "2030-01-01T00:00:00Z",
            "consistent_snapshot": true,
            "keys": keys,
            "roles": roles,
        }))
        .unwrap()
    }

    fn rsa_key() -> serde_json::Value {
        serde_json::json!({
            "keytype": "rsa",
            "scheme": "rsassa-pss-sha256",
            "keyval": { "public": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n" },
        })
    }

    fn ed25519_key() -> serde_json::Value {
        PublicKey::from_ed25519_bytes(&[0x11; 32])
            .unwrap()
            .to_json()
    }

    #[test]
    fn a_role_that_only_unsupported_keys_could_sign_is_refused_naming_the_scheme() {
        let root = root_with("timestamp", &[("rsa1", rsa_key())], 1);
        match role_keys(&root, "timestamp") {
            Err(e @ VerifyError::UnusableKeys { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "the timestamp role needs 1 signature(s), and onionpkg can verify only 0 \
                     of its keys: key rsa1 uses scheme rsassa-pss-sha256, which onionpkg does \
                     not verify"
                );
                assert_eq!(
                    onionpkg_core::HasKind::kind(&e),
                    onionpkg_core::ErrorKind::Key
                );
            }
            other => panic!("expected UnusableKeys, got {other:?}"),
        }
    }

    #[test]
    fn unusable_keys_of_a_role_that_can_meet_its_threshold_are_listed() {
        let mut root = root_with(
            "timestamp",
            &[("ed", ed25519_key()), ("rsa1", rsa_key())],
            1,
        );
        // Bound, but not defined.
        let binding = root.roles.get_mut("timestamp").unwrap();
        binding.keyids.push("gone".into());
        let bound = role_keys(&root, "timestamp").unwrap();
        assert_eq!(bound.keys.keys().collect::<Vec<_>>(), ["ed"]);
        let reasons: Vec<String> = bound.unusable.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "key rsa1 uses scheme rsassa-pss-sha256, which onionpkg does not verify",
                "key gone cannot be used: invalid public key: bound to the role but not \
                 defined in the metadata",
            ]
        );
        // Two of three keys unusable: a 2-of-3 role is refused.
        let mut two = root.clone();
        two.roles.get_mut("timestamp").unwrap().threshold = 2;
        assert!(matches!(
            role_keys(&two, "timestamp"),
            Err(VerifyError::UnusableKeys {
                usable: 1,
                threshold: 2,
                ..
            })
        ));
    }

    #[test]
    fn a_missed_threshold_names_the_unusable_keys_of_its_role() {
        let root = root_with("snapshot", &[("rsa1", rsa_key())], 1);
        let err = VerifyError::ThresholdNotMet {
            role: "snapshot".into(),
            found: 0,
            threshold: 1,
            unusable: vec![],
        };
        let err = explain(err, Some(&root), None);
        assert_eq!(
            err.to_string(),
            "snapshot metadata has 0 valid signature(s), 1 required; key rsa1 uses scheme \
             rsassa-pss-sha256, which onionpkg does not verify"
        );
        // A role bound only in a delegation.
        let delegations: Delegations = serde_json::from_value(serde_json::json!({
            "keys": { "rsa2": rsa_key() },
            "roles": [{ "name": "feeds", "keyids": ["rsa2"], "threshold": 1,
                        "terminating": true, "paths": ["feeds/*"] }],
        }))
        .unwrap();
        let err = VerifyError::ThresholdNotMet {
            role: "feeds".into(),
            found: 0,
            threshold: 1,
            unusable: vec![],
        };
        let err = explain(err, Some(&root), Some(&delegations));
        assert!(
            err.to_string().ends_with(
                "; key rsa2 uses scheme rsassa-pss-sha256, which onionpkg does not verify"
            ),
            "{err}"
        );
    }
}
