//! Requests, their signatures, and the answers.
//!
//! A request is a statement signed by the client's own ed25519 key: who asks
//! (the TUF key id of the client key), for which role, what kind of payload
//! (TUF metadata or a DNS announcement), the exact bytes to sign, the
//! version and expiry they carry, a random nonce and the client's time. On
//! the wire (JSON):
//!
//! ```json
//! {"request": {"client": "<key id>", "role": "timestamp", "kind": "tuf",
//!              "payload": "<base64>", "version": 7, "expires": 1767225600,
//!              "nonce": "<32 hex digits>", "time": 1767139200},
//!  "signature": "<128 hex digits>"}
//! ```
//!
//! The signature covers [`Request::signing_bytes`]: the domain prefix
//! `onionpkg-signer-request-v1\0`, then each field in the order above, text
//! and bytes as a u32 (payload: u64) big-endian length and the bytes, numbers
//! as 8 bytes big-endian (times as signed unix seconds). No two requests
//! share an encoding, and no other onionpkg signature starts with that prefix.
//!
//! # Invariants
//! - Nothing in a request is acted on before its signature verified with the
//!   key of a configured client; the source of a connection grants nothing.
//! - A refusal tells the client the reason's code and a short message about
//!   its own request, never the signer's internals.

use serde::{Deserialize, Serialize};

use onionpkg_core::{ErrorKind, HasKind};

/// The domain separation prefix of request signatures.
pub const DOMAIN: &[u8] = b"onionpkg-signer-request-v1\0";

/// What a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The canonical JSON of a TUF role's `signed` object.
    Tuf,
    /// The bytes an onionpkg DNS announcement's signatures cover
    /// (`onionpkg-announce-v1\0` ‖ owner ‖ `\0` ‖ text up to `;s=`),
    /// signed with the timestamp key.
    Announcement,
}

impl Kind {
    /// The name used on the wire and in the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tuf => "tuf",
            Self::Announcement => "announcement",
        }
    }
}

/// The signed part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The TUF key id of the client's key.
    pub client: String,
    /// The TUF role (`timestamp`, `bin-0a`, …) whose key signs.
    pub role: String,
    /// What the payload is.
    pub kind: Kind,
    /// The exact bytes to sign, base64.
    pub payload: String,
    /// The version (announcement: serial) the payload carries.
    pub version: u64,
    /// The expiry the payload carries, unix seconds.
    pub expires: i64,
    /// 16 random bytes, hex: a request is accepted once.
    pub nonce: String,
    /// When the client made the request, unix seconds.
    pub time: i64,
}

/// A request with its signature, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    /// The statement.
    pub request: Request,
    /// The client's ed25519 signature over [`Request::signing_bytes`], hex.
    #[serde(default)]
    pub signature: Option<String>,
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fields are capped far below 4 GiB by the frame size.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Request {
    /// The bytes the client's signature covers (see the module docs).
    /// `payload` is the decoded payload.
    pub fn signing_bytes(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN.len() + payload.len() + 256);
        out.extend_from_slice(DOMAIN);
        put(&mut out, self.client.as_bytes());
        put(&mut out, self.role.as_bytes());
        put(&mut out, self.kind.name().as_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        put(&mut out, self.nonce.as_bytes());
        out.extend_from_slice(&self.time.to_be_bytes());
        out
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// The frame is not a request of the expected shape.
    Malformed,
    /// The request carries no signature.
    Unsigned,
    /// The client key is not configured.
    UnknownClient,
    /// The signature does not verify with the client's key.
    BadSignature,
    /// The request's time is outside the window around the signer's clock.
    Stale,
    /// The nonce was seen before within the window: a replay.
    Replay,
    /// The client may not request this role.
    Forbidden,
    /// Root is never signed online.
    Root,
    /// The role's rate limit is reached.
    RateLimited,
    /// The version is not above the last one signed for the role.
    Version,
    /// The expiry is in the past or beyond the role's bound.
    Expiry,
    /// The payload is not the role's metadata (or announcement), or does not
    /// carry the request's version and expiry.
    Payload,
    /// A snapshot or timestamp references a version the signer did not sign.
    Reference,
    /// The signer failed; details are in its log.
    Internal,
}

impl Reason {
    /// The wire name (`rate-limited`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsigned => "unsigned",
            Self::UnknownClient => "unknown-client",
            Self::BadSignature => "bad-signature",
            Self::Stale => "stale",
            Self::Replay => "replay",
            Self::Forbidden => "forbidden",
            Self::Root => "root",
            Self::RateLimited => "rate-limited",
            Self::Version => "version",
            Self::Expiry => "expiry",
            Self::Payload => "payload",
            Self::Reference => "reference",
            Self::Internal => "internal",
        }
    }
}

/// A refusal: the reason and a short message for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{} ({message})", reason.name())]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// What about the request (never the signer's internals).
    pub message: String,
}

impl Refusal {
    /// A refusal for `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl HasKind for Refusal {
    fn kind(&self) -> ErrorKind {
        match self.reason {
            Reason::Malformed | Reason::Payload => ErrorKind::BadInput,
            Reason::Version | Reason::Replay | Reason::Reference => ErrorKind::Rollback,
            Reason::Stale | Reason::Expiry => ErrorKind::Expired,
            Reason::Internal | Reason::RateLimited => ErrorKind::Internal,
            _ => ErrorKind::Verification,
        }
    }
}

/// A signature made for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The TUF key id of the key that signed.
    pub key_id: String,
    /// The signature, hex.
    pub signature: String,
    /// The index of the log entry recording it.
    pub log_index: u64,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Response {
    /// Signed and logged.
    Signed(Signed),
    /// Refused; nothing was signed.
    Refused(Refusal),
}
