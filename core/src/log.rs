//! Logging for the command-line programs: to stderr, filtered by
//! `RUST_LOG` or the program's default, with colour only on a terminal
//! (not in journald or a log file).

use tracing_subscriber::EnvFilter;

/// The default filter of the programs that query DNS: warnings, but
/// hickory's only from errors up, since its DNSSEC validator logs whole
/// messages at warn for every answer it refuses, and the program's own
/// warning says why.
pub const WARN_QUIET_HICKORY: &str =
    "warn,hickory_net=error,hickory_proto=error,hickory_resolver=error";

/// Sends the logs to stderr, filtered by `RUST_LOG`, or by `default` when
/// that is unset or not a valid filter.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
}
