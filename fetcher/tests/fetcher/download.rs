//! Verified downloads, resuming after a kill, and the clock.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::server::serve;
use crate::util::{Appliance, TestRepo};
use onionpkg_testkit::TestCa;

const HELLO: &[u8] = b"hello, appliance\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_verified_targets_over_https() {
    let repo = TestRepo::new(&[
        ("pkg/hello-1.0.tar", HELLO),
        ("pkg/big.bin", &[42; 300_000]),
    ]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    // No root shipped with the image (trust_root names no file).
    let app = Appliance::https(&ca, Path::new("no-root.json"), &[srv.url()], "");

    // Before init, every network command says so.
    let r = app.run(&["update"]).await;
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("init --root"), "{}", r.stderr());

    app.init(&repo.root_file()).await;
    let r = app.run(&["--json", "download", "--all"]).await.ok();
    assert_eq!(r.stdout().lines().count(), 2, "{}", r.stdout());
    assert_eq!(
        std::fs::read(app.out().join("pkg/hello-1.0.tar")).unwrap(),
        HELLO
    );
    assert_eq!(
        std::fs::read(app.out().join("pkg/big.bin")).unwrap(),
        vec![42; 300_000]
    );
    // No partial file is left behind.
    let names: Vec<String> = std::fs::read_dir(app.out().join("pkg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    // Consistent snapshots: the mirror was asked for HASH.NAME.
    let seen = srv.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|s| s.path.starts_with("/targets/pkg/") && s.path.ends_with(".hello-1.0.tar")),
        "{seen:?}"
    );

    // A second run finds everything in place and fetches no target.
    let before = srv.seen.lock().unwrap().len();
    let r = app.run(&["download", "pkg/hello-1.0.tar"]).await.ok();
    assert!(r.stdout().contains("already verified"), "{}", r.stdout());
    let after: Vec<_> = srv.seen.lock().unwrap()[before..].to_vec();
    assert!(
        after.iter().all(|s| !s.path.starts_with("/targets/pkg")),
        "{after:?}"
    );

    // An unknown target is "not found", not a download.
    let r = app.run(&["download", "pkg/nope.tar"]).await;
    assert_eq!(r.code(), 11, "{}", r.stderr());

    // status and check read the state.
    let r = app.run(&["--json", "status"]).await.ok();
    let s: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(s["metadata_state"], "ok");
    let published: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.tree().join("metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["timestamp_version"], published["signed"]["version"]);
    assert_eq!(s["last_mirror"][0], srv.url());
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}", r.stderr());
    repo.add_package("pkg/hello-1.1.tar", b"newer\n");
    repo.publish();
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}{}", r.stdout(), r.stderr());
}

