//! The compact signed DNS TXT announcement.
//!
//! A TXT record at a name such as `_onionpkg.example.org` tells appliances
//! (and admins) the current state of the repository, so that an appliance
//! contacts no mirror while nothing changed, and can skip a mirror that serves
//! less than announced (a freeze). Its text form is one ASCII string:
//!
//! ```text
//! v=1;c=<channel>;n=<serial>;t=<issued>;e=<expires>;k=<short id>[,…];h=<hash>;s=<sig>[,…]
//! ```
//!
//! - `c`: the channel, `[a-z0-9-]{1,32}`.
//! - `n`: the serial, the version of the repository's TUF `timestamp.json`
//!   (it only ever rises).
//! - `t`, `e`: issue and expiry time, unix seconds.
//! - `k`: the short ids ([`PublicKey::short_id`](crate::keys::PublicKey::short_id))
//!   of the signing keys, in the order of the signatures in `s`.
//! - `h`: SHA-256 of the bytes of that `timestamp.json`, base64url without
//!   padding (43 characters).
//! - `s`: the signatures, base64url without padding (86 characters each):
//!   64 bytes each, in the fixed form of [`PublicKey::verify_fixed`](crate::keys::PublicKey::verify_fixed):
//!   an ed25519 signature, or for an ECDSA P-256 key `r || s` over SHA-256
//!   of the signed bytes (TUF's DER form would not have a fixed width).
//!
//! The signed bytes are `"onionpkg-announce-v1\0" || owner || "\0" || text`
//! up to the last `;s=`, where `owner` is the record's owner name in lowercase
//! without the trailing dot: a record copied to another name does not verify
//! there. The signers are the keys of the TUF timestamp role, and the role's
//! threshold applies.
//!
//! With one signature a record is at most 229 bytes, so it fits in one DNS
//! character-string (255 bytes); [`chunks`] splits longer ones, [`join`]
//! reassembles what a resolver returns.
//!
//! # Invariants
//! - [`parse`] accepts exactly one spelling of each record (fixed field order,
//!   canonical numbers and base64url), refuses non-ASCII and anything over
//!   [`MAX_LEN`] bytes, and never panics.
//! - An [`Announcement`] exists only as the result of a verification: enough
//!   distinct timestamp-role keys signed it for this owner name, its channel
//!   is the expected one, it is not expired, not issued in the future and not
//!   older than the serial already seen.

use jiff::Timestamp;
use onionpkg_core::{ErrorKind, HasKind};

use crate::clock::Tolerance;
use crate::keys::RoleKeys;
#[cfg(feature = "signing")]
use crate::sign::SecretKey;

mod format;
#[cfg(test)]
#[cfg(feature = "signing")]
mod tests;

/// The prefix of every record of this format; [`select`] picks records by it.
pub const PREFIX: &str = "v=1;";

/// The longest record accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// The longest DNS character-string, in bytes.
pub const MAX_STRING: usize = 255;

/// The most candidate records [`verify_rrset`] checks at one name; bounds the
/// signature checks that records injected into the RRset can cause.
pub const MAX_RECORDS: usize = 8;

/// Separates announcement signatures from every other use of the same keys.
const DOMAIN: &[u8] = b"onionpkg-announce-v1\0";

