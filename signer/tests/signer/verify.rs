//! Signatures made through the signer verify with the trust layer, against a
//! root that names the token's keys.

use onionpkg_signer::client::SignerClient;
use onionpkg_trust::keys::{PublicKey, RoleKeys};
use onionpkg_trust::sign::{SecretKey, canonical_bytes, sign_metadata};

use crate::common::{Env, now, timestamp};

/// A root (signed by a file key standing for the offline root keys) whose
/// timestamp role is the token's timestamp key.
fn root(env: &Env) -> serde_json::Value {
    let root_key = SecretKey::generate();
    let ts = env.key("timestamp");
    let signed = serde_json::json!({
        "_type": "root", "spec_version": "1.0.31", "version": 1, "consistent_snapshot": true,
        "expires": "2099-01-01T00:00:00Z",
        "keys": { root_key.public().key_id(): root_key.public().to_json(), ts.key_id(): ts.to_json() },
        "roles": {
            "root": { "keyids": [root_key.public().key_id()], "threshold": 1 },
            "timestamp": { "keyids": [ts.key_id()], "threshold": 1 },
        },
    });
    sign_metadata(signed, &[&root_key]).unwrap()
}

/// The keys and threshold `root` gives `role`.
fn role_keys(root: &serde_json::Value, role: &str) -> RoleKeys {
    let signed = &root["signed"];
    let ids: Vec<&str> = signed["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    RoleKeys {
        keys: ids
            .iter()
            .map(|id| {
                let k = PublicKey::from_json(signed["keys"][*id].to_string().as_bytes()).unwrap();
                assert_eq!(k.key_id(), *id);
                (id.to_string(), k)
            })
            .collect(),
        threshold: signed["roles"][role]["threshold"].as_u64().unwrap() as usize,
    }
}

#[test]
fn a_timestamp_signed_through_the_signer_verifies_against_the_root() {
    let env = Env::new("");
    let _signer = env.start();
    let root = root(&env);
    let t = now().as_second();
    let mut envelope = serde_json::json!({ "signed": timestamp(1, t + 3600, 1), "signatures": [] });
    let mut client = SignerClient::new(env.transport(), crate::common::copy(&env.release))
        .expecting(env.key("timestamp"));
    let signed = client
        .add_signature("timestamp", &mut envelope, now())
        .unwrap();
    assert_eq!(signed.log_index, 0);
    let keys = role_keys(&root, "timestamp");
    let msg = canonical_bytes(&envelope["signed"]).unwrap();
    let sigs: Vec<(String, Vec<u8>)> = envelope["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["keyid"].as_str().unwrap().to_string(),
                hex::decode(s["sig"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let valid = keys.count_valid(&msg, sigs.iter().map(|(k, s)| (k.as_str(), s.as_slice())));
    assert!(valid >= keys.threshold, "{valid} valid signatures");
    // A changed payload does not verify: the signature covers the content.
    let mut other = envelope["signed"].clone();
    other["version"] = 2.into();
    let msg = canonical_bytes(&other).unwrap();
    assert_eq!(
        keys.count_valid(&msg, sigs.iter().map(|(k, s)| (k.as_str(), s.as_slice()))),
        0
    );
}
