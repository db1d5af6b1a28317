//! The freeze guarantee against a lying DNS path or a stolen online key: a
//! record never extends trust beyond the timestamp it names, a mirror that
//! equivocates is refused, and a forged far-ahead serial does not brick
//! updates once the keys that signed it are rotated.

use std::net::SocketAddr;

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::serve::{AnnounceZone, listen};
use onionpkg_repo::Expiries;
use sha2::Digest as _;

use crate::server::serve;
use crate::util::{Appliance, TestRepo, copy_dir};
use onionpkg_testkit::TestCa;

const NAME: &str = "_update.example.org";

fn dns_config(resolver: SocketAddr) -> String {
    format!("[announcement]\nname = \"{NAME}\"\nresolver = \"{resolver}\"\n")
}

/// A record for `serial` and `hash`, valid from now for `valid`, signed by
/// the repository's current timestamp key: whatever the release tools would
/// allow, as an attacker holding the key (or replaying an old record) can.
fn record(
    repo: &TestRepo,
    key: &str,
    serial: u64,
    hash: &[u8; 32],
    valid: SignedDuration,
) -> String {
    let key = repo.keys.load(key).unwrap();
    let now = Timestamp::now();
    onionpkg_trust::announce::make(NAME, "stable", serial, now, now + valid, hash, &[&key]).unwrap()
}

/// The published timestamp's version and SHA-256.
fn published(repo: &TestRepo) -> (u64, [u8; 32]) {
    let bytes = std::fs::read(repo.tree().join("metadata/timestamp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    (
        v["signed"]["version"].as_u64().unwrap(),
        sha2::Sha256::digest(&bytes).into(),
    )
}

/// A genuine record naming the trusted timestamp, replayed after that
/// timestamp expired, makes `check` ask a mirror and report the expired
/// state; shortly before the expiry, `check` asks a mirror too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_never_extends_trust_beyond_the_timestamp_it_names() {
    let mut expiries = Expiries::default();
    expiries
        .set(
            onionpkg_trust::roles::TIMESTAMP,
            SignedDuration::from_hours(3),
        )
        .unwrap();
    let repo = TestRepo::with_expiries(Timestamp::now(), expiries, &[("pkg/a.tar", b"a\n")]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[mirror.url()],
        &dns_config(dns.local_addrs()[0]),
    );
    app.run(&["download", "--all"]).await.ok();
    // A record naming the trusted timestamp, valid for a day: longer than
    // the timestamp it names.
    let (serial, hash) = published(&repo);
    let text = record(
        &repo,
        "timestamp",
        serial,
        &hash,
        SignedDuration::from_hours(24),
    );
    zone.set_record(Some(&text)).await.unwrap();
    let requests = || mirror.seen.lock().unwrap().len();

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
    dns.shutdown().await.unwrap();
}

/// A mirror serving a `timestamp.json` of the announced version whose hash
/// is not the announced one is refused as equivocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_equivocating_on_the_announced_version_is_refused() {
    let repo = TestRepo::new(&[("pkg/a.tar", b"a\n")]);
    let ca = TestCa::new();
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let mirror = serve(mirror_tree.clone(), ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[mirror.url()],
        &dns_config(dns.local_addrs()[0]),
    );
    app.run(&["download", "--all"]).await.ok();

    // A release, announced; the mirror has its files, but serves another
    // timestamp of the same version, validly signed.
    repo.add_package("pkg/b.tar", b"b\n");
    repo.publish();
    let (serial, hash) = published(&repo);
    zone.set_record(Some(&record(
        &repo,
        "timestamp",
        serial,
        &hash,
        SignedDuration::from_hours(1),
    )))
    .await
    .unwrap();
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
    dns.shutdown().await.unwrap();
}

/// One record forged with the timestamp key (serial 2^64-1) freezes every
/// mirror; once the release side rotates the timestamp key and publishes,
/// the next check and download succeed with no manual step: the floor
/// belonged to the rotated-out key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_top_serial_stops_mattering_once_the_timestamp_key_is_rotated() {
    let repo = TestRepo::new(&[("pkg/a.tar", b"a\n")]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[mirror.url()],
        &format!(
            "{}mirror_grace = \"0s\"\n",
            dns_config(dns.local_addrs()[0])
        ),
    );
    app.run(&["download", "--all"]).await.ok();

    // The attacker's record: the top serial, signed with the stolen key.
    let (_, hash) = published(&repo);
    zone.set_record(Some(&record(
        &repo,
        "timestamp",
        u64::MAX,
        &hash,
        SignedDuration::from_hours(1),
    )))
    .await
    .unwrap();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains(&u64::MAX.to_string()), "{}", r.stdout());
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert!(r.stderr().contains("frozen"), "{}", r.stderr());

    // The distribution rotates the timestamp key, publishes a release and
    // announces it with the new key.
    repo.repo
        .rotate(
            onionpkg_trust::roles::TIMESTAMP,
            &repo.keys,
            None,
            &repo.expiries,
            Timestamp::now(),
        )
        .unwrap();
    repo.add_package("pkg/b.tar", b"b\n");
    repo.publish();
    let text = repo
        .repo
        .announce(&repo.keys, NAME, "stable", None, Timestamp::now())
        .unwrap();
    zone.set_record(Some(&text)).await.unwrap();

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
    dns.shutdown().await.unwrap();
}

/// Without a rotation, a far-ahead serial that no mirror ever serves blocks
/// updates for at most one timestamp lifetime: once the trusted timestamp
/// has expired, a mirror's fresh, verified timestamp is taken, the floor is
/// dropped, and the appliance is told a key may be compromised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_no_mirror_reaches_lapses_after_one_timestamp_lifetime() {
    let mut expiries = Expiries::default();
    expiries
        .set(
            onionpkg_trust::roles::TIMESTAMP,
            SignedDuration::from_hours(3),
        )
        .unwrap();
    let repo = TestRepo::with_expiries(Timestamp::now(), expiries, &[("pkg/a.tar", b"a\n")]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[mirror.url()],
        &format!(
            "{}mirror_grace = \"0s\"\n",
            dns_config(dns.local_addrs()[0])
        ),
    );
    app.run(&["download", "--all"]).await.ok();
    let (_, hash) = published(&repo);
    // Valid for a day: the attacker holds the key and signs what they like.
    zone.set_record(Some(&record(
        &repo,
        "timestamp",
        u64::MAX,
        &hash,
        SignedDuration::from_hours(24),
    )))
    .await
    .unwrap();
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
    dns.shutdown().await.unwrap();
}
