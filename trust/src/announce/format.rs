//! The text form of the announcement: a strict parser and the field encoders.
//!
//! The grammar is fixed: `v`, `c`, `n`, `t`, `e`, `k`, `h`, `s`, in this
//! order, each once, nothing else. Numbers are decimal without sign or leading
//! zero; binary values are base64url without padding and with no stray
//! trailing bits, so every value has exactly one spelling. That makes the
//! signed text canonical: changing any character either breaks the grammar or
//! changes the signed bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;

use super::{AnnounceError, MAX_LEN, Unverified};

/// The field names, in their only allowed order.
const FIELDS: [&str; 8] = ["v", "c", "n", "t", "e", "k", "h", "s"];

/// The longest channel name.
pub(super) const MAX_CHANNEL: usize = 32;

/// Characters of a base64url-encoded SHA-256 hash.
const HASH_CHARS: usize = 43;

/// Characters of a base64url-encoded 64-byte signature.
const SIG_CHARS: usize = 86;

/// Characters of a short key id.
const SHORT_ID_CHARS: usize = 4;

/// Parses the text form; see [`super::parse`].
pub(super) fn parse(text: &str) -> Result<Unverified, AnnounceError> {
    if text.len() > MAX_LEN {
        return Err(AnnounceError::TooLong {
            len: text.len(),
            max: MAX_LEN,
        });
    }
    if let Some(offset) = text.bytes().position(|b| !b.is_ascii()) {
        return Err(AnnounceError::NonAscii { offset });
    }
    if text.is_empty() {
        return Err(AnnounceError::Truncated("the record is empty".into()));
    }
    if !text.starts_with("v=") && !"v=".starts_with(text) {
        return Err(AnnounceError::NotAnnouncement);
    }

    let pieces: Vec<&str> = text.split(';').collect();
    let mut values = [""; FIELDS.len()];
    for (i, name) in FIELDS.iter().enumerate() {
        let Some(piece) = pieces.get(i) else {
            return Err(AnnounceError::Truncated(format!(
                "the record ends before field `{name}`"
            )));
        };
        let last = i + 1 == pieces.len();
        let Some((found, value)) = piece.split_once('=') else {
            if last && name.starts_with(piece) {
                return Err(AnnounceError::Truncated(format!(
                    "the record ends in the name of field `{name}`"
                )));
            }
            return Err(AnnounceError::Malformed {
                field: name,
                reason: format!("expected `{name}=`, found {:?}", clip(piece)),
            });
        };
        check_name(i, found)?;
        if last && *name != "s" {
            // Everything after this field is missing: report the cut, unless
            // this value could not be the start of a valid one.
            if validate(name, value).is_ok() || looks_cut(name, value) {
                return Err(AnnounceError::Truncated(format!(
                    "the record ends in field `{name}`; the fields after it are missing"
                )));
            }
        }
        validate(name, value)?;
        values[i] = value;
    }
    if let Some(extra) = pieces.get(FIELDS.len()) {
        if extra.is_empty() {
            return Err(AnnounceError::Malformed {
                field: "s",
                reason: "trailing ';' after the signatures".into(),
            });
        }
        let found = extra.split_once('=').map_or(*extra, |(n, _)| n);
        check_name(FIELDS.len(), found)?;
    }

    let [_, c, n, t, e, k, h, s] = values;
    let short_ids: Vec<String> = k.split(',').map(str::to_string).collect();
    let signatures = signatures(s)?;
    if signatures.len() < short_ids.len() {
        return Err(AnnounceError::Truncated(format!(
            "field `k` lists {} keys but only {} signatures follow",
            short_ids.len(),
            signatures.len()
        )));
    }
    if signatures.len() > short_ids.len() {
        return Err(AnnounceError::SignatureCount {
            keys: short_ids.len(),
            signatures: signatures.len(),
        });
    }
    // Strict parsing leaves exactly one `;s=`, the one before the signatures;
    // the signed text ends at the last one, as the format defines.
    let signed_len = text.rfind(";s=").ok_or_else(|| AnnounceError::Malformed {
        field: "s",
        reason: "no `;s=` separator".into(),
    })?;
    Ok(Unverified {
        channel: c.to_string(),
        serial: decimal("n", n)?,
        issued: time("t", t)?,
        expires: time("e", e)?,
        short_ids,
        timestamp_hash: hash(h)?,
        signatures,
        signed_text: text[..signed_len].to_string(),
    })
}

/// Checks that the `i`th field is named `found`, or says what is wrong.
fn check_name(i: usize, found: &str) -> Result<(), AnnounceError> {
    match FIELDS.iter().position(|f| *f == found) {
        Some(j) if j == i => Ok(()),
        Some(j) if j < i => Err(AnnounceError::DuplicateField(FIELDS[j])),
        Some(j) => Err(AnnounceError::FieldOutOfOrder {
            expected: FIELDS[i],
            found: FIELDS[j],
        }),
        None => Err(AnnounceError::UnknownField(clip(found))),
    }
}

