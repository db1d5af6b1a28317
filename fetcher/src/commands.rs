//! The network commands: `update`, `download`, `check`, and the local
//! `status`, `mirrors` and `check-config`, each returning a report for the
//! command line.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use onionpkg_trust::announce::Announcement;
use onionpkg_trust::metadata::{Client, VerifyError, stored_target_path};
use onionpkg_trust::roles;
use serde::Serialize;
use tokio::time::Instant;

use crate::announce::DnsCheck;
use onionpkg_core::ErrorKind;

use crate::context::App;
use crate::download::{DownloadError, DownloadLimits, Job, OutDir, already_there, download};
use crate::err::{AppError, AppResult, Attempt};
use crate::select::Candidate;
use crate::state::{Completed, Health, Kind};
use crate::state::{trusted_timestamp_expiry, trusted_timestamp_version};
use onionpkg_net::transport::Transport;

/// What `update` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// The mirror the metadata came from.
    pub mirror: String,
    /// The trusted timestamp version now.
    pub timestamp_version: Option<u64>,
    /// The trusted snapshot version now.
    pub snapshot_version: Option<u64>,
    /// The mirror list version cached by this run, if a fresh one was fetched.
    pub mirror_list_version: Option<u64>,
}

/// Refreshes metadata and the mirror list, all by `deadline`.
pub async fn update(
    app: &mut App,
    transport: &Arc<Transport>,
    deadline: Instant,
) -> AppResult<(UpdateReport, Client, Candidate, Timestamp)> {
    let (mut client, mirror, now) = app.refresh(transport, deadline).await?;
    let mirror_list_version = app.refresh_mirror_list(&mut client, now).await;
    let report = UpdateReport {
        mirror: mirror.url.to_string(),
        timestamp_version: client.timestamp_version(),
        snapshot_version: client.snapshot_version(),
        mirror_list_version,
    };
    Ok((report, client, mirror, now))
}

/// One downloaded target.
#[derive(Debug, Clone, Serialize)]
pub struct Downloaded {
    /// The target path.
    pub target: String,
    /// Where it is now.
    pub file: PathBuf,
    /// Its length.
    pub length: u64,
    /// The mirror it came from; `None` if it was already in place.
    pub mirror: Option<String>,
}

/// Which targets to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These target paths.
    Names(Vec<String>),
    /// Every target of the top-level targets role (the packages).
    AllPackages,
    /// The files of these feeds (`feeds/NAME/*`); every feed when empty.
    Feeds(Vec<String>),
}

/// Refreshes, then downloads `names` (or every package with `all`); with
/// `progress`, draws a bar per download on stderr.
pub async fn download_targets(
    app: &mut App,
    transport: &Arc<Transport>,
    names: &[String],
    all: bool,
    progress: bool,
) -> AppResult<Vec<Downloaded>> {
    let selection = if all {
        Selection::AllPackages
    } else {
        Selection::Names(names.to_vec())
    };
    download_selection(app, transport, &selection, progress).await
}

/// The target paths `selection` names in the trusted metadata.
async fn select(
    app: &App,
    client: &mut Client,
    selection: &Selection,
    now: Timestamp,
) -> AppResult<Vec<String>> {
    Ok(match selection {
        Selection::Names(names) => names.clone(),
        Selection::AllPackages => {
            // Bins unchanged since the last run come from the local store.
            let expiry_now = app.clock().expiry_now(now);
            for bin in client.delegated_roles() {
                if roles::is_bin(&bin) {
                    client.load_delegated(&bin, expiry_now).await?;
                }
            }
            client
                .known_targets()
                .into_iter()
                .filter(|(role, _)| roles::is_package_role(role))
                .map(|(_, p)| p)
                .collect()
        }
        Selection::Feeds(feeds) => {
            client
                .load_delegated(roles::FEEDS, app.clock().expiry_now(now))
                .await?;
            let files: Vec<String> = client
                .known_targets()
                .into_iter()
                .filter(|(role, _)| role == roles::FEEDS)
                .map(|(_, p)| p)
                .collect();
            let feed_of = |p: &str| p.split('/').nth(1).map(str::to_owned);
            if let Some(missing) = feeds.iter().find(|f| {
                !files
                    .iter()
                    .any(|p| feed_of(p).as_deref() == Some(f.as_str()))
            }) {
                return Err(VerifyError::TargetNotFound(format!("feeds/{missing}/")).into());
            }
            files
                .into_iter()
                .filter(|p| feeds.is_empty() || feed_of(p).is_some_and(|f| feeds.contains(&f)))
                .collect()
        }
    })
}

