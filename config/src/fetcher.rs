//! The configuration of `onionpkg-fetch`, the appliance side.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::common::{DnsName, WebUrl, check_slug, de_with, format_duration};
use crate::load::{ConfigFile, Invalid, resolve};
use crate::program::{Argv, check_timeout, default_timeout};
use crate::tor::TorConfig;

pub use crate::common::{ClockConfig, MAX_SKEW_TOLERANCE};

/// The longest random delay before fetching: updates must not wait longer.
pub const MAX_RANDOM_DELAY: Duration = Duration::from_secs(6 * 3600);

/// The configuration of `onionpkg-fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetcherConfig {
    /// The TUF root metadata (`root.json`) all trust starts from, as shipped
    /// with the appliance's image. When the state directory has no pinned
    /// root yet, this file is checked and pinned on first use (as `init`
    /// would); after that, the pinned root and the chain of roots verified
    /// from it rule, and this file is only read by `init`. Required.
    pub trust_root: PathBuf,
    /// Trusted metadata and other state that must survive reboots. Required.
    pub state_dir: PathBuf,
    /// Caches that may be wiped at any time: Tor's directory cache lives in
    /// `tor` inside it unless `tor.cache_dir` says otherwise. (Downloads in
    /// progress live beside their final name in `output_dir`, so that the
    /// verified file is renamed into place atomically.) Required.
    pub cache_dir: PathBuf,
    /// Where verified packages are placed. Required.
    pub output_dir: PathBuf,
    /// How to reach the mirrors. Default: `"tor"`.
    #[serde(default)]
    pub transport: Transport,
    /// Transports to use, in order, when `transport` cannot be set up (the
    /// embedded Tor does not bootstrap within `[tor] bootstrap_timeout`, a
    /// Tor daemon's SOCKS port refuses connections); each one passed over
    /// is a warning. A transport that is up but whose mirrors fail is not
    /// switched away from. Default: `[]`, no fallback. Listing `"https"`
    /// after `"tor"` reveals the appliance's address to the mirrors and the
    /// network when Tor is unreachable.
    #[serde(default)]
    pub fallback: Vec<Transport>,
    /// Base URLs of the mirrors named in the trusted root, tried before the
    /// signed mirror list is known: `https://` URLs, or `http://` or
    /// `https://` URLs of onion services; a missing trailing `/` is added.
    /// At least one. Required.
    #[serde(deserialize_with = "de_with::base_urls")]
    pub main_mirrors: Vec<WebUrl>,
    /// How long a mirror that failed or misbehaved is avoided. Default: `"1h"`.
    #[serde(
        default = "default_mirror_cooldown",
        deserialize_with = "de_with::duration"
    )]
    pub mirror_cooldown: Duration,
    /// The embedded Tor client, used when a transport is `"tor"`.
    #[serde(default)]
    pub tor: TorConfig,
    /// A Tor daemon's SOCKS port; required when a transport is `"socks"`.
    #[serde(default)]
    pub socks: Option<SocksConfig>,
    /// Direct HTTPS settings.
    #[serde(default)]
    pub https: HttpsConfig,
    /// DNS update announcements. Default: none, ask the mirrors.
    #[serde(default)]
    pub announcement: Option<AnnouncementConfig>,
    /// How far the local clock may be trusted.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Download limits.
    #[serde(default)]
    pub download: DownloadConfig,
    /// Traffic-analysis countermeasures.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// What to do when a feed's file changes, by feed name (`[feeds.NAME]`).
    /// Default: nothing.
    #[serde(default)]
    pub feeds: BTreeMap<String, FeedActionConfig>,
}

/// `[feeds.NAME]`: what `feeds sync` does once a new version of feed NAME is
/// verified and in place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedActionConfig {
    /// The program to run, with its arguments, without a shell: `{file}` is
    /// the feed file's path in the output directory. It runs once per new
    /// version of each file of the feed (the version whose action succeeded
    /// is remembered in the state directory), not for an unchanged one, and
    /// again at the next sync when it failed. Exit code 0 is success.
    /// Required.
    pub on_update: Argv,
    /// How long the program may run before it is killed and counted as
    /// failed, at most `"1h"`. Default: `"5m"`.
    #[serde(default = "default_timeout", deserialize_with = "de_with::duration")]
    pub timeout: Duration,
}

fn default_mirror_cooldown() -> Duration {
    Duration::from_secs(3600)
}

/// A way to reach the mirrors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The embedded Tor client.
    #[default]
    Tor,
    /// A Tor daemon's SOCKS port.
    Socks,
    /// Direct HTTPS, without Tor: the mirrors see the appliance's address.
    Https,
}

