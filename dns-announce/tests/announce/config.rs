//! `check-config`: what a package's installer asks before it enables the
//! announcement server. It reads only: no socket, no key decrypted.

use crate::util::{TestRepo, run, serve_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_refuses_what_serve_could_not_start_with() {
    let repo = TestRepo::new();
    let config = serve_config(&repo);
    let text = std::fs::read_to_string(&config).unwrap();
    let cfg = config.display().to_string();

    let r = run(["check-config", "--config", &cfg]).await;
    r.assert_code(0);
    assert!(r.stdout.contains("configuration ok"), "{r:?}");

    // The repository of the packaged configuration, not made yet: 2,
    // naming what is missing.
    let elsewhere = repo.tmp.path().join("no-repo");
    std::fs::write(
        &config,
        text.replace(
            &format!("repo = {:?}", repo.dir().display().to_string()),
            &format!("repo = {:?}", elsewhere.display().to_string()),
        ),
    )
    .unwrap();
    let r = run(["check-config", "--config", &cfg]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("metadata/timestamp.json"), "{r:?}");

    // A key file that is not there: 2, naming it. A credential of the unit,
    // absent outside it, is left to systemd and said so.
    let key = repo.timestamp_key_files()[0].display().to_string();
    std::fs::write(&config, text.replace(&key, "/nonexistent/timestamp.key")).unwrap();
    let r = run(["check-config", "--config", &cfg]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("/nonexistent/timestamp.key"), "{r:?}");
    let credential = "/run/credentials/onionpkg-announce-test.service/timestamp-key";
    std::fs::write(&config, text.replace(&key, credential)).unwrap();
    let r = run(["--json", "check-config", "--config", &cfg]).await;
    r.assert_code(0);
    assert_eq!(r.json()["credentials_not_checked"][0], credential);

    // Without [serve] there is nothing for the unit to run: 2.
    let no_serve = text.split("[serve]").next().unwrap().to_owned();
    std::fs::write(&config, no_serve).unwrap();
    let r = run(["check-config", "--config", &cfg]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("no [serve] section"), "{r:?}");
}
