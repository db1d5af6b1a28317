//! End-to-end tests of `onionpkg-fetch` on a private Tor network.
//!
//! One network, one test, scenarios in sequence: the same signed targets
//! fetched through embedded arti, through C tor's SOCKS port and over
//! direct HTTPS must be byte-identical and verified; traced runs of the
//! binary in socks and tor mode must connect to nothing but 127.0.0.1 Tor
//! ports (never to the mirror, never over UDP); the peak memory of a
//! whole tor-mode update is measured; and in tor mode a clock 2 hours slow
//! (libfaketime) is refused against the Tor consensus' signed time; and a
//! repository published entirely through `onionpkg-signer` is downloaded
//! and verified in tor mode (`fetcher/signed.rs`).
//!
//! The mirror is an HTTPS server (test CA) on a port the exits allow, so
//! every transport fetches the very same `https://127.0.0.1:PORT/` URLs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "test code: a panic or a printed line is the report"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use onionpkg_config::common::WebUrl;
use onionpkg_fetcher::download::{DownloadLimits, Job, OutDir, download};
use onionpkg_net::remote::RemoteRepository;
use onionpkg_net::tor::TorTransport;
use onionpkg_net::transport::{SocksTransport, Tls, Transport};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_testkit::TestCa;
use onionpkg_testkit::retry::retry_async;
use onionpkg_tests::testnet::arti::{BOOTSTRAP_TIMEOUT, bootstrap_arti, check_private};
use onionpkg_tests::testnet::ports::{EXIT_PORTS, lease};
use onionpkg_tests::testnet::{TestNet, TestNetOptions};
use onionpkg_trust::metadata::Client;

#[path = "fetcher/signed.rs"]
mod signed;

const PACKAGES: [&str; 2] = ["pkg/hello-1.0.tar", "pkg/big.bin"];
/// One whole attempt through Tor, circuits included.
const ATTEMPT: Duration = Duration::from_secs(60);
/// Deadline for the binary.
const RUN_DEADLINE: Duration = Duration::from_secs(240);

fn content(path: &str) -> Vec<u8> {
    match path {
        "pkg/hello-1.0.tar" => b"hello, appliance\n".to_vec(),
        _ => (0..600_000u32).map(|i| (i % 251) as u8).collect(),
    }
}

fn make_repo(dir: &Path) -> PathBuf {
    let repo = RepoDir::new(dir.join("repo"));
    let keys = KeyDir::new(dir.join("keys"), None);
    let now = jiff::Timestamp::now();
    repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)
        .unwrap();
    for p in PACKAGES {
        let input = dir.join("input");
        std::fs::write(&input, content(p)).unwrap();
        repo.add_target(&input, p, &Default::default(), "targets")
            .unwrap();
    }
    repo.publish(&keys, &Expiries::default(), &[], now).unwrap();
    repo.dir().to_owned()
}

