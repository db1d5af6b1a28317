//! The command line of `onionpkg-mirror` and what each command does.
//!
//! The binary only parses arguments, sets up logging and maps errors to the
//! exit codes documented on [`exit_code`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use onionpkg_core::HasKind;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::app::Mirror;
use crate::state::State;
use crate::{Error, Result};

/// How long in-flight requests may take to finish after SIGTERM.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// `onionpkg-mirror`: serve and sync an onionpkg repository.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-mirror", version, about, after_help = onionpkg_core::exit::help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the repository tree on the configured listeners until SIGTERM.
    Serve {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Sync the repository once from upstream, verifying it first.
    Sync {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Sync from this URL instead of `sync.upstream` (the same rules: https,
        /// an onion service, or plain http to a loopback address without Tor).
        #[arg(long)]
        upstream: Option<String>,
        /// Print JSON lines: the report on stdout, an error on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Third-party feeds: fetch them now, or show how they are doing.
    Feeds {
        /// What to do with the feeds.
        #[command(subcommand)]
        action: FeedsAction,
    },
    /// Check the configuration and the files `serve` reads at start, reading
    /// only (no listener, no network): exit 0 when it can start, 3 when not.
    CheckConfig {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON lines: the report on stdout, an error on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Print the onion address, the last sync and the served version.
    Status {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON lines: the report on stdout, an error on stderr.
        #[arg(long)]
        json: bool,
    },
}

/// What `feeds` does.
#[derive(Debug, Subcommand)]
pub enum FeedsAction {
    /// Fetch, check and store the feeds once (and publish them on the
    /// primary); exit 6 if any failed. The last good versions stay.
    Fetch {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Feed names; all configured feeds when none are given.
        names: Vec<String>,
    },
    /// Show each feed's current version and its last fetch.
    Status {
        /// The mirror configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The process exit code for `e`, from the table every onionpkg program
/// shares (`onionpkg_core::exit`, docs/EXIT-CODES.md): 2 bad usage or
/// configuration, 3 no state yet, 5 the clock is behind signed time, 6 the
/// upstream is unreachable or a feed failed, 7 Tor, 8 the upstream
/// repository failed verification (nothing was changed), 1 anything else
/// (a listener that cannot be bound, I/O).
pub fn exit_code(e: &Error) -> u8 {
    onionpkg_core::exit::code(e.kind())
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The onion address, if the service was launched.
    pub onion_address: Option<String>,
    /// The last successful sync.
    pub last_sync: Option<jiff::Timestamp>,
    /// The last failed sync and why.
    pub last_sync_error_at: Option<jiff::Timestamp>,
    /// Why the last sync failed.
    pub last_sync_error: Option<String>,
    /// The served `timestamp.json` version.
    pub served_version: Option<u64>,
    /// When `serve` last started.
    pub serving_since: Option<jiff::Timestamp>,
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".to_owned());
        writeln!(f, "onion address: {}", or_none(self.onion_address.clone()))?;
        writeln!(
            f,
            "last sync: {}",
            or_none(self.last_sync.map(|t| t.to_string()))
        )?;
        if let (Some(at), Some(why)) = (&self.last_sync_error_at, &self.last_sync_error) {
            writeln!(f, "last sync error: {at}: {why}")?;
        }
        writeln!(
            f,
            "served version: {}",
            or_none(self.served_version.map(|v| v.to_string()))
        )?;
        write!(
            f,
            "serving since: {}",
            or_none(self.serving_since.map(|t| t.to_string()))
        )
    }
}

/// The `status` report of the mirror configured at `config`.
pub fn status(config: &std::path::Path) -> Result<StatusReport> {
    let config = onionpkg_config::load_mirror(config)?;
    let s = State::load(&config.state_dir)?;
    Ok(StatusReport {
        onion_address: s.onion_address,
        last_sync: s.last_sync,
        last_sync_error_at: s.last_sync_error_at,
        last_sync_error: s.last_sync_error,
        served_version: s.served_version,
        serving_since: s.serving_since,
    })
}

/// `serve`: runs until SIGTERM or SIGINT; SIGHUP reloads the TLS certificate.
pub async fn serve(config: &std::path::Path) -> Result<()> {
    let config = onionpkg_config::load_mirror(config)?;
    let l = &config.limits;
    crate::nofile::raise(
        [
            l.max_connections,
            l.max_onion_streams,
            l.max_metrics_connections,
        ]
        .iter()
        .map(|&n| u64::from(n))
        .sum(),
    );
    let mut mirror = Mirror::start(&config).await?;
    let io_err = |e| Error::io("installing a signal handler for", "the process")(e);
    let mut term = signal(SignalKind::terminate()).map_err(io_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err)?;
    let mut hup = signal(SignalKind::hangup()).map_err(io_err)?;

    // One Tor client for the onion service and for syncing: two clients
    // would contend for the same state dir.
    let sync_via_tor = config.sync.as_ref().is_some_and(|s| s.via_tor);
    let feeds_via_tor = config.feed.iter().any(|f| f.via_tor);
    let (tor_tx, mut tor_rx) = tokio::sync::mpsc::channel(1);
    if config.onion.enabled || sync_via_tor || feeds_via_tor {
        let settings = onionpkg_net::tor::TorSettings::from(&config.tor);
        tokio::spawn(async move {
            let _ = tor_tx
                .send(onionpkg_net::tor::bootstrap(&settings).await)
                .await;
        });
    }
    // One TLS setup for every scheduled sync; a bad extra CA stops here.
    let sync_tls = match &config.sync {
        Some(_) => Some(crate::sync::tls(&config)?),
        None => None,
    };
    let mut sync_task = match &sync_tls {
        Some(tls) if !sync_via_tor => crate::sync::spawn_schedule(
            &config,
            mirror.metrics(),
            crate::sync::transport(&config, tls.clone(), None)?,
        ),
        _ => None,
    };
    // Feeds start with the first Tor client when any of them needs one.
    let mut feed_tasks = if feeds_via_tor {
        Vec::new()
    } else {
        crate::feeds::Feeds::new(&config, None)?.spawn_schedules()
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match mirror.reload_tls() {
                Ok(()) => info!("tls certificate reloaded"),
                Err(e) => error!(error = %e, "tls reload failed; keeping the old certificate"),
            },
            Some(client) = tor_rx.recv() => {
                let client = client?;
                if config.onion.enabled {
                    let address = mirror.launch_onion(&client)?.to_owned();
                    info!(%address, "serving the onion service");
                }
                let tor = onionpkg_net::tor::TorTransport::new(client);
                if let (true, Some(tls)) = (sync_via_tor, &sync_tls) {
                    let transport =
                        crate::sync::transport(&config, tls.clone(), Some(tor.clone()))?;
                    sync_task = crate::sync::spawn_schedule(&config, mirror.metrics(), transport);
                }
                if feeds_via_tor {
                    feed_tasks = crate::feeds::Feeds::new(&config, Some(tor))?.spawn_schedules();
                }
            }
        }
    }
    info!("shutting down");
    if let Some(t) = sync_task.take() {
        t.abort();
    }
    for t in feed_tasks.drain(..) {
        t.abort();
    }
    if !mirror.shutdown(SHUTDOWN_DEADLINE).await {
        warn!("some connections were cut at the shutdown deadline");
    }
    Ok(())
}

/// One feed in the `feeds status` report.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    /// The feed's name.
    pub name: String,
    /// Its target path when published.
    pub target: String,
    /// Its recorded status.
    #[serde(flatten)]
    pub status: crate::feeds::store::FeedStatus,
    /// Its version floor: the newest version time accepted.
    pub floor: Option<crate::feeds::floor::Floor>,
    /// Why the floor file cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_error: Option<String>,
}

impl std::fmt::Display for FeedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.status;
        write!(f, "{} ({}): ", self.name, self.target)?;
        match &s.current {
            Some(v) => {
                write!(f, "sha256 {} ({} bytes, {}", v.sha256, v.size, v.summary)?;
                if let Some(t) = &v.version_time {
                    write!(f, ", version time {} ({})", t.time, t.from)?;
                }
                write!(f, "), fetched {}", v.fetched_at)?;
            }
            None => write!(f, "no good version yet")?,
        }
        match (&self.floor, &self.floor_error) {
            (_, Some(e)) => write!(f, "; version floor unreadable: {e}")?,
            (Some(floor), None) => {
                write!(f, "; version floor {} ({})", floor.time, floor.from)?;
            }
            (None, None) if s.current.is_some() => write!(
                f,
                "; no version floor: no version time (no minisign timestamp, no date in \
                 the format), so an older version is not told from a newer one"
            )?,
            (None, None) => {}
        }
        if let Some(v) = s.published_version {
            write!(f, "; published in timestamp version {v}")?;
        }
        if let (Some(at), Some(why)) = (&s.last_error_at, &s.last_error) {
            write!(f, "; last fetch failed at {at}: {why}")?;
        }
        Ok(())
    }
}

