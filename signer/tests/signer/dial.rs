//! The signer dials out: a relay in another network namespace, or on another
//! loopback address (127.0.0.2), takes clients' requests on its Unix socket,
//! the signer connects to it over mutual TLS and answers them; the signer
//! holds no listening TCP socket. Each side trusts only the key it pins.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use clap::Parser as _;
use onionpkg_signer::client::{UnixTransport, send};
use onionpkg_signer::request::Reason;
use onionpkg_testkit::ca::TestCa;

use crate::common::{BIN, Env, assert_refused, now, path_str, timestamp, tuf_request};

/// A certificate and key written as `NAME-cert.pem`, `NAME-key.pem`.
struct Tls {
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    fn new(dir: &Path, name: &str, host: &str) -> Self {
        let ca = TestCa::for_names(&format!("{name} CA"), &[host]);
        ca.write(dir, &format!("{name}-")).unwrap();
        Self {
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        }
    }

    /// The pin as `onionpkg-signer tls-pin` prints it, checked against
    /// OpenSSL's SHA-256 of the certificate's public key (the command
    /// docs/SIGNER.md gives).
    fn pin(&self) -> String {
        let out = Command::new(BIN)
            .args(["tls-pin", path_str(&self.cert)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let ours = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let openssl = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
                self.cert.display()
            ))
            .output()
            .unwrap();
        assert!(openssl.status.success(), "{openssl:?}");
        let theirs = String::from_utf8(openssl.stdout).unwrap();
        assert_eq!(Some(ours.as_str()), theirs.split_whitespace().next());
        ours
    }
}

/// A running `onionpkg-signer relay`; killed on drop.
struct Relay {
    child: Child,
    log: Arc<Mutex<String>>,
    socket: PathBuf,
    address: String,
}

impl Relay {
    /// Starts a relay on 127.0.0.2 (a free port) trusting `signer_pin`.
    fn start(dir: &Path, tls: &Tls, signer_pin: &str) -> Self {
        let socket = dir.join("relay/relay.sock");
        let mut child = Command::new(BIN)
            .args(["relay", "--socket", path_str(&socket)])
            .args(["--listen", "127.0.0.2:0"])
            .args(["--cert", path_str(&tls.cert), "--key", path_str(&tls.key)])
            .args(["--signer-pin", signer_pin])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let buf = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                buf.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let address = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("relay listening") => {
                    let at = line.find("listen=127.0.0.2:").unwrap() + "listen=".len();
                    break line[at..].split_whitespace().next().unwrap().to_string();
                }
                Ok(_) => {}
                Err(_) => panic!("the relay did not start:\n{}", log.lock().unwrap()),
            }
        };
        Self {
            child,
            log,
            socket,
            address,
        }
    }

    fn log_with(&self, needle: &str) -> String {
        onionpkg_testkit::retry::until(Duration::from_secs(20), needle, || {
            let log = self.log.lock().unwrap().clone();
            Ok(log.contains(needle).then_some(log))
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", self.log.lock().unwrap()))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[[upstream]]` of a signer dialling `relay`, trusting `relay_pin`.
fn upstream(relay: &Relay, relay_pin: &str, tls: &Tls) -> String {
    format!(
        "[[upstream]]\naddress = \"{}\"\nrelay_pins = [\"{relay_pin}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        relay.address,
        tls.cert.display(),
        tls.key.display()
    )
}

/// The TCP sockets of the system (this network namespace) as (inode, state,
/// remote address hex), from /proc/net/tcp and tcp6.
fn tcp_table() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 {
                out.push((f[9].to_string(), f[3].to_string(), f[2].to_string()));
            }
        }
    }
    out
}

/// The socket inodes process `pid` and its children hold.
fn socket_inodes(pid: u32) -> Vec<String> {
    let mut pids = vec![pid];
    for p in std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<u32>().ok())
    {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string));
        if ppid == Some(pid.to_string()) {
            pids.push(p);
        }
    }
    pids.iter()
        .flat_map(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .into_iter()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
        })
        .collect()
}

