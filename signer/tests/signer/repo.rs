//! A repository whose every role but root is signed through the signer, by
//! `onionpkg-repo --signer`, with ed25519 keys and with ECDSA P-256 keys: it
//! verifies with `onionpkg-repo verify` and with python-tuf's client, and
//! the signer's audit log lists what was signed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser as _;
use onionpkg_repo::cli::{Cli, Report, Usage, run};
use onionpkg_signer::keys::KeyKind;

use crate::common::{Env, now, path_str};

/// Runs `onionpkg-repo ARGS` in this process.
fn repo(args: &[&str]) -> anyhow::Result<Report> {
    let cli = Cli::try_parse_from(std::iter::once("onionpkg-repo").chain(args.iter().copied()))?;
    run(&cli, now())
}

#[track_caller]
fn repo_ok(args: &[&str]) -> Report {
    repo(args).unwrap_or_else(|e| panic!("onionpkg-repo {args:?}: {e:#}"))
}

/// The key ids on `role`'s newest metadata in `md`.
fn signers_of(md: &Path, role: &str) -> Vec<String> {
    let newest = std::fs::read_dir(md)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| {
            let (v, rest) = n.split_once('.')?;
            (rest == format!("{role}.json")).then(|| v.parse::<u64>().ok())?
        })
        .max();
    let file = match newest {
        Some(v) => md.join(format!("{v}.{role}.json")),
        None => md.join(format!("{role}.json")),
    };
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    env["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_string())
        .collect()
}

/// python-tuf's interpreter: `ONIONPKG_PYTHON`, else the workspace's .venv.
fn python() -> PathBuf {
    let python = std::env::var_os("ONIONPKG_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "this test needs a Python with python-tuf: set ONIONPKG_PYTHON (tests/run.sh makes .venv)"
    );
    python
}

/// Runs repo/tests/python/client.py on `repo_dir` from `root`, downloading
/// `target`; returns its stdout. Killed after two minutes.
fn python_client(repo_dir: &Path, root: &Path, target: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../repo/tests/python/client.py");
    let out_dir = tempfile::tempdir().unwrap();
    let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut child = Command::new(python())
        .arg(script)
        .arg(repo_dir)
        .arg(root)
        .arg(target)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = onionpkg_testkit::retry::until(Duration::from_secs(120), "client.py", || {
        Ok(child.try_wait()?)
    });
    let status = status.unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}")
    });
    assert!(
        status.success(),
        "python-tuf refused the repository:\n{}",
        std::fs::read_to_string(&err).unwrap()
    );
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn a_repository_published_through_the_signer_verifies_and_the_log_lists_it() {
    publish_through_the_signer(KeyKind::Ed25519);
}

/// The same with every online role's key ECDSA P-256 in the token (the log
/// key stays ed25519): python-tuf and `onionpkg-repo verify` accept it.
#[test]
fn a_repository_whose_online_roles_are_p256_in_the_token_verifies() {
    publish_through_the_signer(KeyKind::EcdsaP256);
}

