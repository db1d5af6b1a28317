//! What a run prints besides its results: with `--json`, stderr holds JSON
//! lines only (warnings, the error, log lines), never colour; without it,
//! plain text, coloured only on a terminal. A fallback to another mirror
//! after a tampered package says which mirror and why. A mirror that
//! works again loses its bad mark.

use std::sync::atomic::Ordering;

use crate::server::{Server, serve};
use crate::util::{Appliance, TestRepo, dead_url};
use onionpkg_testkit::TestCa;

const HELLO: &[u8] = b"hello, appliance\n";
const TARGET: &str = "pkg/hello-1.0.tar";

/// An appliance whose mirrors are, in order: one that is down (it makes the
/// run log: a refused mirror is logged at warn), one that tampers with
/// packages, and a good one; the repository and the two servers with it.
async fn down_tampering_good() -> (TestRepo, Server, Server, Appliance) {
    let repo = TestRepo::new(&[(TARGET, HELLO)]);
    let ca = TestCa::new();
    let bad = serve(repo.tree(), ca.server.clone()).await;
    bad.ctl.tamper.store(true, Ordering::SeqCst);
    let good = serve(repo.tree(), ca.server.clone()).await;
    let dead = dead_url().await;
    let app = Appliance::https(&ca, &repo.root_file(), &[dead, bad.url(), good.url()], "");
    app.init(&repo.root_file()).await;
    (repo, bad, good, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_run_prints_json_lines_on_stderr_and_warns_of_a_tampered_package() {
    let (_repo, bad, good, app) = down_tampering_good().await;

    // stderr is a pipe here, as under a timer or in a log.
    let r = app.run(&["--json", "download", TARGET]).await.ok();
    let err = r.0.stderr.clone();
    assert!(!err.contains(&0x1b), "ESC on stderr: {}", r.stderr());
    let lines: Vec<serde_json::Value> = r
        .stderr()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{}", r.stderr()))
        })
        .collect();
    // Log lines are there, as JSON.
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "WARN" && v["message"].is_string()),
        "{}",
        r.stderr()
    );
    // The fallback names the mirror and the reason.
    let warning = lines
        .iter()
        .find(|v| {
            v["event"] == "warning" && v["message"].as_str().unwrap_or("").contains(&bad.url())
        })
        .unwrap_or_else(|| panic!("no warning naming {}: {}", bad.url(), r.stderr()));
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("does not match its signed hash"),
        "{message}"
    );
    assert!(message.contains(TARGET), "{message}");
    // Results stay on stdout.
    let done: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(done["event"], "downloaded");
    assert_eq!(done["mirror"], good.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_run_in_a_pipe_is_not_coloured_and_warns_of_a_tampered_package() {
    let (_repo, bad, _good, app) = down_tampering_good().await;

    let r = app.run(&["download", TARGET]).await.ok();
    assert!(!r.0.stderr.contains(&0x1b), "ESC on stderr: {}", r.stderr());
    assert!(r.stderr().contains("WARN"), "no log line: {}", r.stderr());
    assert!(
        r.stderr().lines().any(|l| l.starts_with("warning: ")
            && l.contains(&bad.url())
            && l.contains("does not match its signed hash")),
        "{}",
        r.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_works_again_is_no_longer_marked_bad() {
    let repo = TestRepo::new(&[(TARGET, HELLO)]);
    let ca = TestCa::new();
    let flaky = serve(repo.tree(), ca.server.clone()).await;
    flaky.ctl.tamper.store(true, Ordering::SeqCst);
    let good = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[flaky.url(), good.url()], "");
    app.init(&repo.root_file()).await;
    app.run(&["download", TARGET]).await.ok();

    let health = |r: crate::util::Run| -> serde_json::Value {
        r.stdout()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|m| m["url"] == flaky.url())
            .unwrap()
    };
    let row = health(app.run(&["--json", "mirrors"]).await.ok());
    assert_eq!(row["health"], "bad", "{row}");
    let r = app.run(&["mirrors"]).await.ok();
    assert!(r.stdout().contains("bad until"), "{}", r.stdout());

    // The mirror is repaired, and is the only one left.
    flaky.ctl.tamper.store(false, Ordering::SeqCst);
    let config = std::fs::read_to_string(app.config()).unwrap();
    let only_flaky = config.replace(&format!(", {:?}", good.url()), "");
    assert_ne!(config, only_flaky);
    std::fs::write(app.config(), only_flaky).unwrap();
    drop(good);
    app.run(&["update"]).await.ok();

    let row = health(app.run(&["--json", "mirrors"]).await.ok());
    assert_eq!(row["health"], "ok", "{row}");
    let r = app.run(&["mirrors"]).await.ok();
    assert!(!r.stdout().contains("bad until"), "{}", r.stdout());
    let r = app.run(&["status"]).await.ok();
    assert!(r.stdout().contains(&flaky.url()), "{}", r.stdout());
}

/// In HTTPS mode an `[https] extra_ca` file that is missing is a
/// configuration error (exit 2) naming the file, not a Tor failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_extra_ca_file_is_a_configuration_error() {
    let repo = TestRepo::new(&[(TARGET, HELLO)]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[mirror.url()], "");
    app.init(&repo.root_file()).await;
    std::fs::remove_file(app.dir.path().join("ca.pem")).unwrap();
    for args in [&["update"][..], &["check-config"]] {
        let r = app.run(args).await;
        assert_eq!(r.code(), 2, "{args:?}: {}", r.stderr());
        assert!(r.stderr().contains("ca.pem"), "{args:?}: {}", r.stderr());
    }
    let r = app.run(&["--json", "update"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let v: serde_json::Value = serde_json::from_str(r.stderr().lines().last().unwrap()).unwrap();
    assert_eq!(v["error"], "usage");
    assert_eq!(v["exit_code"], 2);
}

/// `status` names the root version the metadata is trusted under, which
/// grows with each root rotation, beside the version pinned at `init`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_trusted_root_version_beside_the_pinned_one() {
    let repo = TestRepo::new(&[(TARGET, HELLO)]);
    let ca = TestCa::new();
    let mirror = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[mirror.url()], "");
    app.init(&repo.root_file()).await;
    // A new timestamp key is a new root (version 2).
    repo.rotate_timestamp();
    repo.publish();
    app.run(&["update"]).await.ok();
    let r = app.run(&["status"]).await.ok();
    assert!(
        r.stdout().contains("root: version 2 (pinned version 1)"),
        "{}",
        r.stdout()
    );
    let r = app.run(&["--json", "status"]).await.ok();
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(v["root_version"], 2, "{v}");
    assert_eq!(v["pinned_root_version"], 1, "{v}");
}
