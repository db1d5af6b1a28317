//! The benchmarks on the private Tor network: onion serving by the mirror
//! (arti's onion service) against a C tor onion service in front of nginx,
//! both fetched by curl through the same C tor client; `onionpkg-fetch`
//! against curl through C tor's SOCKS port on the same mirror and file; and
//! the fetcher's peak memory during a Tor update.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use onionpkg_tests::testnet::ports::TOR_PORTS;
use onionpkg_tests::testnet::{TestNet, TestNetOptions};

use crate::report::{Chart, Report, Row, fmt_num};
use onionpkg_testkit::retry::{EVERY, retry};

use crate::util::{GRACE, Nginx, Proc, Tree, curl, median, mkdir, output};

const MIB: f64 = 1024.0 * 1024.0;
/// How long an onion service may take to become reachable.
const ONION_DEADLINE: Duration = Duration::from_secs(300);
/// One transfer through Tor.
const TRANSFER: Duration = Duration::from_secs(300);

/// The `[tor]` section that joins the private network.
fn tor_section(net: &TestNet) -> String {
    net.network().config_toml("120s")
}

/// GETs `url` through `socks` until it answers, within the onion deadline;
/// makes C tor forget stale descriptors every few attempts.
fn reach(net: &TestNet, socks: SocketAddr, url: &str) -> anyhow::Result<Duration> {
    let r = retry(ONION_DEADLINE, EVERY, |attempt| {
        if attempt > 1 && (attempt - 1) % 3 == 0 {
            let _ = net.client_newnym();
        }
        curl(url, Some(socks), Duration::from_secs(30))
    })
    .map_err(|g| {
        anyhow::anyhow!(
            "{url} unreachable after {} attempts: {}",
            g.attempts,
            g.last
        )
    })?;
    Ok(r.elapsed)
}

/// Attempts per transfer: a circuit to an onion service can fail on a busy
/// one-host network, C tor may hold a stale descriptor, and when the
/// private network's six-minute HS time period rolls over, clients find no
/// descriptor for a while ("No more HSDir available"; up to about 150 s
/// were seen).
const ATTEMPTS: u32 = 8;

/// The pause before attempt 2, 3, ...: about three minutes in all, to
/// outlast a time-period rollover.
const BACKOFF_SECS: [u64; 7] = [2, 5, 10, 20, 40, 60, 60];

/// Retries `f` up to [`ATTEMPTS`] times, making C tor forget stale
/// descriptors in between; counts the retries in `retries`.
fn retrying<T>(
    net: &TestNet,
    retries: &mut u32,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= ATTEMPTS => return Err(e),
            Err(e) => {
                eprintln!("    attempt {attempt} failed, retrying: {e:#}");
                *retries += 1;
                attempt += 1;
                let _ = net.client_newnym();
                let pause = BACKOFF_SECS[(attempt as usize - 2).min(BACKOFF_SECS.len() - 1)];
                std::thread::sleep(Duration::from_secs(pause));
            }
        }
    }
}

