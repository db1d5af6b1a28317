//! Helpers shared by the mirror tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use onionpkg_mirror::Mirror;
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_onionpkg-mirror");

/// Runs the binary with `args` (logging warnings only), within [`WAIT`].
pub async fn run(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the binary exits in time")
    .unwrap()
}

/// A signed repository made with onionpkg-repo.
pub struct TestRepo {
    pub repo: RepoDir,
    pub keys: KeyDir,
    pub now: Timestamp,
    scratch: PathBuf,
}

impl TestRepo {
    /// A repository in `dir`, signed at `now`, with one small package.
    pub fn new(dir: &Path, now: Timestamp) -> Self {
        let repo = RepoDir::new(dir.join("repo"));
        let keys = KeyDir::new(dir.join("keys"), None);
        repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)
            .unwrap();
        let t = Self {
            repo,
            keys,
            now,
            scratch: dir.join("input"),
        };
        t.add("pkg/hello-1.0.tar", b"hello, appliance\n");
        t.publish();
        t
    }

    /// Stages a package.
    pub fn add(&self, path: &str, content: &[u8]) {
        std::fs::write(&self.scratch, content).unwrap();
        self.repo
            .add_target(&self.scratch, path, &Default::default(), "targets")
            .unwrap();
    }

    /// Publishes at `self.now`.
    pub fn publish(&self) -> u64 {
        self.repo
            .publish(&self.keys, &Expiries::default(), &[], self.now)
            .unwrap()
    }

    /// The served tree (metadata/ and targets/).
    pub fn dir(&self) -> &Path {
        self.repo.dir()
    }

    /// `1.root.json`.
    pub fn root_path(&self) -> PathBuf {
        self.repo.metadata_dir().join("1.root.json")
    }

    /// The consistent path of `target` under `targets/`.
    pub fn hashed(&self, target: &str) -> String {
        let dir = self.repo.targets_dir();
        let (parent, base) = target.rsplit_once('/').unwrap();
        let found = std::fs::read_dir(dir.join(parent))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.ends_with(&format!(".{base}")) && n.len() == 65 + base.len())
            .unwrap();
        format!("{parent}/{found}")
    }
}

/// Writes a mirror configuration serving `root`, with `extra` appended.
pub fn config(dir: &Path, root: &Path, extra: &str) -> PathBuf {
    let path = dir.join("mirror.toml");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        &path,
        format!(
            "root = {:?}\nstate_dir = {:?}\n{extra}",
            root.display().to_string(),
            state.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Sync's transport for a configuration without `via_tor`.
pub fn direct(
    config: &onionpkg_config::MirrorConfig,
) -> std::sync::Arc<onionpkg_net::transport::Transport> {
    let tls = onionpkg_mirror::sync::tls(config).unwrap();
    onionpkg_mirror::sync::transport(config, tls, None).unwrap()
}

/// Sync's clock policy of `config`, with the system clock.
pub fn clock(config: &onionpkg_config::MirrorConfig) -> onionpkg_trust::clock::ClockPolicy {
    onionpkg_mirror::sync::clock_policy(config).unwrap()
}

/// Starts a mirror from a configuration file.
pub async fn start(config: &Path) -> Mirror {
    let config = onionpkg_config::load_mirror(config).unwrap();
    Mirror::start(&config).await.unwrap()
}

/// A parsed raw response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Raw {
    /// A header's value (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` as is (no normalisation) and reads the reply until the
/// server closes; the request should say `Connection: close`.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("reply within the deadline")
        .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Raw {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// GET `path` with `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str) -> Raw {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}
