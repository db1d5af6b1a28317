//! The embedded Tor client (arti): configuration, bootstrap, and streams
//! isolated by purpose.
//!
//! Shared by the fetcher and the mirror. A [`TorSettings`] is plain data (it
//! comes from the configuration file or from a test network description);
//! [`client_config`] is the single place that turns it into an arti
//! configuration, so every relaxation needed for a private network is decided
//! here and refused on the public network.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arti_client::config::TorClientConfigBuilder;
use arti_client::config::dir::{AuthorityContacts, FallbackDir};
use arti_client::status::{BlockageKind, BootstrapStatus};
use arti_client::{DataStream, IsolationToken, StreamPrefs, TorClient, TorClientConfig};
use jiff::Timestamp;
use tor_llcrypto::pk::ed25519::Ed25519Identity;
use tor_llcrypto::pk::rsa::RsaIdentity;
use tor_netdir::Timeliness;
use tor_rtcompat::PreferredRuntime;
use tracing::{debug, info};

use crate::http::{HttpUrl, Limits, Response};
use crate::{Error, Result};

/// The arti client type used throughout onionpkg.
pub type Client = TorClient<PreferredRuntime>;

/// How long a bootstrap may take by default before we give up and explain why.
pub const DEFAULT_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(180);

/// Which Tor network to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// The public Tor network, with arti's built-in authorities and fallbacks.
    Public,
    /// A network with its own directory authorities (a private or test network).
    Custom {
        /// The directory authorities whose signatures make a consensus valid.
        authorities: Vec<Authority>,
        /// The directory caches contacted first, before a consensus is known.
        fallbacks: Vec<FallbackCache>,
        /// All relays run on one host and serve loopback targets: relays
        /// sharing a subnet are not treated as one family, and streams may
        /// target local addresses. Weakens anonymity; only for test networks.
        single_host: bool,
        /// Ports for which circuits are built ahead of time (empty: arti's
        /// default of 80 and 443).
        preemptive_ports: Vec<u16>,
    },
}

/// A directory authority of a custom network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The authority's v3 signing identity (hex RSA fingerprint).
    pub v3ident: String,
    /// Its directory addresses, used for uploads, downloads and votes.
    pub dir_addrs: Vec<SocketAddr>,
}

/// A fallback directory cache of a custom network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackCache {
    /// The relay's RSA identity (hex fingerprint).
    pub rsa_identity: String,
    /// The relay's ed25519 identity (base64, as in tor's `fingerprint-ed25519`).
    pub ed_identity: String,
    /// Its onion-router ports.
    pub orports: Vec<SocketAddr>,
}

/// Everything needed to build an arti client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorSettings {
    /// Persistent state (guards, keys): kept so later starts reuse them.
    pub state_dir: PathBuf,
    /// Directory cache: kept so later bootstraps are fast.
    pub cache_dir: PathBuf,
    /// The network to join.
    pub network: Network,
    /// How long [`bootstrap`] may take.
    pub bootstrap_timeout: Duration,
}

impl TorSettings {
    /// Settings for the public network with the default bootstrap deadline.
    pub fn public(state_dir: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            state_dir,
            cache_dir,
            network: Network::Public,
            bootstrap_timeout: DEFAULT_BOOTSTRAP_TIMEOUT,
        }
    }
}

impl From<&onionpkg_config::tor::TorConfig> for TorSettings {
    /// The settings of a `[tor]` configuration section: the public network
    /// unless a private one is configured. The one place a configuration
    /// becomes Tor settings, for the fetcher and the mirror alike.
    fn from(t: &onionpkg_config::tor::TorConfig) -> Self {
        use base64::Engine as _;
        let hex_upper =
            |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02X}")).collect() };
        let network = if t.authority.is_empty() {
            Network::Public
        } else {
            Network::Custom {
                authorities: t
                    .authority
                    .iter()
                    .map(|a| Authority {
                        v3ident: hex_upper(&a.v3ident),
                        dir_addrs: vec![a.dir_addr],
                    })
                    .collect(),
                fallbacks: t
                    .fallback
                    .iter()
                    .map(|f| FallbackCache {
                        rsa_identity: hex_upper(&f.rsa_identity),
                        ed_identity: base64::engine::general_purpose::STANDARD_NO_PAD
                            .encode(f.ed_identity),
                        orports: f.orports.clone(),
                    })
                    .collect(),
                single_host: t.is_private_network(),
                preemptive_ports: Vec::new(),
            }
        };
        Self {
            state_dir: t.state_dir.clone(),
            cache_dir: t.cache_dir.clone(),
            network,
            bootstrap_timeout: t.bootstrap_timeout,
        }
    }
}

