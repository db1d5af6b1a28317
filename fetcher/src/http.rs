//! HTTP/1.1 GET over any byte stream (an arti `DataStream`, a SOCKS or TCP
//! connection), with a deadline and a body size cap on every request.
//!
//! hyper 1 drives the protocol; this module adds only what every fetch needs:
//! the URL subset we accept, the limits, and a connection task that never
//! outlives its request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use crate::{Error, Result};

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

/// The URLs we fetch: `http://host[:port]/path[?query]`.
///
/// Only plain http: over Tor, onion services authenticate the server
/// themselves, and everything fetched is verified against signed metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    host: String,
    port: u16,
    path: String,
}

impl HttpUrl {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::Url("not a valid url".into()))?;
        if uri.scheme_str() != Some("http") {
            return Err(Error::Url("only http:// urls are fetched".into()));
        }
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
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            path,
        })
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

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
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
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "http connection ended with an error");
        }
    }));
    let req = Request::get(url.path())
        .header(HOST, url.host_header())
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = read_body(body, &parts.headers, limits.max_body).await?;
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
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
