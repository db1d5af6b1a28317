//! The commands docs/RELEASE.md gives, run as written (with the repository
//! in a temp dir instead of /srv/repo), so the guide cannot drift from the
//! command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{keys_dir, ok, repo_cmd, verified};

/// docs/RELEASE.md.
fn release_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/RELEASE.md");
    std::fs::read_to_string(path).unwrap()
}

/// The first fenced block of language `lang` after the heading `heading`.
pub(crate) fn block_after(doc: &str, heading: &str, lang: &str) -> String {
    let start = doc
        .lines()
        .position(|l| l.trim_start_matches('#').trim() == heading && l.starts_with('#'))
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    let mut lines = doc.lines().skip(start + 1);
    lines
        .by_ref()
        .find(|l| *l == format!("```{lang}"))
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"));
    let mut out = String::new();
    for l in lines.take_while(|l| *l != "```") {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Runs a shell block of the guide in `cwd`, with `onionpkg-repo` on the
/// PATH and /srv/repo replaced by `repo`.
fn run_block(script: &str, cwd: &Path, repo: &Path) {
    let script = script.replace("/srv/repo", repo.to_str().unwrap());
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_onionpkg-repo"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = Command::new("sh")
        .args(["-e", "-x", "-c", &script])
        .current_dir(cwd)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the guide's commands failed ({:?}):\n{script}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_offline_root_setup_and_root_rotation_work_as_written() {
    let doc = release_md();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();

    run_block(
        &block_after(
            &doc,
            "With root keys that never touch the release machine",
            "sh",
        ),
        &work,
        &repo,
    );
    verified(&repo);
    assert!(!keys_dir(&repo).join("root-1.key").exists());

    // Signed copies of the first root are not reused by the rotation.
    for f in ["copy-alice.json", "copy-bob.json", "signed.json"] {
        std::fs::remove_file(work.join(f)).unwrap();
    }
    run_block(
        &block_after(&doc, "Rotating the root keys", "sh"),
        &work,
        &repo,
    );
    let verified = verified(&repo);
    assert!(verified.contains("root v2"), "{verified}");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/root.json")).unwrap()).unwrap();
    let dana = std::fs::read(work.join("root-dana.pub.json")).unwrap();
    let dana = onionpkg_trust::keys::PublicKey::from_json(&dana)
        .unwrap()
        .key_id();
    assert!(
        root["signed"]["roles"]["root"]["keyids"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(dana))
    );
    assert_eq!(root["signed"]["roles"]["root"]["threshold"], 2);
    // No root private key ever reached the release machine.
    assert!(
        std::fs::read_dir(keys_dir(&repo)).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("root")),
    );
}

#[test]
fn the_documented_mirror_list_is_accepted_by_mirrors_set() {
    let doc = release_md();
    let example = block_after(&doc, "The mirror list (mirrors.json)", "json");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo_cmd(&repo, &["init"]));
    let file = tmp.path().join("mirrors.json");
    std::fs::write(&file, &example).unwrap();
    let staged = ok(&repo_cmd(
        &repo,
        &["mirrors", "set", file.to_str().unwrap()],
    ));
    assert!(staged.contains("2 mirror(s)"), "{staged}");
    ok(&repo_cmd(&repo, &["publish"]));
    let verified = verified(&repo);
    assert!(verified.contains("mirrors  mirrors.json"), "{verified}");

    // The help of `mirrors set` points to the format.
    let help = ok(&repo_cmd(&repo, &["mirrors", "set", "--help"]));
    assert!(
        help.contains("docs/RELEASE.md") && help.contains("The mirror list (mirrors.json)"),
        "{help}"
    );
    for field in [
        "version", "expires", "name", "clearnet", "onion", "region", "weight",
    ] {
        assert!(help.contains(field), "{field} not in {help}");
    }
}
