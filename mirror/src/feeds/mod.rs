//! Third-party feeds (GeoIP databases, IP blocklists, IDS rules) fetched
//! once by the distro, checked, stored and published as signed targets, so
//! appliances never contact the third parties themselves.
//!
//! A fetch of one `[[feed]]`: the optional checksum and detached signature
//! first (small documents), then the feed, streamed into a temp file under
//! the size cap and deadlines, hashed on the way; then the checksum, the
//! minisign signature and the content check ([`check`]: the built-in
//! formats, IPFire's libloc database with its own signature in
//! [`libloc`], Tor's GeoIP files in [`geoip`]), then the feed's sandboxed
//! external checker, if any ([`external`]); then the version is stored
//! ([`store`]) and, on the primary, published ([`publish`]).
//!
//! # Invariants
//! - Only configured URLs are ever fetched. Nothing here takes a URL, a
//!   host or a path from a client: the mirror serves feeds from its tree,
//!   as signed targets, and is no proxy.
//! - A failed fetch, check or publish leaves the last good version in place
//!   and served; the status says what happened.
//! - No more than `max_size` bytes of a feed are ever read, and every read
//!   has a deadline; a stalled or endless upstream fails the fetch.
//! - Redirects are not followed: an upstream answering anything but 200
//!   fails the fetch.
//! - No version older than one accepted before is accepted again
//!   ([`floor`]): the version time (the signature's trusted timestamp, or
//!   the format's own date) of every new version is checked against the
//!   feed's persisted floor, under the feed's lock, before it is stored;
//!   the floor is raised before the version is stored, so a crash between
//!   the two never leaves a stored version above the floor.

pub mod check;
pub mod external;
pub mod floor;
pub mod geoip;
pub mod libloc;
mod mmdb;
pub mod publish;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use onionpkg_config::common::WebUrl;
use onionpkg_config::mirror::{FeedConfig, MirrorConfig};
use onionpkg_net::http::{HttpUrl, Limits};
use onionpkg_net::tor::{Purpose, TorTransport};
use onionpkg_net::transport::{Tls, Transport};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use tracing::{info, warn};

use self::external::Checker;
use self::floor::{TimeSource, VersionTime};
use self::libloc::LiblocKey;
use self::store::{FeedStatus, FeedStore, Version};

/// Deadline for the response head of a feed, connection setup included.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// A feed download fails when no byte arrives for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for one feed download, however large.
const FEED_DEADLINE: Duration = Duration::from_secs(1800);
/// How long a fetch waits for another fetch of the same feed to finish
/// storing its version.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Limits for a checksum or signature document.
const SMALL_DOC: Limits = Limits {
    max_body: 64 * 1024,
    timeout: Duration::from_secs(60),
};

/// Why one feed fetch failed. The last good version stays in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// The upstream could not be reached or answered with an error.
    #[error("upstream: {0}")]
    Upstream(String),
    /// The feed is larger than its `max_size`.
    #[error("larger than the cap of {limit} bytes; download stopped")]
    TooLarge {
        /// The configured cap.
        limit: u64,
    },
    /// The upstream stopped sending, or the download passed its deadline.
    #[error("upstream too slow: {0}")]
    Timeout(String),
    /// The published checksum does not match, or cannot be read.
    #[error("checksum: {0}")]
    Checksum(String),
    /// The detached signature does not verify, or cannot be read.
    #[error("signature: {0}")]
    Signature(String),
    /// The content failed its format check.
    #[error("content check failed: {0}")]
    Check(String),
    /// The version is older than the newest accepted one: a rollback.
    #[error(
        "rollback refused: the new version is from {version} ({from}), older than {floor}, \
         the newest version accepted"
    )]
    Rollback {
        /// The new version's time.
        version: Timestamp,
        /// Where that time comes from.
        from: TimeSource,
        /// The newest version time accepted (the floor).
        floor: Timestamp,
    },
    /// The version has the time of the newest accepted one, with other
    /// content: a replay of that version's signature or date on other bytes.
    #[error(
        "replay refused: the new version has the version time {version} ({from}) of the \
         newest version accepted, with other content (sha256 {sha256}, accepted {accepted})"
    )]
    Replay {
        /// The time both versions have.
        version: Timestamp,
        /// Where that time comes from.
        from: TimeSource,
        /// SHA-256 of the new content.
        sha256: String,
        /// SHA-256 of the content accepted with that time.
        accepted: String,
    },
    /// The version has no version time, and versions with one were accepted
    /// before: it could be a rollback, and nothing tells.
    #[error(
        "refused: the new version has no version time, and versions up to {floor} were \
         accepted; it could be a rollback"
    )]
    Undated {
        /// The newest version time accepted (the floor).
        floor: Timestamp,
    },
    /// The version time is further ahead of the local clock than clock skew
    /// explains; accepting it would refuse the upstream's next versions.
    #[error(
        "refused: the new version's time {version} ({from}) is more than {ahead} ahead of \
         this host's clock ({now})",
        ahead = floor::MAX_AHEAD
    )]
    FromTheFuture {
        /// The new version's time.
        version: Timestamp,
        /// Where that time comes from.
        from: TimeSource,
        /// The local clock.
        now: Timestamp,
    },
    /// The feed needs Tor and no Tor client is running.
    #[error("the feed is fetched through Tor, and Tor is not running")]
    NoTor,
    /// Signing and publishing the new version failed.
    #[error("publish: {0}")]
    Publish(String),
    /// A local file could not be read or written.
    #[error(transparent)]
    Local(#[from] crate::Error),
}

