//! Syncing the served tree from upstream, verified exactly as a client would.
//!
//! Order of a sync, so a visitor never sees a half-synced or unverified tree:
//! 1. refresh the metadata with `onionpkg_trust::metadata::Client` against the
//!    configured root, its trusted versions persisted in the state dir
//!    (rollbacks are caught across runs), and resolve every target;
//! 2. download each target the tree lacks into a scratch dir inside the root
//!    (outside the served directories), streamed and verified with
//!    [`TargetVerifier`], then fsync'd;
//! 3. only when everything verified: rename the targets into place, write the
//!    versioned metadata files, and `timestamp.json` last. The repository
//!    uses consistent snapshots, so that last rename is the publish.
//!
//! Anything failing before step 3 leaves the served tree as it was; a sync
//! killed midway leaves only the scratch dir, which the next sync clears.
//! Previous versioned files stay: clients may still ask for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use onionpkg_config::mirror::MirrorConfig;
use onionpkg_net::tor::{Purpose, TorTransport};
use onionpkg_trust::metadata::{Client, FetchError, Repository, TargetVerifier};
use onionpkg_trust::roles;
use sigstore_tuf::transport::FetchFuture;
use std::io::Write as _;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::state::{State, write_atomic};
use crate::{Error, Result};

/// The scratch dir inside the root; not under a served directory.
pub const SCRATCH_DIR: &str = ".sync-tmp";

/// Deadline for one metadata file.
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);
/// A target download fails when no byte arrives for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for one target, however large.
const TARGET_TIMEOUT: Duration = Duration::from_secs(3600);

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Where to sync from and how to get there.
#[derive(Clone)]
pub struct Upstream {
    https: bool,
    host: String,
    port: u16,
    base_path: String,
    tor: Option<TorTransport>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("via_tor", &self.tor.is_some())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Parses a base URL: `https://`, `http://` of an onion service, or
    /// `http://` of a loopback address (a repository on the same host). With
    /// `tor`, every connection goes through Tor.
    pub fn parse(url: &str, tor: Option<TorTransport>) -> Result<Self> {
        let bad = |reason: &str| Error::Upstream {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a valid url"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("only http:// and https:// urls are supported")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in urls are refused"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let onion = host.ends_with(".onion");
        let loopback = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if !https && !onion && !loopback {
            return Err(bad(
                "plain http only for onion services and loopback; use https",
            ));
        }
        if onion && tor.is_none() {
            return Err(bad("an onion upstream is only reachable through tor"));
        }
        let mut base_path = uri.path().to_owned();
        if !base_path.ends_with('/') {
            base_path.push('/');
        }
        Ok(Self {
            https,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            base_path,
            tor,
        })
    }

    fn describe(&self, rel: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!(
            "{scheme}://{}:{}{}{rel}",
            self.host, self.port, self.base_path
        )
    }

    /// GETs `rel` (below the base), passing the body to `sink` chunk by
    /// chunk, refusing more than `max` bytes. `Ok(false)` on 404.
    async fn get(
        &self,
        purpose: Purpose,
        rel: &str,
        max: u64,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> Result<bool> {
        let fail = |reason: String| Error::Upstream {
            url: self.describe(rel),
            reason,
        };
        let path = format!("{}{rel}", self.base_path);
        if let Some(tor) = &self.tor {
            let stream = tor
                .connect(purpose, &self.host, self.port)
                .await
                .map_err(|e| fail(e.to_string()))?;
            return self
                .exchange_maybe_tls(stream, &path, max, sink)
                .await
                .map_err(fail);
        }
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.exchange_maybe_tls(tcp, &path, max, sink)
            .await
            .map_err(fail)
    }

    async fn exchange_maybe_tls<S>(
        &self,
        stream: S,
        path: &str,
        max: u64,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> Result<bool, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !self.https {
            return exchange(stream, &self.host, path, max, sink).await;
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name =
            rustls_pki_types::ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())?;
        exchange(tls, &self.host, path, max, sink).await
    }
}

/// Aborts the connection task when the request is over or abandoned.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP/1.1 GET, the body streamed into `sink`, each chunk within
/// [`STALL_TIMEOUT`].
async fn exchange<S>(
    stream: S,
    host: &str,
    path: &str,
    max: u64,
    sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
) -> Result<bool, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "upstream connection ended");
        }
    }));
    let req = Request::get(path)
        .header(header::HOST, host)
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(STALL_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| "no response".to_owned())?
        .map_err(|e| e.to_string())?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Ok(false),
        s => return Err(format!("status {s}")),
    }
    if let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max
    {
        return Err(format!("larger than {max} bytes"));
    }
    let mut body = resp.into_body();
    let mut seen = 0u64;
    loop {
        let frame = tokio::time::timeout(STALL_TIMEOUT, body.frame())
            .await
            .map_err(|_| format!("stalled for {STALL_TIMEOUT:?}"))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len() as u64);
            if seen > max {
                return Err(format!("larger than {max} bytes"));
            }
            sink(&data).map_err(|e| e.to_string())?;
        }
    }
    Ok(true)
}

