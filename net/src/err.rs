//! Errors of the fetcher's transports.

use std::time::Duration;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while setting up Tor or fetching over it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Tor settings are inconsistent (for example, a relaxation that is
    /// only safe on a private network was asked for on the public one).
    #[error("invalid tor settings: {0}")]
    Settings(String),

    /// A relay or authority identity in a custom network is malformed.
    #[error("invalid {kind} identity {value:?} in the custom tor network")]
    Identity {
        /// Which kind of identity (for example "v3ident").
        kind: &'static str,
        /// The text that failed to parse.
        value: String,
    },

    /// arti refused the configuration we built.
    #[error("arti rejected the tor configuration: {0}")]
    Config(#[from] arti_client::config::ConfigBuildError),

    /// arti failed to start or to bootstrap.
    #[error("tor bootstrap failed: {0}")]
    Bootstrap(#[source] arti_client::Error),

    /// Bootstrapping did not finish before its deadline.
    #[error("tor bootstrap did not finish within {after:?} ({status}); {hint}")]
    BootstrapTimeout {
        /// The deadline that passed.
        after: Duration,
        /// arti's own status line, including its clock-skew estimate if it has one.
        status: String,
        /// The likely cause, in words for an operator.
        hint: &'static str,
    },

    /// A Tor stream could not be opened.
    #[error("cannot open a tor stream for {purpose}: {source}")]
    Connect {
        /// What the stream was for.
        purpose: crate::tor::Purpose,
        /// arti's error.
        #[source]
        source: arti_client::Error,
    },

    /// The Tor daemon's SOCKS port does not accept connections.
    #[error("the tor SOCKS port {proxy} does not accept connections: {source}")]
    SocksPort {
        /// The SOCKS port.
        proxy: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The URL is not one we fetch (only `http://host[:port]/path`).
    #[error("unsupported url: {0}")]
    Url(String),

    /// The request could not be built.
    #[error("invalid http request: {0}")]
    Request(#[from] http::Error),

    /// The HTTP exchange failed.
    #[error("http error: {0}")]
    Http(#[from] hyper::Error),

    /// The response body is larger than allowed.
    #[error("response body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },

    /// An operation did not finish before its deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The deadline that passed.
        after: Duration,
    },

    /// The SOCKS5 proxy (a Tor daemon) refused or failed the connection.
    #[error("socks connection to {host}:{port} via {proxy} failed: {source}")]
    Socks {
        /// The SOCKS proxy.
        proxy: std::net::SocketAddr,
        /// The target host (as passed to Tor, never resolved locally).
        host: String,
        /// The target port.
        port: u16,
        /// tokio-socks' error.
        #[source]
        source: tokio_socks::Error,
    },

    /// A direct TCP connection failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Tcp {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed (bad certificate, wrong name, protocol error).
    #[error("tls handshake with {host} failed: {source}")]
    Tls {
        /// The server name.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The TLS settings are unusable (for example an unreadable extra CA file).
    #[error("tls settings: {0}")]
    TlsSettings(String),

    /// The URL is not one this transport may fetch (for example plain http
    /// or an onion address over direct HTTPS).
    #[error("the {transport} transport refuses {reason}")]
    Refused {
        /// The transport.
        transport: &'static str,
        /// What was refused, in words.
        reason: &'static str,
    },

    /// The server answered with an unexpected status.
    #[error("unexpected http status {0}")]
    Status(http::StatusCode),
}

impl onionpkg_core::HasKind for Error {
    fn kind(&self) -> onionpkg_core::ErrorKind {
        use onionpkg_core::ErrorKind as K;
        match self {
            Self::Settings(_)
            | Self::Identity { .. }
            | Self::Config(_)
            | Self::TlsSettings(_)
            | Self::Refused { .. } => K::BadConfig,
            Self::Bootstrap(_) | Self::BootstrapTimeout { .. } | Self::SocksPort { .. } => K::Tor,
            // The Tor daemon itself cannot be reached: Tor is down. Any other
            // SOCKS failure is Tor's answer about the destination.
            Self::Socks {
                source: tokio_socks::Error::ProxyServerUnreachable,
                ..
            } => K::Tor,
            Self::Socks {
                source: tokio_socks::Error::Io(e),
                ..
            } if e.kind() == std::io::ErrorKind::ConnectionRefused => K::Tor,
            Self::Socks { .. } => K::Network,
            Self::Connect { .. }
            | Self::Http(_)
            | Self::Timeout { .. }
            | Self::Tcp { .. }
            | Self::Tls { .. }
            | Self::Status(_) => K::Network,
            Self::Url(_) => K::BadInput,
            Self::BodyTooLarge { .. } => K::BadInput,
            Self::Request(_) => K::Internal,
        }
    }
}
