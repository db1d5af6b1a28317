//! `on_update` actions of feeds: run by `feeds sync` once per new verified
//! version of a feed file, not for an unchanged one; a failing or hanging
//! action is reported (exit 14, its exit code and what it printed) and the
//! verified file stays in place; a malformed action is refused at load.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::server::serve;
use crate::util::{Appliance, TestRepo};
use onionpkg_testkit::TestCa;

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(b))
}

/// An action that appends "SHA256 FILE" to `log`: python3 without braces,
/// which the configuration keeps for its placeholder.
fn logging_action(log: &Path) -> String {
    let code = format!(
        "import os, sys\nwith open({:?}, 'a') as f:\n    f.write(os.environ['ONIONPKG_FEED_SHA256'] + ' ' + sys.argv[1] + chr(10))\n",
        log.display().to_string()
    );
    format!("on_update = [\"/usr/bin/python3\", \"-c\", {code:?}, \"{{file}}\"]\n")
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_runs_once_per_new_version_and_a_failure_keeps_the_file() {
    let repo = TestRepo::new(&[]);
    let add_feed = |path: &str, content: &[u8]| {
        repo.add_feed(path, content);
        repo.publish();
    };
    let v1 = b"192.0.2.0/24 ; SBL1\n";
    add_feed("feeds/blocklist/drop.txt", v1);
    add_feed(
        "feeds/rules/rules.txt",
        b"alert ip any any -> any any (sid:1;)\n",
    );
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("applied.log");
    let extra = format!(
        "[feeds.blocklist]\n{}\n[feeds.rules]\non_update = [\"/usr/bin/python3\", \"-c\", \
         \"import sys; print('suricata: rules rejected', file=sys.stderr); sys.exit(3)\", \
         \"{{file}}\"]\ntimeout = \"30s\"\n",
        logging_action(&log)
    );
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], &extra);
    app.init(&repo.root_file()).await;
    let list = app.out().join("feeds/blocklist/drop.txt");

    // A new version: the action runs, with the file and its hash.
    let r = app.run(&["feeds", "sync", "blocklist"]).await.ok();
    assert!(
        r.stdout().contains("on_update of feed blocklist ran for"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        log_lines(&log),
        [format!("{} {}", sha256_hex(v1), list.display())]
    );
    // Unchanged: it does not run again.
    let r = app.run(&["feeds", "sync", "blocklist"]).await.ok();
    assert!(!r.stdout().contains("on_update"), "{}", r.stdout());
    assert_eq!(log_lines(&log).len(), 1);

    // The next version: once more, for that version.
    let v2 = b"198.51.100.0/24 ; SBL2\n";
    add_feed("feeds/blocklist/drop.txt", v2);
    app.run(&["feeds", "sync", "blocklist"]).await.ok();
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1], format!("{} {}", sha256_hex(v2), list.display()));
    app.run(&["feeds", "sync"]).await;
    assert_eq!(log_lines(&log).len(), 2, "unchanged again");

    // A failing action: reported with its exit code and message (exit 14),
    // the verified file in place; tried again at the next sync.
    let rules = app.out().join("feeds/rules/rules.txt");
    for _ in 0..2 {
        let r = app.run(&["feeds", "sync", "rules"]).await;
        assert_eq!(r.code(), 14, "{}\n{}", r.stdout(), r.stderr());
        let err = r.stderr();
        assert!(
            err.contains("on_update of feed rules failed")
                && err.contains("/usr/bin/python3 exited with code 3")
                && err.contains("stderr: suricata: rules rejected")
                && err.contains("the verified file stays in place"),
            "{err}"
        );
        assert!(r.stdout().contains("verified"), "{}", r.stdout());
        assert_eq!(
            std::fs::read(&rules).unwrap(),
            b"alert ip any any -> any any (sid:1;)\n"
        );
    }
    // The record names only what succeeded.
    let record = std::fs::read_to_string(app.state().join("feed-actions.json")).unwrap();
    assert!(record.contains(&sha256_hex(v2)), "{record}");
    assert!(!record.contains("feeds/rules/"), "{record}");
    let r = app.run(&["--json", "feeds", "sync", "rules"]).await;
    // The report is a JSON line on stderr, beside the log's (JSON) lines.
    let v: serde_json::Value = r
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "action")
        .unwrap_or_else(|| panic!("no action event: {}", r.stderr()));
    assert_eq!(v["event"], "action");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_action_is_killed_at_its_deadline() {
    let repo = TestRepo::new(&[]);
    repo.add_feed("feeds/blocklist/drop.txt", b"192.0.2.0/24\n");
    repo.publish();
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let extra = "[feeds.blocklist]\non_update = [\"/usr/bin/python3\", \"-c\", \
                 \"import subprocess, time; subprocess.Popen(['sleep', '120']); time.sleep(120)\", \
                 \"{file}\"]\ntimeout = \"2s\"\n";
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], extra);
    app.init(&repo.root_file()).await;
    let started = Instant::now();
    let r = app.run(&["feeds", "sync"]).await;
    assert_eq!(r.code(), 14, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("did not finish within 2s and was killed"),
        "{}",
        r.stderr()
    );
    // The action's child went with it: nothing held its output open.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        std::fs::read(app.out().join("feeds/blocklist/drop.txt")).unwrap(),
        b"192.0.2.0/24\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_action_is_refused_at_load() {
    let repo = TestRepo::new(&[]);
    let ca = TestCa::new();
    for (bad, needle) in [
        (
            "on_update = \"ipset restore < {file}\"",
            "feeds.blocklist.on_update",
        ),
        ("on_update = [\"ipset\", \"restore\"]", "absolute path"),
        ("on_update = [\"/sbin/ipset\", \"{path}\"]", "placeholder"),
        (
            "on_update = [\"/sbin/ipset\"]\ntimeout = \"2h\"",
            "at most 1h",
        ),
    ] {
        let extra = format!("[feeds.blocklist]\n{bad}\n");
        let app = Appliance::https(
            &ca,
            &repo.root_file(),
            &["https://127.0.0.1:9/".into()],
            &extra,
        );
        let r = app.run(&["feeds", "sync"]).await;
        assert_eq!(r.code(), 2, "{bad}: {}", r.stderr());
        assert!(r.stderr().contains(needle), "{bad}: {}", r.stderr());
    }
}
