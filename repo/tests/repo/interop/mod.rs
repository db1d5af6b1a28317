//! Interop with python-tuf, the reference TUF implementation, both ways:
//! python-tuf's `ngclient.Updater` refreshes and downloads from a repository
//! `onionpkg-repo` made (bootstrap, then an update from its own trusted state),
//! and our trust layer verifies and downloads from a repository made with
//! python-tuf's Metadata API (2-of-3 thresholds, a root rotation, a
//! delegation, a target in a sub-directory). [`keys`] does the latter with
//! python-tuf's other key types: ECDSA P-256, a mix with ed25519, and RSA.
//!
//! The peer runs as a child process: the scripts in `tests/python/`, under
//! the interpreter named by `ONIONPKG_PYTHON`, else the workspace's `.venv`,
//! which `tests/run.sh` (the README's test command) makes. Without one these
//! tests fail rather than skip: interop that was not run must not pass.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use onionpkg_repo::Expiries;
use onionpkg_repo::rootops::Rotation;
use onionpkg_repo::verify::verify_tree;
use onionpkg_trust::metadata::{Client, FsRepository, VerifyError};
use onionpkg_trust::roles;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{TestRepo, block_on, client_run, copy_dir};

mod keys;

/// How long one run of a python script may take. A run takes well under a
/// second on an idle machine; the margin is for a loaded one (parallel tests,
/// builds on two cores).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a running script is checked for exit while waiting on it.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The top-level target `make_repo.py` writes (in a sub-directory).
pub(super) const PY_TOP_LEVEL: &str = "pkg/app-1.0.tar";

/// The target `make_repo.py` writes through its delegated role.
pub(super) const PY_DELEGATED: &str = "releases/tool-2.0.tar";

/// The delegated role of `make_repo.py`.
const PY_DELEGATED_ROLE: &str = "releases";

/// `tests/python/NAME`.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}

/// A finished child process, its output read back as text.
pub(super) struct Output {
    /// How it exited.
    pub(super) status: ExitStatus,
    /// Everything it wrote to stdout.
    pub(super) stdout: String,
    /// Everything it wrote to stderr.
    pub(super) stderr: String,
}

/// Runs `python ARGS...` to completion, killing it after [`SCRIPT_TIMEOUT`].
///
/// Output goes to temp files rather than pipes: a child that fills a pipe
/// nobody reads yet would block, and the timeout would report a hang that
/// is not the child's.
fn run_python<I, S>(python: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut child = Command::new(python)
        .args(args)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let mut stderr = String::new();
            err.rewind().unwrap();
            err.read_to_string(&mut stderr).unwrap();
            panic!("python did not finish within {SCRIPT_TIMEOUT:?}; its stderr:\n{stderr}");
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let read_back = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Output {
        status,
        stdout: read_back(&mut out),
        stderr: read_back(&mut err),
    }
}

/// The Python interpreter with python-tuf: `ONIONPKG_PYTHON`, else the
/// workspace's `.venv`. Fails the test if there is none.
pub(super) fn python() -> PathBuf {
    let python = match std::env::var_os("ONIONPKG_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(".venv")
            .join("bin")
            .join("python"),
    };
    assert!(
        python.exists(),
        "the python-tuf interop tests need a Python with python-tuf, and {} does not exist: \
         run tests/run.sh (the README's test command), which makes .venv with python-tuf, \
         or set ONIONPKG_PYTHON to such an interpreter",
        python.display()
    );
    let probe = run_python(&python, ["-c", "import tuf.ngclient"]);
    assert!(
        probe.status.success(),
        "{} cannot import tuf.ngclient: run tests/run.sh (the README's test command), which \
         installs python-tuf into .venv, or set ONIONPKG_PYTHON to an interpreter that has it; \
         stderr:\n{}",
        python.display(),
        probe.stderr
    );
    python
}

/// Length and hex sha256 of each target, by path: what `client.py` reports.
type Downloads = BTreeMap<String, (u64, String)>;