/// Why an announcement is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// The record is longer than [`MAX_LEN`].
    #[error("announcement is {len} bytes long, more than the maximum {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The record holds a byte outside ASCII.
    #[error("announcement holds a non-ASCII byte at offset {offset}")]
    NonAscii {
        /// Where.
        offset: usize,
    },
    /// The record ends early: a string of it was lost or cut.
    #[error("announcement is truncated: {0}")]
    Truncated(String),
    /// The text is not an announcement at all.
    #[error("not an onionpkg announcement: it does not start with `v=`")]
    NotAnnouncement,
    /// An announcement of a format version this build does not know.
    #[error("unsupported announcement version {0:?}; this build knows version 1")]
    UnsupportedVersion(String),
    /// A field this format does not have.
    #[error("unknown field {0:?} in announcement")]
    UnknownField(String),
    /// A field appears twice.
    #[error("field `{0}` appears twice in announcement")]
    DuplicateField(&'static str),
    /// Fields are not in the fixed order.
    #[error("field `{found}` where field `{expected}` belongs in announcement")]
    FieldOutOfOrder {
        /// The field that belongs here.
        expected: &'static str,
        /// The field found instead.
        found: &'static str,
    },
    /// A field's value is malformed.
    #[error("malformed field `{field}` in announcement: {reason}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// More signatures than listed keys.
    #[error("announcement lists {keys} key ids but carries {signatures} signatures")]
    SignatureCount {
        /// Number of key ids in `k`.
        keys: usize,
        /// Number of signatures in `s`.
        signatures: usize,
    },
    /// The owner name given to verify or make a record is not a DNS name.
    #[error("invalid owner name {owner:?}: {reason}")]
    InvalidOwner {
        /// The name as given.
        owner: String,
        /// What is wrong.
        reason: String,
    },
    /// No signature by a timestamp-role key verifies over this owner name.
    #[error(
        "no signature on the announcement verifies for owner name {owner}: the record may \
         have been made for another name, or forged"
    )]
    NoValidSignature {
        /// The owner name (normalised).
        owner: String,
    },
    /// None of the record's key ids belongs to the timestamp role.
    #[error(
        "announcement is signed only by unknown keys ({short_ids}): none is a key of the \
         timestamp role"
    )]
    UnknownKeys {
        /// The short ids in the record, comma-separated.
        short_ids: String,
    },
    /// Fewer distinct timestamp-role keys signed than the threshold requires.
    #[error(
        "announcement has {found} valid signatures from timestamp-role keys; {required} are required"
    )]
    BelowThreshold {
        /// Distinct keys with a valid signature.
        found: usize,
        /// The role's threshold.
        required: usize,
    },
    /// A validly signed record for another channel.
    #[error("announcement is for channel {found:?}, not {expected:?}")]
    WrongChannel {
        /// The channel configured.
        expected: String,
        /// The channel in the record.
        found: String,
    },
    /// The expiry time is not after the issue time.
    #[error("announcement expires at {expires}, not after its issue time {issued}")]
    ExpiresBeforeIssued {
        /// The issue time.
        issued: Timestamp,
        /// The expiry time.
        expires: Timestamp,
    },
    /// The record is issued later than now plus the tolerance: the local clock
    /// is slow, or the signer's clock was fast.
    #[error("announcement is issued at {issued}, in the future (now is {now}); check the clock")]
    IssuedInFuture {
        /// The issue time.
        issued: Timestamp,
        /// The local time.
        now: Timestamp,
    },
    /// The record is expired: the publisher stopped re-signing, or someone
    /// replays an old record.
    #[error("announcement expired at {expires} (now is {now})")]
    Expired {
        /// The expiry time.
        expires: Timestamp,
        /// The local time.
        now: Timestamp,
    },
    /// The serial is lower than one already seen: a replay of an old record.
    #[error(
        "announcement serial {serial} is lower than serial {last_seen} already seen: \
         an old record is being replayed"
    )]
    Rollback {
        /// The serial in the record.
        serial: u64,
        /// The highest serial seen before.
        last_seen: u64,
    },
    /// No record of this format at the name.
    #[error("no onionpkg announcement (a TXT record starting with {PREFIX:?}) at this name")]
    NoRecord,
    /// More candidate records than [`MAX_RECORDS`] at one name.
    #[error("{count} announcement records at one name; at most {max} are checked")]
    TooManyRecords {
        /// Candidate records found.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// Two validly signed records give the same serial different hashes:
    /// the signers equivocate, or a signing key is compromised.
    #[error("two validly signed announcements give serial {serial} different timestamp hashes")]
    Conflict {
        /// The serial.
        serial: u64,
    },
    /// Several candidate records, none valid.
    #[error("none of the {count} announcement records at this name is valid; the first: {first}")]
    NoneValid {
        /// Candidate records found.
        count: usize,
        /// Why the first one was refused.
        #[source]
        first: Box<Self>,
    },
    /// An argument to `make` (feature `signing`) is unusable.
    #[error("cannot make an announcement: {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl HasKind for AnnounceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoValidSignature { .. }
            | Self::UnknownKeys { .. }
            | Self::BelowThreshold { .. }
            | Self::WrongChannel { .. }
            | Self::Conflict { .. } => ErrorKind::Verification,
            Self::Expired { .. } | Self::IssuedInFuture { .. } => ErrorKind::Expired,
            Self::Rollback { .. } => ErrorKind::Rollback,
            Self::NoRecord => ErrorKind::NotFound,
            Self::InvalidOwner { .. } => ErrorKind::BadConfig,
            Self::NoneValid { first, .. } => first.kind(),
            _ => ErrorKind::BadInput,
        }
    }
}

