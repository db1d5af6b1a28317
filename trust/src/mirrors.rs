//! The mirror list `mirrors.json`: its format, its validation, and the local
//! cached copy.
//!
//! The list reaches appliances as a TUF target signed by the delegated
//! `mirrors` role; [`crate::metadata`] checks that signature and the target's
//! hash. This module owns what is inside:
//!
//! ```json
//! {
//!   "version": 3,
//!   "expires": "2026-12-01T00:00:00Z",
//!   "mirrors": [
//!     {
//!       "name": "primary",
//!       "clearnet": "https://mirror.example.org/onionpkg/",
//!       "onion": "http://<56 characters>.onion/",
//!       "region": "eu",
//!       "weight": 10
//!     }
//!   ]
//! }
//! ```
//!
//! # Invariants
//! - A [`MirrorList`] has a version of at least 1, an expiry in whole seconds,
//!   and 1 to [`MAX_MIRRORS`] mirrors with distinct names and distinct URLs.
//! - Every [`Mirror`] has a clearnet `https` base URL, an onion base URL, or
//!   both. Base URLs are in canonical form, end with `/`, and carry no
//!   userinfo, query or fragment; an onion URL's host is a v3 onion address
//!   whose checksum and version are right. A typo in an onion address thus
//!   fails here, not as a silent connection failure on every appliance.
//! - [`MirrorList::to_json_bytes`] output parses back to an equal list, and
//!   the same list always gives the same bytes.
//! - The [`MirrorCache`] never goes back to a lower version, and never takes
//!   different content under a version it already holds.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onionpkg_core::url::WebUrl;
use onionpkg_core::{ErrorKind, HasKind};
use sha3::{Digest, Sha3_256};
use url::Url;

use crate::clock::Tolerance;
use crate::{Error, Result};

#[cfg(test)]
mod tests;

/// The largest mirror list accepted, in bytes (1 MiB).
pub const MAX_BYTES: usize = 1 << 20;

/// The most mirrors a list may hold.
pub const MAX_MIRRORS: usize = 1000;

/// The largest mirror weight.
pub const MAX_WEIGHT: u16 = 1000;

/// The longest mirror name.
const MAX_NAME: usize = 64;

/// The longest region hint.
const MAX_REGION: usize = 16;

/// Characters of a v3 onion address, without `.onion`.
const ONION_CHARS: usize = 56;

