//! Tor's GeoIP files, `geoip` (IPv4) and `geoip6` (IPv6), as Tor's
//! `geoip_load_file` reads them: one range a line, `INTIPLOW,INTIPHIGH,CC`
//! (addresses as 32-bit integers) or `IPV6LOW,IPV6HIGH,CC`, with `#`
//! comment lines. Tor skips lines it cannot parse; a feed is stricter: one
//! malformed line refuses the file, with its line number.
//!
//! The files converted from IPFire's location database (Debian's
//! `tor-geoipdb`) carry the export's date in their leading comment block,
//! `# Generated: Thu, 25 Jun 2026 04:33:59 GMT`: that is the version time.
//!
//! # Invariants
//! - Every non-comment, non-blank line is a range whose low end is not above
//!   its high end, with a two-letter upper-case country code or `??`.
//! - Lines are read with a length cap, so a file without newlines is
//!   refused, never buffered whole.

use std::io::Read;
use std::net::Ipv6Addr;

use jiff::Timestamp;

use super::check::{Checked, text_lines};
use super::floor::{TimeSource, VersionTime};

/// The longest line read (real lines are under 100 bytes).
const MAX_LINE: usize = 1024;

/// Which of Tor's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `geoip`: IPv4 ranges as integers.
    V4,
    /// `geoip6`: IPv6 ranges as addresses.
    V6,
}

/// Checks a Tor GeoIP file of `family` read from `input`.
pub fn check(input: impl Read, family: Family) -> Result<Checked, String> {
    let mut ranges = 0usize;
    let mut made = None;
    text_lines(input, MAX_LINE, |n, text| {
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(comment) = text.strip_prefix('#') {
            // Only the leading comment block dates the file.
            if ranges == 0
                && made.is_none()
                && let Some(date) = comment.trim().strip_prefix("Generated:")
            {
                made = Some(generated(date.trim()).map_err(|e| format!("line {n}: {e}"))?);
            }
            return Ok(());
        }
        if text.trim().is_empty() {
            return Ok(());
        }
        range(text, family).map_err(|e| {
            let shown: String = text.chars().take(80).collect();
            format!("line {n}: {shown:?}: {e}")
        })?;
        ranges += 1;
        Ok(())
    })?;
    if ranges == 0 {
        return Err("no range in the file".into());
    }
    let kind = match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    };
    Ok(Checked {
        summary: format!(
            "Tor GeoIP file, {ranges} {kind} ranges{}",
            made.map(|m| format!(", generated {m}")).unwrap_or_default()
        ),
        made: made.map(|time| VersionTime {
            time,
            from: TimeSource::TorGeoipGenerated,
        }),
    })
}

/// The time of a `Generated:` comment (RFC 2822, as the export writes it).
fn generated(date: &str) -> Result<Timestamp, String> {
    jiff::fmt::rfc2822::parse(date)
        .map(|z| z.timestamp())
        .map_err(|_| format!("the Generated date {date:?} is not an RFC 2822 date"))
}

/// One `LOW,HIGH,CC` line.
fn range(text: &str, family: Family) -> Result<(), String> {
    let fields: Vec<&str> = text.split(',').collect();
    let [low, high, cc] = fields[..] else {
        return Err(format!(
            "expected LOW,HIGH,CC (3 fields), found {}",
            fields.len()
        ));
    };
    let ordered = match family {
        Family::V4 => {
            let int = |s: &str| {
                // Plain decimal digits, as Tor's %u reads them.
                s.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| s.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| format!("{s:?} is not an IPv4 address as a 32-bit integer"))
            };
            int(low)? <= int(high)?
        }
        Family::V6 => {
            let addr = |s: &str| {
                s.parse::<Ipv6Addr>()
                    .map_err(|_| format!("{s:?} is not an IPv6 address"))
            };
            addr(low)? <= addr(high)?
        }
    };
    if !ordered {
        return Err("the range's low end is above its high end".into());
    }
    let known = cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase());
    if !known && cc != "??" {
        return Err(format!(
            "{cc:?} is not a country code (two upper-case letters, or ??)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "# Location Database Export\n#\n# Generated: Thu, 25 Jun 2026 04:33:59 GMT\n\
        # Vendor:    IPFire Project\n#\n15726992,15726999,??\n16777216,16777471,AU\n";
    const V6: &str = "# Generated: Thu, 25 Jun 2026 04:33:59 GMT\n\
        2001::,2001:0:ffff:ffff:ffff:ffff:ffff:ffff,??\n2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP\n";

    #[test]
    fn tors_formats() {
        let c = check(V4.as_bytes(), Family::V4).unwrap();
        assert_eq!(
            c.summary,
            "Tor GeoIP file, 2 IPv4 ranges, generated 2026-06-25T04:33:59Z"
        );
        let made = c.made.unwrap();
        assert_eq!(made.time, "2026-06-25T04:33:59Z".parse().unwrap());
        assert_eq!(made.from, TimeSource::TorGeoipGenerated);
        let c = check(V6.as_bytes(), Family::V6).unwrap();
        assert!(c.summary.contains("2 IPv6 ranges"), "{}", c.summary);
        // Undated files pass, without a version time.
        let c = check(&b"1,2,DE\n"[..], Family::V4).unwrap();
        assert_eq!(c.made, None);
        // Each file is one family.
        let e = check(V6.as_bytes(), Family::V4).unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        let e = check(V4.as_bytes(), Family::V6).unwrap_err();
        assert!(e.starts_with("line 6: "), "{e}");
    }

    #[test]
    fn malformed_lines_are_refused_by_number() {
        for (bad, needle) in [
            ("16777216,16777471", "3 fields"),
            ("16777216,16777471,AU,x", "3 fields"),
            ("16777216,1.2.3.4,AU", "32-bit integer"),
            ("16777216,4294967296,AU", "32-bit integer"),
            ("-1,5,AU", "32-bit integer"),
            ("16777471,16777216,AU", "low end is above"),
            ("16777216,16777471,au", "country code"),
            ("16777216,16777471,AUS", "country code"),
            (" 1,2,AU", "32-bit integer"),
            ("<html>", "3 fields"),
        ] {
            let text = format!("# c\n1,2,DE\n{bad}\n3,4,FR\n");
            let e = check(text.as_bytes(), Family::V4).unwrap_err();
            assert!(e.starts_with("line 3: "), "{bad}: {e}");
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let e = check(&b"2001::,2001::g,DE\n"[..], Family::V6).unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("not an IPv6 address"),
            "{e}"
        );
        let e = check(&b"# Generated: yesterday\n1,2,DE\n"[..], Family::V4).unwrap_err();
        assert!(e.contains("line 1") && e.contains("RFC 2822"), "{e}");
        let e = check(&b"# only comments\n\n"[..], Family::V4).unwrap_err();
        assert!(e.contains("no range"), "{e}");
        let long = vec![b'1'; 2000];
        let e = check(&long[..], Family::V4).unwrap_err();
        assert!(e.contains("longer than"), "{e}");
    }
}
