//! Local HTTP(S) and SOCKS5 servers on 127.0.0.1 for the unit tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server answers for a path.
#[derive(Clone)]
pub(crate) enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 200 with a body that never ends.
    Endless,
    /// Never answers.
    Stall,
}

type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Aborts the server task when the test drops the server.
pub(crate) struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A server on 127.0.0.1; with `tls`, HTTPS with that configuration.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    /// Every request's path, in order.
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
    _task: Abort,
}

pub(crate) async fn serve(
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let routes: Routes = Arc::new(routes);
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let seen = seen2.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let routes = routes.clone();
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(answer(&routes, &seen, req).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(cfg) => {
                        let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        seen,
        _task: Abort(task),
    }
}

async fn answer(
    routes: &Routes,
    seen: &Mutex<Vec<String>>,
    req: Request<Incoming>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let path = req.uri().path().to_owned();
    seen.lock().unwrap().push(path.clone());
    match routes(&path) {
        Reply::Body(b) => Response::new(Full::new(Bytes::from(b)).boxed()),
        Reply::Status(s) => {
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::from_u16(s).unwrap();
            r
        }
        Reply::Endless => {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[b'x'; 8192])))
            });
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
        Reply::Stall => std::future::pending().await,
    }
}

/// What a client told the fake SOCKS5 proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocksRequest {
    pub(crate) user: String,
    pub(crate) pass: String,
    /// The SOCKS address type: 3 is a domain name, 1 and 4 are IPs.
    pub(crate) atyp: u8,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A SOCKS5 proxy on 127.0.0.1 that requires username/password, records
/// each request, and answers every connection with `reply` (raw HTTP).
pub(crate) async fn fake_socks(
    reply: &'static [u8],
) -> (SocketAddr, Arc<Mutex<Vec<SocksRequest>>>, Abort) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut hdr = [0u8; 2];
                s.read_exact(&mut hdr).await.unwrap();
                let mut methods = vec![0u8; hdr[1] as usize];
                s.read_exact(&mut methods).await.unwrap();
                assert!(methods.contains(&2), "no username/password method offered");
                s.write_all(&[5, 2]).await.unwrap();
                let mut v = [0u8; 2];
                s.read_exact(&mut v).await.unwrap();
                let mut user = vec![0u8; v[1] as usize];
                s.read_exact(&mut user).await.unwrap();
                let plen = s.read_u8().await.unwrap();
                let mut pass = vec![0u8; plen as usize];
                s.read_exact(&mut pass).await.unwrap();
                s.write_all(&[1, 0]).await.unwrap();
                let mut req = [0u8; 4];
                s.read_exact(&mut req).await.unwrap();
                let host = match req[3] {
                    3 => {
                        let n = s.read_u8().await.unwrap();
                        let mut h = vec![0u8; n as usize];
                        s.read_exact(&mut h).await.unwrap();
                        String::from_utf8(h).unwrap()
                    }
                    1 => {
                        let mut h = [0u8; 4];
                        s.read_exact(&mut h).await.unwrap();
                        std::net::Ipv4Addr::from(h).to_string()
                    }
                    _ => String::new(),
                };
                let port = s.read_u16().await.unwrap();
                seen.lock().unwrap().push(SocksRequest {
                    user: String::from_utf8(user).unwrap(),
                    pass: String::from_utf8(pass).unwrap(),
                    atyp: req[3],
                    host,
                    port,
                });
                s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, seen, Abort(task))
}