/// Why a mirror list is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorListError {
    /// The document is larger than [`MAX_BYTES`].
    #[error("mirror list is {len} bytes, more than the maximum {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The document is not JSON of the expected shape (including unknown or
    /// duplicate fields).
    #[error("mirror list is not valid: {0}")]
    Json(serde_json::Error),
    /// The version is 0.
    #[error("mirror list version must be at least 1")]
    BadVersion,
    /// A time is not of the form `YYYY-MM-DDTHH:MM:SSZ`, or not a real time.
    #[error("mirror list time {value:?} is invalid: {reason}")]
    BadTime {
        /// The time as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The list names no mirror.
    #[error("mirror list names no mirror")]
    NoMirrors,
    /// More mirrors than [`MAX_MIRRORS`].
    #[error("mirror list names {count} mirrors, more than the maximum {max}")]
    TooManyMirrors {
        /// How many.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A mirror name outside `[a-z0-9-]{1,64}`.
    #[error("mirror name {name:?} is invalid: use 1 to 64 characters a-z, 0-9 and '-'")]
    BadName {
        /// The name as written.
        name: String,
    },
    /// A region hint outside `[a-z0-9-]{1,16}`.
    #[error(
        "mirror {mirror:?}: region {region:?} is invalid: use 1 to 16 characters a-z, 0-9 and '-'"
    )]
    BadRegion {
        /// The mirror.
        mirror: String,
        /// The region as written.
        region: String,
    },
    /// A weight outside `1..=1000`.
    #[error("mirror {mirror:?}: weight {weight} is outside 1 to {max}", max = MAX_WEIGHT)]
    BadWeight {
        /// The mirror.
        mirror: String,
        /// The weight as written.
        weight: u64,
    },
    /// A mirror with neither a clearnet nor an onion URL.
    #[error("mirror {mirror:?} has neither a clearnet nor an onion URL")]
    NoUrl {
        /// The mirror.
        mirror: String,
    },
    /// A URL that does not parse.
    #[error("mirror {mirror:?}: {field} URL {url:?} does not parse: {reason}")]
    UnparsableUrl {
        /// The mirror.
        mirror: String,
        /// `clearnet` or `onion`.
        field: &'static str,
        /// The URL as written.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A URL with a scheme not allowed in its field.
    #[error("mirror {mirror:?}: {field} URL {url:?} must use {allowed}")]
    WrongScheme {
        /// The mirror.
        mirror: String,
        /// `clearnet` or `onion`.
        field: &'static str,
        /// The URL as written.
        url: String,
        /// The schemes allowed.
        allowed: &'static str,
    },
    /// A URL with userinfo, a query or a fragment, which a base URL must not
    /// have (userinfo would also leak to every appliance).
    #[error("mirror {mirror:?}: {field} URL {url:?} must not have a {part}")]
    UrlExtra {
        /// The mirror.
        mirror: String,
        /// `clearnet` or `onion`.
        field: &'static str,
        /// The URL as written.
        url: String,
        /// `userinfo`, `query` or `fragment`.
        part: &'static str,
    },
    /// A base URL whose path does not end with `/`: joining paths onto it
    /// would drop its last segment.
    #[error("mirror {mirror:?}: {field} URL {url:?} must end with '/'")]
    NoTrailingSlash {
        /// The mirror.
        mirror: String,
        /// `clearnet` or `onion`.
        field: &'static str,
        /// The URL as written.
        url: String,
    },
    /// A URL not written in canonical form; it must be spelled exactly as
    /// normalised, so that one URL has one spelling.
    #[error("mirror {mirror:?}: {field} URL {url:?} is not in canonical form; write {canonical:?}")]
    NotCanonical {
        /// The mirror.
        mirror: String,
        /// `clearnet` or `onion`.
        field: &'static str,
        /// The URL as written.
        url: String,
        /// The canonical spelling.
        canonical: String,
    },
    /// A clearnet URL pointing at an onion address.
    #[error(
        "mirror {mirror:?}: clearnet URL {url:?} points at an onion address; put it in `onion`"
    )]
    OnionInClearnet {
        /// The mirror.
        mirror: String,
        /// The URL as written.
        url: String,
    },
    /// An onion URL whose host is not a v3 onion address.
    #[error("mirror {mirror:?}: onion host {host:?} is not a v3 onion address: {reason}")]
    BadOnionHost {
        /// The mirror.
        mirror: String,
        /// The host.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// An onion address of another version than 3.
    #[error("mirror {mirror:?}: onion address {host:?} has version {version}, not 3")]
    OnionVersion {
        /// The mirror.
        mirror: String,
        /// The host.
        host: String,
        /// The version byte.
        version: u8,
    },
    /// An onion address whose checksum is wrong: most likely a typo.
    #[error("mirror {mirror:?}: onion address {host:?} has a wrong checksum (a typo?)")]
    OnionChecksum {
        /// The mirror.
        mirror: String,
        /// The host.
        host: String,
    },
    /// Two mirrors share a name.
    #[error("mirror name {0:?} appears twice")]
    DuplicateName(String),
    /// Two mirror entries share a URL.
    #[error("mirror URL {0:?} appears twice")]
    DuplicateUrl(String),
    /// The list is expired.
    #[error("mirror list expired at {expires} (now is {now})")]
    Expired {
        /// The expiry time.
        expires: Timestamp,
        /// The local time.
        now: Timestamp,
    },
    /// A list older than the cached one: a rollback.
    #[error("mirror list version {offered} is older than the cached version {cached}: a rollback")]
    Rollback {
        /// The cached version.
        cached: u64,
        /// The offered version.
        offered: u64,
    },
    /// A list with the cached version but different content: the signers
    /// reused a version, or a signing key is compromised.
    #[error("mirror list version {0} differs from the cached list of the same version")]
    VersionReused(u64),
    /// The cached copy on disk cannot be parsed. It is not silently dropped:
    /// dropping it would forget the version floor.
    #[error(
        "cached mirror list {path} is damaged; restore it, or remove it to start over: {source}"
    )]
    CorruptCache {
        /// The cache file.
        path: PathBuf,
        /// Why it cannot be parsed.
        source: Box<Self>,
    },
}

impl HasKind for MirrorListError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Expired { .. } => ErrorKind::Expired,
            Self::Rollback { .. } => ErrorKind::Rollback,
            Self::VersionReused(_) => ErrorKind::Verification,
            _ => ErrorKind::BadInput,
        }
    }
}

/// One mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    name: String,
    clearnet: Option<WebUrl>,
    onion: Option<WebUrl>,
    region: Option<String>,
    weight: u16,
}