/// Serves the repository tree over HTTPS on `listener`.
async fn serve_tree(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    tls: Arc<rustls::ServerConfig>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (root, tls) = (root.clone(), tls.clone());
        tokio::spawn(async move {
            let Ok(s) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                return;
            };
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let root = root.clone();
                async move {
                    let path = req.uri().path().trim_start_matches('/').to_owned();
                    let resp = match std::fs::read(root.join(&path)) {
                        Ok(b) if !path.contains("..") => {
                            http::Response::new(Full::new(Bytes::from(b)))
                        }
                        _ => {
                            let mut r = http::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = http::StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

/// Refreshes and downloads every package through `transport`, in process.
async fn fetch_all(
    transport: Transport,
    base: &str,
    root: &[u8],
    out: &Path,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let transport = Arc::new(transport);
    let base = &WebUrl::parse_local_base(base).map_err(anyhow::Error::msg)?;
    let repo = RemoteRepository::new(transport.clone(), base)?;
    let mut client = Client::new(root, None, repo)?;
    let now = jiff::Timestamp::now();
    client.refresh(now).await?;
    let limits = DownloadLimits {
        min_throughput: 1024,
        window: Duration::from_secs(30),
        deadline: tokio::time::Instant::now() + ATTEMPT,
    };
    let out = OutDir::open(out)?;
    let mut got = Vec::new();
    for p in PACKAGES {
        let info = client.target_info(p, now).await?;
        let sha = info.hashes.get("sha256").context("no sha256")?.clone();
        let job = Job {
            path: p.to_owned(),
            remote_path: onionpkg_trust::roles::consistent_target_path(p, &sha),
            info,
        };
        let file = download(&transport, base, &job, &out, &limits, None)
            .await
            .map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        got.push(std::fs::read(file)?);
    }
    Ok(got)
}

/// Retries `fetch_all` while exit circuits are still being built.
async fn fetch_all_until(
    make: impl Fn() -> Transport,
    base: &str,
    root: &[u8],
    out: &Path,
) -> anyhow::Result<(Vec<Vec<u8>>, u32)> {
    retry_async(
        Duration::from_secs(150),
        Duration::from_secs(1),
        async |_| {
            tokio::time::timeout(ATTEMPT, fetch_all(make(), base, root, out))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("an attempt took over {ATTEMPT:?}")))
        },
    )
    .await
    .map(|r| (r.value, r.attempts))
    .map_err(|g| g.last.context(format!("after {} attempts", g.attempts)))
}

/// A fetcher configuration file.
fn write_config(dir: &Path, mode: &str, base: &str, ca_pem: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.ca_pem"), ca_pem).unwrap();
    let cfg = format!(
        "trust_root = \"root.json\"\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
         output_dir = \"out\"\ntransport = \"{mode}\"\nmain_mirrors = [\"{base}\"]\n\
         [https]\nextra_ca = \"ca.ca_pem\"\n{extra}"
    );
    let path = dir.join("fetcher.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn tor_section(net: &TestNet) -> String {
    net.network().config_toml("60s")
}

/// A `[tor]` section naming the private network's relays at a loopback port
/// nobody listens on: arti cannot bootstrap, and gives up after 5 s.
fn unbootstrappable_tor_section(net: &TestNet) -> String {
    let mut text = net.network().config_toml("5s");
    let addrs = net
        .network()
        .authorities()
        .iter()
        .flat_map(|a| a.dir_addrs.clone())
        .chain(
            net.network()
                .fallbacks()
                .iter()
                .flat_map(|f| f.orports.clone()),
        );
    for addr in addrs {
        text = text.replace(&format!("\"{addr}\""), "\"127.0.0.1:1\"");
    }
    text
}

/// The `onionpkg-fetch` binary, built next to this test binary (another
/// package's binaries are not built for this one, so build it here).
fn fetch_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    profile_dir.join("onionpkg-fetch")
}

/// The `onionpkg-signer` binary, built beside `onionpkg-fetch`.
fn signer_bin() -> PathBuf {
    fetch_bin().with_file_name("onionpkg-signer")
}

/// Builds `onionpkg-fetch` and `onionpkg-signer`.
fn build_fetch_bin() {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-p",
        "onionpkg-fetcher",
        "--bin",
        "onionpkg-fetch",
        "-p",
        "onionpkg-signer",
        "--bin",
        "onionpkg-signer",
    ]);
    if let Some(target) = fetch_bin().parent().and_then(Path::parent) {
        cmd.arg("--target-dir").arg(target);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(
                s.success(),
                "building onionpkg-fetch and onionpkg-signer failed"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "building onionpkg-fetch and onionpkg-signer took over 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the binary (optionally under strace) until it exits or the deadline passes.
fn run_fetch(
    config: &Path,
    args: &[&str],
    trace: Option<&Path>,
) -> anyhow::Result<std::process::Output> {
    let mut cmd = match trace {
        Some(t) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-e", "trace=network", "-o"])
                .arg(t)
                .arg(fetch_bin());
            c
        }
        None => Command::new(fetch_bin()),
    };
    cmd.arg("--config").arg(config).args(args);
    wait_output(cmd)
}

/// libfaketime's preload library for threaded programs (Debian: `faketime`).
fn libfaketime() -> Option<PathBuf> {
    let multiarch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"));
    std::iter::once(PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1"))
        .chain(multiarch)
        .find(|p| p.exists())
}

/// Runs the binary with its wall clock `offset` off (libfaketime's syntax,
/// such as "-2h"). Monotonic clocks stay true, so timers and deadlines work.
fn run_fetch_skewed(
    config: &Path,
    args: &[&str],
    offset: &str,
) -> anyhow::Result<std::process::Output> {
    let lib = libfaketime().context("libfaketime is not installed")?;
    let mut cmd = Command::new(fetch_bin());
    cmd.env("LD_PRELOAD", lib)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .arg("--config")
        .arg(config)
        .args(args);
    wait_output(cmd)
}

/// The time in a `BehindFloor` message: "the system clock reads T, ...".
fn clock_reads(msg: &str) -> Option<jiff::Timestamp> {
    let rest = msg.split_once("the system clock reads ")?.1;
    rest.split(',').next()?.parse().ok()
}

/// Runs `cmd` until it exits or the deadline passes.
fn wait_output(mut cmd: Command) -> anyhow::Result<std::process::Output> {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("onionpkg-fetch did not finish within {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every `connect` in an strace log, as (address, port); and whether any
/// datagram socket was opened.
fn traced_connects(trace: &Path) -> (Vec<String>, bool) {
    let log = std::fs::read_to_string(trace).unwrap();
    let udp = log
        .lines()
        .any(|l| l.contains("socket(") && l.contains("SOCK_DGRAM"));
    let connects = log
        .lines()
        .filter(|l| l.contains("connect("))
        .map(|l| l.split_once("connect(").map_or("", |x| x.1).to_owned())
        .collect();
    (connects, udp)
}

/// `init` with the first root of `tree`, for the appliance configured by
/// `cfg`; it must succeed.
fn init(cfg: &Path, tree: &Path) -> anyhow::Result<()> {
    let root = tree.join("metadata/1.root.json");
    let init = run_fetch(cfg, &["init", "--root", &root.to_string_lossy()], None)?;
    ensure!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    Ok(())
}

/// `init` with the first root of `tree`, then `download --all` with its
/// system calls traced, for the appliance in `dir` configured by `cfg`:
/// both succeed, the big package arrives intact, and no datagram socket is
/// opened. Gives the traced connections.
fn init_and_traced_download(cfg: &Path, dir: &Path, tree: &Path) -> anyhow::Result<Vec<String>> {
    init(cfg, tree)?;
    let trace = dir.join("trace");
    let out = run_fetch(cfg, &["download", "--all"], Some(&trace))?;
    ensure!(
        out.status.success(),
        "download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(std::fs::read(dir.join("out/pkg/big.bin"))? == content("pkg/big.bin"));
    let (connects, udp) = traced_connects(&trace);
    ensure!(!udp, "a datagram socket was opened");
    Ok(connects)
}

/// Checks that every inet connect went to 127.0.0.1 and one of `allowed` ports.
fn only_tor(connects: &[String], allowed: &dyn Fn(u16) -> bool) -> anyhow::Result<usize> {
    let mut n = 0;
    for c in connects {
        if c.contains("AF_INET6") {
            bail!("an IPv6 connection: {c}");
        }
        if !c.contains("AF_INET") {
            // glibc tries nscd for user and group lookups (arti checks the
            // permissions of its state directory); with nothing listening
            // the attempt fails and nothing is sent. A connected local
            // socket could be a resolver: refuse it.
            if c.contains("AF_UNIX") && !c.contains("= -1") {
                bail!("a unix socket connection (a local resolver?): {c}");
            }
            continue;
        }
        let port: u16 = c
            .split("htons(")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {c}"))?;
        ensure!(
            c.contains("inet_addr(\"127.0.0.1\")"),
            "a connection off loopback: {c}"
        );
        ensure!(
            allowed(port),
            "a connection to port {port}, not a tor port: {c}"
        );
        n += 1;
    }
    Ok(n)
}

#[test]
fn fetcher_over_tor() {
    assert!(
        Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "strace is required for this test (apt-get install -y strace)"
    );
    assert!(
        libfaketime().is_some(),
        "libfaketime is required for this test (apt-get install -y faketime)"
    );
    build_fetch_bin();
    assert!(fetch_bin().exists(), "no {}", fetch_bin().display());
    let work = tempfile::tempdir().unwrap();
    let tree = make_repo(work.path());
    let root = std::fs::read(tree.join("metadata/1.root.json")).unwrap();
    let ca = TestCa::new();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = lease(EXIT_PORTS).unwrap();
    let mirror_port = port.port();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(port.addr()))
        .unwrap();
    rt.spawn(serve_tree(listener, tree.clone(), ca.server.clone()));
    let base = format!("https://{}/", port.addr());

    let net = TestNet::start(&TestNetOptions::default()).expect("private tor network");
    println!(
        "private tor network usable after {:.1}s",
        net.usable_after().as_secs_f64()
    );
    let socks: SocketAddr = net.socks_addr().expect("a C tor client");
    let tls = Tls::new(Some(ca.ca_pem.as_bytes())).unwrap();
    let mut failures = Vec::new();
    let mut report = |name: &str, r: anyhow::Result<String>| match r {
        Ok(s) => println!("ok   {name}: {s}"),
        Err(e) => {
            println!("FAIL {name}: {e:#}");
            failures.push(name.to_owned());
        }
    };

    // a. The same targets through arti, C tor's SOCKS port and HTTPS.
    let expected: Vec<Vec<u8>> = PACKAGES.iter().map(|p| content(p)).collect();
    let r = rt.block_on(async {
        let t0 = Instant::now();
        let arti =
            bootstrap_arti(net.network(), &work.path().join("arti"), BOOTSTRAP_TIMEOUT).await?;
        let tor = TorTransport::new(arti);
        let (via_arti, n) = fetch_all_until(
            || Transport::Tor {
                tor: tor.clone(),
                tls: tls.clone(),
            },
            &base,
            &root,
            &work.path().join("out-arti"),
        )
        .await?;
        let arti_took = t0.elapsed();
        let t1 = Instant::now();
        let (via_socks, m) = fetch_all_until(
            || Transport::Socks {
                socks: SocksTransport::new(socks),
                tls: tls.clone(),
            },
            &base,
            &root,
            &work.path().join("out-socks"),
        )
        .await?;
        let socks_took = t1.elapsed();
        let via_https = fetch_all(
            Transport::Https {
                tls: tls.clone(),
                loopback_http: false,
            },
            &base,
            &root,
            &work.path().join("out-https"),
        )
        .await?;
        ensure!(via_arti == expected, "arti copy differs");
        ensure!(via_socks == expected, "socks copy differs");
        ensure!(via_https == expected, "https copy differs");
        Ok(format!(
            "identical and verified (arti {:.1}s/{n} attempt(s), socks {:.1}s/{m} attempt(s))",
            arti_took.as_secs_f64(),
            socks_took.as_secs_f64()
        ))
    });
    report("same targets via arti, socks and https", r);

    // e. socks mode: only the SOCKS port, never the mirror, no UDP.
    let r = (|| {
        let dir = work.path().join("socks-app");
        let cfg = write_config(
            &dir,
            "socks",
            &base,
            &ca.ca_pem,
            &format!("[socks]\naddr = \"{socks}\"\n"),
        );
        let connects = init_and_traced_download(&cfg, &dir, &tree)?;
        let n = only_tor(&connects, &|p| p == socks.port() && p != mirror_port)?;
        ensure!(n > 0, "no connection seen at all: is the trace empty?");
        Ok(format!(
            "{n} connection(s), all to the SOCKS port {socks}; no UDP"
        ))
    })();
    report("socks mode: traced connections", r);

    // tor mode with `fallback = ["socks"]`: the embedded Tor cannot
    // bootstrap, so the SOCKS port is used and the run says so; without the
    // fallback the same run fails as a Tor failure.
    let r = (|| {
        let dead = unbootstrappable_tor_section(&net);
        let init_and_download = |dir: &Path, fallback: &str| -> anyhow::Result<_> {
            let cfg = write_config(
                dir,
                "tor",
                &base,
                &ca.ca_pem,
                &format!("[socks]\naddr = \"{socks}\"\n{dead}"),
            );
            let text = std::fs::read_to_string(&cfg)?;
            std::fs::write(&cfg, format!("{fallback}{text}"))?;
            init(&cfg, &tree)?;
            run_fetch(&cfg, &["download", "--all"], None)
        };
        let dir = work.path().join("fallback-app");
        let out = init_and_download(&dir, "fallback = [\"socks\"]\n")?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(out.status.success(), "download with the fallback: {said}");
        ensure!(std::fs::read(dir.join("out/pkg/big.bin"))? == content("pkg/big.bin"));
        ensure!(
            said.contains("transport \"tor\" could not be set up")
                && said.contains("using the fallback \"socks\""),
            "the fallback was not reported: {said}"
        );
        let dir = work.path().join("no-fallback-app");
        let out = init_and_download(&dir, "")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(7),
            "without a fallback: exit {:?}: {stderr}",
            out.status.code()
        );
        ensure!(stderr.contains("bootstrap"), "unclear error: {stderr}");
        ensure!(
            !dir.join("out/pkg/big.bin").exists(),
            "downloaded without a usable transport"
        );
        Ok("fallback used and reported; without it exit 7 naming the bootstrap".to_owned())
    })();
    report("tor mode falling back to the SOCKS port", r);

    // e, f. tor mode: only relays on 127.0.0.1, never the mirror, no UDP; peak RSS.
    let relay_ports: Vec<u16> = net
        .network()
        .fallbacks()
        .iter()
        .flat_map(|f| f.orports.iter().map(|a| a.port()))
        .chain(
            net.network()
                .authorities()
                .iter()
                .flat_map(|a| a.dir_addrs.iter().map(|d| d.port())),
        )
        .collect();
    let r = (|| {
        let dir = work.path().join("tor-app");
        let cfg = write_config(&dir, "tor", &base, &ca.ca_pem, &tor_section(&net));
        // The binary builds its arti configuration from this file: check it
        // names only the private network before anything starts.
        let parsed = onionpkg_config::load_fetcher(&cfg)?;
        let arti_cfg =
            onionpkg_net::tor::client_config(&onionpkg_net::tor::TorSettings::from(&parsed.tor))?;
        check_private(&arti_cfg)?;
        let connects = init_and_traced_download(&cfg, &dir, &tree)?;
        // Relays' OR ports are not all fallbacks: accept any 127.0.0.1 port
        // of the network's range but the mirror's.
        let n = only_tor(&connects, &|p| p != mirror_port && !EXIT_PORTS.contains(&p))?;
        ensure!(n > 0, "no connection seen at all: is the trace empty?");
        Ok(format!(
            "{n} connection(s), all to 127.0.0.1 tor ports (known relay/dir ports {relay_ports:?}); no UDP"
        ))
    })();
    report("tor mode: traced connections", r);

    // A repository published entirely through onionpkg-signer, downloaded
    // and verified in tor mode.
    let r = signed::fetch_over_tor(&net, &rt, work.path(), &ca, &signer_bin());
    report("tor mode: a repository published through the signer", r);

    // The DNS announcement through Tor: DNS over TCP in a Tor stream, via the
    // exit, to the announcement server; no UDP at all, and no mirror asked.
    let r = (|| {
        let dns_port = lease(EXIT_PORTS)?;
        let zone = onionpkg_announce::serve::AnnounceZone::new(
            "example.org",
            "_update.example.org",
            60,
            None,
        )?;
        let repo = RepoDir::new(&tree);
        let keys = KeyDir::new(work.path().join("keys"), None);
        let text = repo.announce(
            &keys,
            "_update.example.org",
            "stable",
            None,
            jiff::Timestamp::now(),
        )?;
        let dns = rt.block_on(async {
            zone.set_record(Some(&text)).await?;
            onionpkg_announce::serve::listen(&zone, &[dns_port.addr()]).await
        })?;
        let dir = work.path().join("tor-app");
        let extra = format!(
            "{}[announcement]\nname = \"_update.example.org\"\nresolver = \"{}\"\n",
            tor_section(&net),
            dns_port.addr()
        );
        let cfg = write_config(&dir, "tor", &base, &ca.ca_pem, &extra);
        let trace = dir.join("trace-check");
        let out = run_fetch(&cfg, &["check"], Some(&trace))?;
        rt.block_on(dns.shutdown())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.contains("no mirror contacted"),
            "check: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (connects, udp) = traced_connects(&trace);
        ensure!(!udp, "a datagram socket was opened");
        let n = only_tor(&connects, &|p| {
            p != mirror_port && p != dns_port.port() && !EXIT_PORTS.contains(&p)
        })?;
        ensure!(n > 0, "no connection seen at all: is the trace empty?");
        Ok(format!(
            "up to date by the announcement through the exit; {n} connection(s), all to tor ports; no UDP"
        ))
    })();
    report("tor mode: DNS announcement check", r);

    let r = (|| {
        let dir = work.path().join("tor-rss");
        let cfg = write_config(&dir, "tor", &base, &ca.ca_pem, &tor_section(&net));
        init(&cfg, &tree)?;
        let mut child = Command::new(fetch_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["download", "--all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let status = format!("/proc/{}/status", child.id());
        let deadline = Instant::now() + RUN_DEADLINE;
        let mut peak_kib = 0u64;
        let started = Instant::now();
        let exit = loop {
            // VmHWM only grows; the last reading before exit is the peak.
            if let Ok(s) = std::fs::read_to_string(&status)
                && let Some(v) = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))
            {
                peak_kib =
                    peak_kib.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
            }
            if let Some(e) = child.try_wait()? {
                break e;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("tor-mode download did not finish");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        ensure!(exit.success(), "tor-mode download failed");
        ensure!(peak_kib > 0, "no VmHWM reading");
        Ok(format!(
            "peak RSS {:.1} MiB for a whole tor-mode update and download ({:.1}s, cold tor state)",
            peak_kib as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        ))
    })();
    report("tor mode: peak RSS", r);

    // The consensus cross-checks the clock: a clock 2 hours slow (arti itself
    // accepts a consensus up to a day early) is refused right after the Tor
    // bootstrap, before any mirror is asked; the same run with a true clock
    // succeeds.
    let r = (|| {
        let real = jiff::Timestamp::now();
        let hour = jiff::SignedDuration::from_hours(1);
        let close = |a: jiff::Timestamp, b: jiff::Timestamp| {
            a.duration_since(b).abs() < jiff::SignedDuration::from_mins(5)
        };
        // First, that libfaketime does set this binary's clock back: its
        // clock is refused against a floor one hour ago only when skewed.
        let probe = work.path().join("clock-probe");
        let cfg = write_config(&probe, "tor", &base, &ca.ca_pem, &tor_section(&net));
        std::fs::create_dir_all(probe.join("state"))?;
        std::fs::write(
            probe.join("state/time-floor.json"),
            serde_json::json!({ "floor": real - hour }).to_string(),
        )?;
        let clock_of = |out: std::process::Output| -> anyhow::Result<String> {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("status: {}", String::from_utf8_lossy(&out.stderr)))?;
            Ok(v["clock"].as_str().unwrap_or_default().to_owned())
        };
        let plain = clock_of(run_fetch(&cfg, &["--json", "status"], None)?)?;
        ensure!(plain == "ok", "clock without faketime: {plain}");
        let skewed = clock_of(run_fetch_skewed(&cfg, &["--json", "status"], "-2h")?)?;
        let reads = clock_reads(&skewed);
        ensure!(
            reads.is_some_and(|t| close(t, real - hour * 2)),
            "libfaketime does not set the binary's clock 2 hours back: {skewed}"
        );

        // The consensus valid-after arti hands out is a recent, signed time.
        let arti = rt.block_on(bootstrap_arti(
            net.network(),
            &work.path().join("arti-clock"),
            BOOTSTRAP_TIMEOUT,
        ))?;
        let valid_after = onionpkg_net::tor::consensus_valid_after(&arti)
            .context("no consensus after bootstrap")?;
        ensure!(
            valid_after <= jiff::Timestamp::now() && close(valid_after, real),
            "consensus valid-after {valid_after}, now {real}"
        );

        let dir = work.path().join("tor-clock");
        let cfg = write_config(&dir, "tor", &base, &ca.ca_pem, &tor_section(&net));
        init(&cfg, &tree)?;
        let before = jiff::Timestamp::now();
        let out = run_fetch_skewed(&cfg, &["update"], "-2h")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(5),
            "update with the clock 2 hours slow: {:?}, expected exit 5\n{stderr}",
            out.status.code()
        );
        // The floor was raised to the consensus' valid-after less the slack
        // an honest early consensus needs, and persisted.
        let floor: jiff::Timestamp = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(dir.join("state/time-floor.json"))?,
        )?["floor"]
            .as_str()
            .context("no floor")?
            .parse()?;
        ensure!(
            floor <= jiff::Timestamp::now() && close(floor + hour, before),
            "floor {floor} is not a consensus time of this network (now {before})"
        );
        let want = format!(
            "but signed metadata issued at {floor} was already seen: the system clock is behind"
        );
        ensure!(
            stderr.contains("error: the system clock reads ") && stderr.contains(&want),
            "message: {stderr}"
        );
        ensure!(
            clock_reads(&stderr).is_some_and(|t| close(t, before - hour * 2)),
            "the message does not show the skewed clock: {stderr}"
        );
        ensure!(
            !dir.join("state/metadata/timestamp.json").exists(),
            "metadata was fetched from a mirror despite the clock"
        );
        let out = run_fetch(&cfg, &["update"], None)?;
        ensure!(
            out.status.success() && dir.join("state/metadata/timestamp.json").exists(),
            "update with a true clock: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let refusal = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or("");
        Ok(format!(
            "exit 5 against the consensus valid-after {floor} ({refusal}); fine with a true clock"
        ))
    })();
    report("tor mode: clock behind the consensus", r);

    rt.shutdown_timeout(Duration::from_secs(5));
    let left = net.shutdown();
    assert!(left.is_empty(), "tor processes left: {left:?}");
    assert!(failures.is_empty(), "failed: {failures:?}");
}
