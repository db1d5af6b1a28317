//! Tests of key parsing, key ids and signature verification, with keys and
//! signatures made by python-tuf / securesystemslib as the reference.

use proptest::prelude::*;

use super::testing::P256Signer;
use super::*;

/// An ECDSA P-256 key object as securesystemslib 1.6 writes it
/// (`CryptoSigner.generate_ecdsa().public_key.to_dict()`).
const PY_KEY: &str = r#"{"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAtwlAKGle5hO/zGSp8BsGMhGaBX1\nDpO2trnbT6se3PlkPccVfGmrvd9o+utdwnz5al84SSfK/9vBDChVRwxxsg==\n-----END PUBLIC KEY-----\n"}}"#;

/// securesystemslib's key id of [`PY_KEY`].
const PY_KEY_ID: &str = "9d7baf625eac20de762df96db7be9dffd65d8d965ddd90aee1d6d0925cd97f3a";

/// The uncompressed point of [`PY_KEY`].
const PY_POINT: &str = "0402dc2500a1a57b984eff3192a7c06c18c8466815f50e93b6b6b9db4fab1edcf9643dc7157c69abbddf68faeb5dc27cf96a5f384927caffdbc10c2855470c71b2";

/// What securesystemslib signed with [`PY_KEY`].
const PY_MSG: &[u8] = br#"{"_type":"timestamp","version":1}"#;

/// Its signature with `s` above n/2 (DER), which OpenSSL makes about half
/// the time and which must verify.
const PY_SIG_HIGH_S: &str = "3046022100e24b4c5714a157dd8bec13fbf051f08ba19df5f3df0f850367d34ee5121e875d022100b0c13990f113f0b8e9d2a20749f12f82c03fa32172bd4507338865af2801f7c9";

/// Its signature with `s` below n/2 (DER).
const PY_SIG_LOW_S: &str = "3045022100addd6792a9678e8383f4f5af4cfcff586509f93b6bd7114cccc48d25c2c8eee202206d10461f3fc238a2522aaa4bdfbe5687b3799eee6a51371a80855d8e33f660f6";

/// [`PY_SIG_LOW_S`] in the fixed form `r || s`.
const PY_SIG_LOW_S_FIXED: &str = "addd6792a9678e8383f4f5af4cfcff586509f93b6bd7114cccc48d25c2c8eee26d10461f3fc238a2522aaa4bdfbe5687b3799eee6a51371a80855d8e33f660f6";

/// A P-384 public key (PEM SubjectPublicKeyInfo), made by `cryptography`.
const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAERTv4RFzK71EfsQ8ubSxqKepZVl4vCy2K\nlzbW94w0oZpUWFjNQsLG5IS2K0YAy1jev0g9wVpQV76wZk4hEa5NK4tzWOhH+0uo\nr2eEY6R/l/TILU8LjEEvdJMHnetPJAwg\n-----END PUBLIC KEY-----\n";

/// The TUF key id sigstore-tuf computes (through the installed provider).
fn sigstore_key_id(key: &sigstore_tuf::Key) -> String {
    crate::crypto::install();
    key.key_id().unwrap()
}

fn py_key() -> PublicKey {
    PublicKey::from_json(PY_KEY.as_bytes()).unwrap()
}

fn key_object(keytype: &str, scheme: &str, public: &str) -> sigstore_tuf::Key {
    serde_json::from_value(super::key_object(keytype, scheme, public)).unwrap()
}

fn ecdsa_key(public: &str) -> Result<PublicKey, KeyError> {
    PublicKey::from_tuf(&key_object("ecdsa", "ecdsa-sha2-nistp256", public))
}

/// The error of a key that must not parse.
fn bad_key(public: &str) -> String {
    match ecdsa_key(public) {
        Err(KeyError::BadPublicKey(reason)) => reason,
        other => panic!("expected BadPublicKey for {public:?}, got {other:?}"),
    }
}