/// The onion address the mirror recorded in its state, once launched.
fn mirror_onion(bins: &Path, cfg: &Path) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let mut cmd = Command::new(bins.join("onionpkg-mirror"));
        cmd.args(["status", "--json", "--config"]).arg(cfg);
        if let Ok(out) = output(cmd, Duration::from_secs(30))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&out)
            && let Some(a) = v["onion_address"].as_str()
        {
            return Ok(a.to_owned());
        }
        ensure!(
            start.elapsed() < ONION_DEADLINE,
            "the mirror recorded no onion address"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A copy of `cmd` (program, arguments, environment), to run again.
fn clone_cmd(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Runs the Tor benchmarks.
pub(crate) fn run(
    r: &mut Report,
    work: &Path,
    bins: &Path,
    tree: &Tree,
    runs: usize,
) -> anyhow::Result<()> {
    let nginx = Nginx::start(
        &mkdir(work.join("nginx-onion"))?,
        tree.repo.dir(),
        TOR_PORTS,
    )?;
    let net = TestNet::start(&TestNetOptions {
        onion_target: Some(nginx.addr),
        ..TestNetOptions::default()
    })?;
    r.facts.push(format!(
        "Private Tor network (3 authorities, 4 relays, a C tor client and a C tor onion host) usable after {:.1} s",
        net.usable_after().as_secs_f64()
    ));
    let on = OnNet {
        work,
        bins,
        tree,
        runs,
        net: &net,
    };
    let result = run_on(r, &on);
    if result.is_err() {
        net.print_log_tails(20);
    }
    let left = net.shutdown();
    ensure!(left.is_empty(), "tor processes left: {left:?}");
    result
}

/// What every Tor benchmark of one run works with.
#[derive(Clone, Copy)]
struct OnNet<'a> {
    /// The scratch directory.
    work: &'a Path,
    /// Where the binaries under test are.
    bins: &'a Path,
    /// The repository served.
    tree: &'a Tree,
    /// How many times each measurement is taken.
    runs: usize,
    /// The private Tor network.
    net: &'a TestNet,
}

/// The whole Tor part of one run.
fn run_on(r: &mut Report, on: &OnNet<'_>) -> anyhow::Result<()> {
    let OnNet {
        work,
        bins,
        tree,
        runs,
        net,
    } = *on;
    let socks = net.socks_addr().context("no C tor client")?;
    let theirs_onion = net
        .c_onion_address()
        .context("no C tor onion host")?
        .to_owned();
    let dir = mkdir(work.join("onion-mirror"))?;
    let cfg = dir.join("mirror.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\nstate_dir = \"state\"\n[onion]\nenabled = true\nnickname = \"bench\"\n{}",
            tree.repo.dir().display().to_string(),
            tor_section(net)
        ),
    )?;
    let mut cmd = Command::new(bins.join("onionpkg-mirror"));
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn");
    let mirror =
        Proc::spawn("onionpkg-mirror (onion)", cmd, &dir.join("mirror.log"))?.with_grace(GRACE);
    let ours_onion = mirror_onion(bins, &cfg)?;
    let probe = "metadata/timestamp.json";
    let t_ours = reach(net, socks, &format!("http://{ours_onion}/{probe}"))?;
    let t_theirs = reach(net, socks, &format!("http://{theirs_onion}/{probe}"))?;
    r.facts.push(format!(
        "Onion services reachable after {:.1} s (onionpkg-mirror, arti) and {:.1} s (C tor + nginx)",
        t_ours.as_secs_f64(),
        t_theirs.as_secs_f64()
    ));

    let (mut tput_bars, mut ttfb_bars) = (Vec::new(), Vec::new());
    let mut retries = 0u32;
    for (path, served, len) in &tree.served {
        let (mut ours_t, mut theirs_t, mut ours_f, mut theirs_f) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            for (onion, totals, firsts) in [
                (&ours_onion, &mut ours_t, &mut ours_f),
                (&theirs_onion, &mut theirs_t, &mut theirs_f),
            ] {
                let url = format!("http://{onion}/{served}");
                let (ttfb, total, got) =
                    retrying(net, &mut retries, || curl(&url, Some(socks), TRANSFER))?;
                ensure!(got == *len as u64, "{path}: {got} bytes");
                totals.push(*len as f64 / MIB / total);
                firsts.push(ttfb);
            }
        }
        let size = if *len >= 1 << 20 {
            format!("{} MiB", len >> 20)
        } else {
            format!("{} KiB", len >> 10)
        };
        let (o, t) = (median(ours_t), median(theirs_t));
        r.ratio_row(
            "Onion serving",
            format!("{size}: throughput"),
            o,
            "C tor onion service in front of nginx; same network, same C tor client (curl)",
            t,
            "MiB/s",
            1.0,
        );
        tput_bars.push((size.clone(), o, t));
        let (o, t) = (median(ours_f), median(theirs_f));
        r.time_row(
            "Onion serving",
            format!("{size}: time to first byte"),
            o,
            "C tor onion service in front of nginx",
            t,
            1.0,
        );
        ttfb_bars.push((size, o * 1000.0, t * 1000.0));
    }
    r.charts.push(Chart {
        file: "onion-throughput.svg",
        title: "Onion serving throughput (higher is better)".into(),
        unit: "MiB/s",
        bars: tput_bars,
        series: (
            "onionpkg-mirror (arti onion service)",
            "C tor onion service + nginx",
        ),
    });
    r.charts.push(Chart {
        file: "onion-ttfb.svg",
        title: "Onion time to first byte (lower is better)".into(),
        unit: "ms",
        bars: ttfb_bars,
        series: (
            "onionpkg-mirror (arti onion service)",
            "C tor onion service + nginx",
        ),
    });

    let result = fetcher_vs_curl(r, on, socks, &ours_onion, &mut retries);
    r.facts.push(format!(
        "Tor transfers retried after a failed attempt: {retries} (at most {} attempts each)",
        ATTEMPTS
    ));
    drop(mirror);
    result
}