/// Installs rustls' ring crypto provider for the whole process.
///
/// arti's rustls feature leaves the choice to the application, and its
/// runtime panics without one; idempotent, so every entry point calls it.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the arti configuration for `settings`.
pub fn client_config(settings: &TorSettings) -> Result<TorClientConfig> {
    let mut b = TorClientConfigBuilder::from_directories(&settings.state_dir, &settings.cache_dir);
    if let Network::Custom {
        authorities,
        fallbacks,
        single_host,
        preemptive_ports,
    } = &settings.network
    {
        custom_network(&mut b, authorities, fallbacks)?;
        if *single_host {
            // Every relay shares 127.0.0.1; a prefix longer than the address
            // makes no two relays count as one family.
            b.path_rules()
                .ipv4_subnet_family_prefix(33)
                .ipv6_subnet_family_prefix(129);
            b.address_filter().allow_local_addrs(true);
        }
        if !preemptive_ports.is_empty() {
            b.preemptive_circuits()
                .set_initial_predicted_ports(preemptive_ports.clone());
        }
    }
    Ok(b.build()?)
}

/// Replaces every public-network default (authorities, their upload,
/// download and vote addresses, and the fallbacks) with the custom network's.
fn custom_network(
    b: &mut TorClientConfigBuilder,
    authorities: &[Authority],
    fallbacks: &[FallbackCache],
) -> Result<()> {
    if authorities.is_empty() {
        return Err(Error::Settings(
            "a custom network needs at least one authority".into(),
        ));
    }
    if fallbacks.is_empty() {
        return Err(Error::Settings(
            "a custom network needs at least one fallback cache".into(),
        ));
    }
    let mut contacts = AuthorityContacts::builder();
    for a in authorities {
        if a.dir_addrs.is_empty() {
            return Err(Error::Settings(format!(
                "authority {} has no directory address",
                a.v3ident
            )));
        }
        contacts.v3idents().push(parse_rsa("v3ident", &a.v3ident)?);
        contacts.uploads().push(a.dir_addrs.clone());
        contacts.downloads().push(a.dir_addrs.clone());
        contacts.votes().push(a.dir_addrs.clone());
    }
    *b.tor_network().authorities() = contacts;

    let mut list = Vec::with_capacity(fallbacks.len());
    for f in fallbacks {
        if f.orports.is_empty() {
            return Err(Error::Settings(format!(
                "fallback {} has no orport",
                f.rsa_identity
            )));
        }
        let mut fb = FallbackDir::builder();
        fb.rsa_identity(parse_rsa("rsa", &f.rsa_identity)?)
            .ed_identity(parse_ed("ed25519", &f.ed_identity)?);
        fb.orports().extend(f.orports.iter().copied());
        list.push(fb);
    }
    b.tor_network().set_fallback_caches(list);
    Ok(())
}

fn parse_rsa(kind: &'static str, value: &str) -> Result<RsaIdentity> {
    RsaIdentity::from_hex(value.trim()).ok_or_else(|| Error::Identity {
        kind,
        value: value.to_owned(),
    })
}

fn parse_ed(kind: &'static str, value: &str) -> Result<Ed25519Identity> {
    Ed25519Identity::from_base64(value.trim()).ok_or_else(|| Error::Identity {
        kind,
        value: value.to_owned(),
    })
}

/// Builds a client for `settings` and bootstraps it within its deadline.
pub async fn bootstrap(settings: &TorSettings) -> Result<Arc<Client>> {
    let config = client_config(settings)?;
    bootstrap_config(config, settings.bootstrap_timeout).await
}

/// Bootstraps a client from a ready configuration within `timeout`.
///
/// On timeout the error carries arti's status (with its clock-skew estimate
/// when it has a noteworthy one) and the likely cause.
pub async fn bootstrap_config(config: TorClientConfig, timeout: Duration) -> Result<Arc<Client>> {
    install_crypto_provider();
    let client = TorClient::builder()
        .config(config)
        .create_unbootstrapped()
        .map_err(Error::Bootstrap)?;
    let started = std::time::Instant::now();
    match tokio::time::timeout(timeout, client.bootstrap()).await {
        Ok(Ok(())) => {
            info!(
                elapsed_ms = started.elapsed().as_millis(),
                "tor bootstrapped"
            );
            Ok(client)
        }
        Ok(Err(e)) => Err(Error::Bootstrap(e)),
        Err(_) => {
            let status = client.bootstrap_status();
            Err(Error::BootstrapTimeout {
                after: timeout,
                status: status.to_string(),
                hint: bootstrap_hint(&status),
            })
        }
    }
}

