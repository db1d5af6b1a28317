//! The relay: where the signer collects requests from another host.
//!
//! The signer host listens on no network socket. On the host that asks for
//! signatures, the relay listens on a Unix socket for ordinary clients (the
//! same frames as the signer's own socket, so `onionpkg-repo --signer PATH`
//! works unchanged) and on a TCP port with mutual TLS ([`crate::tls`]) where
//! the signer connects. It queues each client's request frame, hands it to a
//! connected signer, and returns the signer's answer to that client.
//!
//! On a signer link the relay first writes an empty frame (the signer's
//! sign that the relay accepted its certificate), then a request frame and
//! reads the answer, one at a time; when it has nothing to send for
//! [`KEEPALIVE`] it writes an empty frame, so both sides notice a dead link
//! within a deadline.
//!
//! # Invariants
//! - A signer link is served only after a handshake, within
//!   [`HANDSHAKE_DEADLINE`], with a certificate whose key is pinned.
//! - The relay passes request frames through unchanged and adds no
//!   authority: the signer authenticates every request by the client key
//!   that signed it.
//! - A request is handed to a signer at most once, and never after its client
//!   stopped waiting ([`CLIENT_WAIT`]); an answer that cannot be delivered is
//!   dropped.
//! - Every read has a size cap and a deadline; at most [`MAX_CLIENTS`] client
//!   connections, [`MAX_HANDSHAKES`] handshakes, [`MAX_LINKS`] signer links
//!   and [`MAX_PENDING`] queued requests at once.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::frame::{self, FRAME_DEADLINE, FrameError, MAX_REQUEST, MAX_RESPONSE};
use crate::request::{Reason, Refusal, Response};
use crate::tls::{self, Identity, Pin, TlsStream};
use crate::{ClientError, Result};

/// How long a client's request may wait for a signer to take and answer it:
/// less than the client library's default deadline (30 s), so the client
/// reads the relay's explanation rather than its own timeout.
pub const CLIENT_WAIT: Duration = Duration::from_secs(25);
/// How long the relay stays silent on an idle signer link before writing an
/// empty frame.
pub const KEEPALIVE: Duration = Duration::from_secs(5);
/// How long a signer may take to answer one request.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(20);
/// How long a TLS handshake may take in all.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The most client connections served at once.
pub const MAX_CLIENTS: usize = 16;
/// The most signer links at once (after their handshake).
pub const MAX_LINKS: usize = 4;
/// The most TLS handshakes under way at once: connections not yet
/// authenticated, counted apart so that they never take a signer's place.
pub const MAX_HANDSHAKES: usize = 8;
/// The most requests waiting for a signer.
pub const MAX_PENDING: usize = 64;

/// What the relay is told.
#[derive(Debug)]
pub struct RelayConfig {
    /// The Unix socket for local clients (created with mode 0660).
    pub socket: PathBuf,
    /// The address the signer connects to.
    pub listen: SocketAddr,
    /// The relay's certificate and key.
    pub identity: Identity,
    /// The keys of the signers allowed to connect.
    pub signer_pins: Vec<Pin>,
}

/// One client's request, waiting for a signer.
struct Job {
    frame: Vec<u8>,
    reply: mpsc::SyncSender<Vec<u8>>,
    /// When its client stops waiting.
    until: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl Queue {
    /// Queues a request unless too many wait.
    fn push(&self, job: Job) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else {
            return false;
        };
        if jobs.len() >= MAX_PENDING {
            return false;
        }
        jobs.push_back(job);
        self.ready.notify_one();
        true
    }

