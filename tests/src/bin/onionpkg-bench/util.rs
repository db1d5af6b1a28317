//! Plumbing of the benchmarks: child processes that die with the bench,
//! counting relays, medians, timed commands, the signed tree they all serve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_tests::testnet::ports::{PortLease, lease};

/// Bound on every wait for a server to come up.
pub(crate) const STARTUP: Duration = Duration::from_secs(60);

/// A bench server's process, stopped when dropped.
pub(crate) use onionpkg_testkit::Proc;

/// How long a bench server may take to stop after SIGTERM (nginx stops its
/// workers in that time) before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// Waits until something accepts TCP connections at `addr`.
pub(crate) fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        ensure!(start.elapsed() < STARTUP, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `cmd` to completion within `deadline`; its stdout, or an error with
/// its stderr.
pub(crate) fn output(mut cmd: Command, deadline: Duration) -> anyhow::Result<String> {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(deadline) {
        Ok(out) => out?,
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            bail!("{what} did not finish within {deadline:?}");
        }
    };
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bytes and connections through a [`Relay`].
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Bytes from clients to the server.
    pub(crate) up: AtomicU64,
    /// Bytes from the server to clients.
    pub(crate) down: AtomicU64,
    /// Connections (TCP) or datagrams (UDP) from clients.
    pub(crate) connections: AtomicU64,
}

impl Counts {
    /// Up and down bytes and connections so far, and resets them.
    pub(crate) fn take(&self) -> (u64, u64, u64) {
        (
            self.up.swap(0, Ordering::SeqCst),
            self.down.swap(0, Ordering::SeqCst),
            self.connections.swap(0, Ordering::SeqCst),
        )
    }
}

/// A loopback relay in front of a server that counts what crosses it: the
/// application bytes (TCP payload or UDP datagrams) in both directions.
pub(crate) struct Relay {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    /// What crossed it.
    pub(crate) counts: Arc<Counts>,
}

impl Relay {
    /// A TCP relay to `to`, on `rt`.
    pub(crate) fn tcp(rt: &tokio::runtime::Runtime, to: SocketAddr) -> anyhow::Result<Self> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let c = Arc::clone(&counts);
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::SeqCst);
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Counted before each write: once a client has read a
                    // byte, it is in the count.
                    let up = pipe(cr, sw, Arc::clone(&c), true);
                    let down = pipe(sr, cw, c, false);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(Self { addr, counts })
    }

    /// A UDP relay to `to` for one client at a time (a DNS resolver's view).
    pub(crate) fn udp(rt: &tokio::runtime::Runtime, to: SocketAddr) -> anyhow::Result<Self> {
        let front = rt.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))?;
        let back = rt.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))?;
        let addr = front.local_addr()?;
        let counts = Arc::new(Counts::default());
        let c = Arc::clone(&counts);
        rt.spawn(async move {
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut client = None;
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut a) => {
                        c.connections.fetch_add(1, Ordering::SeqCst);
                        c.up.fetch_add(n as u64, Ordering::SeqCst);
                        client = Some(from);
                        let _ = back.send_to(&a[..n], to).await;
                    }
                    Ok((n, _)) = back.recv_from(&mut b) => {
                        c.down.fetch_add(n as u64, Ordering::SeqCst);
                        if let Some(cl) = client {
                            let _ = front.send_to(&b[..n], cl).await;
                        }
                    }
                }
            }
        });
        Ok(Self { addr, counts })
    }
}

/// Copies `from` to `to` until EOF, counting bytes as `up` or down.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Counts>,
    up: bool,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let counter = if up { &c.up } else { &c.down };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The payloads served in every benchmark, by target path.
pub(crate) fn payloads(smoke: bool) -> Vec<(&'static str, usize)> {
    let mut v = vec![("pkg/1k.bin", 1024), ("pkg/1m.bin", 1 << 20)];
    if !smoke {
        v.push(("pkg/50m.bin", 50 << 20));
    }
    v
}

/// Deterministic, incompressible-looking bytes.
pub(crate) fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A signed repository with the benchmark payloads, plus a 100 KB
/// apt-style index (`dists/stable/InRelease`, for nginx only).
pub(crate) struct Tree {
    /// The repository (and served tree).
    pub(crate) repo: RepoDir,
    /// Its keys.
    pub(crate) keys: KeyDir,
    /// Served path under the tree of each payload (`targets/pkg/HASH.NAME`).
    pub(crate) served: Vec<(String, String, usize)>,
}

