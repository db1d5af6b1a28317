//! Key rotation from the command line: root keys are never made online
//! unless asked, a rotation awaiting offline signatures reports normally,
//! and the current key of a role keeps its file name.

use std::path::Path;

use crate::util::{ok, repo_cmd, stderr, stdout, tree};

/// Moves the root keys out of the repository's key directory, to `offline`.
fn take_root_keys_offline(repo: &Path, offline: &Path) {
    std::fs::create_dir_all(offline).unwrap();
    for i in 1..=3 {
        for ext in ["key", "pub.json"] {
            let name = format!("root-{i}.{ext}");
            std::fs::rename(repo.join("keys").join(&name), offline.join(&name)).unwrap();
        }
    }
}

#[test]
fn rotate_root_makes_no_root_key_online_and_tells_the_offline_way() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let before = tree(&repo);
    let out = repo_cmd(&repo, &["rotate", "root"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    let text = stdout(&out);
    for step in [
        "--generate-online",
        "onionpkg-repo keygen --out root-NAME",
        "root draft --set-keys root=",
        "onionpkg-repo root sign COPY.json --key root-NAME.key",
        "root merge -o signed.json",
        "root install signed.json",
        "docs/RELEASE.md",
    ] {
        assert!(text.contains(step), "{step:?} missing from:\n{text}");
    }
    // Nothing was made: no key, no draft.
    assert_eq!(tree(&repo), before);

    // With --json, the same steps, and ok false.
    let out = repo_cmd(&repo, &["--json", "rotate", "root"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 2);
    assert!(v["output"].to_string().contains("root draft --set-keys"));
    assert_eq!(tree(&repo), before);

    // --generate-online is for root alone.
    let out = repo_cmd(&repo, &["rotate", "timestamp", "--generate-online"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--generate-online is for `rotate root`"));
    assert_eq!(tree(&repo), before);
}

#[test]
fn rotate_root_generate_online_warns_what_it_means() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let out = repo_cmd(&repo, &["rotate", "root", "--generate-online"]);
    let text = ok(&out);
    assert!(text.starts_with("rotated root; new key(s): "), "{text}");
    let warning = stderr(&out);
    assert!(
        warning.starts_with(
            "warning: --generate-online: 3 new root private key(s) were made on this machine"
        ),
        "{warning}"
    );
    assert!(warning.contains("offline media"), "{warning}");
    let root = repo.join("metadata/1.root.json");
    let verified = ok(&repo_cmd(
        &repo,
        &["verify", "--root", root.to_str().unwrap()],
    ));
    assert!(verified.contains("root v2"), "{verified}");
}

#[test]
fn a_rotation_awaiting_offline_signatures_reports_its_key_ids_as_output() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    take_root_keys_offline(&repo, &tmp.path().join("offline"));
    let out = repo_cmd(&repo, &["rotate", "timestamp"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("new key(s) for timestamp: "), "{text}");
    assert_eq!(
        first.trim_start_matches("new key(s) for timestamp: ").len(),
        64
    );
    assert!(text.contains("root sign"), "{text}");
    assert!(repo.join("staged/root.json").exists());
}
