//! The client library: build and sign a request, send it, read the answer.
//!
//! `onionpkg-repo`, the mirror's feed publisher and `onionpkg-announce` call
//! this to have the signer sign instead of a key file:
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

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::{SecretKey, canonical_bytes, strip_nulls};
use rand_core::RngCore as _;
use serde_json::Value;

use crate::frame::{self, MAX_RESPONSE};
use crate::request::{Kind, Request, Response, Signed, SignedRequest};
use crate::{Error, Result};

/// A way to the signer: sends one request frame, returns the answer frame.
pub trait Transport {
    /// Sends `request` and returns the response's bytes.
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>>;
}

/// The signer's Unix socket; one connection per request.
#[derive(Debug, Clone)]
pub struct UnixTransport {
    path: PathBuf,
    deadline: Duration,
}

impl UnixTransport {
    /// The socket at `path`, with a 30 s deadline per exchange.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            deadline: Duration::from_secs(30),
        }
    }

    /// Changes the deadline of each exchange.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

impl Transport for UnixTransport {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let io = |source| Error::Transport {
            path: self.path.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(io)?;
        frame::write_frame(&mut stream, request, self.deadline)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        frame::read_frame(&mut stream, MAX_RESPONSE, self.deadline)
            .map_err(|e| Error::Protocol(e.to_string()))
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
    let mut nonce = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut nonce);
    let request = Request {
        client: key.public().key_id(),
        role: role.to_string(),
        kind,
        payload: base64::engine::general_purpose::STANDARD.encode(payload),
        version,
        expires: expires.as_second(),
        nonce: hex::encode(nonce),
        time: now.as_second(),
    };
    let signature = hex::encode(key.sign(&request.signing_bytes(payload)));
    SignedRequest {
        request,
        signature: Some(signature),
    }
}

/// Reads a response frame: the signature, or the refusal as
/// [`Error::Refused`].
pub fn read_response(bytes: &[u8]) -> Result<Signed> {
    match serde_json::from_slice(bytes)
        .map_err(|e| Error::Protocol(format!("not a response: {e}")))?
    {
        Response::Signed(s) => Ok(s),
        Response::Refused(r) => Err(Error::Refused(r)),
    }
}

/// Sends a request over `transport` and reads the answer.
pub fn send(transport: &mut dyn Transport, request: &SignedRequest) -> Result<Signed> {
    let bytes = serde_json::to_vec(request).map_err(|e| Error::Protocol(e.to_string()))?;
    read_response(&transport.exchange(&bytes)?)
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

    fn check(&self, signed: &Signed, msg: &[u8]) -> Result<Vec<u8>> {
        let sig = hex::decode(&signed.signature).map_err(|e| Error::Protocol(e.to_string()))?;
        if let Some(k) = &self.expected
            && (k.key_id() != signed.key_id || k.verify(msg, &sig).is_err())
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
        let sig = self.check(&answer, &payload)?;
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
        let sig = self.check(&answer, message)?;
        Ok((answer, sig))
    }
}
