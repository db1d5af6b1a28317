//! The `onionpkg-repo` command line: the documented flows and exit codes.

use std::process::Command;

use crate::util::{keys_dir, ok, repo_cmd, verified};

#[test]
fn init_add_publish_verify_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pkg = tmp.path().join("app-1.0.tar");
    std::fs::write(&pkg, b"app 1.0").unwrap();

    let init = ok(&repo_cmd(
        &repo,
        &["--passphrase-env", "ONIONPKG_TEST_PASSPHRASE", "init"],
    ));
    // Key ids are shown; secrets never are.
    assert_eq!(init.lines().filter(|l| l.starts_with("root ")).count(), 3);
    for entry in std::fs::read_dir(keys_dir(&repo)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let pem = std::fs::read_to_string(&path).unwrap();
            assert!(
                pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
                "{path:?}"
            );
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert!(!init.contains(&body[..40]));
        }
    }

    ok(&repo_cmd(
        &repo,
        &[
            "add",
            pkg.to_str().unwrap(),
            "--path",
            "pkg/app-1.0.tar",
            "--custom",
            "version=1.0",
        ],
    ));
    // Without the passphrase the encrypted keys cannot be opened: a key
    // error, exit code 12, and the message says why.
    let no_pass = repo_cmd(&repo, &["publish"]);
    assert_eq!(
        no_pass.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&no_pass.stderr)
    );
    assert!(String::from_utf8_lossy(&no_pass.stderr).contains("encrypted"));
    let published = ok(&repo_cmd(
        &repo,
        &["--passphrase-env", "ONIONPKG_TEST_PASSPHRASE", "publish"],
    ));
    assert!(published.contains("timestamp version 2"), "{published}");

    let root = repo.join("metadata/1.root.json");
    let verified = verified(&repo);
    assert!(verified.contains("pkg/app-1.0.tar (7 bytes)"), "{verified}");

    // A tampered package: verification fails with exit code 3.
    let target = std::fs::read_dir(repo.join("targets/pkg"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".app-1.0.tar"))
        .unwrap();
    std::fs::write(&target, b"app 6.6").unwrap();
    let bad = repo_cmd(&repo, &["verify", "--root", root.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not match its signed hash"));

    // Bad usage: exit 2.
    assert_eq!(repo_cmd(&repo, &["no-such-command"]).status.code(), Some(2));
    // A second init refuses to clobber the repository.
    let again = repo_cmd(&repo, &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a repository"));
}

#[test]
fn init_takes_a_bin_count_and_refuses_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = repo_cmd(&tmp.path().join("bad"), &["init", "--bins", "100"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("power of two"));
    assert!(!tmp.path().join("bad/metadata/root.json").exists());

    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init", "--bins", "16"]));
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/1.targets.json")).unwrap())
            .unwrap();
    let bins = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path_hash_prefixes"].is_array())
        .count();
    assert_eq!(bins, 16);
}

#[test]
fn unsafe_target_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pkg = tmp.path().join("x");
    std::fs::write(&pkg, b"x").unwrap();
    ok(&repo_cmd(&repo, &["init", "--threshold", "root=1/1"]));
    for bad in ["../escape", "/abs", "a//b", "mirrors.json", "feeds/x/y"] {
        let out = repo_cmd(&repo, &["add", pkg.to_str().unwrap(), "--path", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn timestamp_rotation_and_json_output() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let ts = ok(&repo_cmd(
        &repo,
        &["--json", "timestamp", "--expires", "2h"],
    ));
    let v: serde_json::Value = serde_json::from_str(ts.trim()).unwrap();
    assert_eq!(v["ok"], true);
    let rot = ok(&repo_cmd(&repo, &["rotate", "snapshot"]));
    assert!(rot.starts_with("rotated snapshot"), "{rot}");
    let verified = verified(&repo);
    assert!(verified.contains("root v2"), "{verified}");
    let bad = repo_cmd(&repo, &["timestamp", "--expires", "soon"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn announce_and_mirror_list_verify_as_clients_would() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));

    // A mirror list with a clearnet and an onion mirror, staged and published.
    let onion = onionpkg_trust::mirrors::onion_host(&[7u8; 32]);
    let expires = onionpkg_repo::state::tuf_time(
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * 30))
            .unwrap(),
    );
    let list = serde_json::json!({
        "version": 1, "expires": expires,
        "mirrors": [{ "name": "primary", "clearnet": "https://mirror.example.org/onionpkg/",
                      "onion": format!("http://{onion}/"), "region": "eu", "weight": 10 }],
    });
    let list_file = tmp.path().join("mirrors.json");
    std::fs::write(&list_file, serde_json::to_vec(&list).unwrap()).unwrap();
    ok(&repo_cmd(
        &repo,
        &["mirrors", "set", list_file.to_str().unwrap()],
    ));
    ok(&repo_cmd(&repo, &["publish"]));
    let root = repo.join("metadata/1.root.json");
    let verified = verified(&repo);
    assert!(verified.contains("mirrors  mirrors.json"), "{verified}");

    // An invalid list (http on clearnet) is refused before anything is staged.
    let mut bad = list;
    bad["mirrors"][0]["clearnet"] = serde_json::json!("http://mirror.example.org/");
    std::fs::write(&list_file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = repo_cmd(&repo, &["mirrors", "set", list_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8));

    // The announcement names the published timestamp version, signed by the
    // timestamp role, and verifies against the root.
    let text = ok(&repo_cmd(
        &repo,
        &["announce", "--name", "_update.example.org"],
    ));
    let text = text.trim();
    assert!(text.len() <= 255, "{}", text.len());
    let root_bytes = std::fs::read(&root).unwrap();
    let root = onionpkg_trust::metadata::check_root(&root_bytes).unwrap();
    let keys = onionpkg_trust::metadata::role_keys(&root, "timestamp").unwrap();
    let at = |name| onionpkg_trust::announce::Expectation {
        name,
        channel: "stable",
        keys: &keys,
        now: jiff::Timestamp::now(),
        tolerance: onionpkg_trust::clock::Tolerance::ZERO,
        last_seen: None,
    };
    let a = onionpkg_trust::announce::verify(text, &at("_update.example.org")).unwrap();
    assert_eq!(a.serial, 2);
    let ts = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&ts).into();
    assert_eq!(a.timestamp_hash, hash);
    // Bound to its name: another owner name does not verify.
    let err = onionpkg_trust::announce::verify(text, &at("_update.example.net")).unwrap_err();
    assert!(
        matches!(
            err,
            onionpkg_trust::announce::AnnounceError::NoValidSignature { ref owner }
                if owner == "_update.example.net"
        ),
        "{err:?}"
    );
    let zone = ok(&repo_cmd(
        &repo,
        &["announce", "--name", "_update.example.org", "--zone"],
    ));
    assert!(
        zone.starts_with("_update.example.org. 300 IN TXT \"v=1;c=stable;n=2;"),
        "{zone}"
    );
    // By default the record expires with the timestamp it names; it is
    // never valid for longer.
    let ts: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    let ts_expires: jiff::Timestamp = ts["signed"]["expires"].as_str().unwrap().parse().unwrap();
    assert_eq!(a.expires, ts_expires);
    let out = repo_cmd(
        &repo,
        &[
            "announce",
            "--name",
            "_update.example.org",
            "--expires",
            "2d",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("after the timestamp it names expires"),
        "{err}"
    );
    ok(&repo_cmd(
        &repo,
        &[
            "announce",
            "--name",
            "_update.example.org",
            "--expires",
            "1h",
        ],
    ));
}

#[test]
fn a_writer_waits_for_the_repository_lock() {
    use std::io::BufRead;
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init", "--threshold", "root=1/1"]));
    let timestamp = repo.join("metadata/timestamp.json");
    let before = std::fs::read(&timestamp).unwrap();

    // Another writer (the feed companion, say) holds the repository.
    let lock = onionpkg_repo::RepoDir::new(&repo).lock(|| {}).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onionpkg-repo"))
        .arg("--repo")
        .arg(&repo)
        .arg("publish")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("publish says it waits for the lock");
        if line.contains("waiting for another writer") {
            break;
        }
    }
    // While it waits, it has written nothing.
    assert_eq!(std::fs::read(&timestamp).unwrap(), before);

    drop(lock);
    // It goes on once the lock is free: its stderr closes when it exits.
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("publish did not finish after the lock was released");
            }
        }
    }
    assert!(child.wait().unwrap().success());
    assert_ne!(std::fs::read(&timestamp).unwrap(), before);
}

