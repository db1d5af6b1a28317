//! Mirror failover: dead, tampered and frozen mirrors.

use std::sync::atomic::Ordering;

use crate::server::serve;
use crate::util::{Appliance, TestRepo, copy_dir, dead_url};
use onionpkg_testkit::TestCa;

const HELLO: &[u8] = b"hello, appliance\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_tampering_mirrors_are_skipped_and_marked_bad() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let bad = serve(repo.tree(), ca.server.clone()).await;
    bad.ctl.tamper.store(true, Ordering::SeqCst);
    let good = serve(repo.tree(), ca.server.clone()).await;
    let dead = dead_url().await;
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[dead.clone(), bad.url(), good.url()],
        "",
    );
    app.init(&repo.root_file()).await;
    let r = app.run(&["download", "pkg/hello-1.0.tar"]).await.ok();
    assert!(r.stdout().contains(&good.url()), "{}", r.stdout());
    assert_eq!(
        std::fs::read(app.out().join("pkg/hello-1.0.tar")).unwrap(),
        HELLO
    );
    // The tampering mirror served the target and was refused.
    assert!(
        bad.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.path.starts_with("/targets/")),
    );
    let r = app.run(&["--json", "mirrors"]).await.ok();
    let rows: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |url: &str| rows.iter().find(|m| m["url"] == url).unwrap().clone();
    assert_eq!(row(&bad.url())["health"], "bad");
    assert!(
        row(&bad.url())["reason"]
            .as_str()
            .unwrap()
            .contains("does not match its signed hash"),
        "{rows:?}"
    );
    assert_eq!(row(&dead)["health"], "bad");
    assert_eq!(row(&good.url())["health"], "ok");
    // Bad mirrors go last.
    assert_eq!(rows[0]["url"], good.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serving_older_metadata_than_trusted_is_skipped() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let frozen_tree = repo.tmp.path().join("frozen");
    copy_dir(&repo.tree(), &frozen_tree);
    repo.add_package("pkg/hello-1.1.tar", b"newer\n");
    repo.publish();
    let ca = TestCa::new();
    let frozen = serve(frozen_tree, ca.server.clone()).await;
    let good = serve(repo.tree(), ca.server.clone()).await;
    // First trust version 2 from the good mirror alone.
    let app = Appliance::https(&ca, &repo.root_file(), &[good.url()], "");
    app.init(&repo.root_file()).await;
    app.run(&["update"]).await.ok();
    // Then the frozen mirror comes first.
    let config = std::fs::read_to_string(app.config()).unwrap().replace(
        &format!("main_mirrors = [{:?}]", good.url()),
        &format!("main_mirrors = [{:?}, {:?}]", frozen.url(), good.url()),
    );
    std::fs::write(app.config(), config).unwrap();
    let r = app.run(&["download", "pkg/hello-1.1.tar"]).await.ok();
    assert!(r.stdout().contains(&good.url()), "{}", r.stdout());
    assert!(
        !frozen.seen.lock().unwrap().is_empty(),
        "the frozen mirror was not tried"
    );
    let r = app.run(&["mirrors"]).await.ok();
    assert!(
        r.stdout().contains("older metadata than already trusted"),
        "{}",
        r.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_mirror_down_the_error_lists_each() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let (a, b) = (dead_url().await, dead_url().await);
    let app = Appliance::https(&ca, &repo.root_file(), &[a.clone(), b.clone()], "");
    app.init(&repo.root_file()).await;
    let r = app.run(&["update"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
    let err = r.stderr();
    assert!(err.contains("every mirror failed"), "{err}");
    for url in [&a, &b] {
        let line = err
            .lines()
            .find(|l| l.contains(url.as_str()))
            .unwrap_or_else(|| panic!("{url} not listed: {err}"));
        assert!(line.contains("connect"), "{line}");
    }
}

/// A tampered target is the same failure whichever program meets it: when
/// every mirror serves one, the fetcher exits 8 (verification), as
/// `onionpkg-mirror sync` and `onionpkg-repo verify` do; when a mirror
/// was merely unreachable, the run is a network failure (6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mirror_tampering_is_a_verification_failure() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let a = serve(repo.tree(), ca.server.clone()).await;
    let b = serve(repo.tree(), ca.server.clone()).await;
    a.ctl.tamper.store(true, Ordering::SeqCst);
    b.ctl.tamper.store(true, Ordering::SeqCst);
    let app = Appliance::https(&ca, &repo.root_file(), &[a.url(), b.url()], "");
    let r = app.run(&["--json", "download", "--all"]).await;
    assert_eq!(r.code(), 8, "{}", r.stderr());
    let e: serde_json::Value = serde_json::from_str(r.stderr().lines().last().unwrap()).unwrap();
    assert_eq!(e["error"], "verification");
    assert_eq!(e["exit_code"], 8);

    let dead = dead_url().await;
    let app = Appliance::https(&ca, &repo.root_file(), &[a.url(), dead], "");
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 6, "{}", r.stderr());
}