/// Refreshes, then downloads what `selection` names into the output
/// directory, each file verified and renamed into place; with `progress`,
/// draws a bar per download on stderr.
pub async fn download_selection(
    app: &mut App,
    transport: &Arc<Transport>,
    selection: &Selection,
    progress: bool,
) -> AppResult<Vec<Downloaded>> {
    let started = Instant::now();
    let deadline = started + app.config().download.deadline;
    let (_report, mut client, first, now) = update(app, transport, deadline).await?;
    let names = select(app, &mut client, selection, now).await?;
    let consistent = client.root().consistent_snapshot;
    let mut jobs = Vec::new();
    for name in &names {
        if !roles::is_safe_target_path(name) {
            return Err(AppError::Usage(format!("unsafe target name {name:?}")));
        }
        let info = client
            .target_info(name, app.clock().expiry_now(now))
            .await?;
        let remote_path = stored_target_path(name, &info, consistent)?;
        jobs.push(Job {
            path: name.clone(),
            info,
            remote_path,
        });
    }
    let out_path = app.config().output_dir.clone();
    let out = OutDir::open(&out_path).map_err(|source| AppError::Io {
        path: out_path.clone(),
        source,
    })?;
    let limits = DownloadLimits {
        min_throughput: app.config().download.min_throughput,
        window: app.config().download.throughput_window,
        deadline,
    };
    // The mirror that gave the metadata first, then the others in order.
    let mut order = vec![first.clone()];
    order.extend(
        app.candidates(transport.is_tor(), now)?
            .into_iter()
            .filter(|c| c.url != first.url),
    );
    let parallel = usize::from(app.config().download.parallelism.max(1));
    let app_ref = &*app;
    let bars = progress.then(indicatif::MultiProgress::new);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let results: Vec<AppResult<Downloaded>> = futures::stream::iter(jobs)
        .map(|job| {
            let order = &order;
            let out = &out;
            let limits = &limits;
            let bar = bars.as_ref().map(|m| {
                m.add(
                    indicatif::ProgressBar::new(job.info.length)
                        .with_style(style.clone())
                        .with_message(job.path.clone()),
                )
            });
            async move {
                let r = fetch_one(
                    app_ref,
                    transport,
                    order,
                    &job,
                    out,
                    limits,
                    now,
                    bar.as_ref(),
                )
                .await;
                if let Some(b) = bar {
                    b.finish();
                }
                r
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let done: Vec<Downloaded> = results.into_iter().collect::<AppResult<_>>()?;
    // Only a download of everything catches up with the metadata.
    let kind = match selection {
        Selection::AllPackages => Some(Kind::Packages),
        Selection::Feeds(names) if names.is_empty() => Some(Kind::Feeds),
        _ => None,
    };
    if let (Some(kind), Some(version)) = (kind, client.timestamp_version()) {
        Completed::record(&app.state().completed(), kind, version)?;
    }
    Ok(done)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; all of one download"
)]
async fn fetch_one(
    app: &App,
    transport: &Transport,
    order: &[Candidate],
    job: &Job,
    out: &OutDir,
    limits: &DownloadLimits,
    now: Timestamp,
    bar: Option<&indicatif::ProgressBar>,
) -> AppResult<Downloaded> {
    if already_there(out, job) {
        return Ok(Downloaded {
            target: job.path.clone(),
            file: out.dest(&job.path),
            length: job.info.length,
            mirror: None,
        });
    }
    let mut tried = Vec::new();
    for (i, c) in order.iter().enumerate() {
        match download(transport, &c.url, job, out, limits, bar).await {
            Ok(file) => {
                return Ok(Downloaded {
                    target: job.path.clone(),
                    file,
                    length: job.info.length,
                    mirror: Some(c.url.to_string()),
                });
            }
            Err(DownloadError::Local { path, source }) => {
                return Err(AppError::Io { path, source });
            }
            Err(DownloadError::Deadline) => {
                tried.push(Attempt::new(
                    &c.url,
                    format!("{}: the download deadline passed", job.path),
                    ErrorKind::Network,
                ));
                break;
            }
            Err(DownloadError::Unverified(reason)) => {
                app.mark_bad(&c.url, &reason, now)?;
                refused(app, c, job, &reason, i + 1 < order.len());
                let reason = format!("{}: {reason}", job.path);
                tried.push(Attempt::new(&c.url, reason, ErrorKind::Verification));
            }
            Err(DownloadError::Mirror(reason)) => {
                app.mark_bad(&c.url, &reason, now)?;
                refused(app, c, job, &reason, i + 1 < order.len());
                let reason = format!("{}: {reason}", job.path);
                tried.push(Attempt::new(&c.url, reason, ErrorKind::Network));
            }
            Err(e) => tried.push(Attempt::new(
                &c.url,
                format!("{}: {e}", job.path),
                ErrorKind::Network,
            )),
        }
    }
    Err(AppError::AllMirrorsFailed { tried })
}

/// Tells the operator that `c` sent `job` wrong (tampered, or too slowly)
/// and is in its cooldown, and whether another mirror is tried: without
/// it, a fallback that succeeds would hide a tampering mirror.
fn refused(app: &App, c: &Candidate, job: &Job, reason: &str, next: bool) {
    tracing::warn!(mirror = %c.url, target = %job.path, %reason, next, "download refused");
    app.warn(format!(
        "mirror {} ({}) refused for {}: {reason}; {}",
        c.url,
        c.name,
        job.path,
        if next {
            "trying the next mirror"
        } else {
            "no mirror left to try"
        }
    ));
}

/// How close to its expiry the trusted timestamp may be before `check`
/// asks a mirror whatever the announcement says: a record naming the
/// trusted timestamp must not keep an appliance "up to date" on metadata
/// that is about to stop being valid.
pub const EXPIRY_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The trusted timestamp version before the check.
    pub trusted: Option<u64>,
    /// The version available.
    pub available: Option<u64>,
    /// Whether there is something new.
    pub update_available: bool,
    /// Where the answer came from: `announcement`, `pending` (an earlier
    /// update took the metadata but its downloads did not complete), or the
    /// mirror's base URL.
    pub source: String,
}

/// Is there an update? Asks the verified announcement first, if given;
/// otherwise (or if it does not settle the question) refreshes metadata
/// from a mirror. An update whose downloads did not complete is still
/// pending, and reported as available.
pub async fn check(
    app: &mut App,
    transport: Option<&Arc<Transport>>,
    dns: Option<&DnsCheck>,
) -> AppResult<CheckReport> {
    app.pinned_root()?;
    let store = app.state().metadata();
    let trusted = trusted_timestamp_version(&store);
    let pending = Completed::load(&app.state().completed())?.pending(trusted);
    let now = app.clock().now()?;
    if let Some(a) = dns.and_then(|d| d.announcement.as_ref()) {
        let current = trusted.is_some_and(|t| t == a.serial);
        if trusted.is_none_or(|t| a.serial > t) {
            return Ok(CheckReport {
                trusted,
                available: Some(a.serial),
                update_available: true,
                source: "announcement".into(),
            });
        }
        if current {
            match why_ask_a_mirror(app, &store, a, now) {
                Some(reason) => app.warn(format!("{reason}; asking a mirror")),
                None => {
                    return Ok(CheckReport {
                        trusted,
                        available: Some(a.serial),
                        update_available: pending,
                        source: if pending { "pending" } else { "announcement" }.into(),
                    });
                }
            }
        }
    }
    let Some(transport) = transport else {
        return Err(AppError::Usage("no transport to ask a mirror".into()));
    };
    let deadline = Instant::now() + app.config().download.deadline;
    let (client, mirror, _) = app.refresh(transport, deadline).await?;
    let available = client.timestamp_version();
    let newer = match (trusted, available) {
        (Some(t), Some(a)) => a > t,
        (None, Some(_)) => true,
        _ => false,
    };
    Ok(CheckReport {
        trusted,
        available,
        update_available: newer || pending,
        source: if pending && !newer {
            "pending".into()
        } else {
            mirror.url.to_string()
        },
    })
}

/// `check` as the command runs it: the DNS announcement first, when one is
/// configured (a missing or invalid record is a warning, and a mirror is
/// asked, unless `fallback_to_mirror` is off), then [`check`].
pub async fn check_all(app: &mut App, transport: &Arc<Transport>) -> AppResult<CheckReport> {
    let announced = app.check_announcement(transport).await?;
    if let Some(a) = &announced
        && a.serial().is_none()
    {
        let fallback = app
            .config()
            .announcement
            .as_ref()
            .is_some_and(|c| c.fallback_to_mirror);
        let state = match &a.problem {
            Some(p) => format!("{}: {p}", a.state.name()),
            None => a.state.name().to_owned(),
        };
        if !fallback {
            return Err(AppError::Usage(format!(
                "no usable update announcement ({state}), and asking a mirror instead is \
                 turned off"
            )));
        }
        app.warn(format!("update announcement: {state}; asking a mirror"));
    }
    check(app, Some(transport), announced.as_ref()).await
}

/// Why a verified announcement naming the trusted timestamp version does
/// not settle the check, if it does not: it names other bytes than the
/// trusted `timestamp.json` (equivocation), or the trusted timestamp
/// expires within [`EXPIRY_MARGIN`] (a record never extends trust beyond
/// the timestamp it names).
fn why_ask_a_mirror(
    app: &App,
    store: &std::path::Path,
    a: &Announcement,
    now: Timestamp,
) -> Option<String> {
    use sha2::Digest as _;
    let stored =
        crate::state::read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES).ok();
    let hash: Option<[u8; 32]> = stored.map(|b| sha2::Sha256::digest(&b).into());
    if hash != Some(a.timestamp_hash) {
        return Some(format!(
            "the announcement names timestamp version {} with another hash than the trusted \
             one (two signed timestamps of one version: equivocation, or a damaged store)",
            a.serial
        ));
    }
    let expires = trusted_timestamp_expiry(store)?;
    let soon = expires.checked_sub(EXPIRY_MARGIN).unwrap_or(expires);
    if app.clock().is_expired(soon, now) {
        return Some(format!(
            "the trusted timestamp (version {}) expires at {expires}",
            a.serial
        ));
    }
    None
}

