//! `onionpkg-fetch`: verified update downloads for appliances, over the
//! embedded Tor client, a Tor daemon's SOCKS port, or HTTPS. See `cli.rs`
//! for the commands and the exit codes.

use std::process::ExitCode;

use clap::Parser;
use onionpkg_fetcher::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // hickory's DNSSEC validator logs whole messages at warn for every
    // answer it refuses; the warning we print says why.
    onionpkg_core::log::init(
        "warn,hickory_net=error,hickory_proto=error,hickory_resolver=error",
        json,
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return onionpkg_core::report::fail(
                json,
                1,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };
    let out = rt.block_on(run(cli));
    #[allow(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "the binary's output"
    )]
    {
        for l in &out.stdout {
            println!("{l}");
        }
        for l in &out.stderr {
            eprintln!("{l}");
        }
    }
    ExitCode::from(out.code)
}
