//! Value types shared by the configuration files: durations, DNS names, web
//! URLs, and the deserializers that give their errors in operators' words.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses a duration such as `"30s"`, `"10m"`, `"2h"`, `"1d"` or `"1h30m"`.
///
/// Units are `s`, `m`, `h` and `d`; a bare `"0"` is zero. There are no
/// fractions and no spaces, so a value reads the same to every operator.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration like \"30s\", \"10m\", \"2h\" or \"1d\"";
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(format!("{EXPECTED}, found {s:?}")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{EXPECTED}, found {s:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
        rest = chars.as_str();
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest unit
/// that divides it (`3600s` is `"1h"`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Deserializes a string through `parse`, with `expecting` as the description
/// serde uses when the value is not a string at all.
struct ParsedStr<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
    marker: PhantomData<T>,
}

impl<T> Visitor<'_> for ParsedStr<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

fn parsed_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_str(ParsedStr {
        expecting,
        parse,
        marker: PhantomData,
    })
}

/// Functions for `#[serde(deserialize_with)]` in the configuration structs.
pub(crate) mod de_with {
    use super::*;

    const DURATION: &str = "a duration like \"30s\", \"10m\", \"2h\" or \"1d\"";
    const SOCKET: &str = "a socket address like 127.0.0.1:8080 or [::1]:8080";

    fn socket_addr_str(s: &str) -> Result<SocketAddr, String> {
        s.parse().map_err(|_| {
            format!("expected a socket address like 127.0.0.1:8080 or [::1]:8080, found {s:?}")
        })
    }

    /// A duration string.
    pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parsed_str(d, DURATION, parse_duration)
    }

    /// An optional duration string (with `#[serde(default)]`).
    pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }

    /// A socket address string; host names are not accepted, so using a
    /// configuration never needs a DNS lookup.
    pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        parsed_str(d, SOCKET, socket_addr_str)
    }

    /// An optional socket address string (with `#[serde(default)]`).
    pub(crate) fn opt_socket_addr<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        socket_addr(d).map(Some)
    }

    /// An array of socket address strings.
    pub(crate) fn socket_addrs<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<SocketAddr>, D::Error> {
        struct One(SocketAddr);
        impl<'de> Deserialize<'de> for One {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                socket_addr(d).map(One)
            }
        }
        let all = Vec::<One>::deserialize(d)?;
        Ok(all.into_iter().map(|One(a)| a).collect())
    }

    /// A base URL (see [`WebUrl::parse_base`]).
    pub(crate) fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<WebUrl, D::Error> {
        parsed_str(
            d,
            "a url like https://updates.example.org/",
            WebUrl::parse_base,
        )
    }

    /// A base URL that may also be plain http to loopback (see
    /// [`WebUrl::parse_local_base`]).
    pub(crate) fn local_base_url<'de, D: Deserializer<'de>>(d: D) -> Result<WebUrl, D::Error> {
        parsed_str(
            d,
            "a url like https://updates.example.org/",
            WebUrl::parse_local_base,
        )
    }

    /// An array of base URLs.
    pub(crate) fn base_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WebUrl>, D::Error> {
        struct One(WebUrl);
        impl<'de> Deserialize<'de> for One {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                base_url(d).map(One)
            }
        }
        let all = Vec::<One>::deserialize(d)?;
        Ok(all.into_iter().map(|One(u)| u).collect())
    }

    /// An array of base URLs that may also be plain http to loopback.
    pub(crate) fn local_base_urls<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<WebUrl>, D::Error> {
        struct One(WebUrl);
        impl<'de> Deserialize<'de> for One {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                local_base_url(d).map(One)
            }
        }
        let all = Vec::<One>::deserialize(d)?;
        Ok(all.into_iter().map(|One(u)| u).collect())
    }

    /// A 20-byte identity written as 40 hex digits (either case).
    pub(crate) fn hex20<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 20], D::Error> {
        parsed_str(d, "40 hex digits", |s| {
            let bytes = data_encoding::HEXUPPER_PERMISSIVE
                .decode(s.as_bytes())
                .ok()
                .filter(|b| s.len() == 40 && b.len() == 20);
            bytes
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("expected 40 hex digits, found {s:?}"))
        })
    }

    /// A 32-byte key written as 43 characters of unpadded base64.
    pub(crate) fn base64_32<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        parsed_str(d, "43 characters of unpadded base64", |s| {
            let trimmed = s.trim_end_matches('=');
            let bytes = data_encoding::BASE64_NOPAD
                .decode(trimmed.as_bytes())
                .ok()
                .filter(|b| trimmed.len() == 43 && b.len() == 32);
            bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
                format!("expected an ed25519 identity as 43 characters of base64, found {s:?}")
            })
        })
    }
}