    /// The next request whose client still waits, or `None` after `idle`.
    fn take(&self, idle: Duration) -> Option<Job> {
        let end = Instant::now() + idle;
        let mut jobs = self.jobs.lock().ok()?;
        loop {
            while let Some(job) = jobs.pop_front() {
                if job.until > Instant::now() {
                    return Some(job);
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            jobs = self.ready.wait_timeout(jobs, left).ok()?.0;
        }
    }
}

/// A bound relay, not yet serving.
pub struct Relay {
    unix: UnixListener,
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    socket: PathBuf,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("socket", &self.socket)
            .field("listen", &self.tcp.local_addr().ok())
            .finish_non_exhaustive()
    }
}

fn bind_unix(path: &Path) -> Result<UnixListener> {
    let err = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| ClientError::Listen { what, source }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ClientError::Invalid(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(err("removing the stale socket"))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("creating the directory of"))?;
    }
    let listener = UnixListener::bind(path).map_err(err("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(err("setting the mode of"))?;
    Ok(listener)
}

impl Relay {
    /// Binds the Unix socket and the TLS port.
    pub fn bind(cfg: RelayConfig) -> Result<Self> {
        if cfg.signer_pins.is_empty() {
            return Err(ClientError::Invalid(
                "the relay needs the pin of at least one signer".into(),
            ));
        }
        let tls = tls::server_config(cfg.identity, &cfg.signer_pins)?;
        let tcp = TcpListener::bind(cfg.listen).map_err(|source| ClientError::Listen {
            what: format!("binding {}", cfg.listen),
            source,
        })?;
        let unix = bind_unix(&cfg.socket)?;
        Ok(Self {
            unix,
            tcp,
            tls,
            socket: cfg.socket,
            queue: Arc::default(),
        })
    }

    /// The TCP address signers connect to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.tcp.local_addr().map_err(|source| ClientError::Listen {
            what: "the relay's address".into(),
            source,
        })
    }

    /// Serves clients and signers until the process ends.
    pub fn run(self) -> Result<()> {
        tracing::info!(
            socket = %self.socket.display(),
            listen = %self.local_addr()?,
            "relay listening"
        );
        let (tcp, tls, queue) = (self.tcp, self.tls, Arc::clone(&self.queue));
        std::thread::spawn(move || accept_signers(&tcp, &tls, &queue));
        let open = Arc::new(AtomicUsize::new(0));
        for stream in self.unix.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                open.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("too many client connections; closing one");
                continue;
            }
            let (queue, open) = (Arc::clone(&self.queue), Arc::clone(&open));
            std::thread::spawn(move || {
                client(stream, &queue);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    }
}

/// The relay's own answer when no signer answered: a refusal whose message
/// says it is the relay's.
fn relay_refusal(message: &str) -> Vec<u8> {
    let refusal = Response::Refused(Refusal::new(Reason::Internal, format!("relay: {message}")));
    serde_json::to_vec(&refusal).unwrap_or_default()
}

/// Serves one local client: each request frame waits for a signer's answer.
fn client(mut stream: UnixStream, queue: &Queue) {
    loop {
        let request = match frame::read_frame(&mut stream, MAX_REQUEST, FRAME_DEADLINE) {
            Ok(r) => r,
            Err(FrameError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "dropping a client connection");
                return;
            }
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            frame: request,
            reply,
            until: Instant::now() + CLIENT_WAIT,
        };
        let answer = if queue.push(job) {
            answer.recv_timeout(CLIENT_WAIT).unwrap_or_else(|_| {
                tracing::warn!("no signer answered a request in time");
                relay_refusal(&format!(
                    "no signer answered within {}s (is the signer connected?)",
                    CLIENT_WAIT.as_secs()
                ))
            })
        } else {
            relay_refusal(&format!("more than {MAX_PENDING} requests are waiting"))
        };
        if frame::write_frame(&mut stream, &answer, FRAME_DEADLINE).is_err() {
            return;
        }
    }
}

fn accept_signers(tcp: &TcpListener, tls: &Arc<rustls::ServerConfig>, queue: &Arc<Queue>) {
    let handshaking = Arc::new(AtomicUsize::new(0));
    let links = Arc::new(AtomicUsize::new(0));
    for stream in tcp.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if handshaking.fetch_add(1, Ordering::SeqCst) >= MAX_HANDSHAKES {
            handshaking.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("too many TLS handshakes under way; closing a connection");
            continue;
        }
        let (tls, queue) = (Arc::clone(tls), Arc::clone(queue));
        let (handshaking, links) = (Arc::clone(&handshaking), Arc::clone(&links));
        std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            let stream = accept(stream, tls);
            handshaking.fetch_sub(1, Ordering::SeqCst);
            let result = stream.and_then(|mut stream| {
                if links.fetch_add(1, Ordering::SeqCst) >= MAX_LINKS {
                    links.fetch_sub(1, Ordering::SeqCst);
                    return Err(ClientError::Tls(format!(
                        "more than {MAX_LINKS} signers connected"
                    )));
                }
                let result = link(&mut stream, &queue);
                links.fetch_sub(1, Ordering::SeqCst);
                result
            });
            match result {
                Ok(()) => tracing::info!(%peer, "signer disconnected"),
                Err(e) => tracing::warn!(%peer, error = %e, "signer link ended"),
            }
        });
    }
}