/// What a correct download of `contents` looks like.
fn downloads_of(contents: &BTreeMap<String, Vec<u8>>) -> Downloads {
    contents
        .iter()
        .map(|(path, bytes)| {
            let sha = hex::encode(Sha256::digest(bytes));
            (path.clone(), (bytes.len() as u64, sha))
        })
        .collect()
}

/// Runs `client.py` (python-tuf's ngclient over HTTP on 127.0.0.1) on the
/// tree at `repo_dir`, bootstrapping from `root_file` and keeping trusted
/// metadata in `metadata_dir`. Returns what it downloaded, or its output if
/// it failed.
fn python_client(
    python: &Path,
    repo_dir: &Path,
    root_file: &Path,
    metadata_dir: &Path,
    targets: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Result<Downloads, Output> {
    let mut args = vec![
        script("client.py").into_os_string(),
        "--metadata-dir".into(),
        metadata_dir.as_os_str().to_owned(),
        repo_dir.as_os_str().to_owned(),
        root_file.as_os_str().to_owned(),
    ];
    args.extend(targets.into_iter().map(|t| t.as_ref().to_owned()));
    let out = run_python(python, &args);
    if !out.status.success() {
        return Err(out);
    }
    let mut got = Downloads::new();
    for line in out.stdout.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("client.py printed {line:?}, not JSON: {e}"));
        let path = v["path"].as_str().unwrap().to_string();
        let length = v["length"].as_u64().unwrap();
        let sha = v["sha256"].as_str().unwrap().to_string();
        assert!(
            got.insert(path.clone(), (length, sha)).is_none(),
            "client.py reported {path} twice"
        );
    }
    Ok(got)
}

/// Panics with python's own report of why it failed.
pub(super) fn python_failed(what: &str, out: &Output) -> ! {
    panic!(
        "{what} failed ({}); stderr:\n{}\nstdout:\n{}",
        out.status, out.stderr, out.stdout
    )
}