/// `feeds status`: every configured feed's status.
pub fn feeds_status(config: &std::path::Path) -> Result<Vec<FeedReport>> {
    let config = onionpkg_config::load_mirror(config)?;
    config
        .feed
        .iter()
        .map(|f| {
            let store = crate::feeds::store::FeedStore::new(&config.state_dir, &f.name);
            let (floor, floor_error) = match store.floor() {
                Ok(floor) => (floor, None),
                Err(e) => (None, Some(e.to_string())),
            };
            Ok(FeedReport {
                name: f.name.clone(),
                target: format!("feeds/{}/{}", f.name, f.file_name()),
                status: store.status()?,
                floor,
                floor_error,
            })
        })
        .collect()
}

/// `feeds fetch`: fetches the feeds in `names` (all when empty) once;
/// returns one line per feed, or [`Error::FeedsFailed`] if any failed.
pub async fn feeds_fetch(config: &std::path::Path, names: &[String]) -> Result<Vec<String>> {
    let config = onionpkg_config::load_mirror(config)?;
    if let Some(unknown) = names
        .iter()
        .find(|n| !config.feed.iter().any(|f| &f.name == *n))
    {
        return Err(Error::UnknownFeed(unknown.clone()));
    }
    let wanted = config
        .feed
        .iter()
        .filter(|f| names.is_empty() || names.contains(&f.name));
    let tor = if wanted.clone().any(|f| f.via_tor) {
        let client =
            onionpkg_net::tor::bootstrap(&onionpkg_net::tor::TorSettings::from(&config.tor))
                .await?;
        Some(onionpkg_net::tor::TorTransport::new(client))
    } else {
        None
    };
    let feeds = crate::feeds::Feeds::new(&config, tor)?;
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (name, outcome) in feeds.fetch_all(names).await {
        match outcome {
            Ok(crate::feeds::Outcome::New(v)) => lines.push(format!(
                "{name}: new version {} ({} bytes, {})",
                v.sha256, v.size, v.summary
            )),
            Ok(crate::feeds::Outcome::Unchanged(v)) => {
                lines.push(format!("{name}: unchanged ({})", v.sha256));
            }
            Err(e) => {
                lines.push(format!(
                    "{name}: failed, keeping the last good version: {e}"
                ));
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(lines)
    } else {
        Err(Error::FeedsFailed(lines.join("\n")))
    }
}

/// `sync`: one verified sync from `upstream` or `sync.upstream`.
pub async fn sync(
    config: &std::path::Path,
    upstream: Option<&str>,
) -> Result<crate::sync::SyncReport> {
    let config = onionpkg_config::load_mirror(config)?;
    if config.sync.is_none() {
        return Err(Error::NoSync);
    }
    let clock = crate::sync::clock_policy(&config)?;
    let transport = crate::sync::sync_transport(&config).await?;
    crate::sync::sync_and_record(&config, upstream, &transport, &clock, None).await
}