/// The states (hex, `0A` listening, `01` established) of `pid`'s TCP
/// sockets, with their remote address.
fn tcp_states(pid: u32) -> Vec<(String, String)> {
    let inodes = socket_inodes(pid);
    tcp_table()
        .into_iter()
        .filter(|(inode, _, _)| inodes.contains(inode))
        .map(|(_, state, remote)| (state, remote))
        .collect()
}

/// `/proc/net/tcp`'s form of 127.0.0.2:port.
fn proc_address(address: &str) -> String {
    let port: u16 = address.rsplit_once(':').unwrap().1.parse().unwrap();
    format!("0200007F:{port:04X}")
}

#[test]
fn the_signer_dials_the_relay_signs_its_requests_and_listens_on_no_tcp_socket() {
    let mut env = Env::new("");
    let dir = env.dir.path().to_path_buf();
    let (relay_tls, signer_tls) = (
        Tls::new(&dir, "relay", "127.0.0.2"),
        Tls::new(&dir, "signer", "signer.example.org"),
    );
    let relay = Relay::start(&dir, &relay_tls, &signer_tls.pin());
    env.extra = upstream(&relay, &relay_tls.pin(), &signer_tls);
    env.write_config();
    let signer = env.start();
    signer.log_with("connected to relay");
    relay.log_with("signer connected");

    // Requests through the relay are signed, and each is authenticated by
    // its own client key: the link allows nothing.
    let mut transport = UnixTransport::new(&relay.socket).with_deadline(Duration::from_secs(30));
    let t = now().as_second();
    let (req, payload) = tuf_request(&env.release, "timestamp", &timestamp(1, t + 3600, 1));
    let signed = send(&mut transport, &req).unwrap();
    env.key("timestamp")
        .verify(&payload, &hex::decode(&signed.signature).unwrap())
        .unwrap();
    let (forbidden, _) = tuf_request(&env.ts_only, "snapshot", &timestamp(1, t + 3600, 1));
    assert_refused(send(&mut transport, &forbidden), Reason::Forbidden);
    assert_refused(send(&mut transport, &req), Reason::Replay);

    // onionpkg-repo signs through the relay as through the signer's socket.
    repo_timestamp_through(&env, &relay.socket);

    // The signer holds an established connection to the relay, and no
    // listening TCP socket; the relay's listening socket shows that the
    // check sees one.
    let states = tcp_states(signer.child.id());
    assert!(
        states.iter().all(|(state, _)| state != "0A"),
        "the signer listens on TCP: {states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(state, remote)| state == "01" && *remote == proc_address(&relay.address)),
        "no connection from the signer to the relay {}: {states:?}",
        relay.address
    );
    let relay_states = tcp_states(relay.child.id());
    assert!(
        relay_states.iter().any(|(state, _)| state == "0A"),
        "{relay_states:?}"
    );
}

/// `onionpkg-repo timestamp --signer SOCKET` on a fresh repository whose
/// root gives the timestamp role the signer's key; the result verifies.
fn repo_timestamp_through(env: &Env, socket: &Path) {
    let repo = |args: &[&str]| {
        let cli = onionpkg_repo::cli::Cli::try_parse_from(
            std::iter::once("onionpkg-repo").chain(args.iter().copied()),
        )
        .unwrap();
        onionpkg_repo::cli::run(&cli, now()).unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
    };
    let dir = env.dir.path();
    let (repo_dir, keys) = (dir.join("repo"), dir.join("release-keys"));
    let (r, k) = (path_str(&repo_dir), path_str(&keys));
    let client_key = dir.join("client.key");
    env.release.write_file(&client_key, None).unwrap();
    repo(&["-r", r, "-k", k, "init", "--threshold", "root=1/1"]);
    let ts_pub = dir.join("timestamp.pub.json");
    std::fs::write(&ts_pub, env.key("timestamp").to_json().to_string()).unwrap();
    let set = format!("timestamp={}", ts_pub.display());
    repo(&["-r", r, "-k", k, "root", "draft", "--set-keys", &set]);
    let staged = repo_dir.join("staged/root.json");
    let root_key = format!("{k}/root-1.key");
    repo(&["root", "sign", path_str(&staged), "--key", &root_key]);
    repo(&["-r", r, "-k", k, "root", "install"]);
    repo(&[
        "-r",
        r,
        "-k",
        k,
        "timestamp",
        "--signer",
        path_str(socket),
        "--signer-key",
        path_str(&client_key),
    ]);
    let root1 = repo_dir.join("metadata/1.root.json");
    let verified = repo(&["-r", r, "verify", "--root", path_str(&root1)]);
    assert!(
        verified.lines[0].starts_with("ok: root v2"),
        "{:?}",
        verified.lines
    );
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_dir.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    assert_eq!(
        ts["signatures"][0]["keyid"].as_str(),
        Some(env.key("timestamp").key_id().as_str())
    );
}

