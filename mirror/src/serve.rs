//! Listeners and connections: clearnet HTTP and HTTPS, the metrics endpoint,
//! and the connection discipline shared with the onion service.
//!
//! Every connection takes a slot from its listener's budget (clearnet,
//! onion, metrics: [`crate::budget`]), a clearnet one also from its
//! address's share; when none is free the connection is closed at once
//! rather than queued, so a flood cannot grow memory, and a flood on one
//! listener, or from one address, does not starve the others. Each
//! connection has a header-read deadline (slowloris), a header size cap
//! and an idle timeout (no byte moving
//! either way), which cuts off a client that stops reading without
//! limiting how long a steady download may take. Shutdown stops the
//! accept loops, asks every connection to finish its in-flight request, and
//! waits for them up to a deadline.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::{Body as HttpBody, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use onionpkg_config::mirror::MirrorConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use crate::budget::Slot;
use crate::budget::{BudgetSizes, Budgets, Listener};
use crate::http::{RepoService, Via, full, status_response};
use crate::idle::IdleTimeout;
use crate::metrics::Metrics;
use crate::tls::ReloadableTls;
use crate::{Error, Result};

/// What hyper needs of an error it passes on.
type BoxErr = Box<dyn StdError + Send + Sync>;

/// What the listeners serve: an HTTP request as hyper reads it.
type Req = Request<Incoming>;

/// A service the mirror's listeners (TCP, TLS, onion) serve over HTTP/1.1:
/// hyper's bounds, said once. Every service that meets them has it.
pub trait HttpService<B: ServedBody>:
    Service<Req, Response = Response<B>, Future: Send + 'static, Error: Into<BoxErr>> + Send + 'static
{
}

impl<S, B: ServedBody> HttpService<B> for S where
    S: Service<Req, Response = Response<B>, Future: Send + 'static, Error: Into<BoxErr>>
        + Send
        + 'static
{
}

/// A response body those listeners send: hyper's bounds, said once.
pub trait ServedBody: HttpBody<Data: Send, Error: Into<BoxErr>> + Send + 'static {}

impl<B: HttpBody<Data: Send, Error: Into<BoxErr>> + Send + 'static> ServedBody for B {}

/// hyper refuses read buffers below this size.
const MIN_BUF: usize = 8192;

/// Connection limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// The sizes of the clearnet, onion and metrics budgets, and the
    /// per-client cap on clearnet.
    pub budgets: BudgetSizes,
    /// How long a client may take to send its request headers (and to
    /// finish a TLS handshake).
    pub header_read_timeout: Duration,
    /// The largest request header block.
    pub max_header_bytes: usize,
    /// How long a connection may go without a byte moving.
    pub idle_timeout: Duration,
}

impl ConnLimits {
    /// The limits of a configuration.
    pub fn from_config(c: &onionpkg_config::mirror::LimitsConfig) -> Self {
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            budgets: BudgetSizes {
                clearnet: size(c.max_connections),
                per_client: size(c.per_client),
                onion: size(c.max_onion_streams),
                metrics: size(c.max_metrics_connections),
            },
            header_read_timeout: c.header_read_timeout,
            max_header_bytes: usize::try_from(c.max_header_bytes).unwrap_or(MIN_BUF),
            idle_timeout: c.idle_timeout,
        }
    }
}

/// The connection discipline every listener shares: the budgets,
/// deadlines and the shutdown signal.
#[derive(Debug, Clone)]
pub struct Conns {
    budgets: Arc<Budgets>,
    metrics: Arc<Metrics>,
    limits: ConnLimits,
    shutdown: watch::Receiver<bool>,
}

