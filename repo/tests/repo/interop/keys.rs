//! Key types other than ed25519, made by python-tuf (`make_repo.py --keys`):
//! a repository signed with ECDSA P-256 keys only, one mixing ed25519 and
//! ECDSA keys (down to a 2-of-2 threshold met by one key of each kind), and
//! one whose online roles use RSA keys, a scheme onionpkg does not verify.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onionpkg_repo::verify::verify_tree;
use onionpkg_trust::keys::{Algorithm, PublicKey};
use onionpkg_trust::metadata::{Client, FsRepository, VerifyError, check_root, role_keys};
use serde_json::Value;

use super::{PY_DELEGATED, PY_TOP_LEVEL, expected, python, python_repo_with, stored_target};
use crate::util::{block_on, client_run};

/// The newest root `make_repo.py` wrote (version 2, after its rotation).
fn newest_root(dir: &Path) -> PathBuf {
    dir.join("metadata").join("2.root.json")
}

/// The key objects of the newest root, by their declared key id.
fn root_keys(dir: &Path) -> BTreeMap<String, Value> {
    let root: Value = serde_json::from_slice(&std::fs::read(newest_root(dir)).unwrap()).unwrap();
    root["signed"]["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, key)| (id.clone(), key.clone()))
        .collect()
}

/// The pinned root: version 1, so that the client walks the rotation.
fn pinned_root(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("metadata").join("1.root.json")).unwrap()
}

/// Refreshes from the pinned root and downloads both targets (the top-level
/// one and the delegated one), checking their bytes.
fn refresh_and_download_both(dir: &Path) {
    let now = Timestamp::now();
    block_on(async {
        let mut client = Client::new(&pinned_root(dir), None, FsRepository::from_tree(dir))
            .unwrap_or_else(|e| panic!("pinning the root: {e}"));
        client
            .refresh(now)
            .await
            .unwrap_or_else(|e| panic!("refresh: {e}"));
        assert_eq!(client.root().version, 2, "the root rotation was followed");
        for path in [PY_TOP_LEVEL, PY_DELEGATED] {
            let bytes = client
                .fetch_target(path, now)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(bytes, expected(dir, path), "{path}");
        }
    });
}

