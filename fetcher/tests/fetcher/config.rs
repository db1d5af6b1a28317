//! `check-config`: what a package's installer asks before it enables the
//! service. It reads only: no state is made, no root pinned.

use std::path::Path;

use crate::util::{Appliance, TestRepo};
use onionpkg_testkit::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_needs_a_trust_root_and_writes_nothing() {
    let repo = TestRepo::new(&[]);
    let ca = TestCa::new();
    // Nothing listens there: the check must not try.
    let mirrors = ["https://127.0.0.1:9/".to_owned()];
    let app = Appliance::https(&ca, Path::new("root.json"), &mirrors, "");
    let shipped = app.dir.path().join("root.json");

    // As installed: no root shipped yet. The reason names both places.
    let r = app.run(&["check-config"]).await;
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("no trust root"), "{}", r.stderr());
    assert!(
        r.stderr()
            .contains(&format!("{} (trust_root)", shipped.display())),
        "{}",
        r.stderr()
    );
    assert!(!app.state().exists(), "check-config made the state dir");

    // A file that is not a root is refused as such.
    std::fs::write(&shipped, b"{\"signed\": {}}").unwrap();
    let r = app.run(&["check-config"]).await;
    assert_eq!(r.code(), 8, "{}", r.stderr());

    // The distribution's root: ready, and still nothing pinned.
    std::fs::copy(repo.root_file(), &shipped).unwrap();
    let r = app.run(&["check-config"]).await.ok();
    assert!(
        r.stdout().contains("trust root version 1") && r.stdout().contains("first run"),
        "{}",
        r.stdout()
    );
    assert!(!app.state().exists(), "check-config made the state dir");

    // Extra CA certificates that do not load are a configuration error.
    std::fs::write(app.dir.path().join("ca.pem"), b"not a certificate\n").unwrap();
    let r = app.run(&["check-config"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("extra_ca"), "{}", r.stderr());
    std::fs::write(app.dir.path().join("ca.pem"), &ca.ca_pem).unwrap();

    // Once pinned, the pinned root rules, even with the shipped one gone.
    app.init(&repo.root_file()).await;
    std::fs::remove_file(&shipped).unwrap();
    let r = app.run(&["--json", "check-config"]).await.ok();
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(v["event"], "check-config");
    assert_eq!(v["pinned"], true);
    assert_eq!(v["root_version"], 1);

    // A configuration that does not load: exit 2, as for every command.
    std::fs::write(app.config(), "transport = \"carrier-pigeon\"\n").unwrap();
    let r = app.run(&["check-config"]).await;
    assert_eq!(r.code(), 2, "{}", r.stderr());
}
