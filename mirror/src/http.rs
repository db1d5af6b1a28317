//! The HTTP service every listener shares: a repository tree served
//! read-only, GET and HEAD only, files streamed from disk.
//!
//! Request paths are checked before they touch the filesystem: any `..` or
//! `.` segment, empty segment, backslash, NUL or control character, and any
//! percent-encoded `.`, `/` or `\` is a 400. The resolved file must still be
//! inside the root after symlinks are followed, or it is a 404, as is every
//! directory (no listings) and anything outside `metadata/`, `targets/` and
//! `feeds/`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use tracing::{debug, info};

use crate::metrics::Metrics;

/// The body of every response: streamed, errors are I/O errors.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The top-level directories served; everything else is a 404.
pub const SERVED_DIRS: [&str; 3] = ["metadata", "targets", "feeds"];

/// How long `timestamp.json` may be cached: it changes on every publish.
const TIMESTAMP_CACHE: &str = "public, max-age=60";
/// Versioned and hashed files never change under their name.
const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";
/// Everything else (an unversioned `root.json`, feeds).
const DEFAULT_CACHE: &str = "public, max-age=300";

/// Files up to this size are read whole when opened.
const CHUNK: usize = 64 * 1024;

/// Read size when streaming a larger file: each read is one hop to the
/// blocking pool, and one frame held per connection.
const STREAM_CHUNK: usize = 128 * 1024;

/// A file opened for a request.
struct Opened {
    file: std::fs::File,
    meta: std::fs::Metadata,
    /// The whole content, for a file of at most [`CHUNK`] bytes.
    small: Option<Bytes>,
}

/// Which listener a request came in on; decides what may be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The onion service: there is no client address, and paths are only
    /// logged at debug level.
    Onion,
    /// Clearnet HTTP.
    Http,
    /// Clearnet HTTPS.
    Https,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Onion => "onion",
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// The repository service; clone it per connection with [`RepoService::for_peer`].
#[derive(Debug, Clone)]
pub struct RepoService {
    root: Arc<PathBuf>,
    /// The root, opened once, for the kernel-checked fast path.
    root_fd: Arc<std::os::fd::OwnedFd>,
    metrics: Arc<Metrics>,
    access_log: bool,
    via: Via,
    peer: Option<SocketAddr>,
}

impl RepoService {
    /// Serves the tree at `root`, which must exist. With `access_log`, each
    /// clearnet request is logged with the client's address.
    pub fn new(root: &Path, metrics: Arc<Metrics>, access_log: bool) -> io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let root_fd = rustix::fs::open(
            &root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(Self {
            root: Arc::new(root),
            root_fd: Arc::new(root_fd),
            metrics,
            access_log,
            via: Via::Onion,
            peer: None,
        })
    }

    /// This service for one connection from `peer` on `via`.
    pub fn for_peer(&self, via: Via, peer: Option<SocketAddr>) -> Self {
        Self {
            via,
            peer,
            ..self.clone()
        }
    }

    /// The canonical root served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The response to `req`.
    pub async fn respond<B>(&self, req: &Request<B>) -> Response<Body> {
        let resp = self.respond_inner(req).await;
        self.metrics.response(resp.status().as_u16());
        if self.access_log {
            let status = resp.status().as_u16();
            match self.via {
                // Onion visitors have no address; their paths stay out of
                // info-level logs, where they would profile visitors.
                Via::Onion => {
                    info!(via = "onion", method = %req.method(), status, "request");
                    debug!(
                        via = "onion",
                        path = req.uri().path(),
                        status,
                        "request path"
                    );
                }
                via => info!(
                    via = via.as_str(),
                    client = ?self.peer,
                    method = %req.method(),
                    path = req.uri().path(),
                    status,
                    "request"
                ),
            }
        }
        resp
    }