#[test]
fn a_securesystemslib_ecdsa_key_parses_with_its_key_id_and_round_trips() {
    let key = py_key();
    assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
    assert_eq!(key.algorithm().scheme(), "ecdsa-sha2-nistp256");
    assert_eq!(key.key_id(), PY_KEY_ID);
    assert_eq!(hex::encode(key.raw_bytes()), PY_POINT);
    let declared: serde_json::Value = serde_json::from_str(PY_KEY).unwrap();
    assert_eq!(key.to_json(), declared);
    assert_eq!(PublicKey::from_tuf(&key.to_tuf()).unwrap(), key);
    // sigstore-tuf computes the same id over the same object.
    assert_eq!(sigstore_key_id(&key.to_tuf()), PY_KEY_ID);
    // Built from the point alone, the key object is byte for byte the one
    // securesystemslib writes: same PEM, same id.
    let from_point = PublicKey::from_ecdsa_p256_point(&hex::decode(PY_POINT).unwrap()).unwrap();
    assert_eq!(from_point, key);
    assert_eq!(from_point.key_id(), PY_KEY_ID);
    assert!(format!("{key:?}").contains(PY_KEY_ID));
}

#[test]
fn the_deprecated_ecdsa_keytype_is_accepted_and_kept_for_the_key_id() {
    let mut object: serde_json::Value = serde_json::from_str(PY_KEY).unwrap();
    object["keytype"] = "ecdsa-sha2-nistp256".into();
    let key = PublicKey::from_json(&serde_json::to_vec(&object).unwrap()).unwrap();
    assert_eq!(key.to_json(), object);
    let expected: sigstore_tuf::Key = serde_json::from_value(object).unwrap();
    assert_eq!(key.key_id(), sigstore_key_id(&expected));
    assert_ne!(key.key_id(), PY_KEY_ID);
    assert_ne!(key, py_key());
}

#[test]
fn securesystemslib_der_signatures_verify_with_either_s() {
    let key = py_key();
    for sig in [PY_SIG_HIGH_S, PY_SIG_LOW_S] {
        key.verify(PY_MSG, &hex::decode(sig).unwrap()).unwrap();
        // Not over another message.
        assert_eq!(
            key.verify(b"{}", &hex::decode(sig).unwrap()),
            Err(KeyError::BadSignature)
        );
    }
    let fixed: [u8; 64] = hex::decode(PY_SIG_LOW_S_FIXED).unwrap().try_into().unwrap();
    key.verify_fixed(PY_MSG, &fixed).unwrap();
    // Each form only where it belongs.
    assert_eq!(key.verify(PY_MSG, &fixed), Err(KeyError::BadSignature));
}

#[test]
fn the_crypto_provider_verifies_ecdsa_p256_for_sigstore_tuf() {
    crate::crypto::install();
    let key: sigstore_tuf::Key = serde_json::from_str(PY_KEY).unwrap();
    let sig = |hex_sig: &str| sigstore_types::SignatureBytes::new(hex::decode(hex_sig).unwrap());
    key.verify(PY_MSG, &sig(PY_SIG_HIGH_S)).unwrap();
    key.verify(PY_MSG, &sig(PY_SIG_LOW_S)).unwrap();
    let err = key.verify(b"other", &sig(PY_SIG_LOW_S)).unwrap_err();
    assert!(
        matches!(
            err,
            sigstore_tuf::Error::Crypto(sigstore_crypto::Error::Verification(_))
        ),
        "{err:?}"
    );
    // Keys made here verify there too.
    let signer = P256Signer::generate();
    let msg = b"canonical signed bytes";
    let public = signer.public().to_tuf();
    public
        .verify(
            msg,
            &sigstore_types::SignatureBytes::new(signer.sign_der(msg)),
        )
        .unwrap();
    assert_eq!(signer.public().key_id(), sigstore_key_id(&public));
}

