//! An HTTPS mirror on 127.0.0.1 serving a repository tree, with switches
//! for misbehaviour: tampered targets, a stall partway through a target,
//! megabytes more after a target, a target trickled out too slowly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

/// Switches, changeable while the server runs.
#[derive(Default)]
pub struct Ctl {
    /// Flip a byte of every target served.
    pub tamper: AtomicBool,
    /// When non-zero: send this many bytes of a target, then stall.
    pub stall_after: AtomicU64,
    /// Send zeros instead of every target's bytes.
    pub garbage: AtomicBool,
    /// Send every target's bytes, then 16 MiB more (bounded, so that a
    /// client without the cap fills no disk).
    pub overlong: AtomicBool,
    /// When non-zero: send targets this many bytes at a time, one piece
    /// every `trickle_every_ms` (a slow-retrieval attack).
    pub trickle_bytes: AtomicU64,
    /// The pause between two trickled pieces, in milliseconds.
    pub trickle_every_ms: AtomicU64,
    /// Wakes every waiter created before a request for a target arrives
    /// (`notified()` before the request, `notify_waiters` at it).
    pub target_requested: tokio::sync::Notify,
}

pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub ctl: Arc<Ctl>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }
}

/// Serves `root` over HTTPS with `tls`.
pub async fn serve(root: PathBuf, tls: Arc<rustls::ServerConfig>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ctl = Arc::new(Ctl::default());
    let (seen2, ctl2) = (seen.clone(), ctl.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (root, seen, ctl, tls) = (root.clone(), seen2.clone(), ctl2.clone(), tls.clone());
            tokio::spawn(async move {
                let Ok(s) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (root, seen, ctl) = (root.clone(), seen.clone(), ctl.clone());
                    async move { Ok::<_, Infallible>(answer(&root, &seen, &ctl, &req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Server {
        addr,
        seen,
        ctl,
        task,
    }
}

/// A percent-encoded URL path, decoded; `None` if it is not UTF-8.
fn decode(path: &str) -> Option<String> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

fn status(s: StatusCode) -> Response<BoxBody<Bytes, Infallible>> {
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = s;
    r
}

fn answer(
    root: &std::path::Path,
    seen: &Mutex<Vec<Seen>>,
    ctl: &Ctl,
    req: &Request<Incoming>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let path = req.uri().path().to_owned();
    let range = req
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: range.clone(),
    });
    // The file is named by the decoded path, as a web server names it.
    let Some(file) = decode(&path) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if file.split('/').any(|seg| seg == "..") {
        return status(StatusCode::FORBIDDEN);
    }
    let Ok(mut bytes) = std::fs::read(root.join(file.trim_start_matches('/'))) else {
        return status(StatusCode::NOT_FOUND);
    };
    let is_target = path.starts_with("/targets/");
    if is_target {
        ctl.target_requested.notify_waiters();
    }
    if is_target
        && ctl.tamper.load(Ordering::SeqCst)
        && let Some(b) = bytes.last_mut()
    {
        *b ^= 0xff;
    }
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < bytes.len());
    let total = bytes.len();
    let body = bytes.split_off(from.unwrap_or(0));
    let stall = ctl.stall_after.load(Ordering::SeqCst) as usize;
    let mut body = body;
    if is_target && ctl.garbage.load(Ordering::SeqCst) {
        body.iter_mut().for_each(|b| *b = 0);
    }
    let trickle = ctl.trickle_bytes.load(Ordering::SeqCst) as usize;
    let mut resp = if is_target && ctl.overlong.load(Ordering::SeqCst) {
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[b'x'; 4096])))
        })
        .take(4096);
        let chunks =
            futures::stream::once(
                async move { Ok::<_, Infallible>(Frame::data(Bytes::from(body))) },
            )
            .chain(endless);
        Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    } else if is_target && trickle > 0 {
        let every = Duration::from_millis(ctl.trickle_every_ms.load(Ordering::SeqCst));
        let pieces: Vec<Bytes> = body.chunks(trickle).map(Bytes::copy_from_slice).collect();
        // The pace is the misbehaviour under test, not a synchronisation.
        let chunks = futures::stream::iter(pieces).then(move |piece| async move {
            tokio::time::sleep(every).await;
            Ok::<_, Infallible>(Frame::data(piece))
        });
        Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    } else if is_target && stall > 0 && stall < body.len() {
        let first = Bytes::from(body[..stall].to_vec());
        let chunks = futures::stream::once(async move { Ok::<_, Infallible>(Frame::data(first)) })
            .chain(futures::stream::pending());
        Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    } else {
        Response::new(Full::new(Bytes::from(body)).boxed())
    };
    if let Some(n) = from {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        resp.headers_mut().insert(
            http::header::CONTENT_RANGE,
            format!("bytes {n}-{}/{total}", total - 1).parse().unwrap(),
        );
    }
    resp
}

use futures::StreamExt;
