//! `onionpkg-bench`: measures onionpkg against the tools users would
//! otherwise pick, side by side in one run, and writes `docs/BENCHMARKS.md`
//! with tables and SVG charts.
//!
//! Everything runs on this machine: loopback servers and the private Tor
//! network of the test harness (never the public one). Each figure is the
//! median of `--runs` runs (5 by default). `--smoke` is the short version CI
//! runs: small files, one run, the same code paths.
//!
//! `tests/bench.sh` installs what it needs (nginx, wrk, GNU time, curl, tor,
//! SoftHSM2), builds the binaries in release mode and runs this with them.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the bench reports progress on the terminal"
)]

mod local;
mod onion;
mod report;
mod signer;
mod util;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Parser;

use crate::report::Report;

/// Measure onionpkg against nginx, C tor + curl, sha256sum and polling.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-bench")]
struct Args {
    /// The short version: small files, one run.
    #[arg(long)]
    smoke: bool,
    /// Runs per figure (the median is reported); default 5, 1 with --smoke.
    #[arg(long)]
    runs: Option<usize>,
    /// Where to write the report; charts go to `bench/` beside it.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Skip the Tor network part.
    #[arg(long)]
    no_tor: bool,
    /// Skip the loopback part.
    #[arg(long)]
    no_local: bool,
    /// Skip the signing service part.
    #[arg(long)]
    no_signer: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints a progress line.
fn step(what: &str) {
    eprintln!("==> {what}");
}

fn run(args: &Args) -> anyhow::Result<()> {
    let runs = args.runs.unwrap_or(if args.smoke { 1 } else { 5 });
    let bins = util::bin_dir()?;
    let work = tempfile::Builder::new()
        .prefix("onionpkg-bench-")
        .tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut r = Report::default();
    facts(&mut r, runs, args.smoke);
    step("building the signed test repository");
    let tree = util::Tree::build(work.path(), args.smoke)?;
    let w = work.path();
    if !args.no_local {
        section(&mut r, "target verification against sha256sum", |r| {
            local::verify(r, w, args.smoke, runs)
        });
        section(
            &mut r,
            "metadata bytes per update by repository size",
            |r| local::metadata(r, w, args.smoke),
        );
        section(&mut r, "clearnet serving and the idle update check", |r| {
            let mirror_dir = util::mkdir(w.join("clear-mirror"))?;
            let mirror = local::MirrorProc::start(&bins, &mirror_dir, tree.repo.dir())?;
            local::clearnet(r, w, &bins, &tree, &mirror, args.smoke, runs)?;
            local::idle(r, w, &bins, &tree, &mirror, &rt)
        });
    }
    if !args.no_signer {
        section(
            &mut r,
            "the signing service: signatures per second and a timestamp re-sign",
            |r| signer::run(r, w, &bins, args.smoke, runs),
        );
    }
    if !args.no_tor {
        section(
            &mut r,
            "the private Tor network: onion serving and Tor downloads",
            |r| onion::run(r, w, &bins, &tree, runs),
        );
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    notes(&mut r);
    r.write(&args.out, HEADER)?;
    let missed = r.rows.iter().filter(|x| x.met == Some(false)).count();
    eprintln!(
        "wrote {} ({} rows, {missed} goals missed, {} sections failed)",
        args.out.display(),
        r.rows.len(),
        r.failures.len()
    );
    anyhow::ensure!(
        r.failures.is_empty(),
        "some benchmarks failed: {:?}",
        r.failures
    );
    Ok(())
}

/// Runs one part of the bench; a failure is recorded in the report and the
/// rest still runs.
fn section(r: &mut Report, name: &str, f: impl FnOnce(&mut Report) -> anyhow::Result<()>) {
    step(name);
    if let Err(e) = f(r) {
        eprintln!("error in {name}: {e:#}");
        r.failures.push(format!("{name}: {e:#}"));
    }
}

const HEADER: &str = "# Benchmarks

onionpkg measured side by side with what users would otherwise run: nginx,
C tor with curl, `sha256sum`, polling a mirror, and signing in process with
a key file. This file is written by
`tests/bench.sh` (which runs `onionpkg-bench` on release builds); run it
again to reproduce every figure on your machine. Every server binds
loopback, and the Tor figures come from the private Tor network of the test
harness: three authorities, four relays, a C tor client and a C tor onion
host, all on 127.0.0.1.

Each figure is the median of the runs. Ratios are oriented so that higher
is better for onionpkg: our throughput over theirs, their time over ours,
their bytes over ours. Both sides share the same two cores, so the
throughput figures are those of a loaded machine, not of a network.
";

fn facts(r: &mut Report, runs: usize, smoke: bool) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    r.facts.push(format!("{cpu}, {cores} cores available"));
    r.facts.push(format!(
        "{runs} run(s) per figure{}; onionpkg built with the `{}` profile",
        if smoke { ", smoke version" } else { "" },
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    ));
    let version = |cmd: &str, arg: &str| -> String {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    r.facts.push(format!(
        "{}; {}; {}; {}",
        version("tor", "--version"),
        version("nginx", "-v"),
        version("curl", "--version")
            .split(" (")
            .next()
            .unwrap_or_default(),
        version("sha256sum", "--version")
    ));
}

/// Why a goal is missed, for each row that misses one.
fn notes(r: &mut Report) {
    let missed: Vec<String> = r
        .rows
        .iter()
        .filter(|x| x.met == Some(false))
        .map(|x| format!("{}: {}", x.section, x.what))
        .collect();
    for what in missed {
        let why = explain(&what);
        r.notes.push((what, why));
    }
}

/// The analysis of a missed goal, summarising the profiles in
/// `docs/bench/PROFILES.md`; the most specific matching entry wins.
fn explain(what: &str) -> String {
    let known = [
        (
            "Metadata per update",
            "An update ships the timestamp, the snapshot (a line per hashed bin that holds \
             packages) and the bins that changed. Past the goal, the bins are too full (each holds \
             about packages / bins entries) or a release touched many of them; a repository made \
             with more bins (`onionpkg-repo init --bins 256`) ships smaller ones.",
        ),
        (
            "Onion serving",
            "The service side is not CPU-bound: during 50 MiB transfers the mirror process, arti \
             included, is on a CPU about 5 % of the time. The gap is in how arti paces data over \
             the six-hop rendezvous circuit (SENDME windows, congestion control), which is arti's \
             data path, not the mirror's. Profile and what would fix it: \
             [bench/PROFILES.md](bench/PROFILES.md#onion-serving).",
        ),
        (
            "Tor download",
            "onionpkg-fetch refreshes the signed metadata first (four round trips through the \
             circuit), hashes while it writes, fsyncs and renames; curl writes to /dev/null. In \
             tor mode it also bootstraps arti cold, because the private network's consensus is \
             valid for seconds. Details: \
             [bench/PROFILES.md](bench/PROFILES.md#tor-download-onionpkg-fetch-against-curl).",
        ),
        (
            "Clearnet serving: 1 KiB",
            "Small hot files are now opened and read on the async thread (openat2 with \
             RESOLVE_CACHED, preadv2 with RWF_NOWAIT), which removed the thread hop and the \
             user-space path walk that cost about 40 % before. What is left is per-request work \
             in hyper and tokio against nginx's C event loop. Profile: \
             [bench/PROFILES.md](bench/PROFILES.md#clearnet-serving-small-files-requests-per-second).",
        ),
        (
            "Clearnet serving",
            "nginx hands page-cache pages to the socket with sendfile; the mirror copies each \
             128 KiB block through user space (writev) after a positioned read in tokio's \
             blocking pool. \
             sendfile for whole-file plain-HTTP responses would close it; HTTPS and onion \
             responses must copy anyway. Profile: \
             [bench/PROFILES.md](bench/PROFILES.md#clearnet-serving-large-files-throughput).",
        ),
        ("Memory", "See [bench/PROFILES.md](bench/PROFILES.md)."),
    ];
    known.iter().find(|(k, _)| what.starts_with(k)).map_or_else(
        || "Not analysed yet.".to_owned(),
        |(_, why)| (*why).to_owned(),
    )
}