#[test]
fn fresh_p256_keys_sign_and_verify_in_both_forms() {
    let signer = P256Signer::generate();
    let key = signer.public();
    assert_eq!(key.raw_bytes().len(), 65);
    assert_eq!(key.short_id().len(), 4);
    let msg = b"message";
    key.verify(msg, &signer.sign_der(msg)).unwrap();
    key.verify_fixed(msg, &signer.sign_fixed(msg)).unwrap();
    let other = P256Signer::generate();
    assert_eq!(
        other.public().verify(msg, &signer.sign_der(msg)),
        Err(KeyError::BadSignature)
    );
    assert_eq!(
        other.public().verify_fixed(msg, &signer.sign_fixed(msg)),
        Err(KeyError::BadSignature)
    );
}

#[test]
fn malformed_ecdsa_keys_are_refused_with_a_reason() {
    let reason = bad_key("not a key");
    assert!(reason.contains("not a P-256 public key"), "{reason}");
    let reason = bad_key("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n");
    assert!(reason.contains("not a P-256 public key"), "{reason}");
    // A PEM block of another kind.
    let cert = P384_PEM.replace("PUBLIC KEY", "CERTIFICATE");
    assert!(bad_key(&cert).contains("PUBLIC KEY"));
    // Valid SubjectPublicKeyInfo, wrong curve or algorithm.
    let reason = bad_key(P384_PEM);
    assert!(reason.contains("SPKI algorithm does not match"), "{reason}");
    let ed_spki = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAtxXXHH5dGMJpZfBaTuZHZQumePZdE2+WS9uo/uyBpWU=\n-----END PUBLIC KEY-----\n";
    let reason = bad_key(ed_spki);
    assert!(reason.contains("not a P-256 public key"), "{reason}");
    // The declared PEM cut short.
    let py: serde_json::Value = serde_json::from_str(PY_KEY).unwrap();
    let pem = py["keyval"]["public"].as_str().unwrap();
    bad_key(&pem[..pem.len() / 2]);
    // An ECDSA key under another keytype.
    assert!(matches!(
        PublicKey::from_tuf(&key_object("rsa", "ecdsa-sha2-nistp256", pem)),
        Err(KeyError::Unsupported { .. })
    ));
}

#[test]
fn points_must_be_uncompressed_p256_points() {
    let point = hex::decode(PY_POINT).unwrap();
    let mut compressed = vec![0x02 | (point[64] & 1)];
    compressed.extend_from_slice(&point[1..33]);
    let err = PublicKey::from_ecdsa_p256_point(&compressed).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");
    let err = PublicKey::from_ecdsa_p256_point(&point[..64]).unwrap_err();
    assert!(err.to_string().contains("65 bytes"), "{err}");
    for short in [&[][..], &point[1..]] {
        let err = PublicKey::from_ecdsa_p256_point(short).unwrap_err();
        assert!(err.to_string().contains("P-256 point"), "{err}");
    }
    // A point off the curve: well-formed, but nothing verifies by it.
    let mut off = point.clone();
    off[64] ^= 1;
    let key = PublicKey::from_ecdsa_p256_point(&off).unwrap();
    assert_eq!(
        key.verify(PY_MSG, &hex::decode(PY_SIG_LOW_S).unwrap()),
        Err(KeyError::BadSignature)
    );
    // Nor by the point at infinity's encoding.
    let err = PublicKey::from_ecdsa_p256_point(&[0]).unwrap_err();
    assert!(err.to_string().contains("must start with 04"), "{err}");
}

#[test]
fn malformed_der_signatures_are_bad_signatures() {
    let key = py_key();
    let good = hex::decode(PY_SIG_LOW_S).unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let mut long_length = good.clone();
    long_length[1] = 0x81;
    // r with a redundant leading zero byte: valid BER, not DER.
    let mut padded = vec![0x30, good[1] + 1, 0x02, good[3] + 1, 0x00];
    padded.extend_from_slice(&good[4..]);
    for sig in [
        vec![],
        vec![0x30],
        good[..good.len() - 1].to_vec(),
        trailing,
        long_length,
        padded,
        vec![0xff; 1000],
    ] {
        assert_eq!(
            key.verify(PY_MSG, &sig),
            Err(KeyError::BadSignature),
            "{sig:02x?}"
        );
    }
}

