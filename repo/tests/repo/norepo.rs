//! Commands never make a repository by accident: every command but `init`
//! needs an existing one, and the key holders' commands need none.

use std::path::Path;

use crate::util::{keys_dir, ok, repo_cmd, repo_cmd_in, stderr, tree};

/// The message for a directory that holds no repository.
fn not_a_repo(dir: &Path) -> String {
    format!(
        "{d} is not an onionpkg repository (no metadata/root.json); run `onionpkg-repo -r {d} init` first?",
        d = dir.display()
    )
}

#[test]
fn a_mistyped_repository_path_is_refused_and_nothing_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("app.tar");
    std::fs::write(&input, b"app").unwrap();
    let input = input.to_str().unwrap().to_string();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let set_keys = format!("timestamp={input}");
    let before = tree(tmp.path());
    let commands: Vec<Vec<&str>> = vec![
        vec!["add", &input],
        vec!["remove", "pkg/app.tar"],
        vec!["mirrors", "set", &input],
        vec!["publish"],
        vec!["timestamp"],
        vec!["announce", "--name", "_update.example.org"],
        vec!["rotate", "timestamp"],
        vec!["rotate", "root", "--generate-online"],
        vec!["root", "draft", "--set-keys", &set_keys],
        vec!["root", "install"],
        vec!["root", "install", &input],
        vec!["keys"],
        vec!["verify", "--root", &input],
    ];
    for dir in [tmp.path().join("typo"), empty] {
        for args in &commands {
            let out = repo_cmd(&dir, args);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{args:?} in {dir:?}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(&not_a_repo(&dir)),
                "{args:?}: {}",
                stderr(&out)
            );
            assert_eq!(tree(tmp.path()), before, "{args:?} in {dir:?} wrote");
        }
    }
}

#[test]
fn key_holders_sign_and_merge_without_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let ts = keys_dir(&repo).join("timestamp.pub.json");
    ok(&repo_cmd(
        &repo,
        &[
            "root",
            "draft",
            "--set-keys",
            &format!("timestamp={}", ts.display()),
        ],
    ));
    // Each holder works in a directory of their own, with the default
    // repository (`.`) or a path that exists nowhere on their machine.
    let holder = tmp.path().join("holder");
    std::fs::create_dir(&holder).unwrap();
    for (i, stem) in ["root-1", "root-2"].iter().enumerate() {
        let key = holder.join(format!("{stem}.key"));
        std::fs::copy(keys_dir(&repo).join(format!("{stem}.key")), &key).unwrap();
        let copy = holder.join(format!("copy-{i}.json"));
        std::fs::copy(repo.join("staged/root.json"), &copy).unwrap();
        let nowhere = tmp.path().join("nowhere");
        let dir = (i == 1).then_some(nowhere.as_path());
        let args = [
            "root",
            "sign",
            copy.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        let out = ok(&repo_cmd_in(Some(&holder), dir, &args));
        assert!(out.contains("signed"), "{out}");
        assert!(!nowhere.exists());
    }
    let merged = holder.join("merged.json");
    ok(&repo_cmd_in(
        Some(&holder),
        None,
        &[
            "root",
            "merge",
            "-o",
            merged.to_str().unwrap(),
            holder.join("copy-0.json").to_str().unwrap(),
            holder.join("copy-1.json").to_str().unwrap(),
        ],
    ));
    let mut names: Vec<String> = tree(&holder)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "copy-0.json",
            "copy-1.json",
            "merged.json",
            "root-1.key",
            "root-2.key"
        ],
        "no lock file, no repository in the holder's directory"
    );
    let installed = ok(&repo_cmd(
        &repo,
        &["root", "install", merged.to_str().unwrap()],
    ));
    assert!(
        installed.contains("installed root version 2"),
        "{installed}"
    );
}

#[test]
fn a_repository_whose_first_root_awaits_signatures_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    // Three holders' keys, made elsewhere.
    let scratch = tmp.path().join("scratch");
    ok(&repo_cmd(&scratch, &["init", "--threshold", "root=2/3"]));
    let pubs: Vec<String> = (1..=3)
        .map(|i| {
            keys_dir(&scratch)
                .join(format!("root-{i}.pub.json"))
                .display()
                .to_string()
        })
        .collect();
    let repo = tmp.path().join("repo");
    let mut args = vec!["init", "--threshold", "root=2/3"];
    for p in &pubs {
        args.extend(["--root-pubkey", p.as_str()]);
    }
    ok(&repo_cmd(&repo, &args));
    let out = repo_cmd(&repo, &["publish"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the first root is not installed yet"),
        "{}",
        stderr(&out)
    );
    // The holders sign; `root install` then works on this repository.
    let draft = repo.join("staged/root.json");
    for i in 1..=2 {
        let key = keys_dir(&scratch).join(format!("root-{i}.key"));
        ok(&repo_cmd_in(
            Some(tmp.path()),
            None,
            &[
                "root",
                "sign",
                draft.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        ));
    }
    assert!(!tmp.path().join(".lock").exists());
    let installed = ok(&repo_cmd(&repo, &["root", "install"]));
    assert!(
        installed.contains("installed root version 1"),
        "{installed}"
    );
    ok(&repo_cmd(&repo, &["publish"]));
}

/// With `--json` the refusal is one JSON line on stderr, in the shape
/// every onionpkg program uses, and stdout stays empty.
#[test]
fn with_json_the_refusal_is_a_json_error_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("rpeo");
    let out = repo_cmd(&missing, &["--json", "publish"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(&out);
    let v: serde_json::Value = serde_json::from_str(err.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {err}"));
    assert_eq!(v["ok"], false);
    assert_eq!(v["event"], "error");
    assert_eq!(v["error"], "not-initialized");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["message"], not_a_repo(&missing));
    assert!(!missing.exists());
}