/// What `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The version of the newest root trusted (the pinned one, or one
    /// verified from it since), if initialized.
    pub root_version: Option<u64>,
    /// The version of the root pinned by `init` (or from `trust_root`).
    pub pinned_root_version: Option<u64>,
    /// The trusted timestamp version.
    pub timestamp_version: Option<u64>,
    /// When the trusted timestamp expires.
    pub timestamp_expires: Option<Timestamp>,
    /// `ok`, `expired`, `not-initialized` or `never-updated`.
    pub metadata_state: String,
    /// The cached mirror list's version.
    pub mirror_list_version: Option<u64>,
    /// When it expires.
    pub mirror_list_expires: Option<Timestamp>,
    /// When it was last written.
    pub mirror_list_updated: Option<Timestamp>,
    /// The clock: `ok`, or why it is not trusted.
    pub clock: String,
    /// The signed time floor.
    pub time_floor: Option<Timestamp>,
    /// The last mirror an update came from, and when.
    pub last_mirror: Option<(String, Timestamp)>,
}

/// Reads the local state; contacts nobody.
pub fn status(app: &App) -> AppResult<StatusReport> {
    // Read only: status never pins `trust_root` itself.
    let version_of_root = |path: &std::path::Path| {
        crate::state::read_capped(path, roles::ROOT_MAX_BYTES)
            .ok()
            .and_then(|b| onionpkg_trust::metadata::check_root(&b).ok())
            .map(|r| r.version)
    };
    let store = app.state().metadata();
    let pinned_root_version = version_of_root(&app.state().root());
    let root_version = pinned_root_version
        .and_then(|_| version_of_root(&store.join("root.json")).or(pinned_root_version));
    let timestamp_expires = trusted_timestamp_expiry(&store);
    let (clock, now) = match app.clock().now() {
        Ok(t) => ("ok".to_owned(), Some(t)),
        Err(e) => (e.to_string(), None),
    };
    let metadata_state = match (root_version, timestamp_expires, now) {
        (None, _, _) => "not-initialized",
        (_, None, _) => "never-updated",
        (_, Some(e), Some(n)) if app.clock().is_expired(e, n) => "expired",
        _ => "ok",
    }
    .to_owned();
    let cache = app.mirror_cache()?;
    let mirror_list_updated = std::fs::metadata(app.state().mirrors())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok());
    Ok(StatusReport {
        root_version,
        pinned_root_version,
        timestamp_version: trusted_timestamp_version(&store),
        timestamp_expires,
        metadata_state,
        mirror_list_version: cache.list().map(|l| l.version()),
        mirror_list_expires: cache.list().map(|l| l.expires()),
        mirror_list_updated,
        clock,
        time_floor: app.clock().floor().get(),
        last_mirror: Health::load(&app.state().health())?.last_used,
    })
}