/// A parsed record whose signatures are not checked yet. Nothing in it may be
/// acted on before [`Unverified::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    channel: String,
    serial: u64,
    issued: Timestamp,
    expires: Timestamp,
    short_ids: Vec<String>,
    timestamp_hash: [u8; 32],
    signatures: Vec<[u8; 64]>,
    signed_text: String,
}

/// A verified announcement.
///
/// Not constructible outside this crate: holding one means it was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Announcement {
    /// The channel.
    pub channel: String,
    /// The serial: the version of the announced `timestamp.json`.
    pub serial: u64,
    /// When it was signed.
    pub issued: Timestamp,
    /// When it expires.
    pub expires: Timestamp,
    /// SHA-256 of the announced `timestamp.json` bytes.
    pub timestamp_hash: [u8; 32],
    /// TUF key ids of the keys whose signature verified, in record order.
    pub signed_by: Vec<String>,
}

/// Parses a record strictly, without checking signatures.
pub fn parse(text: &str) -> Result<Unverified, AnnounceError> {
    format::parse(text)
}

/// What records are verified against.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The owner name the records were published (and fetched) at.
    pub name: &'a str,
    /// The channel followed.
    pub channel: &'a str,
    /// The timestamp role's keys and threshold.
    pub keys: &'a RoleKeys,
    /// The current time.
    pub now: Timestamp,
    /// The clock skew tolerated.
    pub tolerance: Tolerance,
    /// The highest serial trusted before: an equal serial is fine (nothing
    /// changed), a lower one is a replay.
    pub last_seen: Option<u64>,
}

/// Parses and verifies a record; see [`Unverified::verify`].
pub fn verify(text: &str, expect: &Expectation<'_>) -> Result<Announcement, AnnounceError> {
    parse(text)?.verify(expect)
}

impl Unverified {
    /// The channel, unverified.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The serial, unverified.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The issue time, unverified.
    pub fn issued(&self) -> Timestamp {
        self.issued
    }

    /// The expiry time, unverified.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// The short key ids, in signature order, unverified.
    pub fn short_ids(&self) -> &[String] {
        &self.short_ids
    }

    /// The timestamp hash, unverified.
    pub fn timestamp_hash(&self) -> &[u8; 32] {
        &self.timestamp_hash
    }

