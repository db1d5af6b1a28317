//! The server's sockets: one task per UDP socket and per TCP listener,
//! in place of hickory's `Server`, which spawns a task for every datagram
//! and accepts every TCP connection.
//!
//! # Invariants
//! - A UDP socket's queries are answered one after another in its task:
//!   under a flood the kernel's receive buffer drops the excess, and the
//!   server's memory does not grow with the load.
//! - Every UDP response passes the rate limiter first (or is not sent) and
//!   is held to the amplification bound ([`Responder::respond`]).
//! - At most `max_tcp_connections` TCP connections are open at once (over
//!   every listener), and `max_tcp_per_address` from one address; one more
//!   is closed as soon as it is accepted, and the ones open keep working.
//! - A TCP connection is closed when a complete query does not arrive, or
//!   its response cannot be written, within `tcp_idle_timeout`, and on a
//!   query longer than [`MAX_TCP_QUERY`] or one that does not parse.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_net::xfer::Protocol;
use onionpkg_config::announce::ServeLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::answer::{Responder, parse};
use super::rate::{RateLimiter, Verdict};

/// The longest query read over TCP. A query is a header and one question
/// (with EDNS, a cookie, padding: some hundred bytes); anything longer is
/// not a query this server answers.
pub const MAX_TCP_QUERY: usize = 4096;

/// The largest datagram read over UDP; a longer one is cut and then fails
/// to parse.
const MAX_UDP_QUERY: usize = 4096;

/// What every socket task shares.
pub(crate) struct Shared {
    pub(crate) responder: Responder,
    pub(crate) limiter: Mutex<RateLimiter>,
    pub(crate) tcp: TcpSlots,
    pub(crate) idle: Duration,
}

impl Shared {
    /// The shared state for `limits`.
    pub(crate) fn new(responder: Responder, limits: &ServeLimits) -> Self {
        Self {
            responder,
            limiter: Mutex::new(RateLimiter::new(limits)),
            tcp: TcpSlots::new(limits),
            idle: limits.tcp_idle_timeout,
        }
    }
}

/// Counts of open TCP connections, in all and per address.
pub(crate) struct TcpSlots {
    all: Arc<Semaphore>,
    per_address: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A TCP connection's place in [`TcpSlots`], given back when dropped.
pub(crate) struct TcpSlot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl TcpSlots {
    fn new(limits: &ServeLimits) -> Self {
        let all = usize::try_from(limits.max_tcp_connections.max(1)).unwrap_or(1);
        Self {
            all: Arc::new(Semaphore::new(all)),
            per_address: usize::try_from(limits.max_tcp_per_address.max(1)).unwrap_or(1),
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `ip`, or `None` when a cap is reached.
    fn take(&self, ip: IpAddr) -> Option<TcpSlot> {
        let permit = self.all.clone().try_acquire_owned().ok()?;
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_address {
            return None;
        }
        *n += 1;
        Some(TcpSlot {
            _permit: permit,
            ip,
            open: self.open.clone(),
        })
    }
}

/// Answers the queries arriving on `socket` until `stop` turns true.
pub(crate) async fn serve_udp(
    socket: UdpSocket,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (len, src) = match received {
            Ok(r) => r,
            // An ICMP error for an earlier response, for example: the
            // socket itself is fine.
            Err(e) => {
                tracing::debug!(error = %e, "receiving on UDP");
                continue;
            }
        };
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let query = &buf[..len];
        let Some(request) = parse(query, src, Protocol::Udp) else {
            continue;
        };
        let verdict = match shared.limiter.lock() {
            Ok(mut limiter) => limiter.check(src.ip(), Instant::now()),
            Err(_) => Verdict::Drop,
        };
        let response = match verdict {
            Verdict::Answer => shared.responder.respond(&request, len).await,
            Verdict::Slip => shared.responder.truncated(&request, len),
            Verdict::Drop => None,
        };
        if let Some(response) = response
            && let Err(e) = socket.send_to(&response, src).await
        {
            tracing::debug!(error = %e, "sending a UDP response");
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true; each runs in
/// its own task, holding a slot.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, for example: wait a little rather
                // than spin.
                tracing::warn!(error = %e, "accepting a TCP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = shared.tcp.take(peer.ip()) else {
            tracing::debug!(%peer, "TCP connection over the cap: closed");
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, &shared, stop).await;
        });
    }
    // A graceful stop: a connection waiting for a query ends at once, one
    // answering finishes that answer (its write bounded by the idle time).
    while connections.join_next().await.is_some() {}
}

/// Answers the queries of one TCP connection, each within the idle time.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_TCP_QUERY];
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(shared.idle, read_frame(&mut stream, &mut buf)) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let len = match read {
            Ok(Ok(Some(len))) => len,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TCP query");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TCP connection idle: closed");
                return;
            }
        };
        let Some(request) = parse(&buf[..len], peer, Protocol::Tcp) else {
            return;
        };
        let Some(response) = shared.responder.respond(&request, len).await else {
            continue;
        };
        let Ok(prefix) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&prefix.to_be_bytes());
        framed.extend_from_slice(&response);
        match tokio::time::timeout(shared.idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Reads one length-prefixed message into `buf`; `None` at a clean end of
/// the stream before a new message.
async fn read_frame(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut prefix = [0u8; 2];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    let Some(body) = buf.get_mut(..len) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a {len}-byte query, longer than {MAX_TCP_QUERY}"),
        ));
    };
    stream.read_exact(body).await?;
    Ok(Some(len))
}
