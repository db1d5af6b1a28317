//! A real `onionpkg-signer` with the file backend, for the tests of the
//! programs that sign through it (the mirror's feed publisher, the
//! announcer): those crates may not depend on the signer's crate, so the
//! binary is built here with cargo, into the target directory and profile
//! of the test that asks for it.
//!
//! # Invariants
//! - The signer listens on a Unix socket in the test's directory only; it
//!   has no TCP socket at all.
//! - Every wait has a deadline: the build, the log key, the start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use crate::Proc;

/// The passphrase of every key file of a [`FileSigner`].
pub const PASSPHRASE: &str = "onionpkg test signer passphrase";

/// The log's origin (the checkpoints' first line).
pub const ORIGIN: &str = "test.invalid/onionpkg-signer";

/// How long building the signer may take (a first build compiles it).
const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// The roles the file backend can hold a key for.
const ROLES: [&str; 7] = [
    "targets",
    "mirrors",
    "feeds",
    "snapshot",
    "timestamp",
    "announcement",
    "log",
];

/// The binary `bin` of workspace package `package`, built (once per test
/// process) with the cargo, target directory and profile that built the
/// running test.
pub fn workspace_bin(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .map_err(|_| anyhow::anyhow!("a build of {bin} panicked"))?;
    let exe = std::env::current_exe()?;
    // TARGET/PROFILE/deps/TEST-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary is not in TARGET/PROFILE/deps")?;
    let target_dir = profile_dir
        .parent()
        .context("the test binary is not in TARGET/PROFILE/deps")?;
    let path = profile_dir.join(bin);
    if built.contains(&path) {
        return Ok(path);
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => bail!("{} names no profile", profile_dir.display()),
    };
    let mut child = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile"])
        .arg(profile)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting cargo build -p {package}"))?;
    let status = crate::retry::until(BUILD_DEADLINE, "cargo build", || Ok(child.try_wait()?));
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    ensure!(
        status.success(),
        "cargo build -p {package} failed: {status}"
    );
    ensure!(path.is_file(), "{} was not built", path.display());
    built.push(path.clone());
    Ok(path)
}

/// A client of the signer: its name, its Ed25519 public key (raw 32 bytes,
/// hex) and the roles it may request.
#[derive(Debug, Clone)]
pub struct Client {
    /// The name in the log.
    pub name: String,
    /// The public key, 64 hex digits.
    pub key_hex: String,
    /// `feeds`, `snapshot`, `timestamp`, `announcement`, ...
    pub roles: Vec<String>,
}

/// `onionpkg-signer serve` with the file backend in a directory of the
/// test's; stopped when dropped.
pub struct FileSigner {
    dir: PathBuf,
    bin: PathBuf,
    proc: Option<Proc>,
}

impl FileSigner {
    /// A signer in `dir` (made if missing), not started: write the role keys
    /// to [`FileSigner::key_file`], encrypted with [`PASSPHRASE`], then
    /// [`FileSigner::start`] it.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let bin = workspace_bin("onionpkg-signer", "onionpkg-signer")?;
        for sub in ["keys", "passphrases", "state", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        for role in ROLES {
            std::fs::write(
                dir.join("passphrases").join(format!("{role}.passphrase")),
                PASSPHRASE,
            )?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            bin,
            proc: None,
        })
    }

    /// Where the key of `role` goes (an encrypted PKCS#8 file).
    pub fn key_file(&self, role: &str) -> PathBuf {
        self.dir.join("keys").join(format!("onionpkg-{role}.key"))
    }

    /// The socket clients send requests to.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/signer.sock")
    }

    /// The state directory (entries, refusals).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The log lines `entries.jsonl` holds: one per signature.
    pub fn entries(&self) -> Vec<String> {
        std::fs::read_to_string(self.state_dir().join("entries.jsonl"))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn config(&self, clients: &[Client], verifier: Option<&str>) -> anyhow::Result<PathBuf> {
        use std::fmt::Write as _;
        let mut text = String::from(
            "socket = \"run/signer.sock\"\nstate_dir = \"state\"\n\
             [backend]\ntype = \"file\"\nkey_dir = \"keys\"\npassphrase_dir = \"passphrases\"\n",
        );
        write!(text, "[log]\norigin = \"{ORIGIN}\"\n")?;
        if let Some(v) = verifier {
            writeln!(text, "verifier_key = \"{v}\"")?;
        }
        for c in clients {
            write!(
                text,
                "[[client]]\nname = \"{}\"\nkey = \"{}\"\nroles = {:?}\n",
                c.name, c.key_hex, c.roles
            )?;
        }
        let path = self.dir.join("signer.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Makes the log key, writes the configuration with `clients` and
    /// starts the signer; returns once it listens (within 60 s).
    pub fn start(&mut self, clients: &[Client]) -> anyhow::Result<()> {
        let config = self.config(clients, None)?;
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&config)
            .args(["keys", "generate", "--role", "log"])
            .stdin(Stdio::null())
            .output()
            .context("onionpkg-signer keys generate --role log")?;
        ensure!(
            out.status.success(),
            "keys generate --role log: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout)?;
        let verifier = stdout
            .lines()
            .find_map(|l| l.strip_prefix("verifier key: "))
            .context("keys generate printed no verifier key")?;
        let config = self.config(clients, Some(verifier))?;
        let log = self.dir.join("signer.log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let mut proc = Proc::spawn("onionpkg-signer", cmd, &log)?;
        let listening =
            crate::retry::until(Duration::from_secs(60), "the signer listening", || {
                if let Some(status) = proc.child.try_wait()? {
                    bail!(
                        "the signer exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                let text = std::fs::read_to_string(&log)?;
                Ok(text.contains("listening").then_some(()))
            });
        listening.with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
        self.proc = Some(proc);
        Ok(())
    }

    /// What the signer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("signer.log")).unwrap_or_default()
    }
}
