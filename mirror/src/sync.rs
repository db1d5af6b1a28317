//! Syncing the served tree from upstream, verified exactly as a client would.
//!
//! Order of a sync, so a visitor never sees a half-synced or unverified tree:
//! 1. refresh the metadata with `onionpkg_trust::metadata::Client` against the
//!    configured root, its trusted versions persisted in the state dir
//!    (rollbacks are caught across runs), and resolve every target;
//! 2. download each target the tree lacks into a scratch dir inside the root
//!    (outside the served directories), streamed and verified with
//!    `TargetVerifier`, then fsync'd; a present target whose length or
//!    mtime differs from what sync recorded when it placed it ([`record`])
//!    is hashed, and downloaded again if it does not verify;
//! 3. only when everything verified: rename the targets into place, write the
//!    versioned metadata files, and `timestamp.json` last. The repository
//!    uses consistent snapshots, so that last rename is the publish.
//!
//! Anything failing before step 3 leaves the served tree as it was; a sync
//! killed midway leaves only the scratch dir, which the next sync clears.
//! Previous versioned files stay: clients may still ask for them.
//!
//! The network is `onionpkg_net`'s ([`upstream`]): one [`Transport`] per
//! schedule or command (Tor, or direct HTTPS with `[sync] extra_ca`, or
//! plain http to a loopback upstream), so TLS is set up once, not per
//! request.

mod record;
mod upstream;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use onionpkg_config::mirror::MirrorConfig;
use onionpkg_net::tor::TorTransport;
use onionpkg_net::transport::{Tls, Transport};
use onionpkg_trust::clock::{Clock, ClockPolicy, SystemClock, TimeFloor, Tolerance};
use onionpkg_trust::metadata::{Client, stored_target_path};
use onionpkg_trust::roles;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::state::{State, write_atomic};
use crate::{Error, Result};
use record::Record;
pub use record::TARGETS_RECORD;
use upstream::Upstream;

/// The scratch dir inside the root; not under a served directory.
pub const SCRATCH_DIR: &str = ".sync-tmp";

/// The signed time floor's file in the state dir.
pub const TIME_FLOOR: &str = "time-floor.json";

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The timestamp version now served.
    pub version: u64,
    /// Targets downloaded.
    pub downloaded: usize,
    /// Targets already present.
    pub present: usize,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "synced: serving timestamp version {} ({} target(s) downloaded, {} already present)",
            self.version, self.downloaded, self.present
        )
    }
}

/// Sync's clock policy: the system clock, `[clock] skew_tolerance`, and
/// the time floor kept in the state dir.
pub fn clock_policy(config: &MirrorConfig) -> Result<ClockPolicy> {
    clock_policy_with(config, Box::new(SystemClock))
}

/// Like [`clock_policy`], reading the time from `clock` (tests, tools).
pub fn clock_policy_with(config: &MirrorConfig, clock: Box<dyn Clock>) -> Result<ClockPolicy> {
    let tolerance = Tolerance::from_secs(config.clock.skew_tolerance.as_secs())?;
    let path = config.state_dir.join(TIME_FLOOR);
    let floor = TimeFloor::load(&path).map_err(|e| match e {
        onionpkg_trust::Error::Clock(c) => Error::Clock(c),
        onionpkg_trust::Error::Io { source, .. } => Error::io("reading", &path)(source),
        e => Error::io("reading", &path)(std::io::Error::other(e.to_string())),
    })?;
    Ok(ClockPolicy::new(clock, tolerance, floor))
}