    /// Verifies the record as published at `expect.name` for
    /// `expect.channel`.
    ///
    /// Signatures come first, so that every later refusal (channel, times,
    /// serial) describes a genuine record. At least `max(threshold, 1)`
    /// distinct keys of `keys` must have signed: a role bound to threshold 0
    /// would otherwise accept an unsigned record. A record may list a short
    /// id shared by two role keys; each is tried.
    ///
    /// `expect.last_seen` is the highest serial the caller trusted before;
    /// an equal serial is fine (nothing changed), a lower one is a replay.
    pub fn verify(&self, expect: &Expectation<'_>) -> Result<Announcement, AnnounceError> {
        let Expectation {
            name: owner,
            channel,
            keys,
            now,
            tolerance,
            last_seen: last_seen_serial,
        } = *expect;
        let owner = normalize_owner(owner)?;
        let msg = signed_message(&owner, &self.signed_text);
        let role: Vec<(String, &String, _)> = keys
            .keys
            .iter()
            .map(|(id, key)| (key.short_id(), id, key))
            .collect();
        let mut signed_by: Vec<String> = Vec::new();
        let mut known = false;
        for (short, sig) in self.short_ids.iter().zip(&self.signatures) {
            for (_, id, key) in role.iter().filter(|(s, _, _)| s == short) {
                known = true;
                if key.verify_fixed(&msg, sig).is_ok() {
                    if !signed_by.contains(id) {
                        signed_by.push((*id).clone());
                    }
                    break;
                }
            }
        }
        let required = keys.threshold.max(1);
        if signed_by.is_empty() {
            return Err(if known {
                AnnounceError::NoValidSignature { owner }
            } else {
                AnnounceError::UnknownKeys {
                    short_ids: self.short_ids.join(", "),
                }
            });
        }
        if signed_by.len() < required {
            return Err(AnnounceError::BelowThreshold {
                found: signed_by.len(),
                required,
            });
        }
        if self.channel != channel {
            return Err(AnnounceError::WrongChannel {
                expected: channel.to_string(),
                found: self.channel.clone(),
            });
        }
        if self.expires <= self.issued {
            return Err(AnnounceError::ExpiresBeforeIssued {
                issued: self.issued,
                expires: self.expires,
            });
        }
        if tolerance.is_future(self.issued, now) {
            return Err(AnnounceError::IssuedInFuture {
                issued: self.issued,
                now,
            });
        }
        if tolerance.is_expired(self.expires, now) {
            return Err(AnnounceError::Expired {
                expires: self.expires,
                now,
            });
        }
        if let Some(last_seen) = last_seen_serial.filter(|last| self.serial < *last) {
            return Err(AnnounceError::Rollback {
                serial: self.serial,
                last_seen,
            });
        }
        Ok(Announcement {
            channel: self.channel.clone(),
            serial: self.serial,
            issued: self.issued,
            expires: self.expires,
            timestamp_hash: self.timestamp_hash,
            signed_by,
        })
    }
}

/// The records of an RRset that are ours, by the [`PREFIX`].
///
/// Records of other formats (and of other versions of this one, which may
/// sit beside it during a migration) are ignored. Refuses when none is
/// present, or more than [`MAX_RECORDS`].
pub fn select<S: AsRef<str>>(records: &[S]) -> Result<Vec<&str>, AnnounceError> {
    let ours: Vec<&str> = records
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| r.starts_with(PREFIX))
        .collect();
    match ours.len() {
        0 => Err(AnnounceError::NoRecord),
        n if n > MAX_RECORDS => Err(AnnounceError::TooManyRecords {
            count: n,
            max: MAX_RECORDS,
        }),
        _ => Ok(ours),
    }
}

