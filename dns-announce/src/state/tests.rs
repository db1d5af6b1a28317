use jiff::Timestamp;
use onionpkg_trust::announce::{self, AnnounceError};
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::sign::SecretKey;

use super::*;

const NAME: &str = "_u.example.org";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

/// A timestamp role of `keys` with `threshold`.
fn role(keys: &[&SecretKey], threshold: usize) -> RoleKeys {
    RoleKeys::new(
        keys.iter()
            .map(|k| (k.public().key_id(), k.public()))
            .collect(),
        threshold,
    )
}

/// The record with `serial` signed by `signers`, as published.
fn record(serial: u64, signers: &[&SecretKey]) -> String {
    let later = Timestamp::from_second(1_800_086_400).unwrap();
    announce::make(NAME, "stable", serial, now(), later, &[7; 32], signers).unwrap()
}

/// Verifies `text` against `keys` with the state's replay floor, as `check`
/// does.
fn verify(state: &SerialState, text: &str, keys: &RoleKeys) -> Result<Announcement, AnnounceError> {
    let last_seen = state.last_seen(NAME, "stable", keys);
    announce::verify(
        text,
        &announce::Expectation {
            name: NAME,
            channel: "stable",
            keys,
            now: now(),
            tolerance: Tolerance::ZERO,
            last_seen,
        },
    )
}

#[test]
fn floors_only_rise_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("state.json");
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let mut state = SerialState::load(&path).unwrap();
    assert_eq!(state.floor(NAME, "stable", &keys), None);
    let five = verify(&state, &record(5, &[&key]), &keys).unwrap();
    assert_eq!(
        state
            .raise("_u.example.org.", "stable", &five, &keys)
            .unwrap(),
        FloorChange::Raised
    );
    let four = verify(
        &SerialState::load(&dir.path().join("none")).unwrap(),
        &record(4, &[&key]),
        &keys,
    )
    .unwrap();
    assert_eq!(
        state
            .raise("_U.example.org", "stable", &four, &keys)
            .unwrap(),
        FloorChange::Unchanged
    );
    assert_eq!(
        state.raise(NAME, "stable", &five, &keys).unwrap(),
        FloorChange::Unchanged
    );
    assert_eq!(
        state.raise(NAME, "beta", &four, &keys).unwrap(),
        FloorChange::Raised
    );
    let again = SerialState::load(&path).unwrap();
    let floor = again.floor("_u.EXAMPLE.org", "stable", &keys).unwrap();
    assert_eq!(floor, &Floor::of(&five));
    assert_eq!(floor.signed_by, vec![key.public().key_id()]);
    assert_eq!(floor.timestamp_sha256, [7; 32]);
    assert_eq!(again.last_seen(NAME, "beta", &keys), Some(4));
    assert_eq!(again.floor("_other.example.org", "stable", &keys), None);
    // The replay check uses it.
    let replay = verify(&again, &record(4, &[&key]), &keys).unwrap_err();
    assert!(
        matches!(
            replay,
            AnnounceError::Rollback {
                serial: 4,
                last_seen: 5
            }
        ),
        "{replay}"
    );
}

#[test]
fn a_forged_top_serial_stops_counting_once_its_key_is_rotated_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (stolen, fresh) = (SecretKey::generate(), SecretKey::generate());
    let old_role = role(&[&stolen], 1);
    let new_role = role(&[&fresh], 1);
    let mut state = SerialState::load(&path).unwrap();

    // The thief's record at the top serial verifies under the old root and
    // sets the floor: every genuine record is a "rollback" now.
    let forged = verify(&state, &record(u64::MAX, &[&stolen]), &old_role).unwrap();
    state.raise(NAME, "stable", &forged, &old_role).unwrap();
    assert_eq!(state.last_seen(NAME, "stable", &old_role), Some(u64::MAX));
    let frozen = verify(&state, &record(3, &[&stolen]), &old_role).unwrap_err();
    assert!(matches!(frozen, AnnounceError::Rollback { .. }), "{frozen}");

    // The root rotates the timestamp key: the floor the stolen key set no
    // longer counts, after a restart too.
    let mut state = SerialState::load(&path).unwrap();
    assert_eq!(state.floor(NAME, "stable", &new_role), None);
    let genuine = verify(&state, &record(3, &[&fresh]), &new_role).unwrap();
    assert_eq!(
        state.raise(NAME, "stable", &genuine, &new_role).unwrap(),
        FloorChange::Replaced {
            previous_serial: u64::MAX
        }
    );
    let state = SerialState::load(&path).unwrap();
    assert_eq!(
        state.floor(NAME, "stable", &new_role),
        Some(&Floor::of(&genuine))
    );
    // The genuine floor protects against replays again.
    let replay = verify(&state, &record(2, &[&fresh]), &new_role).unwrap_err();
    assert!(
        matches!(
            replay,
            AnnounceError::Rollback {
                serial: 2,
                last_seen: 3
            }
        ),
        "{replay}"
    );
    // And the forged floor is gone from the file.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&u64::MAX.to_string()), "{text}");
    assert!(!text.contains(&stolen.public().key_id()), "{text}");
}

