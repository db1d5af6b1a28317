//! `onionpkg-signer`: the signing service. See `onionpkg-signer --help`.
//!
//! Exit codes: 0 success; 1 failure; 2 bad usage; 3 verification failed;
//! 4 a key is missing or unusable.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

use std::process::ExitCode;

use clap::Parser;
use onionpkg_core::{ErrorKind, HasKind};
use onionpkg_signer::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&cli) {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e.kind() {
                ErrorKind::Verification => 3,
                ErrorKind::Key => 4,
                _ => 1,
            })
        }
    }
}