/// Publishes a repository whose every role but root is signed through the
/// signer with keys of `kind`, and checks it with both clients and the log.
fn publish_through_the_signer(kind: KeyKind) {
    let online = ["timestamp", "snapshot", "targets", "mirrors", "feeds"];
    let mut roles = vec!["log".to_string()];
    roles.extend(online.iter().map(|r| format!("{r}:{}", kind.name())));
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let env = Env::with_keys(
        "",
        &roles,
        Some(vec![
            "targets",
            "bins",
            "snapshot",
            "timestamp",
            "mirrors",
            "feeds",
        ]),
    );
    for role in online {
        assert_eq!(KeyKind::of(&env.key(role)), Some(kind), "{role}");
    }
    let _signer = env.start();
    let dir = env.dir.path();
    let (repo_dir, keys) = (dir.join("repo"), dir.join("release-keys"));
    let client_key = dir.join("client.key");
    env.release.write_file(&client_key, None).unwrap();
    let r = path_str(&repo_dir);
    let k = path_str(&keys);
    let signer = [
        "--signer",
        path_str(&env.socket),
        "--signer-key",
        path_str(&client_key),
    ];
    repo_ok(&[
        "-r",
        r,
        "-k",
        k,
        "init",
        "--threshold",
        "root=1/1",
        "--bins",
        "4",
    ]);

    // A client the signer does not allow snapshot gets nothing signed, and
    // nothing is published.
    let ts_key = dir.join("ts-only.key");
    env.ts_only.write_file(&ts_key, None).unwrap();
    let before = std::fs::read(repo_dir.join("metadata/timestamp.json")).unwrap();
    let ts_only = [
        "--signer",
        path_str(&env.socket),
        "--signer-key",
        path_str(&ts_key),
    ];
    let e = repo(&[&["-r", r, "-k", k, "publish"][..], &ts_only[..]].concat()).unwrap_err();
    match e.downcast::<onionpkg_repo::RepoError>().unwrap() {
        onionpkg_repo::RepoError::Signer(onionpkg_signer_client::ClientError::Refused(r)) => {
            assert_eq!(r.reason, onionpkg_signer::request::Reason::Forbidden)
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert_eq!(
        std::fs::read(repo_dir.join("metadata/timestamp.json")).unwrap(),
        before
    );
    assert_eq!(env.entries(), 0);

    // --signer is refused where nothing but root (or nothing) is signed.
    let e = repo(&[&["-r", r, "-k", k, "keys"][..], &signer[..]].concat()).unwrap_err();
    assert!(e.downcast_ref::<Usage>().is_some(), "{e:#}");

    // The signer's public keys become the roles' keys: the top-level ones
    // in a root signed offline (here, the one root key at hand), the
    // delegated ones by rotating to them.
    let pub_file = |role: &str| {
        let f = dir.join(format!("{role}.pub.json"));
        std::fs::write(&f, env.key(role).to_json().to_string()).unwrap();
        f
    };
    let set: Vec<String> = ["targets", "snapshot", "timestamp"]
        .iter()
        .map(|role| format!("{role}={}", pub_file(role).display()))
        .collect();
    let mut draft = vec!["-r", r, "-k", k, "root", "draft"];
    for s in &set {
        draft.extend(["--set-keys", s]);
    }
    repo_ok(&draft);
    let staged = repo_dir.join("staged/root.json");
    repo_ok(&[
        "root",
        "sign",
        path_str(&staged),
        "--key",
        &format!("{k}/root-1.key"),
    ]);
    repo_ok(&["-r", r, "-k", k, "root", "install"]);
    for role in ["mirrors", "feeds"] {
        let f = pub_file(role);
        let args = [
            &[
                "-r",
                r,
                "-k",
                k,
                "rotate",
                role,
                "--public-key",
                path_str(&f),
            ][..],
            &signer[..],
        ]
        .concat();
        repo_ok(&args);
    }

    // A package, published; the timestamp re-signed.
    let pkg = dir.join("app-1.0.tar");
    std::fs::write(&pkg, b"the package").unwrap();
    repo_ok(&[
        "-r",
        r,
        "-k",
        k,
        "add",
        path_str(&pkg),
        "--custom",
        "version=1.0",
    ]);
    repo_ok(&[&["-r", r, "-k", k, "publish"][..], &signer[..]].concat());
    repo_ok(&[&["-r", r, "-k", k, "timestamp"][..], &signer[..]].concat());

    // Every role but root carries the signer's signature alone.
    let md = repo_dir.join("metadata");
    let mut signed_roles = vec!["targets", "snapshot", "timestamp", "mirrors", "feeds"];
    let bins: Vec<String> = std::fs::read_dir(&md)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            let role = n.split_once('.')?.1.strip_suffix(".json")?.to_string();
            role.starts_with("bin-").then_some(role)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Only the bins that list something are published.
    assert_eq!(bins, ["bin-00"], "the package's bin");
    signed_roles.extend(bins.iter().map(String::as_str));
    for role in &signed_roles {
        let key_role = if role.starts_with("bin-") {
            "targets"
        } else {
            role
        };
        assert_eq!(
            signers_of(&md, role),
            [env.key(key_role).key_id()],
            "{role} is not signed by the signer's key alone"
        );
    }

    // Clients bootstrapping from the first root accept it.
    let root1 = md.join("1.root.json");
    let verified = repo_ok(&["-r", r, "verify", "--root", path_str(&root1)]);
    assert!(
        verified.lines[0].starts_with("ok: root v2"),
        "{:?}",
        verified.lines
    );
    assert!(
        verified.lines.iter().any(|l| l.contains("app-1.0.tar")),
        "{:?}",
        verified.lines
    );
    let downloaded = python_client(&repo_dir, &root1, "app-1.0.tar");
    assert!(downloaded.contains("\"app-1.0.tar\""), "{downloaded}");

    // The audit log names every role signed, and the package added.
    let out = crate::common::run(&env, &["audit", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    for role in &signed_roles {
        assert!(
            listing.contains(&format!(" {role} tuf v")),
            "{role} missing from the audit log:\n{listing}"
        );
    }
    assert!(listing.contains("app-1.0.tar"), "{listing}");
    let out = crate::common::run(&env, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
