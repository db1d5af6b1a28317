//! The freeze guarantee against a lying DNS path or a stolen online key: a
//! record never extends trust beyond the timestamp it names, a mirror that
//! equivocates is refused, and a forged far-ahead serial does not brick
//! updates once the keys that signed it are rotated.

use jiff::{SignedDuration, Timestamp};

use crate::announced::{Announced, NAME, published, repo_with_timestamp_hours};
use crate::util::{TestRepo, copy_dir};

/// A genuine record naming the trusted timestamp, replayed after that
/// timestamp expired, makes `check` ask a mirror and report the expired
/// state; shortly before the expiry, `check` asks a mirror too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_never_extends_trust_beyond_the_timestamp_it_names() {
    let repo = repo_with_timestamp_hours(3, &[("pkg/a.tar", b"a\n")]);
    let env = Announced::start(&repo, repo.tree(), "").await;
    let app = &env.app;
    app.run(&["download", "--all"]).await.ok();
    // A record naming the trusted timestamp, valid for a day: longer than
    // the timestamp it names.
    let (serial, hash) = published(&repo);
    env.forge(&repo, serial, &hash, SignedDuration::from_hours(24))
        .await;
    let requests = || env.requests();

    let before = requests();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("no mirror contacted"), "{}", r.stdout());
    assert_eq!(requests(), before);

    // Half an hour before the timestamp expires: a mirror is asked.
    let r = app.run_at("+150m", &["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("expires at"), "{}", r.stderr());
    assert!(
        !r.stdout().contains("no mirror contacted"),
        "{}",
        r.stdout()
    );
    assert!(requests() > before, "check did not ask the mirror");

    // After it expired: the record is still within its own validity, but
    // the answer is the expired state from the mirror, never "up to date".
    let before = requests();
    let r = app.run_at("+4h", &["check"]).await;
    assert_eq!(r.code(), 4, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("expired"), "{}", r.stderr());
    assert!(requests() > before, "check did not ask the mirror");
    env.shutdown().await;
}

/// A mirror serving a `timestamp.json` of the announced version whose hash
/// is not the announced one is refused as equivocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_equivocating_on_the_announced_version_is_refused() {
    let repo = TestRepo::new(&[("pkg/a.tar", b"a\n")]);
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let env = Announced::start(&repo, mirror_tree.clone(), "").await;
    let app = &env.app;
    app.run(&["download", "--all"]).await.ok();

    // A release, announced; the mirror has its files, but serves another
    // timestamp of the same version, validly signed.
    repo.add_package("pkg/b.tar", b"b\n");
    repo.publish();
    let (serial, hash) = published(&repo);
    env.forge(&repo, serial, &hash, SignedDuration::from_hours(1))
        .await;
    copy_dir(&repo.tree(), &mirror_tree);
    let genuine: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.tree().join("metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    let mut other = genuine["signed"].clone();
    other["expires"] = serde_json::Value::from(
        (Timestamp::now() + SignedDuration::from_hours(20))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    );
    let key = repo.keys.load("timestamp").unwrap();
    let forged = onionpkg_trust::sign::sign_metadata(other, &[&key]).unwrap();
    std::fs::write(
        mirror_tree.join("metadata/timestamp.json"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();

    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}", r.stderr());
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 8, "{}", r.stderr());
    assert!(r.stderr().contains("equivocation"), "{}", r.stderr());
    assert!(!app.out().join("pkg/b.tar").exists());
    env.shutdown().await;
}

/// One record forged with the timestamp key (serial 2^64-1) freezes every
/// mirror; once the release side rotates the timestamp key and publishes,
/// the next check and download succeed with no manual step: the floor
/// belonged to the rotated-out key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_top_serial_stops_mattering_once_the_timestamp_key_is_rotated() {
    let repo = TestRepo::new(&[("pkg/a.tar", b"a\n")]);
    let env = Announced::start(&repo, repo.tree(), "mirror_grace = \"0s\"\n").await;
    let app = &env.app;
    app.run(&["download", "--all"]).await.ok();

    // The attacker's record: the top serial, signed with the stolen key.
    let (_, hash) = published(&repo);
    env.forge(&repo, u64::MAX, &hash, SignedDuration::from_hours(1))
        .await;
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains(&u64::MAX.to_string()), "{}", r.stdout());
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert!(r.stderr().contains("frozen"), "{}", r.stderr());

    // The distribution rotates the timestamp key, publishes a release and
    // announces it with the new key.
    repo.rotate_timestamp();
    repo.add_package("pkg/b.tar", b"b\n");
    repo.publish();
    let text = repo
        .repo
        .announce(&repo.keys, NAME, "stable", None, Timestamp::now())
        .unwrap();
    env.zone.set_record(Some(&text)).await.unwrap();

    // No manual step: the next check and download go through.
    let r = app.run(&["check"]).await;
    assert!(
        r.code() == 10 || r.code() == 0,
        "{}\n{}",
        r.stdout(),
        r.stderr()
    );
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert_eq!(std::fs::read(app.out().join("pkg/b.tar")).unwrap(), b"b\n");
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("no mirror contacted"), "{}", r.stdout());
    env.shutdown().await;
}

/// Without a rotation, a far-ahead serial that no mirror ever serves blocks
/// updates for at most one timestamp lifetime: once the trusted timestamp
/// has expired, a mirror's fresh, verified timestamp is taken, the floor is
/// dropped, and the appliance is told a key may be compromised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_no_mirror_reaches_lapses_after_one_timestamp_lifetime() {
    let repo = repo_with_timestamp_hours(3, &[("pkg/a.tar", b"a\n")]);
    let env = Announced::start(&repo, repo.tree(), "mirror_grace = \"0s\"\n").await;
    let app = &env.app;
    app.run(&["download", "--all"]).await.ok();
    let (_, hash) = published(&repo);
    // Valid for a day: the attacker holds the key and signs what they like.
    env.forge(&repo, u64::MAX, &hash, SignedDuration::from_hours(24))
        .await;
    assert_eq!(app.run(&["check"]).await.code(), 10);
    // The distribution keeps re-signing its timestamp; the mirror serves it.
    let later = Timestamp::now() + SignedDuration::from_hours(4);
    repo.repo
        .timestamp(
            &repo.keys,
            &repo.expiries,
            later - SignedDuration::from_mins(5),
        )
        .unwrap();
    // While the trusted timestamp is valid, the mirror is frozen.
    let r = app.run_at("+1h", &["download", "--all"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert!(r.stderr().contains("frozen"), "{}", r.stderr());
    // Once it has expired, the fresh timestamp is taken and the floor drops.
    let r = app.run_at("+4h", &["download", "--all"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("may be compromised"), "{}", r.stderr());
    let floors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.state().join("announced.json")).unwrap())
            .unwrap();
    assert!(
        !floors.to_string().contains(&u64::MAX.to_string()),
        "{floors}"
    );
    env.shutdown().await;
}