/// Rewrites the metadata file `name` with `edit` applied to its JSON.
fn edit_metadata(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("metadata").join(name);
    let mut value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// Refreshes from scratch and expects the threshold of `role` to be missed
/// with `found` valid signatures of `threshold`.
fn expect_threshold_not_met(dir: &Path, role: &str, found: usize, threshold: usize) -> VerifyError {
    let err = client_run(dir, &pinned_root(dir), None, Timestamp::now(), None);
    match &err {
        Err(VerifyError::ThresholdNotMet {
            role: r,
            found: f,
            threshold: t,
            ..
        }) if (r.as_str(), *f, *t) == (role, found, threshold) => {}
        other => panic!("expected {role} with {found} of {threshold} signatures, got {other:?}"),
    }
    err.unwrap_err()
}

/// Every role signed with ECDSA P-256 keys by python-tuf: the trust layer
/// walks the root rotation, refreshes and downloads both targets, reads the
/// keys as ECDSA P-256 with the key ids python-tuf declared, and
/// `onionpkg-repo verify` accepts the tree.
#[test]
fn an_ecdsa_p256_python_tuf_repository_verifies_and_downloads_through_the_trust_layer() {
    let python = python();
    let (_tmp, dir) = python_repo_with(&python, "ecdsa");
    // What securesystemslib writes for an ECDSA P-256 key.
    let keys = root_keys(&dir);
    assert!(!keys.is_empty());
    for (id, key) in &keys {
        assert_eq!(key["keytype"], "ecdsa", "{id}");
        assert_eq!(key["scheme"], "ecdsa-sha2-nistp256", "{id}");
        let pem = key["keyval"]["public"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        // Our key id over the declared object is securesystemslib's.
        let public = PublicKey::from_json(&serde_json::to_vec(key).unwrap()).unwrap();
        assert_eq!(public.algorithm(), Algorithm::EcdsaP256);
        assert_eq!(&public.key_id(), id);
        assert_eq!(&public.to_json(), key);
    }

    refresh_and_download_both(&dir);

    let root = check_root(&std::fs::read(newest_root(&dir)).unwrap()).unwrap();
    for (role, count) in [
        ("root", 3),
        ("targets", 3),
        ("snapshot", 1),
        ("timestamp", 1),
    ] {
        let bound = role_keys(&root, role).unwrap();
        assert_eq!(bound.keys.len(), count, "{role}");
        assert!(bound.unusable.is_empty(), "{role}: {:?}", bound.unusable);
        for (id, key) in &bound.keys {
            assert_eq!(key.algorithm(), Algorithm::EcdsaP256, "{role}");
            assert_eq!(&key.key_id(), id, "{role}");
        }
    }

    let report = verify_tree(&dir, &pinned_root(&dir), Timestamp::now())
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(report.root_version, 2);
    assert_eq!(report.targets.len(), 2);
}

/// An ECDSA-signed repository changed after signing is refused: a target by
/// its hash, signed metadata by its signatures (no ECDSA signature holds over
/// other content), and a damaged ECDSA signature counts for nothing.
#[test]
fn a_tampered_ecdsa_p256_python_tuf_repository_is_refused() {
    let python = python();
    let (_tmp, dir) = python_repo_with(&python, "ecdsa");
    let now = Timestamp::now();
    client_run(&dir, &pinned_root(&dir), None, now, Some(PY_TOP_LEVEL)).unwrap();

    // One bit of a target flipped, same length.
    let file = stored_target(&dir, PY_TOP_LEVEL);
    let original = std::fs::read(&file).unwrap();
    let mut bytes = original.clone();
    bytes[1000] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    match client_run(&dir, &pinned_root(&dir), None, now, Some(PY_TOP_LEVEL)) {
        Err(VerifyError::TargetHashMismatch { path }) => assert_eq!(path, PY_TOP_LEVEL),
        other => panic!("expected TargetHashMismatch, got {other:?}"),
    }
    std::fs::write(&file, &original).unwrap();

    // The signed part of targets changed: both ECDSA signatures fail.
    let name = "1.targets.json";
    let targets = std::fs::read(dir.join("metadata").join(name)).unwrap();
    edit_metadata(&dir, name, |v| {
        v["signed"]["targets"][PY_TOP_LEVEL]["custom"]["version"] = "6.6".into();
    });
    expect_threshold_not_met(&dir, "targets", 0, 2);
    std::fs::write(dir.join("metadata").join(name), &targets).unwrap();

    // The timestamp's only signature with one byte of its DER changed.
    edit_metadata(&dir, "timestamp.json", |v| {
        let sig = v["signatures"][0]["sig"].as_str().unwrap();
        let mut raw = hex::decode(sig).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x01;
        v["signatures"][0]["sig"] = hex::encode(raw).into();
    });
    expect_threshold_not_met(&dir, "timestamp", 0, 1);
}

/// Root ed25519, the online roles and the delegation ECDSA: the repository
/// verifies. Its targets role is 2-of-2 with one ed25519 and one ECDSA key:
/// both signatures count, and without either one the threshold is missed.
#[test]
fn a_python_tuf_repository_mixing_ed25519_and_ecdsa_keys_verifies_and_both_kinds_count() {
    let python = python();
    let (_tmp, dir) = python_repo_with(&python, "mixed");
    refresh_and_download_both(&dir);

    let keys = root_keys(&dir);
    let root = check_root(&std::fs::read(newest_root(&dir)).unwrap()).unwrap();
    let bound = role_keys(&root, "root").unwrap();
    assert!(
        bound
            .keys
            .values()
            .all(|k| k.algorithm() == Algorithm::Ed25519)
    );
    let bound = role_keys(&root, "targets").unwrap();
    assert_eq!(bound.threshold, 2);
    let kinds: Vec<Algorithm> = bound.keys.values().map(PublicKey::algorithm).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&Algorithm::Ed25519) && kinds.contains(&Algorithm::EcdsaP256));
    for role in ["snapshot", "timestamp"] {
        let bound = role_keys(&root, role).unwrap();
        assert!(
            bound
                .keys
                .values()
                .all(|k| k.algorithm() == Algorithm::EcdsaP256)
        );
    }

    // Drop one kind's signature from targets, then the other's.
    let name = "1.targets.json";
    let path = dir.join("metadata").join(name);
    let signed = std::fs::read(&path).unwrap();
    for dropped in ["ed25519", "ecdsa"] {
        edit_metadata(&dir, name, |v| {
            let sigs = v["signatures"].as_array_mut().unwrap();
            assert_eq!(sigs.len(), 2);
            sigs.retain(|s| keys[s["keyid"].as_str().unwrap()]["keytype"] != dropped);
            assert_eq!(sigs.len(), 1, "one signature of each kind");
        });
        expect_threshold_not_met(&dir, "targets", 1, 2);
        std::fs::write(&path, &signed).unwrap();
    }
    refresh_and_download_both(&dir);
}

/// Online roles signed with RSA (`rsassa-pss-sha256`): nothing they sign is
/// trusted (their signatures count towards no threshold), and every report
/// names the scheme onionpkg does not verify: the refresh error, the role's
/// keys as read for the DNS announcement, and `onionpkg-repo verify`.
#[test]
fn rsa_signed_python_tuf_metadata_is_refused_and_the_scheme_is_named() {
    let python = python();
    let (_tmp, dir) = python_repo_with(&python, "rsa");
    let rsa_ids: Vec<String> = root_keys(&dir)
        .into_iter()
        .filter(|(_, k)| k["scheme"] == "rsassa-pss-sha256")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(rsa_ids.len(), 5, "3 targets, snapshot, timestamp");

    let err = expect_threshold_not_met(&dir, "timestamp", 0, 1);
    let VerifyError::ThresholdNotMet { unusable, .. } = &err else {
        unreachable!()
    };
    assert_eq!(unusable.len(), 1, "{err}");
    assert!(rsa_ids.contains(&unusable[0].key_id), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "key {} uses scheme rsassa-pss-sha256, which onionpkg does not verify",
            unusable[0].key_id
        )),
        "{message}"
    );

    // Where the timestamp keys are read for the announcement.
    let root = check_root(&std::fs::read(newest_root(&dir)).unwrap()).unwrap();
    match role_keys(&root, "timestamp") {
        Err(e @ VerifyError::UnusableKeys { .. }) => {
            let message = e.to_string();
            assert!(message.contains("timestamp"), "{message}");
            assert!(
                message.contains("uses scheme rsassa-pss-sha256, which onionpkg does not verify"),
                "{message}"
            );
        }
        other => panic!("expected UnusableKeys, got {other:?}"),
    }

    let err = verify_tree(&dir, &pinned_root(&dir), Timestamp::now())
        .expect_err("onionpkg-repo verify accepted RSA-signed metadata");
    assert!(err.to_string().contains("rsassa-pss-sha256"), "{err}");
}
