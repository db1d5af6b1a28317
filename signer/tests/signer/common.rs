//! A test environment: a SoftHSM2 token in a temp dir, keys made by the
//! binary, a configuration, and a running signer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use onionpkg_signer::client::{UnixTransport, build_request, send};
use onionpkg_signer::request::{Kind, Reason, Signed, SignedRequest};
use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::SecretKey;

pub const BIN: &str = env!("CARGO_BIN_EXE_onionpkg-signer");
pub const PIN: &str = "1234";
pub const ORIGIN: &str = "example.org/onionpkg-signer";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub softhsm_conf: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub release: SecretKey,
    pub ts_only: SecretKey,
    pub extra: String,
    pub verifier: Option<String>,
    pub keys: Vec<(String, PublicKey)>,
    /// The roles the `release` client may request.
    pub release_roles: Vec<&'static str>,
}

pub fn run(env: &Env, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .env("SOFTHSM2_CONF", &env.softhsm_conf)
        .env("ONIONPKG_TEST_PIN", PIN)
        .output()
        .unwrap()
}

impl Env {
    /// A fresh token (no keys yet) and a configuration with `extra` appended.
    pub fn bare(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let softhsm_conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "onionpkg",
                "--pin",
                PIN,
                "--so-pin",
                "5678",
            ])
            .env("SOFTHSM2_CONF", &softhsm_conf)
            .output()
            .expect("softhsm2-util (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Self {
            config: dir.path().join("signer.toml"),
            socket: dir.path().join("run/signer.sock"),
            state: dir.path().join("state"),
            softhsm_conf,
            dir,
            release: SecretKey::generate(),
            ts_only: SecretKey::generate(),
            extra: extra.to_string(),
            verifier: None,
            keys: Vec::new(),
            release_roles: vec!["targets", "bins", "snapshot", "timestamp", "announcement"],
        };
        env.write_config();
        env
    }

    /// A token with the log, timestamp, snapshot and targets keys made by
    /// `keys generate`, and the configuration naming the log key.
    pub fn new(extra: &str) -> Self {
        Self::with_keys(extra, &["log", "timestamp", "snapshot", "targets"], None)
    }

    /// A token with the keys of `roles` made by `keys generate` (`log`
    /// among them; `ROLE:KIND` makes a key of that `--key-type`), and the
    /// `release` client allowed `release_roles` when given.
    pub fn with_keys(
        extra: &str,
        roles: &[&str],
        release_roles: Option<Vec<&'static str>>,
    ) -> Self {
        let mut env = Self::bare(extra);
        if let Some(r) = release_roles {
            env.release_roles = r;
        }
        for spec in roles.iter().copied() {
            let (role, kind) = spec.split_once(':').unwrap_or((spec, "ed25519"));
            let out = run(
                &env,
                &["keys", "generate", "--role", role, "--key-type", kind],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let public = text
                .lines()
                .find_map(|l| l.strip_prefix("public key: "))
                .unwrap();
            env.keys.push((
                role.to_string(),
                PublicKey::from_json(public.as_bytes()).unwrap(),
            ));
            if role == "log" {
                env.verifier = Some(
                    text.lines()
                        .find_map(|l| l.strip_prefix("verifier key: "))
                        .unwrap()
                        .to_string(),
                );
            }
        }
        env.write_config();
        env
    }

    pub fn key(&self, role: &str) -> PublicKey {
        self.keys.iter().find(|(r, _)| r == role).unwrap().1.clone()
    }

    pub fn write_config(&self) {
        let verifier = self
            .verifier
            .as_ref()
            .map(|v| format!("verifier_key = \"{v}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "socket = \"run/signer.sock\"\nstate_dir = \"state\"\nrequest_window = \"5m\"\n\
             [backend]\ntype = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken = \"onionpkg\"\npin_env = \"ONIONPKG_TEST_PIN\"\n\
             [log]\norigin = \"{ORIGIN}\"\n{verifier}\
             [[client]]\nname = \"release\"\nkey = \"{}\"\nroles = {:?}\n\
             [[client]]\nname = \"ts-only\"\nkey = \"{}\"\nroles = [\"timestamp\"]\n{}\n",
            hex::encode(self.release.public().raw_bytes()),
            self.release_roles,
            hex::encode(self.ts_only.public().raw_bytes()),
            self.extra
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn start(&self) -> Signer {
        Signer::start(self)
    }

    /// The number of log entries.
    pub fn entries(&self) -> usize {
        std::fs::read_to_string(self.state.join("entries.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    pub fn refusals(&self) -> String {
        std::fs::read_to_string(self.state.join("refusals.jsonl")).unwrap_or_default()
    }

    pub fn transport(&self) -> UnixTransport {
        UnixTransport::new(&self.socket).with_deadline(Duration::from_secs(20))
    }

    pub fn send(&self, req: &SignedRequest) -> onionpkg_signer::Result<Signed> {
        send(&mut self.transport(), req)
    }
}

/// A running `onionpkg-signer serve`; killed (SIGKILL) on drop.
pub struct Signer {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Signer {
    fn spawn(env: &Env) -> (Self, mpsc::Receiver<String>) {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&env.config)
            .arg("serve")
            .env("SOFTHSM2_CONF", &env.softhsm_conf)
            .env("ONIONPKG_TEST_PIN", PIN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let buf = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                buf.lock().unwrap().push_str(&line);
                buf.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        (Self { child, stderr }, rx)
    }

    /// Starts the signer and waits (at most 30 s) until it listens.
    pub fn start(env: &Env) -> Self {
        let (signer, rx) = Self::spawn(env);
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("listening") => return signer,
                Ok(_) => {}
                Err(_) => panic!(
                    "the signer did not start:\n{}",
                    signer.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Starts the signer expecting it to refuse to start; returns its stderr.
    pub fn start_failing(env: &Env) -> String {
        let (mut signer, rx) = Self::spawn(env);
        // The reader thread ends when the process closes stderr.
        while rx.recv_timeout(Duration::from_secs(30)).is_ok() {}
        let status = signer.child.wait().unwrap();
        assert!(!status.success(), "the signer started");
        signer.stderr.lock().unwrap().clone()
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The log once it holds `needle`: the signer answers before its log
    /// line reaches the pipe this test reads, so a check right after the
    /// answer would race it.
    pub fn log_with(&self, needle: &str) -> String {
        onionpkg_testkit::retry::until(Duration::from_secs(10), needle, || {
            let log = self.log();
            Ok(log.contains(needle).then_some(log))
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", self.log()))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// A timestamp role's `signed` object.
pub fn timestamp(version: u64, expires: i64, snapshot: u64) -> serde_json::Value {
    serde_json::json!({
        "_type": "timestamp", "spec_version": "1.0.31", "version": version,
        "expires": at(expires).to_string(),
        "meta": { "snapshot.json": { "version": snapshot } },
    })
}

/// A request for a TUF role's `signed` object.
pub fn tuf_request(
    key: &SecretKey,
    role: &str,
    signed: &serde_json::Value,
) -> (SignedRequest, Vec<u8>) {
    let payload = onionpkg_trust::sign::canonical_bytes(signed).unwrap();
    let version = signed["version"].as_u64().unwrap();
    let expires: Timestamp = signed["expires"].as_str().unwrap().parse().unwrap();
    (
        build_request(key, role, Kind::Tuf, &payload, version, expires, now()),
        payload,
    )
}

#[track_caller]
pub fn assert_refused(result: onionpkg_signer::Result<Signed>, reason: Reason) -> String {
    match result {
        Err(onionpkg_signer::Error::Client(onionpkg_signer_client::ClientError::Refused(r))) => {
            assert_eq!(r.reason, reason, "refused for another reason: {r}");
            r.message
        }
        other => panic!("expected a refusal ({reason:?}), got {other:?}"),
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of a key (`SecretKey` is not `Clone`, on purpose).
pub fn copy(key: &SecretKey) -> SecretKey {
    SecretKey::from_pem(&key.to_pem(None).unwrap(), None, Path::new("copy")).unwrap()
}
