//! The update check through the signed DNS announcement: no mirror is asked
//! while nothing changed, and a mirror serving less than announced is frozen.

use std::net::SocketAddr;

use onionpkg_announce::serve::{AnnounceZone, listen};

use crate::server::serve;
use crate::util::{Appliance, TestRepo, copy_dir};
use onionpkg_testkit::TestCa;

const NAME: &str = "_update.example.org";

/// Signs the repository's published state and serves it from `zone`.
async fn announce(repo: &TestRepo, zone: &AnnounceZone) {
    let text = repo
        .repo
        .announce(
            &repo.keys,
            NAME,
            "stable",
            Some(jiff::SignedDuration::from_hours(1)),
            jiff::Timestamp::now(),
        )
        .unwrap();
    zone.set_record(Some(&text)).await.unwrap();
}

fn dns_config(resolver: SocketAddr) -> String {
    format!("[announcement]\nname = \"{NAME}\"\nresolver = \"{resolver}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_release_not_yet_on_the_mirror_blames_none_and_downloads_once_synced() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let ca = TestCa::new();
    // The mirror serves a copy of the tree, which will fall behind.
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let mirror = serve(mirror_tree, ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    announce(&repo, &zone).await;
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[mirror.url()],
        &dns_config(dns.local_addrs()[0]),
    );
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    let requests = || mirror.seen.lock().unwrap().len();
    let before = requests();
    assert!(before > 0);

    // Nothing changed: the check is answered by DNS alone.
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("no mirror contacted"), "{}", r.stdout());
    assert_eq!(requests(), before, "check contacted the mirror");

    // A release: published and announced, but the mirror still serves the
    // old tree.
    repo.add_package("pkg/hello-2.0.tar", b"hello again\n");
    let serial = repo.publish();
    announce(&repo, &zone).await;
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}\n{}", r.stdout(), r.stderr());
    assert!(
        r.stdout()
            .contains(&format!("update available: timestamp version {serial}")),
        "{}",
        r.stdout()
    );
    assert_eq!(requests(), before, "check contacted the mirror");

    // The mirror has not synced the announced release yet: within the grace
    // period that is "not yet on mirrors" (exit 9), and nobody is blamed.
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 9, "{}", r.stderr());
    assert!(
        r.stderr().contains("no mirror serves it yet"),
        "{}",
        r.stderr()
    );
    assert!(r.stderr().contains("not synced here yet"), "{}", r.stderr());
    let r = app.run(&["mirrors"]).await.ok();
    assert!(r.stdout().contains(" ok"), "cooled down: {}", r.stdout());
    // The pending update is still reported, and once the mirror catches up
    // the next check and download go through.
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}\n{}", r.stdout(), r.stderr());
    copy_dir(&repo.tree(), &repo.tmp.path().join("mirror"));
    app.run(&["download", "--all"]).await.ok();
    assert!(app.out().join("pkg/hello-2.0.tar").exists());
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    dns.shutdown().await.unwrap();
}

/// After the grace period a mirror that serves less than announced is
/// frozen: refused and cooled down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_a_mirror_behind_the_announcement_is_frozen() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let ca = TestCa::new();
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let mirror = serve(mirror_tree, ca.server.clone()).await;
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
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    repo.add_package("pkg/hello-2.0.tar", b"hello again\n");
    repo.publish();
    announce(&repo, &zone).await;
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}", r.stderr());
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert!(
        r.stderr().contains("older than the announced"),
        "{}",
        r.stderr()
    );
    let r = app.run(&["mirrors"]).await.ok();
    assert!(r.stdout().contains("bad until"), "{}", r.stdout());
    dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_missing_announcement_falls_back_to_the_mirror() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
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
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    let before = mirror.seen.lock().unwrap().len();
    // No record: the mirror is asked, with a warning.
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("no-announcement"), "{}", r.stderr());
    assert!(mirror.seen.lock().unwrap().len() > before);
    // A forged record (one signature character changed): refused, and the
    // mirror is asked.
    let text = repo
        .repo
        .announce(
            &repo.keys,
            NAME,
            "stable",
            Some(jiff::SignedDuration::from_hours(1)),
            jiff::Timestamp::now(),
        )
        .unwrap();
    let mut forged = text.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    zone.set_record(Some(std::str::from_utf8(&forged).unwrap()))
        .await
        .unwrap();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("invalid"), "{}", r.stderr());
    dns.shutdown().await.unwrap();
}

/// With `dnssec_anchors`, an answer that does not validate (the built-in
/// server does not sign) counts as no announcement: the mirror is asked and
/// the warning says why. A malformed anchors file is a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_anchors_refuse_an_unsigned_answer_and_a_bad_file_is_a_config_error() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
    let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    announce(&repo, &zone).await;
    let config = format!(
        "{}dnssec_anchors = \"anchors.txt\"\n",
        dns_config(dns.local_addrs()[0])
    );
    let app = Appliance::https(&ca, &repo.root_file(), &[mirror.url()], &config);
    std::fs::write(
        app.dir.path().join("anchors.txt"),
        "example.org. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n",
    )
    .unwrap();
    app.run(&["download", "--all"]).await.ok();
    let before = mirror.seen.lock().unwrap().len();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(
        r.stderr().to_lowercase().contains("dnssec"),
        "{}",
        r.stderr()
    );
    assert!(
        !r.stdout().contains("no mirror contacted"),
        "{}",
        r.stdout()
    );
    assert!(mirror.seen.lock().unwrap().len() > before);

    std::fs::write(app.dir.path().join("anchors.txt"), "not a DNSKEY\n").unwrap();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("anchors.txt"), "{}", r.stderr());
    dns.shutdown().await.unwrap();
}
