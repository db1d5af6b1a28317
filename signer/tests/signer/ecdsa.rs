//! ECDSA P-256 keys (`keys generate --key-type ecdsa-p256`): made in the
//! token, not readable, reported in the TUF form python-tuf writes, and
//! signing TUF metadata (DER) and announcements (`r || s`) that the trust
//! layer verifies.

use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use onionpkg_signer::client::SignerClient;
use onionpkg_trust::keys::Algorithm;
use onionpkg_trust::sign::canonical_bytes;

use crate::common::{Env, now, run, timestamp};
use crate::token::{MODE, child, find, session};
use crate::verify::{announcement, role_keys, root};

/// DER of the object identifier of P-256 (prime256v1, 1.2.840.10045.3.1.7),
/// written out here so that the test does not share the code it checks.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// In the child: the P-256 timestamp key refuses to give its value and is
/// an EC key on P-256 that never left the token.
fn inspect_p256() {
    let (_ctx, session) = session();
    let label = "onionpkg-timestamp";
    let keys = find(&session, ObjectClass::PRIVATE_KEY, label);
    assert_eq!(keys.len(), 1, "{label}");
    // C_GetAttributeValue(CKA_VALUE) answers CKR_ATTRIBUTE_SENSITIVE.
    let info = session
        .get_attribute_info(keys[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info[..], [AttributeInfo::Sensitive]),
        "{label}: {info:?}"
    );
    let got = session
        .get_attributes(keys[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        !got.iter().any(|a| matches!(a, Attribute::Value(_))),
        "{label} gave its value"
    );
    let attrs = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::KeyType,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::EcParams,
            ],
        )
        .unwrap();
    for want in [
        Attribute::KeyType(KeyType::EC),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::Sensitive(true),
        Attribute::AlwaysSensitive(true),
        Attribute::EcParams(P256_OID.to_vec()),
    ] {
        assert!(attrs.contains(&want), "{label}: {want:?} not in {attrs:?}");
    }
    eprintln!("checked the P-256 key");
}

#[test]
fn a_p256_key_in_the_token_cannot_be_read_out_and_signs_what_the_trust_layer_verifies() {
    if std::env::var(MODE).as_deref() == Ok("inspect-p256") {
        return inspect_p256();
    }
    let env = Env::with_keys(
        "",
        &["log", "timestamp:ecdsa-p256", "snapshot", "targets"],
        None,
    );
    let test =
        "ecdsa::a_p256_key_in_the_token_cannot_be_read_out_and_signs_what_the_trust_layer_verifies";
    let out = child(&env, test, "inspect-p256");
    assert!(out.contains("checked the P-256 key"), "{out}");

    // The public key as python-tuf / securesystemslib writes one.
    let ts = env.key("timestamp");
    assert_eq!(ts.algorithm(), Algorithm::EcdsaP256);
    let json = ts.to_json();
    assert_eq!(json["keytype"], "ecdsa", "{json}");
    assert_eq!(json["scheme"], "ecdsa-sha2-nistp256", "{json}");
    let pem = json["keyval"]["public"].as_str().unwrap();
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
            && pem.ends_with("-----END PUBLIC KEY-----\n"),
        "{pem}"
    );
    // `keys show` checks it as the server does and reports the same key.
    let out = run(&env, &["keys", "show", "--role", "timestamp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("key id: {}", ts.key_id())), "{text}");
    assert!(text.contains("scheme: ecdsa-sha2-nistp256"), "{text}");
    assert_eq!(
        env.key("snapshot").algorithm(),
        Algorithm::Ed25519,
        "the default stays ed25519"
    );

    // A timestamp signed through the signer verifies against a root that
    // lists the P-256 key; the signature is DER.
    let signer = env.start();
    let root = root(&env);
    let t = now().as_second();
    let mut envelope = serde_json::json!({ "signed": timestamp(1, t + 3600, 1), "signatures": [] });
    let mut client =
        SignerClient::new(env.transport(), crate::common::copy(&env.release)).expecting(ts.clone());
    let signed = client
        .add_signature("timestamp", &mut envelope, now())
        .unwrap();
    assert_eq!(signed.key_id, ts.key_id());
    let sig = hex::decode(envelope["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    assert_eq!(sig[0], 0x30, "a DER SEQUENCE: {}", hex::encode(&sig));
    let keys = role_keys(&root, "timestamp");
    let msg = canonical_bytes(&envelope["signed"]).unwrap();
    assert_eq!(
        keys.count_valid(&msg, [(signed.key_id.as_str(), &sig[..])]),
        1
    );
    let mut other = envelope["signed"].clone();
    other["version"] = 2.into();
    let other = canonical_bytes(&other).unwrap();
    assert_eq!(
        keys.count_valid(&other, [(signed.key_id.as_str(), &sig[..])]),
        0
    );

    // An announcement is signed in its fixed 64-byte form.
    let (_, msg) = announcement(&env, "_onionpkg.example.org", 1, t, t + 3600);
    let (_, sig) = client
        .sign_announcement(&msg, 1, crate::common::at(t + 3600), now())
        .unwrap();
    let fixed: [u8; 64] = sig.as_slice().try_into().unwrap();
    ts.verify_fixed(&msg, &fixed).unwrap();
    drop(signer);
}

#[test]
fn the_log_key_cannot_be_ecdsa_and_unknown_key_types_are_refused() {
    let env = Env::bare("");
    let out = run(
        &env,
        &[
            "keys",
            "generate",
            "--role",
            "log",
            "--key-type",
            "ecdsa-p256",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("signed notes, which are ed25519"), "{err}");
    let out = run(
        &env,
        &[
            "keys",
            "generate",
            "--role",
            "timestamp",
            "--key-type",
            "rsa",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("expected ed25519 or ecdsa-p256"), "{err}");
}