impl Conns {
    /// Connections limited by `limits`, ending when `shutdown` turns true.
    pub fn new(limits: ConnLimits, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            budgets: Budgets::new(limits.budgets, Arc::clone(&metrics)),
            metrics,
            limits,
            shutdown,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// A free slot of `listener`'s budget for a client at `peer`, or
    /// `None` (counted as refused) when there is none.
    pub fn try_slot(&self, listener: Listener, peer: Option<IpAddr>) -> Option<Slot> {
        match self.budgets.try_slot(listener, peer) {
            Ok(slot) => Some(slot),
            Err(why) => {
                debug!(
                    listener = listener.name(),
                    reason = why.name(),
                    "refusing a connection"
                );
                None
            }
        }
    }

    /// Waits until every slot of every budget is free again (all
    /// connections closed), up to `deadline`; true if they all closed in
    /// time.
    pub async fn drained(&self, deadline: Duration) -> bool {
        self.budgets.drained(deadline).await
    }

    /// Serves HTTP/1.1 on `io` with the limits, until the client is done,
    /// a deadline passes, or shutdown (after the in-flight request).
    pub async fn serve<I, S, B>(&self, io: I, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService<B>,
        B: ServedBody,
    {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(self.limits.max_header_bytes.max(MIN_BUF))
            .max_headers(100)
            .serve_connection(
                TokioIo::new(IdleTimeout::new(io, self.limits.idle_timeout)),
                service,
            );
        let mut conn = std::pin::pin!(conn);
        let run = async {
            tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(self.shutdown.clone()) => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            }
        };
        if let Err(e) = run.await {
            if !e.is_timeout() && !e.is_incomplete_message() && !idled(&e) {
                self.metrics.error();
            }
            debug!(error = %e, "http connection ended with an error");
        }
    }
}

/// Whether hyper ended the connection because [`IdleTimeout`] fired.
fn idled(e: &hyper::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Resolves when shutdown is signalled; never if the sender is gone
/// without signalling.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Accepts on `listener` until shutdown; TLS first when `tls` is given.
pub async fn accept_loop(
    listener: TcpListener,
    via: Via,
    tls: Option<Arc<ReloadableTls>>,
    service: RepoService,
    conns: Conns,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(conns.shutdown.clone()) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin.
                debug!(error = %e, "accept failed");
                conns.metrics.error();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(slot) = conns.try_slot(Listener::Clearnet, Some(peer.ip())) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.for_peer(via, Some(peer));
        let conns = conns.clone();
        let tls = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => conns.serve(stream, service).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        conns.limits.header_read_timeout,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(tls_stream)) => conns.serve(tls_stream, service).await,
                        Ok(Err(e)) => debug!(error = %e, "tls handshake failed"),
                        Err(_) => debug!("tls handshake timed out"),
                    }
                }
            }
        });
    }
    debug!(via = ?via, "accept loop stopped");
}

/// Serves `/metrics` on `listener` (loopback only, checked by the config).
pub async fn metrics_loop(listener: TcpListener, metrics: Arc<Metrics>, conns: Conns) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(conns.shutdown.clone()) => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let Some(slot) = conns.try_slot(Listener::Metrics, None) else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let conns = conns.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let mut r = Response::new(full(metrics.render()));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        status_response(StatusCode::NOT_FOUND)
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            conns.serve(stream, service).await;
        });
    }
}

/// Binds `addr` for listener `what`, with a clear error when it is taken.
pub async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// The clearnet side of a running mirror: its listeners, by bound address.
#[derive(Debug)]
pub struct Listeners {
    /// The bound HTTP address.
    pub http: Option<SocketAddr>,
    /// The bound HTTPS address.
    pub https: Option<SocketAddr>,
    /// The bound metrics address.
    pub metrics: Option<SocketAddr>,
    /// The HTTPS certificate, for reloading.
    pub tls: Option<Arc<ReloadableTls>>,
}

/// Binds every configured clearnet listener and starts serving on them.
/// Binding happens before anything is spawned, so a taken port fails the
/// start with nothing left running.
pub async fn start_clearnet(
    config: &MirrorConfig,
    service: &RepoService,
    metrics: &Arc<Metrics>,
    conns: &Conns,
) -> Result<Listeners> {
    let tls = match &config.tls {
        Some(t) if config.listen.https.is_some() => {
            Some(Arc::new(ReloadableTls::load(&t.cert, &t.key)?))
        }
        _ => None,
    };
    let http = match config.listen.http {
        Some(a) => Some(bind("listen.http", a).await?),
        None => None,
    };
    let https = match config.listen.https {
        Some(a) => Some(bind("listen.https", a).await?),
        None => None,
    };
    let metrics_l = match &config.metrics {
        Some(m) => Some(bind("metrics.listen", m.listen).await?),
        None => None,
    };
    let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let out = Listeners {
        http: addr(&http),
        https: addr(&https),
        metrics: addr(&metrics_l),
        tls: tls.clone(),
    };
    if let Some(l) = http {
        info!(addr = ?out.http, "serving http");
        tokio::spawn(accept_loop(
            l,
            Via::Http,
            None,
            service.clone(),
            conns.clone(),
        ));
    }
    if let (Some(l), Some(tls)) = (https, tls) {
        info!(addr = ?out.https, "serving https");
        tokio::spawn(accept_loop(
            l,
            Via::Https,
            Some(tls),
            service.clone(),
            conns.clone(),
        ));
    } else if config.listen.https.is_some() {
        warn!("listen.https without [tls]: not serving https");
    }
    if let Some(l) = metrics_l {
        info!(addr = ?out.metrics, "serving metrics");
        tokio::spawn(metrics_loop(l, Arc::clone(metrics), conns.clone()));
    }
    Ok(out)
}
