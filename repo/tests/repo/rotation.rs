//! Key rotation from the command line: root keys are never made online
//! unless asked, a rotation awaiting offline signatures reports normally,
//! and the current key of a role keeps its file name.

use std::path::Path;

use crate::util::{keys_dir, ok, repo_cmd, stderr, stdout, tree, verified};

/// Moves the root keys out of the repository's key directory, to `offline`.
fn take_root_keys_offline(repo: &Path, offline: &Path) {
    std::fs::create_dir_all(offline).unwrap();
    for i in 1..=3 {
        for ext in ["key", "pub.json"] {
            let name = format!("root-{i}.{ext}");
            std::fs::rename(keys_dir(repo).join(&name), offline.join(&name)).unwrap();
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
    let verified = verified(&repo);
    assert!(verified.contains("root v2"), "{verified}");
}

#[test]
fn a_rotation_awaiting_offline_signatures_reports_its_key_ids_as_output() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    take_root_keys_offline(&repo, &tmp.path().join("offline"));
    let out = repo_cmd(&repo, &["rotate", "timestamp"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
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

/// The key id in `keys/STEM.pub.json`.
fn key_id_of(keys: &Path, stem: &str) -> String {
    let bytes = std::fs::read(keys.join(format!("{stem}.pub.json")))
        .unwrap_or_else(|e| panic!("{stem}.pub.json: {e}"));
    onionpkg_trust::keys::PublicKey::from_json(&bytes)
        .unwrap()
        .key_id()
}

/// The key ids of `role` in the installed root.
fn root_ids(repo: &Path, role: &str) -> Vec<String> {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/root.json")).unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The file names in `dir` that start with `prefix`, sorted.
fn names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    out
}

#[test]
fn the_current_key_of_a_role_keeps_its_file_name_across_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let keys = keys_dir(&repo);
    ok(&repo_cmd(&repo, &["init"]));
    let mut old = vec![key_id_of(&keys, "timestamp")];
    for _ in 0..3 {
        let out = ok(&repo_cmd(&repo, &["rotate", "timestamp"]));
        let new = key_id_of(&keys, "timestamp");
        assert_eq!(root_ids(&repo, "timestamp"), std::slice::from_ref(&new));
        assert!(out.contains(&new), "{out}");
        assert!(!old.contains(&new));
        assert_eq!(
            names(&keys, "timestamp"),
            ["timestamp.key", "timestamp.pub.json"]
        );
        old.push(new);
    }
    // Every retired key is kept, under a name with its date and key id.
    let retired = names(&keys.join("retired"), "timestamp.");
    assert_eq!(retired.len(), 6, "{retired:?}");
    for id in &old[..3] {
        let short = &id[..8];
        assert!(
            retired
                .iter()
                .any(|n| n.ends_with(&format!(".{short}.key"))),
            "{id} not in {retired:?}"
        );
    }
    // The cron job and the announcement sign with the current key.
    ok(&repo_cmd(&repo, &["timestamp"]));
    ok(&repo_cmd(
        &repo,
        &["announce", "--name", "_update.example.org"],
    ));

    // Two keys: `ROLE` and `ROLE-2`.
    ok(&repo_cmd(
        &repo,
        &["rotate", "snapshot", "--threshold", "snapshot=1/2"],
    ));
    let ids: Vec<String> = ["snapshot", "snapshot-2"]
        .iter()
        .map(|s| key_id_of(&keys, s))
        .collect();
    assert_eq!(root_ids(&repo, "snapshot"), ids);
    assert_eq!(names(&keys, "snapshot").len(), 4);

    // A delegated role: the published targets names the key in mirrors.key.
    ok(&repo_cmd(&repo, &["rotate", "mirrors"]));
    assert_eq!(names(&keys, "mirrors"), ["mirrors.key", "mirrors.pub.json"]);
    let id = key_id_of(&keys, "mirrors");
    verified(&repo);
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    let snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{snap_v}.snapshot.json"))).unwrap(),
    )
    .unwrap();
    let targets_v = snap["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let targets =
        std::fs::read_to_string(repo.join(format!("metadata/{targets_v}.targets.json"))).unwrap();
    assert!(targets.contains(&id));

    // The root, made online on request: root-1, root-2, root-3.
    ok(&repo_cmd(&repo, &["rotate", "root", "--generate-online"]));
    let ids: Vec<String> = (1..=3)
        .map(|i| key_id_of(&keys, &format!("root-{i}")))
        .collect();
    assert_eq!(root_ids(&repo, "root"), ids);
    assert_eq!(names(&keys, "root").len(), 6);
    assert_eq!(names(&keys.join("retired"), "root-").len(), 6);
}

#[test]
fn after_an_offline_rotation_the_new_key_takes_the_name_at_root_install() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let keys = keys_dir(&repo);
    let offline = tmp.path().join("offline");
    ok(&repo_cmd(&repo, &["init"]));
    take_root_keys_offline(&repo, &offline);
    let old = key_id_of(&keys, "timestamp");
    let out = repo_cmd(&repo, &["rotate", "timestamp"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    // Until the new root is installed, timestamp.key is the key in use.
    assert_eq!(key_id_of(&keys, "timestamp"), old);
    ok(&repo_cmd(&repo, &["timestamp"]));

    let draft = repo.join("staged/root.json");
    let copies: Vec<String> = [1, 2]
        .iter()
        .map(|i| {
            let copy = tmp.path().join(format!("copy-{i}.json"));
            std::fs::copy(&draft, &copy).unwrap();
            let key = offline.join(format!("root-{i}.key"));
            ok(&repo_cmd(
                &repo,
                &[
                    "root",
                    "sign",
                    copy.to_str().unwrap(),
                    "--key",
                    key.to_str().unwrap(),
                ],
            ));
            copy.display().to_string()
        })
        .collect();
    let signed = tmp.path().join("signed.json");
    ok(&repo_cmd(
        &repo,
        &[
            "root",
            "merge",
            "-o",
            signed.to_str().unwrap(),
            &copies[0],
            &copies[1],
        ],
    ));
    let installed = ok(&repo_cmd(
        &repo,
        &["root", "install", signed.to_str().unwrap()],
    ));
    let new = key_id_of(&keys, "timestamp");
    assert_ne!(new, old);
    assert_eq!(root_ids(&repo, "timestamp"), std::slice::from_ref(&new));
    assert_eq!(
        names(&keys, "timestamp"),
        ["timestamp.key", "timestamp.pub.json"]
    );
    assert_eq!(names(&keys.join("retired"), "timestamp.").len(), 2);
    assert!(installed.contains("publish"), "{installed}");
    ok(&repo_cmd(&repo, &["publish"]));
    let verified = verified(&repo);
    assert!(verified.contains("root v2"), "{verified}");
}
