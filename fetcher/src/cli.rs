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
//! ```
//!
//! Exit codes: 0 success (`check`: up to date); 1 unexpected failure (local
//! I/O, damaged state); 2 bad command line or configuration; 3 not
//! initialized; 4 trusted metadata expired and cannot be refreshed; 5 the
//! clock is behind signed time already seen; 6 every mirror failed; 7 Tor
//! could not be started; 8 verification refused something; 9 an update is
//! announced but no mirror serves it yet; 10 (`check`) an update is
//! available; 11 (`feeds sync`) a feed's `on_update` action failed (the
//! verified files are in place).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::{App, AppError, AppResult, exit};
use crate::commands;

const EXIT_CODES: &str = "\
Exit codes:
  0   success (check: up to date)
  1   unexpected failure (local I/O, damaged state)
  2   bad command line or configuration
  3   not initialized: run `init --root FILE`
  4   trusted metadata expired and no mirror could refresh it
  5   the clock is behind signed time already seen
  6   every mirror failed (each one and why is listed)
  7   Tor could not be started or reached
  8   verification refused something (a root, an unknown target)
  9   an update is announced, but no mirror serves it yet (try again later)
  10  check: an update is available
  11  feeds sync: an on_update action failed (the verified files are in place)";

/// Verified update downloads over Tor, a Tor SOCKS port or HTTPS.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-fetch", version, after_help = EXIT_CODES)]
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

/// What the binary prints, for `main` to write out.
#[derive(Debug, Default)]
pub struct Output {
    /// Lines for stdout.
    pub stdout: Vec<String>,
    /// Lines for stderr (warnings).
    pub stderr: Vec<String>,
    /// The exit code.
    pub code: u8,
}

fn line<T: Serialize>(json: bool, event: &str, value: &T, human: String) -> String {
    if json {
        let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), event.into());
        }
        v.to_string()
    } else {
        human
    }
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
    let mut out = Output::default();
    let json = cli.json;
    let result = run_inner(cli, &mut out).await;
    if let Err(e) = result {
        out.code = e.exit_code();
        let msg = format!("error: {e}");
        out.stderr.push(if json {
            serde_json::json!({"event": "error", "code": out.code, "message": e.to_string()})
                .to_string()
        } else {
            msg
        });
    }
    out
}

/// The human line for one downloaded (or already present) file.
fn downloaded_line(d: &commands::Downloaded) -> String {
    match &d.mirror {
        Some(m) => format!(
            "{} verified ({} bytes) from {m}",
            d.file.display(),
            d.length
        ),
        None => format!("{} already verified", d.file.display()),
    }
}

/// Feed names are `[a-z0-9-]`, as the mirror's configuration allows.
fn is_feed_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn run_inner(cli: Cli, out: &mut Output) -> AppResult<()> {
    let config = onionpkg_config::load_fetcher(&cli.config)?;
    let mut app = App::new(config)?;
    let json = cli.json;
    let r = command(&mut app, cli.command, json, out).await;
    for w in app.warnings.drain(..) {
        out.stderr.push(if json {
            serde_json::json!({"event": "warning", "message": w}).to_string()
        } else {
            format!("warning: {w}")
        });
    }
    r
}