impl onionpkg_core::HasKind for FeedError {
    fn kind(&self) -> onionpkg_core::ErrorKind {
        use onionpkg_core::ErrorKind;
        match self {
            Self::Upstream(_) | Self::Timeout(_) | Self::NoTor => ErrorKind::Network,
            Self::TooLarge { .. } | Self::Check(_) => ErrorKind::BadInput,
            Self::Checksum(_) | Self::Signature(_) => ErrorKind::Verification,
            Self::Rollback { .. } | Self::Replay { .. } | Self::Undated { .. } => {
                ErrorKind::Rollback
            }
            Self::FromTheFuture { .. } => ErrorKind::Expired,
            Self::Publish(_) => ErrorKind::Io,
            Self::Local(e) => e.kind(),
        }
    }
}

/// What one fetch of a feed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New content, checked and stored (and published, when publishing).
    New(Version),
    /// The upstream content is the current version.
    Unchanged(Version),
}

/// The fetcher of every configured feed of one mirror.
#[derive(Debug, Clone)]
pub struct Feeds {
    config: Arc<MirrorConfig>,
    clearnet: Transport,
    tor: Option<Transport>,
    publishing: Arc<tokio::sync::Mutex<()>>,
}

impl Feeds {
    /// The feeds of `config`; `tor` is needed by feeds with `via_tor`.
    pub fn new(config: &MirrorConfig, tor: Option<TorTransport>) -> crate::Result<Self> {
        let tls = Tls::load(config.feeds.extra_ca.as_deref()).map_err(|e| crate::Error::Tls {
            what: "extra ca",
            path: config.feeds.extra_ca.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        // A key that does not load would fail every fetch: refuse to start.
        for feed in &config.feed {
            if let Some(path) = &feed.libloc_key {
                LiblocKey::from_file(path).map_err(|reason| crate::Error::FeedKey {
                    feed: feed.name.clone(),
                    reason,
                })?;
            }
        }
        Ok(Self {
            config: Arc::new(config.clone()),
            clearnet: Transport::Https {
                tls: tls.clone(),
                loopback_http: false,
            },
            tor: tor.map(|tor| Transport::Tor { tor, tls }),
            publishing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The configured feeds.
    pub fn configured(&self) -> &[FeedConfig] {
        &self.config.feed
    }

    /// The feed named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&FeedConfig> {
        self.config.feed.iter().find(|f| f.name == name)
    }

    /// The store of `feed`.
    pub fn store(&self, feed: &FeedConfig) -> FeedStore {
        FeedStore::new(&self.config.state_dir, &feed.name)
    }

    /// Fetches, checks and stores `feed`, then publishes it when configured;
    /// records the outcome in its status either way.
    pub async fn fetch(&self, feed: &FeedConfig) -> Result<Outcome, FeedError> {
        let store = self.store(feed);
        store.update(|s| s.last_attempt = Some(Timestamp::now()))?;
        let result = self.fetch_inner(feed, &store).await;
        match &result {
            Ok(Outcome::New(v)) => {
                info!(feed = %feed.name, sha256 = %v.sha256, size = v.size, "new feed version")
            }
            Ok(Outcome::Unchanged(_)) => info!(feed = %feed.name, "feed unchanged"),
            Err(e) => {
                warn!(feed = %feed.name, error = %e, "feed fetch failed; keeping the last good version");
                if let Err(e2) = store.record_error(Timestamp::now(), &e.to_string()) {
                    warn!(feed = %feed.name, error = %e2, "cannot record the feed status");
                }
            }
        }
        result
    }

    async fn fetch_inner(
        &self,
        feed: &FeedConfig,
        store: &FeedStore,
    ) -> Result<Outcome, FeedError> {
        let transport = if feed.via_tor {
            self.tor.as_ref().ok_or(FeedError::NoTor)?
        } else {
            &self.clearnet
        };
        let checksum = match &feed.checksum_url {
            Some(url) => Some(fetch_checksum(transport, url, &feed.upstream).await?),
            None => None,
        };
        let signature = match (&feed.signature_url, &feed.signature_key) {
            (Some(url), Some(key)) => Some(fetch_signature(transport, url, key).await?),
            _ => None,
        };
        let fetched_at = Timestamp::now();
        let mut tmp = store.temp_file()?;
        let (sha256, size) = download(transport, feed, tmp.as_file_mut()).await?;
        if let Some(expected) = checksum
            && expected != sha256
        {
            return Err(FeedError::Checksum(format!(
                "the feed's SHA-256 is {sha256}, the published checksum says {expected}"
            )));
        }
        let signed = match &signature {
            Some((key, sig)) => verify_signature(key, sig, tmp.path())?,
            None => None,
        };
        // Read at each fetch, as the minisign key is: a replaced key counts.
        let key = match &feed.libloc_key {
            Some(path) => Some(LiblocKey::from_file(path).map_err(FeedError::Signature)?),
            None => None,
        };
        let (check, path, max) = (feed.check, tmp.path().to_owned(), feed.max_size);
        let mut checked =
            tokio::task::spawn_blocking(move || check::check_file(check, &path, max, key.as_ref()))
                .await
                .map_err(|e| FeedError::Check(format!("the check did not finish: {e}")))?
                .map_err(FeedError::Check)?;
        if let Some(argv) = &feed.checker {
            let checker = Checker {
                bwrap: &self.config.feeds.bwrap,
                argv,
                paths: &feed.checker_paths,
                timeout: feed.checker_timeout,
            };
            let passed = checker
                .run(tmp.path(), &feed.file_name())
                .await
                .map_err(FeedError::Check)?;
            checked.summary = format!("{}; {passed}", checked.summary);
        }
        let version = Version {
            sha256,
            size,
            fetched_at,
            summary: checked.summary,
            // What the upstream signed outranks what the content says.
            version_time: signed.or(checked.made),
        };
        let keep = self.config.feeds.keep as usize;
        let (status, unchanged) = tokio::task::spawn_blocking({
            let (store, version) = (store.clone(), version.clone());
            move || accept(&store, tmp, version, keep, Timestamp::now())
        })
        .await
        .map_err(|e| {
            crate::Error::io("storing a version in", store.dir())(std::io::Error::other(e))
        })??;
        self.publish_if_needed(feed, store, &status).await?;
        Ok(if unchanged {
            Outcome::Unchanged(version)
        } else {
            Outcome::New(version)
        })
    }

    /// Publishes the current version unless it is what was last published
    /// (a failed publish is retried at the next fetch).
    async fn publish_if_needed(
        &self,
        feed: &FeedConfig,
        store: &FeedStore,
        status: &FeedStatus,
    ) -> Result<(), FeedError> {
        let (Some(config), Some(current)) = (&self.config.feeds.publish, &status.current) else {
            return Ok(());
        };
        if status.published_sha256.as_deref() == Some(current.sha256.as_str()) {
            return Ok(());
        }
        let _one_at_a_time = self.publishing.lock().await;
        let (config, name, file_name) = (config.clone(), feed.name.clone(), feed.file_name());
        let (file, fetched_at) = (store.version_path(&current.sha256), current.fetched_at);
        let version = tokio::task::spawn_blocking(move || {
            publish::publish(
                &config,
                &name,
                &file_name,
                &file,
                fetched_at,
                Timestamp::now(),
            )
        })
        .await
        .map_err(|e| FeedError::Publish(format!("did not finish: {e}")))??;
        info!(feed = %feed.name, timestamp = version, "feed published");
        let sha = current.sha256.clone();
        store.update(|s| {
            s.published_sha256 = Some(sha);
            s.published_version = Some(version);
        })?;
        Ok(())
    }

    /// Fetches every feed named in `names` (all when empty), one after the
    /// other; returns each outcome.
    pub async fn fetch_all(&self, names: &[String]) -> Vec<(String, Result<Outcome, FeedError>)> {
        let mut out = Vec::new();
        for feed in &self.config.feed {
            if names.is_empty() || names.contains(&feed.name) {
                out.push((feed.name.clone(), self.fetch(feed).await));
            }
        }
        out
    }

    /// Fetches each feed now and then every `interval` until aborted.
    pub fn spawn_schedules(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.config
            .feed
            .iter()
            .map(|feed| {
                let (this, feed) = (self.clone(), feed.clone());
                tokio::spawn(async move {
                    loop {
                        let _ = this.fetch(&feed).await;
                        // Up to a tenth more, so feeds of many mirrors do not
                        // hit their upstream in step.
                        let jitter = feed.interval.mul_f64(rand::random::<f64>() / 10.0);
                        tokio::time::sleep(feed.interval + jitter).await;
                    }
                })
            })
            .collect()
    }
}

/// Stores a checked version if the feed's version floor allows it, and
/// raises the floor; returns the status and whether the content was
/// already current. Holds the feed's lock throughout, so two fetches of
/// one feed (the server's schedule and a `feeds fetch`) never judge
/// against the same floor and then both write it.
fn accept(
    store: &FeedStore,
    tmp: tempfile::NamedTempFile,
    version: Version,
    keep: usize,
    now: Timestamp,
) -> Result<(FeedStatus, bool), FeedError> {
    let _lock = store.lock(LOCK_WAIT)?;
    let old = store.floor()?;
    let new = floor::judge(
        old.as_ref(),
        version.version_time.as_ref(),
        &version.sha256,
        now,
    )?;
    let unchanged = store
        .status()?
        .current
        .is_some_and(|c| c.sha256 == version.sha256);
    if let Some(new) = new {
        store.raise_floor(&new)?;
    }
    Ok((store.commit(tmp, version, keep)?, unchanged))
}

/// Streams the feed into `out` under its cap and deadlines; returns its
/// SHA-256 (hex) and length.
async fn download(
    transport: &Transport,
    feed: &FeedConfig,
    out: &mut std::fs::File,
) -> Result<(String, u64), FeedError> {
    let limit = feed.max_size;
    let url = HttpUrl::from_web(&feed.upstream);
    let work = async {
        let mut body = transport
            .get_streaming(Purpose::Feeds, &url, None, HEAD_TIMEOUT)
            .await
            .map_err(|e| FeedError::Upstream(e.to_string()))?;
        if body.status != http::StatusCode::OK {
            return Err(FeedError::Upstream(format!("answered {}", body.status)));
        }
        if body.content_length().is_some_and(|n| n > limit) {
            return Err(FeedError::TooLarge { limit });
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = tokio::time::timeout(STALL_TIMEOUT, body.chunk())
                .await
                .map_err(|_| FeedError::Timeout(format!("no data for {STALL_TIMEOUT:?}")))?
                .map_err(|e| FeedError::Upstream(e.to_string()))?;
            let Some(chunk) = chunk else { break };
            size += chunk.len() as u64;
            if size > limit {
                return Err(FeedError::TooLarge { limit });
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| FeedError::Upstream(format!("writing the download: {e}")))?;
        }
        Ok((hex::encode(hasher.finalize()), size))
    };
    tokio::time::timeout(FEED_DEADLINE, work)
        .await
        .map_err(|_| FeedError::Timeout(format!("not done within {FEED_DEADLINE:?}")))?
}

/// Fetches a checksum document and picks the SHA-256 for `upstream`: the
/// only hash in it, or the one on the line naming the upstream file
/// (`sha256sum` format).
async fn fetch_checksum(
    transport: &Transport,
    url: &WebUrl,
    upstream: &WebUrl,
) -> Result<String, FeedError> {
    let r = transport
        .get(Purpose::Feeds, &HttpUrl::from_web(url), &SMALL_DOC)
        .await
        .map_err(|e| FeedError::Checksum(format!("cannot fetch it: {e}")))?;
    if r.status != http::StatusCode::OK {
        return Err(FeedError::Checksum(format!("answered {}", r.status)));
    }
    let text =
        std::str::from_utf8(&r.body).map_err(|_| FeedError::Checksum("not UTF-8 text".into()))?;
    let file = upstream
        .path_and_query()
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default();
    pick_checksum(text, file).ok_or_else(|| {
        FeedError::Checksum(format!("no SHA-256 for {file:?} in the checksum document"))
    })
}

/// The SHA-256 for `file` in a checksum document.
pub fn pick_checksum(text: &str, file: &str) -> Option<String> {
    let is_hash = |t: &str| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
    let mut hashes = Vec::new();
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        let Some(hash) = tokens.next().filter(|t| is_hash(t)) else {
            continue;
        };
        let named = tokens.next().map(|n| n.trim_start_matches('*'));
        if named == Some(file) {
            return Some(hash.to_ascii_lowercase());
        }
        hashes.push(hash.to_ascii_lowercase());
    }
    (hashes.len() == 1).then(|| hashes.remove(0))
}

/// Fetches a detached minisign signature and reads the pinned public key.
async fn fetch_signature(
    transport: &Transport,
    url: &WebUrl,
    key: &Path,
) -> Result<(minisign_verify::PublicKey, minisign_verify::Signature), FeedError> {
    let key = minisign_verify::PublicKey::from_file(key)
        .map_err(|e| FeedError::Signature(format!("public key {}: {e}", key.display())))?;
    let r = transport
        .get(Purpose::Feeds, &HttpUrl::from_web(url), &SMALL_DOC)
        .await
        .map_err(|e| FeedError::Signature(format!("cannot fetch it: {e}")))?;
    if r.status != http::StatusCode::OK {
        return Err(FeedError::Signature(format!("answered {}", r.status)));
    }
    let text = std::str::from_utf8(&r.body)
        .map_err(|_| FeedError::Signature("not a minisign signature".into()))?;
    let sig = minisign_verify::Signature::decode(text)
        .map_err(|e| FeedError::Signature(format!("not a minisign signature: {e}")))?;
    Ok((key, sig))
}

/// Verifies the downloaded file against the signature, reading it in
/// chunks; returns the version time in the signature's trusted comment.
fn verify_signature(
    key: &minisign_verify::PublicKey,
    sig: &minisign_verify::Signature,
    file: &Path,
) -> Result<Option<VersionTime>, FeedError> {
    use std::io::Read as _;
    let mut verifier = key
        .verify_stream(sig)
        .map_err(|e| FeedError::Signature(e.to_string()))?;
    let mut f = std::fs::File::open(file)
        .map_err(|e| FeedError::Signature(format!("reading the download: {e}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| FeedError::Signature(format!("reading the download: {e}")))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier
        .finalize()
        .map_err(|e| FeedError::Signature(format!("does not verify: {e}")))?;
    // Only now is the trusted comment the signer's: the global signature
    // covers it, and it just verified.
    floor::trusted_comment_time(sig.trusted_comment())
}

#[cfg(test)]
mod tests {
    use super::pick_checksum;

    #[test]
    fn checksum_documents() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        assert_eq!(pick_checksum(&format!("{a}\n"), "x"), Some(a.clone()));
        let two = format!("{a}  drop.txt\n{b} *edrop.txt\n");
        assert_eq!(pick_checksum(&two, "edrop.txt"), Some(b.to_lowercase()));
        assert_eq!(pick_checksum(&two, "drop.txt"), Some(a));
        assert_eq!(pick_checksum(&two, "other.txt"), None);
        assert_eq!(pick_checksum("<html>", "x"), None);
    }
}
