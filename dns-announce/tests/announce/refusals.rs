//! `check` refuses what appliances must not trust, each with its own exit
//! code and a clear message: replays, records for another name or channel,
//! expired records, bad signatures; and a missing record is "no
//! announcement".

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::exit;
use onionpkg_trust::sign::SecretKey;

use crate::util::{InProcess, NAME, TestRepo, check};

fn code(c: u8) -> i32 {
    i32::from(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_record_is_refused_with_state() {
    let repo = TestRepo::new();
    let old = repo.sign_now();
    repo.publish_new();
    let new = repo.sign_now();
    assert!(new.announcement.serial > old.announcement.serial);
    let server = InProcess::start(Some(&new.text)).await;
    let state = repo.tmp.path().join("state").join("announce.json");
    let state_arg = state.display().to_string();

    let ok = check(
        &repo.root(),
        server.addr(),
        &["--state", &state_arg, "--json"],
    )
    .await;
    ok.assert_code(0);
    assert_eq!(ok.json()["serial"], new.announcement.serial);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved["floors"][NAME]["stable"]["serial"],
        new.announcement.serial
    );

    // The older record is still validly signed and unexpired: only the
    // state file tells the replay apart.
    server.zone.set_record(Some(&old.text)).await.unwrap();
    let replay = check(&repo.root(), server.addr(), &["--state", &state_arg]).await;
    replay.assert_code(code(exit::VERIFICATION));
    assert!(
        replay.stderr.contains("old record is being replayed"),
        "{replay:?}"
    );
    let without_state = check(&repo.root(), server.addr(), &[]).await;
    without_state.assert_code(0);
    // The refusal left the state as it was.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved["floors"][NAME]["stable"]["serial"],
        new.announcement.serial
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_another_name_or_channel_is_refused() {
    let repo = TestRepo::new();
    let day = SignedDuration::from_hours(24);
    let other_name = repo.sign_at("_update.example.net", "stable", Timestamp::now(), day);
    let server = InProcess::start(Some(&other_name.text)).await;
    let run = check(&repo.root(), server.addr(), &[]).await;
    run.assert_code(code(exit::VERIFICATION));
    assert!(
        run.stderr.contains(
            "no signature on the announcement verifies for owner name _update.example.org"
        ),
        "{run:?}"
    );

    let beta = repo.sign_at(NAME, "beta", Timestamp::now(), day);
    server.zone.set_record(Some(&beta.text)).await.unwrap();
    let run = check(&repo.root(), server.addr(), &["--channel", "stable"]).await;
    run.assert_code(code(exit::VERIFICATION));
    assert!(
        run.stderr
            .contains("announcement is for channel \"beta\", not \"stable\""),
        "{run:?}"
    );
    // The same record is fine for the channel it was made for.
    check(&repo.root(), server.addr(), &["--channel", "beta"])
        .await
        .assert_code(0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_record_is_refused() {
    let repo = TestRepo::new();
    let two_days_ago = Timestamp::now()
        .checked_sub(SignedDuration::from_hours(48))
        .unwrap();
    let expired = repo.sign_at(NAME, "stable", two_days_ago, SignedDuration::from_hours(24));
    let server = InProcess::start(Some(&expired.text)).await;
    let run = check(&repo.root(), server.addr(), &["--json"]).await;
    run.assert_code(code(exit::EXPIRED));
    let json = run.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"], "expired");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("announcement expired at"),
        "{json}"
    );
    // A tolerance does not revive a record expired for a day.
    check(&repo.root(), server.addr(), &["--tolerance", "3600"])
        .await
        .assert_code(code(exit::EXPIRED));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused() {
    let repo = TestRepo::new();
    let good = repo.sign_now();
    // Change one signature character to another base64url character: still
    // well-formed, no longer a valid signature.
    let at = good.text.rfind(";s=").unwrap() + 3 + 10;
    let mut tampered = good.text.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let server = InProcess::start(Some(&tampered)).await;
    let run = check(&repo.root(), server.addr(), &[]).await;
    run.assert_code(code(exit::VERIFICATION));
    assert!(
        run.stderr
            .contains("no signature on the announcement verifies"),
        "{run:?}"
    );

    // A record signed by a key that is not in the timestamp role.
    let stranger = SecretKey::generate();
    let now = Timestamp::now();
    let forged = onionpkg_trust::announce::make(
        NAME,
        "stable",
        good.announcement.serial + 1,
        now,
        now.checked_add(SignedDuration::from_hours(1)).unwrap(),
        &[0; 32],
        &[&stranger],
    )
    .unwrap();
    server.zone.set_record(Some(&forged)).await.unwrap();
    let run = check(&repo.root(), server.addr(), &[]).await;
    run.assert_code(code(exit::VERIFICATION));
    assert!(
        run.stderr.contains("none is a key of the timestamp role"),
        "{run:?}"
    );
    // Garbage in our format's namespace is refused too, not ignored.
    server
        .zone
        .set_record(Some("v=1;c=stable;n=x"))
        .await
        .unwrap();
    check(&repo.root(), server.addr(), &[])
        .await
        .assert_code(code(exit::VERIFICATION));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_record_is_no_announcement() {
    let repo = TestRepo::new();
    let server = InProcess::start(None).await;
    let run = check(&repo.root(), server.addr(), &["--json"]).await;
    run.assert_code(code(exit::NOT_FOUND));
    assert_eq!(run.json()["error"], "not-found");
    let text = check(&repo.root(), server.addr(), &[]).await;
    text.assert_code(code(exit::NOT_FOUND));
    assert!(text.stderr.contains("no onionpkg announcement"), "{text:?}");
    // A TXT record of another format at the name is not an announcement.
    server
        .zone
        .set_record(Some("google-site-verification=abc"))
        .await
        .unwrap();
    check(&repo.root(), server.addr(), &[])
        .await
        .assert_code(code(exit::NOT_FOUND));
    server.stop().await;
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let repo = TestRepo::new();
    // No --server and no --system-resolver.
    let run = crate::util::run(["check", NAME, "--root", &repo.root().display().to_string()]).await;
    run.assert_code(code(exit::USAGE));
    // A root file that is not a root.
    let not_root = repo.tmp.path().join("not-root.json");
    std::fs::write(&not_root, b"{}").unwrap();
    let run = check(&not_root, "127.0.0.1:9".parse().unwrap(), &[]).await;
    run.assert_code(code(exit::USAGE));
    assert!(run.stderr.contains("is not a valid root"), "{run:?}");
    // An owner name that is not a DNS name.
    let run = crate::util::run([
        "check",
        "_update..example.org",
        "--root",
        &repo.root().display().to_string(),
        "--server",
        "127.0.0.1:9",
    ])
    .await;
    run.assert_code(code(exit::USAGE));
    assert!(run.stderr.contains("NAME"), "{run:?}");
    // A bad duration.
    let run = crate::util::run([
        "make",
        "--repo",
        &repo.dir().display().to_string(),
        "--name",
        NAME,
        "--expires",
        "soon",
    ])
    .await;
    run.assert_code(code(exit::USAGE));
}

#[tokio::test]
async fn an_unreachable_server_is_a_failure_not_a_missing_record() {
    let repo = TestRepo::new();
    // A port where nothing listens, found by binding and closing it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let run = check(&repo.root(), addr, &["--timeout", "1s", "--json"]).await;
    run.assert_code(code(exit::UNREACHABLE));
    assert_eq!(run.json()["error"], "unreachable");
    assert!(
        run.json()["message"]
            .as_str()
            .unwrap()
            .contains("TXT query"),
        "{run:?}"
    );
}
