//! Repositories made by python-tuf with keys other than ed25519: one signed
//! with ECDSA P-256 keys only downloads and verifies in `onionpkg-fetch`;
//! one whose online roles use RSA (`rsassa-pss-sha256`) and one whose
//! timestamp key has a scheme nobody implements are refused, and the error
//! names the scheme.

use std::path::{Path, PathBuf};

use crate::interop::make_repo;
use crate::server::serve;
use crate::util::Appliance;
use onionpkg_testkit::TestCa;

/// The targets every `make_repo.py` repository holds: a top-level one in a
/// sub-directory and one of the delegated role `releases`.
const TARGETS: [&str; 2] = ["pkg/app-1.0.tar", "releases/tool-2.0.tar"];

/// The scheme of every key `role` has in `root`.
fn schemes(root: &Path, role: &str) -> Vec<String> {
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(root).unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let key = &root["signed"]["keys"][id.as_str().unwrap()];
            key["scheme"].as_str().unwrap().to_string()
        })
        .collect()
}

/// A `make_repo.py --keys PLAN` repository served over HTTPS on 127.0.0.1,
/// and an appliance pinned to its first root (so the fetcher walks the
/// rotation to the second).
async fn served(plan: &str) -> (tempfile::TempDir, PathBuf, crate::server::Server, Appliance) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    make_repo(&["--keys", plan], &repo).await;
    let ca = TestCa::new();
    let mirror = serve(repo.clone(), ca.server.clone()).await;
    let root = repo.join("metadata/1.root.json");
    let app = Appliance::https(&ca, &root, &[mirror.url()], "");
    (tmp, repo, mirror, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecdsa_p256_python_tuf_repository_downloads_and_verifies() {
    let (_tmp, repo, mirror, app) = served("ecdsa").await;
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let found = schemes(&repo.join("metadata/2.root.json"), role);
        assert!(!found.is_empty(), "{role}");
        assert!(
            found.iter().all(|s| s == "ecdsa-sha2-nistp256"),
            "{role}: {found:?}"
        );
    }
    app.init(&repo.join("metadata/1.root.json")).await;
    let mut args = vec!["download"];
    args.extend(TARGETS);
    app.run(&args).await.ok();
    for name in TARGETS {
        let got = std::fs::read(app.out().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = std::fs::read(repo.join("expected").join(name)).unwrap();
        assert_eq!(got, want, "{name}");
    }
    // It came from the mirror, the delegated role's metadata too.
    let seen: Vec<String> = mirror
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    for path in ["/metadata/2.root.json", "/metadata/1.releases.json"] {
        assert!(
            seen.iter().any(|p| p == path),
            "{path} not fetched: {seen:?}"
        );
    }
}

/// Runs `download` of the top-level target on a repository of `plan`,
/// expecting a verification failure (exit 8) whose message names `scheme`
/// as one onionpkg does not verify, and no file written.
async fn refused_naming(plan: &str, scheme: &str) {
    let (_tmp, repo, _mirror, app) = served(plan).await;
    assert!(
        schemes(&repo.join("metadata/2.root.json"), "timestamp")
            .iter()
            .all(|s| s == scheme)
    );
    app.init(&repo.join("metadata/1.root.json")).await;
    let run = app.run(&["download", TARGETS[0]]).await;
    assert_eq!(
        run.code(),
        8,
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "uses scheme {scheme}, which onionpkg does not verify"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("timestamp"), "{stderr}");
    assert!(!app.out().join(TARGETS[0]).exists());

    // The same as JSON: the error names the scheme.
    let run = app.run(&["--json", "download", TARGETS[0]]).await;
    assert_eq!(run.code(), 8);
    let error = run
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "error")
        .unwrap_or_else(|| panic!("no JSON error: {}", run.stderr()));
    assert_eq!(error["error"], "verification", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "uses scheme {scheme}, which onionpkg does not verify"
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_signed_metadata_is_refused_naming_the_scheme() {
    refused_naming("rsa", "rsassa-pss-sha256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_an_unknown_scheme_is_refused_naming_the_scheme() {
    refused_naming("unknown", "x-unknown-scheme").await;
}
