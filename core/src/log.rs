//! The log setup every onionpkg program uses: tracing to stderr, filtered
//! by `RUST_LOG` (or the program's default), in one of two forms:
//!
//! - text, with colour only when stderr is a terminal (never in a pipe, a
//!   log file or journald);
//! - with `--json`, one JSON object per line (tracing-subscriber's JSON
//!   form: `timestamp`, `level`, `message`, the event's fields, `target`),
//!   never coloured, so that a `--json` run's stderr is JSON lines only.
//!
//! Only with the `log` feature: libraries never set up logging.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Sets up logging for the process: `default_filter` unless `RUST_LOG` is
/// set, JSON lines when `json`. Call once, first thing in `main`.
pub fn init(default_filter: &str, json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init();
    } else {
        builder.with_ansi(colour()).init();
    }
}

/// Whether text logs are coloured: only on a terminal, and not when
/// `NO_COLOR` is set (<https://no-color.org>).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