fn fetcher_vs_curl(
    r: &mut Report,
    on: &OnNet<'_>,
    socks: SocketAddr,
    onion: &str,
    retries: &mut u32,
) -> anyhow::Result<()> {
    let (work, bins, tree, runs, net) = (on.work, on.bins, on.tree, on.runs, on.net);
    let (path, served, len) = tree
        .served
        .iter()
        .max_by_key(|(_, _, len)| *len)
        .cloned()
        .context("no payload")?;
    let mut modes = Vec::new();
    for mode in ["tor", "socks"] {
        let dir = mkdir(work.join(format!("fetch-{mode}")))?;
        std::fs::copy(tree.root_file(), dir.join("root.json"))?;
        let extra = if mode == "tor" {
            tor_section(net)
        } else {
            format!("[socks]\naddr = \"{socks}\"\n")
        };
        let cfg = dir.join("fetcher.toml");
        std::fs::write(
            &cfg,
            format!(
                "trust_root = \"root.json\"\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
                 output_dir = \"out\"\ntransport = \"{mode}\"\nmain_mirrors = [\"http://{onion}/\"]\n\
                 [download]\ndeadline = \"10m\"\n{extra}"
            ),
        )?;
        let mut cmd = Command::new(bins.join("onionpkg-fetch"));
        cmd.arg("--config")
            .arg(&cfg)
            .args(["init", "--root"])
            .arg(dir.join("root.json"));
        output(cmd, Duration::from_secs(30))?;
        modes.push((mode, dir, cfg));
    }
    let time_file = work.join("time.out");
    let (mut tor_s, mut socks_s, mut curl_s, mut rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for (mode, dir, cfg) in &modes {
            let _ = std::fs::remove_dir_all(dir.join("out"));
            let mut cmd = Command::new("/usr/bin/time");
            cmd.arg("-o")
                .arg(&time_file)
                .args(["-f", "%e %M"])
                .arg(bins.join("onionpkg-fetch"))
                .arg("--config")
                .arg(cfg)
                .args(["download", &path]);
            let secs = retrying(net, retries, || {
                let _ = std::fs::remove_dir_all(dir.join("out"));
                // The private network's consensus is valid for seconds, and
                // a second run of arti on a stale cached directory found no
                // usable guard here: every run bootstraps cold.
                if *mode == "tor" {
                    let _ = std::fs::remove_dir_all(dir.join("state/tor"));
                    let _ = std::fs::remove_dir_all(dir.join("cache/tor"));
                }
                let start = Instant::now();
                output(clone_cmd(&cmd), TRANSFER + Duration::from_secs(60))
                    .with_context(|| format!("fetch in {mode} mode"))?;
                Ok(start.elapsed().as_secs_f64())
            })?;
            let got = std::fs::metadata(dir.join("out").join(&path))?.len();
            ensure!(got == len as u64, "{mode}: {got} bytes");
            let t = std::fs::read_to_string(&time_file)?;
            let kib: u64 = t
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .context("no RSS from time")?;
            if *mode == "tor" {
                tor_s.push(secs);
                rss.push(kib);
            } else {
                socks_s.push(secs);
            }
        }
        let url = format!("http://{onion}/{served}");
        let (_, total, _) = retrying(net, retries, || curl(&url, Some(socks), TRANSFER))?;
        curl_s.push(total);
    }
    let size = if len >= 1 << 20 {
        format!("{} MiB", len >> 20)
    } else {
        format!("{} KiB", len >> 10)
    };
    let curl_m = median(curl_s);
    r.time_row(
        "Tor download",
        format!("onionpkg-fetch download, {size}, embedded arti (cold bootstrap, metadata refresh, verification included)"),
        median(tor_s),
        "curl through C tor's SocksPort, same onion mirror and file, no verification",
        curl_m,
        1.0,
    );
    r.time_row(
        "Tor download",
        format!("onionpkg-fetch download, {size}, through C tor's SocksPort (metadata refresh and verification included)"),
        median(socks_s),
        "curl through the same SocksPort",
        curl_m,
        1.0,
    );
    let peak = rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    r.plain_row(Row {
        section: "Memory",
        what: format!(
            "onionpkg-fetch peak RSS during a Tor update and {size} download (embedded arti)"
        ),
        ours: fmt_num(peak, "MiB"),
        baseline: "arti's published heap use".into(),
        theirs: "22–27 MiB".into(),
        ratio: None,
        goal: "fetcher ≤ 40 MB".into(),
        met: Some(peak * MIB <= 40e6),
    });
    Ok(())
}
