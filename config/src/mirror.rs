//! The configuration of `onionpkg-mirror`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::common::{ClockConfig, WebUrl, check_slug, de_with, format_duration};
use crate::load::{ConfigFile, Invalid, resolve};
use crate::program::{Argv, check_timeout, default_timeout};
use crate::tor::TorConfig;

/// The shortest feed refresh interval: upstream feeds must not be hammered.
pub const MIN_FEED_INTERVAL: Duration = Duration::from_secs(60);

/// The configuration of `onionpkg-mirror`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The repository tree to serve. Required.
    pub root: PathBuf,
    /// State that must survive restarts (Tor keys, sync state). Required.
    pub state_dir: PathBuf,
    /// Clearnet listeners. Default: none.
    #[serde(default)]
    pub listen: ListenConfig,
    /// The certificate for `listen.https`; required exactly when it is set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The onion service.
    #[serde(default)]
    pub onion: OnionConfig,
    /// The embedded Tor client, used by the onion service and by syncing and
    /// feeds through Tor. Its `cache_dir` defaults to `cache/tor` inside
    /// `state_dir`.
    #[serde(default)]
    pub tor: TorConfig,
    /// The metrics endpoint. Default: none.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Connection limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Syncing the repository from upstream. Default: none, the tree is
    /// updated by other means.
    #[serde(default)]
    pub sync: Option<SyncConfig>,
    /// The clock policy of sync: how far the local clock may be behind
    /// before synced metadata counts as expired (`skew_tolerance`, at most
    /// `"1h"`, default `"0s"`).
    #[serde(default)]
    pub clock: ClockConfig,
    /// Third-party feeds to fetch, check and serve (`[[feed]]`). Default: none.
    #[serde(default)]
    pub feed: Vec<FeedConfig>,
    /// Settings shared by every feed (`[feeds]`).
    #[serde(default)]
    pub feeds: FeedsConfig,
}

/// The most stored versions kept of one feed.
pub const MAX_FEED_KEEP: u32 = 100;

/// `[feeds]`: settings shared by every `[[feed]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    /// Extra CA certificates (PEM) trusted for `https://` feed upstreams,
    /// besides the Mozilla roots. Default: none.
    pub extra_ca: Option<PathBuf>,
    /// How many checked versions of each feed to keep, 1 to 100. Default: `3`.
    pub keep: u32,
    /// Publishing each new feed version as a target of the `feeds` role: set
    /// on the distro's primary, which holds the online keys. Default: none,
    /// feeds are fetched, checked and stored only.
    pub publish: Option<FeedPublishConfig>,
    /// The bubblewrap program (`bwrap`, Debian package `bubblewrap`) every
    /// feed `checker` runs in: no network, no capabilities, the file system
    /// read-only but for an empty `/tmp`. Default: `"/usr/bin/bwrap"`.
    pub bwrap: PathBuf,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            extra_ca: None,
            keep: 3,
            publish: None,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
        }
    }
}

/// `[feeds.publish]`: where new feed versions are signed and published.
///
/// The `feeds`, `snapshot` and `timestamp` roles are signed either with key
/// files (`keys`) or through `onionpkg-signer` (`signer` and `signer_key`),
/// so that the network-facing mirror holds no signing key; exactly one of
/// the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedPublishConfig {
    /// The repository directory of `onionpkg-repo`, usually the served
    /// `root`. Required.
    pub repo: PathBuf,
    /// The key directory of `onionpkg-repo` holding the online keys of the
    /// `feeds`, `snapshot` and `timestamp` roles. Required unless `signer`
    /// is set; refused with it.
    #[serde(default)]
    pub keys: Option<PathBuf>,
    /// The name of an environment variable holding the passphrase of the
    /// key files in `keys`, or of `signer_key`. Default: none, the keys are
    /// not encrypted.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// The Unix socket of `onionpkg-signer`: the `feeds`, `snapshot` and
    /// `timestamp` roles are signed there and no key file is read. Needs
    /// `signer_key`. Default: none, sign with the key files in `keys`.
    #[serde(default)]
    pub signer: Option<PathBuf>,
    /// This client's own key file (`onionpkg-repo keygen`), which
    /// authenticates its requests to the signer; the signer's `[[client]]`
    /// lists its public key with the roles `feeds`, `snapshot` and
    /// `timestamp`. Required with `signer`, refused without it.
    #[serde(default)]
    pub signer_key: Option<PathBuf>,
}