impl Tree {
    /// Builds it in `dir`.
    pub(crate) fn build(dir: &Path, smoke: bool) -> anyhow::Result<Self> {
        let repo = RepoDir::new(dir.join("repo"));
        let keys = KeyDir::new(dir.join("keys"), None);
        let now = jiff::Timestamp::now();
        repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)?;
        let inputs = dir.join("inputs");
        std::fs::create_dir_all(&inputs)?;
        let mut files = Vec::new();
        for (i, (path, len)) in payloads(smoke).into_iter().enumerate() {
            let file = inputs.join(format!("{i}"));
            std::fs::write(&file, content(len, i as u64 + 1))?;
            files.push((file, path, len));
        }
        let refs: Vec<(&Path, &str)> = files.iter().map(|(f, p, _)| (f.as_path(), *p)).collect();
        let entries = repo.add_targets(&refs, &Default::default(), "targets")?;
        repo.publish(&keys, &Expiries::default(), &[], now)?;
        let served = files
            .iter()
            .zip(entries)
            .map(|((_, path, len), entry)| {
                let sha = entry["hashes"]["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
                (
                    path.to_string(),
                    format!("targets/{dir}/{sha}.{base}"),
                    *len,
                )
            })
            .collect();
        let dists = repo.dir().join("dists/stable");
        std::fs::create_dir_all(&dists)?;
        std::fs::write(dists.join("InRelease"), content(100 * 1024, 99))?;
        Ok(Self { repo, keys, served })
    }

    /// The served path of target `path`.
    pub(crate) fn served_path(&self, path: &str) -> &str {
        self.served
            .iter()
            .find(|(p, ..)| p == path)
            .map_or("", |(_, s, _)| s.as_str())
    }

    /// `metadata/1.root.json`.
    pub(crate) fn root_file(&self) -> PathBuf {
        self.repo.metadata_dir().join("1.root.json")
    }
}

/// nginx serving `root` on a leased loopback port, two workers, no logs.
pub(crate) struct Nginx {
    /// Its address.
    pub(crate) addr: SocketAddr,
    _proc: Proc,
    _lease: PortLease,
}

impl Nginx {
    /// Starts it with its files in `dir`; `ports` is the range to lease from.
    pub(crate) fn start(
        dir: &Path,
        root: &Path,
        ports: std::ops::Range<u16>,
    ) -> anyhow::Result<Self> {
        let lease = lease(ports)?;
        let addr = lease.addr();
        std::fs::create_dir_all(dir.join("logs"))?;
        // Running as root, nginx would switch its workers to `nobody`, who
        // cannot read a private temp dir.
        let user = if rustix::process::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\nworker_processes 2;\ndaemon off;\npid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
             \x20 client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             \x20 fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n\
             \x20 scgi_temp_path {dir}/scgi;\n\
             \x20 server {{ listen {addr}; root {root}; }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(find("nginx")?);
        cmd.arg("-c").arg(&conf_path).arg("-p").arg(dir);
        let proc = Proc::spawn("nginx", cmd, &dir.join("logs/stdout.log"))?.with_grace(GRACE);
        wait_for_port(addr)?;
        Ok(Self {
            addr,
            _proc: proc,
            _lease: lease,
        })
    }
}

/// The path of program `name`, from PATH or the sbin directories.
pub(crate) fn find(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not installed (tests/bench.sh installs it)"))
}

/// The directory holding the onionpkg binaries: next to this one.
pub(crate) fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench binary has no directory")?;
    for b in ["onionpkg-fetch", "onionpkg-mirror"] {
        ensure!(
            dir.join(b).is_file(),
            "{b} is not built next to the bench in {}: run `cargo build --bins` with the same profile",
            dir.display()
        );
    }
    Ok(dir.to_owned())
}

/// One `curl` GET of `url` (through `socks` when given): time to first
/// byte and total time in seconds, and bytes received.
pub(crate) fn curl(
    url: &str,
    socks: Option<SocketAddr>,
    timeout: Duration,
) -> anyhow::Result<(f64, f64, u64)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-q", "-sS", "-f", "-o", "/dev/null", "--max-time"])
        .arg(timeout.as_secs().to_string())
        .args(["-w", "%{time_starttransfer} %{time_total} %{size_download}"]);
    if let Some(s) = socks {
        cmd.arg("--socks5-hostname").arg(s.to_string());
    }
    cmd.arg(url);
    let out = output(cmd, timeout + Duration::from_secs(5))?;
    let mut it = out.split_whitespace();
    let mut next =
        || -> anyhow::Result<f64> { Ok(it.next().context("curl printed too little")?.parse()?) };
    let (ttfb, total, size) = (next()?, next()?, next()?);
    Ok((ttfb, total, size as u64))
}

/// Makes `dir` and returns it.
pub(crate) fn mkdir(dir: PathBuf) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
