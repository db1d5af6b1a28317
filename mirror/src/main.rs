//! `onionpkg-mirror`: serve and sync an onionpkg repository. Exit codes are
//! documented on `onionpkg_mirror::cli::exit_code`.
//!
//! With `--json` (the commands that report: `status`, `check-config`,
//! `sync`, `feeds status`) results are JSON lines on stdout, and errors and
//! log lines JSON lines on stderr, in the shape every onionpkg program uses
//! (`onionpkg_core::report`, docs/EXIT-CODES.md).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary reports to its operator"
)]

use std::process::ExitCode;

use clap::Parser;
use onionpkg_core::report::{event_json, fail};
use onionpkg_mirror::cli::{self, Cli, Command, FeedsAction};

/// Whether the command asked for JSON output.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Status { json, .. }
        | Command::CheckConfig { json, .. }
        | Command::Sync { json, .. }
        | Command::Feeds {
            action: FeedsAction::Status { json, .. },
        } => *json,
        Command::Serve { .. }
        | Command::Feeds {
            action: FeedsAction::Fetch { .. },
        } => false,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = wants_json(&cli.command);
    onionpkg_core::log::init("info", json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                json,
                onionpkg_core::exit::FAILURE,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => cli::serve(&config).await,
            Command::Sync {
                config, upstream, ..
            } => cli::sync(&config, upstream.as_deref()).await.map(|report| {
                if json {
                    println!("{}", event_json("sync", &report));
                } else {
                    println!("{report}");
                }
            }),
            Command::Feeds {
                action: FeedsAction::Fetch { config, names },
            } => cli::feeds_fetch(&config, &names)
                .await
                .map(|lines| lines.iter().for_each(|l| println!("{l}"))),
            Command::Feeds {
                action: FeedsAction::Status { config, .. },
            } => cli::feeds_status(&config).map(|reports| {
                for r in reports {
                    if json {
                        println!("{}", event_json("feed", &r));
                    } else {
                        println!("{r}");
                    }
                }
            }),
            Command::CheckConfig { config, .. } => onionpkg_mirror::check::check_config(&config)
                .map(|lines| {
                    if json {
                        println!(
                            "{}",
                            event_json("check-config", &serde_json::json!({ "checked": lines }))
                        );
                    } else {
                        lines.iter().for_each(|l| println!("{l}"));
                    }
                }),
            Command::Status { config, .. } => cli::status(&config).map(|r| {
                if json {
                    println!("{}", event_json("status", &r));
                } else {
                    println!("{r}");
                }
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json, cli::exit_code(&e), &e.to_string()),
    }
}
