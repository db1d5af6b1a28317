//! The TUF side of the client: requests authenticated with a client key
//! file, metadata signed as TUF signatures cover it, and the signer's
//! signature checked against the role's key. The request format, frames and
//! transport are `onionpkg-signer-client`'s, which the release side links
//! without this crate.
//!
//! ```no_run
//! # fn main() -> onionpkg_signer::Result<()> {
//! use onionpkg_signer::client::{SignerClient, UnixTransport};
//! use onionpkg_trust::sign::SecretKey;
//! # let path = std::path::Path::new("/run/onionpkg-signer/signer.sock");
//! let key = SecretKey::read_file("client.key".as_ref(), None)?; // this client's own key
//! let mut signer = SignerClient::new(UnixTransport::new(path), key);
//! let mut envelope = serde_json::json!({ "signed": { "_type": "timestamp" }, "signatures": [] });
//! let signed = signer.add_signature("timestamp", &mut envelope, jiff::Timestamp::now())?;
//! println!("log entry {}", signed.log_index);
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! - The client signs exactly the canonical JSON (without `null`s) that
//!   TUF signatures cover, and checks the returned signature against it
//!   (and against the expected key id when one is given) before using it.

use jiff::Timestamp;
use onionpkg_signer_client::client::{self as raw, RequestKey};
pub use onionpkg_signer_client::client::{Transport, UnixTransport};
use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::{SecretKey, canonical_bytes, strip_nulls};
use serde_json::Value;

use crate::request::{Kind, Signed, SignedRequest};
use crate::{Error, Result};

/// A client key file's key, as the request signer.
struct ClientKey<'a>(&'a SecretKey);

impl RequestKey for ClientKey<'_> {
    fn key_id(&self) -> String {
        self.0.public().key_id()
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.0.sign(msg).to_vec()
    }
}

/// Builds a request signed with the client's key. `expires` and `now` are
/// taken to whole seconds; the nonce is fresh from the OS.
pub fn build_request(
    key: &SecretKey,
    role: &str,
    kind: Kind,
    payload: &[u8],
    version: u64,
    expires: Timestamp,
    now: Timestamp,
) -> SignedRequest {
    raw::build_request(&ClientKey(key), role, kind, payload, version, expires, now)
}

/// Sends a request over `transport` and reads the answer.
pub fn send(transport: &mut dyn Transport, request: &SignedRequest) -> Result<Signed> {
    Ok(raw::send(transport, request)?)
}

/// A client of the signer: a transport and this client's key.
pub struct SignerClient<T> {
    transport: T,
    key: SecretKey,
    expected: Option<PublicKey>,
}

impl<T> std::fmt::Debug for SignerClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerClient")
            .field("key", &self.key)
            .finish()
    }
}

impl<T: Transport> SignerClient<T> {
    /// A client sending over `transport`, authenticating with `key`.
    pub fn new(transport: T, key: SecretKey) -> Self {
        Self {
            transport,
            key,
            expected: None,
        }
    }

    /// Requires the signer's signatures to be made by `key` (the key the
    /// repository's root or delegation lists for the role).
    #[must_use]
    pub fn expecting(mut self, key: PublicKey) -> Self {
        self.expected = Some(key);
        self
    }

    /// Checks a TUF signature (`fixed` false) or an announcement's fixed
    /// 64-byte one against the expected key, if any.
    fn check(&self, signed: &Signed, msg: &[u8], fixed: bool) -> Result<Vec<u8>> {
        let sig = hex::decode(&signed.signature).map_err(|e| Error::Protocol(e.to_string()))?;
        let verifies = |k: &PublicKey| {
            if fixed {
                <&[u8; 64]>::try_from(sig.as_slice()).is_ok_and(|s| k.verify_fixed(msg, s).is_ok())
            } else {
                k.verify(msg, &sig).is_ok()
            }
        };
        if let Some(k) = &self.expected
            && (k.key_id() != signed.key_id || !verifies(k))
        {
            return Err(Error::BadSignature {
                key_id: signed.key_id.clone(),
            });
        }
        Ok(sig)
    }

    /// Has the signer sign a TUF role's `signed` object; returns the
    /// signature (its key id, the bytes, the log index).
    pub fn sign_metadata(
        &mut self,
        role: &str,
        signed: &Value,
        now: Timestamp,
    ) -> Result<(Signed, Vec<u8>)> {
        let mut signed = signed.clone();
        strip_nulls(&mut signed);
        let payload = canonical_bytes(&signed)?;
        let version = signed["version"]
            .as_u64()
            .ok_or_else(|| Error::Invalid("the metadata has no version".into()))?;
        let expires = signed["expires"]
            .as_str()
            .and_then(|e| e.parse::<Timestamp>().ok())
            .ok_or_else(|| Error::Invalid("the metadata has no RFC 3339 expires".into()))?;
        let request = build_request(&self.key, role, Kind::Tuf, &payload, version, expires, now);
        let answer = send(&mut self.transport, &request)?;
        let sig = self.check(&answer, &payload, false)?;
        Ok((answer, sig))
    }

    /// Signs `envelope["signed"]` for `role` and adds (or replaces) the
    /// signer's signature in `envelope["signatures"]`.
    pub fn add_signature(
        &mut self,
        role: &str,
        envelope: &mut Value,
        now: Timestamp,
    ) -> Result<Signed> {
        strip_nulls(envelope);
        let (answer, _) = self.sign_metadata(role, &envelope["signed"], now)?;
        let sigs = envelope["signatures"]
            .as_array_mut()
            .ok_or_else(|| Error::Invalid("the envelope has no `signatures` list".into()))?;
        sigs.retain(|s| s["keyid"].as_str() != Some(&answer.key_id));
        sigs.push(serde_json::json!({ "keyid": answer.key_id, "sig": answer.signature }));
        Ok(answer)
    }

    /// Has the signer sign an announcement's signed bytes (`message`, as the
    /// trust layer's announcement format defines them) with the timestamp key.
    pub fn sign_announcement(
        &mut self,
        message: &[u8],
        serial: u64,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(Signed, Vec<u8>)> {
        let request = build_request(
            &self.key,
            "timestamp",
            Kind::Announcement,
            message,
            serial,
            expires,
            now,
        );
        let answer = send(&mut self.transport, &request)?;
        let sig = self.check(&answer, message, true)?;
        Ok((answer, sig))
    }
}