    async fn respond_inner<B>(&self, req: &Request<B>) -> Response<Body> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            let mut r = status_response(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let rel = match resolve_request_path(req.uri().path()) {
            Ok(rel) => rel,
            Err(status) => return status_response(status),
        };
        let served = match self.open(&rel).await {
            Ok(Some(o)) => self.serve_file(o, &rel, method, req.headers()).await,
            Ok(None) => return status_response(StatusCode::NOT_FOUND),
            Err(e) => Err(e),
        };
        match served {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => status_response(StatusCode::NOT_FOUND),
            Err(e) => {
                debug!(error = %e, "cannot read a file");
                self.metrics.error();
                status_response(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Opens the file `rel` names, after following symlinks, if it is inside
    /// the served directories of the root; a file of at most [`CHUNK`] bytes
    /// is read whole. A plain path whose lookup and content are in the
    /// kernel's caches is opened on this thread ([`crate::fastopen`]);
    /// anything else takes one blocking call that does it all: every hop to
    /// tokio's blocking pool costs more than the syscalls of a small file.
    async fn open(&self, rel: &[String]) -> io::Result<Option<Opened>> {
        match crate::fastopen::open(&self.root_fd, rel, CHUNK as u64) {
            crate::fastopen::Fast::Opened(file, meta, small) => {
                return Ok(Some(Opened { file, meta, small }));
            }
            crate::fastopen::Fast::Missing => return Ok(None),
            crate::fastopen::Fast::Slow => {}
        }
        let mut path = self.root.to_path_buf();
        path.extend(rel);
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || -> io::Result<Option<Opened>> {
            let Ok(real) = std::fs::canonicalize(&path) else {
                return Ok(None);
            };
            // A symlink may point anywhere; only what stays in the served
            // directories of the root is served.
            let inside = real
                .strip_prefix(root.as_path())
                .ok()
                .and_then(|r| r.components().next())
                .is_some_and(|top| SERVED_DIRS.iter().any(|d| top.as_os_str() == *d));
            if !inside {
                debug!("a path resolves outside the served directories");
                return Ok(None);
            }
            // Non-blocking, so a FIFO planted in the tree cannot hold a
            // blocking thread; only regular files are read.
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&real)?;
            // Metadata of the opened file, not the path: what is stat'ed is
            // what is sent.
            let meta = file.metadata()?;
            let small = if meta.is_file() && meta.len() <= CHUNK as u64 {
                let mut buf = Vec::with_capacity(meta.len() as usize);
                io::Read::read_to_end(&mut io::Read::take(&mut file, meta.len()), &mut buf)?;
                if buf.len() as u64 != meta.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being read",
                    ));
                }
                Some(Bytes::from(buf))
            } else {
                None
            };
            Ok(Some(Opened { file, meta, small }))
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn serve_file(
        &self,
        opened: Opened,
        rel: &[String],
        method: &Method,
        headers: &HeaderMap,
    ) -> io::Result<Response<Body>> {
        let Opened { file, meta, small } = opened;
        if !meta.is_file() {
            return Ok(status_response(StatusCode::NOT_FOUND));
        }
        let len = meta.len();
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let etag = etag(len, mtime);
        let last_modified = httpdate::fmt_http_date(mtime);

        let mut builder = Response::builder()
            .header(header::ETAG, &etag)
            .header(header::LAST_MODIFIED, &last_modified)
            .header(header::CACHE_CONTROL, cache_control(rel))
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        if not_modified(headers, &etag, mtime) {
            return Ok(builder
                .status(StatusCode::NOT_MODIFIED)
                .body(empty())
                .unwrap_or_else(|_| status_response(StatusCode::INTERNAL_SERVER_ERROR)));
        }
        builder = builder.header(header::CONTENT_TYPE, content_type(rel));

        let range = if if_range_matches(headers, &etag) {
            headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(|v| parse_range(v, len))
        } else {
            None
        };
        let (status, start, count) = match range {
            Some(RangeReq::Unsatisfiable) => {
                return Ok(Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(empty())
                    .unwrap_or_else(|_| status_response(StatusCode::INTERNAL_SERVER_ERROR)));
            }
            Some(RangeReq::One(start, end)) => {
                builder =
                    builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            Some(RangeReq::Whole) | None => (StatusCode::OK, 0, len),
        };
        builder = builder.status(status).header(header::CONTENT_LENGTH, count);
        let body = if method == Method::HEAD || count == 0 {
            empty()
        } else if let Some(all) = small {
            let (from, to) = (start as usize, (start + count) as usize);
            self.metrics.sent(count);
            full(all.slice(from..to))
        } else {
            stream_file(file, start, count, Arc::clone(&self.metrics))
        };
        Ok(builder
            .body(body)
            .unwrap_or_else(|_| status_response(StatusCode::INTERNAL_SERVER_ERROR)))
    }
}

impl<B: Send + Sync + 'static> hyper::service::Service<Request<B>> for RepoService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.respond(&req).await) })
    }
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A small in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A bodiless response with `status`.
pub fn status_response(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// Streams `count` bytes of `file` from its current position, in chunks,
/// so a package is never held in memory.
/// Streams `count` bytes of `file` from offset `start`, a positioned read of
/// [`STREAM_CHUNK`] bytes per blocking call, straight into the frame sent
/// (no intermediate buffer, no seek).
fn stream_file(file: std::fs::File, start: u64, count: u64, metrics: Arc<Metrics>) -> Body {
    let file = Arc::new(file);
    let stream = futures::stream::unfold((start, count), move |(pos, left)| {
        let metrics = Arc::clone(&metrics);
        let file = Arc::clone(&file);
        async move {
            if left == 0 {
                return None;
            }
            let want = usize::try_from(left)
                .unwrap_or(STREAM_CHUNK)
                .min(STREAM_CHUNK);
            let read = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                let mut buf = vec![0u8; want];
                let n = std::os::unix::fs::FileExt::read_at(&*file, &mut buf, pos)?;
                buf.truncate(n);
                Ok(Bytes::from(buf))
            })
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
            match read {
                Ok(buf) if buf.is_empty() => Some((
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )),
                    (pos, 0),
                )),
                Ok(buf) => {
                    let n = buf.len() as u64;
                    metrics.sent(n);
                    Some((Ok(Frame::data(buf)), (pos + n, left - n)))
                }
                Err(e) => {
                    metrics.error();
                    Some((Err(e), (pos, 0)))
                }
            }
        }
    });
    StreamBody::new(stream.boxed()).boxed_unsync()
}