impl FeedPublishConfig {
    fn validate(&self) -> Result<(), Invalid> {
        match (&self.keys, &self.signer, &self.signer_key) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => Ok(()),
            (Some(_), Some(_), _) => Err(Invalid::new(
                "feeds.publish.keys",
                "refused with feeds.publish.signer: the roles are signed through the signer, \
                 so no key file may be named",
            )),
            (_, Some(_), None) => Err(Invalid::new(
                "feeds.publish.signer_key",
                "required with feeds.publish.signer: the client key that authenticates \
                 the requests",
            )
            .near("feeds.publish.signer")),
            (_, None, Some(_)) => Err(Invalid::new(
                "feeds.publish.signer_key",
                "given, but feeds.publish.signer is not set",
            )),
            (None, None, None) => Err(Invalid::new(
                "feeds.publish.keys",
                "required: the key directory, or feeds.publish.signer and signer_key to sign \
                 through onionpkg-signer",
            )
            .near("feeds.publish")),
        }
    }
}

/// `[listen]`: clearnet listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain HTTP. Default: none.
    #[serde(deserialize_with = "de_with::opt_socket_addr")]
    pub http: Option<SocketAddr>,
    /// HTTPS, with the certificate from `[tls]`. Default: none.
    #[serde(deserialize_with = "de_with::opt_socket_addr")]
    pub https: Option<SocketAddr>,
}

/// `[tls]`: the certificate for `listen.https`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM. Required.
    pub cert: PathBuf,
    /// The private key, PEM. Required.
    pub key: PathBuf,
}

/// `[onion]`: the onion service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnionConfig {
    /// Serve the repository as an onion service. Default: `false`.
    pub enabled: bool,
    /// The service's local name, which selects its key in Tor's state
    /// directory: `[a-z0-9_-]`, not starting with `-`. Default: `"onionpkg"`.
    pub nickname: String,
    /// Streams one rendezvous circuit may have open at once, 1 to 65535;
    /// a client that opens more has its circuit torn down (arti's
    /// `max_concurrent_streams_per_circuit`, C tor's
    /// `HiddenServiceMaxStreams` with `HiddenServiceMaxStreamsCloseCircuit`).
    /// Default: `16`, the fetcher's highest `download.parallelism`.
    pub max_streams_per_circuit: u32,
    /// Introduction requests per second the introduction points pass on
    /// (arti's `rate_limit_at_intro`, sent to them as the `DOS_PARAMS`
    /// extension), 1 to 2147483647; set together with `intro_burst`.
    /// Default: none, each introduction point applies the consensus'
    /// default.
    pub intro_rate: Option<u32>,
    /// The burst of introduction requests the introduction points allow,
    /// at least `intro_rate` and at most 2147483647; set together with
    /// `intro_rate`. Default: none.
    pub intro_burst: Option<u32>,
}

/// The default of `onion.max_streams_per_circuit`.
pub const DEFAULT_MAX_STREAMS_PER_CIRCUIT: u32 = 16;

impl Default for OnionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            nickname: "onionpkg".to_owned(),
            max_streams_per_circuit: DEFAULT_MAX_STREAMS_PER_CIRCUIT,
            intro_rate: None,
            intro_burst: None,
        }
    }
}

/// `[metrics]`: the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve metrics; must be a loopback address, as metrics reveal
    /// traffic patterns. Required.
    #[serde(deserialize_with = "de_with::socket_addr")]
    pub listen: SocketAddr,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log each request. This logs client IP addresses of clearnet requests,
    /// which is personal data. Default: `false`.
    pub access_log: bool,
}