/// The metadata fetched during one refresh, by file name.
type Fetched = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// A [`Repository`] over the upstream that keeps a copy of every metadata
/// file it hands to the verifier, so exactly what was verified is published.
struct Recording {
    upstream: Upstream,
    fetched: Fetched,
}

impl Recording {
    async fn fetch(
        &self,
        dir: &str,
        name: &str,
        max: u64,
        timeout: Duration,
    ) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let failed = |reason: String| {
            FetchError::Failed {
                name: name.to_owned(),
                reason,
            }
            .into_tuf()
        };
        if !roles::is_safe_target_path(name) {
            return Err(failed("unsafe file name".into()));
        }
        let mut buf = Vec::new();
        let mut sink = |chunk: &[u8]| {
            buf.extend_from_slice(chunk);
            Ok(())
        };
        let rel = format!("{dir}/{name}");
        let got = tokio::time::timeout(
            timeout,
            self.upstream.get(Purpose::Metadata, &rel, max, &mut sink),
        )
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?;
        match got {
            Ok(true) => Ok(Some(buf)),
            Ok(false) => Ok(None),
            Err(Error::Upstream { reason, .. }) if reason.starts_with("larger than") => {
                Err(FetchError::TooLarge {
                    name: name.to_owned(),
                    limit: max,
                }
                .into_tuf())
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}

impl Repository for Recording {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let got = self
                .fetch("metadata", name, max_length, METADATA_TIMEOUT)
                .await?;
            if let (Some(bytes), Ok(mut map)) = (&got, self.fetched.lock()) {
                map.insert(name.to_owned(), bytes.clone());
            }
            Ok(got)
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            self.fetch("targets", path, max_length, TARGET_TIMEOUT)
                .await
        })
    }
}

/// Syncs `config.root` once from `upstream` (or `sync.upstream`).
pub async fn sync_once(
    config: &MirrorConfig,
    upstream: Option<&str>,
    tor: Option<TorTransport>,
) -> Result<SyncReport> {
    let sync = config.sync.as_ref().ok_or(Error::NoSync)?;
    std::fs::create_dir_all(&config.state_dir).map_err(Error::io("creating", &config.state_dir))?;
    // Held until this sync returns; the kernel drops it if the process dies.
    let _lock = lock(&config.state_dir.join("sync.lock"))?;
    let url = upstream.unwrap_or(sync.upstream.as_str());
    let upstream = Upstream::parse(url, tor)?;
    let root_bytes = read_capped(&sync.trust_root, roles::ROOT_MAX_BYTES).map_err(|e| match e {
        Error::Io { path, source, .. } => Error::Root { path, source },
        e => e,
    })?;
    // The client's store advances only when a sync is published: a sync
    // that fails or is killed after verifying newer metadata must not make
    // the next one skip fetching (and so publishing) those files.
    let trusted = trusted_store(&config.state_dir);
    let store = config.state_dir.join("trust.next");
    let _ = std::fs::remove_dir_all(&store);
    copy_dir(&trusted, &store)?;
    let fetched: Fetched = Arc::default();
    let repo = Recording {
        upstream: upstream.clone(),
        fetched: Arc::clone(&fetched),
    };
    let mut client = Client::new(&root_bytes, Some(&store), repo)?;
    let now = jiff::Timestamp::now();
    client.refresh(now).await?;
    for role in client.delegated_roles() {
        client.load_delegated(&role, now).await?;
    }
    let version = client.timestamp_version().unwrap_or(0);

    let root = &config.root;
    let scratch = root.join(SCRATCH_DIR);
    // Leftovers of a sync that was killed midway.
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(Error::io("creating", &scratch))?;

    let staged = stage_targets(&mut client, &upstream, root, &scratch, now).await;
    let (staged, present) = match staged {
        Ok(s) => s,
        Err(e) => {
            // Nothing of a refused sync stays behind, verified or not.
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };

    // Everything verified: publish. Targets first, metadata next,
    // timestamp.json last.
    let downloaded = staged.len();
    for (tmp, dest) in staged {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        std::fs::rename(&tmp, &dest).map_err(Error::io("publishing", &dest))?;
    }
    let metadata_dir = root.join("metadata");
    let fetched = fetched.lock().map(|m| m.clone()).unwrap_or_default();
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
    info!(version, downloaded, present, "sync published");
    Ok(SyncReport {
        version,
        downloaded,
        present,
    })
}

/// Downloads and verifies every target the tree lacks into `scratch`;
/// returns (scratch file, destination) pairs and how many were present.
async fn stage_targets(
    client: &mut Client,
    upstream: &Upstream,
    root: &Path,
    scratch: &Path,
    now: jiff::Timestamp,
) -> Result<(Vec<(PathBuf, PathBuf)>, usize)> {
    let mut staged = Vec::new();
    let mut present = 0;
    for (_, path) in client.known_targets() {
        let info = client.target_info(&path, now).await?;
        let Some(sha256) = info.hashes.get("sha256") else {
            return Err(onionpkg_trust::metadata::VerifyError::Malformed(format!(
                "{path}: no sha256 hash, so no consistent-snapshot name"
            ))
            .into());
        };
        let rel = roles::consistent_target_path(&path, sha256);
        if !roles::is_safe_target_path(&rel) {
            return Err(onionpkg_trust::metadata::VerifyError::Malformed(format!(
                "unsafe target path {path:?}"
            ))
            .into());
        }
        let dest = root.join("targets").join(&rel);
        if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == info.length) {
            present += 1;
            continue;
        }
        let tmp = scratch.join(format!("{}.part", staged.len()));
        download_target(upstream, &path, &rel, &info, &tmp).await?;
        staged.push((tmp, dest));
    }

    Ok((staged, present))
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
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("opening", path))?;
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

