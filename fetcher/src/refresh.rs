//! Refreshing trusted metadata from the mirrors: the first mirror whose
//! verified metadata is as new as the announcement says wins; the others
//! are listed, and those that misbehaved cooled down.

use std::sync::Arc;

use jiff::Timestamp;
use onionpkg_net::remote::RemoteRepository;
use onionpkg_net::transport::Transport;
use onionpkg_trust::metadata::{Client, VerifyError};
use onionpkg_trust::mirrors::MirrorList;
use onionpkg_trust::roles;
use tracing::{info, warn};

use onionpkg_core::{ErrorKind, HasKind};

use crate::context::App;
use crate::err::{AppError, AppResult, Attempt};
use crate::freeze::{Verdict, judge};
use crate::select::Candidate;
use crate::state::trusted_timestamp_expiry;

impl App {
    /// Refreshes metadata from the first mirror that gives verified metadata
    /// as new as the DNS announcement says (see [`crate::freeze`]); the
    /// others are listed on failure, and those that misbehaved cooled down.
    /// The whole refresh ends by `deadline`.
    pub async fn refresh(
        &mut self,
        transport: &Arc<Transport>,
        deadline: tokio::time::Instant,
    ) -> AppResult<(Client, Candidate, Timestamp)> {
        let root = self.pinned_root()?;
        let now = self.clock().now()?;
        let store = self.state().metadata();
        let trusted_expired =
            trusted_timestamp_expiry(&store).is_some_and(|e| self.clock().is_expired(e, now));
        let stored_timestamp =
            crate::state::read_capped(&store.join("timestamp.json"), roles::TIMESTAMP_MAX_BYTES)
                .ok();
        let grace = self
            .config()
            .announcement
            .as_ref()
            .map(|a| a.mirror_grace)
            .unwrap_or_default();
        let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
        let mut tried = Vec::new();
        let mut not_yet = None;
        for c in self.candidates(transport.is_tor(), now)? {
            let attempt = |reason: String, kind| Attempt::new(&c.url, reason, kind);
            let repo = match RemoteRepository::new(transport.clone(), &c.url) {
                Ok(r) => r,
                Err(e) => {
                    tried.push(attempt(e.to_string(), e.kind()));
                    continue;
                }
            };
            let (repo, seen) = Recording::new(repo);
            // Staged: a mirror refused below must not move the floor.
            let mut client = Client::new_staged(&root, &store, repo)?;
            let refreshed =
                tokio::time::timeout_at(deadline, client.refresh(self.clock().expiry_now(now)))
                    .await;
            let Ok(refreshed) = refreshed else {
                tried.push(attempt(
                    "the update deadline passed".into(),
                    ErrorKind::Network,
                ));
                return Err(AppError::Deadline {
                    after: self.config().download.deadline,
                    tried,
                });
            };
            match refreshed {
                Ok(()) => {
                    let served = served(&client, &seen);
                    let floor = self.announced_floor(&client.role_keys(roles::TIMESTAMP)?)?;
                    let verdict = if stored_differs(&seen, stored_timestamp.as_deref()) {
                        Verdict::Equivocation {
                            version: served.version,
                        }
                    } else {
                        judge(served, floor.as_ref(), trusted_expired, now, grace)
                    };
                    match verdict {
                        Verdict::Fresh => {}
                        Verdict::Lapsed { served, announced } => {
                            let w = format!(
                                "timestamp version {announced} was announced, but no mirror \
                                 served it while the trusted metadata was valid; the \
                                 announcement floor is dropped and version {served} from \
                                 {} is used (a timestamp signing key may be compromised: \
                                 tell the distribution)",
                                c.name
                            );
                            warn!(mirror = %c.name, served, announced, "announcement floor dropped");
                            self.warn(w);
                            self.drop_announced_floor()?;
                        }
                        Verdict::NotYetSynced { served, announced } => {
                            let reason = format!(
                                "serves timestamp version {served}; version {announced} is \
                                 announced and not synced here yet"
                            );
                            info!(mirror = %c.name, %reason, "mirror not yet synced");
                            not_yet = Some(announced);
                            tried.push(attempt(reason, ErrorKind::NotYetAvailable));
                            continue;
                        }
                        Verdict::Frozen { served, announced } => {
                            let reason = format!(
                                "serves timestamp version {served}, older than the announced \
                                 {announced} (a frozen or stale mirror)"
                            );
                            warn!(mirror = %c.name, %reason, "mirror refused");
                            self.mark_bad(&c.url, &reason, now)?;
                            tried.push(attempt(reason, ErrorKind::Network));
                            continue;
                        }
                        Verdict::Equivocation { version } => {
                            let reason = format!(
                                "serves a timestamp version {version} whose bytes differ from \
                                 the version {version} announced or trusted: two signed \
                                 timestamps of one version (equivocation; a timestamp key may \
                                 be compromised)"
                            );
                            warn!(mirror = %c.name, %reason, "mirror refused");
                            self.mark_bad(&c.url, &reason, now)?;
                            tried.push(attempt(reason, ErrorKind::Verification));
                            continue;
                        }
                    }
                    client.commit()?;
                    info!(mirror = %c.name, "metadata refreshed");
                    self.note_used(&c.url, now)?;
                    return Ok((client, c, now));
                }
                Err(VerifyError::Store(s)) => {
                    return Err(AppError::Verify(VerifyError::Store(s)));
                }
                Err(e) => {
                    let reason = match &e {
                        VerifyError::Rollback { .. } => {
                            format!("{e} (the mirror serves older metadata than already trusted)")
                        }
                        _ => e.to_string(),
                    };
                    warn!(mirror = %c.name, %reason, "mirror refused");
                    self.mark_bad(&c.url, &reason, now)?;
                    tried.push(attempt(reason, e.kind()));
                }
            }
        }
        if let Some(announced) = not_yet {
            return Err(AppError::NotYetOnMirrors { announced, tried });
        }
        match trusted_timestamp_expiry(&store) {
            Some(expires) if self.clock().is_expired(expires, now) => {
                Err(AppError::Expired { expires, tried })
            }
            _ => Err(AppError::AllMirrorsFailed { tried }),
        }
    }