/// `[limits]`: limits that keep slow or hostile clients from exhausting the
/// mirror.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Clearnet connections (HTTP and HTTPS together) served at the same
    /// time. The onion service and the metrics endpoint have budgets of
    /// their own, so filling this one blocks neither. Default: `1024`.
    pub max_connections: u32,
    /// Clearnet connections one client address may hold at the same time
    /// (an IPv6 client counts by its /64 prefix), so one address cannot
    /// take the whole clearnet budget. Behind a proxy on this host every
    /// client has the proxy's address: raise it to `max_connections` there.
    /// Default: `32`, room for two fetchers at their highest
    /// `download.parallelism` behind one (NAT) address.
    pub per_client: u32,
    /// Onion service streams served at the same time. Default: `512`.
    pub max_onion_streams: u32,
    /// Metrics endpoint connections served at the same time. Default: `8`.
    pub max_metrics_connections: u32,
    /// How long a client may take to send its request headers. Default: `"10s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub header_read_timeout: Duration,
    /// The largest request header block, in bytes, 1024 to 1048576.
    /// Default: `16384`.
    pub max_header_bytes: u32,
    /// How long a connection may go without a byte moving either way (a
    /// client that stops reading a response, an idle keep-alive) before it
    /// is closed. A slow but steady download is never cut off. Default:
    /// `"60s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub idle_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            per_client: 32,
            max_onion_streams: 512,
            max_metrics_connections: 8,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// `[sync]`: syncing the repository from upstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The upstream repository's base URL; a missing trailing `/` is added:
    /// `https://`, `http://` of an onion service (through Tor), or `http://`
    /// of a loopback address (127.0.0.0/8, `[::1]`: a repository on this
    /// host) with `via_tor = false`. Required.
    #[serde(deserialize_with = "de_with::local_base_url")]
    pub upstream: WebUrl,
    /// The pinned TUF root metadata the synced repository must verify
    /// against. Required.
    pub trust_root: PathBuf,
    /// How often to sync. Default: none, sync only when asked.
    #[serde(default, deserialize_with = "de_with::opt_duration")]
    pub interval: Option<Duration>,
    /// Sync through Tor, so upstream does not learn this mirror's address
    /// (which matters for an onion-only mirror). Required for an onion
    /// upstream. Default: `true`.
    #[serde(default = "default_true")]
    pub via_tor: bool,
    /// Extra CA certificates (PEM) trusted for an `https://` upstream,
    /// besides the Mozilla roots. Default: none.
    #[serde(default)]
    pub extra_ca: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

/// A third-party feed (`[[feed]]`) the mirror fetches, checks and serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The feed's name, unique, `[a-z0-9-]`; it is served under this name.
    /// Required.
    pub name: String,
    /// Where to fetch the feed: an `https://` or onion URL. Required.
    pub upstream: WebUrl,
    /// How often to fetch, at least `"1m"`. Default: `"6h"`.
    #[serde(
        default = "default_feed_interval",
        deserialize_with = "de_with::duration"
    )]
    pub interval: Duration,
    /// The largest accepted download, in bytes. Default: `104857600` (100 MiB).
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// What the content must look like to be served. Required.
    pub check: FeedCheck,
    /// Fetch through Tor. Required for an onion upstream. Default: `true`.
    #[serde(default = "default_true")]
    pub via_tor: bool,
    /// A URL publishing the feed's SHA-256 checksum. Default: none.
    #[serde(default)]
    pub checksum_url: Option<WebUrl>,
    /// A URL publishing a detached signature over the feed; needs
    /// `signature_key`. Default: none.
    #[serde(default)]
    pub signature_url: Option<WebUrl>,
    /// The minisign public key file the signature must verify against;
    /// needs `signature_url`. Default: none.
    #[serde(default)]
    pub signature_key: Option<PathBuf>,
    /// The file name the feed is published under (`feeds/NAME/FILE`):
    /// letters, digits, `.`, `_` and `-`. Default: the last segment of the
    /// upstream URL's path, or the feed's name when that is not such a name.
    #[serde(default)]
    pub file: Option<String>,
    /// The publisher's public key (PEM, ECDSA P-521 as IPFire's
    /// `signing-key.pem`) a `libloc` database's own signature must verify
    /// against. Required with `check = "libloc"`, refused with any other.
    #[serde(default)]
    pub libloc_key: Option<PathBuf>,
    /// An external program that must pass too, run in a sandbox (see
    /// [`FeedsConfig::bwrap`]) after the built-in check: an argument list
    /// without a shell, whose `{file}` is the downloaded file (read-only);
    /// exit code 0 passes. Required with `check = "external"`. Default: none.
    #[serde(default)]
    pub checker: Option<Argv>,
    /// Paths the checker may read besides the program's (`/usr`) and the
    /// file: its configuration, say (`/etc/suricata`). Absolute. Default:
    /// none.
    #[serde(default)]
    pub checker_paths: Vec<PathBuf>,
    /// How long the checker may run before it is killed and the check fails,
    /// at most `"1h"`. Default: `"5m"`.
    #[serde(default = "default_timeout", deserialize_with = "de_with::duration")]
    pub checker_timeout: Duration,
}

