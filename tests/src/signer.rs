//! A real `onionpkg-signer` for the demo, the end-to-end tests and the
//! benchmarks: its key store made in a directory of its own (a SoftHSM2
//! token, or encrypted key files), the role keys made by the binary, a
//! configuration, and the running server.
//!
//! # Invariants
//! - A SoftHSM2 token lives in this directory only: `SOFTHSM2_CONF` names a
//!   configuration here for every command, never the system's token
//!   directory.
//! - The server is a [`Proc`]: stopped when its guard is dropped.
//! - Every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use onionpkg_testkit::Proc;
use onionpkg_testkit::retry::until;

/// Debian's SoftHSM2 PKCS#11 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The log's origin in every configuration made here.
pub const ORIGIN: &str = "test.invalid/onionpkg-signer";
/// How long a command of the signer may take.
const COMMAND: Duration = Duration::from_secs(60);
/// How long the server may take to listen.
const START: Duration = Duration::from_secs(60);
/// The token's user PIN (a test token).
const PIN: &str = "4711";

/// Where the keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SoftHSM2 token made in the signer's directory.
    SoftHsm,
    /// Encrypted key files, one passphrase file per role.
    Files,
}

impl Backend {
    /// How the rows and the narration name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::SoftHsm => "SoftHSM2 token",
            Self::Files => "encrypted key files",
        }
    }
}

/// A client of the signer: its name, its ed25519 public key (64 hex
/// digits) and the roles it may request.
#[derive(Debug, Clone)]
pub struct ConfiguredClient {
    /// Its name in the log.
    pub name: String,
    /// Its public key, hex.
    pub key: String,
    /// The roles it may request (`targets`, `bins`, `snapshot`, ...).
    pub roles: Vec<String>,
}

/// A signer's directory, its key store and configuration.
#[derive(Debug)]
pub struct SignerHome {
    bin: PathBuf,
    dir: PathBuf,
    backend: Backend,
    clients: Vec<ConfiguredClient>,
    limits: String,
    verifier: Option<String>,
    keys: Vec<(String, String)>,
}