/// One line of `mirrors`.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorRow {
    /// The name (`main` for a configured main mirror).
    pub name: String,
    /// The base URL used with the configured transport.
    pub url: String,
    /// `ok` or `bad`.
    pub health: String,
    /// Until when it is avoided.
    pub bad_until: Option<Timestamp>,
    /// Why it is avoided.
    pub reason: Option<String>,
}

/// The mirrors in the order they would be tried now, with their health.
pub fn mirrors(app: &mut App) -> AppResult<Vec<MirrorRow>> {
    let now = app.clock().now()?;
    let via_tor = app.config().transport.reaches_onions();
    let health = Health::load(&app.state().health())?;
    Ok(app
        .candidates(via_tor, now)?
        .into_iter()
        .map(|c| {
            let bad = health.is_bad(c.url.as_str(), now);
            MirrorRow {
                health: if bad.is_some() { "bad" } else { "ok" }.into(),
                bad_until: bad.map(|b| b.until),
                reason: bad.map(|b| b.reason.clone()),
                name: c.name,
                url: c.url.to_string(),
            }
        })
        .collect())
}

/// What `check-config` found.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    /// The root the service would trust: the pinned one, else the configured
    /// `trust_root`, which it would pin on its first run.
    pub root_file: PathBuf,
    /// Its version.
    pub root_version: u64,
    /// Whether that root is pinned already.
    pub pinned: bool,
}

