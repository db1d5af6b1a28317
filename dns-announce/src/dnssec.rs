//! DNSSEC trust anchors for the announcement's answer.
//!
//! The record's own signature (by the TUF timestamp keys) is what makes an
//! announcement authentic; DNSSEC is defence in depth: with anchors
//! configured, an answer that does not validate (an unsigned zone, a wrong
//! key, a forged or stripped signature) is refused before the record is
//! even looked at.
//!
//! An anchors file holds DNSKEY records in zone-file syntax, one a line, as
//! `dig ZONE DNSKEY +noall +answer` or Knot's `keymgr ZONE dnskey` print
//! them:
//!
//! ```text
//! example.org. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=
//! ```
//!
//! Pin every DNSKEY of the zone (or sign it with a single combined key, a
//! CSK): the validator asks the parent for a DS record unless every key of
//! the zone's DNSKEY set is an anchor, and with a private anchor there is no
//! parent to ask. DS records cannot be anchors.
//!
//! # Invariants
//! - Anchors come only from [`DnssecAnchors::load`] or
//!   [`DnssecAnchors::parse`]: at least one DNSKEY, every one a zone key,
//!   not revoked, of an algorithm this build can verify, its owner name
//!   fully qualified. A file that fails any of this is a configuration
//!   error, never "no anchors".
//! - The file is read up to [`MAX_ANCHORS_FILE`] bytes.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::dnssec::{PublicKeyBuf, TrustAnchors, Verifier as _};
use hickory_proto::rr::LowerName;
use hickory_proto::serialize::txt::trust_anchor::{Entry, Parser};

use crate::err::{Error, Result};

/// The largest anchors file read, in bytes.
pub const MAX_ANCHORS_FILE: u64 = 64 * 1024;

/// DNSSEC trust anchors: the DNSKEYs an answer must validate to.
#[derive(Clone)]
pub struct DnssecAnchors {
    anchors: Arc<TrustAnchors>,
    zones: Vec<String>,
    keys: usize,
}

impl std::fmt::Debug for DnssecAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnssecAnchors")
            .field("zones", &self.zones)
            .field("keys", &self.keys)
            .finish()
    }
}

impl DnssecAnchors {
    /// Reads the anchors file at `path` ([`Error::Anchors`] if it is
    /// missing, too large or not valid).
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Anchors {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let mut text = String::new();
        file.take(MAX_ANCHORS_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("cannot be read as text: {e}")))?;
        if text.len() as u64 > MAX_ANCHORS_FILE {
            return Err(bad(format!(
                "is larger than {MAX_ANCHORS_FILE} bytes; it should hold a few DNSKEY lines"
            )));
        }
        Self::parse(&text).map_err(bad)
    }

    /// Parses DNSKEY lines in zone-file syntax (TTL and class may be left
    /// out, as `keymgr ZONE dnskey` does); the error says what is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = with_class(text);
        let entries = Parser::new(text.as_str()).parse().map_err(|e| {
            let hint = if text
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("DS"))
            {
                " (DS records cannot be anchors: give the zone's DNSKEY records)"
            } else {
                ""
            };
            format!("is not a list of DNSKEY records: {e}{hint}")
        })?;
        let mut anchors = TrustAnchors::empty();
        let mut zones: Vec<String> = Vec::new();
        let mut keys = 0;
        for entry in entries {
            let Entry::DNSKEY(record) = entry else {
                return Err("holds a record other than DNSKEY".into());
            };
            let name = record.name();
            let dnskey = record.data();
            if !name.is_fqdn() {
                return Err(format!(
                    "the owner name {name} is not fully qualified: end it with a dot ({name}.)"
                ));
            }
            if !dnskey.zone_key() {
                return Err(format!(
                    "the DNSKEY of {name} is not a zone key (flags {})",
                    dnskey.flags()
                ));
            }
            if dnskey.revoke() {
                return Err(format!("the DNSKEY of {name} is revoked"));
            }
            let key = dnskey.key().map_err(|e| {
                format!(
                    "the DNSKEY of {name} (algorithm {}) cannot be used: {e}",
                    dnskey.algorithm()
                )
            })?;
            let key = PublicKeyBuf::new(key.public_bytes().to_vec(), dnskey.algorithm());
            anchors.insert_with_name(&key, LowerName::from(name));
            keys += 1;
            let zone = name.to_ascii().to_ascii_lowercase();
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
        if keys == 0 {
            return Err("holds no DNSKEY record".into());
        }
        Ok(Self {
            anchors: Arc::new(anchors),
            zones,
            keys,
        })
    }

    /// The zones anchored, lowercase, fully qualified.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// How many keys are anchored.
    pub fn key_count(&self) -> usize {
        self.keys
    }

    /// The anchors, for the resolver.
    pub(crate) fn trust_anchors(&self) -> Arc<TrustAnchors> {
        Arc::clone(&self.anchors)
    }
}

