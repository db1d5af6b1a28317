//! The binary: clear messages and documented exit codes for bad
//! configurations, `status`.

use std::path::Path;
use std::process::Output;

use crate::util::{BIN, WAIT, config, run};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn served_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_exit_with_documented_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = served_root(d);
    let cfg_str = |p: &Path| p.display().to_string();

    // Status before anything ran: 1, naming the state file.
    let cfg = config(d, &root, "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let o = run(&["status", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("mirror-state.json"), "{}", stderr(&o));

    // A missing configuration file: 3.
    let o = run(&["serve", "--config", &cfg_str(&d.join("nope.toml"))]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot read the configuration file"),
        "{}",
        stderr(&o)
    );

    // Unreadable PEM: 3, naming the file.
    let cfg = config(
        d,
        &root,
        &format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{0}/missing.pem\"\nkey = \"{0}/missing-key.pem\"\n",
            d.display()
        ),
    );
    let o = run(&["serve", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tls certificate") && stderr(&o).contains("missing.pem"),
        "{}",
        stderr(&o)
    );
    std::fs::write(d.join("garbage.pem"), b"-----BEGIN NOTHING-----\n").unwrap();
    let cfg = config(
        d,
        &root,
        &format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"{0}/garbage.pem\"\nkey = \"{0}/garbage.pem\"\n",
            d.display()
        ),
    );
    let o = run(&["serve", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("garbage.pem"), "{}", stderr(&o));

    // A missing repository root: 3.
    let cfg = config(d, &d.join("no-root"), "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let o = run(&["serve", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("repository root"), "{}", stderr(&o));

    // A port in use: 4.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config(
        d,
        &root,
        &format!("[listen]\nhttp = \"{}\"\n", taken.local_addr().unwrap()),
    );
    let o = run(&["serve", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));

    // Metrics on a public address: refused by validation, 3.
    let cfg = config(
        d,
        &root,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[metrics]\nlisten = \"0.0.0.0:9100\"\n",
    );
    let o = run(&["serve", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));

    // Sync without [sync]: 3. Sync with a missing trusted root: 3.
    let cfg = config(d, &root, "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let o = run(&["sync", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let cfg = config(
        d,
        &root,
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[sync]\nupstream = \"https://upstream.example/\"\n\
             trust_root = \"{}/no-root.json\"\nvia_tor = false\n",
            d.display()
        ),
    );
    let o = run(&["sync", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-root.json"), "{}", stderr(&o));

    // A usage error: 2.
    let o = run(&["serve"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Runs `serve` with `extra` config, fetches one file, sends SIGTERM;
/// returns the exit code and what was logged.
async fn serve_once(extra: &str) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = served_root(tmp.path());
    std::fs::write(root.join("metadata/timestamp.json"), b"{}").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = config(
        tmp.path(),
        &root,
        &format!("[listen]\nhttp = \"{port}\"\n{extra}"),
    );
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config", &cfg.display().to_string()])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Serving once a request succeeds.
    let served = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(s) = tokio::net::TcpStream::connect(port).await {
                drop(s);
                return crate::util::get(port, "/metadata/timestamp.json").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(served.status, 200);
    let pid = child.id().unwrap();
    let kill = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serving_and_access_log_is_opt_in() {
    let (code, log) = serve_once("").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains("client=") && !log.contains("timestamp.json"),
        "requests logged without access_log: {log}"
    );
    let (code, log) = serve_once("[log]\naccess_log = true\n").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("client=Some(127.0.0.1:") && log.contains("/metadata/timestamp.json"),
        "{log}"
    );
}

/// `check-config` reads only: the installer asks it before enabling the
/// service, on a machine where the tree and the trusted root may be missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_refuses_what_serve_could_not_start_with() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg_str = |p: &Path| p.display().to_string();
    let tree = d.join("tree");
    let sync = |root: &Path| {
        format!(
            "[sync]\nupstream = \"https://upstream.example/\"\ntrust_root = {:?}\n\
             via_tor = false\n",
            root.display().to_string()
        )
    };

    // As packaged: [sync] names a trusted root not installed yet. Exit 2,
    // naming the file; the tree sync would make is not made.
    let http = "[listen]\nhttp = \"127.0.0.1:0\"\n";
    let cfg = config(d, &tree, &format!("{http}{}", sync(&d.join("root.json"))));
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[sync] trust_root") && stderr(&o).contains("root.json"),
        "{}",
        stderr(&o)
    );
    assert!(!tree.exists());

    // A file that is not a root: 3.
    std::fs::write(d.join("root.json"), b"{}").unwrap();
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("[sync] trust_root"), "{}", stderr(&o));

    // The distribution's root: ready.
    let repo = crate::util::TestRepo::new(&d.join("upstream"), jiff::Timestamp::now());
    std::fs::copy(repo.root_path(), d.join("root.json")).unwrap();
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("trusted root version 1"), "{out}");
    assert!(!tree.exists());
    assert_eq!(std::fs::read_dir(d.join("state")).unwrap().count(), 0);

    // TLS files that do not load: 3, naming the file. Credentials of a unit
    // that is not running are left to systemd, and said so.
    let tls = |cert: &str| {
        format!("[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = {cert:?}\nkey = {cert:?}\n")
    };
    std::fs::write(d.join("garbage.pem"), b"-----BEGIN NOTHING-----\n").unwrap();
    let garbage = d.join("garbage.pem").display().to_string();
    let cfg = config(
        d,
        &tree,
        &format!("{}{}", tls(&garbage), sync(&d.join("root.json"))),
    );
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("garbage.pem"), "{}", stderr(&o));
    let cred = "/run/credentials/onionpkg-mirror-test.service/tls";
    let cfg = config(
        d,
        &tree,
        &format!("{}{}", tls(cred), sync(&d.join("root.json"))),
    );
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("systemd credentials"),
        "{o:?}"
    );

    // Without [sync] nothing makes the tree, so it must exist.
    let cfg = config(d, &tree, "[listen]\nhttp = \"127.0.0.1:0\"\n");
    let o = run(&["check-config", "--config", &cfg_str(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("repository root"), "{}", stderr(&o));
    let o = run(&[
        "check-config",
        "--config",
        &cfg_str(&config(d, repo.dir(), http)),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
