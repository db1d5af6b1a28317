//! The operator guides run as written: every shell block of docs/RELEASE.md,
//! MIRROR.md, FEEDS.md, FETCHER.md, APPLIANCE.md, DNS.md, TROUBLESHOOTING.md
//! and ONION-MIRROR.md runs against loopback services (see
//! `guides/harness.rs` for the directives a guide declares its
//! substitutions with). Run with
//! `cargo test -p onionpkg-tests --test guides -- --nocapture` to see what
//! ran and what was skipped, and why; with `ONIONPKG_GUIDES_UPTO=MIRROR.md`
//! only the guides up to that one run.
//!
//! Besides the onionpkg programs (built here) the guides use python3 (the
//! feed upstream), `sha256sum` and Knot's `keymgr`, which tests/run.sh
//! installs. The existing RELEASE.md checks in repo/tests/repo/docs.rs
//! stay: they also assert what the commands left behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "guides/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{GuideReport, Run};

/// The guides, in the order they build on each other: the repository of
/// RELEASE.md is what the mirrors serve and the appliances fetch, and the
/// feeds of FEEDS.md reach the appliance of FETCHER.md.
const GUIDES: [&str; 8] = [
    "RELEASE.md",
    "MIRROR.md",
    "FETCHER.md",
    "APPLIANCE.md",
    "FEEDS.md",
    "DNS.md",
    "TROUBLESHOOTING.md",
    "ONION-MIRROR.md",
];

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// The directory of this test's binary's profile, where the binaries are.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

/// Builds the four programs the guides use (another package's binaries are
/// not built for this test), within a deadline.
fn build_bins() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(build_bins_now);
}

fn build_bins_now() {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--bins"]);
    for p in [
        "onionpkg-repo",
        "onionpkg-mirror",
        "onionpkg-fetcher",
        "onionpkg-announce",
    ] {
        cmd.args(["-p", p]);
    }
    if let Some(target) = bin_dir().parent() {
        cmd.arg("--target-dir").arg(target);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "building the programs failed");
            return;
        }
        assert!(Instant::now() < deadline, "building took over 30 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_guides(dir: &Path, guides: &[(&str, String)]) -> anyhow::Result<Vec<GuideReport>> {
    let mut run = Run::new(dir, &bin_dir())?;
    let mut reports = Vec::new();
    for (name, text) in guides {
        let report = run.guide(name, text)?;
        println!("{report}");
        reports.push(report);
    }
    Ok(reports)
}

#[test]
fn every_runnable_block_of_the_operator_guides_runs_as_written() {
    build_bins();
    let tmp = tempfile::tempdir().unwrap();
    // ONIONPKG_GUIDES_UPTO=DNS.md stops after that guide, for working on one.
    let upto = std::env::var("ONIONPKG_GUIDES_UPTO").ok();
    let n = upto
        .as_deref()
        .and_then(|u| GUIDES.iter().position(|g| *g == u))
        .map_or(GUIDES.len(), |i| i + 1);
    let guides: Vec<(&str, String)> = GUIDES[..n]
        .iter()
        .map(|g| (*g, std::fs::read_to_string(docs().join(g)).unwrap()))
        .collect();
    let reports = run_guides(tmp.path(), &guides).unwrap_or_else(|e| panic!("{e:#}"));
    for r in &reports {
        if r.guide != "ONION-MIRROR.md" {
            assert!(!r.ran.is_empty(), "no block of {} ran", r.guide);
        }
        for (line, why) in &r.skipped {
            assert!(why.len() > 10, "{}:{line}: a skip needs a reason", r.guide);
        }
    }
    if n < GUIDES.len() {
        return;
    }
    let troubleshooting = reports
        .iter()
        .find(|r| r.guide == "TROUBLESHOOTING.md")
        .unwrap();
    assert!(
        troubleshooting.ran.len() >= 3,
        "{} troubleshooting scenario(s) ran",
        troubleshooting.ran.len()
    );
}

#[test]
fn a_guide_with_a_broken_command_fails_and_names_the_block() {
    build_bins();
    let tmp = tempfile::tempdir().unwrap();
    let release = std::fs::read_to_string(docs().join("RELEASE.md")).unwrap();
    let broken = release.replacen(
        "--root-pubkey root-bob.pub.json",
        "--root-pubkee root-bob.pub.json",
        1,
    );
    assert_ne!(
        broken, release,
        "the command to break is gone from RELEASE.md"
    );
    let line = release
        .lines()
        .position(|l| l.contains("--root-pubkey root-bob.pub.json"))
        .unwrap();
    // The block starts at the `keygen` line a few lines above.
    let lines: Vec<&str> = release.lines().take(line).collect();
    let block_line = lines.iter().rposition(|l| l.starts_with("```")).unwrap() + 2;
    let err = run_guides(tmp.path(), &[("RELEASE.md", broken)]).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains(&format!("RELEASE.md:{block_line}:")), "{err}");
    assert!(err.contains("exited 2, expected 0"), "{err}");
    // The output shows the command and what it said.
    assert!(err.contains("--root-pubkee"), "{err}");
    assert!(err.contains("unexpected argument"), "{err}");
}