/// The version in the `signed` part of a metadata file.
fn version_in(path: &Path) -> u64 {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

/// Ours to python-tuf: its ngclient bootstraps from our root 1 and downloads
/// every target (top level, sub-directories, a delegated feed) over HTTP;
/// after a release and a timestamp re-signing it updates from the state it
/// kept, refuses the older copy as a rollback, and follows a key rotation
/// through our root 2.
#[test]
fn python_tuf_bootstraps_updates_and_follows_a_rotation_in_an_onionpkg_repository() {
    let python = python();
    // python-tuf checks expiry against the real clock.
    let t = TestRepo::new_at(Timestamp::now());
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // `TestRepo` publishes this package first.
    contents.insert("pkg/hello-1.0.tar".into(), b"hello, appliance\n".to_vec());
    // A target at the top of `targets/`, one two directories down with a
    // custom field, and a feed signed by the delegated `feeds` role.
    let mut add = |role: &str, path: &str, bytes: Vec<u8>, custom: &[(&str, &str)]| {
        t.add_target_as(role, path, &bytes, custom);
        contents.insert(path.to_string(), bytes);
    };
    add("targets", "notes.txt", b"release notes\n".to_vec(), &[]);
    add(
        "targets",
        "pkg/net/fw-rules-3.2.tar",
        b"rules ".repeat(20_000),
        &[("version", "3.2")],
    );
    let feed = (0..=255u8).cycle().take(70_000).collect();
    add("feeds", "feeds/geoip/GeoIP.dat", feed, &[]);
    let first_timestamp = t.publish();

    let root = t.md("1.root.json");
    let trusted = t.tmp.path().join("python-metadata");
    let got = python_client(&python, t.repo.dir(), &root, &trusted, contents.keys())
        .unwrap_or_else(|out| python_failed("python-tuf bootstrapping from our repository", &out));
    assert_eq!(got, downloads_of(&contents));
    assert_eq!(version_in(&trusted.join("timestamp.json")), first_timestamp);

    // What a lagging mirror would still serve after the next release.
    let stale = t.tmp.path().join("stale-mirror");
    copy_dir(t.repo.dir(), &stale);

    // The next release, then the timestamp re-signed on its own (as cron
    // does): python-tuf must move to both from the state it trusts.
    let update = b"hello, appliance, version 1.1\n".to_vec();
    t.add_package("pkg/hello-1.1.tar", &update);
    contents.insert("pkg/hello-1.1.tar".into(), update);
    t.publish();
    let timestamp = t
        .repo
        .timestamp(&t.keys, &Expiries::default(), t.now)
        .unwrap();
    assert!(timestamp > first_timestamp + 1);
    let got = python_client(&python, t.repo.dir(), &root, &trusted, contents.keys())
        .unwrap_or_else(|out| python_failed("python-tuf updating from our repository", &out));
    assert_eq!(got, downloads_of(&contents));
    assert_eq!(version_in(&trusted.join("timestamp.json")), timestamp);
    let published: Value =
        serde_json::from_slice(&std::fs::read(t.md("timestamp.json")).unwrap()).unwrap();
    assert_eq!(
        Some(version_in(&trusted.join("snapshot.json"))),
        published["signed"]["meta"]["snapshot.json"]["version"].as_u64()
    );

    // The trusted state is really used: the stale copy is now a rollback.
    let out = python_client(&python, &stale, &root, &trusted, ["pkg/hello-1.0.tar"])
        .expect_err("python-tuf accepted a timestamp older than the one it trusts");
    assert!(
        out.stderr.contains("BadVersionNumberError") && out.stderr.contains("timestamp version"),
        "python-tuf refused the stale copy for another reason:\n{}",
        out.stderr
    );

    // A rotation of the timestamp key makes root version 2 (signed by the
    // root threshold of both versions): python-tuf must walk the root chain
    // from its trusted version 1 and accept the timestamp the new key signs.
    let rotation = t
        .repo
        .rotate("timestamp", &t.keys, None, &Expiries::default(), t.now)
        .unwrap();
    assert!(matches!(rotation, Rotation::Done { .. }), "{rotation:?}");
    let got = python_client(&python, t.repo.dir(), &root, &trusted, contents.keys())
        .unwrap_or_else(|out| python_failed("python-tuf following our key rotation", &out));
    assert_eq!(got, downloads_of(&contents));
    assert_eq!(version_in(&trusted.join("root.json")), 2);
    assert_eq!(
        version_in(&trusted.join("timestamp.json")),
        version_in(&t.md("timestamp.json"))
    );
}

/// A repository made by `make_repo.py` (python-tuf's Metadata API) in a temp
/// dir, with ed25519 keys: returns the dir that keeps it alive and the tree.
fn python_repo(python: &Path) -> (tempfile::TempDir, PathBuf) {
    python_repo_with(python, "ed25519")
}

/// As [`python_repo`], with the key plan `keys` of `make_repo.py --keys`.
pub(super) fn python_repo_with(python: &Path, keys: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("python-repo");
    let out = run_python(
        python,
        [
            script("make_repo.py").as_os_str(),
            OsStr::new("--keys"),
            OsStr::new(keys),
            dir.as_os_str(),
        ],
    );
    if !out.status.success() {
        python_failed("make_repo.py", &out);
    }
    (tmp, dir)
}

/// The contents `make_repo.py` gave target `path`.
pub(super) fn expected(dir: &Path, path: &str) -> Vec<u8> {
    std::fs::read(dir.join("expected").join(path)).unwrap()
}

/// Where `make_repo.py` stored target `path` (consistent snapshots).
pub(super) fn stored_target(dir: &Path, path: &str) -> PathBuf {
    let sha = hex::encode(Sha256::digest(expected(dir, path)));
    dir.join("targets")
        .join(roles::consistent_target_path(path, &sha))
}

/// python-tuf to ours: `verify` and the trust layer's client accept a
/// repository python-tuf made (walking its root rotation, finding the
/// delegated target, reading its custom field) and return the exact bytes.
#[test]
fn a_python_tuf_repository_verifies_and_downloads_through_the_trust_layer() {
    let python = python();
    let (_tmp, dir) = python_repo(&python);
    let root = std::fs::read(dir.join("metadata").join("1.root.json")).unwrap();
    let now = Timestamp::now();

    let report = verify_tree(&dir, &root, now).unwrap_or_else(|e| panic!("verify: {e}"));
    // Pinned to root version 1, the client walked to the rotated version 2.
    assert_eq!(report.root_version, 2);
    assert_eq!(report.timestamp_version, 1);
    let listed: BTreeSet<(String, String, u64)> = report.targets.into_iter().collect();
    let want: BTreeSet<(String, String, u64)> = [
        (roles::TARGETS, PY_TOP_LEVEL),
        (PY_DELEGATED_ROLE, PY_DELEGATED),
    ]
    .into_iter()
    .map(|(role, path)| {
        let len = expected(&dir, path).len() as u64;
        (role.to_string(), path.to_string(), len)
    })
    .collect();
    assert_eq!(listed, want);

    block_on(async {
        let mut client = Client::new(&root, None, FsRepository::from_tree(&dir)).unwrap();
        client.refresh(now).await.unwrap();
        let info = client.target_info(PY_TOP_LEVEL, now).await.unwrap();
        assert_eq!(
            info.custom,
            Some(serde_json::json!({ "version": "1.0" })),
            "the custom field python-tuf signed"
        );
        for path in [PY_TOP_LEVEL, PY_DELEGATED] {
            let bytes = client
                .fetch_target(path, now)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(bytes, expected(&dir, path), "{path}");
        }
    });
}

/// A target of a python-tuf repository changed by one bit, same length, is
/// refused by its hash.
#[test]
fn a_tampered_target_in_a_python_tuf_repository_is_refused() {
    let python = python();
    let (_tmp, dir) = python_repo(&python);
    let root = std::fs::read(dir.join("metadata").join("1.root.json")).unwrap();
    let now = Timestamp::now();
    client_run(&dir, &root, None, now, Some(PY_TOP_LEVEL)).unwrap();

    // One bit flipped, same length: only the hash can tell.
    let file = stored_target(&dir, PY_TOP_LEVEL);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    match client_run(&dir, &root, None, now, Some(PY_TOP_LEVEL)) {
        Err(VerifyError::TargetHashMismatch { path }) => assert_eq!(path, PY_TOP_LEVEL),
        other => panic!("expected TargetHashMismatch, got {other:?}"),
    }
}

/// python-tuf's 2-of-3 targets with one signature dropped is refused with
/// the counts: our client reads python-tuf's thresholds, not just its keys.
#[test]
fn python_tuf_targets_below_their_threshold_are_refused() {
    let python = python();
    let (_tmp, dir) = python_repo(&python);
    let root = std::fs::read(dir.join("metadata").join("1.root.json")).unwrap();
    let now = Timestamp::now();
    client_run(&dir, &root, None, now, None).unwrap();

    // Signed by exactly 2 of its 3 keys; drop one signature.
    let path = dir.join("metadata").join("1.targets.json");
    let mut targets: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sigs = targets["signatures"].as_array_mut().unwrap();
    assert_eq!(sigs.len(), 2);
    sigs.pop();
    std::fs::write(&path, serde_json::to_vec_pretty(&targets).unwrap()).unwrap();

    match client_run(&dir, &root, None, now, None) {
        Err(VerifyError::ThresholdNotMet {
            role,
            found,
            threshold,
            ..
        }) => assert_eq!((role.as_str(), found, threshold), ("targets", 1, 2)),
        other => panic!("expected ThresholdNotMet, got {other:?}"),
    }
}