impl Transport {
    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tor => "tor",
            Self::Socks => "socks",
            Self::Https => "https",
        }
    }

    /// Whether this transport reaches onion services.
    pub fn reaches_onions(self) -> bool {
        matches!(self, Self::Tor | Self::Socks)
    }
}

/// `[socks]`: a Tor daemon's SOCKS port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocksConfig {
    /// The SOCKS5 address, such as `127.0.0.1:9050`. Required.
    #[serde(deserialize_with = "de_with::socket_addr")]
    pub addr: SocketAddr,
}

/// `[https]`: direct HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsConfig {
    /// Extra CA certificates (PEM) trusted besides the built-in roots, for
    /// mirrors with a private CA. Default: none.
    pub extra_ca: Option<PathBuf>,
}

/// `[announcement]`: the signed DNS TXT record that says whether an update
/// is out, so the appliance need not contact a mirror to find out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementConfig {
    /// The owner name of the TXT record. Required.
    pub name: DnsName,
    /// The release channel to follow. Default: `"stable"`.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// The DNS resolver to ask. Default: none; then `use_system_resolver`
    /// must be `true`.
    #[serde(default, deserialize_with = "de_with::opt_socket_addr")]
    pub resolver: Option<SocketAddr>,
    /// DNSSEC trust anchors: a file of the zone's DNSKEY records in zone-file
    /// syntax (as `dig ZONE DNSKEY` or Knot's `keymgr ZONE dnskey` print
    /// them). When set, the answer must validate against them: one that does
    /// not (unsigned, forged, another key) counts as no announcement, and a
    /// mirror is asked. An unreadable or malformed file is a configuration
    /// error. Default: none; the signature on the record is checked either way.
    #[serde(default)]
    pub dnssec_anchors: Option<PathBuf>,
    /// Ask the system's resolvers (`/etc/resolv.conf`) instead of `resolver`.
    /// They learn that this appliance checks for updates. Default: `false`.
    #[serde(default)]
    pub use_system_resolver: bool,
    /// When the record cannot be fetched or verified, ask a mirror instead.
    /// Default: `true`.
    #[serde(default = "default_true")]
    pub fallback_to_mirror: bool,
    /// How long after an announcement was signed a mirror may still serve
    /// the previous version without blame: it is skipped as "not yet
    /// synced", not cooled down, and when no mirror has the announced
    /// version the fetcher exits 9. After that, a mirror behind the
    /// announcement is frozen. At most `"1d"`. Default: `"1h"`.
    #[serde(
        default = "default_mirror_grace",
        deserialize_with = "de_with::duration"
    )]
    pub mirror_grace: Duration,
}

/// The longest grace period a mirror gets to sync an announced version.
pub const MAX_MIRROR_GRACE: Duration = Duration::from_secs(24 * 3600);

fn default_mirror_grace() -> Duration {
    Duration::from_secs(3600)
}

pub(crate) fn default_channel() -> String {
    "stable".to_owned()
}

fn default_true() -> bool {
    true
}

/// `[download]`: limits that keep a slow or hostile mirror from stalling
/// the update.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadConfig {
    /// Downloads at the same time, 1 to 16. Default: `2`.
    pub parallelism: u8,
    /// The slowest transfer tolerated, in bytes per second, averaged over
    /// `throughput_window`; a slower mirror is dropped. Default: `2048`.
    pub min_throughput: u64,
    /// The window `min_throughput` is averaged over. Default: `"60s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub throughput_window: Duration,
    /// The longest a whole update may take. Default: `"30m"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub deadline: Duration,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            parallelism: 2,
            min_throughput: 2048,
            throughput_window: Duration::from_secs(60),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// `[privacy]`: traffic-analysis countermeasures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The longest random wait before each fetch, so a fleet of appliances does
    /// not contact the mirrors in lockstep. At most `"6h"`. Default: `"0s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub random_delay: Duration,
}

impl FetcherConfig {
    /// The main transport followed by the fallbacks, in the order to try them.
    pub fn transports(&self) -> impl Iterator<Item = Transport> + '_ {
        std::iter::once(self.transport).chain(self.fallback.iter().copied())
    }

    /// Where `transport` is named in the file: the main key or its fallback entry.
    fn transport_key(&self, t: Transport) -> String {
        match self.fallback.iter().position(|f| *f == t) {
            Some(i) if self.transport != t => format!("fallback[{i}]"),
            _ => "transport".to_owned(),
        }
    }
}