impl FeedConfig {
    /// The file name the feed is published under; see [`FeedConfig::file`].
    pub fn file_name(&self) -> String {
        if let Some(f) = &self.file {
            return f.clone();
        }
        let path = self.upstream.path_and_query();
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        if is_safe_file_name(last) {
            last.to_owned()
        } else {
            self.name.clone()
        }
    }
}

/// Whether `s` may name a published feed file.
pub fn is_safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn default_feed_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_max_size() -> u64 {
    100 * 1024 * 1024
}

/// The content check a feed must pass before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum FeedCheck {
    /// A text list of IP addresses and networks, one a line.
    #[serde(rename = "ip-list")]
    IpList,
    /// A MaxMind DB file.
    #[serde(rename = "mmdb")]
    Mmdb,
    /// A gzip-compressed tar archive.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// IPFire's location database (libloc's `location.db`), its embedded
    /// signature verified against `libloc_key`.
    #[serde(rename = "libloc")]
    Libloc,
    /// Tor's IPv4 GeoIP file (`geoip`): `INTIPLOW,INTIPHIGH,CC` lines.
    #[serde(rename = "tor-geoip")]
    TorGeoip,
    /// Tor's IPv6 GeoIP file (`geoip6`): `IPV6LOW,IPV6HIGH,CC` lines.
    #[serde(rename = "tor-geoip6")]
    TorGeoip6,
    /// Checked by the feed's `checker` only.
    #[serde(rename = "external")]
    External,
    /// No content check; only the size limit and any checksum or signature.
    #[serde(rename = "any")]
    Any,
}