    /// Fetches the signed mirror list from the refreshed `client` and caches
    /// it; a failure is a warning, the main mirrors still work.
    pub async fn refresh_mirror_list(
        &mut self,
        client: &mut Client,
        now: Timestamp,
    ) -> Option<u64> {
        if let Err(e) = client.load_delegated(roles::MIRRORS, now).await {
            self.warn(format!("the mirror list could not be refreshed: {e}"));
            return None;
        }
        let fetched = client
            .fetch_target(roles::MIRRORS_TARGET, self.clock().expiry_now(now))
            .await;
        let bytes = match fetched {
            Ok(b) => b,
            Err(VerifyError::TargetNotFound(_)) => return None,
            Err(e) => {
                self.warn(format!("the mirror list could not be refreshed: {e}"));
                return None;
            }
        };
        let list = match MirrorList::parse(&bytes) {
            Ok(l) => l,
            Err(e) => {
                self.warn(format!("the signed mirror list is invalid: {e}"));
                return None;
            }
        };
        if let Err(e) = list.check_fresh(now, self.clock().tolerance()) {
            self.warn(format!(
                "the mirror list could not be refreshed: the signed list is stale ({e})"
            ));
            return None;
        }
        let version = list.version();
        match self.mirror_cache().and_then(|mut c| Ok(c.store(list)?)) {
            Ok(()) => Some(version),
            Err(e) => {
                self.warn(format!("the mirror list could not be cached: {e}"));
                None
            }
        }
    }
}

/// The bytes of the last `timestamp.json` a mirror served.
type Seen = Arc<std::sync::Mutex<Option<Vec<u8>>>>;

/// A repository that keeps the bytes of the `timestamp.json` it serves, so
/// they can be compared with the hash the announcement names: the TUF
/// client keeps only what it trusts, and an equal version is not stored.
struct Recording {
    inner: RemoteRepository,
    timestamp: Seen,
}

impl Recording {
    fn new(inner: RemoteRepository) -> (Self, Seen) {
        let seen = Seen::default();
        let me = Self {
            inner,
            timestamp: Arc::clone(&seen),
        };
        (me, seen)
    }
}

impl onionpkg_trust::metadata::Repository for Recording {
    fn fetch_metadata<'a>(
        &'a self,
        name: &'a str,
        max_length: u64,
    ) -> onionpkg_trust::metadata::FetchFuture<'a> {
        Box::pin(async move {
            let got = self.inner.fetch_metadata(name, max_length).await;
            if name == "timestamp.json"
                && let Ok(Some(bytes)) = &got
                && let Ok(mut seen) = self.timestamp.lock()
            {
                *seen = Some(bytes.clone());
            }
            got
        })
    }

    fn fetch_target<'a>(
        &'a self,
        path: &'a str,
        max_length: u64,
    ) -> onionpkg_trust::metadata::FetchFuture<'a> {
        self.inner.fetch_target(path, max_length)
    }
}

/// The `signed.version` of a `timestamp.json`, if it parses.
fn version_of(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

/// What the mirror behind `client` served: the trusted version now, and the
/// hash of the bytes it sent when they are that version.
fn served(client: &Client, seen: &Seen) -> crate::freeze::Served {
    use sha2::Digest as _;
    let version = client.timestamp_version().unwrap_or(0);
    let bytes = seen.lock().ok().and_then(|s| s.clone());
    let hash = bytes
        .filter(|b| version_of(b) == Some(version))
        .map(|b| sha2::Sha256::digest(&b).into());
    crate::freeze::Served { version, hash }
}

/// Whether the mirror served a `timestamp.json` of the version already
/// trusted, with other bytes: both are signed, so one version has two
/// timestamps.
fn stored_differs(seen: &Seen, stored: Option<&[u8]>) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    let Some(bytes) = seen.lock().ok().and_then(|s| s.clone()) else {
        return false;
    };
    version_of(&bytes).is_some() && version_of(&bytes) == version_of(stored) && bytes != stored
}
