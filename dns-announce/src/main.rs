//! `onionpkg-announce`: make, push, serve and check the signed DNS
//! announcement. See `onionpkg-announce --help`.
//!
//! Exit codes: 0 ok; 1 failure; 2 bad usage; 3 invalid announcement;
//! 4 expired; 5 no announcement; 6 update refused by the DNS server.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use onionpkg_announce::cli::{Cli, Output, exit_code, run};

fn show(json: bool, out: &Output) {
    let mut stdout = std::io::stdout().lock();
    let _ = if json {
        writeln!(stdout, "{}", out.json)
    } else {
        out.text.iter().try_for_each(|l| writeln!(stdout, "{l}"))
    };
    let _ = stdout.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // hickory's DNSSEC validator logs whole messages at warn for every
    // answer it refuses; the error we report says why. hickory-server warns
    // about queries any client can send (an unknown EDNS version, say):
    // under a flood that would be a line per datagram.
    onionpkg_core::log::init(
        "warn,hickory_net=error,hickory_proto=error,hickory_resolver=error,hickory_server=error",
        cli.json,
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return onionpkg_core::report::fail(
                cli.json,
                onionpkg_announce::exit::FAILURE,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };
    let result = runtime.block_on(run(&cli, jiff::Timestamp::now(), |ready| {
        show(cli.json, &ready);
    }));
    match result {
        Ok(out) => {
            show(cli.json, &out);
            ExitCode::SUCCESS
        }
        Err(e) => onionpkg_core::report::fail(cli.json, exit_code(&e), &format!("{e:#}")),
    }
}
