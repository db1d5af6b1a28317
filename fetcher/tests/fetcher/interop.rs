//! A repository made by python-tuf whose target names a URL must
//! percent-encode (a space, `%`, `#`, `?`, non-ASCII letters) and one of
//! whose targets is listed with a sha512 hash only: `onionpkg-fetch`
//! downloads and verifies each under its signed name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::server::serve;
use crate::util::Appliance;
use onionpkg_testkit::TestCa;

/// The targets `make_repo.py --names` adds, and how each is requested
/// (under consistent snapshots the file name is `HASH.name`).
const NAMED: [(&str, &str); 6] = [
    ("docs/read me.txt", ".read%20me.txt"),
    ("docs/100%.txt", ".100%25.txt"),
    ("docs/#1 issue.txt", ".%231%20issue.txt"),
    ("docs/why?.txt", ".why%3F.txt"),
    (
        "docs/\u{fc}bersicht-\u{645}\u{631}\u{62d}\u{628}\u{627}.txt",
        ".%C3%BCbersicht-%D9%85%D8%B1%D8%AD%D8%A8%D8%A7.txt",
    ),
    ("docs/only-sha512.txt", ".only-sha512.txt"),
];

/// The interpreter with python-tuf (`ONIONPKG_PYTHON`, else the
/// workspace's `.venv`, which the test command makes).
fn python_tuf() -> PathBuf {
    std::env::var_os("ONIONPKG_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        PathBuf::from,
    )
}

/// Makes a repository in `repo` with python-tuf (`make_repo.py ARGS REPO`),
/// within two minutes.
pub async fn make_repo(args: &[&str], repo: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../repo/tests/python/make_repo.py");
    let made = tokio::process::Command::new(python_tuf())
        .arg(&script)
        .args(args)
        .arg(repo)
        .kill_on_drop(true)
        .output();
    let made = tokio::time::timeout(Duration::from_secs(120), made)
        .await
        .expect("make_repo.py did not finish within 120 s")
        .expect("python with python-tuf (run tests/run.sh, or set ONIONPKG_PYTHON)");
    assert!(
        made.status.success(),
        "make_repo.py: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_targets_with_names_to_encode_and_sha512_only_download_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    make_repo(&["--names"], &repo).await;

    let ca = TestCa::new();
    let mirror = serve(repo.clone(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.join("metadata/1.root.json"), &[mirror.url()], "");
    app.init(&repo.join("metadata/1.root.json")).await;
    let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
    let mut args = vec!["download"];
    args.extend(&names);
    app.run(&args).await.ok();

    for (name, _) in NAMED {
        let got = std::fs::read(app.out().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = std::fs::read(repo.join("expected").join(name)).unwrap();
        assert_eq!(got, want, "{name}");
    }
    let seen: Vec<String> = mirror
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    for (name, encoded) in NAMED {
        assert!(
            seen.iter()
                .any(|p| p.starts_with("/targets/docs/") && p.ends_with(encoded)),
            "{name} was not requested as …{encoded}: {seen:?}"
        );
    }
    let sha512_only = seen
        .iter()
        .find(|p| p.ends_with(".only-sha512.txt"))
        .unwrap();
    let hash = sha512_only
        .trim_start_matches("/targets/docs/")
        .trim_end_matches(".only-sha512.txt");
    assert_eq!(hash.len(), 128, "located by its sha512: {sha512_only}");
}
