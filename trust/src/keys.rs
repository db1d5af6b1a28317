//! Public keys and key ids.
//!
//! onionpkg uses ed25519 keys only. A key's id is the TUF key id (hex SHA-256
//! of the canonical JSON of `{keytype, scheme, keyval}`), the same one
//! python-tuf computes, so ids shown by our tools match the metadata. Private
//! keys live in `crate::sign` (feature `signing`).

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, VerifyingKey};
use onionpkg_config::{ErrorKind, HasKind};
use sha2::{Digest, Sha256};

/// Errors about keys and signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A public key is not a valid ed25519 key.
    #[error("invalid public key: {0}")]
    BadPublicKey(String),
    /// A key of a type onionpkg does not use.
    #[error("unsupported key type {keytype:?} (scheme {scheme:?}); onionpkg uses ed25519")]
    Unsupported {
        /// The declared key type.
        keytype: String,
        /// The declared signing scheme.
        scheme: String,
    },
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A private key file cannot be used.
    #[error("key file {path}: {reason}")]
    BadKeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// Why it cannot be used (never the secret).
        reason: String,
    },
    /// The passphrase of an encrypted key file is wrong, or the file is damaged.
    #[error("key file {path}: wrong passphrase, or the file is damaged")]
    WrongPassphrase {
        /// The key file.
        path: std::path::PathBuf,
    },
}

impl HasKind for KeyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadSignature => ErrorKind::Verification,
            _ => ErrorKind::Key,
        }
    }
}

/// An ed25519 public key, as used by every onionpkg role.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl PublicKey {
    /// Builds a key from its 32 raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError::BadPublicKey(format!("{} bytes, not 32", raw.len())))?;
        VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))
    }

    /// Builds a key from a TUF key object (`{keytype, scheme, keyval: {public}}`).
    pub fn from_tuf(key: &sigstore_tuf::Key) -> Result<Self, KeyError> {
        if key.keytype != "ed25519" || key.scheme != "ed25519" {
            return Err(KeyError::Unsupported {
                keytype: key.keytype.clone(),
                scheme: key.scheme.clone(),
            });
        }
        let raw = hex::decode(key.keyval.public.trim())
            .map_err(|e| KeyError::BadPublicKey(format!("not hex: {e}")))?;
        Self::from_bytes(&raw)
    }

    /// The TUF key object of this key.
    pub fn to_tuf(&self) -> sigstore_tuf::Key {
        // The type is non-exhaustive upstream: build it through serde.
        #[allow(clippy::expect_used, reason = "a fixed, well-formed object")]
        serde_json::from_value(self.to_json()).expect("a TUF key object")
    }

    /// The TUF key object as JSON (the public key file format).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": { "public": hex::encode(self.0.as_bytes()) },
        })
    }

    /// Parses a public key file (a TUF key object in JSON).
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: sigstore_tuf::Key = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::BadPublicKey(format!("not a TUF key object: {e}")))?;
        Self::from_tuf(&key)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The TUF key id: hex SHA-256 of the canonical key object.
    pub fn key_id(&self) -> String {
        let canonical = format!(
            r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
            hex::encode(self.0.as_bytes())
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A short id (first 2 bytes of SHA-256 of the raw key, hex), for places
    /// where every byte counts, such as the DNS announcement.
    pub fn short_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..2])
    }

    /// Verifies an ed25519 signature strictly (no weak keys, no malleability).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let sig = Signature::from_slice(sig).map_err(|_| KeyError::BadSignature)?;
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

/// Verifies an ed25519 signature given the raw public key bytes.
pub(crate) fn verify_ed25519(raw_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
    PublicKey::from_bytes(raw_key)?.verify(msg, sig)
}

/// The keys and threshold that a role is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    /// The authorized keys, by TUF key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// How many distinct keys must sign.
    pub threshold: usize,
}

impl RoleKeys {
    /// Counts the distinct authorized keys whose signature over `msg` verifies;
    /// `sigs` pairs a key id with a signature.
    pub fn count_valid<'a>(
        &self,
        msg: &[u8],
        sigs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> usize {
        let mut good = std::collections::BTreeSet::new();
        for (id, sig) in sigs {
            if let Some(key) = self.keys.get(id)
                && key.verify(msg, sig).is_ok()
            {
                good.insert(id);
            }
        }
        good.len()
    }
}
