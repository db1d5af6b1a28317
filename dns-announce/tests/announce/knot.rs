//! `push` against a real Knot DNS server: the update lands (dig and `check`
//! see it), and an update signed with a wrong TSIG key is refused and
//! changes nothing.
//!
//! Needs Debian's `knot` (knotd, knotc, keymgr) and `bind9-dnsutils` (dig);
//! tests/run.sh installs them. Without them these tests fail, they are
//! never skipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onionpkg_announce::exit;
use rustix::process::{Pid, Signal, kill_process_group};

use crate::util::{DEADLINE, NAME, TestRepo, ZONE, check, run};

/// Finds a program on PATH or in the sbin directories Debian installs
/// daemons to (often not on a user's PATH).
pub(crate) fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: these tests run a real Knot DNS server and dig. \
                 Run tests/run.sh, which installs them (apt-get install knot knot-dnsutils \
                 bind9-dnsutils)"
            )
        })
}

/// A free port on 127.0.0.1 for both UDP and TCP, at the time of asking.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs a command to completion within [`DEADLINE`]; returns its status
/// and output.
pub(crate) fn output(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a key file readable by its owner only, as keys should be.
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// `keymgr -t NAME hmac-sha256`: a fresh TSIG key as Knot prints it.
fn keymgr_key(name: &str) -> String {
    let out = output(Command::new(program("keymgr")).args(["-t", name, "hmac-sha256"]));
    assert!(out.status.success(), "keymgr failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A knotd serving `example.org` on 127.0.0.1, in the foreground, in its
/// own process group; killed (the whole group) on drop, also on panic.
pub(crate) struct Knot {
    child: Child,
    dir: tempfile::TempDir,
    conf: PathBuf,
    port: u16,
}

impl Knot {
    /// Starts Knot with a TSIG key `update-key` allowed to update the zone,
    /// and waits (within [`DEADLINE`]) until it answers for the zone.
    pub(crate) fn start() -> Self {
        Self::start_with(false)
    }

    /// [`Knot::start`], with the zone signed by Knot itself when `signed`
    /// (automatic signing, one Ed25519 combined signing key), and then
    /// waits until it is.
    pub(crate) fn start_with(signed: bool) -> Self {
        let knot = Self::start_unchecked(signed);
        if signed {
            knot.wait_signed();
        }
        knot
    }

    fn start_unchecked(signed: bool) -> Self {
        let knotd = program("knotd");
        let mut dir = tempfile::tempdir().unwrap();
        let key = keymgr_key("update-key");
        write_secret(&dir.path().join("tsig.key"), &key);
        for sub in ["run", "db", "zones"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("zones").join(format!("{ZONE}.zone")),
            format!(
                "$ORIGIN {ZONE}.\n$TTL 60\n\
                 @ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60\n\
                 @ IN NS ns1.{ZONE}.\nns1 IN A 127.0.0.1\n\
                 _update IN TXT \"placeholder\"\n"
            ),
        )
        .unwrap();
        let mut last_log = String::new();
        let signing = if signed {
            "    dnssec-signing: on\n    dnssec-policy: csk\n"
        } else {
            ""
        };
        // A port found free may be taken before knotd binds it: try again.
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.path().join("knot.conf");
            let d = dir.path().display();
            std::fs::write(
                &conf,
                format!(
                    "server:\n    rundir: \"{d}/run\"\n    listen: 127.0.0.1@{port}\n\
                     log:\n  - target: stderr\n    any: info\n\
                     database:\n    storage: \"{d}/db\"\n\
                     {key}\
                     acl:\n  - id: update_acl\n    key: update-key\n    action: update\n\
                     \x20   update-type: [TXT]\n    update-owner: name\n\
                     \x20   update-owner-match: equal\n    update-owner-name: [{NAME}.]\n\
                     policy:\n  - id: csk\n    algorithm: ed25519\n    single-type-signing: on\n\
                     template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n\
                     \x20   zonefile-sync: -1\n\
                     zone:\n  - domain: {ZONE}\n    acl: update_acl\n{signing}"
                ),
            )
            .unwrap();
            let log_path = dir.path().join("knotd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let child = {
                use std::os::unix::process::CommandExt as _;
                Command::new(&knotd)
                    .arg("-c")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .process_group(0)
                    .spawn()
                    .expect("starting knotd")
            };
            let mut knot = Self {
                child,
                dir,
                conf,
                port,
            };
            if knot.wait_ready() {
                return knot;
            }
            last_log = knot.log();
            // Stop this one (Drop kills its group) and keep the directory.
            knot.stop();
            dir = std::mem::replace(&mut knot.dir, tempfile::tempdir().unwrap());
        }
        panic!("knotd did not start: {last_log}");
    }

    /// Asks this server with dig, without recursion, in one try: `query`
    /// is the name, type and output options.
    fn ask(&self, query: &[&str]) -> std::process::Output {
        output(
            Command::new(program("dig"))
                .arg("@127.0.0.1")
                .args(["-p", &self.port.to_string()])
                .args(query)
                .args(["+norec", "+tries=1"]),
        )
    }

    /// Waits until knotd answers the zone's SOA; false if it exited.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let out = self.ask(&[ZONE, "SOA", "+short", "+time=1"]);
            if out.status.success() && !out.stdout.is_empty() {
                return true;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "knotd did not answer in time: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (within [`DEADLINE`]) until the zone's DNSKEY is published.
    fn wait_signed(&self) {
        let start = Instant::now();
        while self.dig(ZONE, "DNSKEY").is_empty() {
            assert!(
                start.elapsed() < DEADLINE,
                "knotd did not sign the zone in time: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The answer records of `dig NAME TYPE`, one a line.
    pub(crate) fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = self.ask(&[name, rtype, "+noall", "+answer", "+time=2"]);
        assert!(out.status.success(), "dig failed: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The zone's DNSKEY records from Knot's key store (`keymgr ZONE
    /// dnskey`): trust anchors learnt out of band, not from an answer.
    pub(crate) fn keymgr_dnskeys(&self) -> String {
        let out = output(
            Command::new(program("keymgr"))
                .arg("-c")
                .arg(&self.conf)
                .args([ZONE, "dnskey"]),
        );
        assert!(out.status.success(), "keymgr dnskey failed: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("DNSKEY"), "no DNSKEY from keymgr: {text}");
        text
    }

    /// Where it answers.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The TSIG key file (`keymgr -t` output).
    pub(crate) fn key_file(&self) -> PathBuf {
        self.dir.path().join("tsig.key")
    }

    /// The scratch directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// knotd's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// `knotc status` through the control socket.
    pub(crate) fn knotc_status(&self) -> bool {
        output(
            Command::new(program("knotc"))
                .arg("-c")
                .arg(&self.conf)
                .arg("status"),
        )
        .status
        .success()
    }

    /// The TXT records at `name` as dig sees them, each record's strings
    /// joined.
    pub(crate) fn dig_txt(&self, name: &str) -> Vec<String> {
        let out = self.ask(&[name, "TXT", "+short", "+time=2"]);
        assert!(out.status.success(), "dig failed: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('"').skip(1).step_by(2).collect::<String>())
            .collect()
    }
}

impl Knot {
    /// Kills knotd's process group and reaps it.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The arguments of `push` for `repo` to `knot` with `key`.
pub(crate) fn push_args(repo: &TestRepo, knot: &Knot, key: &Path) -> Vec<String> {
    let (server, key) = (knot.addr().to_string(), key.display().to_string());
    repo.args(
        "push",
        &[
            "--zone",
            ZONE,
            "--server",
            &server,
            "--tsig-key",
            &key,
            "--ttl",
            "60",
            "--timeout",
            "10s",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_updates_knot_and_check_sees_it() {
    let knot = tokio::task::spawn_blocking(Knot::start).await.unwrap();
    assert!(knot.knotc_status(), "knotc status: {}", knot.log());
    let repo = TestRepo::new();
    let dig = |knot: &Knot| knot.dig_txt(NAME);
    assert_eq!(dig(&knot), vec!["placeholder".to_string()]);

    // Before any push, the placeholder is no announcement.
    check(&repo.root(), knot.addr(), &[])
        .await
        .assert_code(i32::from(exit::NOT_FOUND));

    let pushed = run(push_args(&repo, &knot, &knot.key_file())).await;
    pushed.assert_code(0);
    assert!(pushed.stdout.contains("NOERROR"), "{pushed:?}");
    let records = dig(&knot);
    assert_eq!(records.len(), 1, "the old RRset was replaced: {records:?}");
    assert!(records[0].starts_with("v=1;c=stable;"), "{records:?}");
    let parsed = onionpkg_trust::announce::parse(&records[0]).unwrap();

    // What an idle check costs against Knot: one UDP exchange.
    let addr = knot.addr();
    let (answer, query_len, response_len) = tokio::task::spawn_blocking(move || {
        crate::util::udp_query(addr, NAME, hickory_proto::rr::RecordType::TXT)
    })
    .await
    .unwrap();
    assert!(!answer.metadata.truncation);
    assert!(response_len <= 1024, "{response_len} bytes");
    eprintln!(
        "wire: Knot, UDP: query {query_len} B, response {response_len} B, record {} B",
        records[0].len()
    );

    let state = repo.tmp.path().join("state.json");
    let state_arg = state.display().to_string();
    let check_serial = async || {
        let seen = check(
            &repo.root(),
            knot.addr(),
            &["--json", "--state", &state_arg],
        )
        .await;
        seen.assert_code(0);
        seen.json()["serial"].clone()
    };
    assert_eq!(check_serial().await, parsed.serial());

    // A new publish, pushed: both see the new serial.
    let published = repo.publish_new();
    assert!(published > parsed.serial());
    run(push_args(&repo, &knot, &knot.key_file()))
        .await
        .assert_code(0);
    let records = dig(&knot);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        onionpkg_trust::announce::parse(&records[0])
            .unwrap()
            .serial(),
        published
    );
    assert_eq!(check_serial().await, published);

    // The same key in BIND's format works too.
    let knot_text = std::fs::read_to_string(knot.key_file()).unwrap();
    let secret = knot_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .unwrap()
        .trim();
    let bind = knot.dir().join("bind.key");
    write_secret(
        &bind,
        &format!("key \"update-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    );
    let republished = repo.publish_new();
    let json_push = {
        let mut args = push_args(&repo, &knot, &bind);
        args.insert(0, "--json".into());
        run(args).await
    };
    json_push.assert_code(0);
    assert_eq!(json_push.json()["rcode"], "NOERROR");
    assert_eq!(json_push.json()["serial"], republished);
    assert!(
        !json_push.stdout.contains(secret),
        "the secret is never printed"
    );
    assert_eq!(
        onionpkg_trust::announce::parse(&dig(&knot)[0])
            .unwrap()
            .serial(),
        republished
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_a_wrong_key_is_refused_and_changes_nothing() {
    let knot = tokio::task::spawn_blocking(Knot::start).await.unwrap();
    let repo = TestRepo::new();
    run(push_args(&repo, &knot, &knot.key_file()))
        .await
        .assert_code(0);
    let before = knot.dig_txt(NAME);
    assert_eq!(before.len(), 1);
    repo.publish_new();

    // Right name, wrong secret: Knot answers BADSIG.
    let wrong = knot.dir().join("wrong.key");
    let wrong_text = keymgr_key("update-key");
    write_secret(&wrong, &wrong_text);
    let refused = run(push_args(&repo, &knot, &wrong)).await;
    refused.assert_code(i32::from(exit::REFUSED));
    eprintln!("knot: wrong secret: {}", refused.stderr.trim());
    assert!(
        refused.stderr.starts_with("error: the server"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("refused the update"), "{refused:?}");
    assert!(refused.stderr.contains("BADSIG"), "{refused:?}");
    let wrong_secret = wrong_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .unwrap()
        .trim();
    assert!(
        !refused.stderr.contains(wrong_secret),
        "the secret is never printed"
    );
    assert_eq!(knot.dig_txt(NAME), before, "the record is unchanged");

    // A key the server does not know (BADKEY), in JSON.
    let unknown = knot.dir().join("unknown.key");
    write_secret(&unknown, &keymgr_key("stranger-key"));
    let mut args = push_args(&repo, &knot, &unknown);
    args.insert(0, "--json".into());
    let refused = run(args).await;
    refused.assert_code(i32::from(exit::REFUSED));
    assert_eq!(refused.json()["error"], "refused");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("BADKEY"),
        "{refused:?}"
    );
    eprintln!("knot: unknown key: {}", refused.json()["message"]);
    assert_eq!(knot.dig_txt(NAME), before, "the record is unchanged");

    // The right key, but for a name its ACL does not cover: refused by the
    // server in a signed reply.
    let mut args = push_args(&repo, &knot, &knot.key_file());
    let at = args.iter().position(|a| a == NAME).unwrap();
    args[at] = "_other.example.org".into();
    let refused = run(args).await;
    refused.assert_code(i32::from(exit::REFUSED));
    eprintln!("knot: name outside the ACL: {}", refused.stderr.trim());
    assert!(refused.stderr.contains("refused the update"), "{refused:?}");
    assert!(knot.dig_txt("_other.example.org").is_empty());
    assert_eq!(knot.dig_txt(NAME), before, "the record is unchanged");

    // check still reports the first record.
    let seen = check(&repo.root(), knot.addr(), &["--json"]).await;
    seen.assert_code(0);
    assert_eq!(
        seen.json()["serial"],
        onionpkg_trust::announce::parse(&before[0])
            .unwrap()
            .serial()
    );
}
