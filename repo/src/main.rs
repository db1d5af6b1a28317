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
    onionpkg_core::log::init("warn", cli.json);
    match run(&cli, jiff::Timestamp::now()) {
        Ok(report) => {
            // Warnings and notes go to stderr, never mixed into the output;
            // with --json as JSON lines, like every onionpkg program's.
            report
                .notes
                .iter()
                .for_each(|n| eprintln!("{}", note(cli.json, n)));
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
        Err(e) => onionpkg_core::report::fail(cli.json, exit_code(&e), &format!("{e:#}")),
    }
}

/// A warning or note as printed: as written, or with `--json` a warning
/// event (`warning: …`) or a note event (`note: …`, the same shape).
fn note(json: bool, line: &str) -> String {
    use onionpkg_core::report::{event_json, warning_json};
    if !json {
        return line.to_owned();
    }
    match line.strip_prefix("warning: ") {
        Some(w) => warning_json(w),
        None => event_json(
            "note",
            &serde_json::json!({ "message": line.strip_prefix("note: ").unwrap_or(line) }),
        ),
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
