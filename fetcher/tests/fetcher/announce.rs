//! The update check through the signed DNS announcement: no mirror is asked
//! while nothing changed, and a mirror serving less than announced is frozen.

use crate::announced::{Announced, signed};
use crate::util::{TestRepo, copy_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_release_not_yet_on_the_mirror_blames_none_and_downloads_once_synced() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    // The mirror serves a copy of the tree, which will fall behind.
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let env = Announced::start(&repo, mirror_tree, "").await;
    env.announce(&repo).await;
    let app = &env.app;
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    let requests = || env.requests();
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
    env.announce(&repo).await;
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
    env.shutdown().await;
}

/// After the grace period a mirror that serves less than announced is
/// frozen: refused and cooled down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_a_mirror_behind_the_announcement_is_frozen() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let mirror_tree = repo.tmp.path().join("mirror");
    copy_dir(&repo.tree(), &mirror_tree);
    let env = Announced::start(&repo, mirror_tree, "mirror_grace = \"0s\"\n").await;
    let app = &env.app;
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    repo.add_package("pkg/hello-2.0.tar", b"hello again\n");
    repo.publish();
    env.announce(&repo).await;
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
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_missing_announcement_falls_back_to_the_mirror() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let env = Announced::start(&repo, repo.tree(), "").await;
    let app = &env.app;
    app.init(&repo.root_file()).await;
    app.run(&["download", "--all"]).await.ok();
    let before = env.requests();
    // No record: the mirror is asked, with a warning.
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("no-announcement"), "{}", r.stderr());
    assert!(env.requests() > before);
    // A forged record (one signature character changed): refused, and the
    // mirror is asked.
    let mut forged = signed(&repo).into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    env.zone
        .set_record(Some(std::str::from_utf8(&forged).unwrap()))
        .await
        .unwrap();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("invalid"), "{}", r.stderr());
    env.shutdown().await;
}

/// With `dnssec_anchors`, an answer that does not validate (the built-in
/// server does not sign) counts as no announcement: the mirror is asked and
/// the warning says why. A malformed anchors file is a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_anchors_refuse_an_unsigned_answer_and_a_bad_file_is_a_config_error() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", b"hello\n")]);
    let env = Announced::start(&repo, repo.tree(), "dnssec_anchors = \"anchors.txt\"\n").await;
    env.announce(&repo).await;
    let app = &env.app;
    std::fs::write(
        app.dir.path().join("anchors.txt"),
        "example.org. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n",
    )
    .unwrap();
    app.run(&["download", "--all"]).await.ok();
    let before = env.requests();
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
    assert!(env.requests() > before);

    std::fs::write(app.dir.path().join("anchors.txt"), "not a DNSKEY\n").unwrap();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("anchors.txt"), "{}", r.stderr());
    env.shutdown().await;
}
