//! Unit tests of the target helpers.

use std::collections::BTreeMap;

use super::{TargetFile, TargetVerifier, VerifyError, stored_target_path};

fn info(hashes: &[(&str, &str)]) -> TargetFile {
    // The type is non-exhaustive: made the way metadata makes it.
    let hashes: BTreeMap<&str, &str> = hashes.iter().copied().collect();
    serde_json::from_value(serde_json::json!({ "length": 3, "hashes": hashes }))
        .expect("a target entry")
}

#[test]
fn a_target_signed_with_sha512_only_is_located_by_its_sha512() {
    let t = info(&[("sha512", "ab12")]);
    assert_eq!(
        stored_target_path("pkg/a b.tar", &t, true).unwrap(),
        "pkg/ab12.a b.tar"
    );
}

#[test]
fn sha256_names_a_target_that_has_both() {
    let t = info(&[("sha512", "ab12"), ("sha256", "cd34")]);
    assert_eq!(stored_target_path("a.tar", &t, true).unwrap(), "cd34.a.tar");
}

#[test]
fn without_consistent_snapshots_the_path_is_the_name() {
    let t = info(&[("sha512", "ab12")]);
    assert_eq!(stored_target_path("a.tar", &t, false).unwrap(), "a.tar");
}

#[test]
fn a_target_with_no_usable_hash_or_a_bad_one_is_refused() {
    let only_md5 = info(&[("md5", "00")]);
    let e = stored_target_path("a.tar", &only_md5, true).unwrap_err();
    assert!(
        matches!(e, VerifyError::Malformed(ref m) if m.contains("no sha256 or sha512")),
        "{e}"
    );
    let not_hex = info(&[("sha256", "../x")]);
    let e = stored_target_path("a.tar", &not_hex, true).unwrap_err();
    assert!(
        matches!(e, VerifyError::Malformed(ref m) if m.contains("not hex")),
        "{e}"
    );
}

#[test]
fn a_sha512_only_target_verifies_against_its_sha512() {
    use sha2::Digest as _;
    let good = hex::encode(sha2::Sha512::digest(b"abc"));
    TargetVerifier::verify_bytes("a", &info(&[("sha512", &good)]), b"abc").unwrap();
    let e = TargetVerifier::verify_bytes("a", &info(&[("sha512", &good)]), b"abd").unwrap_err();
    assert!(matches!(e, VerifyError::TargetHashMismatch { .. }), "{e}");
}
