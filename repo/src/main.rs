//! `onionpkg-repo`: the release side of onionpkg. See `onionpkg-repo --help`.
//!
//! Exit codes: the table every onionpkg program shares
//! (`onionpkg_core::exit`, docs/EXIT-CODES.md); 2 also for a command that
//! did nothing and said what to do instead.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

use std::process::ExitCode;

use clap::Parser;
use onionpkg_core::HasKind;
use onionpkg_repo::cli::{Cli, Usage, VerifyFailed, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    onionpkg_core::log::init("warn");
    match run(&cli, jiff::Timestamp::now()) {
        Ok(report) => {
            // Warnings and notes go to stderr, never mixed into the output.
            report.notes.iter().for_each(|n| eprintln!("{n}"));
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": report.exit_code == 0,
                        "output": report.lines,
                        "exit_code": report.exit_code,
                    })
                );
            } else {
                report.lines.iter().for_each(|l| println!("{l}"));
            }
            ExitCode::from(report.exit_code)
        }
        Err(e) => {
            let code = exit_code(&e);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "error": onionpkg_core::exit::name(code),
                        "message": format!("{e:#}"),
                        "exit_code": code,
                    })
                );
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    use onionpkg_core::exit;
    if e.downcast_ref::<VerifyFailed>().is_some() {
        return exit::VERIFICATION;
    }
    if e.downcast_ref::<Usage>().is_some() {
        return exit::USAGE;
    }
    e.downcast_ref::<onionpkg_repo::RepoError>()
        .map_or(exit::FAILURE, |r| exit::code(r.kind()))
}
