//! How sync reaches upstream: HTTPS with an extra CA, a TLS failure told
//! apart from a refused repository, and plain http only to loopback.

use jiff::Timestamp;
use onionpkg_mirror::Error;
use onionpkg_mirror::sync::sync_and_record;

use crate::sync::{Upstream, client_accepts, snapshot, sync_config, synced_one};
use crate::util::{TestRepo, clock, direct, run};
use onionpkg_testkit::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_a_private_ca_needs_extra_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let root_json = std::fs::read(repo.root_path()).unwrap();
    let TestCa { ca_pem, server, .. } = TestCa::new();
    let upstream = Upstream::start_with(repo.dir(), "none", Some(server)).await;
    assert!(upstream.url().starts_with("https://127.0.0.1:"));
    std::fs::write(tmp.path().join("ca.pem"), &ca_pem).unwrap();

    // Without the CA: a TLS failure, nothing published.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let cfg = sync_config(&plain, &repo, &upstream.url(), "");
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let e = sync_and_record(&cfg, None, &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UpstreamTls { .. }), "{e}");
    assert!(snapshot(&cfg.root).is_empty(), "a failed sync published");

    // With it (a path relative to the configuration file): synced, verified.
    let cfg = sync_config(
        tmp.path(),
        &repo,
        &upstream.url(),
        "extra_ca = \"ca.pem\"\n",
    );
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    synced_one(&cfg, &clock(&cfg), &root_json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_failure_is_a_network_failure_not_a_refused_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let server = TestCa::new().server;
    let upstream = Upstream::start_with(repo.dir(), "none", Some(server)).await;
    let cfg = sync_config(tmp.path(), &repo, &upstream.url(), "");

    let out = run(&["sync", "--config", &cfg.display().to_string()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach upstream {} over tls",
            upstream.url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(!stderr.contains("refused"), "{stderr}");

    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let e = sync_and_record(&cfg, None, &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap_err();
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 6, "{e}");
    let state = onionpkg_mirror::state::State::load(&cfg.state_dir).unwrap();
    assert!(
        state.last_sync_error.unwrap().contains("over tls"),
        "the state file names the tls failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_network_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let cfg = sync_config(tmp.path(), &repo, &url, "");
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let e = sync_and_record(&cfg, None, &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Upstream { url: u, .. } if u.starts_with(&url)),
        "{e}"
    );
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 6, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_upstream_only_on_loopback_in_the_config_and_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let root_json = std::fs::read(repo.root_path()).unwrap();
    let upstream = Upstream::start(repo.dir(), "none").await;
    assert!(upstream.url().starts_with("http://127.0.0.1:"));

    // Accepted in [sync], and synced from without --upstream.
    let cfg_path = sync_config(tmp.path(), &repo, &upstream.url(), "");
    let out = run(&["sync", "--config", &cfg_path.display().to_string()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = onionpkg_config::load_mirror(&cfg_path).unwrap();
    assert_eq!(
        client_accepts(&root_json, &cfg.root, "pkg/hello-1.0.tar").await,
        b"hello, appliance\n"
    );

    // Any other plain http upstream: refused in [sync] (bad configuration)...
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let bad = sync_config(&other, &repo, "http://192.0.2.1/", "");
    let out = run(&["sync", "--config", &bad.display().to_string()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sync.upstream"), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");

    // ...and on the command line (a usage error), by the same rules.
    let out = run(&[
        "sync",
        "--config",
        &cfg_path.display().to_string(),
        "--upstream",
        "http://192.0.2.1/",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http://192.0.2.1/"), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
}

/// Sync has no network code of its own: HTTP, TLS and URLs are
/// `onionpkg-net`'s and `onionpkg-config`'s, so there is one of each to get
/// right.
#[test]
fn sync_speaks_http_only_through_onionpkg_net() {
    let sources = [
        ("sync.rs", include_str!("../../src/sync.rs")),
        (
            "sync/upstream.rs",
            include_str!("../../src/sync/upstream.rs"),
        ),
    ];
    for (file, source) in sources {
        for word in [
            "hyper",
            "http::",
            "http_body",
            "rustls",
            "webpki",
            "Uri",
            "TcpStream",
            "url::",
        ] {
            assert!(!source.contains(word), "{file} uses {word}");
        }
    }
}