impl SignerHome {
    /// Makes the key store in `dir` (created): a SoftHSM2 token labelled
    /// `onionpkg` with its own configuration, or the key and passphrase
    /// directories. `bin` is the `onionpkg-signer` binary; `clients` go
    /// into the configuration, and `limits` (TOML `[role.NAME]` tables) is
    /// appended to it.
    pub fn create(
        bin: &Path,
        dir: &Path,
        backend: Backend,
        clients: Vec<ConfiguredClient>,
        limits: &str,
    ) -> anyhow::Result<Self> {
        ensure!(
            bin.is_file(),
            "{} is not built (cargo build --bins)",
            bin.display()
        );
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        match backend {
            Backend::SoftHsm => {
                let tokens = dir.join("tokens");
                std::fs::create_dir_all(&tokens)?;
                std::fs::write(
                    dir.join("softhsm2.conf"),
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                        tokens.display()
                    ),
                )?;
                write_secret(&dir.join("pin"), PIN)?;
                let mut init = Command::new("softhsm2-util");
                init.args([
                    "--init-token",
                    "--free",
                    "--label",
                    "onionpkg",
                    "--pin",
                    PIN,
                    "--so-pin",
                    "0815",
                ])
                .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"));
                run(
                    init,
                    "softhsm2-util --init-token (apt-get install softhsm2)",
                )?;
            }
            Backend::Files => {
                let pass = dir.join("passphrases");
                std::fs::create_dir_all(&pass)?;
                for role in [
                    "log",
                    "targets",
                    "mirrors",
                    "feeds",
                    "snapshot",
                    "timestamp",
                ] {
                    write_secret(
                        &pass.join(format!("{role}.passphrase")),
                        &format!("a test passphrase for {role}"),
                    )?;
                }
            }
        }
        let home = Self {
            bin: bin.to_owned(),
            dir,
            backend,
            clients,
            limits: limits.to_owned(),
            verifier: None,
            keys: Vec::new(),
        };
        home.write_config()?;
        Ok(home)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("signer.toml")
    }

    /// The Unix socket the server listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/signer.sock")
    }

    /// The signer's state directory (log entries, checkpoints).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let backend = match self.backend {
            Backend::SoftHsm => format!(
                "type = \"pkcs11\"\nmodule = \"{SOFTHSM_MODULE}\"\ntoken = \"onionpkg\"\npin_file = \"pin\"\n"
            ),
            Backend::Files => {
                "type = \"file\"\nkey_dir = \"keys\"\npassphrase_dir = \"passphrases\"\n".to_owned()
            }
        };
        let verifier = self
            .verifier
            .as_ref()
            .map(|v| format!("verifier_key = \"{v}\"\n"))
            .unwrap_or_default();
        let mut text = format!(
            "socket = \"run/signer.sock\"\nstate_dir = \"state\"\n[backend]\n{backend}\
             [log]\norigin = \"{ORIGIN}\"\n{verifier}{}\n",
            self.limits
        );
        for c in &self.clients {
            text.push_str(&format!(
                "[[client]]\nname = \"{}\"\nkey = \"{}\"\nroles = {:?}\n",
                c.name, c.key, c.roles
            ));
        }
        std::fs::write(self.config(), text)?;
        Ok(())
    }

    /// `onionpkg-signer --config CONFIG ARGS`, with this directory's
    /// SoftHSM2 configuration.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config").arg(self.config()).args(args);
        if self.backend == Backend::SoftHsm {
            c.env("SOFTHSM2_CONF", self.dir.join("softhsm2.conf"));
        }
        c
    }

    /// Runs `onionpkg-signer ARGS` to success within a minute; its stdout.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run(
            self.command(args),
            &format!("onionpkg-signer {}", args.join(" ")),
        )
    }

    /// Makes `role`'s key with `keys generate` (inside the token for
    /// SoftHSM2); returns its TUF key id. The log key's verifier key goes
    /// into the configuration.
    pub fn generate(&mut self, role: &str) -> anyhow::Result<String> {
        let out = self.run(&["keys", "generate", "--role", role])?;
        let line = |prefix: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
                .with_context(|| format!("keys generate printed no {prefix:?} line:\n{out}"))
        };
        let (public, key_id) = (line("public key: ")?, line("key id: ")?);
        if role == "log" {
            let verifier = out
                .lines()
                .find_map(|l| l.strip_prefix("verifier key: "))
                .with_context(|| format!("keys generate printed no verifier key:\n{out}"))?;
            self.verifier = Some(verifier.to_owned());
            self.write_config()?;
        }
        self.keys.push((role.to_owned(), public));
        Ok(key_id)
    }

    /// Writes `role`'s public key (made by [`SignerHome::generate`]) to
    /// `ROLE.pub.json` in this directory, for `root draft --set-keys` and
    /// `rotate --public-key`; returns the file.
    pub fn public_key_file(&self, role: &str) -> anyhow::Result<PathBuf> {
        let json = self
            .keys
            .iter()
            .find(|(r, _)| r == role)
            .with_context(|| format!("no {role} key was made"))?;
        let file = self.dir.join(format!("{role}.pub.json"));
        std::fs::write(&file, &json.1)?;
        Ok(file)
    }

    /// Starts `serve` (its log in `serve.log` here) and waits until it
    /// listens.
    pub fn start(&self) -> anyhow::Result<Proc> {
        let log = self.dir.join("serve.log");
        let mut cmd = self.command(&["serve"]);
        cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
        let mut proc = Proc::spawn("onionpkg-signer", cmd, &log)?;
        until(START, "the signer listening", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening") && self.socket().exists() {
                return Ok(Some(()));
            }
            if let Some(status) = proc.child.try_wait()? {
                bail!("onionpkg-signer serve exited ({status}):\n{text}");
            }
            Ok(None)
        })?;
        Ok(proc)
    }
}

/// The hex public key in a TUF ed25519 key file (`STEM.pub.json`, as
/// `onionpkg-repo keygen` writes it), for a `[[client]]`.
pub fn client_key_hex(pub_json: &Path) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(pub_json)?)?;
    let hex = v["keyval"]["public"]
        .as_str()
        .with_context(|| format!("{}: no keyval.public", pub_json.display()))?;
    ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{}: not an ed25519 public key",
        pub_json.display()
    );
    Ok(hex.to_owned())
}

/// Writes `text` to `path` readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `cmd` to success within [`COMMAND`]; its stdout.
fn run(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(COMMAND) else {
        if let Some(pid) = rustix::process::Pid::from_raw(id.cast_signed()) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        bail!("{what} did not finish within {COMMAND:?}");
    };
    let out = out?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
