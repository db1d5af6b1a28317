//! One threshold syntax, `--threshold ROLE=M/N`, for `init`, `rotate` and
//! `root draft`; the older spellings still work, with a note.

use std::path::Path;

use serde_json::Value;

use crate::util::{ok, repo_cmd, stderr, verified};

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The number of keys and the threshold of `role` in a root envelope.
fn role_of(root: &Value, role: &str) -> (usize, u64) {
    let r = &root["signed"]["roles"][role];
    (
        r["keyids"].as_array().unwrap().len(),
        r["threshold"].as_u64().unwrap(),
    )
}

/// Asserts a usage error (exit 2) whose message contains `what`.
fn usage_error(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(
        stderr(out).contains(what),
        "{what:?} not in: {}",
        stderr(out)
    );
}

#[test]
fn init_takes_role_m_of_n() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(
        &repo,
        &[
            "init",
            "--threshold",
            "root=1/1",
            "--threshold",
            "timestamp=2/3",
        ],
    ));
    let root = read(&repo.join("metadata/root.json"));
    assert_eq!(role_of(&root, "root"), (1, 1));
    assert_eq!(role_of(&root, "timestamp"), (3, 2));

    for (bad, what) in [
        ("2/3", "ROLE=M/N"),
        ("root=2", "ROLE=M/N"),
        ("root=3/2", "M of N"),
        ("mirrors=1/1", "not a top-level role"),
    ] {
        let other = tmp.path().join(format!("bad-{}", bad.replace('/', "-")));
        usage_error(&repo_cmd(&other, &["init", "--threshold", bad]), what);
        assert!(!other.join("metadata").exists(), "{bad}");
    }
}

#[test]
fn rotate_takes_role_m_of_n_and_the_old_spelling_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let out = repo_cmd(
        &repo,
        &["rotate", "timestamp", "--threshold", "timestamp=2/3"],
    );
    ok(&out);
    assert!(!stderr(&out).contains("note"), "{}", stderr(&out));
    let root = read(&repo.join("metadata/root.json"));
    assert_eq!(role_of(&root, "timestamp"), (3, 2));

    // The old spelling, M/N, still works and says how to write it now.
    let out = repo_cmd(&repo, &["rotate", "snapshot", "--threshold", "1/2"]);
    ok(&out);
    assert!(
        stderr(&out)
            .contains("note: `--threshold 1/2` is deprecated; write `--threshold snapshot=1/2`"),
        "{}",
        stderr(&out)
    );
    let root = read(&repo.join("metadata/root.json"));
    assert_eq!(role_of(&root, "snapshot"), (2, 1));

    // A threshold for another role than the one rotated is refused.
    usage_error(
        &repo_cmd(&repo, &["rotate", "targets", "--threshold", "snapshot=1/1"]),
        "--threshold names snapshot, but the role rotated is targets",
    );
    // The delegated roles have one key.
    usage_error(
        &repo_cmd(&repo, &["rotate", "mirrors", "--threshold", "mirrors=2/2"]),
        "one key",
    );
    let verified = verified(&repo);
    assert!(verified.contains("root v3"), "{verified}");
}

#[test]
fn root_draft_takes_role_m_of_n_and_the_old_spelling_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let pubs: Vec<String> = ["ts-a", "ts-b"]
        .iter()
        .map(|name| {
            let stem = tmp.path().join(name);
            ok(&repo_cmd(
                &repo,
                &["keygen", "--out", stem.to_str().unwrap()],
            ));
            format!("{}.pub.json", stem.display())
        })
        .collect();
    let set_keys = format!("timestamp={}", pubs.join(","));
    let draft = repo.join("staged/root.json");

    let draft_with = |threshold: &str| {
        repo_cmd(
            &repo,
            &[
                "root",
                "draft",
                "--set-keys",
                &set_keys,
                "--threshold",
                threshold,
            ],
        )
    };

    let out = draft_with("timestamp=2/2");
    ok(&out);
    assert!(!stderr(&out).contains("note"), "{}", stderr(&out));
    assert_eq!(role_of(&read(&draft), "timestamp"), (2, 2));

    // N must be the number of keys given.
    usage_error(
        &draft_with("timestamp=2/3"),
        "timestamp=2/3 names 3 keys, but --set-keys gives timestamp 2",
    );
    // A threshold needs the role's keys.
    usage_error(
        &draft_with("snapshot=1/1"),
        "--threshold snapshot=1/1 needs --set-keys snapshot=",
    );
    // The old spelling, ROLE=M, still works and says how to write it now.
    let out = draft_with("timestamp=1");
    ok(&out);
    assert!(
        stderr(&out).contains(
            "note: `--threshold timestamp=1` is deprecated; write `--threshold timestamp=1/2`"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(role_of(&read(&draft), "timestamp"), (2, 1));
}
