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
use onionpkg_signer::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    onionpkg_core::log::init("info");
    match run(&cli) {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            // The table every onionpkg program shares (docs/EXIT-CODES.md).
            ExitCode::from(onionpkg_core::exit::code(e.kind()))
        }
    }
}
