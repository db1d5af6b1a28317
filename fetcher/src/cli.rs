//! The command line of `onionpkg-fetch`.
//!
//! ```text
//! onionpkg-fetch [--config FILE] [--json] COMMAND
//!   init --root FILE        check a root and pin it in the state directory
//!   update [--scheduled]    refresh metadata and the mirror list
//!   download [NAME...] [--all] [--scheduled]
//!                           verified targets into the output directory
//!   check [--scheduled]     is there an update? (exit 10 if so)
//!   status                  trusted versions, expiries, mirror list, clock
//!   mirrors                 the mirrors in the order they would be tried
//!   feeds sync [NAME...]    verified feed files into the output directory
//!   check-config            can the service start? (reads only, no network)
//! ```
//!
//! Exit codes: the table every onionpkg program shares
//! (`onionpkg_core::exit`, docs/EXIT-CODES.md); `check` exits 10 when an
//! update is available. Dispatch only: what the commands do is in
//! `commands.rs`, how results are printed in `output.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use onionpkg_core::exit;
use onionpkg_net::transport::Transport;

use crate::commands;
use crate::context::App;
use crate::err::{AppError, AppResult};
use crate::output::{self, Output, Printer};

/// Verified update downloads over Tor, a Tor SOCKS port or HTTPS.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-fetch", version, after_help = onionpkg_core::exit::help())]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "ONIONPKG_FETCH_CONFIG",
        default_value = "/etc/onionpkg/fetcher.toml"
    )]
    pub config: PathBuf,
    /// Print results as JSON lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a root metadata file and pin it in the state directory.
    Init {
        /// The root metadata (`root.json`) to trust; default: the configured
        /// `trust_root`.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Replace a different root already pinned (and forget the metadata
        /// trusted under it).
        #[arg(long)]
        replace: bool,
    },
    /// Refresh the trusted metadata and the mirror list.
    Update {
        /// Wait a random time first, up to `[privacy] random_delay`.
        #[arg(long)]
        scheduled: bool,
    },
    /// Download verified targets into the output directory.
    Download {
        /// Target paths, as signed (`pkg/hello-1.0.tar`).
        names: Vec<String>,
        /// Every package the targets role lists.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Wait a random time first, up to `[privacy] random_delay`.
        #[arg(long)]
        scheduled: bool,
    },
    /// Is there an update? Exit 10 if so, 0 if not.
    Check {
        /// Wait a random time first, up to `[privacy] random_delay`.
        #[arg(long)]
        scheduled: bool,
    },
    /// Show trusted versions, expiries, the mirror list, the clock.
    Status,
    /// Show the mirrors in the order they would be tried, with their health.
    Mirrors,
    /// Third-party feeds (GeoIP data, blocklists, rules) the distro signs.
    Feeds {
        /// What to do with the feeds.
        #[command(subcommand)]
        action: FeedsAction,
    },
    /// Check the configuration and the trust root it names, reading only:
    /// exit 0 when the service can start. Writes nothing and uses no network.
    CheckConfig,
}

/// What `feeds` does.
#[derive(Debug, Subcommand)]
pub enum FeedsAction {
    /// Download verified feed files into the output directory, under
    /// `feeds/NAME/`, each replaced atomically.
    Sync {
        /// Feed names; every signed feed when none are given.
        names: Vec<String>,
        /// Wait a random time first, up to `[privacy] random_delay`.
        #[arg(long)]
        scheduled: bool,
    },
}

async fn random_delay(max: Duration) {
    if max.is_zero() {
        return;
    }
    let ms = rand::random::<u64>() % (max.as_millis().min(u128::from(u64::MAX)) as u64).max(1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Output {
    let printer = Printer::new(cli.json);
    let mut out = Output::default();
    if let Err(e) = run_inner(cli, &printer, &mut out).await {
        out.code = e.exit_code();
        out.stderr.push(printer.error(out.code, &e.to_string()));
    }
    out
}

/// Feed names are `[a-z0-9-]`, as the mirror's configuration allows.
fn is_feed_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn run_inner(cli: Cli, printer: &Printer, out: &mut Output) -> AppResult<()> {
    let config = onionpkg_config::load_fetcher(&cli.config)?;
    let mut app = App::new(config)?;
    let r = command(&mut app, cli.command, printer, out).await;
    for w in app.take_warnings() {
        out.stderr.push(printer.warning(&w));
    }
    r
}

/// Waits the random delay of `--scheduled` runs, and sets the transport up.
async fn start(app: &mut App, scheduled: bool) -> AppResult<std::sync::Arc<Transport>> {
    app.pinned_root()?;
    if scheduled {
        random_delay(app.config().privacy.random_delay).await;
    }
    app.transport().await
}

async fn command(app: &mut App, cmd: Command, p: &Printer, out: &mut Output) -> AppResult<()> {
    // Bars only for a person at a terminal; logs and pipes stay quiet.
    let bars = !p.json() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    match cmd {
        Command::Init { root, replace } => {
            let (version, changed) = app.init(root.as_deref(), replace)?;
            out.stdout.push(output::init(p, version, changed));
        }
        Command::Update { scheduled } => {
            let t = start(app, scheduled).await?;
            let deadline = tokio::time::Instant::now() + app.config().download.deadline;
            let (r, ..) = commands::update(app, &t, deadline).await?;
            out.stdout.push(output::update(p, &r));
        }
        Command::Download {
            names,
            all,
            scheduled,
        } => {
            if names.is_empty() && !all {
                return Err(AppError::Usage("name targets to download, or --all".into()));
            }
            let t = start(app, scheduled).await?;
            for d in commands::download_targets(app, &t, &names, all, bars).await? {
                out.stdout.push(output::downloaded(p, "downloaded", &d));
            }
        }
        Command::Check { scheduled } => {
            let t = start(app, scheduled).await?;
            let r = commands::check_all(app, &t).await?;
            if r.update_available {
                out.code = exit::UPDATE_AVAILABLE;
            }
            out.stdout.push(output::check(p, &r));
        }
        Command::Status => {
            let s = commands::status(app)?;
            out.stdout.push(output::status(p, &s));
        }
        Command::Feeds {
            action: FeedsAction::Sync { names, scheduled },
        } => {
            if let Some(bad) = names.iter().find(|n| !is_feed_name(n)) {
                return Err(AppError::Usage(format!("{bad:?} is not a feed name")));
            }
            let t = start(app, scheduled).await?;
            let selection = commands::Selection::Feeds(names);
            let done = commands::download_selection(app, &t, &selection, bars).await?;
            for d in &done {
                out.stdout.push(output::downloaded(p, "feed", d));
            }
            for r in crate::hooks::run_on_update(app, &done).await? {
                if r.ok {
                    out.stdout.push(output::action(p, &r));
                } else {
                    out.code = exit::ACTION_FAILED;
                    out.stderr.push(output::action(p, &r));
                }
            }
        }
        Command::CheckConfig => {
            let r = commands::check_config(app)?;
            out.stdout.push(output::check_config(p, &r));
        }
        Command::Mirrors => {
            for m in commands::mirrors(app)? {
                out.stdout.push(output::mirror(p, &m));
            }
        }
    }
    Ok(())
}