/// The longest clock skew that may be tolerated: beyond it, expired metadata
/// would be accepted long enough to matter for freeze attacks.
pub const MAX_SKEW_TOLERANCE: Duration = Duration::from_secs(3600);

/// `[clock]`: the clock policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// How far the local clock may be behind before metadata counts as
    /// expired. At most `"1h"`. Default: `"0s"`.
    #[serde(deserialize_with = "de_with::duration")]
    pub skew_tolerance: Duration,
}

impl ClockConfig {
    /// Refuses a tolerance above [`MAX_SKEW_TOLERANCE`].
    pub(crate) fn validate(&self) -> Result<(), crate::Invalid> {
        if self.skew_tolerance > MAX_SKEW_TOLERANCE {
            return Err(crate::Invalid::new(
                "clock.skew_tolerance",
                format!(
                    "must be at most {}, found {}",
                    format_duration(MAX_SKEW_TOLERANCE),
                    format_duration(self.skew_tolerance)
                ),
            ));
        }
        Ok(())
    }
}

/// Checks a short identifier made of `[a-z0-9-]`, such as a feed name or a
/// release channel: it ends up in file names, URLs and DNS records.
pub(crate) fn check_slug(s: &str, max_len: usize) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max_len
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to {max_len} characters of a-z, 0-9 and '-', not starting or ending with \
             '-', found {s:?}"
        ))
    }
}

pub use onionpkg_core::url::{DnsName, Host, WebUrl};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid v3 onion address (the Tor Project's website).
    pub(crate) const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid";

    #[test]
    fn durations_parse_and_format() {
        let secs = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("1d"), Ok(86_400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("0s"), Ok(0));
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "1 h",
            "-1s",
            "1w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert!(
            parse_duration("300000000000000000d")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(172_800)), "2d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn dns_names() {
        let n: DnsName = "_Onionpkg.Example.ORG.".parse().unwrap();
        assert_eq!(n.as_str(), "_onionpkg.example.org");
        let zone: DnsName = "example.org".parse().unwrap();
        assert!(n.is_within(&zone));
        assert!(zone.is_within(&zone));
        let other: DnsName = "badexample.org".parse().unwrap();
        assert!(!other.is_within(&zone));
        for bad in [
            "",
            ".",
            "a..b",
            "-a.org",
            "a-.org",
            "a b.org",
            "é.org",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<DnsName>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn web_urls() {
        let u: WebUrl = "HTTPS://Updates.Example.org/repo".parse().unwrap();
        assert_eq!(u.as_str(), "https://updates.example.org/repo");
        assert_eq!((u.port(), u.is_onion(), u.is_https()), (443, false, true));
        let base = WebUrl::parse_base("HTTPS://Updates.Example.org/repo").unwrap();
        assert_eq!(base.as_str(), "https://updates.example.org/repo/");
        assert!(
            WebUrl::parse_base("https://x.example/?a=b")
                .unwrap_err()
                .contains("no query")
        );

        let o: WebUrl = format!("http://{ONION}.onion").parse().unwrap();
        assert!(o.is_onion());
        assert_eq!(o.port(), 80);
        assert_eq!(o.path_and_query(), "/");

        let v6: WebUrl = "https://[::1]:8443/x?y=1".parse().unwrap();
        assert_eq!(v6.host(), &Host::Ip("::1".parse().unwrap()));
        assert_eq!((v6.port(), v6.has_query()), (8443, true));
        assert_eq!(v6.as_str(), "https://[::1]:8443/x?y=1");
    }

    #[test]
    fn web_urls_refused() {
        let err = |s: &str| s.parse::<WebUrl>().unwrap_err();
        assert!(err("ftp://example.org/").contains("scheme \"ftp\""));
        assert!(err("http://example.org/").contains("only allowed for .onion"));
        assert!(err("https://user:pw@example.org/").contains("passwords"));
        assert!(err("https://example.org/#x").contains("fragment"));
        assert!(err("https://example.org:0/").contains("port"));
        assert!(err("https://exa mple.org/").contains("not allowed"));
        assert!(err("example.org").contains("no scheme"));
        assert!(err("https:///x").contains("host"));
        let short = &ONION[..55];
        assert!(err(&format!("http://{short}.onion/")).contains("56 characters"));
        // One character changed: the checksum catches it.
        let typo = format!("http://3{}.onion/", &ONION[1..]);
        assert!(err(&typo).contains("checksum"), "{}", err(&typo));
        let not_b32 = format!("http://1{}.onion/", &ONION[1..]);
        assert!(err(&not_b32).contains("base32"));
    }

    #[test]
    fn slugs() {
        assert!(check_slug("stable", 32).is_ok());
        assert!(check_slug("geo-ip2", 32).is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(33)] {
            assert!(check_slug(bad, 32).is_err(), "{bad:?} accepted");
        }
    }
}
