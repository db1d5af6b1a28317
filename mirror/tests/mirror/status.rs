//! `status` of a mirror that only serves (no sync, no onion service), and
//! the `--json` reports of the commands that report: one JSON object per
//! line, errors in the shape every onionpkg program uses.

use std::path::Path;
use std::process::Output;

use onionpkg_testkit::TestCa;

use crate::util::{TestRepo, WAIT, config, run, start};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An HTTPS-only mirror configuration serving `repo` from `dir`.
fn https_only(dir: &Path, repo: &TestRepo) -> std::path::PathBuf {
    TestCa::for_names("onionpkg test CA", &["127.0.0.1"])
        .write(dir, "")
        .unwrap();
    let d = dir.display();
    config(
        dir,
        repo.dir(),
        &format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_works_on_a_mirror_that_only_serves_https() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), jiff::Timestamp::now());
    let cfg = https_only(tmp.path(), &repo);
    let cfg = cfg.display().to_string();
    // An onion address left from an earlier configuration is not this
    // mirror's any more.
    std::fs::write(
        tmp.path().join("state/mirror-state.json"),
        br#"{"onion_address": "old.onion"}"#,
    )
    .unwrap();

    let timestamp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.dir().join("metadata/timestamp.json")).unwrap())
            .unwrap();
    let version = timestamp["signed"]["version"].as_u64().unwrap();
    let mirror = start(Path::new(&cfg)).await;
    assert!(mirror.https_addr().is_some() && mirror.http_addr().is_none());

    let o = run(&["status", "--config", &cfg]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains(&format!("served version: {version}")), "{out}");
    assert!(out.contains("onion address: none"), "{out}");
    assert!(out.contains("serving since: "), "{out}");

    let o = run(&["status", "--json", "--config", &cfg]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["event"], "status");
    assert_eq!(v["served_version"], version);
    assert_eq!(v["onion_address"], serde_json::Value::Null);
    assert!(v["serving_since"].is_string(), "{v}");
    mirror.shutdown(WAIT).await;
}

/// With `--json`, an error is one JSON line on stderr, as from the fetcher,
/// the announcer and the repository tool, and stdout stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_have_the_shape_every_program_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(d, &root, "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let cfg = cfg.display().to_string();

    let error_line = |o: &Output, code: u8, name: &str| {
        assert_eq!(
            o.status.code(),
            Some(i32::from(code)),
            "{}",
            text(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
        let err = text(&o.stderr);
        // stderr is a pipe here: JSON lines only, no colour.
        assert!(!o.stderr.contains(&0x1b), "{err}");
        for l in err.lines() {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
        }
        let line = err.lines().last().unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {err}"));
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["event"], "error", "{v}");
        assert_eq!(v["error"], name, "{v}");
        assert_eq!(v["exit_code"], code, "{v}");
        assert!(v["message"].is_string(), "{v}");
        v
    };

    // Nothing ran yet: not initialized, naming the state file.
    let o = run(&["status", "--json", "--config", &cfg]).await;
    let v = error_line(&o, 3, "not-initialized");
    assert!(
        v["message"].as_str().unwrap().contains("mirror-state.json"),
        "{v}"
    );

    // A configuration that does not load.
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "root = 7\n").unwrap();
    let bad = bad.display().to_string();
    for args in [
        &["status", "--json", "--config", &bad][..],
        &["check-config", "--json", "--config", &bad],
        &["sync", "--json", "--config", &bad],
    ] {
        error_line(&run(args).await, 2, "usage");
    }

    // Without [sync], sync is a usage error.
    error_line(
        &run(&["sync", "--json", "--config", &cfg]).await,
        2,
        "usage",
    );

    // A report: one JSON object on stdout.
    let o = run(&["check-config", "--json", "--config", &cfg]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["event"], "check-config", "{v}");
    assert!(
        v["checked"].as_array().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
}
