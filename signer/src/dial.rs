//! Dialling out to relays: how requests from other hosts reach the signer,
//! which listens on no network socket.
//!
//! For each `[[upstream]]` a thread connects to the relay over TCP, completes
//! a TLS 1.3 handshake (the relay's key pinned, the signer's certificate
//! presented), then reads request frames and writes the service's answers on
//! the same connection. Empty frames are the relay's keepalive. When the link
//! fails or closes, the thread connects again after a pause that doubles from
//! [`BACKOFF_START`] up to [`BACKOFF_MAX`], and starts again from the start
//! after a link on which the relay wrote a frame (in TLS 1.3 the client's
//! handshake ends before the server has checked its certificate, so only a
//! frame shows the relay accepted the signer).
//!
//! # Invariants
//! - This runs in the front process; the key holder never sees the network.
//! - A request arriving here is handled exactly like one on the Unix socket:
//!   the link grants nothing, the client key that signed it does.
//! - Every read has a size cap and a deadline: the relay must write a frame
//!   (a request or a keepalive) within [`IDLE_DEADLINE`].

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onionpkg_config::UpstreamConfig;
use onionpkg_signer_client::frame::{self, FRAME_DEADLINE, FrameError, MAX_REQUEST};
use onionpkg_signer_client::relay::{HANDSHAKE_DEADLINE, KEEPALIVE};
use onionpkg_signer_client::tls::{self, Identity, Pin, TlsStream};
use rustls::pki_types::ServerName;

use crate::service::Service;
use crate::{Error, Result};

/// The first pause before connecting again.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest pause before connecting again.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long a TCP connection may take.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long the relay may stay silent (it writes a keepalive every
/// [`KEEPALIVE`]).
pub const IDLE_DEADLINE: Duration = Duration::from_secs(3 * KEEPALIVE.as_secs());

/// One relay, ready to dial.
#[derive(Debug)]
struct Upstream {
    address: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl Upstream {
    /// Reads the certificate and key and parses the pins: a mistake there
    /// stops the signer at start, not at the first connection.
    fn new(cfg: &UpstreamConfig) -> Result<Self> {
        let identity = Identity::load(&cfg.cert, &cfg.key)?;
        let pins = cfg
            .relay_pins
            .iter()
            .map(|p| Pin::parse(p))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let host = cfg
            .address
            .rsplit_once(':')
            .map_or(cfg.address.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| {
            Error::Invalid(format!("upstream {}: not a host name: {e}", cfg.address))
        })?;
        tracing::info!(
            relay = %cfg.address,
            pin = %identity.pin()?,
            "the signer's certificate key for this relay"
        );
        Ok(Self {
            address: cfg.address.clone(),
            server_name,
            tls: tls::client_config(identity, &pins)?,
        })
    }

    fn connect(&self) -> Result<TcpStream> {
        let addrs = self
            .address
            .to_socket_addrs()
            .map_err(|e| Error::Protocol(format!("resolving {}: {e}", self.address)))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_DEADLINE) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(Error::Protocol(format!(
            "connecting to {}: {}",
            self.address,
            last.unwrap_or_else(|| "no address".into())
        )))
    }

    /// One link: connect, handshake, serve until it ends. `true` when the
    /// relay wrote a frame (it accepted the signer's certificate).
    fn session(&self, service: &Mutex<Service>) -> (bool, Result<()>) {
        let tcp = match self.connect() {
            Ok(t) => t,
            Err(e) => return (false, Err(e)),
        };
        let _ = tcp.set_nodelay(true);
        let conn =
            match rustls::ClientConnection::new(Arc::clone(&self.tls), self.server_name.clone()) {
                Ok(c) => c,
                Err(e) => return (false, Err(Error::Protocol(e.to_string()))),
            };
        let mut stream: TlsStream<rustls::ClientConnection> = rustls::StreamOwned::new(conn, tcp);
        if let Err(e) = tls::handshake(&mut stream, HANDSHAKE_DEADLINE) {
            return (false, Err(e.into()));
        }
        let mut frames = 0u64;
        let result = serve_link(&mut stream, service, &self.address, &mut frames);
        (frames > 0, result)
    }
}

/// Answers the relay's request frames until the link closes or fails;
/// counts the frames read in `frames`. The relay writes an empty frame as
/// soon as it accepted the signer.
fn serve_link(
    stream: &mut TlsStream<rustls::ClientConnection>,
    service: &Mutex<Service>,
    relay: &str,
    frames: &mut u64,
) -> Result<()> {
    loop {
        let read = frame::read_frame(stream, MAX_REQUEST, IDLE_DEADLINE);
        if read.is_ok() {
            if *frames == 0 {
                // The relay's first frame, written after it checked our
                // certificate.
                tracing::info!(%relay, "connected to relay");
            }
            *frames += 1;
        }
        let request = match read {
            Ok(r) if r.is_empty() => continue,
            Ok(r) => r,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(Error::Protocol(e.to_string())),
        };
        let now = jiff::Timestamp::now().as_second();
        let response = service
            .lock()
            .map_err(|_| Error::Holder("the service lock is poisoned".into()))?
            .handle(&request, now);
        let bytes = serde_json::to_vec(&response).map_err(|e| Error::Protocol(e.to_string()))?;
        frame::write_frame(stream, &bytes, FRAME_DEADLINE)
            .map_err(|e| Error::Protocol(e.to_string()))?;
    }
}

/// Starts a thread per relay; fails (before any thread starts) when a
/// relay's certificate, key or pins cannot be used.
pub fn spawn(upstreams: &[UpstreamConfig], service: &Arc<Mutex<Service>>) -> Result<()> {
    let ready = upstreams
        .iter()
        .map(Upstream::new)
        .collect::<Result<Vec<_>>>()?;
    for upstream in ready {
        let service = Arc::clone(service);
        std::thread::spawn(move || {
            let mut pause = BACKOFF_START;
            loop {
                let (linked, result) = upstream.session(&service);
                match result {
                    Ok(()) => tracing::info!(relay = %upstream.address, "relay closed the link"),
                    Err(e) => {
                        tracing::warn!(relay = %upstream.address, error = %e, "relay link failed")
                    }
                }
                if linked {
                    pause = BACKOFF_START;
                }
                // A pause between attempts, so a relay that is down is not
                // hammered.
                std::thread::sleep(pause);
                pause = (pause * 2).min(BACKOFF_MAX);
            }
        });
    }
    Ok(())
}
