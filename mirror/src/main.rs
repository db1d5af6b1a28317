//! `onionpkg-mirror`: serve and sync an onionpkg repository. Exit codes are
//! documented on `onionpkg_mirror::cli::exit_code`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary reports to its operator"
)]

use std::process::ExitCode;

use clap::Parser;
use onionpkg_mirror::cli::{self, Cli, Command, FeedsAction};

fn main() -> ExitCode {
    let cli = Cli::parse();
    onionpkg_core::log::init("info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => cli::serve(&config).await,
            Command::Sync { config, upstream } => cli::sync(&config, upstream.as_deref())
                .await
                .map(|report| println!("{report}")),
            Command::Feeds {
                action: FeedsAction::Fetch { config, names },
            } => cli::feeds_fetch(&config, &names)
                .await
                .map(|lines| lines.iter().for_each(|l| println!("{l}"))),
            Command::Feeds {
                action: FeedsAction::Status { config, json },
            } => cli::feeds_status(&config).map(|reports| {
                for r in reports {
                    if json {
                        println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    } else {
                        println!("{r}");
                    }
                }
            }),
            Command::CheckConfig { config } => onionpkg_mirror::check::check_config(&config)
                .map(|lines| lines.iter().for_each(|l| println!("{l}"))),
            Command::Status { config, json } => cli::status(&config).map(|r| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else {
                    println!("{r}");
                }
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
