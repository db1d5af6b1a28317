//! A TUF repository on a mirror, fetched over a [`Transport`].
//!
//! Layout: metadata at `BASE/metadata/NAME`, targets at `BASE/targets/PATH`
//! (the caller passes consistent-snapshot paths, `dir/HASH.name`, as
//! sigstore-tuf does). Every read is capped at the `max_length` the
//! verifier gives (endless data) and bounded by a deadline (slow
//! retrieval); `404` and `403` mean "not there", which ends a root chain.

use std::sync::Arc;
use std::time::Duration;

use onionpkg_trust::metadata::{FetchError, Repository};
use onionpkg_trust::roles;
use sigstore_tuf::transport::FetchFuture;
use tracing::debug;

use onionpkg_core::url::WebUrl;

use crate::http::{HttpUrl, Limits};
use crate::tor::Purpose;
use crate::transport::Transport;
use crate::{Error, Result};

/// Deadline for one metadata file by default.
pub const DEFAULT_METADATA_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for one target fetched whole by default (the mirror list).
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(300);

/// One mirror's repository, over one transport.
#[derive(Debug, Clone)]
pub struct RemoteRepository {
    transport: Arc<Transport>,
    base: WebUrl,
    metadata_timeout: Duration,
    target_timeout: Duration,
}

impl RemoteRepository {
    /// The repository at `base` (a base URL, parsed where it entered).
    /// Refuses a URL the transport may not fetch.
    pub fn new(transport: Arc<Transport>, base: &WebUrl) -> Result<Self> {
        transport.check(&HttpUrl::from_web(base))?;
        Ok(Self {
            transport,
            base: base.clone(),
            metadata_timeout: DEFAULT_METADATA_TIMEOUT,
            target_timeout: DEFAULT_TARGET_TIMEOUT,
        })
    }

    /// Sets the deadlines for one metadata file and for one whole target.
    pub fn with_timeouts(mut self, metadata: Duration, target: Duration) -> Self {
        self.metadata_timeout = metadata;
        self.target_timeout = target;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &WebUrl {
        &self.base
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    /// The URL of metadata file `name`.
    pub fn metadata_url(&self, name: &str) -> HttpUrl {
        HttpUrl::join(&self.base, &format!("metadata/{name}"))
    }

    /// The URL of target `path` (as stored: `dir/HASH.name`), every segment
    /// percent-encoded.
    pub fn target_url(&self, path: &str) -> HttpUrl {
        HttpUrl::join(&self.base, &format!("targets/{path}"))
    }

    /// GETs `url` whole (file `name`, which must be a safe relative path),
    /// at most `max_length` bytes within `timeout`: `Ok(None)` when the
    /// mirror answers 404 or 403. The error is the transport's own, for a
    /// caller that tells a TLS failure from an unreachable host.
    pub async fn get(
        &self,
        purpose: Purpose,
        name: &str,
        url: &HttpUrl,
        max_length: u64,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>> {
        if !roles::is_safe_target_path(name) {
            return Err(Error::Url(format!("unsafe file name {name:?}")));
        }
        let limits = Limits {
            max_body: max_length,
            timeout,
        };
        debug!(%purpose, url = %url.path(), "fetching");
        let r = self.transport.get(purpose, url, &limits).await?;
        match r.status {
            http::StatusCode::OK => Ok(Some(r.body.to_vec())),
            http::StatusCode::NOT_FOUND | http::StatusCode::FORBIDDEN => Ok(None),
            status => Err(Error::Status(status)),
        }
    }
}

/// What the TUF updater is told about a failed fetch of `name`: a body over
/// its cap is [`FetchError::TooLarge`] (an endless-data attack), anything
/// else a failure with the transport's message.
pub fn fetch_error(name: &str, e: &Error) -> FetchError {
    match e {
        Error::BodyTooLarge { limit } => FetchError::TooLarge {
            name: name.to_owned(),
            limit: *limit,
        },
        e => FetchError::Failed {
            name: name.to_owned(),
            reason: e.to_string(),
        },
    }
}

impl Repository for RemoteRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let url = self.metadata_url(name);
            self.get(
                Purpose::Metadata,
                name,
                &url,
                max_length,
                self.metadata_timeout,
            )
            .await
            .map_err(|e| fetch_error(name, &e).into_tuf())
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            // The only targets fetched whole are small signed documents (the
            // mirror list), so they travel with the metadata.
            let purpose = if path.ends_with(roles::MIRRORS_TARGET) {
                Purpose::Metadata
            } else {
                Purpose::for_target(path)
            };
            let url = self.target_url(path);
            self.get(purpose, path, &url, max_length, self.target_timeout)
                .await
                .map_err(|e| fetch_error(path, &e).into_tuf())
        })
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
