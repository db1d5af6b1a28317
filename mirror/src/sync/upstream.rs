//! How sync reaches upstream: an `onionpkg_net` transport, metadata through
//! a [`RemoteRepository`] that keeps a copy of every file it hands the
//! verifier, targets streamed into a scratch file.
//!
//! Deadlines: one metadata file within [`METADATA_TIMEOUT`]; a target fails
//! when no byte comes for [`STALL_TIMEOUT`] (the response head included) and
//! in any case after [`TARGET_TIMEOUT`]. Reads are capped at the length the
//! verifier gives (metadata) or the signed length (targets).
//!
//! A failed fetch reaches the verifier as a string; the transport's typed
//! error is kept beside it, so a TLS failure is reported as one rather than
//! as a refused repository.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onionpkg_config::common::WebUrl;
use onionpkg_net::HttpUrl;
use onionpkg_net::remote::{RemoteRepository, fetch_error};
use onionpkg_net::tor::Purpose;
use onionpkg_net::transport::Transport;
use onionpkg_trust::metadata::{
    FetchError, FetchFuture, Repository, TargetFile, TargetVerifier, VerifyError,
};
use tokio::time::Instant;

use crate::{Error, Result};

/// Deadline for one metadata file.
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);
/// A target download fails when no byte arrives for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for one target, however large.
const TARGET_TIMEOUT: Duration = Duration::from_secs(3600);

/// The metadata fetched during one refresh, by file name.
type Fetched = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// The last failed metadata fetch: file name, URL and the transport's error.
type LastFailure = Arc<Mutex<Option<(String, HttpUrl, onionpkg_net::Error)>>>;

/// The upstream repository of one sync run.
pub(super) struct Upstream {
    repo: RemoteRepository,
    fetched: Fetched,
    failure: LastFailure,
}

impl Upstream {
    /// The repository at `base_url` over `transport`; refuses a URL the
    /// transport may not fetch.
    pub(super) fn new(transport: Arc<Transport>, base_url: &WebUrl) -> Result<Self> {
        let repo = RemoteRepository::new(transport, base_url)
            .map_err(|e| Error::UpstreamUrl {
                url: base_url.to_string(),
                reason: e.to_string(),
            })?
            .with_timeouts(METADATA_TIMEOUT, TARGET_TIMEOUT);
        Ok(Self {
            repo,
            fetched: Fetched::default(),
            failure: LastFailure::default(),
        })
    }

    /// The [`Repository`] for the verifying client.
    pub(super) fn recording(&self) -> Recording {
        Recording {
            repo: self.repo.clone(),
            fetched: Arc::clone(&self.fetched),
            failure: Arc::clone(&self.failure),
        }
    }

    /// Every metadata file handed to the verifier so far, by name.
    pub(super) fn fetched(&self) -> BTreeMap<String, Vec<u8>> {
        self.fetched.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The sync error for a failed verification step: a file that could not
    /// be fetched is upstream's network failure (with the transport's
    /// error, when it is known); anything else is a refusal.
    pub(super) fn refused(&self, e: VerifyError) -> Error {
        let VerifyError::Unreachable { name, reason } = e else {
            return Error::Verify(e);
        };
        let last = self.failure.lock().ok().and_then(|mut f| f.take());
        match last {
            Some((failed, url, error)) if failed == name => self.network(&url, error),
            _ => Error::Upstream {
                url: self.repo.metadata_url(&name).to_string(),
                reason,
            },
        }
    }

    /// A transport error while fetching `url`.
    fn network(&self, url: &HttpUrl, error: onionpkg_net::Error) -> Error {
        match error {
            // Per host, not per file: name the upstream.
            onionpkg_net::Error::Tls { .. } => Error::UpstreamTls {
                url: self.repo.base_url().to_string(),
                source: error,
            },
            e => Error::Upstream {
                url: url.to_string(),
                reason: e.to_string(),
            },
        }
    }

    /// Streams target `path` (stored upstream as `rel`, `dir/HASH.name`)
    /// into `tmp`, verifying it on the way; fsyncs it.
    pub(super) async fn download(
        &self,
        path: &str,
        rel: &str,
        info: &TargetFile,
        tmp: &Path,
    ) -> Result<()> {
        let url = self.repo.target_url(rel);
        let fail = |reason: String| Error::Upstream {
            url: url.to_string(),
            reason,
        };
        let mut verifier = TargetVerifier::new(path, info)?;
        let mut file = std::fs::File::create(tmp).map_err(Error::io("creating", tmp))?;
        let deadline = Instant::now() + TARGET_TIMEOUT;
        let mut body = self
            .repo
            .transport()
            .get_streaming(Purpose::Packages, &url, None, STALL_TIMEOUT)
            .await
            .map_err(|e| self.network(&url, e))?;
        match body.status.as_u16() {
            200 => {}
            404 => return Err(fail("not found".into())),
            s => return Err(fail(format!("http status {s}"))),
        }
        if body.content_length().is_some_and(|n| n > info.length) {
            return Err(VerifyError::TargetTooLong {
                path: path.to_owned(),
                length: info.length,
            }
            .into());
        }
        loop {
            let until = (Instant::now() + STALL_TIMEOUT).min(deadline);
            match tokio::time::timeout_at(until, body.chunk()).await {
                // Each chunk is written as it comes (a local write is short
                // next to the network), so a package is never held in memory.
                Ok(Ok(Some(chunk))) => {
                    verifier.update(&chunk)?;
                    file.write_all(&chunk).map_err(Error::io("writing", tmp))?;
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(self.network(&url, e)),
                Err(_) if Instant::now() >= deadline => {
                    return Err(fail(format!("not complete within {TARGET_TIMEOUT:?}")));
                }
                Err(_) => return Err(fail(format!("stalled for {STALL_TIMEOUT:?}"))),
            }
        }
        verifier.finish()?;
        file.sync_all().map_err(Error::io("syncing", tmp))?;
        Ok(())
    }
}

/// A [`Repository`] over the upstream that keeps a copy of every metadata
/// file it hands to the verifier, so exactly what was verified is published.
pub(super) struct Recording {
    repo: RemoteRepository,
    fetched: Fetched,
    failure: LastFailure,
}

impl Repository for Recording {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let url = self.repo.metadata_url(name);
            let got = self
                .repo
                .get(Purpose::Metadata, name, &url, max_length, METADATA_TIMEOUT)
                .await;
            match got {
                Ok(got) => {
                    if let (Some(bytes), Ok(mut map)) = (&got, self.fetched.lock()) {
                        map.insert(name.to_owned(), bytes.clone());
                    }
                    Ok(got)
                }
                Err(e) => {
                    let reported: FetchError = fetch_error(name, &e);
                    if let Ok(mut last) = self.failure.lock() {
                        *last = Some((name.to_owned(), url, e));
                    }
                    Err(reported.into_tuf())
                }
            }
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.repo.fetch_target(path, max_length)
    }
}