/// `trust_root` is the root shipped with the image: pinned on first use, a
/// damaged one refused; `init` keeps a different pinned root unless asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_trust_root_is_pinned_on_first_use_and_never_silently_replaced() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    // No init: the shipped root is checked and pinned.
    app.run(&["download", "--all"]).await.ok();
    assert_eq!(
        std::fs::read(app.state().join("root.json")).unwrap(),
        std::fs::read(repo.root_file()).unwrap()
    );
    // init again with the same root: nothing to do.
    let r = app.run(&["init"]).await.ok();
    assert!(r.stdout().contains("already pinned"), "{}", r.stdout());

    // Another repository's root is refused without --replace, naming both.
    let other = TestRepo::new(&[("pkg/other.tar", b"other")]);
    let r = app
        .run(&["init", "--root", other.root_file().to_str().unwrap()])
        .await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("already pinned"), "{}", r.stderr());
    assert!(r.stderr().contains("--replace"), "{}", r.stderr());
    assert_eq!(
        std::fs::read(app.state().join("root.json")).unwrap(),
        std::fs::read(repo.root_file()).unwrap(),
        "the pinned root changed"
    );
    // With --replace it is pinned, and what was trusted under the old root
    // is forgotten.
    app.run(&[
        "init",
        "--replace",
        "--root",
        other.root_file().to_str().unwrap(),
    ])
    .await
    .ok();
    assert!(!app.state().join("metadata/timestamp.json").exists());

    // A damaged shipped root is refused before any mirror is asked.
    let broken = Appliance::https(&ca, &app.dir.path().join("broken.json"), &[srv.url()], "");
    std::fs::write(app.dir.path().join("broken.json"), b"{\"signed\": 1}").unwrap();
    let r = broken.run(&["check"]).await;
    assert_eq!(r.code(), 8, "{}", r.stderr());
    assert!(!broken.state().join("root.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_kill_and_never_shows_a_partial_file() {
    let content: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let repo = TestRepo::new(&[("pkg/big.bin", &content)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    srv.ctl.stall_after.store(1_500_000, Ordering::SeqCst);
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.init(&repo.root_file()).await;
    let dest = app.out().join("pkg/big.bin");
    let partial = app.out().join("pkg/.big.bin.onionpkg-partial");

    let mut child = app.command(&["download", "pkg/big.bin"]).spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            !dest.exists(),
            "the final name appeared before verification"
        );
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 1_500_000) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no partial download within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!dest.exists());

    srv.ctl.stall_after.store(0, Ordering::SeqCst);
    let mut child = app.command(&["download", "pkg/big.bin"]).spawn().unwrap();
    let status = loop {
        if let Ok(true) = std::fs::exists(&dest) {
            // Whenever the final name exists, it is the whole verified file.
            assert_eq!(std::fs::read(&dest).unwrap(), content);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resumed download hung"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert!(!partial.exists());
    let ranges: Vec<_> = srv
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| s.range.clone())
        .collect();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let from: u64 = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from >= 1_500_000, "{ranges:?}");
}

/// An update killed after its metadata was taken and before its packages
/// arrived is not forgotten: `check` still reports it, and the next
/// `download --all` completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_killed_after_its_metadata_stays_pending_until_downloaded() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.run(&["download", "--all"]).await.ok();
    assert_eq!(app.run(&["check"]).await.code(), 0);

    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    repo.add_package("pkg/big.bin", &content);
    repo.publish();
    srv.ctl.stall_after.store(100_000, Ordering::SeqCst);
    let requested = srv.ctl.target_requested.notified();
    let mut child = app.command(&["download", "--all"]).spawn().unwrap();
    // Metadata is taken before any target is asked for.
    tokio::time::timeout(Duration::from_secs(60), requested)
        .await
        .expect("no target requested within 60 s");
    child.start_kill().unwrap(); // SIGKILL
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    let (trusted, _) = status_versions(&app).await;
    let (published, _) = published_version(&repo);
    assert_eq!(
        trusted, published,
        "the metadata was not taken before the kill"
    );

    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 10, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stdout().contains("did not complete"), "{}", r.stdout());
    srv.ctl.stall_after.store(0, Ordering::SeqCst);
    app.run(&["download", "--all"]).await.ok();
    assert_eq!(
        std::fs::read(app.out().join("pkg/big.bin")).unwrap(),
        content
    );
    let r = app.run(&["check"]).await;
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
}

async fn status_versions(app: &Appliance) -> (u64, serde_json::Value) {
    let r = app.run(&["--json", "status"]).await.ok();
    let s: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    (s["timestamp_version"].as_u64().unwrap(), s)
}