/// Verifies every record of ours in an RRset and returns the valid one with
/// the highest serial (the latest expiry among equal serials).
///
/// Why not refuse when two records are present: an RRset has no order and may
/// briefly hold an old and a new record while a publisher replaces it, and
/// anyone able to add a record at the name (but without the signing keys)
/// could otherwise make appliances ignore the genuine one. Forged records
/// fail verification and are skipped; the highest valid serial is the newest
/// state the signers vouched for, exactly what a single record would say.
/// Two valid records giving one serial different hashes are refused
/// ([`AnnounceError::Conflict`]): that needs the signing keys.
pub fn verify_rrset<S: AsRef<str>>(
    records: &[S],
    expect: &Expectation<'_>,
) -> Result<Announcement, AnnounceError> {
    let candidates = select(records)?;
    let count = candidates.len();
    let mut best: Option<Announcement> = None;
    let mut first_err = None;
    for text in candidates {
        match verify(text, expect) {
            Ok(a) => {
                best = Some(match best {
                    None => a,
                    Some(b) if a.serial == b.serial && a.timestamp_hash != b.timestamp_hash => {
                        return Err(AnnounceError::Conflict { serial: a.serial });
                    }
                    Some(b) if (a.serial, a.expires) > (b.serial, b.expires) => a,
                    Some(b) => b,
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "skipping an announcement record");
                first_err.get_or_insert(e);
            }
        }
    }
    match (best, first_err) {
        (Some(a), _) => Ok(a),
        (None, Some(e)) if count == 1 => Err(e),
        (None, Some(e)) => Err(AnnounceError::NoneValid {
            count,
            first: Box::new(e),
        }),
        (None, None) => Err(AnnounceError::NoRecord),
    }
}

/// Joins the character-strings of one received TXT record, without separator.
///
/// Refuses non-ASCII and more than [`MAX_LEN`] bytes in all, before copying.
pub fn join<S: AsRef<[u8]>>(strings: &[S]) -> Result<String, AnnounceError> {
    let len: usize = strings.iter().map(|s| s.as_ref().len()).sum();
    if len > MAX_LEN {
        return Err(AnnounceError::TooLong { len, max: MAX_LEN });
    }
    let mut out = String::with_capacity(len);
    for s in strings {
        for &b in s.as_ref() {
            if !b.is_ascii() {
                return Err(AnnounceError::NonAscii { offset: out.len() });
            }
            out.push(char::from(b));
        }
    }
    Ok(out)
}

/// Splits a record into character-strings of at most [`MAX_STRING`] bytes,
/// for a TXT record or a zone file. Never splits inside a character.
pub fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_STRING);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// A zone-file line publishing `text` at `owner`:
/// `owner. TTL IN TXT "…" "…"`, with strings of at most [`MAX_STRING`] bytes.
pub fn zone_line(owner: &str, ttl: u32, text: &str) -> Result<String, AnnounceError> {
    let owner = normalize_owner(owner)?;
    let mut line = format!("{owner}. {ttl} IN TXT");
    for chunk in chunks(text) {
        line.push_str(" \"");
        for b in chunk.bytes() {
            match b {
                b'"' | b'\\' => {
                    line.push('\\');
                    line.push(char::from(b));
                }
                0x20..=0x7e => line.push(char::from(b)),
                _ => line.push_str(&format!("\\{b:03}")),
            }
        }
        line.push('"');
    }
    Ok(line)
}

/// Makes a signed record (the release side).
///
/// `issued` and `expires` are truncated to whole seconds; `signers` should be
/// keys of the timestamp role, as many as its threshold requires.
#[cfg(feature = "signing")]
pub fn make(
    owner: &str,
    channel: &str,
    serial: u64,
    issued: Timestamp,
    expires: Timestamp,
    timestamp_hash: &[u8; 32],
    signers: &[&SecretKey],
) -> Result<String, AnnounceError> {
    let publics: Vec<_> = signers.iter().map(|k| k.public()).collect();
    let draft = Draft::new(
        owner,
        channel,
        serial,
        issued,
        expires,
        timestamp_hash,
        &publics,
    )?;
    let msg = draft.message();
    let sigs: Vec<_> = signers.iter().map(|k| k.sign(&msg)).collect();
    draft.finish(&sigs.iter().map(|s| &s[..]).collect::<Vec<_>>())
}

/// A record before its signatures: for signers that are not key files at
/// hand (the signing service), which sign [`Draft::message`] elsewhere.
#[cfg(feature = "signing")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    owner: String,
    body: String,
    keys: usize,
}