#[test]
fn other_schemes_are_refused_naming_the_scheme() {
    for (keytype, scheme) in [
        ("rsa", "rsassa-pss-sha256"),
        ("rsa", "rsa-pkcs1v15-sha256"),
        ("ecdsa", "ecdsa-sha2-nistp384"),
        ("mldsa", "ml-dsa-65/1"),
        ("ed25519", "ed25519-ph"),
        ("made-up", "made-up"),
    ] {
        let err = PublicKey::from_tuf(&key_object(keytype, scheme, P384_PEM)).unwrap_err();
        assert_eq!(
            err,
            KeyError::Unsupported {
                keytype: keytype.into(),
                scheme: scheme.into()
            }
        );
        assert!(err.to_string().contains(scheme), "{err}");
        assert!(err.to_string().contains("does not verify"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Key);
    }
}

#[test]
fn ed25519_keys_are_unchanged() {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let raw = signing.verifying_key().to_bytes();
    let key = PublicKey::from_ed25519_bytes(&raw).unwrap();
    assert_eq!(key.algorithm(), Algorithm::Ed25519);
    assert_eq!(key.raw_bytes(), raw);
    assert_eq!(key.key_id(), sigstore_key_id(&key.to_tuf()));
    assert_eq!(
        PublicKey::from_json(&serde_json::to_vec(&key.to_json()).unwrap()).unwrap(),
        key
    );
    let sig = ed25519_dalek::Signer::sign(&signing, b"m").to_bytes();
    key.verify(b"m", &sig).unwrap();
    key.verify_fixed(b"m", &sig).unwrap();
    assert_eq!(key.verify(b"n", &sig), Err(KeyError::BadSignature));
    let err = PublicKey::from_ed25519_bytes(&raw[..31]).unwrap_err();
    assert!(err.to_string().contains("31 bytes, not 32"), "{err}");
}

#[test]
fn a_threshold_counts_ed25519_and_ecdsa_signatures_alike() {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let ed = PublicKey::from_ed25519_bytes(signing.verifying_key().as_bytes()).unwrap();
    let p256 = P256Signer::generate();
    let ec = p256.public();
    let role = RoleKeys::new(
        [(ed.key_id(), ed.clone()), (ec.key_id(), ec.clone())]
            .into_iter()
            .collect(),
        2,
    );
    let msg = b"signed";
    let ed_sig = ed25519_dalek::Signer::sign(&signing, msg)
        .to_bytes()
        .to_vec();
    let ec_sig = p256.sign_der(msg);
    let (ed_id, ec_id) = (ed.key_id(), ec.key_id());
    let both = [(ed_id.as_str(), &ed_sig[..]), (ec_id.as_str(), &ec_sig[..])];
    assert_eq!(role.count_valid(msg, both), 2);
    assert_eq!(role.count_valid(msg, both[..1].iter().copied()), 1);
    // A signature filed under the other key's id counts for nothing.
    let swapped = [(ed_id.as_str(), &ec_sig[..]), (ec_id.as_str(), &ed_sig[..])];
    assert_eq!(role.count_valid(msg, swapped), 0);
}

proptest! {
    #[test]
    fn arbitrary_key_text_never_panics(public in ".{0,300}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ecdsa_key(&public);
        use base64::Engine as _;
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&body)
        );
        let refused = ecdsa_key(&pem);
        prop_assert!(matches!(refused, Err(KeyError::BadPublicKey(_))), "{:?}", refused);
    }

    #[test]
    fn arbitrary_signatures_never_verify_or_panic(sig in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(py_key().verify(PY_MSG, &sig), Err(KeyError::BadSignature));
        let fixed: [u8; 64] = std::array::from_fn(|i| sig.get(i).copied().unwrap_or(0));
        prop_assert_eq!(py_key().verify_fixed(PY_MSG, &fixed), Err(KeyError::BadSignature));
    }

    #[test]
    fn arbitrary_points_never_panic(point in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(key) = PublicKey::from_ecdsa_p256_point(&point) {
            prop_assert_eq!(key.verify(PY_MSG, &hex::decode(PY_SIG_LOW_S).unwrap()), Err(KeyError::BadSignature));
        }
    }
}
