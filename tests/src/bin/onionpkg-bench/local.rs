//! The benchmarks on loopback: target verification against sha256sum,
//! metadata bytes per update by repository size, clearnet serving against
//! nginx, the mirror's memory under 200 clients, and the idle update check
//! against polling.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_tests::testnet::ports::{TOR_PORTS, lease};
use onionpkg_trust::metadata::{Client, FsRepository, Repository};
use sigstore_tuf::transport::FetchFuture;

use crate::report::{Chart, Report, Row, fmt_num};
use crate::util::{GRACE, Nginx, Proc, Relay, Tree, curl, median, mkdir, output, wait_for_port};
use onionpkg_testkit::TestCa;

const MIB: f64 = 1024.0 * 1024.0;

/// SHA-256 verification of one large target, as sync and the fetcher do it,
/// against `sha256sum` on the same file.
pub(crate) fn verify(r: &mut Report, work: &Path, smoke: bool, runs: usize) -> anyhow::Result<()> {
    let size: usize = if smoke { 16 << 20 } else { 512 << 20 };
    let dir = mkdir(work.join("verify"))?;
    let repo = RepoDir::new(dir.join("repo"));
    let keys = KeyDir::new(dir.join("keys"), None);
    let now = jiff::Timestamp::now();
    repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)?;
    let input = dir.join("big.bin");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        for i in 0..size >> 20 {
            f.write_all(&crate::util::content(1 << 20, i as u64))?;
        }
        f.flush()?;
    }
    let entry = repo.add_target(&input, "big/big.bin", &Default::default(), "targets")?;
    repo.publish(&keys, &Expiries::default(), &[], now)?;
    std::fs::remove_file(&input)?;
    let sha = entry["hashes"]["sha256"].as_str().unwrap_or_default();
    let file = repo.targets_dir().join(format!("big/{sha}.big.bin"));
    let root = std::fs::read(repo.metadata_dir().join("1.root.json"))?;
    // Once each, so both read from the page cache.
    let sha256sum = || {
        let mut c = Command::new("sha256sum");
        c.arg(&file);
        c
    };
    output(sha256sum(), Duration::from_secs(600))?;
    onionpkg_repo::verify::verify_tree(repo.dir(), &root, now)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let out = output(sha256sum(), Duration::from_secs(600))?;
        theirs.push(size as f64 / MIB / t.elapsed().as_secs_f64());
        ensure!(out.starts_with(sha), "sha256sum disagrees: {out}");
        let t = Instant::now();
        let report = onionpkg_repo::verify::verify_tree(repo.dir(), &root, now)?;
        ours.push(size as f64 / MIB / t.elapsed().as_secs_f64());
        ensure!(report.targets.len() == 1);
    }
    r.ratio_row(
        "Target verification",
        format!(
            "SHA-256 verification of a {} MiB target, read from the page cache",
            size >> 20
        ),
        median(ours),
        "sha256sum (GNU coreutils) on the same file",
        median(theirs),
        "MiB/s",
        0.9,
    );
    Ok(())
}

/// A repository that counts the bytes it hands out.
struct Counting {
    inner: FsRepository,
    bytes: Arc<AtomicU64>,
    files: Arc<std::sync::Mutex<Vec<(String, u64)>>>,
}

impl Counting {
    fn count<'a>(&'a self, name: &'a str, f: FetchFuture<'a>) -> FetchFuture<'a> {
        Box::pin(async move {
            let got = f.await?;
            if let Some(b) = &got {
                self.bytes.fetch_add(b.len() as u64, Ordering::SeqCst);
                if let Ok(mut files) = self.files.lock() {
                    files.push((name.to_owned(), b.len() as u64));
                }
            }
            Ok(got)
        })
    }
}

impl Repository for Counting {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.count(name, self.inner.fetch_metadata(name, max_length))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.count(path, self.inner.fetch_target(path, max_length))
    }
}