/// The likely cause of a stuck bootstrap, from arti's own diagnosis.
fn bootstrap_hint(status: &BootstrapStatus) -> &'static str {
    match status.blocked().map(|b| b.kind()) {
        Some(BlockageKind::ClockSkewed) => {
            "the system clock looks wrong: set it correctly and retry"
        }
        Some(BlockageKind::Offline) => {
            "no connection to any relay could be opened: the machine looks offline or a firewall blocks outgoing connections"
        }
        Some(BlockageKind::Filtering) => {
            "connections to relays are cut during the handshake: this network may block Tor"
        }
        Some(BlockageKind::CantBootstrap) => {
            "no usable directory information: the directory authorities and fallback caches may be down or unreachable"
        }
        _ => {
            "likely causes: the directory authorities and fallback caches are unreachable, or the system clock is wrong"
        }
    }
}

/// The `valid-after` time of the consensus `client` uses, or `None` when it
/// has none (not bootstrapped yet).
///
/// Only a consensus arti has validated counts: arti's directory manager hands
/// out a directory only after checking the consensus against the configured
/// authorities' signatures, so this time is signed by a majority of them and
/// is a lower bound on the true time, whatever the system clock says. It is
/// read whether or not arti still deems that consensus timely: arti accepts
/// one up to a day before its valid-after, and a stale one only lowers the
/// bound, which is still true.
pub fn consensus_valid_after(client: &Client) -> Option<Timestamp> {
    let dirmgr = client.dirmgr().ok()?;
    let netdir = dirmgr.netdir(Timeliness::Unchecked).ok()?;
    timestamp_of(netdir.lifetime().valid_after())
}

/// `t` as a [`Timestamp`]; `None` outside jiff's range (years -9999..=9999),
/// which no consensus time can reach.
fn timestamp_of(t: SystemTime) -> Option<Timestamp> {
    Timestamp::try_from(t).ok()
}

/// Why a stream is opened; each purpose gets circuits of its own, so an
/// observer at an exit or a mirror cannot link, say, metadata polls to
/// package downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// TUF metadata and the mirror list.
    Metadata,
    /// Package files.
    Packages,
    /// Third-party feeds (GeoIP data, blocklists, rules), signed targets
    /// under `feeds/`.
    Feeds,
    /// Name lookups through Tor.
    Dns,
}

impl Purpose {
    /// Every purpose, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Metadata, Self::Packages, Self::Feeds, Self::Dns];

    /// The purpose of downloading target `path`: feeds or packages.
    pub fn for_target(path: &str) -> Self {
        if path.starts_with("feeds/") {
            Self::Feeds
        } else {
            Self::Packages
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Metadata => 0,
            Self::Packages => 1,
            Self::Feeds => 2,
            Self::Dns => 3,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Metadata => "metadata",
            Self::Packages => "packages",
            Self::Feeds => "feeds",
            Self::Dns => "dns",
        })
    }
}

/// A bootstrapped client plus one isolation token per [`Purpose`].
#[derive(Clone)]
pub struct TorTransport {
    client: Arc<Client>,
    tokens: [IsolationToken; 4],
}

impl fmt::Debug for TorTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorTransport").finish_non_exhaustive()
    }
}

