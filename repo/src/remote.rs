//! Signing through `onionpkg-signer` instead of key files.
//!
//! With a [`RemoteSigner`] in the [`crate::KeyDir`], every role but root is
//! signed by the signer: the request carries the exact canonical bytes TUF
//! signatures cover, authenticated with this client's own key, and the
//! signature that comes back is used only if it is made by a key the root
//! (or the delegating targets) gives the role, and verifies.
//!
//! # Invariants
//! - Root is never sent to the signer.
//! - A signature is written only after it verified with a key of the role.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use onionpkg_signer_client::client::{RequestKey, SignerClient, UnixTransport};
use onionpkg_signer_client::request::Kind;
use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::{SecretKey, canonical_bytes, strip_nulls};
use serde_json::{Value, json};

use crate::err::{RepoError, Result};

/// This client's key, which authenticates its requests to the signer.
struct ClientKey(SecretKey);

impl RequestKey for ClientKey {
    fn key_id(&self) -> String {
        self.0.public().key_id()
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.0.sign(msg).to_vec()
    }
}

/// The signer at a Unix socket, and this client's key.
pub struct RemoteSigner {
    client: RefCell<SignerClient<UnixTransport, ClientKey>>,
}

impl std::fmt::Debug for RemoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSigner").finish_non_exhaustive()
    }
}

impl RemoteSigner {
    /// The signer listening on `socket`, asked with `client_key`.
    pub fn new(socket: &Path, client_key: SecretKey) -> Self {
        Self {
            client: RefCell::new(SignerClient::new(
                UnixTransport::new(socket),
                ClientKey(client_key),
            )),
        }
    }

    /// Has the signer sign a DNS announcement's signed bytes (`message`,
    /// the trust layer's `announce::Draft::message`) of `serial` expiring
    /// at `expires` with the timestamp key; returns the signature only when
    /// it is made by `expected` (the timestamp role's key the record names)
    /// and verifies.
    pub fn sign_announcement(
        &self,
        message: &[u8],
        serial: u64,
        expires: Timestamp,
        expected: &PublicKey,
        now: Timestamp,
    ) -> Result<Vec<u8>> {
        let role = onionpkg_trust::roles::TIMESTAMP;
        let (answer, sig) = self.client.borrow_mut().sign(
            role,
            Kind::Announcement,
            message,
            serial,
            expires,
            now,
        )?;
        if answer.key_id != expected.key_id() {
            return Err(RepoError::SignerKey {
                role: "announcement".into(),
                key_id: answer.key_id,
                reason: format!(
                    "is not the timestamp key {} the announcement names",
                    expected.key_id()
                ),
            });
        }
        let fixed: Option<&[u8; 64]> = sig.as_slice().try_into().ok();
        if fixed.is_none_or(|f| expected.verify_fixed(message, f).is_err()) {
            return Err(RepoError::SignerKey {
                role: "announcement".into(),
                key_id: answer.key_id,
                reason: "made a signature that does not verify".into(),
            });
        }
        tracing::info!(
            serial,
            log_index = answer.log_index,
            "announcement signed by the signer"
        );
        Ok(sig)
    }

    /// Has the signer sign `payload` (the `signed` object) for `role`, and
    /// returns the envelope with its one signature. `authorized` are the
    /// keys the role has, by key id.
    pub(crate) fn sign(
        &self,
        role: &str,
        mut payload: Value,
        authorized: &BTreeMap<String, PublicKey>,
        now: Timestamp,
    ) -> Result<Value> {
        if role == onionpkg_trust::roles::ROOT {
            return Err(RepoError::Invalid(
                "root is never signed by the online signer".into(),
            ));
        }
        strip_nulls(&mut payload);
        let bytes = canonical_bytes(&payload)?;
        let version = payload["version"]
            .as_u64()
            .ok_or_else(|| RepoError::Invalid(format!("{role}: the metadata has no version")))?;
        let expires = payload["expires"]
            .as_str()
            .and_then(|e| e.parse::<Timestamp>().ok())
            .ok_or_else(|| RepoError::Invalid(format!("{role}: the metadata has no expiry")))?;
        let (answer, sig) =
            self.client
                .borrow_mut()
                .sign(role, Kind::Tuf, &bytes, version, expires, now)?;
        let key = authorized
            .get(&answer.key_id)
            .ok_or_else(|| RepoError::SignerKey {
                role: role.to_string(),
                key_id: answer.key_id.clone(),
                reason: "is not a key of the role; set the signer's public key as the role's key \
                     (`root draft --set-keys`, `rotate ROLE --public-key`)"
                    .into(),
            })?;
        if key.verify(&bytes, &sig).is_err() {
            return Err(RepoError::SignerKey {
                role: role.to_string(),
                key_id: answer.key_id,
                reason: "made a signature that does not verify".into(),
            });
        }
        tracing::info!(
            role,
            version,
            log_index = answer.log_index,
            "signed by the signer"
        );
        Ok(json!({
            "signed": payload,
            "signatures": [{ "keyid": answer.key_id, "sig": answer.signature }],
        }))
    }
}