/// The metadata an appliance downloads for an update that adds one package,
/// in repositories of 100, 1,000 and 10,000 packages (the default 128 hashed
/// bins), when it keeps every package current (`download --all`).
pub(crate) fn metadata(r: &mut Report, work: &Path, smoke: bool) -> anyhow::Result<()> {
    let sizes: &[usize] = if smoke {
        &[10, 100]
    } else {
        &[100, 1000, 10_000]
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut bars = Vec::new();
    for &n in sizes {
        let dir = mkdir(work.join(format!("meta-{n}")))?;
        let repo = RepoDir::new(dir.join("repo"));
        let keys = KeyDir::new(dir.join("keys"), None);
        let now = jiff::Timestamp::now();
        repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)?;
        let inputs = mkdir(dir.join("inputs"))?;
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            let f = inputs.join(format!("{i}"));
            std::fs::write(&f, crate::util::content(64, i as u64))?;
            files.push((f, format!("pkg/package-{i:05}-1.0.tar")));
        }
        let refs: Vec<(&Path, &str)> = files
            .iter()
            .map(|(f, p)| (f.as_path(), p.as_str()))
            .collect();
        repo.add_targets(&refs, &Default::default(), "targets")?;
        repo.publish(&keys, &Expiries::default(), &[], now)?;
        let root = std::fs::read(repo.metadata_dir().join("1.root.json"))?;
        let store = dir.join("store");
        let refresh = |label: &str| -> anyhow::Result<(u64, Vec<(String, u64)>)> {
            let counting = Counting {
                inner: FsRepository::from_tree(repo.dir()),
                bytes: Arc::default(),
                files: Arc::default(),
            };
            let (bytes, list) = (Arc::clone(&counting.bytes), Arc::clone(&counting.files));
            let mut client = Client::new(&root, Some(&store), counting)?;
            // What `onionpkg-fetch download --all` does: refresh, then every
            // bin (those unchanged since the last run come from the store).
            rt.block_on(async {
                let now = jiff::Timestamp::now();
                client.refresh(now).await?;
                client.load_all_delegated(now).await
            })
            .with_context(|| format!("refresh {label}"))?;
            let files = list.lock().map(|l| l.clone()).unwrap_or_default();
            Ok((bytes.load(Ordering::SeqCst), files))
        };
        refresh("before")?;
        let f = inputs.join("new");
        std::fs::write(&f, crate::util::content(64, 1 << 40))?;
        repo.add_target(
            &f,
            "pkg/package-new-1.0.tar",
            &Default::default(),
            "targets",
        )?;
        repo.publish(&keys, &Expiries::default(), &[], jiff::Timestamp::now())?;
        let (bytes, fetched) = refresh("after")?;
        let detail: Vec<String> = fetched
            .iter()
            .map(|(name, b)| format!("{name} {}", fmt_num(*b as f64 / 1024.0, "KiB")))
            .collect();
        let kib = bytes as f64 / 1024.0;
        let goal_applies = n >= 10_000;
        r.plain_row(Row {
            section: "Metadata per update",
            what: format!("1-package update in a repository of {n} packages"),
            ours: fmt_num(kib, "KiB"),
            baseline: format!("fetched: {}", detail.join(", ")),
            theirs: "—".into(),
            ratio: None,
            goal: if goal_applies {
                "≤ 50 KB at 10k".into()
            } else {
                "grows with what changed".into()
            },
            met: goal_applies.then_some(bytes <= 50_000),
        });
        bars.push((format!("{n} packages"), kib, 0.0));
    }
    r.charts.push(Chart {
        file: "metadata.svg",
        title: "Metadata downloaded for a 1-package update".into(),
        unit: "KiB",
        bars,
        series: ("onionpkg", ""),
    });
    Ok(())
}

/// A mirror process serving `tree` on clearnet HTTP and HTTPS (test CA).
pub(crate) struct MirrorProc {
    /// Plain HTTP.
    pub(crate) http: SocketAddr,
    /// HTTPS.
    pub(crate) https: SocketAddr,
    /// The CA certificate (PEM).
    pub(crate) ca_pem: String,
    /// The process.
    pub(crate) proc: Proc,
}

impl MirrorProc {
    /// Starts `onionpkg-mirror serve`.
    pub(crate) fn start(bins: &Path, dir: &Path, tree: &Path) -> anyhow::Result<Self> {
        // Distinct names: OpenSSL takes a leaf named like its issuer for
        // self-signed (the test CA's names always differ).
        let ca = TestCa::for_names("onionpkg bench CA", &["127.0.0.1"]);
        ca.write(dir, "")?;
        let (l1, l2) = (lease(TOR_PORTS)?, lease(TOR_PORTS)?);
        let cfg = dir.join("mirror.toml");
        // wrk's connections all come from 127.0.0.1: the per-client cap
        // would turn most away, which is not what is measured (nginx has
        // no such cap either).
        std::fs::write(
            &cfg,
            format!(
                "root = {:?}\nstate_dir = \"state\"\n[listen]\nhttp = \"{}\"\nhttps = \"{}\"\n\
                 [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[limits]\nper_client = 1024\n",
                tree.display().to_string(),
                l1.addr(),
                l2.addr()
            ),
        )?;
        let mut cmd = Command::new(bins.join("onionpkg-mirror"));
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn");
        let proc = Proc::spawn("onionpkg-mirror", cmd, &dir.join("mirror.log"))?.with_grace(GRACE);
        let (http, https) = (l1.addr(), l2.addr());
        drop((l1, l2));
        wait_for_port(http)?;
        wait_for_port(https)?;
        Ok(Self {
            http,
            https,
            ca_pem: ca.ca_pem,
            proc,
        })
    }
}