/// Streams one target into `tmp`, verifying it on the way; fsyncs it.
async fn download_target(
    upstream: &Upstream,
    path: &str,
    rel: &str,
    info: &onionpkg_trust::metadata::TargetFile,
    tmp: &Path,
) -> Result<()> {
    let mut verifier = TargetVerifier::new(path, info)?;
    let mut file = std::fs::File::create(tmp).map_err(Error::io("creating", tmp))?;
    let mut verify_err = None;
    let mut write_err = None;
    // Chunks are written as they come (a local write of one chunk is short
    // next to the network), so a package is never held in memory.
    let mut sink = |chunk: &[u8]| {
        if let Err(e) = verifier.update(chunk) {
            verify_err = Some(e);
        } else if let Err(e) = file.write_all(chunk) {
            write_err = Some(e);
        } else {
            return Ok(());
        }
        Err(Error::Upstream {
            url: rel.to_owned(),
            reason: "download stopped".into(),
        })
    };
    let target_rel = format!("targets/{rel}");
    let got = tokio::time::timeout(
        TARGET_TIMEOUT,
        upstream.get(Purpose::Packages, &target_rel, info.length, &mut sink),
    )
    .await;
    if let Some(e) = verify_err {
        return Err(e.into());
    }
    if let Some(e) = write_err {
        return Err(Error::io("writing", tmp)(e));
    }
    let found = got.map_err(|_| Error::Upstream {
        url: target_rel.clone(),
        reason: format!("not complete within {TARGET_TIMEOUT:?}"),
    })??;
    if !found {
        return Err(Error::Upstream {
            url: target_rel,
            reason: "not found".into(),
        });
    }
    verifier.finish()?;
    file.sync_all().map_err(Error::io("syncing", tmp))?;
    Ok(())
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(Error::io("reading", path))?;
    if meta.len() > max {
        return Err(Error::Io {
            action: "reading",
            path: path.to_owned(),
            source: std::io::Error::other(format!("larger than {max} bytes")),
        });
    }
    std::fs::read(path).map_err(Error::io("reading", path))
}

/// Runs one sync and records its outcome in the state file and metrics.
pub async fn sync_and_record(
    config: &MirrorConfig,
    upstream: Option<&str>,
    tor: Option<TorTransport>,
    metrics: Option<&Metrics>,
) -> Result<SyncReport> {
    let result = sync_once(config, upstream, tor).await;
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
    result
}

/// The Tor transport for syncing, when `[sync] via_tor` is set.
pub async fn sync_transport(config: &MirrorConfig) -> Result<Option<TorTransport>> {
    match &config.sync {
        Some(s) if s.via_tor => {
            let client =
                onionpkg_net::tor::bootstrap(&onionpkg_net::tor::TorSettings::from(&config.tor))
                    .await?;
            Ok(Some(TorTransport::new(client)))
        }
        _ => Ok(None),
    }
}

/// Starts syncing on the configured interval, if any: first at once, then
/// every interval; a failed sync is logged and retried at the next one.
/// `tor` is the transport when `[sync] via_tor` is set.
pub fn spawn_schedule(
    config: &MirrorConfig,
    metrics: &Arc<Metrics>,
    tor: Option<TorTransport>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = config.sync.as_ref()?.interval?;
    let config = config.clone();
    let metrics = Arc::clone(metrics);
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sync_and_record(&config, None, tor.clone(), Some(&metrics)).await {
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
