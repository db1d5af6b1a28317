//! A pluggable DNS transport: TCP streams from a function of the caller,
//! and never UDP.
//!
//! [`StreamProvider`] is a hickory [`RuntimeProvider`]: handed to
//! [`crate::query::resolver_over_streams`] it makes a full resolver (retries,
//! TXT lookups) whose every byte goes through streams the caller opens, such
//! as Tor streams to a resolver's port 53. The name-server address the
//! resolver is configured with is only a label passed to the function.
//!
//! # Invariants
//! - [`RuntimeProvider::bind_udp`] always fails: no datagram socket is ever
//!   created, so nothing leaks around the caller's transport. Every attempt
//!   is counted ([`StreamProvider::udp_bind_attempts`]) so tests can assert
//!   that none happened.
//! - Every connect is bounded by the timeout hickory passes (or 10 s).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_net::runtime::{RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime};

/// The connect timeout used when hickory gives none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The future a connect function returns.
pub type ConnectFuture<S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send>>;

/// A connect function: opens a stream to (or labelled as) a name server.
pub type ConnectFn<S> = Arc<dyn Fn(SocketAddr) -> ConnectFuture<S> + Send + Sync>;

/// Counters of what the resolver asked of the transport.
#[derive(Debug, Default)]
struct Counters {
    tcp_connects: AtomicUsize,
    udp_bind_attempts: AtomicUsize,
}

/// A hickory runtime whose TCP connections come from a caller-given async
/// function, and which refuses every UDP socket.
///
/// `S` is any tokio stream that is `Send + Sync` (wrap a `!Sync` stream in a
/// duplex pipe, or a mutex).
pub struct StreamProvider<S> {
    runtime: TokioRuntimeProvider,
    connect: ConnectFn<S>,
    counters: Arc<Counters>,
}

impl<S> Clone for StreamProvider<S> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
            connect: Arc::clone(&self.connect),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<S> std::fmt::Debug for StreamProvider<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamProvider")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<S> StreamProvider<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    /// A provider that opens each TCP connection with `connect(server)`.
    pub fn new<F, Fut>(connect: F) -> Self
    where
        F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
    {
        let connect: ConnectFn<S> = Arc::new(move |addr| Box::pin(connect(addr)));
        Self {
            runtime: TokioRuntimeProvider::new(),
            connect,
            counters: Arc::default(),
        }
    }

    /// How many TCP connections were asked for.
    pub fn tcp_connects(&self) -> usize {
        self.counters.tcp_connects.load(Ordering::SeqCst)
    }

    /// How many UDP sockets were asked for (and refused).
    pub fn udp_bind_attempts(&self) -> usize {
        self.counters.udp_bind_attempts.load(Ordering::SeqCst)
    }
}

impl<S> RuntimeProvider for StreamProvider<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    type Handle = TokioHandle;
    type Timer = TokioTime;
    // Required by the trait; never created (bind_udp always fails).
    type Udp = tokio::net::UdpSocket;
    type Tcp = AsyncIoTokioAsStd<S>;

    fn create_handle(&self) -> Self::Handle {
        self.runtime.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        _bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        self.counters.tcp_connects.fetch_add(1, Ordering::SeqCst);
        let fut = (self.connect)(server_addr);
        let timeout = timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(stream) => stream.map(AsyncIoTokioAsStd),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connecting the DNS stream timed out",
                )),
            }
        })
    }

    fn bind_udp(
        &self,
        _local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        self.counters
            .udp_bind_attempts
            .fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "UDP is disabled: DNS goes only through the caller's streams",
            ))
        })
    }
}