#[cfg(feature = "signing")]
impl Draft {
    /// The record of `serial` for `owner` and `channel`, to be signed by
    /// `signers` (keys of the timestamp role, in this order). `issued` and
    /// `expires` are truncated to whole seconds.
    pub fn new(
        owner: &str,
        channel: &str,
        serial: u64,
        issued: Timestamp,
        expires: Timestamp,
        timestamp_hash: &[u8; 32],
        signers: &[crate::keys::PublicKey],
    ) -> Result<Self, AnnounceError> {
        let bad = |what, reason: String| AnnounceError::InvalidArgument { what, reason };
        let owner = normalize_owner(owner)?;
        format::channel(channel).map_err(|r| bad("channel", r))?;
        if serial == 0 {
            return Err(bad("serial", "the serial starts at 1".into()));
        }
        let (t, e) = (issued.as_second(), expires.as_second());
        if t < 0 || e < 0 {
            return Err(bad("time", "times before 1970 cannot be encoded".into()));
        }
        if e <= t {
            return Err(bad(
                "expires",
                format!("{expires} is not after the issue time {issued}"),
            ));
        }
        if signers.is_empty() {
            return Err(bad("signers", "no signing key given".into()));
        }
        if signers
            .iter()
            .enumerate()
            .any(|(i, p)| signers[..i].contains(p))
        {
            return Err(bad("signers", "the same key is given twice".into()));
        }
        let short_ids: Vec<String> = signers.iter().map(|p| p.short_id()).collect();
        let body = format!(
            "v=1;c={channel};n={serial};t={t};e={e};k={};h={}",
            short_ids.join(","),
            format::b64(timestamp_hash)
        );
        Ok(Self {
            owner,
            body,
            keys: signers.len(),
        })
    }

    /// The bytes each signer signs.
    pub fn message(&self) -> Vec<u8> {
        signed_message(&self.owner, &self.body)
    }

    /// The record with `signatures` (64 bytes each, in the fixed form, in
    /// the order of the keys given to [`Draft::new`]). The record is not
    /// verified here: the caller verifies it with the role's keys.
    pub fn finish(&self, signatures: &[&[u8]]) -> Result<String, AnnounceError> {
        let bad = |reason: String| AnnounceError::InvalidArgument {
            what: "signatures",
            reason,
        };
        if signatures.len() != self.keys {
            return Err(bad(format!(
                "{} signature(s) for {} key(s)",
                signatures.len(),
                self.keys
            )));
        }
        if let Some(s) = signatures.iter().find(|s| s.len() != 64) {
            return Err(bad(format!("a signature of {} bytes, not 64", s.len())));
        }
        let sigs: Vec<String> = signatures.iter().map(|s| format::b64(s)).collect();
        let text = format!("{};s={}", self.body, sigs.join(","));
        // What we publish must be what appliances accept.
        parse(&text).map_err(|e| AnnounceError::InvalidArgument {
            what: "record",
            reason: e.to_string(),
        })?;
        Ok(text)
    }
}

/// The bytes the signatures cover.
fn signed_message(owner: &str, signed_text: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + owner.len() + 1 + signed_text.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(owner.as_bytes());
    msg.push(0);
    msg.extend_from_slice(signed_text.as_bytes());
    msg
}

/// An owner name in the form the signature covers: lowercase, without the
/// trailing dot. Internationalised names must be given in their ASCII form.
fn normalize_owner(owner: &str) -> Result<String, AnnounceError> {
    let bad = |reason: &str| AnnounceError::InvalidOwner {
        owner: owner.chars().take(300).collect(),
        reason: reason.to_string(),
    };
    let name = owner
        .strip_suffix('.')
        .unwrap_or(owner)
        .to_ascii_lowercase();
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must be 1 to 63 characters long"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "only letters, digits, '-' and '_' are allowed (use the ASCII form of an \
                 internationalised name)",
            ));
        }
    }
    Ok(name)
}