/// Requests per second of `wrk` against `url`.
fn wrk(url: &str, conns: u32, secs: u32) -> anyhow::Result<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), url]);
    let out = output(cmd, Duration::from_secs(u64::from(secs) + 60))?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("no Requests/sec from wrk")?
        .trim()
        .parse()?;
    let errors = out
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    ensure!(!errors, "wrk saw errors against {url}:\n{out}");
    Ok(rps)
}

/// Clearnet serving against nginx on the same tree, and the mirror's peak
/// memory under 200 clients.
pub(crate) fn clearnet(
    r: &mut Report,
    work: &Path,
    bins: &Path,
    tree: &Tree,
    mirror: &MirrorProc,
    smoke: bool,
    runs: usize,
) -> anyhow::Result<()> {
    let nginx = Nginx::start(
        &mkdir(work.join("nginx-clear"))?,
        tree.repo.dir(),
        TOR_PORTS,
    )?;
    let _ = bins;
    let small = tree.served_path("pkg/1k.bin");
    let secs = if smoke { 1 } else { 5 };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(wrk(&format!("http://{}/{small}", mirror.http), 64, secs)?);
        theirs.push(wrk(&format!("http://{}/{small}", nginx.addr), 64, secs)?);
    }
    let (o, t) = (median(ours), median(theirs));
    r.ratio_row(
        "Clearnet serving",
        "1 KiB file, requests per second (wrk, 2 threads, 64 connections)",
        o,
        "nginx, same tree, 2 workers, sendfile",
        t,
        "req/s",
        1.0,
    );
    let mut bars = vec![("1 KiB req/s (÷100)".to_owned(), o / 100.0, t / 100.0)];
    let (big, len) = tree
        .served
        .iter()
        .max_by_key(|(_, _, len)| *len)
        .map(|(_, s, l)| (s.clone(), *l))
        .context("no payload")?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (_, total, got) = curl(
            &format!("http://{}/{big}", mirror.http),
            None,
            Duration::from_secs(120),
        )?;
        ensure!(got == len as u64);
        ours.push(len as f64 / MIB / total);
        let (_, total, _) = curl(
            &format!("http://{}/{big}", nginx.addr),
            None,
            Duration::from_secs(120),
        )?;
        theirs.push(len as f64 / MIB / total);
    }
    let (o, t) = (median(ours), median(theirs));
    r.ratio_row(
        "Clearnet serving",
        format!("{} MiB file, throughput (curl)", len >> 20),
        o,
        "nginx, same tree",
        t,
        "MiB/s",
        0.9,
    );
    bars.push((format!("{} MiB MiB/s", len >> 20), o, t));
    r.charts.push(Chart {
        file: "clearnet.svg",
        title: "Clearnet serving on loopback".into(),
        unit: "",
        bars,
        series: ("onionpkg-mirror", "nginx"),
    });
    wrk(&format!("http://{}/{small}", mirror.http), 200, secs.max(3))?;
    let kib = mirror.proc.peak_rss_kib()?;
    r.plain_row(Row {
        section: "Memory",
        what: "onionpkg-mirror peak RSS after 200 concurrent clients (wrk -c200)".into(),
        ours: fmt_num(kib as f64 / 1024.0, "MiB"),
        baseline: "—".into(),
        theirs: "—".into(),
        ratio: None,
        goal: "reported".into(),
        met: None,
    });
    Ok(())
}