/// Checks what the service needs beyond a configuration that loads: a trust
/// root that passes the root checks, and the extra CA certificates and the
/// DNSSEC anchors when they are set. Reads only, contacts nobody and writes
/// nothing (a package's installer runs it before enabling the service; the
/// first run pins the configured root, this does not).
pub fn check_config(app: &App) -> AppResult<ConfigReport> {
    let pinned = app.state().root();
    let read = |path: &std::path::Path| {
        crate::state::read_capped(path, roles::ROOT_MAX_BYTES)
            .map(|b| (path.to_owned(), b))
            .map_err(|source| (path.to_owned(), source))
    };
    let (root_file, bytes) = match read(&pinned) {
        Err((_, e)) if e.kind() == std::io::ErrorKind::NotFound => read(&app.config().trust_root),
        other => other,
    }
    .map_err(|(path, source)| match source.kind() {
        std::io::ErrorKind::NotFound => AppError::NoTrustRoot {
            pinned: pinned.clone(),
            configured: app.config().trust_root.clone(),
        },
        _ => AppError::Io { path, source },
    })?;
    let root = onionpkg_trust::metadata::check_root(&bytes)?;
    onionpkg_net::transport::Tls::load(app.config().https.extra_ca.as_deref())
        .map_err(|e| AppError::Usage(format!("[https] extra_ca: {e}")))?;
    if let Some(anchors) = app
        .config()
        .announcement
        .as_ref()
        .and_then(|a| a.dnssec_anchors.as_deref())
    {
        onionpkg_announce::load_anchors(anchors)
            .map_err(|e| AppError::Usage(format!("[announcement] dnssec_anchors: {e}")))?;
    }
    Ok(ConfigReport {
        pinned: root_file == pinned,
        root_file,
        root_version: root.version,
    })
}
