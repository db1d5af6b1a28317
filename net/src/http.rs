//! HTTP/1.1 GET over any byte stream (an arti `DataStream`, a SOCKS or TCP
//! connection, a TLS session over either), with a deadline and a body size
//! cap on every request.
//!
//! hyper 1 drives the protocol; this module adds only what every fetch needs:
//! the URL subset we accept, the limits, fixed request headers, and a
//! connection task that never outlives its request. [`get`] reads a whole
//! (small) body; [`get_streaming`] hands a large body over chunk by chunk,
//! optionally from a byte offset (`Range`), for the caller to cap and time.
//!
//! Every installation sends the same request headers (`Host`, `Connection`,
//! `Accept-Encoding: identity`, and `Range` when resuming): no user agent,
//! no version, nothing that tells one appliance from another.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, HOST, RANGE};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use onionpkg_core::url::WebUrl;
use percent_encoding::{AsciiSet, CONTROLS};

use crate::{Error, Result};

/// What is percent-encoded in a path segment: everything but the
/// unreserved characters and the sub-delimiters RFC 3986 allows there (and
/// every byte outside ASCII, which `percent_encoding` always encodes).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Bounds on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body: u64,
    /// Deadline for the whole exchange, from opening the stream to the last
    /// body byte.
    pub timeout: Duration,
}

impl Limits {
    /// Limits for small documents: 16 MiB within 60 s.
    pub const METADATA: Self = Self {
        max_body: 16 << 20,
        timeout: Duration::from_secs(60),
    };
}

/// A response whose body was read completely.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// The URLs we fetch: `http://host[:port]/path[?query]`, and with
/// [`HttpUrl::parse_any`] also `https://`.
///
/// [`HttpUrl::parse`] takes plain http only: over Tor, onion services
/// authenticate the server themselves, and everything fetched is verified
/// against signed metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl HttpUrl {
    /// Parses and checks an `http://` `url`.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_inner(url, false)
    }

    /// Parses and checks an `http://` or `https://` `url`.
    pub fn parse_any(url: &str) -> Result<Self> {
        Self::parse_inner(url, true)
    }

    fn parse_inner(url: &str, https_ok: bool) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::Url("not a valid url".into()))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") if https_ok => true,
            _ if https_ok => {
                return Err(Error::Url(
                    "only http:// and https:// urls are fetched".into(),
                ));
            }
            _ => return Err(Error::Url("only http:// urls are fetched".into())),
        };
        let Some(authority) = uri.authority() else {
            return Err(Error::Url("the url has no host".into()));
        };
        if authority.as_str().contains('@') {
            return Err(Error::Url("credentials in urls are refused".into()));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(Error::Url("the url has no host".into()));
        }
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            tls,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path,
        })
    }

    /// Whether the url is `https://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the host is an onion service address.
    pub fn is_onion(&self) -> bool {
        self.host.to_ascii_lowercase().ends_with(".onion")
    }

    /// Whether the host is a loopback address literal (127.0.0.0/8, `::1`):
    /// a connection to it never leaves this host. Names, `localhost`
    /// included, are not: the system resolves them.
    pub fn is_loopback(&self) -> bool {
        self.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

    /// The host name, IP address or onion address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The request URL of `url`, parsed at the edge already: no parsing
    /// again.
    pub fn from_web(url: &WebUrl) -> Self {
        Self {
            tls: url.is_https(),
            host: url.host().to_string(),
            port: url.port(),
            path: url.path_and_query().to_owned(),
        }
    }

    /// The URL of `rel`, a `/`-separated relative path (a metadata file
    /// name, `targets/dir/HASH.name`), under the base URL `base`. Every
    /// segment is percent-encoded: a target named `a b#1?.txt` or with
    /// letters outside ASCII is fetched as that name, never cut at `#` or
    /// `?`.
    pub fn join(base: &WebUrl, rel: &str) -> Self {
        let mut url = Self::from_web(base);
        if !url.path.ends_with('/') {
            url.path.push('/');
        }
        let encoded: Vec<String> = rel
            .split('/')
            .map(|seg| percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string())
            .collect();
        url.path.push_str(&encoded.join("/"));
        url
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    /// The URL as requested (for error messages; Tor-fetched URLs are
    /// logged at debug level only).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

/// GETs `url` over `stream`, within `limits`.
pub async fn get<S>(stream: S, url: &HttpUrl, limits: &Limits) -> Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::time::timeout(limits.timeout, exchange(stream, url, limits))
        .await
        .map_err(|_| Error::Timeout {
            what: "http request",
            after: limits.timeout,
        })?
}

/// Aborts the connection task when the request is over or abandoned, so a
/// stalled peer never keeps a stream open behind our back.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The exchange itself, without a deadline (callers add theirs).
pub(crate) async fn exchange<S>(stream: S, url: &HttpUrl, limits: &Limits) -> Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (parts, body, _conn) = send(stream, url, None).await?;
    let body = read_body(body, &parts.headers, limits.max_body).await?;
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Sends the request and waits for the response head.
async fn send<S>(
    stream: S,
    url: &HttpUrl,
    range_from: Option<u64>,
) -> Result<(http::response::Parts, Incoming, AbortOnDrop)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "http connection ended with an error");
        }
    }));
    let mut req = Request::get(url.path())
        .header(HOST, url.host_header())
        .header(CONNECTION, "close")
        // A compressed body would not match the signed length and hashes.
        .header(ACCEPT_ENCODING, "identity");
    if let Some(from) = range_from {
        req = req.header(RANGE, format!("bytes={from}-"));
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new())?)
        .await?;
    let (parts, body) = resp.into_parts();
    Ok((parts, body, conn))
}