/// The idle update check: what the fetcher's DNS check costs, against
/// polling `timestamp.json` from a mirror and an apt-style index poll.
pub(crate) fn idle(
    r: &mut Report,
    work: &Path,
    bins: &Path,
    tree: &Tree,
    mirror: &MirrorProc,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let dir = mkdir(work.join("idle"))?;
    // The announcement, served by the built-in authoritative server.
    let dns_lease = lease(TOR_PORTS)?;
    let text = tree.repo.announce(
        &tree.keys,
        "_onionpkg.bench.test",
        "stable",
        None,
        jiff::Timestamp::now(),
    )?;
    let listening = rt.block_on(async {
        let zone = onionpkg_announce::serve::AnnounceZone::new(
            "bench.test",
            "_onionpkg.bench.test",
            300,
            None,
        )?;
        zone.set_record(Some(&text)).await?;
        // The relay below carries UDP only: a bound that lets the record
        // through in one datagram, rather than the default 3 × the query,
        // which would send the fetcher to TCP (see docs/DNS.md).
        let limits = onionpkg_announce::serve::ServeLimits {
            udp_amplification: 10,
            ..Default::default()
        };
        let l = onionpkg_announce::serve::listen_with(&zone, &[dns_lease.addr()], &limits).await?;
        anyhow::Ok((zone, l))
    })?;
    let dns = Relay::udp(rt, dns_lease.addr())?;
    let to_mirror = Relay::tcp(rt, mirror.https)?;
    std::fs::write(dir.join("ca.pem"), &mirror.ca_pem)?;
    std::fs::copy(tree.root_file(), dir.join("root.json"))?;
    let cfg = dir.join("fetcher.toml");
    std::fs::write(
        &cfg,
        format!(
            "trust_root = \"root.json\"\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
             output_dir = \"out\"\ntransport = \"https\"\nmain_mirrors = [\"https://{}/\"]\n\
             [https]\nextra_ca = \"ca.pem\"\n\
             [announcement]\nname = \"_onionpkg.bench.test\"\nresolver = \"{}\"\n",
            to_mirror.addr, dns.addr
        ),
    )?;
    let fetch = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let out = Command::new(bins.join("onionpkg-fetch"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()?;
        Ok(out)
    };
    let ok = |o: std::process::Output| -> anyhow::Result<()> {
        ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Ok(())
    };
    let root = dir.join("root.json").display().to_string();
    ok(fetch(&["init", "--root", &root])?)?;
    // A completed download: `check` reports a fetched timestamp whose
    // downloads did not finish as an update still to be had.
    ok(fetch(&["download", "--all"])?)?;
    dns.counts.take();
    to_mirror.counts.take();
    let out = fetch(&["check"])?;
    ensure!(
        out.status.code() == Some(0),
        "check exited {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (q, a, _) = dns.counts.take();
    let (mu, md, mconns) = to_mirror.counts.take();
    let ours = (q + a + mu + md) as f64;
    r.plain_row(Row {
        section: "Idle update check",
        what: "onionpkg-fetch check, nothing new (DNS announcement)".into(),
        ours: format!(
            "{mconns} mirror connections, {} B ({q} B query, {a} B answer)",
            q + a + mu + md
        ),
        baseline: "—".into(),
        theirs: "—".into(),
        ratio: None,
        goal: "0 mirror connections, ≤ 1 KB".into(),
        met: Some(mconns == 0 && ours <= 1000.0),
    });
    // Polling timestamp.json from the mirror over HTTPS.
    let url = format!("https://{}/metadata/timestamp.json", to_mirror.addr);
    let mut cmd = Command::new("curl");
    cmd.args(["-q", "-sS", "-f", "-o", "/dev/null", "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(&url);
    output(cmd, Duration::from_secs(30))?;
    let polled = |r: &mut Report, baseline: &str, (u, d, c): (u64, u64, u64)| {
        r.plain_row(Row {
            section: "Idle update check",
            what: "the same answer by polling".into(),
            ours: format!("0 connections, {} B", q + a),
            baseline: baseline.into(),
            theirs: format!("{c} connection, {} B", u + d),
            ratio: Some((u + d) as f64 / ours),
            goal: "—".into(),
            met: None,
        });
    };
    polled(
        r,
        "curl GET timestamp.json from the mirror over HTTPS (TLS included)",
        to_mirror.counts.take(),
    );
    // An apt-style poll of a 100 KB index from nginx, whole and conditional.
    let nginx = Nginx::start(&mkdir(work.join("nginx-idle"))?, tree.repo.dir(), TOR_PORTS)?;
    let to_nginx = Relay::tcp(rt, nginx.addr)?;
    let index = format!("http://{}/dists/stable/InRelease", to_nginx.addr);
    curl(&index, None, Duration::from_secs(30))?;
    polled(
        r,
        "an apt-style poll: GET a 100 KB index (InRelease) over HTTP",
        to_nginx.counts.take(),
    );
    let mut cmd = Command::new("curl");
    cmd.args(["-q", "-sS", "-o", "/dev/null", "-z"])
        .arg(tree.repo.dir().join("dists/stable/InRelease"))
        .arg(&index);
    output(cmd, Duration::from_secs(30))?;
    polled(
        r,
        "the apt-style poll with If-Modified-Since (304 Not Modified)",
        to_nginx.counts.take(),
    );
    rt.block_on(listening.1.shutdown())?;
    drop(dns_lease);
    Ok(())
}
