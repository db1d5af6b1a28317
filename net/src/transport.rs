//! The three ways to reach a mirror: the embedded Tor client, a Tor daemon's
//! SOCKS port, and direct HTTPS.
//!
//! Whichever is used, a request goes the same way: open a stream (a Tor
//! stream, a SOCKS5 connection, a TCP connection), wrap it in TLS for
//! `https://` URLs, and speak HTTP/1.1 over it with [`crate::http`]'s fixed
//! headers, deadline and body cap.
//!
//! # Privacy
//! - [`Transport::Tor`] and [`Transport::Socks`] never open a clearnet
//!   connection nor resolve a name locally: host names go to Tor as they
//!   are (SOCKS5 domain addresses), and Tor resolves them at the exit.
//! - Each [`Purpose`] gets circuits of its own: an arti isolation token, or a
//!   distinct SOCKS username and password (Tor's `IsolateSOCKSAuth`, on by
//!   default). The SOCKS password is random per process, so separate runs
//!   do not share circuits either.
//! - [`Transport::Https`] is clearnet only: it refuses onion addresses,
//!   which it could only leak, and plain `http://`, except, when asked for
//!   with `loopback_http`, to a loopback address literal (a repository on
//!   the same host: those bytes never leave it).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;
use tracing::debug;

use crate::http::{BodyStream, HttpUrl, Limits, Response};
use crate::tor::{Purpose, TorTransport};
use crate::{Error, Result};

/// A byte stream a request can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open stream of any transport, TLS included when the URL asked for it.
pub type BoxedStream = Box<dyn Io>;

/// The certificate roots HTTPS is checked against: the Mozilla roots
/// (`webpki-roots`, so the appliance's own store plays no part) plus
/// optional extra CAs.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// The Mozilla roots plus every certificate in `extra_ca_pem`, if given.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self> {
        crate::tor::install_crypto_provider();
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let mut n = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| Error::TlsSettings(format!("extra ca: not valid pem: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::TlsSettings(format!("extra ca: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(Error::TlsSettings(
                    "extra ca: no certificate in the file".into(),
                ));
            }
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Like [`Tls::new`], reading the extra CAs from a PEM file.
    pub fn load(extra_ca: Option<&Path>) -> Result<Self> {
        match extra_ca {
            None => Self::new(None),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::TlsSettings(format!("cannot read extra ca {}: {e}", path.display()))
                })?;
                Self::new(Some(&pem))
            }
        }
    }

    async fn wrap<S>(&self, stream: S, host: &str) -> Result<BoxedStream>
    where
        S: Io + 'static,
    {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| Error::Tls {
            host: host.to_owned(),
            source: std::io::Error::other("not a valid tls server name"),
        })?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
            .map_err(|source| Error::Tls {
                host: host.to_owned(),
                source,
            })?;
        Ok(Box::new(tls))
    }
}

/// A Tor daemon's SOCKS5 port, one username and password per [`Purpose`].
#[derive(Clone)]
pub struct SocksTransport {
    proxy: SocketAddr,
    nonce: String,
}

impl std::fmt::Debug for SocksTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocksTransport")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl SocksTransport {
    /// A transport through the SOCKS5 port at `proxy`, with fresh credentials.
    pub fn new(proxy: SocketAddr) -> Self {
        Self {
            proxy,
            nonce: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// The SOCKS port.
    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }

    /// Whether the SOCKS port accepts a connection within `deadline`, so a
    /// Tor daemon that is not running is found before any mirror is asked
    /// (and a fallback transport can be chosen). Nothing is sent.
    pub async fn probe(&self, deadline: Duration) -> Result<()> {
        let source = match tokio::time::timeout(deadline, TcpStream::connect(self.proxy)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        Err(Error::SocksPort {
            proxy: self.proxy,
            source,
        })
    }

    /// The username and password that isolate `purpose`: Tor builds separate
    /// circuits for streams with different SOCKS credentials.
    pub fn credentials(&self, purpose: Purpose) -> (String, String) {
        (format!("onionpkg-{purpose}"), self.nonce.clone())
    }

    /// Opens a connection to `host:port` through Tor; `host` is passed to
    /// Tor as a name and never resolved locally.
    pub async fn connect(
        &self,
        purpose: Purpose,
        host: &str,
        port: u16,
    ) -> Result<Socks5Stream<TcpStream>> {
        debug!(%purpose, "opening socks stream");
        let (user, pass) = self.credentials(purpose);
        Socks5Stream::connect_with_password(self.proxy, (host, port), &user, &pass)
            .await
            .map_err(|source| Error::Socks {
                proxy: self.proxy,
                host: host.to_owned(),
                port,
                source,
            })
    }
}

/// A way to make HTTP/1.1 GETs to mirrors.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The embedded Tor client; `https://` URLs get TLS inside the Tor stream.
    Tor {
        /// The bootstrapped client and its isolation tokens.
        tor: TorTransport,
        /// Roots for `https://` mirrors reached through Tor.
        tls: Tls,
    },
    /// A Tor daemon's SOCKS port; `https://` URLs get TLS inside the stream.
    Socks {
        /// The SOCKS port and the per-purpose credentials.
        socks: SocksTransport,
        /// Roots for `https://` mirrors reached through Tor.
        tls: Tls,
    },
    /// Direct HTTPS to clearnet mirrors; the mirrors see our address.
    Https {
        /// The certificate roots.
        tls: Tls,
        /// Also plain `http://` to a loopback address literal (127.0.0.0/8,
        /// `::1`): a repository on the same host, such as a mirror's
        /// upstream. Never a name, which the system might resolve elsewhere.
        loopback_http: bool,
    },
}