#[test]
fn a_mirror_list_must_have_a_higher_version_than_the_published_one() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let expires = onionpkg_repo::state::tuf_time(
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * 30))
            .unwrap(),
    );
    let file = tmp.path().join("mirrors.json");
    let write = |version: u64, host: &str| {
        let list = serde_json::json!({
            "version": version, "expires": expires,
            "mirrors": [{ "name": "primary", "clearnet": format!("https://{host}/") }],
        });
        std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    };
    let set = || repo_cmd(&repo, &["mirrors", "set", file.to_str().unwrap()]);
    write(3, "a.example.org");
    ok(&set());
    ok(&repo_cmd(&repo, &["publish"]));
    // The same list again is fine; another list under its version, or an
    // older version, would be refused by every appliance that has it.
    ok(&set());
    for (version, host) in [(3, "b.example.org"), (2, "b.example.org")] {
        write(version, host);
        let out = set();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "mirror list version {version} is not above the published version 3"
            )),
            "{err}"
        );
    }
    write(4, "b.example.org");
    ok(&set());
}

#[test]
fn init_keeps_the_keys_outside_the_repository_and_refuses_a_key_directory_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // Inside the tree, directly, deeper, or through a link to it: refused,
    // and nothing is made.
    std::fs::create_dir(&repo).unwrap();
    std::os::unix::fs::symlink(&repo, tmp.path().join("link")).unwrap();
    for keys in [
        repo.join("keys"),
        repo.join("metadata/keys"),
        tmp.path().join("link/keys"),
    ] {
        let out = repo_cmd(&repo, &["--keys", keys.to_str().unwrap(), "init"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("inside the repository"), "{err}");
        assert!(!repo.join("metadata").exists() && !keys.exists());
    }
    // By default the keys go next to the repository, not into it, and the
    // other commands find them there.
    ok(&repo_cmd(&repo, &["init"]));
    assert!(!repo.join("keys").exists());
    assert!(tmp.path().join("repo.keys/timestamp.key").exists());
    assert_eq!(keys_dir(&repo), tmp.path().join("repo.keys"));
    let published = ok(&repo_cmd(&repo, &["publish"]));
    assert!(published.contains("timestamp version 2"), "{published}");
}