#[test]
fn the_signer_does_not_trust_a_relay_whose_key_is_not_pinned() {
    let mut env = Env::new("");
    let dir = env.dir.path().to_path_buf();
    let (relay_tls, signer_tls, other) = (
        Tls::new(&dir, "relay", "127.0.0.2"),
        Tls::new(&dir, "signer", "signer.example.org"),
        Tls::new(&dir, "other", "127.0.0.2"),
    );
    let relay = Relay::start(&dir, &relay_tls, &signer_tls.pin());
    // The signer pins another key than the relay presents.
    env.extra = upstream(&relay, &other.pin(), &signer_tls);
    env.write_config();
    let signer = env.start();
    let log = signer.log_with("relay link failed");
    assert!(
        log.contains(&format!(
            "the relay certificate's key {} is not pinned",
            relay_tls.pin()
        )),
        "{log}"
    );
    assert!(!log.contains("connected to relay"), "{log}");
    assert!(!relay.log.lock().unwrap().contains("signer connected"));
}

#[test]
fn the_relay_refuses_a_signer_whose_key_is_not_pinned() {
    let mut env = Env::new("");
    let dir = env.dir.path().to_path_buf();
    let (relay_tls, signer_tls, other) = (
        Tls::new(&dir, "relay", "127.0.0.2"),
        Tls::new(&dir, "signer", "signer.example.org"),
        Tls::new(&dir, "other", "signer.example.org"),
    );
    // The relay pins another signer's key.
    let relay = Relay::start(&dir, &relay_tls, &other.pin());
    env.extra = upstream(&relay, &relay_tls.pin(), &signer_tls);
    env.write_config();
    let signer = env.start();
    let log = relay.log_with("signer link ended");
    assert!(
        log.contains(&format!(
            "the signer certificate's key {} is not pinned",
            signer_tls.pin()
        )),
        "{log}"
    );
    assert!(!log.contains("signer connected"), "{log}");
    // In TLS 1.3 the client's handshake ends before the server checks its
    // certificate: the signer learns of the refusal on its first read.
    let log = signer.log_with("relay link failed");
    assert!(log.contains("received fatal alert"), "{log}");
    assert!(!log.contains("connected to relay"), "{log}");
}

