//! Build and sign a request, send it, read the answer.
//!
//! ```no_run
//! # fn main() -> onionpkg_signer_client::Result<()> {
//! use onionpkg_signer_client::client::{RequestKey, SignerClient, UnixTransport};
//! use onionpkg_signer_client::request::Kind;
//! # struct MyKey;
//! # impl RequestKey for MyKey {
//! #     fn key_id(&self) -> String { String::new() }
//! #     fn sign(&self, _: &[u8]) -> Vec<u8> { Vec::new() }
//! # }
//! # let path = std::path::Path::new("/run/onionpkg-signer/signer.sock");
//! # let (payload, version, expires) = (b"{}", 1, jiff::Timestamp::now());
//! let mut signer = SignerClient::new(UnixTransport::new(path), MyKey);
//! let (answer, signature) =
//!     signer.sign("timestamp", Kind::Tuf, payload, version, expires, jiff::Timestamp::now())?;
//! println!("log entry {}", answer.log_index);
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! - Every request carries a fresh nonce and the client's signature.
//! - The signature returned is the signer's claim; the caller checks it
//!   against the role's key before using it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use rand_core::RngCore as _;

use crate::frame::{self, MAX_RESPONSE};
use crate::request::{Kind, Request, Response, Signed, SignedRequest};
use crate::{ClientError, Result};

/// A way to the signer: sends one request frame, returns the answer frame.
pub trait Transport {
    /// Sends `request` and returns the response's bytes.
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>>;
}

/// The client's own ed25519 key, which authenticates its requests.
pub trait RequestKey {
    /// The TUF key id of the key (the signer's configuration lists it).
    fn key_id(&self) -> String;
    /// An ed25519 signature of `msg`.
    fn sign(&self, msg: &[u8]) -> Vec<u8>;
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

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Transport for UnixTransport {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let io = |source| ClientError::Transport {
            path: self.path.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(io)?;
        frame::write_frame(&mut stream, request, self.deadline)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        frame::read_frame(&mut stream, MAX_RESPONSE, self.deadline)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// Builds a request signed with the client's key. `expires` and `now` are
/// taken to whole seconds; the nonce is fresh from the OS.
pub fn build_request(
    key: &dyn RequestKey,
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
        client: key.key_id(),
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
/// [`ClientError::Refused`].
pub fn read_response(bytes: &[u8]) -> Result<Signed> {
    match serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Protocol(format!("not a response: {e}")))?
    {
        Response::Signed(s) => Ok(s),
        Response::Refused(r) => Err(ClientError::Refused(r)),
    }
}

/// Sends a request over `transport` and reads the answer.
pub fn send(transport: &mut dyn Transport, request: &SignedRequest) -> Result<Signed> {
    let bytes = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    read_response(&transport.exchange(&bytes)?)
}

/// A client of the signer: a transport and this client's key.
pub struct SignerClient<T, K> {
    transport: T,
    key: K,
}

impl<T, K: RequestKey> std::fmt::Debug for SignerClient<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerClient")
            .field("client", &self.key.key_id())
            .finish_non_exhaustive()
    }
}

impl<T: Transport, K: RequestKey> SignerClient<T, K> {
    /// A client sending over `transport`, authenticating with `key`.
    pub fn new(transport: T, key: K) -> Self {
        Self { transport, key }
    }

    /// The client's key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Has the signer sign `payload` (of `kind`, carrying `version` and
    /// `expires`) with `role`'s key; returns the answer and the signature's
    /// bytes, not yet checked against any key.
    pub fn sign(
        &mut self,
        role: &str,
        kind: Kind,
        payload: &[u8],
        version: u64,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(Signed, Vec<u8>)> {
        let request = build_request(&self.key, role, kind, payload, version, expires, now);
        let answer = send(&mut self.transport, &request)?;
        let sig =
            hex::decode(&answer.signature).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((answer, sig))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::frame::{FRAME_DEADLINE, MAX_REQUEST, read_frame, write_frame};
    use crate::request::{Reason, Refusal};

    struct FakeKey;

    impl RequestKey for FakeKey {
        fn key_id(&self) -> String {
            "ab".repeat(32)
        }
        fn sign(&self, msg: &[u8]) -> Vec<u8> {
            msg.len().to_be_bytes().to_vec()
        }
    }

    /// A one-connection server answering with `response`; returns the
    /// request it read.
    fn serve_once(path: &Path, response: Response) -> std::thread::JoinHandle<SignedRequest> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let req = read_frame(&mut stream, MAX_REQUEST, FRAME_DEADLINE).unwrap();
            let bytes = serde_json::to_vec(&response).unwrap();
            write_frame(&mut stream, &bytes, FRAME_DEADLINE).unwrap();
            serde_json::from_slice(&req).unwrap()
        })
    }

    #[test]
    fn a_request_carries_the_client_s_signature_over_its_signing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = serve_once(
            &path,
            Response::Signed(Signed {
                key_id: "cd".repeat(32),
                signature: "0102".into(),
                log_index: 7,
            }),
        );
        let mut client = SignerClient::new(UnixTransport::new(&path), FakeKey);
        let now = Timestamp::from_second(1_000).unwrap();
        let (answer, sig) = client
            .sign("timestamp", Kind::Tuf, b"payload", 3, now, now)
            .unwrap();
        assert_eq!((answer.log_index, sig), (7, vec![1, 2]));
        let req = server.join().unwrap();
        assert_eq!(req.request.client, FakeKey.key_id());
        assert_eq!((req.request.version, req.request.time), (3, 1_000));
        let expected = FakeKey.sign(&req.request.signing_bytes(b"payload"));
        assert_eq!(req.signature, Some(hex::encode(expected)));
    }

    #[test]
    fn a_refusal_is_returned_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _server = serve_once(
            &path,
            Response::Refused(Refusal::new(Reason::Version, "not above 3")),
        );
        let mut client = SignerClient::new(UnixTransport::new(&path), FakeKey);
        let now = Timestamp::from_second(1_000).unwrap();
        match client.sign("timestamp", Kind::Tuf, b"p", 3, now, now) {
            Err(ClientError::Refused(r)) => assert_eq!(r.reason, Reason::Version),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