fn published_version(repo: &TestRepo) -> (u64, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.tree().join("metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    (v["signed"]["version"].as_u64().unwrap(), v)
}

/// A hostile mirror sends a garbage prefix and stops sending; an honest one
/// finishes the file. The resumed file fails verification, is fetched again
/// whole from the honest mirror, and the honest mirror is not blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_prefix_from_one_mirror_does_not_blame_the_mirror_that_finishes() {
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let repo = TestRepo::new(&[("pkg/big.bin", &content)]);
    let ca = TestCa::new();
    let hostile = serve(repo.tree(), ca.server.clone()).await;
    hostile.ctl.garbage.store(true, Ordering::SeqCst);
    hostile.ctl.stall_after.store(100_000, Ordering::SeqCst);
    let honest = serve(repo.tree(), ca.server.clone()).await;
    // A stalled mirror is dropped after a second without bytes.
    let app = Appliance::https(
        &ca,
        &repo.root_file(),
        &[hostile.url(), honest.url()],
        "[download]\nthroughput_window = \"1s\"\nmin_throughput = 1024\n",
    );
    let r = app.run(&["download", "--all"]).await.ok();
    assert!(r.stdout().contains(&honest.url()), "{}", r.stdout());
    assert_eq!(
        std::fs::read(app.out().join("pkg/big.bin")).unwrap(),
        content
    );
    let honest_row = app.mirror_row(&honest.url()).await;
    assert_eq!(honest_row["health"], "ok", "{honest_row}");
    // The honest mirror was asked for the rest, then for the whole file.
    let ranges: Vec<Option<String>> = honest
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.starts_with("/targets/"))
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(
        ranges,
        [Some("bytes=100000-".to_owned()), None],
        "{ranges:?}"
    );
}

