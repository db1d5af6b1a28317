//! `onionpkg-signer`: the signing service. See `onionpkg-signer --help`.
//!
//! Exit codes: the table every onionpkg program shares
//! (`onionpkg_core::exit`, docs/EXIT-CODES.md).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

use std::process::ExitCode;

use clap::Parser;
use onionpkg_core::HasKind;
use onionpkg_signer::cli::{AuditCommand, Cli, Command, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `audit list --json` keeps stderr to JSON lines too.
    let json = matches!(
        cli.command,
        Command::Audit(AuditCommand::List { json: true, .. })
    );
    onionpkg_core::log::init("info", json);
    match run(&cli) {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        // The table every onionpkg program shares (docs/EXIT-CODES.md).
        Err(e) => {
            onionpkg_core::report::fail(json, onionpkg_core::exit::code(e.kind()), &e.to_string())
        }
    }
}
