//! `onionpkg-demo`: the whole story on one machine, on a private Tor network.
//!
//! It starts the private Tor network of the test harness, makes the online
//! keys inside a SoftHSM2 token of its own and starts `onionpkg-signer`,
//! makes a repository with `onionpkg-repo` and publishes its releases
//! through the signer (root stays offline; the announcer and the feed
//! publisher, not wired to the signer yet, sign with key files the root
//! also lists), serves it with `onionpkg-mirror` as an onion service and
//! over HTTPS, announces it with `onionpkg-announce`, and
//! lets an appliance (`onionpkg-fetch` with embedded Tor) check through DNS,
//! see a new release, download it from the onion mirror and verify it; then
//! the mirror fetches, checks and signs a blocklist feed and the appliance
//! syncs it; last, the signer's audit log lists what it signed and is
//! checked. Each step is narrated with its time.
//!
//! Everything binds 127.0.0.1; Tor is never started with a default
//! configuration. The real binaries run as child processes from the
//! directory of this one (`tests/demo.sh` builds them). All files live in a
//! temp dir removed at the end, and every process is stopped, also when a
//! step fails; the exit code is 0 only after the verified download.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the demo narrates on the terminal"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use onionpkg_testkit::Proc;
use onionpkg_testkit::TestCa;
use onionpkg_testkit::retry::until;
use onionpkg_testkit::testdata;
use onionpkg_tests::signer::{Backend, ConfiguredClient, SignerHome, client_key_hex};
use onionpkg_tests::testnet::ports::{EXIT_PORTS, PortLease, lease};
use onionpkg_tests::testnet::{TestNet, TestNetOptions};

/// Deadline of one command of the story.
const COMMAND: Duration = Duration::from_secs(180);
/// How long the onion service may take to be reachable.
const ONION: Duration = Duration::from_secs(300);
/// The keys the signer makes in its token: its log's, and the online
/// roles' that the release side signs through it.
const SIGNER_ROLES: [&str; 5] = ["log", "targets", "snapshot", "timestamp", "mirrors"];