impl Mirror {
    /// A mirror, validated as in a list.
    pub fn new(
        name: &str,
        clearnet: Option<&str>,
        onion: Option<&str>,
        region: Option<&str>,
        weight: u16,
    ) -> Result<Self, MirrorListError> {
        Self::from_raw(RawMirror {
            name: name.to_string(),
            clearnet: clearnet.map(str::to_string),
            onion: onion.map(str::to_string),
            region: region.map(str::to_string),
            weight: u64::from(weight),
        })
    }

    /// The mirror's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clearnet (`https`) base URL, ending with `/`.
    pub fn clearnet(&self) -> Option<&WebUrl> {
        self.clearnet.as_ref()
    }

    /// The onion base URL, ending with `/`.
    pub fn onion(&self) -> Option<&WebUrl> {
        self.onion.as_ref()
    }

    /// The region hint, such as `eu`.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The weight for random selection, 1 to [`MAX_WEIGHT`].
    pub fn weight(&self) -> u16 {
        self.weight
    }

    fn from_raw(raw: RawMirror) -> Result<Self, MirrorListError> {
        if !is_label(&raw.name, MAX_NAME) {
            return Err(MirrorListError::BadName { name: raw.name });
        }
        let mirror = raw.name;
        if let Some(region) = raw.region.as_deref().filter(|r| !is_label(r, MAX_REGION)) {
            return Err(MirrorListError::BadRegion {
                region: region.to_string(),
                mirror,
            });
        }
        let weight = match u16::try_from(raw.weight) {
            Ok(w) if (1..=MAX_WEIGHT).contains(&w) => w,
            _ => {
                return Err(MirrorListError::BadWeight {
                    mirror,
                    weight: raw.weight,
                });
            }
        };
        if raw.clearnet.is_none() && raw.onion.is_none() {
            return Err(MirrorListError::NoUrl { mirror });
        }
        let clearnet = raw
            .clearnet
            .map(|u| base_url(&mirror, "clearnet", &u))
            .transpose()?;
        let onion = raw
            .onion
            .map(|u| base_url(&mirror, "onion", &u))
            .transpose()?;
        Ok(Self {
            name: mirror,
            clearnet,
            onion,
            region: raw.region,
            weight,
        })
    }

    fn to_raw(&self) -> RawMirror {
        RawMirror {
            name: self.name.clone(),
            clearnet: self.clearnet.as_ref().map(|u| u.as_str().to_string()),
            onion: self.onion.as_ref().map(|u| u.as_str().to_string()),
            region: self.region.clone(),
            weight: u64::from(self.weight),
        }
    }
}

/// The mirror list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorList {
    version: u64,
    expires: Timestamp,
    mirrors: Vec<Mirror>,
}

impl MirrorList {
    /// A list from its parts, validated as if parsed. `expires` must be in
    /// whole seconds, the only precision the format holds.
    pub fn new(
        version: u64,
        expires: Timestamp,
        mirrors: Vec<Mirror>,
    ) -> Result<Self, MirrorListError> {
        if expires.subsec_nanosecond() != 0 {
            return Err(MirrorListError::BadTime {
                value: expires.to_string(),
                reason: "not in whole seconds".into(),
            });
        }
        let list = Self {
            version,
            expires,
            mirrors,
        };
        list.check()?;
        Ok(list)
    }