/// Syncs `config.root` once from `upstream` (a URL given for this run, by
/// the rules of `sync.upstream`) or `sync.upstream`, over `transport`.
///
/// The time comes from `clock`: refused when it is behind the signed time
/// floor by more than the tolerance, and expiry is checked at `now -
/// tolerance`. TUF metadata carries no issue time, so nothing sync verifies
/// raises the floor; it is checked all the same.
pub async fn sync_once(
    config: &MirrorConfig,
    upstream: Option<&str>,
    transport: &Arc<Transport>,
    clock: &ClockPolicy,
) -> Result<SyncReport> {
    let sync = config.sync.as_ref().ok_or(Error::NoSync)?;
    // The time every expiry is checked at: now, less the tolerance.
    let now = clock.expiry_now(clock.now()?);
    let url = match upstream {
        Some(u) => sync
            .parse_upstream(u)
            .map_err(|reason| Error::UpstreamUrl {
                url: u.to_owned(),
                reason,
            })?,
        None => sync.upstream.clone(),
    };
    std::fs::create_dir_all(&config.state_dir).map_err(Error::io("creating", &config.state_dir))?;
    // Held until this sync returns; the kernel drops it if the process dies.
    let _lock = lock(&config.state_dir.join("sync.lock"))?;
    let upstream = Upstream::new(Arc::clone(transport), &url)?;
    let root_bytes = read_capped(&sync.trust_root, roles::ROOT_MAX_BYTES).map_err(|e| match e {
        Error::Io(onionpkg_core::IoError { path, source, .. }) => Error::Root { path, source },
        e => e,
    })?;
    // The client's store advances only when a sync is published: a sync
    // that fails or is killed after verifying newer metadata must not make
    // the next one skip fetching (and so publishing) those files.
    let trusted = trusted_store(&config.state_dir);
    let store = config.state_dir.join("trust.next");
    let _ = std::fs::remove_dir_all(&store);
    copy_dir(&trusted, &store)?;
    let mut client = Client::new(&root_bytes, Some(&store), upstream.recording())?;
    client.refresh(now).await.map_err(|e| upstream.refused(e))?;
    for role in client.delegated_roles() {
        client
            .load_delegated(&role, now)
            .await
            .map_err(|e| upstream.refused(e))?;
    }
    let version = client.timestamp_version().unwrap_or(0);

    let root = &config.root;
    let scratch = root.join(SCRATCH_DIR);
    // Leftovers of a sync that was killed midway.
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(Error::io("creating", &scratch))?;

    let mut record = Record::load(&config.state_dir);
    let staged = stage_targets(&mut client, &upstream, root, &scratch, now, &mut record).await;
    let Staged {
        files,
        present,
        current,
    } = match staged {
        Ok(s) => s,
        Err(e) => {
            // Nothing of a refused sync stays behind, verified or not.
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };

    // Everything verified: publish. Targets first (a new one, or the
    // replacement of a damaged one), metadata next, timestamp.json last.
    let downloaded = files.len();
    for f in files {
        if let Some(dir) = f.dest.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        std::fs::rename(&f.tmp, &f.dest).map_err(Error::io("publishing", &f.dest))?;
        record.note(&f.rel, &f.dest, &f.hash);
    }
    let metadata_dir = root.join("metadata");
    let fetched = upstream.fetched();
    for (name, bytes) in &fetched {
        if name == "timestamp.json" || !is_versioned(name) {
            continue;
        }
        let dest = metadata_dir.join(name);
        // Versioned files never change upstream; one that differs here was
        // not put there by a verified sync, so the verified copy replaces it.
        if std::fs::read(&dest).ok().as_ref() != Some(bytes) {
            write_atomic(&dest, bytes)?;
        }
    }
    if let Some(ts) = fetched.get("timestamp.json") {
        write_atomic(&metadata_dir.join("timestamp.json"), ts)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    commit_store(&config.state_dir, &store)?;
    record.retain(&current);
    if let Err(e) = record.save() {
        // Published all the same; the next sync hashes the served targets.
        warn!(error = %e, "cannot write the target record");
    }
    info!(version, downloaded, present, "sync published");
    Ok(SyncReport {
        version,
        downloaded,
        present,
    })
}

/// A target downloaded and verified into the scratch dir.
struct StagedFile {
    /// The scratch file.
    tmp: PathBuf,
    /// Where it is published.
    dest: PathBuf,
    /// Its path under `targets/`.
    rel: String,
    /// Its signed hash ([`record::signed_hash`]).
    hash: String,
}

/// What [`stage_targets`] found and did.
struct Staged {
    /// Targets to publish.
    files: Vec<StagedFile>,
    /// Targets already in place and verified.
    present: usize,
    /// Every target the metadata lists, by path under `targets/`.
    current: BTreeSet<String>,
}

/// Downloads and verifies into `scratch` every target the tree lacks or
/// holds in a form that does not verify; a present target that `record`
/// does not vouch for is hashed first (and noted in it when it verifies).
async fn stage_targets(
    client: &mut Client,
    upstream: &Upstream,
    root: &Path,
    scratch: &Path,
    now: jiff::Timestamp,
    record: &mut Record,
) -> Result<Staged> {
    let mut staged = Staged {
        files: Vec::new(),
        present: 0,
        current: BTreeSet::new(),
    };
    for (_, path) in client.known_targets() {
        let info = client
            .target_info(&path, now)
            .await
            .map_err(|e| upstream.refused(e))?;
        let rel = stored_target_path(&path, &info, true)?;
        let hash = record::signed_hash(&info);
        if !roles::is_safe_target_path(&rel) {
            return Err(onionpkg_trust::metadata::VerifyError::Malformed(format!(
                "unsafe target path {path:?}"
            ))
            .into());
        }
        staged.current.insert(rel.clone());
        let dest = root.join("targets").join(&rel);
        if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == info.length) {
            if record.unchanged(&rel, &dest, &hash) {
                staged.present += 1;
                continue;
            }
            if record::verifies(&path, &info, &dest).await {
                record.note(&rel, &dest, &hash);
                staged.present += 1;
                continue;
            }
        }
        let tmp = scratch.join(format!("{}.part", staged.files.len()));
        upstream.download(&path, &rel, &info, &tmp).await?;
        staged.files.push(StagedFile {
            tmp,
            dest,
            hash,
            rel,
        });
    }
    Ok(staged)
}

/// The client store of the last published sync: `trust`, or `trust.old`
/// if a previous commit was cut between its two renames.
fn trusted_store(state_dir: &Path) -> PathBuf {
    let current = state_dir.join("trust");
    let old = state_dir.join("trust.old");
    if !current.exists() && old.exists() {
        old
    } else {
        current
    }
}

/// Makes `next` the trusted store.
fn commit_store(state_dir: &Path, next: &Path) -> Result<()> {
    let current = state_dir.join("trust");
    let old = state_dir.join("trust.old");
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old).map_err(Error::io("renaming", &current))?;
    }
    std::fs::rename(next, &current).map_err(Error::io("renaming", next))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Copies the regular files of `from` (if it exists) into a new dir `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(Error::io("creating", to))?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(Error::io("reading", from))?;
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name()))
                .map_err(Error::io("copying", &path))?;
        }
    }
    Ok(())
}

/// Takes the sync lock without waiting.
fn lock(path: &Path) -> Result<std::fs::File> {
    let file = onionpkg_trust::util::open_lock_file(path).map_err(Error::io("opening", path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| Error::SyncBusy(path.to_owned()))?;
    Ok(file)
}

/// `N.role.json`.
fn is_versioned(name: &str) -> bool {
    name.split_once('.').is_some_and(|(n, rest)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && rest.ends_with(".json")
    })
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(Error::io("reading", path))?;
    if meta.len() > max {
        return Err(Error::io("reading", path)(std::io::Error::other(format!(
            "larger than {max} bytes"
        ))));
    }
    std::fs::read(path).map_err(Error::io("reading", path))
}

/// Runs one sync and records its outcome in the state file and metrics.
pub async fn sync_and_record(
    config: &MirrorConfig,
    upstream: Option<&str>,
    transport: &Arc<Transport>,
    clock: &ClockPolicy,
    metrics: Option<&Metrics>,
) -> Result<SyncReport> {
    let result = sync_once(config, upstream, transport, clock).await;
    record(config, metrics, &result);
    result
}

/// Records a sync's outcome in the state file and metrics, at the system
/// clock's time (for the operator; no check depends on it).
fn record(config: &MirrorConfig, metrics: Option<&Metrics>, result: &Result<SyncReport>) {
    let now = jiff::Timestamp::now();
    let recorded = match &result {
        Ok(r) => {
            if let Some(m) = metrics {
                m.sync_ok(now.as_second(), r.version);
            }
            State::update(&config.state_dir, |s| {
                s.last_sync = Some(now);
                s.served_version = Some(r.version);
            })
        }
        Err(e) => {
            if let Some(m) = metrics {
                m.sync_failed(now.as_second(), &e.to_string());
            }
            State::update(&config.state_dir, |s| {
                s.last_sync_error_at = Some(now);
                s.last_sync_error = Some(e.to_string());
            })
        }
    };
    if let Err(e) = recorded {
        warn!(error = %e, "cannot record the sync in the state file");
    }
}

/// The roots an `https://` upstream is checked against: the Mozilla roots
/// and `[sync] extra_ca`.
pub fn tls(config: &MirrorConfig) -> Result<Tls> {
    let extra_ca = config.sync.as_ref().and_then(|s| s.extra_ca.as_deref());
    Tls::load(extra_ca).map_err(|e| Error::Tls {
        what: "[sync] extra_ca",
        path: extra_ca.map(Path::to_owned).unwrap_or_default(),
        reason: e.to_string(),
    })
}