impl TorTransport {
    /// Wraps a client, with fresh isolation tokens.
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            tokens: [
                IsolationToken::new(),
                IsolationToken::new(),
                IsolationToken::new(),
                IsolationToken::new(),
            ],
        }
    }

    /// The underlying arti client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The isolation token of `purpose`.
    pub fn token(&self, purpose: Purpose) -> IsolationToken {
        self.tokens[purpose.index()]
    }

    /// Stream preferences that keep `purpose` on its own circuits.
    pub fn prefs(&self, purpose: Purpose) -> StreamPrefs {
        let mut prefs = StreamPrefs::new();
        prefs.set_isolation(self.token(purpose));
        prefs
    }

    /// Opens a stream to `host:port` (a host name, an IP or a `.onion`).
    pub async fn connect(&self, purpose: Purpose, host: &str, port: u16) -> Result<DataStream> {
        debug!(%purpose, "opening tor stream");
        self.client
            .connect_with_prefs((host, port), &self.prefs(purpose))
            .await
            .map_err(|source| Error::Connect { purpose, source })
    }

    /// GETs plain-http `url` over Tor; `limits` bound the whole exchange,
    /// stream setup included, and the body size.
    pub async fn get(&self, purpose: Purpose, url: &HttpUrl, limits: &Limits) -> Result<Response> {
        if url.is_tls() {
            return Err(Error::Url("only http:// urls are fetched this way".into()));
        }
        let exchange = async {
            let stream = self.connect(purpose, url.host(), url.port()).await?;
            crate::http::exchange(stream, url, limits).await
        };
        tokio::time::timeout(limits.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what: "tor http request",
                after: limits.timeout,
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
    const ED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn custom(dir: &std::path::Path) -> TorSettings {
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        TorSettings {
            state_dir: dir.join("state"),
            cache_dir: dir.join("cache"),
            network: Network::Custom {
                authorities: vec![Authority {
                    v3ident: V3.into(),
                    dir_addrs: vec![addr],
                }],
                fallbacks: vec![FallbackCache {
                    rsa_identity: V3.into(),
                    ed_identity: ED.into(),
                    orports: vec!["127.0.0.1:5001".parse().unwrap()],
                }],
                single_host: true,
                preemptive_ports: vec![8000],
            },
            bootstrap_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn custom_network_replaces_authorities_and_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = client_config(&custom(dir.path())).unwrap();
        let net = cfg.dir_mgr_config().unwrap().network;
        let auth = net.authorities();
        assert_eq!(auth.v3idents().len(), 1);
        assert_eq!(auth.v3idents()[0], RsaIdentity::from_hex(V3).unwrap());
        for list in [auth.uploads(), auth.downloads(), auth.votes()] {
            assert_eq!(
                list,
                &vec![vec!["127.0.0.1:7001".parse::<SocketAddr>().unwrap()]]
            );
        }
        assert_eq!(net.fallback_caches().len(), 1);
    }

    #[test]
    fn public_network_keeps_arti_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let s = TorSettings::public(dir.path().join("s"), dir.path().join("c"));
        let cfg = client_config(&s).unwrap();
        let dflt = TorClientConfig::default();
        assert_eq!(
            cfg.dir_mgr_config().unwrap().network,
            dflt.dir_mgr_config().unwrap().network
        );
    }

    #[test]
    fn bad_identities_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = custom(dir.path());
        if let Network::Custom { authorities, .. } = &mut s.network {
            authorities[0].v3ident = "not-hex".into();
        }
        let e = client_config(&s).unwrap_err().to_string();
        assert!(e.contains("v3ident") && e.contains("not-hex"), "{e}");

        let mut s = custom(dir.path());
        if let Network::Custom { fallbacks, .. } = &mut s.network {
            fallbacks[0].ed_identity = "!!".into();
        }
        let e = client_config(&s).unwrap_err().to_string();
        assert!(e.contains("ed25519"), "{e}");
    }

    #[test]
    fn empty_custom_network_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = custom(dir.path());
        if let Network::Custom { fallbacks, .. } = &mut s.network {
            fallbacks.clear();
        }
        let e = client_config(&s).unwrap_err().to_string();
        assert!(e.contains("fallback"), "{e}");
    }

    #[test]
    fn timeout_error_names_cause() {
        let e = Error::BootstrapTimeout {
            after: Duration::from_secs(10),
            status: "Stuck at 0%: We seem to be offline".into(),
            hint: bootstrap_hint(&BootstrapStatus::default()),
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("tor bootstrap did not finish within 10s"),
            "{msg}"
        );
        assert!(msg.contains("authorities"), "{msg}");
    }

    #[test]
    fn consensus_times_convert_exactly() {
        use std::time::UNIX_EPOCH;
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(
            timestamp_of(t),
            Some(Timestamp::from_second(1_795_000_000).unwrap())
        );
        assert_eq!(timestamp_of(t).unwrap().to_string(), "2026-11-18T11:06:40Z");
        // Consensus times are whole seconds, but nothing is rounded either way.
        let t = UNIX_EPOCH + Duration::new(1_795_000_000, 999_999_999);
        assert_eq!(
            timestamp_of(t),
            Some(Timestamp::new(1_795_000_000, 999_999_999).unwrap())
        );
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(
            timestamp_of(before),
            Some(Timestamp::from_second(-86_400).unwrap())
        );
        // Beyond jiff's range: no time rather than a wrong one.
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(timestamp_of(far), None);
    }

    /// A client on a custom network in `dir` that is never bootstrapped:
    /// it never touches the network.
    fn unbootstrapped(dir: &std::path::Path) -> Arc<Client> {
        install_crypto_provider();
        let cfg = client_config(&custom(dir)).unwrap();
        TorClient::builder()
            .config(cfg)
            .bootstrap_behavior(arti_client::BootstrapBehavior::Manual)
            .create_unbootstrapped()
            .unwrap()
    }

    #[tokio::test]
    async fn no_consensus_before_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let client = unbootstrapped(dir.path());
        assert_eq!(consensus_valid_after(&client), None);
    }

    #[tokio::test]
    async fn purposes_get_distinct_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let client = unbootstrapped(dir.path());
        let a = TorTransport::new(Arc::clone(&client));
        let b = TorTransport::new(client);
        let tokens: std::collections::BTreeSet<IsolationToken> = Purpose::ALL
            .iter()
            .flat_map(|&p| [a.token(p), b.token(p)])
            .collect();
        assert_eq!(tokens.len(), 2 * Purpose::ALL.len());
        // Clones share their tokens: one transport, one set of circuits per purpose.
        let c = a.clone();
        assert_eq!(a.token(Purpose::Packages), c.token(Purpose::Packages));
    }
}
