//! After a rotation of the timestamp key, the announcer keeps signing with
//! the key file its configuration names (`KEYS/timestamp.key`, as in
//! docs/DNS.md and the packaged unit), and its records verify against the
//! new root.

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::make::{Signers, Validity, sign};
use onionpkg_repo::Expiries;
use onionpkg_repo::rootops::Rotation;
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::sign::SecretKey;

use crate::util::{NAME, TestRepo};

#[test]
fn the_configured_key_file_signs_after_a_timestamp_rotation() {
    let t = TestRepo::new();
    let key_file = t.keys_dir().join("timestamp.key");
    let before = SecretKey::read_file(&key_file, None)
        .expect("the timestamp key")
        .public()
        .key_id();
    let rotation = t
        .repo
        .rotate(
            "timestamp",
            &t.keys,
            None,
            &Expiries::default(),
            Timestamp::now(),
        )
        .expect("rotating the timestamp key");
    let Rotation::Done { key_ids } = rotation else {
        panic!("the root keys are at hand: {rotation:?}");
    };

    // What `serve` does with `timestamp_keys = [".../keys/timestamp.key"]`.
    let key = SecretKey::read_file(&key_file, None).expect("the configured key file");
    assert_eq!(key_ids, [key.public().key_id()]);
    assert_ne!(key.public().key_id(), before);
    let now = Timestamp::now();
    let signed = sign(
        &t.repo,
        Signers::Keys(&[key]),
        NAME,
        "stable",
        Validity::AtMost(SignedDuration::from_hours(24)),
        now,
    )
    .expect("signing with the configured key file after the rotation");

    // Verified against the new root, as appliances that follow it do.
    let root_bytes = std::fs::read(t.repo.metadata_dir().join("root.json")).expect("root.json");
    let root = onionpkg_trust::metadata::check_root(&root_bytes).expect("the new root");
    assert_eq!(root.version, 2);
    let keys = onionpkg_trust::metadata::role_keys(&root, "timestamp").expect("timestamp keys");
    let a = onionpkg_trust::announce::verify(
        &signed.text,
        &onionpkg_trust::announce::Expectation {
            name: NAME,
            channel: "stable",
            keys: &keys,
            now,
            tolerance: Tolerance::ZERO,
            last_seen: None,
        },
    )
    .expect("the record verifies against the new root");
    assert_eq!(a.serial, signed.announcement.serial);
}