/// Whether this machine lets an unprivileged test make user and network
/// namespaces with a veth pair between them.
fn namespaces_available() -> bool {
    Command::new("unshare")
        .args([
            "-rn", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The network namespace of process `pid`.
fn netns(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
}

/// The TCP table of `pid`'s network namespace as (state, remote address).
fn tcp_of_namespace(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 {
                out.push((f[3].to_string(), f[2].to_string()));
            }
        }
    }
    out
}

/// The signer host and the release host as two network namespaces (made by
/// the test in a user namespace, joined by a veth pair: 10.77.0.2 and
/// 10.77.0.1): nothing in the signer's namespace listens, and it signs the
/// relay's requests.
#[test]
fn across_two_network_namespaces_the_signer_dials_out_and_nothing_listens_on_its_side() {
    if !namespaces_available() {
        eprintln!(
            "skipped: no user and network namespaces here; \
             the_signer_dials_the_relay_signs_its_requests_and_listens_on_no_tcp_socket \
             covers it on two loopback addresses"
        );
        return;
    }
    let mut env = Env::new("");
    let dir = env.dir.path().to_path_buf();
    let (relay_tls, signer_tls) = (
        Tls::new(&dir, "relay", "10.77.0.1"),
        Tls::new(&dir, "signer", "signer.example.org"),
    );
    env.extra = format!(
        "[[upstream]]\naddress = \"10.77.0.1:7443\"\nrelay_pins = [\"{}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        relay_tls.pin(),
        signer_tls.cert.display(),
        signer_tls.key.display()
    );
    env.write_config();
    let socket = dir.join("relay/relay.sock");
    let ready = dir.join("ready");
    // Namespace A (the release host) makes namespace B (the signer host),
    // moves one end of the veth pair into it once B says it is in its own
    // namespace (fifo `ready.b`), and then runs the relay; B waits on the
    // fifo `ready` until its end of the link is there. The signer dies
    // with the relay (its parent), whatever ends the test.
    let script = format!(
        r#"set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.77.0.1/24 dev v0
ip link set v0 up
mkfifo '{ready}' '{ready}.b'
unshare -n sh -c "echo > '{ready}.b'; read _ < '{ready}'; ip link set lo up; ip addr add 10.77.0.2/24 dev v1; ip link set v1 up; exec setpriv --pdeathsig KILL '{bin}' --config '{config}' serve" &
read _ < '{ready}.b'
ip link set v1 netns $!
echo > '{ready}'
exec '{bin}' relay --socket '{socket}' --listen 10.77.0.1:7443 --cert '{cert}' --key '{key}' --signer-pin {pin}
"#,
        ready = ready.display(),
        bin = BIN,
        config = env.config.display(),
        socket = socket.display(),
        cert = relay_tls.cert.display(),
        key = relay_tls.key.display(),
        pin = signer_tls.pin(),
    );
    let mut child = Command::new("unshare")
        .args(["-rn", "sh", "-c", &script])
        .env("SOFTHSM2_CONF", &env.softhsm_conf)
        .env("ONIONPKG_TEST_PIN", crate::common::PIN)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let buf = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            buf.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    // The relay is the script's process (exec); the signer its child.
    let relay = Relay {
        child,
        log,
        socket,
        address: "10.77.0.1:7443".into(),
    };
    relay.log_with("signer connected");
    relay.log_with("connected to relay");
    let relay_pid = relay.child.id();
    let signer_pid = onionpkg_testkit::retry::until(Duration::from_secs(10), "the signer", || {
        Ok(std::fs::read_dir("/proc")?
            .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    == Some(relay_pid.to_string().as_str())
                    && cmdline.ends_with(b"serve\0")
            }))
    })
    .unwrap();
    /// Kills the signer by its id first; it would die with the relay too.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
    let _signer = Kill(signer_pid);
    assert_ne!(netns(signer_pid), netns(relay_pid), "one namespace");
    assert_ne!(netns(signer_pid), netns(std::process::id()));

    let mut transport = UnixTransport::new(&relay.socket).with_deadline(Duration::from_secs(30));
    let t = now().as_second();
    let (req, payload) = tuf_request(&env.release, "timestamp", &timestamp(1, t + 3600, 1));
    let signed = send(&mut transport, &req).unwrap();
    env.key("timestamp")
        .verify(&payload, &hex::decode(&signed.signature).unwrap())
        .unwrap();

    // Nothing in the signer host's namespace listens; its one TCP
    // connection goes to the relay (10.77.0.1:7443 is 01004D0A:1D13).
    let signer_side = tcp_of_namespace(signer_pid);
    assert!(
        signer_side.iter().all(|(state, _)| state != "0A"),
        "something listens in the signer's namespace: {signer_side:?}"
    );
    assert!(
        signer_side
            .iter()
            .any(|(state, remote)| state == "01" && remote == "01004D0A:1D13"),
        "{signer_side:?}"
    );
    let relay_side = tcp_of_namespace(relay_pid);
    assert!(
        relay_side.iter().any(|(state, _)| state == "0A"),
        "{relay_side:?}"
    );
}
