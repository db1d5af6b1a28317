//! Signatures made through the signer verify with the trust layer, against a
//! root that names the token's keys.

use onionpkg_signer::client::SignerClient;
use onionpkg_trust::keys::{PublicKey, RoleKeys};
use onionpkg_trust::sign::{SecretKey, canonical_bytes, sign_metadata};

use crate::common::{Env, now, timestamp};

/// A root (signed by a file key standing for the offline root keys) whose
/// timestamp role is the token's timestamp key.
pub fn root(env: &Env) -> serde_json::Value {
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
pub fn role_keys(root: &serde_json::Value, role: &str) -> RoleKeys {
    let signed = &root["signed"];
    let ids: Vec<&str> = signed["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    RoleKeys::new(
        ids.iter()
            .map(|id| {
                let k = PublicKey::from_json(signed["keys"][*id].to_string().as_bytes()).unwrap();
                assert_eq!(k.key_id(), *id);
                (id.to_string(), k)
            })
            .collect(),
        signed["roles"][role]["threshold"].as_u64().unwrap() as usize,
    )
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

/// The announcement text (up to `;s=`) and the bytes its signatures cover.
pub fn announcement(
    env: &Env,
    owner: &str,
    serial: u64,
    issued: i64,
    expires: i64,
) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
    let body = format!(
        "v=1;c=stable;n={serial};t={issued};e={expires};k={};h={hash}",
        env.key("timestamp").short_id()
    );
    let mut msg = b"onionpkg-announce-v1\0".to_vec();
    msg.extend_from_slice(owner.as_bytes());
    msg.push(0);
    msg.extend_from_slice(body.as_bytes());
    (body, msg)
}

#[test]
fn an_announcement_signed_through_the_signer_verifies_and_follows_the_timestamp() {
    use base64::Engine as _;
    use onionpkg_signer::request::Reason;

    let env = Env::new("");
    let _signer = env.start();
    let t = now().as_second();
    let owner = "_onionpkg.example.org";
    let mut client = SignerClient::new(env.transport(), crate::common::copy(&env.release))
        .expecting(env.key("timestamp"));
    // Timestamp version 3 is the last one signed here.
    for v in [2, 3] {
        let mut env_ts =
            serde_json::json!({ "signed": timestamp(v, t + 3600, 1), "signatures": [] });
        client
            .add_signature("timestamp", &mut env_ts, now())
            .unwrap();
    }
    let ann = |serial, issued| announcement(&env, owner, serial, issued, t + 3600);
    // An older timestamp version is not announced.
    let (_, msg) = ann(2, t);
    let err = client
        .sign_announcement(&msg, 2, crate::common::at(t + 3600), now())
        .unwrap_err();
    assert!(
        matches!(err, onionpkg_signer::Error::Client(onionpkg_signer_client::ClientError::Refused(ref r)) if r.reason == Reason::Reference),
        "{err}"
    );
    let (body, msg) = ann(3, t);
    let (_, sig) = client
        .sign_announcement(&msg, 3, crate::common::at(t + 3600), now())
        .unwrap();
    let text = format!(
        "{body};s={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig)
    );
    let keys = role_keys(&root(&env), "timestamp");
    let verified = onionpkg_trust::announce::parse(&text)
        .unwrap()
        .verify(&onionpkg_trust::announce::Expectation {
            name: owner,
            channel: "stable",
            keys: &keys,
            now: now(),
            tolerance: onionpkg_trust::clock::Tolerance::ZERO,
            last_seen: None,
        })
        .unwrap();
    assert_eq!(verified.serial, 3);
    // The same serial again needs a later issue time.
    let (_, msg) = ann(3, t);
    let err = client
        .sign_announcement(&msg, 3, crate::common::at(t + 3600), now())
        .unwrap_err();
    assert!(
        matches!(err, onionpkg_signer::Error::Client(onionpkg_signer_client::ClientError::Refused(ref r)) if r.reason == Reason::Version),
        "{err}"
    );
    let (_, msg) = ann(3, t + 1);
    client
        .sign_announcement(&msg, 3, crate::common::at(t + 3600), now())
        .unwrap();
    // Bytes that are not an announcement are refused.
    let err = client
        .sign_announcement(
            b"onionpkg-announce-v1\0x\0v=2",
            3,
            crate::common::at(t + 3600),
            now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, onionpkg_signer::Error::Client(onionpkg_signer_client::ClientError::Refused(ref r)) if r.reason == Reason::Payload),
        "{err}"
    );
}
