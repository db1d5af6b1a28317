//! A signed repository, a test CA, a configuration, and the binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use jiff::Timestamp;
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_testkit::TestCa;

/// A repository signed by `onionpkg-repo` in a temp dir.
pub struct TestRepo {
    pub tmp: tempfile::TempDir,
    pub repo: RepoDir,
    pub keys: KeyDir,
    pub now: Timestamp,
    pub expiries: Expiries,
}

/// A URL nothing listens on: a mirror that is down.
pub async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("https://{addr}/")
}

impl TestRepo {
    /// Rotates the timestamp key, which makes a new root version.
    pub fn rotate_timestamp(&self) {
        self.repo
            .rotate(
                onionpkg_trust::roles::TIMESTAMP,
                &self.keys,
                None,
                &self.expiries,
                Timestamp::now(),
            )
            .unwrap();
    }

    /// A repository signed at `now` with the given packages.
    pub fn new_at(now: Timestamp, packages: &[(&str, &[u8])]) -> Self {
        Self::with_expiries(now, Expiries::default(), packages)
    }

    /// A repository signed at `now` with the given role lifetimes.
    pub fn with_expiries(now: Timestamp, expiries: Expiries, packages: &[(&str, &[u8])]) -> Self {
        Self::build(now, expiries, &InitOptions::default(), packages)
    }

    /// A repository signed now, made with `options` (thresholds, keys).
    pub fn with_options(options: &InitOptions, packages: &[(&str, &[u8])]) -> Self {
        Self::build(Timestamp::now(), Expiries::default(), options, packages)
    }

    fn build(
        now: Timestamp,
        expiries: Expiries,
        options: &InitOptions,
        packages: &[(&str, &[u8])],
    ) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = RepoDir::new(tmp.path().join("repo"));
        let keys = KeyDir::new(tmp.path().join("keys"), None);
        repo.init(&keys, options, &expiries, now).unwrap();
        let t = Self {
            tmp,
            repo,
            keys,
            now,
            expiries,
        };
        for (path, content) in packages {
            t.add_package(path, content);
        }
        t.publish();
        t
    }

    /// A repository signed now.
    pub fn new(packages: &[(&str, &[u8])]) -> Self {
        Self::new_at(Timestamp::now(), packages)
    }

    /// Adds a package target at `path` (unpublished).
    pub fn add_package(&self, path: &str, content: &[u8]) {
        self.add_target(path, content, "targets");
    }

    /// Adds a feed target at `path`, delegated to the `feeds` role
    /// (unpublished).
    pub fn add_feed(&self, path: &str, content: &[u8]) {
        self.add_target(path, content, "feeds");
    }

    fn add_target(&self, path: &str, content: &[u8], role: &str) {
        let file = self.tmp.path().join("input");
        std::fs::write(&file, content).unwrap();
        self.repo
            .add_target(&file, path, &Default::default(), role)
            .unwrap();
    }

    pub fn publish(&self) -> u64 {
        self.repo
            .publish(&self.keys, &self.expiries, &[], self.now)
            .unwrap()
    }

    /// The repository tree a mirror serves (`metadata/`, `targets/`).
    pub fn tree(&self) -> PathBuf {
        self.repo.dir().to_owned()
    }

    pub fn root_file(&self) -> PathBuf {
        self.repo.metadata_dir().join("1.root.json")
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// An appliance: a config file, its state, cache and output dirs.
pub struct Appliance {
    pub dir: tempfile::TempDir,
}

impl Appliance {
    /// An appliance using direct HTTPS to `mirrors`, trusting `ca`.
    pub fn https(ca: &TestCa, root: &Path, mirrors: &[String], extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem).unwrap();
        let list = mirrors
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "trust_root = {root:?}\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
             output_dir = \"out\"\ntransport = \"https\"\nmain_mirrors = [{list}]\n\
             {extra}\n[https]\nextra_ca = \"ca.pem\"\n",
        );
        std::fs::write(dir.path().join("fetcher.toml"), config).unwrap();
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("fetcher.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_onionpkg-fetch"));
        c.arg("--config").arg(self.config()).args(args);
        c.kill_on_drop(true);
        c
    }

    /// Runs the fetcher with its clock moved by `offset` (libfaketime's
    /// syntax, such as `+2h`), to completion (60 s at most).
    pub async fn run_at(&self, offset: &str, args: &[&str]) -> Run {
        let mut c = tokio::process::Command::new("faketime");
        c.arg("-f")
            .arg(offset)
            .arg(env!("CARGO_BIN_EXE_onionpkg-fetch"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .expect("onionpkg-fetch did not finish within 60 s")
            .expect("faketime (Debian package faketime) must be installed");
        Run(out)
    }

    /// Runs the fetcher to completion (60 s at most).
    pub async fn run(&self, args: &[&str]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .expect("onionpkg-fetch did not finish within 60 s")
            .unwrap();
        Run(out)
    }

    /// `init` with `root`, which must succeed.
    /// The `--json mirrors` row of `url`.
    pub async fn mirror_row(&self, url: &str) -> serde_json::Value {
        let r = self.run(&["--json", "mirrors"]).await.ok();
        r.stdout()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|m| m["url"] == url)
            .unwrap_or_else(|| panic!("{url} not listed: {}", r.stdout()))
    }

    pub async fn init(&self, root: &Path) {
        self.run(&["init", "--root", root.to_str().unwrap()])
            .await
            .ok();
    }
}

/// A finished run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns self.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code(),
            0,
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}