fn main() -> ExitCode {
    let start = Instant::now();
    match run(start) {
        Ok(()) => {
            println!(
                "\n[{:6.1}s] done: the appliance downloaded and verified the update over Tor.",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Narrates one step.
struct Story {
    start: Instant,
    n: u32,
}

impl Story {
    fn step(&mut self, what: &str) {
        self.n += 1;
        println!(
            "\n[{:6.1}s] step {}: {what}",
            self.start.elapsed().as_secs_f64(),
            self.n
        );
    }

    fn say(&self, what: impl std::fmt::Display) {
        println!("           {what}");
    }
}

/// The binaries, next to this one.
struct Bins(PathBuf);

impl Bins {
    fn find() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("no directory")?.to_owned();
        for b in [
            "onionpkg-repo",
            "onionpkg-signer",
            "onionpkg-mirror",
            "onionpkg-announce",
            "onionpkg-fetch",
        ] {
            ensure!(
                dir.join(b).is_file(),
                "{b} is not built next to the demo: run tests/demo.sh"
            );
        }
        Ok(Self(dir))
    }

    fn cmd(&self, name: &str) -> Command {
        Command::new(self.0.join(name))
    }
}

/// Runs `cmd` within the deadline; returns its exit code and stdout. Its
/// stderr goes to `log`.
fn run_cmd(mut cmd: Command, log: &Path) -> anyhow::Result<(i32, String)> {
    let what = format!("{:?}", cmd.get_program());
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
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
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Like [`run_cmd`], and the exit code must be `want`.
fn expect(cmd: Command, log: &Path, want: i32) -> anyhow::Result<String> {
    let what = format!(
        "{:?} {:?}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<_>>()
    );
    let (code, out) = run_cmd(cmd, log)?;
    if code != want {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        bail!(
            "{what} exited {code}, not {want}:\n{out}\nlast log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(out)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A third party's feed server: HTTPS on loopback with the test CA's
/// certificate, serving a DROP-style blocklist. Runs until the runtime ends.
fn feed_upstream(
    rt: &tokio::runtime::Runtime,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<SocketAddr> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut r = hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(testdata::DROP_LIST.as_bytes()),
                        ));
                        if req.uri().path() != "/drop.txt" {
                            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

#[allow(clippy::too_many_lines, reason = "the story reads best in one piece")]
fn run(start: Instant) -> anyhow::Result<()> {
    let bins = Bins::find()?;
    let work = tempfile::Builder::new()
        .prefix("onionpkg-demo-")
        .tempdir()?;
    let w = work.path();
    let log = w.join("demo.log");
    let mut s = Story { start, n: 0 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    s.step("start a private Tor network on 127.0.0.1");
    let net = TestNet::start(&TestNetOptions {
        client: false,
        ..TestNetOptions::default()
    })?;
    s.say(format!(
        "3 directory authorities and 4 relays (2 exits that reach only 127.0.0.1), usable after {:.1}s",
        net.usable_after().as_secs_f64()
    ));
    let tor = net.network().config_toml("120s");
    let result = story(&mut s, &bins, w, &log, &tor, &rt);
    rt.shutdown_timeout(Duration::from_secs(5));
    if result.is_err() {
        net.print_log_tails(10);
    }
    let left = net.shutdown();
    ensure!(left.is_empty(), "tor processes left: {left:?}");
    result
}

fn story(
    s: &mut Story,
    bins: &Bins,
    w: &Path,
    log: &Path,
    tor: &str,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let repo_dir = w.join("repo");
    let keys = w.join("keys");
    let repo = |args: &[&str]| {
        let mut c = bins.cmd("onionpkg-repo");
        c.arg("--repo")
            .arg(&repo_dir)
            .arg("--keys")
            .arg(&keys)
            .args(args);
        c
    };

    s.step("the signing service makes the online keys inside a SoftHSM2 token and starts");
    // The release host's own key, which authenticates its requests.
    let client = w.join("release-client");
    let mut c = bins.cmd("onionpkg-repo");
    c.arg("keygen").arg("--out").arg(&client);
    expect(c, log, 0)?;
    let mut signer = SignerHome::create(
        &bins.0.join("onionpkg-signer"),
        &w.join("signer"),
        Backend::SoftHsm,
        vec![ConfiguredClient {
            name: "release".into(),
            key: client_key_hex(&client.with_extension("pub.json"))?,
            roles: ["targets", "bins", "snapshot", "timestamp", "mirrors"]
                .map(String::from)
                .to_vec(),
        }],
        "",
    )?;
    s.say(format!(
        "softhsm2-util --init-token: token \"onionpkg\" in {} (SOFTHSM2_CONF points there)",
        signer.dir().join("tokens").display()
    ));
    for role in SIGNER_ROLES {
        let key_id = signer.generate(role)?;
        s.say(format!(
            "onionpkg-signer keys generate --role {role:<9}  key id {key_id}"
        ));
    }
    s.say("(made inside the token: sensitive, never extractable; the signer checks that at start)");
    let signer_proc = signer.start()?;
    s.say(format!(
        "onionpkg-signer serve: listening on {}; the key holder is a process of its own",
        signer.socket().display()
    ));
    let socket = signer.socket();
    let via_signer = |mut c: Command| {
        c.arg("--signer")
            .arg(&socket)
            .arg("--signer-key")
            .arg(client.with_extension("key"));
        c
    };

    s.step("the release side makes a repository and publishes it through the signer");
    expect(repo(&["init"]), log, 0)?;
    s.say(
        "onionpkg-repo init: root (2 of 3 keys, kept offline), and first keys for the other roles",
    );
    // The next root gives the top-level online roles the signer's keys.
    // onionpkg-announce and the mirror's feed publisher do not ask the
    // signer yet: the timestamp and snapshot roles keep their key files as
    // second keys (1 of 2) for them, and the feeds role keeps its file.
    let key = |role: &str| -> anyhow::Result<String> {
        Ok(signer.public_key_file(role)?.display().to_string())
    };
    let set = [
        format!("targets={}", key("targets")?),
        format!(
            "snapshot={},{}",
            key("snapshot")?,
            keys.join("snapshot.pub.json").display()
        ),
        format!(
            "timestamp={},{}",
            key("timestamp")?,
            keys.join("timestamp.pub.json").display()
        ),
    ];
    let mut draft = vec!["root", "draft"];
    for k in &set {
        draft.extend(["--set-keys", k]);
    }
    expect(repo(&draft), log, 0)?;
    let staged = repo_dir.join("staged/root.json");
    for holder in ["root-1", "root-2"] {
        let mut c = bins.cmd("onionpkg-repo");
        c.args(["root", "sign"])
            .arg(&staged)
            .arg("--key")
            .arg(keys.join(format!("{holder}.key")));
        expect(c, log, 0)?;
    }
    expect(repo(&["root", "install"]), log, 0)?;
    s.say("root v2, signed offline by 2 of the 3 root key holders: targets, snapshot and timestamp take the signer's keys");
    ensure!(
        !keys.join("targets.key").exists(),
        "the replaced targets key file was not retired"
    );
    s.say("the replaced targets key file moved to keys/retired/; no key file signs targets or its bins now");
    let mut c = repo(&["rotate", "mirrors", "--public-key", &key("mirrors")?]);
    c = via_signer(c);
    expect(c, log, 0)?;
    s.say("onionpkg-repo rotate mirrors --public-key … --signer …: the mirrors role takes the signer's key");
    let input = w.join("input");
    std::fs::create_dir_all(&input)?;
    std::fs::write(
        input.join("hello-1.0.tar"),
        b"hello, appliance: version 1.0\n",
    )?;
    std::fs::write(
        input.join("firewall-rules-2026.11.tar"),
        b"block in all\npass out all\n",
    )?;
    for (file, path) in [
        ("hello-1.0.tar", "pkg/hello-1.0.tar"),
        (
            "firewall-rules-2026.11.tar",
            "pkg/firewall-rules-2026.11.tar",
        ),
    ] {
        let mut c = repo(&["add", "--path", path]);
        c.arg(input.join(file));
        expect(c, log, 0)?;
    }
    let out = expect(via_signer(repo(&["publish"])), log, 0)?;
    s.say("onionpkg-repo add: pkg/hello-1.0.tar, pkg/firewall-rules-2026.11.tar");
    s.say(format!("onionpkg-repo publish --signer …: {}", out.trim()));
    s.say(format!(
        "the signer's log now holds {} signatures",
        signer.run(&["audit", "list", "--json"])?.lines().count()
    ));

    s.step("a mirror serves it as an onion service (embedded arti) and over HTTPS");
    // `ca.pem`, `cert.pem` and `key.pem` for the mirror, the feed server
    // and the clients.
    let ca = TestCa::for_names("onionpkg demo CA", &["127.0.0.1"]);
    ca.write(w, "")?;
    let upstream = feed_upstream(rt, ca.server)?;
    let https: PortLease = lease(EXIT_PORTS)?;
    let mirror_cfg = w.join("mirror.toml");
    std::fs::write(
        &mirror_cfg,
        format!(
            "root = \"repo\"\nstate_dir = \"mirror-state\"\n\
             [listen]\nhttps = \"{}\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [onion]\nenabled = true\nnickname = \"demo\"\n{tor}",
            https.addr()
        ),
    )?;
    let mut c = bins.cmd("onionpkg-mirror");
    c.args(["serve", "--config"])
        .arg(&mirror_cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("mirror.log"))?);
    let mirror = Proc::new(
        "onionpkg-mirror",
        c.spawn().context("starting onionpkg-mirror")?,
    );
    let onion = until(ONION, "the mirror's onion address", || {
        let mut c = bins.cmd("onionpkg-mirror");
        c.args(["status", "--json", "--config"]).arg(&mirror_cfg);
        let (code, out) = run_cmd(c, log)?;
        Ok((code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&out).ok())
            .flatten()
            .and_then(|v| v["onion_address"].as_str().map(str::to_owned)))
    })?;
    s.say(format!("onion service: http://{onion}/"));
    s.say(format!("HTTPS: https://{}/ (a demo CA)", https.addr()));

    s.step("the announcement server publishes the signed DNS TXT record");
    let dns = lease(EXIT_PORTS)?;
    let ann_cfg = w.join("announce.toml");
    std::fs::write(
        &ann_cfg,
        format!(
            "zone = \"demo.test\"\nname = \"_onionpkg.demo.test\"\nttl = 5\nrepo = \"repo\"\n\
             timestamp_keys = [\"keys/timestamp.key\"]\n[serve]\nlisten = [\"{}\"]\n",
            dns.addr()
        ),
    )?;
    ensure!(
        keys.join("timestamp.key").is_file(),
        "no keys/timestamp.key"
    );
    let mut c = bins.cmd("onionpkg-announce");
    c.args(["serve", "--poll", "1s", "--config"])
        .arg(&ann_cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("announce.log"))?);
    let announcer = Proc::new(
        "onionpkg-announce",
        c.spawn().context("starting onionpkg-announce")?,
    );
    until(Duration::from_secs(30), "the announcement server", || {
        Ok(
            std::net::TcpStream::connect_timeout(&dns.addr(), Duration::from_secs(1))
                .ok()
                .map(|_| ()),
        )
    })?;
    s.say(format!(
        "_onionpkg.demo.test TXT, served on {} (UDP and TCP)",
        dns.addr()
    ));

    s.step("the appliance pins the root and takes the current state over Tor");
    let app = w.join("appliance");
    std::fs::create_dir_all(&app)?;
    std::fs::copy(repo_dir.join("metadata/1.root.json"), app.join("root.json"))?;
    let fetch_cfg = app.join("fetcher.toml");
    std::fs::write(
        &fetch_cfg,
        format!(
            "trust_root = \"root.json\"\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
             output_dir = \"out\"\ntransport = \"tor\"\nmain_mirrors = [\"http://{onion}/\"]\n\
             [announcement]\nname = \"_onionpkg.demo.test\"\nresolver = \"{}\"\n{tor}",
            dns.addr()
        ),
    )?;
    let fetch = |args: &[&str]| {
        let mut c = bins.cmd("onionpkg-fetch");
        c.arg("--config")
            .arg(&fetch_cfg)
            .args(args)
            .env("RUST_LOG", "error");
        c
    };
    let mut init = fetch(&["init", "--root"]);
    init.arg(app.join("root.json"));
    expect(init, log, 0)?;
    // The onion service needs its descriptor published before the first
    // fetch can reach it; retried within the deadline.
    let t = Instant::now();
    let out = until(ONION, "the first update over the onion service", || {
        let (code, out) = run_cmd(fetch(&["download", "--all"]), log)?;
        Ok((code == 0).then_some(out))
    })?;
    s.say(out.trim());
    s.say(format!(
        "(the onion service answered after {:.1}s)",
        t.elapsed().as_secs_f64()
    ));

    s.step("the appliance checks for updates: one DNS query through Tor, no mirror contacted");
    let out = expect(fetch(&["check"]), log, 0)?;
    s.say(out.trim());

    s.step("the release side publishes hello 1.1; the announcement follows");
    std::fs::write(
        input.join("hello-1.1.tar"),
        b"hello, appliance: version 1.1\n",
    )?;
    let mut c = repo(&["add", "--path", "pkg/hello-1.1.tar"]);
    c.arg(input.join("hello-1.1.tar"));
    expect(c, log, 0)?;
    let out = expect(via_signer(repo(&["publish"])), log, 0)?;
    s.say(format!("onionpkg-repo publish --signer …: {}", out.trim()));

    s.step("the appliance checks again and sees the update in DNS");
    let out = until(Duration::from_secs(60), "the new announcement", || {
        let (code, out) = run_cmd(fetch(&["check"]), log)?;
        ensure!(code == 0 || code == 10, "check exited {code}");
        Ok((code == 10).then_some(out))
    })?;
    s.say(format!("{} (exit code 10)", out.trim()));

    s.step("the appliance downloads it over Tor from the onion mirror and verifies it");
    let out = until(ONION, "the download", || {
        let (code, out) = run_cmd(fetch(&["download", "pkg/hello-1.1.tar"]), log)?;
        Ok((code == 0).then_some(out))
    })?;
    s.say(out.trim());
    let got = std::fs::read(app.join("out/pkg/hello-1.1.tar"))?;
    ensure!(
        got == b"hello, appliance: version 1.1\n",
        "the downloaded file differs"
    );
    s.say(format!(
        "out/pkg/hello-1.1.tar: {} bytes, sha256 {}",
        got.len(),
        sha256_hex(&got)
    ));

    s.step("the mirror fetches a blocklist feed, checks it and signs it; the appliance syncs it");
    // The distro's primary fetches feeds from cron with the same binary
    // and the online feeds key.
    let feeds_cfg = w.join("feeds.toml");
    std::fs::write(
        &feeds_cfg,
        format!(
            "root = \"repo\"\nstate_dir = \"feeds-state\"\n[listen]\nhttp = \"127.0.0.1:0\"\n\
             [feeds]\nextra_ca = \"ca.pem\"\n\
             [feeds.publish]\nrepo = \"repo\"\nkeys = \"keys\"\n\
             [[feed]]\nname = \"blocklist\"\nupstream = \"https://{upstream}/drop.txt\"\n\
             check = \"ip-list\"\nvia_tor = false\n"
        ),
    )?;
    let mut c = bins.cmd("onionpkg-mirror");
    c.args(["feeds", "fetch", "--config"]).arg(&feeds_cfg);
    let out = expect(c, log, 0)?;
    s.say(format!("onionpkg-mirror feeds fetch: {}", out.trim()));
    s.say("(the feed publisher signs feeds, snapshot and timestamp with their key files: it does not ask the signer yet)");
    let out = until(ONION, "the feed sync", || {
        let (code, out) = run_cmd(fetch(&["feeds", "sync"]), log)?;
        Ok((code == 0).then_some(out))
    })?;
    s.say(out.trim());
    let list = std::fs::read(app.join("out/feeds/blocklist/drop.txt"))?;
    ensure!(
        list == testdata::DROP_LIST.as_bytes(),
        "the synced feed differs"
    );
    s.say(format!(
        "out/feeds/blocklist/drop.txt: {} bytes, verified against the feeds role",
        list.len()
    ));

    s.step("the signer's audit log: everything it signed, and the log checked");
    for line in signer.run(&["audit", "list"])?.lines() {
        s.say(line);
    }
    let out = signer.run(&["audit", "verify"])?;
    s.say(format!("onionpkg-signer audit verify: {}", out.trim()));

    drop(announcer);
    drop(mirror);
    drop(signer_proc);
    drop((https, dns));
    Ok(())
}