#[test]
fn a_floor_counts_while_its_signers_meet_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let [a, b, c, d, e] = [(); 5].map(|()| SecretKey::generate());
    let first = role(&[&a, &b, &c], 2);
    let mut state = SerialState::load(&path).unwrap();
    let ten = verify(&state, &record(10, &[&a, &b, &c]), &first).unwrap();
    assert_eq!(ten.signed_by.len(), 3);
    state.raise(NAME, "stable", &ten, &first).unwrap();

    // c rotated out for d: a and b still make 2 of the new role.
    let one_rotated = role(&[&a, &b, &d], 2);
    assert_eq!(state.last_seen(NAME, "stable", &one_rotated), Some(10));
    let older = record(5, &[&a, &d]);
    let refused = verify(&state, &older, &one_rotated).unwrap_err();
    assert!(
        matches!(
            refused,
            AnnounceError::Rollback {
                serial: 5,
                last_seen: 10
            }
        ),
        "{refused}"
    );
    // A threshold raised past the remaining signers: not vouched for.
    assert_eq!(state.floor(NAME, "stable", &role(&[&a, &b, &d], 3)), None);

    // b and c rotated out: a alone is below 2, the floor no longer counts.
    let two_rotated = role(&[&a, &d, &e], 2);
    assert_eq!(state.floor(NAME, "stable", &two_rotated), None);
    let five = verify(&state, &older, &two_rotated).unwrap();
    assert_eq!(
        state.raise(NAME, "stable", &five, &two_rotated).unwrap(),
        FloorChange::Replaced {
            previous_serial: 10
        }
    );
    assert_eq!(state.last_seen(NAME, "stable", &two_rotated), Some(5));
    // Under the first role, the new floor has only a: not vouched for there.
    assert_eq!(state.floor(NAME, "stable", &first), None);
}

#[test]
fn a_record_not_signed_by_the_keys_sets_no_floor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let mut state = SerialState::load(&path).unwrap();
    let by_a = verify(&state, &record(4, &[&a]), &role(&[&a], 1)).unwrap();
    let err = state
        .raise(NAME, "stable", &by_a, &role(&[&b], 1))
        .unwrap_err();
    assert!(
        err.to_string().contains("not signed by the threshold"),
        "{err}"
    );
    assert!(!path.exists(), "nothing was written");
}

#[test]
fn old_state_files_load_and_their_serials_are_not_vouched_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        br#"{"highest_serial": {"_u.example.org": {"stable": 900, "beta": 7}, "_x.example.org": {"stable": 1}}}"#,
    )
    .unwrap();
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let mut state = SerialState::load(&path).unwrap();
    assert_eq!(state.floor(NAME, "stable", &keys), None);
    let three = verify(&state, &record(3, &[&key]), &keys).unwrap();
    assert_eq!(
        state.raise(NAME, "stable", &three, &keys).unwrap(),
        FloorChange::Replaced {
            previous_serial: 900
        }
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["floors"][NAME]["stable"]["serial"], 3);
    assert_eq!(
        saved["highest_serial"][NAME]["stable"],
        serde_json::Value::Null
    );
    // The entries not replaced are kept as they were.
    assert_eq!(saved["highest_serial"][NAME]["beta"], 7);
    assert_eq!(saved["highest_serial"]["_x.example.org"]["stable"], 1);
    assert_eq!(
        SerialState::load(&path)
            .unwrap()
            .last_seen(NAME, "stable", &keys),
        Some(3)
    );
}

#[test]
fn a_floor_can_be_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        br#"{"highest_serial": {"_u.example.org": {"beta": 7}}}"#,
    )
    .unwrap();
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let mut state = SerialState::load(&path).unwrap();
    let nine = verify(&state, &record(9, &[&key]), &keys).unwrap();
    state.raise(NAME, "stable", &nine, &keys).unwrap();
    assert!(state.drop_floor("_U.example.org.", "stable").unwrap());
    assert!(!state.drop_floor(NAME, "stable").unwrap());
    assert!(state.drop_floor(NAME, "beta").unwrap());
    let state = SerialState::load(&path).unwrap();
    assert_eq!(state.floor(NAME, "stable", &keys), None);
    // A lower serial verifies again.
    verify(&state, &record(2, &[&key]), &keys).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved, serde_json::json!({}));
}

#[test]
fn a_damaged_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    for bad in [
        &br#"{"highest_serial": 3}"#[..],
        br#"{"floors": {"n": {"stable": {"serial": 1}}}}"#,
        br#"{"floors": {}, "other": 1}"#,
        b"",
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = SerialState::load(&path).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
