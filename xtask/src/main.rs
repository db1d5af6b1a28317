//! `cargo xtask`: project tasks that are not part of any binary.
//!
//! ```text
//! cargo xtask man DIR            man pages of the binaries and their subcommands
//! cargo xtask completions DIR    bash, zsh and fish completions
//! cargo xtask bench [ARGS...]    the benchmarks (tests/bench.sh), writing docs/BENCHMARKS.md
//! ```
//!
//! Man pages and completions are generated from the same clap definitions
//! the binaries parse (`cli::Cli` of each crate), so they always match.

#![allow(clippy::print_stderr, reason = "a developer tool reporting its errors")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;

/// Every binary: its name and its command-line definition.
fn commands() -> Vec<clap::Command> {
    vec![
        onionpkg_fetcher::cli::Cli::command(),
        onionpkg_mirror::cli::Cli::command(),
        onionpkg_announce::cli::Cli::command(),
        onionpkg_repo::cli::Cli::command(),
        onionpkg_signer::cli::Cli::command(),
    ]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("man") => man(&out_dir(args)?),
        Some("completions") => completions(&out_dir(args)?),
        Some("bench") => bench(&args[1..]),
        _ => bail!("usage: cargo xtask man DIR | completions DIR | bench [ARGS...]"),
    }
}

fn out_dir(args: &[String]) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(args.get(1).context("name the output directory")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Writes `NAME.1` for each binary and `NAME-SUB.1` for each subcommand.
fn man(dir: &Path) -> anyhow::Result<()> {
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let version = cmd.get_version().unwrap_or_default().to_owned();
        write_page(dir, &name, cmd.clone())?;
        for sub in cmd.get_subcommands() {
            let page = format!("{name}-{}", sub.get_name());
            let sub = sub.clone().name(page.clone()).version(version.clone());
            write_page(dir, &page, sub)?;
        }
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("1")
        .manual("onionpkg")
        .render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    report(&path);
    Ok(())
}

/// Names a file written; a closed stdout is no error.
fn report(path: &Path) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{}", path.display());
}

/// Writes bash, zsh and fish completions for each binary.
fn completions(dir: &Path) -> anyhow::Result<()> {
    use clap_complete::Shell;
    for mut cmd in commands() {
        let name = cmd.get_name().to_owned();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let path = clap_complete::generate_to(shell, &mut cmd, &name, dir)
                .with_context(|| format!("{shell} completions of {name}"))?;
            report(&path);
        }
    }
    Ok(())
}

/// Runs `tests/bench.sh` from the workspace root with `args`.
fn bench(args: &[String]) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace root")?;
    let status = std::process::Command::new("bash")
        .arg(root.join("tests/bench.sh"))
        .args(args)
        .current_dir(root)
        .status()
        .context("running tests/bench.sh")?;
    if !status.success() {
        bail!("tests/bench.sh failed ({status})");
    }
    Ok(())
}