/// Checks one field's value, without the cross-field checks.
fn validate(name: &'static str, value: &str) -> Result<(), AnnounceError> {
    match name {
        "v" if value == "1" => Ok(()),
        "v" => Err(AnnounceError::UnsupportedVersion(clip(value))),
        "c" => channel(value).map_err(|reason| AnnounceError::Malformed { field: "c", reason }),
        "n" | "t" | "e" => decimal(name, value).map(drop),
        "k" => value.split(',').try_for_each(short_id),
        "h" => hash(value).map(drop),
        _ => signatures(value).map(drop),
    }
}

/// Whether `value`, the last thing in the record, looks like the start of a
/// valid value of field `name` rather than a wrong one.
fn looks_cut(name: &str, value: &str) -> bool {
    let b64 = |v: &str| v.bytes().all(is_b64url);
    match name {
        "k" => value
            .rsplit(',')
            .next()
            .is_some_and(|last| last.len() < SHORT_ID_CHARS && last.bytes().all(is_lower_hex)),
        "h" => value.len() < HASH_CHARS && b64(value),
        _ => value.is_empty(),
    }
}

/// Checks a channel name: `[a-z0-9-]{1,32}`.
pub(super) fn channel(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_CHANNEL {
        return Err(format!(
            "channel must be 1 to {MAX_CHANNEL} characters long"
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "channel {:?} may hold only a-z, 0-9 and '-'",
            clip(value)
        ));
    }
    Ok(())
}

/// Parses a decimal number without sign or leading zeros.
fn decimal(field: &'static str, value: &str) -> Result<u64, AnnounceError> {
    let bad = |reason: &str| AnnounceError::Malformed {
        field,
        reason: reason.to_string(),
    };
    if value.is_empty() {
        return Err(bad("empty number"));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal number"));
    }
    if value.len() > 1 && value.starts_with('0') {
        return Err(bad("leading zero"));
    }
    let n: u64 = value.parse().map_err(|_| bad("number too large"))?;
    if field == "n" && n == 0 {
        return Err(bad("the serial starts at 1"));
    }
    Ok(n)
}

/// Parses unix seconds.
fn time(field: &'static str, value: &str) -> Result<Timestamp, AnnounceError> {
    let secs = decimal(field, value)?;
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or_else(|| AnnounceError::Malformed {
            field,
            reason: "time out of range".into(),
        })
}

/// Checks a short key id: 4 lowercase hex characters.
fn short_id(value: &str) -> Result<(), AnnounceError> {
    if value.len() == SHORT_ID_CHARS && value.bytes().all(is_lower_hex) {
        return Ok(());
    }
    Err(AnnounceError::Malformed {
        field: "k",
        reason: format!(
            "key id {:?} is not {SHORT_ID_CHARS} lowercase hex characters",
            clip(value)
        ),
    })
}

/// Decodes the timestamp hash.
fn hash(value: &str) -> Result<[u8; 32], AnnounceError> {
    b64_exact::<32>("h", value, HASH_CHARS)
}

/// Decodes the signature list.
fn signatures(value: &str) -> Result<Vec<[u8; 64]>, AnnounceError> {
    let parts: Vec<&str> = value.split(',').collect();
    let count = parts.len();
    let mut out = Vec::with_capacity(count);
    for (i, part) in parts.into_iter().enumerate() {
        if i + 1 == count && part.len() < SIG_CHARS && part.bytes().all(is_b64url) {
            return Err(AnnounceError::Truncated(format!(
                "signature {} has only {} of {SIG_CHARS} characters",
                i + 1,
                part.len()
            )));
        }
        out.push(b64_exact::<64>("s", part, SIG_CHARS)?);
    }
    Ok(out)
}

/// Decodes base64url of exactly `chars` characters into `N` bytes.
fn b64_exact<const N: usize>(
    field: &'static str,
    value: &str,
    chars: usize,
) -> Result<[u8; N], AnnounceError> {
    let bad = |reason: String| AnnounceError::Malformed { field, reason };
    if value.len() != chars {
        return Err(bad(format!(
            "{} characters, not {chars} (base64url without padding)",
            value.len()
        )));
    }
    // The engine refuses padding and stray trailing bits, so one value has
    // exactly one spelling.
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|e| bad(format!("not base64url: {e}")))?;
    raw.try_into()
        .map_err(|_| bad(format!("does not decode to {N} bytes")))
}

/// Encodes bytes as base64url without padding.
#[cfg(feature = "signing")]
pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// At most 40 characters of untrusted text, for messages.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}