    /// Parses and validates `mirrors.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, MirrorListError> {
        if bytes.len() > MAX_BYTES {
            return Err(MirrorListError::TooLarge {
                len: bytes.len(),
                max: MAX_BYTES,
            });
        }
        let raw: RawList = serde_json::from_slice(bytes).map_err(MirrorListError::Json)?;
        if raw.mirrors.len() > MAX_MIRRORS {
            return Err(MirrorListError::TooManyMirrors {
                count: raw.mirrors.len(),
                max: MAX_MIRRORS,
            });
        }
        let list = Self {
            version: raw.version,
            expires: parse_time(&raw.expires)?,
            mirrors: raw
                .mirrors
                .into_iter()
                .map(Mirror::from_raw)
                .collect::<Result<_, _>>()?,
        };
        list.check()?;
        Ok(list)
    }

    /// The list-wide rules: version, count, no duplicates.
    fn check(&self) -> Result<(), MirrorListError> {
        if self.version == 0 {
            return Err(MirrorListError::BadVersion);
        }
        if self.mirrors.is_empty() {
            return Err(MirrorListError::NoMirrors);
        }
        if self.mirrors.len() > MAX_MIRRORS {
            return Err(MirrorListError::TooManyMirrors {
                count: self.mirrors.len(),
                max: MAX_MIRRORS,
            });
        }
        let mut names = std::collections::HashSet::new();
        let mut urls = std::collections::HashSet::new();
        for m in &self.mirrors {
            if !names.insert(m.name.as_str()) {
                return Err(MirrorListError::DuplicateName(m.name.clone()));
            }
            for url in m.clearnet.iter().chain(&m.onion) {
                if !urls.insert(url.as_str()) {
                    return Err(MirrorListError::DuplicateUrl(url.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The document: pretty JSON, fields in a fixed order, a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let raw = RawList {
            version: self.version,
            expires: self.expires.to_string(),
            mirrors: self.mirrors.iter().map(Mirror::to_raw).collect(),
        };
        #[allow(
            clippy::expect_used,
            reason = "strings and integers always serialise to JSON"
        )]
        let mut out = serde_json::to_vec_pretty(&raw).expect("serialisable");
        out.push(b'\n');
        out
    }

    /// The version; it only rises from one list to the next.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the list expires.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// The mirrors, in list order.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }

    /// Whether the list is expired at `now`, honouring the skew tolerance.
    pub fn is_expired(&self, now: Timestamp, tolerance: Tolerance) -> bool {
        tolerance.is_expired(self.expires, now)
    }

    /// Refuses an expired list with [`MirrorListError::Expired`].
    pub fn check_fresh(&self, now: Timestamp, tolerance: Tolerance) -> Result<(), MirrorListError> {
        if self.is_expired(now, tolerance) {
            return Err(MirrorListError::Expired {
                expires: self.expires,
                now,
            });
        }
        Ok(())
    }
}

/// The local cached copy of the newest mirror list accepted.
#[derive(Debug)]
pub struct MirrorCache {
    path: PathBuf,
    list: Option<MirrorList>,
}

impl MirrorCache {
    /// Loads the cache at `path`; a missing file means an empty cache, a file
    /// that does not parse is an error.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { path, list: None });
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        match MirrorList::parse(&bytes) {
            Ok(list) => Ok(Self {
                path,
                list: Some(list),
            }),
            Err(e) => Err(MirrorListError::CorruptCache {
                path,
                source: Box::new(e),
            }
            .into()),
        }
    }

    /// The cached list, if any.
    pub fn list(&self) -> Option<&MirrorList> {
        self.list.as_ref()
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a newly verified list, atomically.
    ///
    /// Refuses a lower version than the cached one (a rollback) and different
    /// content under the cached version; the same list again is a no-op.
    /// Freshness is the caller's check ([`MirrorList::check_fresh`]).
    pub fn store(&mut self, list: MirrorList) -> Result<()> {
        if let Some(cached) = &self.list {
            if list.version < cached.version {
                return Err(MirrorListError::Rollback {
                    cached: cached.version,
                    offered: list.version,
                }
                .into());
            }
            if list.version == cached.version {
                if list == *cached {
                    return Ok(());
                }
                return Err(MirrorListError::VersionReused(list.version).into());
            }
        }
        crate::util::write_atomic(&self.path, &list.to_json_bytes(), None)?;
        self.list = Some(list);
        Ok(())
    }
}

/// The `.onion` host name of the v3 onion service with ed25519 key `pubkey`:
/// base32(pubkey || checksum || version), lowercase, with `.onion`.
pub fn onion_host(pubkey: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.extend_from_slice(pubkey);
    raw.extend_from_slice(&onion_checksum(pubkey, 3));
    raw.push(3);
    format!(
        "{}.onion",
        data_encoding::BASE32_NOPAD
            .encode(&raw)
            .to_ascii_lowercase()
    )
}

/// The two checksum bytes of a v3 onion address (rend-spec-v3).
fn onion_checksum(pubkey: &[u8], version: u8) -> [u8; 2] {
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(pubkey);
    h.update([version]);
    let d = h.finalize();
    [d[0], d[1]]
}

/// Checks that `host` is `<56 base32 characters>.onion`, a v3 address whose
/// checksum and version are right.
fn check_onion_host(mirror: &str, host: &str) -> Result<(), MirrorListError> {
    let bad = |reason: &str| MirrorListError::BadOnionHost {
        mirror: mirror.to_string(),
        host: host.to_string(),
        reason: reason.to_string(),
    };
    let label = host
        .strip_suffix(".onion")
        .ok_or_else(|| bad("it does not end with .onion"))?;
    if label.contains('.') {
        return Err(bad("subdomains of an onion address are not allowed"));
    }
    if label.len() != ONION_CHARS {
        return Err(bad(&format!(
            "{} characters before .onion, not {ONION_CHARS}",
            label.len()
        )));
    }
    let raw = data_encoding::BASE32_NOPAD
        .decode(label.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("not base32 (a-z, 2-7)"))?;
    let (pubkey, rest) = raw.split_at(32.min(raw.len()));
    let (checksum, version) = match rest {
        [c0, c1, v] => ([*c0, *c1], *v),
        _ => return Err(bad("does not decode to 35 bytes")),
    };
    if version != 3 {
        return Err(MirrorListError::OnionVersion {
            mirror: mirror.to_string(),
            host: host.to_string(),
            version,
        });
    }
    if onion_checksum(pubkey, version) != checksum {
        return Err(MirrorListError::OnionChecksum {
            mirror: mirror.to_string(),
            host: host.to_string(),
        });
    }
    Ok(())
}

/// Parses and checks one base URL of `mirror`'s `field`.
/// A mirror's base URL, checked strictly (a WHATWG parser, then our rules),
/// then carried as the [`WebUrl`] every transport takes.
fn base_url(mirror: &str, field: &'static str, text: &str) -> Result<WebUrl, MirrorListError> {
    let url = checked_url(mirror, field, text)?;
    WebUrl::parse_base(url.as_str()).map_err(|reason| MirrorListError::UnparsableUrl {
        mirror: mirror.to_string(),
        field,
        url: text.to_string(),
        reason,
    })
}

fn checked_url(mirror: &str, field: &'static str, text: &str) -> Result<Url, MirrorListError> {
    let m = || mirror.to_string();
    let u = || text.to_string();
    let url = Url::parse(text).map_err(|e| MirrorListError::UnparsableUrl {
        mirror: m(),
        field,
        url: u(),
        reason: e.to_string(),
    })?;
    let (allowed, ok) = match field {
        "clearnet" => ("https", url.scheme() == "https"),
        _ => ("http or https", matches!(url.scheme(), "http" | "https")),
    };
    if !ok {
        return Err(MirrorListError::WrongScheme {
            mirror: m(),
            field,
            url: u(),
            allowed,
        });
    }
    let extra = if !url.username().is_empty() || url.password().is_some() {
        Some("userinfo")
    } else if url.query().is_some() {
        Some("query")
    } else if url.fragment().is_some() {
        Some("fragment")
    } else {
        None
    };
    if let Some(part) = extra {
        return Err(MirrorListError::UrlExtra {
            mirror: m(),
            field,
            url: u(),
            part,
        });
    }
    if !url.path().ends_with('/') {
        return Err(MirrorListError::NoTrailingSlash {
            mirror: m(),
            field,
            url: u(),
        });
    }
    if url.as_str() != text {
        return Err(MirrorListError::NotCanonical {
            mirror: m(),
            field,
            url: u(),
            canonical: url.as_str().to_string(),
        });
    }
    let host = url.host_str().unwrap_or_default();
    let is_onion = host.ends_with(".onion");
    match field {
        "clearnet" if is_onion => Err(MirrorListError::OnionInClearnet {
            mirror: m(),
            url: u(),
        }),
        "clearnet" => Ok(url),
        _ => check_onion_host(mirror, host).map(|()| url),
    }
}

/// Parses a time of the form `YYYY-MM-DDTHH:MM:SSZ`, nothing else.
fn parse_time(value: &str) -> Result<Timestamp, MirrorListError> {
    let bad = |reason: &str| MirrorListError::BadTime {
        value: value.chars().take(40).collect(),
        reason: reason.to_string(),
    };
    let shape = value.len() == 20
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SSZ"));
    }
    let t: Timestamp = value
        .parse()
        .map_err(|e: jiff::Error| bad(&e.to_string()))?;
    // A leap second parses as :59; only exact spellings round-trip.
    if t.to_string() != value {
        return Err(bad("not a valid time"));
    }
    Ok(t)
}

/// Whether `s` is 1 to `max` characters of `[a-z0-9-]`.
fn is_label(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn default_weight() -> u64 {
    1
}

/// The document as written.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    version: u64,
    expires: String,
    mirrors: Vec<RawMirror>,
}

/// One mirror entry as written.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clearnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default = "default_weight")]
    weight: u64,
}