/// A response whose body is read chunk by chunk; the caller caps and times it.
pub struct BodyStream {
    /// The status code (`206 Partial Content` when a range was honoured).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    body: Incoming,
    _conn: AbortOnDrop,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl BodyStream {
    /// The next chunk of the body, `None` at its end. Has no deadline of its
    /// own: wrap each call in one.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data()
                && !data.is_empty()
            {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The announced `Content-Length`, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

/// GETs `url` over `stream` and returns once the response head is in, within
/// `timeout`; with `range_from`, asks for the body from that byte offset on.
pub async fn get_streaming<S>(
    stream: S,
    url: &HttpUrl,
    range_from: Option<u64>,
    timeout: Duration,
) -> Result<BodyStream>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (parts, body, conn) = tokio::time::timeout(timeout, send(stream, url, range_from))
        .await
        .map_err(|_| Error::Timeout {
            what: "http response head",
            after: timeout,
        })??;
    Ok(BodyStream {
        status: parts.status,
        headers: parts.headers,
        body,
        _conn: conn,
    })
}

async fn read_body(mut body: Incoming, headers: &HeaderMap, limit: u64) -> Result<Bytes> {
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(Error::BodyTooLarge { limit });
    }
    let capacity = announced.unwrap_or(0).min(1 << 20);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (buf.len() as u64).saturating_add(data.len() as u64) > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_http_urls() {
        let u = HttpUrl::parse("http://abc.onion/metadata/root.json?x=1").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.path()),
            ("abc.onion", 80, "/metadata/root.json?x=1")
        );
        assert_eq!(u.host_header(), "abc.onion");
        let u = HttpUrl::parse("http://127.0.0.1:8001").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("127.0.0.1", 8001, "/"));
        assert_eq!(u.host_header(), "127.0.0.1:8001");
        assert!(!u.is_tls());
        let u = HttpUrl::parse_any("https://m.example/x").unwrap();
        assert_eq!((u.host(), u.port(), u.is_tls()), ("m.example", 443, true));
        assert_eq!(u.host_header(), "m.example");
        assert!(HttpUrl::parse_any("ftp://x/").is_err());
        for (url, loopback) in [
            ("http://127.0.0.1:8/", true),
            ("http://127.9.8.7/", true),
            ("http://[::1]:8/", true),
            ("https://127.0.0.1/", true),
            ("http://localhost/", false),
            ("http://[::ffff:127.0.0.1]/", false),
            ("http://10.0.0.1/", false),
        ] {
            assert_eq!(
                HttpUrl::parse_any(url).unwrap().is_loopback(),
                loopback,
                "{url}"
            );
        }
        for bad in [
            "https://a.onion/",
            "ftp://x/",
            "http://u:p@x/",
            "/just/a/path",
            "::",
        ] {
            assert!(matches!(HttpUrl::parse(bad), Err(Error::Url(_))), "{bad}");
        }
    }

    /// Serves one canned response on a duplex pipe.
    async fn serve_raw(raw: &'static [u8]) -> tokio::io::DuplexStream {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = server.read(&mut req).await;
            let _ = server.write_all(raw).await;
            let _ = server.shutdown().await;
        });
        client
    }

    fn limits(max_body: u64) -> Limits {
        Limits {
            max_body,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn reads_a_body() {
        let s = serve_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        let url = HttpUrl::parse("http://x/").unwrap();
        let r = get(s, &url, &limits(10)).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], b"hello");
    }

    #[tokio::test]
    async fn caps_announced_and_streamed_bodies() {
        let url = HttpUrl::parse("http://x/").unwrap();
        let s = serve_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world").await;
        assert!(matches!(
            get(s, &url, &limits(10)).await,
            Err(Error::BodyTooLarge { limit: 10 })
        ));
        let s = serve_raw(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello world").await;
        assert!(matches!(
            get(s, &url, &limits(10)).await,
            Err(Error::BodyTooLarge { limit: 10 })
        ));
    }

    #[tokio::test]
    async fn streams_a_range_with_fixed_headers() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let seen = tokio::spawn(async move {
            let mut req = vec![0u8; 1024];
            let n = server.read(&mut req).await.unwrap();
            server
                .write_all(b"HTTP/1.1 206 Partial Content\r\ncontent-length: 3\r\n\r\nabc")
                .await
                .unwrap();
            server.shutdown().await.unwrap();
            String::from_utf8_lossy(&req[..n]).to_lowercase()
        });
        let url = HttpUrl::parse("http://x:81/t").unwrap();
        let mut b = get_streaming(client, &url, Some(7), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(b.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(b.content_length(), Some(3));
        let mut got = Vec::new();
        while let Some(c) = b.chunk().await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"abc");
        let req = seen.await.unwrap();
        assert!(req.starts_with("get /t http/1.1\r\n"), "{req}");
        assert!(req.contains("range: bytes=7-\r\n"), "{req}");
        assert!(req.contains("accept-encoding: identity\r\n"), "{req}");
        assert!(!req.contains("user-agent"), "{req}");
    }

    #[tokio::test]
    async fn stalled_server_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let url = HttpUrl::parse("http://x/").unwrap();
        let l = Limits {
            max_body: 10,
            timeout: Duration::from_millis(200),
        };
        let e = get(client, &url, &l).await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert_eq!(e.to_string(), "http request timed out after 200ms");
    }
}
