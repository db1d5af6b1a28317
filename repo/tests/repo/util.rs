//! Helpers shared by the integration tests.

use std::future::Future;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_trust::metadata::{Client, FsRepository, VerifyError};

/// A repository made by `onionpkg-repo` in a temp dir, with its keys.
pub(crate) struct TestRepo {
    /// Keeps the directory alive.
    pub(crate) tmp: tempfile::TempDir,
    /// The repository.
    pub(crate) repo: RepoDir,
    /// Its keys.
    pub(crate) keys: KeyDir,
    /// The time everything was signed at.
    pub(crate) now: Timestamp,
}

/// The hashed bin that lists `path` in a repository with the default bins.
pub(crate) fn default_bin_of(path: &str) -> String {
    use onionpkg_trust::roles;
    let hash = roles::path_hash(path);
    roles::bins(roles::DEFAULT_BINS)
        .unwrap()
        .into_iter()
        .find(|(_, prefixes)| prefixes.iter().any(|p| hash.starts_with(p.as_str())))
        .unwrap()
        .0
}

/// A fixed signing time, so expiry tests are exact.
pub(crate) fn t0() -> Timestamp {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

/// `t0` plus `hours`.
pub(crate) fn at(hours: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_hours(hours)).unwrap()
}

impl TestRepo {
    /// A fresh repository (root 2/3, other roles 1/1) with one package.
    pub(crate) fn new() -> Self {
        Self::with_options(&InitOptions::default())
    }

    /// A fresh repository made with `opts`, with one package published.
    pub(crate) fn with_options(opts: &InitOptions) -> Self {
        Self::made(opts, t0())
    }

    /// A fresh repository made with `opts` and signed at `now`, with one
    /// package published.
    fn made(opts: &InitOptions, now: Timestamp) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = RepoDir::new(tmp.path().join("repo"));
        let keys = KeyDir::new(tmp.path().join("keys"), None);
        repo.init(&keys, opts, &Expiries::default(), now).unwrap();
        let t = Self {
            tmp,
            repo,
            keys,
            now,
        };
        t.add_package("pkg/hello-1.0.tar", b"hello, appliance\n");
        t.publish();
        t
    }

    /// Stages a package with the given content.
    pub(crate) fn add_package(&self, path: &str, content: &[u8]) {
        let file = self.tmp.path().join("input");
        std::fs::write(&file, content).unwrap();
        self.repo
            .add_target(&file, path, &Default::default(), "targets")
            .unwrap();
    }

    /// Publishes at `self.now`.
    pub(crate) fn publish(&self) -> u64 {
        self.repo
            .publish(&self.keys, &Expiries::default(), &[], self.now)
            .unwrap()
    }

    /// The pinned root (version 1).
    pub(crate) fn root_v1(&self) -> Vec<u8> {
        std::fs::read(self.repo.metadata_dir().join("1.root.json")).unwrap()
    }

    /// `metadata/NAME`.
    pub(crate) fn md(&self, name: &str) -> PathBuf {
        self.repo.metadata_dir().join(name)
    }

    /// A client store directory that persists between clients of one test.
    pub(crate) fn store(&self) -> PathBuf {
        self.tmp.path().join("client-store")
    }

    /// Like [`TestRepo::new`], but signed at `now`: for peers (python-tuf)
    /// that check expiry against the real clock, which the fixed `t0` would
    /// fail once its one-day timestamp has run out.
    pub(crate) fn new_at(now: Timestamp) -> Self {
        Self::made(&InitOptions::default(), now)
    }

    /// Stages a target of `role` (`targets` or `feeds`) with the given
    /// content and custom fields.
    pub(crate) fn add_target_as(
        &self,
        role: &str,
        path: &str,
        content: &[u8],
        custom: &[(&str, &str)],
    ) {
        let file = self.tmp.path().join("input");
        std::fs::write(&file, content).expect("writing the input file");
        let custom = custom
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.repo
            .add_target(&file, path, &custom, role)
            .unwrap_or_else(|e| panic!("adding {path} to {role}: {e}"));
    }
}

/// Copies a directory tree (a mirror's snapshot of a repository, for
/// replaying it later).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("listing {}: {e}", from.display()))
    {
        let entry = entry.expect("a directory entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest)
                .unwrap_or_else(|e| panic!("copying to {}: {e}", dest.display()));
        }
    }
}

/// Runs a future to completion on a current-thread runtime.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Refreshes a client of the tree at `dir` from `root`, with an optional
/// persistent store, at `now`, and resolves and fetches `target` if given.
pub(crate) fn client_run(
    dir: &Path,
    root: &[u8],
    store: Option<&Path>,
    now: Timestamp,
    target: Option<&str>,
) -> Result<Option<Vec<u8>>, VerifyError> {
    block_on(async {
        let mut c = Client::new(root, store, FsRepository::from_tree(dir))?;
        c.refresh(now).await?;
        match target {
            Some(t) => c.fetch_target(t, now).await.map(Some),
            None => Ok(None),
        }
    })
}

/// Runs `onionpkg-repo --repo DIR ARGS…` (with a test passphrase in
/// `ONIONPKG_TEST_PASSPHRASE`).
pub(crate) fn repo_cmd(dir: &Path, args: &[&str]) -> std::process::Output {
    repo_cmd_in(None, Some(dir), args)
}

/// Runs `onionpkg-repo [--repo DIR] ARGS…` in the working directory `cwd`.
pub(crate) fn repo_cmd_in(
    cwd: Option<&Path>,
    dir: Option<&Path>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_onionpkg-repo"));
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    if let Some(dir) = dir {
        cmd.arg("--repo").arg(dir);
    }
    cmd.args(args)
        .env("ONIONPKG_TEST_PASSPHRASE", "a long test passphrase")
        .output()
        .expect("running onionpkg-repo")
}

/// `verify` of the repository in `dir` against its first root, which must
/// pass: its output.
pub(crate) fn verified(dir: &Path) -> String {
    let root = dir.join("metadata/1.root.json");
    ok(&repo_cmd(
        dir,
        &["verify", "--root", root.to_str().unwrap()],
    ))
}

/// Where `onionpkg-repo -r REPO` keeps its keys by default: `REPO.keys`,
/// next to the repository.
pub(crate) fn keys_dir(repo: &Path) -> PathBuf {
    let name = repo.file_name().unwrap().to_string_lossy();
    repo.with_file_name(format!("{name}.keys"))
}

/// The stdout of a command that must have succeeded.
pub(crate) fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a command.
pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stdout of a command.
pub(crate) fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file and directory under `dir`, relative, sorted.
pub(crate) fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            out.push(path.strip_prefix(base).expect("under base").to_path_buf());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