async fn command(app: &mut App, cmd: Command, json: bool, out: &mut Output) -> AppResult<()> {
    match cmd {
        Command::Init { root, replace } => {
            let (v, changed) = app.init(root.as_deref(), replace)?;
            out.stdout.push(line(
                json,
                "init",
                &serde_json::json!({"root_version": v, "changed": changed}),
                if changed {
                    format!("pinned root version {v}")
                } else {
                    format!("root version {v} is already pinned")
                },
            ));
        }
        Command::Update { scheduled } => {
            app.pinned_root()?;
            if scheduled {
                random_delay(app.config.privacy.random_delay).await;
            }
            let t = app.transport().await?;
            let deadline = tokio::time::Instant::now() + app.config.download.deadline;
            let (r, ..) = commands::update(app, &t, deadline).await?;
            let human = format!(
                "metadata up to date from {} (timestamp version {})",
                r.mirror,
                r.timestamp_version.unwrap_or(0)
            );
            out.stdout.push(line(json, "update", &r, human));
        }
        Command::Download {
            names,
            all,
            scheduled,
        } => {
            if names.is_empty() && !all {
                return Err(AppError::Usage("name targets to download, or --all".into()));
            }
            app.pinned_root()?;
            if scheduled {
                random_delay(app.config.privacy.random_delay).await;
            }
            let t = app.transport().await?;
            // Bars only for a person at a terminal; logs and pipes stay quiet.
            let bars = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            for d in commands::download_targets(app, &t, &names, all, bars).await? {
                let human = downloaded_line(&d);
                out.stdout.push(line(json, "downloaded", &d, human));
            }
        }
        Command::Check { scheduled } => {
            app.pinned_root()?;
            if scheduled {
                random_delay(app.config.privacy.random_delay).await;
            }
            let t = app.transport().await?;
            let announced = app.check_announcement(&t).await?;
            if let Some(a) = &announced {
                let fallback = app
                    .config
                    .announcement
                    .as_ref()
                    .is_some_and(|c| c.fallback_to_mirror);
                if a.serial().is_none() {
                    let state = match &a.problem {
                        Some(p) => format!("{}: {p}", a.state.name()),
                        None => a.state.name().to_owned(),
                    };
                    if !fallback {
                        return Err(AppError::Usage(format!(
                            "no usable update announcement ({state}), and asking a mirror \
                             instead is turned off"
                        )));
                    }
                    app.warnings
                        .push(format!("update announcement: {state}; asking a mirror"));
                }
            }
            let r = commands::check(app, Some(&t), announced.as_ref()).await?;
            let human = if r.update_available && r.source == "pending" {
                format!(
                    "update available: the downloads of timestamp version {} did not complete",
                    r.trusted.map_or_else(|| "-".into(), |v| v.to_string()),
                )
            } else if r.update_available {
                format!(
                    "update available: timestamp version {} (trusted {}), from the {}",
                    r.available.map_or_else(|| "-".into(), |v| v.to_string()),
                    r.trusted.map_or_else(|| "none".into(), |v| v.to_string()),
                    if r.source == "announcement" {
                        "announcement"
                    } else {
                        "mirror"
                    },
                )
            } else if r.source == "announcement" {
                "up to date (by the announcement; no mirror contacted)".to_owned()
            } else {
                "up to date".to_owned()
            };
            if r.update_available {
                out.code = exit::UPDATE_AVAILABLE;
            }
            out.stdout.push(line(json, "check", &r, human));
        }
        Command::Status => {
            let s = commands::status(app)?;
            let human = format!(
                "root version: {}\nmetadata: {} (timestamp version {}, expires {})\nmirror list: {}\nclock: {}{}\nlast mirror: {}",
                s.root_version
                    .map_or_else(|| "none (run init)".into(), |v| v.to_string()),
                s.metadata_state,
                s.timestamp_version
                    .map_or_else(|| "-".into(), |v| v.to_string()),
                s.timestamp_expires
                    .map_or_else(|| "-".into(), |t| t.to_string()),
                match (s.mirror_list_version, s.mirror_list_expires) {
                    (Some(v), Some(e)) => format!(
                        "version {v}, expires {e}, cached {}",
                        s.mirror_list_updated
                            .map_or_else(|| "-".into(), |t| t.to_string())
                    ),
                    _ => "none cached (main mirrors only)".into(),
                },
                s.clock,
                s.time_floor
                    .map_or(String::new(), |f| format!(" (signed time floor {f})")),
                s.last_mirror
                    .as_ref()
                    .map_or_else(|| "-".into(), |(m, t)| format!("{m} at {t}")),
            );
            out.stdout.push(line(json, "status", &s, human));
        }
        Command::Feeds {
            action: FeedsAction::Sync { names, scheduled },
        } => {
            if let Some(bad) = names.iter().find(|n| !is_feed_name(n)) {
                return Err(AppError::Usage(format!("{bad:?} is not a feed name")));
            }
            app.pinned_root()?;
            if scheduled {
                random_delay(app.config.privacy.random_delay).await;
            }
            let t = app.transport().await?;
            let bars = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let selection = commands::Selection::Feeds(names);
            let done = commands::download_selection(app, &t, &selection, bars).await?;
            for d in &done {
                let human = downloaded_line(d);
                out.stdout.push(line(json, "feed", d, human));
            }
            for r in crate::hooks::run_on_update(app, &done).await? {
                let human = r.human();
                if r.ok {
                    out.stdout.push(line(json, "action", &r, human));
                } else {
                    out.code = exit::ACTION_FAILED;
                    out.stderr.push(line(json, "action", &r, human));
                }
            }
        }
        Command::Mirrors => {
            for m in commands::mirrors(app)? {
                let human = match (&m.bad_until, &m.reason) {
                    (Some(u), Some(r)) => format!("{} {} bad until {u}: {r}", m.name, m.url),
                    _ => format!("{} {} ok", m.name, m.url),
                };
                out.stdout.push(line(json, "mirror", &m, human));
            }
        }
    }
    Ok(())
}
