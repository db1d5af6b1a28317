//! `check --state`: the floor belongs to the keys that signed it. A record
//! with the top serial signed by a stolen timestamp key freezes `check`
//! only until the root rotates that key; then a genuine record is accepted
//! and becomes the floor.

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::exit;
use onionpkg_repo::Expiries;
use onionpkg_trust::sign::SecretKey;

use crate::util::{InProcess, NAME, TestRepo, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_top_serial_is_recovered_from_by_rotating_the_timestamp_key() {
    let repo = TestRepo::new();
    let files = repo.timestamp_key_files();
    let [stolen] = &files[..] else {
        panic!("one timestamp key expected");
    };
    let stolen = SecretKey::read_file(stolen, None).unwrap();
    let now = Timestamp::now();
    let forged = onionpkg_trust::announce::make(
        NAME,
        "stable",
        u64::MAX,
        now,
        now.checked_add(SignedDuration::from_hours(1)).unwrap(),
        &[0; 32],
        &[&stolen],
    )
    .unwrap();
    let server = InProcess::start(Some(&forged)).await;
    let state = repo.tmp.path().join("announce-state.json");
    let state_arg = state.display().to_string();

    // The forged record verifies under the first root and sets the floor.
    let run = check(
        &repo.root(),
        server.addr(),
        &["--state", &state_arg, "--json"],
    )
    .await;
    run.assert_code(0);
    assert_eq!(run.json()["serial"], u64::MAX);
    // Every genuine record is now a "replay".
    let genuine = repo.sign_now();
    server.zone.set_record(Some(&genuine.text)).await.unwrap();
    let run = check(&repo.root(), server.addr(), &["--state", &state_arg]).await;
    run.assert_code(i32::from(exit::VERIFICATION));
    assert!(
        run.stderr.contains("old record is being replayed"),
        "{run:?}"
    );

    // The root rotates the timestamp key (and re-signs the timestamp).
    repo.repo
        .rotate(
            "timestamp",
            &repo.keys,
            None,
            &Expiries::default(),
            Timestamp::now(),
        )
        .unwrap();
    let new_root = repo.dir().join("metadata").join("root.json");
    let genuine = repo.sign_now();
    assert!(genuine.announcement.serial < u64::MAX);
    assert_ne!(
        genuine.announcement.signed_by,
        vec![stolen.public().key_id()]
    );
    server.zone.set_record(Some(&genuine.text)).await.unwrap();
    let run = check(&new_root, server.addr(), &["--state", &state_arg, "--json"]).await;
    run.assert_code(0);
    assert_eq!(run.json()["serial"], genuine.announcement.serial);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let floor = &saved["floors"][NAME]["stable"];
    assert_eq!(floor["serial"], genuine.announcement.serial);
    assert_eq!(
        floor["signed_by"],
        serde_json::json!(genuine.announcement.signed_by)
    );

    // The stolen key's record is refused by the new root.
    server.zone.set_record(Some(&forged)).await.unwrap();
    let run = check(&new_root, server.addr(), &["--state", &state_arg]).await;
    run.assert_code(i32::from(exit::VERIFICATION));
    assert!(
        run.stderr.contains("none is a key of the timestamp role"),
        "{run:?}"
    );
    server.stop().await;
}