/// `text` with the class `IN` added to one-line DNSKEY records that leave
/// out TTL and class (`example.org. DNSKEY 257 3 15 …`, as `keymgr` prints
/// them) or only the class: hickory's parser needs one of them.
fn with_class(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_dnskey = |i: usize| {
            words
                .get(i)
                .is_some_and(|w| w.eq_ignore_ascii_case("DNSKEY"))
        };
        let starts_with_name = !line.starts_with(char::is_whitespace) && !line.starts_with(';');
        if starts_with_name && is_dnskey(1) {
            out.push_str(&format!("{} IN {}", words[0], words[1..].join(" ")));
        } else if starts_with_name && is_dnskey(2) && words[1].bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!(
                "{} {} IN {}",
                words[0],
                words[1],
                words[2..].join(" ")
            ));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Reads DNSSEC trust anchors from `path`; see [`DnssecAnchors::load`].
pub fn load_anchors(path: &Path) -> Result<DnssecAnchors> {
    DnssecAnchors::load(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=";

    #[test]
    fn reads_dnskey_lines_as_dig_prints_them() {
        let text = format!(
            "; a comment\nexample.org. 3600 IN DNSKEY 257 3 15 {KEY}\n\
             example.org.\t60\tIN\tDNSKEY\t256 3 15 {KEY}\n"
        );
        let anchors = DnssecAnchors::parse(&text).unwrap();
        assert_eq!(anchors.zones(), ["example.org."]);
        assert_eq!(anchors.key_count(), 2);
        let no_ttl =
            DnssecAnchors::parse(&format!("Example.ORG. IN DNSKEY 257 3 15 {KEY}")).unwrap();
        assert_eq!(no_ttl.zones(), ["example.org."]);
        // keymgr prints neither TTL nor class.
        let keymgr = DnssecAnchors::parse(&format!(
            "example.org. DNSKEY 257 3 15 {KEY}\nexample.net. 60 DNSKEY 257 3 15 {KEY}\n"
        ))
        .unwrap();
        assert_eq!(keymgr.zones(), ["example.org.", "example.net."]);
    }

    #[test]
    fn refuses_what_cannot_anchor() {
        let cases = [
            ("", "holds no DNSKEY record"),
            ("; only a comment\n", "holds no DNSKEY record"),
            (
                "example.org. 3600 IN DS 12345 15 2 0123456789abcdef",
                "DS records cannot be anchors",
            ),
            (
                "example.org. 3600 IN TXT \"x\"",
                "not a list of DNSKEY records",
            ),
            ("not a record at all", "not a list of DNSKEY records"),
            (
                &format!("example.org 3600 IN DNSKEY 257 3 15 {KEY}"),
                "not fully qualified",
            ),
            (
                &format!("example.org. 3600 IN DNSKEY 1 3 15 {KEY}"),
                "not a zone key",
            ),
            (
                &format!("example.org. 3600 IN DNSKEY 385 3 15 {KEY}"),
                "is revoked",
            ),
            (
                "example.org. 3600 IN DNSKEY 257 3 15 AAAA",
                "cannot be used",
            ),
        ];
        for (text, why) in cases {
            let err = DnssecAnchors::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_bad_file_is_a_configuration_error() {
        use onionpkg_core::HasKind as _;
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.keys");
        let err = load_anchors(&missing).unwrap_err();
        assert!(matches!(err, Error::Anchors { .. }), "{err}");
        assert_eq!(err.kind(), onionpkg_core::ErrorKind::BadConfig);
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.to_string().contains("missing.keys"), "{err}");

        let big = dir.path().join("big.keys");
        std::fs::write(&big, vec![b';'; 70 * 1024]).unwrap();
        let err = load_anchors(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");

        let good = dir.path().join("good.keys");
        std::fs::write(&good, format!("example.org. 60 IN DNSKEY 257 3 15 {KEY}\n")).unwrap();
        assert_eq!(load_anchors(&good).unwrap().zones(), ["example.org."]);
    }
}