/// Links planted in the output directory are never followed: one at a
/// partial file's name is replaced, one in place of a target's directory
/// stops the download with a clear error, and nothing outside is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_planted_in_the_output_directory_are_not_followed() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    let victim = app.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::create_dir_all(app.out().join("pkg")).unwrap();
    std::os::unix::fs::symlink(
        &victim,
        app.out().join("pkg/.hello-1.0.tar.onionpkg-partial"),
    )
    .unwrap();
    app.run(&["download", "--all"]).await.ok();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
        std::fs::read(app.out().join("pkg/hello-1.0.tar")).unwrap(),
        HELLO
    );
    assert!(
        !app.out()
            .join("pkg/.hello-1.0.tar.onionpkg-partial")
            .exists()
    );

    // A link where the target's directory belongs.
    let elsewhere = app.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::remove_dir_all(app.out().join("pkg")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, app.out().join("pkg")).unwrap();
    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("refusing to follow"), "{}", r.stderr());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_behind_the_signed_floor_is_refused() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.init(&repo.root_file()).await;
    let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    std::fs::write(
        app.state().join("time-floor.json"),
        format!("{{\"floor\":\"{ahead}\"}}"),
    )
    .unwrap();
    let r = app.run(&["update"]).await;
    assert_eq!(r.code(), 5, "{}", r.stderr());
    assert!(r.stderr().contains("system clock"), "{}", r.stderr());
    assert!(
        srv.seen.lock().unwrap().is_empty(),
        "a mirror was contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_mirror_list_falls_back_to_the_main_mirror_with_a_warning() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.init(&repo.root_file()).await;
    // A verified list cached earlier, now expired, pointing elsewhere.
    let list = onionpkg_trust::mirrors::MirrorList::parse(
        br#"{"version":1,"expires":"2026-01-01T00:00:00Z","mirrors":[
            {"name":"gone","clearnet":"https://mirror.invalid/","weight":1}]}"#,
    )
    .unwrap();
    onionpkg_trust::mirrors::MirrorCache::load(app.state().join("mirrors.json"))
        .unwrap()
        .store(list)
        .unwrap();
    let r = app.run(&["update"]).await.ok();
    assert!(
        r.stderr()
            .contains("cached mirror list (version 1) expired")
            && r.stderr().contains("using the main mirror"),
        "{}",
        r.stderr()
    );
    assert!(r.stdout().contains(&srv.url()), "{}", r.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_metadata_that_cannot_be_refreshed_has_its_own_exit_code() {
    // Signed three days ago: the timestamp (one day) has expired.
    let then = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72);
    let repo = TestRepo::new_at(then, &[("pkg/hello-1.0.tar", HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.init(&repo.root_file()).await;
    // Trusted back then, in the appliance's store.
    let root = std::fs::read(repo.root_file()).unwrap();
    let fs = onionpkg_trust::metadata::FsRepository::from_tree(&repo.tree());
    let mut client =
        onionpkg_trust::metadata::Client::new(&root, Some(&app.state().join("metadata")), fs)
            .unwrap();
    client.refresh(then).await.unwrap();
    drop(client);

    let r = app.run(&["update"]).await;
    assert_eq!(r.code(), 4, "{}", r.stderr());
    assert!(r.stderr().contains("expired"), "{}", r.stderr());
    let r = app.run(&["--json", "status"]).await.ok();
    assert!(
        r.stdout().contains("\"metadata_state\":\"expired\""),
        "{}",
        r.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_sync_puts_verified_feed_files_in_place() {
    let repo = TestRepo::new(&[("pkg/hello-1.0.tar", HELLO)]);
    let add_feed = |path: &str, content: &[u8]| repo.add_feed(path, content);
    add_feed("feeds/blocklist/drop.txt", b"192.0.2.0/24 ; SBL1\n");
    add_feed("feeds/geoip/geoip.mmdb", b"\xab\xcd\xefMaxMind.com\xe0");
    repo.publish();
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.init(&repo.root_file()).await;

    let r = app.run(&["feeds", "sync", "blocklist"]).await.ok();
    assert!(r.stdout().contains("verified"), "{}", r.stdout());
    let list = app.out().join("feeds/blocklist/drop.txt");
    assert_eq!(std::fs::read(&list).unwrap(), b"192.0.2.0/24 ; SBL1\n");
    assert!(!app.out().join("feeds/geoip").exists());
    // No package was fetched along with the feed.
    assert!(!app.out().join("pkg").exists());

    // Every feed; a new version replaces the old file in place.
    add_feed("feeds/blocklist/drop.txt", b"198.51.100.0/24 ; SBL2\n");
    repo.publish();
    let r = app.run(&["--json", "feeds", "sync"]).await.ok();
    assert_eq!(r.stdout().lines().count(), 2, "{}", r.stdout());
    assert_eq!(std::fs::read(&list).unwrap(), b"198.51.100.0/24 ; SBL2\n");
    assert!(app.out().join("feeds/geoip/geoip.mmdb").exists());
    let names: Vec<String> = std::fs::read_dir(app.out().join("feeds/blocklist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["drop.txt"]);

    // A feed the repository does not sign is refused; a bad name is a usage error.
    let r = app.run(&["feeds", "sync", "nosuchfeed"]).await;
    assert_eq!(r.code(), 11, "{}", r.stderr());
    let r = app.run(&["feeds", "sync", "../pkg"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());

    // A mirror serving a tampered feed is refused, and the good file stays.
    let served = std::fs::read_dir(repo.tree().join("targets/feeds/blocklist"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().ends_with(".drop.txt")
                && std::fs::read(p).unwrap() == b"198.51.100.0/24 ; SBL2\n"
        })
        .unwrap();
    add_feed("feeds/blocklist/drop.txt", b"203.0.113.0/24 ; SBL3\n");
    repo.publish();
    let fresh = std::fs::read_dir(repo.tree().join("targets/feeds/blocklist"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p != &served && std::fs::read(p).unwrap() == b"203.0.113.0/24 ; SBL3\n")
        .unwrap();
    std::fs::write(&fresh, b"0.0.0.0/0 ; everything\n").unwrap();
    let r = app.run(&["feeds", "sync", "blocklist"]).await;
    assert_eq!(r.code(), 8, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("target feeds/blocklist/drop.txt is longer than its signed length 22"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(&list).unwrap(), b"198.51.100.0/24 ; SBL2\n");
}