/// How sync reaches upstream, for every sync of a schedule or command:
/// through `tor` when `[sync] via_tor` is set, directly otherwise (HTTPS,
/// or plain http to a loopback upstream).
pub fn transport(
    config: &MirrorConfig,
    tls: Tls,
    tor: Option<TorTransport>,
) -> Result<Arc<Transport>> {
    let sync = config.sync.as_ref().ok_or(Error::NoSync)?;
    Ok(Arc::new(match (sync.via_tor, tor) {
        (true, Some(tor)) => Transport::Tor { tor, tls },
        (true, None) => {
            return Err(Error::Tor(onionpkg_net::Error::Settings(
                "[sync] via_tor is set, but no tor client was started".into(),
            )));
        }
        (false, _) => Transport::Https {
            tls,
            loopback_http: true,
        },
    }))
}

/// The transport for one `onionpkg-mirror sync`: bootstraps Tor when
/// `[sync] via_tor` is set.
pub async fn sync_transport(config: &MirrorConfig) -> Result<Arc<Transport>> {
    let tls = tls(config)?;
    let tor = match &config.sync {
        Some(s) if s.via_tor => {
            let client =
                onionpkg_net::tor::bootstrap(&onionpkg_net::tor::TorSettings::from(&config.tor))
                    .await?;
            Some(TorTransport::new(client))
        }
        _ => None,
    };
    transport(config, tls, tor)
}

/// Starts syncing on the configured interval, if any: first at once, then
/// every interval; a failed sync is logged and retried at the next one.
pub fn spawn_schedule(
    config: &MirrorConfig,
    metrics: &Arc<Metrics>,
    transport: Arc<Transport>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = config.sync.as_ref()?.interval?;
    let config = config.clone();
    let metrics = Arc::clone(metrics);
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // The floor file is read again each time, as by a new process.
            let result = match clock_policy(&config) {
                Ok(clock) => {
                    sync_and_record(&config, None, &transport, &clock, Some(&metrics)).await
                }
                Err(e) => {
                    let result = Err(e);
                    record(&config, Some(&metrics), &result);
                    result
                }
            };
            match result {
                Ok(r) => info!(%r, "scheduled sync done"),
                Err(e) => warn!(error = %e, "scheduled sync failed; serving the last good tree"),
            }
        }
    }))
}

/// The served tree's scratch dir, for tests and cleanup.
pub fn scratch_dir(root: &Path) -> PathBuf {
    root.join(SCRATCH_DIR)
}