impl ConfigFile for FetcherConfig {
    fn validate(&self) -> Result<(), Invalid> {
        for (key, path) in [
            ("trust_root", &self.trust_root),
            ("state_dir", &self.state_dir),
            ("cache_dir", &self.cache_dir),
            ("output_dir", &self.output_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(Invalid::new(key, "must not be empty"));
            }
        }
        let mut seen = HashSet::from([self.transport]);
        for (i, f) in self.fallback.iter().enumerate() {
            if *f == self.transport {
                return Err(Invalid::new(
                    format!("fallback[{i}]"),
                    format!("\"{}\" is already the main transport", f.as_str()),
                ));
            }
            if !seen.insert(*f) {
                return Err(Invalid::new(
                    format!("fallback[{i}]"),
                    format!("\"{}\" is listed twice", f.as_str()),
                ));
            }
        }
        if self.socks.is_none() && seen.contains(&Transport::Socks) {
            return Err(
                Invalid::new("socks.addr", "required when a transport is \"socks\"")
                    .near(self.transport_key(Transport::Socks)),
            );
        }
        if self.main_mirrors.is_empty() {
            return Err(Invalid::new("main_mirrors", "needs at least one mirror"));
        }
        let mut urls = HashSet::new();
        for (i, m) in self.main_mirrors.iter().enumerate() {
            if !urls.insert(m.as_str()) {
                return Err(Invalid::new(format!("main_mirrors[{i}]"), "listed twice"));
            }
        }
        if !self.transports().any(Transport::reaches_onions)
            && self.main_mirrors.iter().all(WebUrl::is_onion)
        {
            return Err(Invalid::new(
                "main_mirrors",
                "all mirrors are onion services, which \"https\" cannot reach; add an https \
                 mirror or a \"tor\" or \"socks\" transport",
            ));
        }
        self.tor.validate("tor")?;
        if let Some(a) = &self.announcement {
            a.validate()?;
        }
        self.clock.validate()?;
        if self.privacy.random_delay > MAX_RANDOM_DELAY {
            return Err(Invalid::new(
                "privacy.random_delay",
                format!(
                    "must be at most {}, found {}",
                    format_duration(MAX_RANDOM_DELAY),
                    format_duration(self.privacy.random_delay)
                ),
            ));
        }
        self.download.validate()?;
        for (name, action) in &self.feeds {
            check_slug(name, 64).map_err(|e| Invalid::new(format!("feeds.{name}"), e))?;
            check_timeout(action.timeout)
                .map_err(|m| Invalid::new(format!("feeds.{name}.timeout"), m))?;
        }
        Ok(())
    }

    fn finish(&mut self, base: &Path) {
        for path in [
            &mut self.trust_root,
            &mut self.state_dir,
            &mut self.cache_dir,
            &mut self.output_dir,
        ] {
            resolve(base, path);
        }
        if let Some(ca) = &mut self.https.extra_ca {
            resolve(base, ca);
        }
        if let Some(anchors) = self
            .announcement
            .as_mut()
            .and_then(|a| a.dnssec_anchors.as_mut())
        {
            resolve(base, anchors);
        }
        self.tor.finish(base, &self.state_dir, &self.cache_dir);
    }
}

impl AnnouncementConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check_slug(&self.channel, 32).map_err(|e| Invalid::new("announcement.channel", e))?;
        if self.mirror_grace > MAX_MIRROR_GRACE {
            return Err(Invalid::new(
                "announcement.mirror_grace",
                format!(
                    "must be at most {}, found {}",
                    format_duration(MAX_MIRROR_GRACE),
                    format_duration(self.mirror_grace)
                ),
            ));
        }
        match (self.resolver, self.use_system_resolver) {
            (None, false) => Err(Invalid::new(
                "announcement.resolver",
                "set a resolver, or use_system_resolver = true",
            )
            .near("announcement")),
            (Some(_), true) => Err(Invalid::new(
                "announcement.use_system_resolver",
                "conflicts with announcement.resolver; set only one",
            )),
            _ => Ok(()),
        }
    }
}

impl DownloadConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if !(1..=16).contains(&self.parallelism) {
            return Err(Invalid::new(
                "download.parallelism",
                format!("must be from 1 to 16, found {}", self.parallelism),
            ));
        }
        for (key, value) in [
            ("download.throughput_window", self.throughput_window),
            ("download.deadline", self.deadline),
        ] {
            if value.is_zero() {
                return Err(Invalid::new(key, "must be longer than 0s"));
            }
        }
        if self.throughput_window > self.deadline {
            return Err(Invalid::new(
                "download.throughput_window",
                "must not be longer than download.deadline",
            ));
        }
        Ok(())
    }
}