impl Transport {
    /// The transport's name as in the configuration file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tor { .. } => "tor",
            Self::Socks { .. } => "socks",
            Self::Https { .. } => "https",
        }
    }

    /// Whether this transport goes through Tor (and so reaches onion services).
    pub fn is_tor(&self) -> bool {
        !matches!(self, Self::Https { .. })
    }

    /// Checks that this transport may fetch `url` at all.
    pub fn check(&self, url: &HttpUrl) -> Result<()> {
        if let Self::Https { loopback_http, .. } = self {
            let local = *loopback_http && url.is_loopback();
            if !url.is_tls() && !local {
                return Err(Error::Refused {
                    transport: "https",
                    reason: if *loopback_http {
                        "plain http:// urls but to a loopback address (127.0.0.0/8, [::1])"
                    } else {
                        "plain http:// urls"
                    },
                });
            }
            if url.is_onion() {
                return Err(Error::Refused {
                    transport: "https",
                    reason: "onion addresses (they need tor)",
                });
            }
        }
        Ok(())
    }

    /// Opens a stream to `url`'s host and port, with TLS for `https://`.
    pub async fn connect(&self, purpose: Purpose, url: &HttpUrl) -> Result<BoxedStream> {
        self.check(url)?;
        let (host, port) = (url.host(), url.port());
        let (raw, tls): (BoxedStream, &Tls) = match self {
            Self::Tor { tor, tls } => (Box::new(tor.connect(purpose, host, port).await?), tls),
            Self::Socks { socks, tls } => {
                (Box::new(socks.connect(purpose, host, port).await?), tls)
            }
            Self::Https { tls, .. } => {
                debug!(%purpose, "opening tcp connection");
                let tcp = TcpStream::connect((host, port))
                    .await
                    .map_err(|source| Error::Tcp {
                        host: host.to_owned(),
                        port,
                        source,
                    })?;
                (Box::new(tcp), tls)
            }
        };
        if url.is_tls() {
            tls.wrap(raw, host).await
        } else {
            Ok(raw)
        }
    }

    /// GETs `url` whole; `limits` bound the exchange, connection setup
    /// included, and the body size.
    pub async fn get(&self, purpose: Purpose, url: &HttpUrl, limits: &Limits) -> Result<Response> {
        let exchange = async {
            let stream = self.connect(purpose, url).await?;
            crate::http::exchange(stream, url, limits).await
        };
        tokio::time::timeout(limits.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what: "http request",
                after: limits.timeout,
            })?
    }

    /// GETs `url` and returns once the response head is in, within
    /// `timeout` (connection setup included); with `range_from`, asks for
    /// the body from that offset. The caller caps and times the body.
    pub async fn get_streaming(
        &self,
        purpose: Purpose,
        url: &HttpUrl,
        range_from: Option<u64>,
        timeout: Duration,
    ) -> Result<BodyStream> {
        let head = async {
            let stream = self.connect(purpose, url).await?;
            crate::http::get_streaming(stream, url, range_from, timeout).await
        };
        tokio::time::timeout(timeout, head)
            .await
            .map_err(|_| Error::Timeout {
                what: "http response head",
                after: timeout,
            })?
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