/// The TLS handshake of a connection; the signer is authenticated (its key
/// pinned) when it returns.
fn accept(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
) -> Result<TlsStream<rustls::ServerConnection>> {
    let _ = tcp.set_nodelay(true);
    let conn = rustls::ServerConnection::new(tls).map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    tls::handshake(&mut stream, HANDSHAKE_DEADLINE)?;
    Ok(stream)
}

/// Serves one signer link: hands it requests, returns its answers.
fn link(stream: &mut TlsStream<rustls::ServerConnection>, queue: &Queue) -> Result<()> {
    let protocol = |e: FrameError| ClientError::Protocol(e.to_string());
    // An empty frame at once: in TLS 1.3 the signer's handshake ends before
    // the relay has checked its certificate, so this tells it that it was
    // accepted.
    frame::write_frame(stream, &[], FRAME_DEADLINE).map_err(protocol)?;
    let pin = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Pin::of_certificate(c).ok());
    tracing::info!(
        signer_pin = %pin.map_or_else(|| "?".into(), |p| p.to_string()),
        "signer connected"
    );
    loop {
        let Some(job) = queue.take(KEEPALIVE) else {
            frame::write_frame(stream, &[], FRAME_DEADLINE).map_err(protocol)?;
            continue;
        };
        let answer = frame::write_frame(stream, &job.frame, FRAME_DEADLINE)
            .and_then(|()| frame::read_frame(stream, MAX_RESPONSE, ANSWER_DEADLINE));
        match answer {
            Ok(answer) => {
                // The client may have gone; the answer is then dropped.
                let _ = job.reply.try_send(answer);
            }
            Err(e) => {
                // Not queued again: the signer may have signed it already,
                // and a second copy would be refused as a replay anyway.
                let _ = job
                    .reply
                    .try_send(relay_refusal("the signer's link broke during the request"));
                return Err(protocol(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn job(frame: &[u8], until: Instant) -> (Job, mpsc::Receiver<Vec<u8>>) {
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job {
            frame: frame.to_vec(),
            reply,
            until,
        };
        (job, rx)
    }

    #[test]
    fn a_request_whose_client_stopped_waiting_is_never_handed_out() {
        let queue = Queue::default();
        let now = Instant::now();
        let (gone, _) = job(b"gone", now.checked_sub(Duration::from_secs(1)).unwrap());
        let (waiting, _) = job(b"waiting", now + CLIENT_WAIT);
        assert!(queue.push(gone) && queue.push(waiting));
        assert_eq!(queue.take(Duration::ZERO).unwrap().frame, b"waiting");
        assert!(queue.take(Duration::from_millis(1)).is_none());
    }

    #[test]
    fn the_queue_refuses_past_its_bound() {
        let queue = Queue::default();
        let until = Instant::now() + CLIENT_WAIT;
        for _ in 0..MAX_PENDING {
            assert!(queue.push(job(b"r", until).0));
        }
        assert!(!queue.push(job(b"one too many", until).0));
    }

    #[test]
    fn a_relay_needs_a_signer_pin() {
        let dir = tempfile::tempdir().unwrap();
        let e = Relay::bind(RelayConfig {
            socket: dir.path().join("s.sock"),
            listen: "127.0.0.1:0".parse().unwrap(),
            identity: Identity::from_der(
                Vec::new(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(Vec::new().into()),
            ),
            signer_pins: Vec::new(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("at least one signer"), "{e}");
    }
}