/// Checks a raw request path and splits it into segments below the root.
///
/// 400 for anything that tries to escape or hide a separator; 404 for paths
/// outside the served directories.
pub fn resolve_request_path(raw: &str) -> Result<Vec<String>, StatusCode> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(StatusCode::BAD_REQUEST);
    };
    if rest.is_empty() {
        return Err(StatusCode::NOT_FOUND);
    }
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        let decoded = percent_decode(seg).ok_or(StatusCode::BAD_REQUEST)?;
        if decoded.is_empty() || decoded == "." || decoded == ".." {
            return Err(StatusCode::BAD_REQUEST);
        }
        if decoded
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(StatusCode::BAD_REQUEST);
        }
        segments.push(decoded);
    }
    match segments.first() {
        Some(top) if SERVED_DIRS.contains(&top.as_str()) && segments.len() > 1 => Ok(segments),
        _ => Err(StatusCode::NOT_FOUND),
    }
}

/// Decodes `%XX` escapes. Refuses malformed escapes, non-UTF-8 results and
/// escaped `.`, `/`, `\` and NUL: no legitimate client encodes those, and
/// decoding them is how traversal hides from naive checks.
fn percent_decode(seg: &str) -> Option<String> {
    if !seg.contains('%') {
        return Some(seg.to_owned());
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            let b = u8::from_str_radix(hex, 16).ok()?;
            if matches!(b, b'.' | b'/' | b'\\' | 0) {
                return None;
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A strong validator from size and modification time: files are replaced,
/// never edited in place, so either changes when the content does.
fn etag(len: u64, mtime: SystemTime) -> String {
    let nanos = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    format!("\"{len:x}-{nanos:x}\"")
}

/// Whether the conditional headers say the client's copy is current.
fn not_modified(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    // HTTP dates have whole seconds.
    let secs = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs) <= ims
}

/// A Range request only applies when If-Range (if any) names this version.
fn if_range_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag))
}

/// What a Range header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// One satisfiable range, inclusive bounds.
    One(u64, u64),
    /// Nothing of the file: 416.
    Unsatisfiable,
    /// Several ranges or an unparsable header: the whole file (200).
    Whole,
}

/// Parses a `Range` header against a file of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> RangeReq {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // A suffix: the last b bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Whole;
        };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::One(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::Whole;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeReq::Whole,
        }
    };
    if start >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::One(start, end.min(len - 1))
}

fn content_type(rel: &[String]) -> &'static str {
    if rel.last().is_some_and(|n| n.ends_with(".json")) {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// Short for `timestamp.json`, long for names that pin their content (a
/// version prefix in `metadata/`, a sha256 prefix elsewhere).
fn cache_control(rel: &[String]) -> &'static str {
    let Some(name) = rel.last() else {
        return DEFAULT_CACHE;
    };
    if name == "timestamp.json" {
        return TIMESTAMP_CACHE;
    }
    let prefix = name.split('.').next().unwrap_or("");
    let versioned = rel.len() == 2
        && rel[0] == "metadata"
        && !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && name.ends_with(".json");
    let hashed = prefix.len() == 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    if versioned || hashed {
        IMMUTABLE_CACHE
    } else {
        DEFAULT_CACHE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/metadata/../etc/passwd",
            "/metadata/%2e%2e/x",
            "/metadata/%2E%2e/x",
            "/metadata/a%2fb",
            "/metadata/a%5cb",
            "/metadata/a%00b",
            "/metadata/a\\b",
            "/metadata//a",
            "/metadata/./a",
            "/metadata/%zz",
            "metadata/a",
        ] {
            assert_eq!(
                resolve_request_path(bad),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        for missing in ["/", "/etc/passwd", "/metadata", "/state/x"] {
            assert_eq!(
                resolve_request_path(missing),
                Err(StatusCode::NOT_FOUND),
                "{missing}"
            );
        }
        assert_eq!(
            resolve_request_path("/targets/pkg/a%20b.tar").unwrap(),
            ["targets", "pkg", "a b.tar"]
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeReq::One(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeReq::One(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeReq::One(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeReq::One(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeReq::One(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeReq::Whole);
        assert_eq!(parse_range("bytes=5-1", 100), RangeReq::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeReq::Whole);
    }

    #[test]
    fn cache_lifetimes() {
        let rel = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            cache_control(&rel("metadata/timestamp.json")),
            TIMESTAMP_CACHE
        );
        assert_eq!(
            cache_control(&rel("metadata/3.snapshot.json")),
            IMMUTABLE_CACHE
        );
        let hashed = format!("targets/pkg/{}.a.tar", "ab".repeat(32));
        assert_eq!(cache_control(&rel(&hashed)), IMMUTABLE_CACHE);
        assert_eq!(cache_control(&rel("metadata/root.json")), DEFAULT_CACHE);
        assert_eq!(cache_control(&rel("targets/pkg/a.tar")), DEFAULT_CACHE);
    }
}