impl ConfigFile for MirrorConfig {
    fn validate(&self) -> Result<(), Invalid> {
        for (key, path) in [("root", &self.root), ("state_dir", &self.state_dir)] {
            if path.as_os_str().is_empty() {
                return Err(Invalid::new(key, "must not be empty"));
            }
        }
        if self.listen.http.is_none() && self.listen.https.is_none() && !self.onion.enabled {
            return Err(Invalid::new(
                "listen",
                "nothing to serve on: set listen.http, listen.https or onion.enabled = true",
            ));
        }
        match (self.listen.https, &self.tls) {
            (Some(_), None) => {
                return Err(
                    Invalid::new("tls.cert", "required when listen.https is set")
                        .near("listen.https"),
                );
            }
            (None, Some(_)) => {
                return Err(Invalid::new("tls", "given, but listen.https is not set"));
            }
            _ => {}
        }
        if let (Some(http), Some(https)) = (self.listen.http, self.listen.https)
            && http == https
            // Port 0 asks the system for a free port: such listeners never collide.
            && http.port() != 0
        {
            return Err(Invalid::new("listen.https", "same address as listen.http"));
        }
        self.validate_nickname()?;
        self.onion.validate()?;
        if let Some(m) = &self.metrics
            && !m.listen.ip().is_loopback()
        {
            return Err(Invalid::new(
                "metrics.listen",
                format!(
                    "must be a loopback address such as 127.0.0.1:9100, found {}; metrics \
                     reveal traffic patterns",
                    m.listen
                ),
            ));
        }
        self.limits.validate()?;
        self.tor.validate("tor")?;
        if let Some(s) = &self.sync {
            s.validate()?;
        }
        self.clock.validate()?;
        if !(1..=MAX_FEED_KEEP).contains(&self.feeds.keep) {
            return Err(Invalid::new(
                "feeds.keep",
                format!(
                    "must be from 1 to {MAX_FEED_KEEP}, found {}",
                    self.feeds.keep
                ),
            ));
        }
        if let Some(p) = &self.feeds.publish {
            p.validate()?;
        }
        let mut names = HashSet::new();
        for (i, f) in self.feed.iter().enumerate() {
            f.validate(i)?;
            if !names.insert(f.name.as_str()) {
                return Err(Invalid::new(
                    format!("feed[{i}].name"),
                    format!("feed name {:?} is used twice", f.name),
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self, base: &Path) {
        resolve(base, &mut self.root);
        resolve(base, &mut self.state_dir);
        if let Some(tls) = &mut self.tls {
            resolve(base, &mut tls.cert);
            resolve(base, &mut tls.key);
        }
        if let Some(sync) = &mut self.sync {
            resolve(base, &mut sync.trust_root);
            if let Some(ca) = &mut sync.extra_ca {
                resolve(base, ca);
            }
        }
        for f in &mut self.feed {
            if let Some(key) = &mut f.signature_key {
                resolve(base, key);
            }
            if let Some(key) = &mut f.libloc_key {
                resolve(base, key);
            }
        }
        if let Some(ca) = &mut self.feeds.extra_ca {
            resolve(base, ca);
        }
        resolve(base, &mut self.feeds.bwrap);
        if let Some(p) = &mut self.feeds.publish {
            resolve(base, &mut p.repo);
            for path in [&mut p.keys, &mut p.signer, &mut p.signer_key]
                .into_iter()
                .flatten()
            {
                resolve(base, path);
            }
        }
        let cache = self.state_dir.join("cache");
        self.tor.finish(base, &self.state_dir, &cache);
    }
}

impl MirrorConfig {
    fn validate_nickname(&self) -> Result<(), Invalid> {
        let n = &self.onion.nickname;
        let ok = !n.is_empty()
            && n.len() <= 64
            && !n.starts_with('-')
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(Invalid::new(
                "onion.nickname",
                format!(
                    "expected 1 to 64 characters of a-z, 0-9, '_' and '-', not starting with \
                     '-', found {n:?}"
                ),
            ))
        }
    }
}

impl OnionConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if !(1..=65535).contains(&self.max_streams_per_circuit) {
            return Err(Invalid::new(
                "onion.max_streams_per_circuit",
                format!(
                    "must be from 1 to 65535, found {}",
                    self.max_streams_per_circuit
                ),
            ));
        }
        // The DOS_PARAMS extension carries signed 32-bit values, and an
        // introduction point takes a zero as "no limit".
        const MAX: u32 = i32::MAX.unsigned_abs();
        match (self.intro_rate, self.intro_burst) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(Invalid::new(
                "onion.intro_burst",
                "required when onion.intro_rate is set",
            )
            .near("onion.intro_rate")),
            (None, Some(_)) => Err(Invalid::new(
                "onion.intro_rate",
                "required when onion.intro_burst is set",
            )
            .near("onion.intro_burst")),
            (Some(rate), Some(burst)) => {
                if !(1..=MAX).contains(&rate) {
                    return Err(Invalid::new(
                        "onion.intro_rate",
                        format!("must be from 1 to {MAX}, found {rate}"),
                    ));
                }
                if !(rate..=MAX).contains(&burst) {
                    return Err(Invalid::new(
                        "onion.intro_burst",
                        format!("must be from onion.intro_rate ({rate}) to {MAX}, found {burst}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), Invalid> {
        for (key, value) in [
            ("limits.max_connections", self.max_connections),
            ("limits.per_client", self.per_client),
            ("limits.max_onion_streams", self.max_onion_streams),
            (
                "limits.max_metrics_connections",
                self.max_metrics_connections,
            ),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, "must be at least 1"));
            }
        }
        if self.header_read_timeout.is_zero() {
            return Err(Invalid::new(
                "limits.header_read_timeout",
                "must be longer than 0s",
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(Invalid::new(
                "limits.idle_timeout",
                "must be longer than 0s",
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(Invalid::new(
                "limits.max_header_bytes",
                format!(
                    "must be from 1024 to 1048576, found {}",
                    self.max_header_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl SyncConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if self.trust_root.as_os_str().is_empty() {
            return Err(Invalid::new("sync.trust_root", "must not be empty"));
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err(Invalid::new(
                "sync.interval",
                "must be longer than 0s; leave it out to sync only when asked",
            ));
        }
        check_upstream(&self.upstream, self.via_tor)
            .map_err(|m| Invalid::new("sync.via_tor", m).near("sync.upstream"))
    }

    /// Parses an upstream URL given for one run (`--upstream`) by the rules
    /// of `upstream`, against this section's `via_tor`.
    pub fn parse_upstream(&self, url: &str) -> Result<WebUrl, String> {
        let parsed = WebUrl::parse_local_base(url)?;
        check_upstream(&parsed, self.via_tor)?;
        Ok(parsed)
    }
}

/// Whether `upstream` can be reached with `via_tor` as set.
fn check_upstream(upstream: &WebUrl, via_tor: bool) -> Result<(), String> {
    if upstream.is_onion() && !via_tor {
        return Err("an onion upstream is only reachable through Tor".to_owned());
    }
    // Through Tor, a loopback address is the exit relay's, not this host's.
    if upstream.is_loopback() && !upstream.is_https() && via_tor {
        return Err(
            "a plain http upstream on a loopback address is on this host, not reachable \
             through Tor: set via_tor = false"
                .to_owned(),
        );
    }
    Ok(())
}

impl FeedConfig {
    fn validate(&self, i: usize) -> Result<(), Invalid> {
        let key = |k: &str| format!("feed[{i}].{k}");
        check_slug(&self.name, 64).map_err(|e| Invalid::new(key("name"), e))?;
        if self.interval < MIN_FEED_INTERVAL {
            return Err(Invalid::new(
                key("interval"),
                format!(
                    "must be at least {}, found {}",
                    format_duration(MIN_FEED_INTERVAL),
                    format_duration(self.interval)
                ),
            ));
        }
        if self.max_size == 0 {
            return Err(Invalid::new(key("max_size"), "must be at least 1"));
        }
        let onion = self.upstream.is_onion()
            || [&self.checksum_url, &self.signature_url]
                .into_iter()
                .flatten()
                .any(WebUrl::is_onion);
        if onion && !self.via_tor {
            return Err(
                Invalid::new(key("via_tor"), "an onion url is only reachable through Tor")
                    .near(key("upstream")),
            );
        }
        if let Some(f) = &self.file
            && !is_safe_file_name(f)
        {
            return Err(Invalid::new(
                key("file"),
                format!("{f:?} is not a plain file name (letters, digits, '.', '_', '-')"),
            ));
        }
        match (&self.signature_url, &self.signature_key) {
            (Some(_), None) => {
                return Err(
                    Invalid::new(key("signature_key"), "required with signature_url")
                        .near(key("signature_url")),
                );
            }
            (None, Some(_)) => {
                return Err(
                    Invalid::new(key("signature_url"), "required with signature_key")
                        .near(key("signature_key")),
                );
            }
            _ => {}
        }
        self.validate_checks(i)
    }

    /// The keys that belong to one check kind: `libloc_key`, `checker` and
    /// its settings.
    fn validate_checks(&self, i: usize) -> Result<(), Invalid> {
        let key = |k: &str| format!("feed[{i}].{k}");
        match (self.check, &self.libloc_key) {
            (FeedCheck::Libloc, None) => {
                return Err(Invalid::new(
                    key("libloc_key"),
                    "required with check = \"libloc\": the publisher's public key (PEM) \
                     the database's signature must verify against",
                )
                .near(key("check")));
            }
            (FeedCheck::Libloc, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Invalid::new(
                    key("libloc_key"),
                    "only used with check = \"libloc\"",
                ));
            }
        }
        match &self.checker {
            None if self.check == FeedCheck::External => {
                return Err(
                    Invalid::new(key("checker"), "required with check = \"external\"")
                        .near(key("check")),
                );
            }
            None if !self.checker_paths.is_empty() => {
                return Err(Invalid::new(key("checker_paths"), "only used with checker"));
            }
            None if self.checker_timeout != default_timeout() => {
                return Err(Invalid::new(
                    key("checker_timeout"),
                    "only used with checker",
                ));
            }
            Some(argv) if !argv.names_file() => {
                return Err(Invalid::new(
                    key("checker"),
                    "no argument names the file to check with {file}",
                ));
            }
            _ => {}
        }
        for (j, p) in self.checker_paths.iter().enumerate() {
            if !p.is_absolute() {
                return Err(Invalid::new(
                    format!("feed[{i}].checker_paths[{j}]"),
                    format!("must be an absolute path, found {}", p.display()),
                ));
            }
        }
        check_timeout(self.checker_timeout).map_err(|m| Invalid::new(key("checker_timeout"), m))
    }
}
