//! URLs and DNS names, parsed once where they enter (a configuration file,
//! a command line, the signed mirror list) and carried typed from there.
//!
//! # Invariants
//! - A [`WebUrl`] is `https://`, an onion service (`http://` or `https://`,
//!   Tor authenticates it), or, only through [`WebUrl::parse_local_base`],
//!   plain `http://` to a loopback address literal. It has no user
//!   information and no fragment; its scheme and host are lower case.
//! - A [`DnsName`] is lower case, without the trailing dot, with valid labels.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A DNS name, stored in lower case without the trailing dot.
///
/// Labels are 1 to 63 characters of letters, digits, `-` and `_` (for service
/// names such as `_onionpkg`), not starting or ending with `-`; the whole name
/// is at most 253 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// The name, lower case, without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name is `zone` or a name below it.
    pub fn is_within(&self, zone: &Self) -> bool {
        self.0 == zone.0
            || self
                .0
                .strip_suffix(zone.0.as_str())
                .is_some_and(|head| head.ends_with('.'))
    }
}

impl FromStr for DnsName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "expected a dns name like updates.example.org: {why}"
            ))
        };
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.is_empty() {
            return bad("the name is empty");
        }
        if name.len() > 253 {
            return bad("longer than 253 characters");
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return bad(&format!("label {label:?} must have 1 to 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad(&format!("label {label:?} starts or ends with '-'"));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return bad(&format!("{c:?} is not allowed"));
            }
        }
        Ok(Self(name))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The host of a [`WebUrl`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A v3 onion service: the 56 base32 characters before `.onion`, lower
    /// case, with a valid checksum.
    Onion(String),
    /// A DNS name.
    Dns(DnsName),
    /// An IP address.
    Ip(IpAddr),
}

/// An absolute `https://` URL, or an `http://` or `https://` URL of a v3 onion
/// service (Tor already encrypts and authenticates those); and, only where
/// it is parsed with [`WebUrl::parse_local_base`], `http://` of a loopback
/// address literal (a repository on the same host: nothing leaves it).
///
/// No user name or password (they would end up in logs) and no fragment; the
/// scheme and host are stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebUrl {
    text: String,
    https: bool,
    host: Host,
    port: u16,
    path_start: usize,
}

impl WebUrl {
    /// The whole URL, normalized.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Whether the host is an onion service, reachable only through Tor.
    pub fn is_onion(&self) -> bool {
        matches!(self.host, Host::Onion(_))
    }

    /// Whether the host is a loopback address literal (127.0.0.0/8, `::1`).
    pub fn is_loopback(&self) -> bool {
        matches!(self.host, Host::Ip(ip) if ip.is_loopback())
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, starting with `/`.
    pub fn path_and_query(&self) -> &str {
        &self.text[self.path_start..]
    }

    /// Whether the URL has a query (`?...`).
    pub fn has_query(&self) -> bool {
        self.path_and_query().contains('?')
    }

    /// Parses a base URL, one that file names are appended to: no query, and
    /// the path gets a trailing `/` if it lacks one.
    pub fn parse_base(s: &str) -> Result<Self, String> {
        Self::base(s.parse()?, s)
    }

    /// Like [`WebUrl::parse_base`], and also takes plain `http://` of a
    /// loopback address literal (127.0.0.0/8, `[::1]`; never a name such as
    /// `localhost`, which the system resolves): a repository on this host.
    pub fn parse_local_base(s: &str) -> Result<Self, String> {
        Self::base(Self::parse(s, true)?, s)
    }

    fn base(mut url: Self, s: &str) -> Result<Self, String> {
        if url.has_query() {
            return Err(format!("a base url takes no query (?...), found {s:?}"));
        }
        if !url.text.ends_with('/') {
            url.text.push('/');
        }
        Ok(url)
    }
}

impl FromStr for WebUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s, false)
    }
}

impl WebUrl {
    /// Parses `s`; with `loopback_http`, plain http to a loopback address
    /// literal is accepted too.
    fn parse(s: &str, loopback_http: bool) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "expected a url like https://updates.example.org/: {why}"
            ))
        };
        let Some((scheme, rest)) = s.split_once("://") else {
            return bad("no scheme");
        };
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            other => return bad(&format!("scheme {other:?} is not supported, use https")),
        };
        if let Some(c) = rest.chars().find(|c| !c.is_ascii_graphic()) {
            return bad(&format!("{c:?} is not allowed in a url"));
        }
        if rest.contains('#') {
            return bad("a fragment (#...) has no meaning here");
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if authority.contains('@') {
            return bad("user names and passwords do not belong in a url");
        }
        let (host_text, port_text) = split_host_port(authority)?;
        let host = parse_host(host_text)?;
        let port = match port_text {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad(&format!("port {p:?} is not a number from 1 to 65535")),
            },
        };
        let local = loopback_http && matches!(host, Host::Ip(ip) if ip.is_loopback());
        if !https && !matches!(host, Host::Onion(_)) && !local {
            return bad(if loopback_http {
                "plain http is only allowed for .onion addresses and loopback addresses \
                 (127.0.0.0/8, [::1]); use https"
            } else {
                "plain http is only allowed for .onion addresses; use https"
            });
        }
        let host_norm = match &host {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            other => other.to_string(),
        };
        let port_norm = port_text.map(|_| format!(":{port}")).unwrap_or_default();
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let prefix = format!(
            "{}://{host_norm}{port_norm}",
            if https { "https" } else { "http" }
        );
        Ok(Self {
            path_start: prefix.len(),
            text: prefix + &path,
            https,
            host,
            port,
        })
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("expected a url host: unclosed '[' in an ipv6 address")?;
        return match after {
            "" => Ok((host, None)),
            p => p
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("expected a url host: unexpected {p:?} after ']'")),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("expected a url with a host, found none".to_owned());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let lower = host.to_ascii_lowercase();
    if let Some(onion) = lower.strip_suffix(".onion") {
        return check_onion(onion).map(|()| Host::Onion(onion.to_owned()));
    }
    lower.parse().map(Host::Dns)
}

/// Checks a v3 onion address (without `.onion`): length, alphabet, version
/// and checksum, so a mistyped address fails here rather than at connect time.
fn check_onion(onion: &str) -> Result<(), String> {
    use sha3::Digest as _;

    if onion.len() != 56 {
        return Err(format!(
            "an onion address has 56 characters before .onion, found {} in {onion:?}",
            onion.len()
        ));
    }
    let bytes = data_encoding::BASE32_NOPAD
        .decode(onion.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("onion address {onion:?} is not base32 (a-z, 2-7)"))?;
    let [key @ .., c0, c1, version] = bytes.as_slice() else {
        return Err(format!("onion address {onion:?} is too short"));
    };
    if *version != 3 {
        return Err(format!("onion address {onion:?} is not a v3 address"));
    }
    let mut hasher = sha3::Sha3_256::new();
    hasher.update(b".onion checksum");
    hasher.update(key);
    hasher.update([*version]);
    let digest = hasher.finalize();
    if digest.get(..2) != Some(&[*c0, *c1][..]) {
        return Err(format!(
            "onion address {onion:?} has a wrong checksum (a typo?)"
        ));
    }
    Ok(())
}

impl fmt::Display for Host {
    /// The host as a connection names it: `NAME.onion`, a DNS name, or an
    /// IP address (IPv6 without brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Onion(o) => write!(f, "{o}.onion"),
            Self::Dns(d) => f.write_str(d.as_str()),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for WebUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for WebUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
