//! Public keys and key ids.
//!
//! onionpkg verifies two kinds of key ([`Algorithm`]): ed25519, which its own
//! tools make, and ECDSA P-256 (`ecdsa-sha2-nistp256`), the kind hardware
//! tokens and cloud KMSs sign with and much of the TUF ecosystem uses. Their
//! TUF encodings are securesystemslib's:
//!
//! | kind | keytype | scheme | `keyval.public` | signature |
//! |---|---|---|---|---|
//! | ed25519 | `ed25519` | `ed25519` | 32 bytes, hex | 64 bytes |
//! | ECDSA P-256 | `ecdsa` | `ecdsa-sha2-nistp256` | PEM SubjectPublicKeyInfo | DER, over SHA-256 of the message |
//!
//! Every other scheme (RSA, P-384, ML-DSA, unknown ones) is refused by
//! [`PublicKey::from_tuf`] with [`KeyError::Unsupported`], which names it.
//! Private keys live in `crate::sign` (feature `signing`) and are ed25519.
//!
//! # Invariants
//! - A key's id is the TUF key id (hex SHA-256 of the canonical JSON of
//!   `{keytype, scheme, keyval}`) of the key object as declared: an ECDSA
//!   key keeps its PEM text as written, so the id is the one python-tuf
//!   computes for the same object. (Verification goes by the ids the metadata
//!   declares, as sigstore-tuf and python-tuf do; ours match them.)
//! - Two [`PublicKey`]s are equal when their key objects are.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, VerifyingKey};
use onionpkg_core::{ErrorKind, HasKind};
use sha2::{Digest, Sha256};

mod ecdsa;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

/// The schemes onionpkg verifies, for messages.
const SUPPORTED: &str = "ed25519 and ecdsa-sha2-nistp256";

/// Errors about keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A public key of a supported kind is malformed.
    #[error("invalid public key: {0}")]
    BadPublicKey(String),
    /// A key of a scheme onionpkg does not verify.
    #[error(
        "key type {keytype:?} with scheme {scheme:?}: onionpkg does not verify this scheme \
         (it verifies {SUPPORTED})"
    )]
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

/// The kinds of key onionpkg verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (scheme `ed25519`).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (scheme `ecdsa-sha2-nistp256`).
    EcdsaP256,
}

impl Algorithm {
    /// The TUF scheme name.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => ecdsa::SCHEME,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A public key of one of the kinds onionpkg verifies ([`Algorithm`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(Inner);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Inner {
    Ed25519(VerifyingKey),
    EcdsaP256(ecdsa::P256Key),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.key_id())
    }
}

impl PublicKey {
    /// An ed25519 key from its 32 raw bytes.
    pub fn from_ed25519_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError::BadPublicKey(format!("{} bytes, not 32", raw.len())))?;
        VerifyingKey::from_bytes(&arr)
            .map(|k| Self(Inner::Ed25519(k)))
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))
    }

    /// An ECDSA P-256 key from its uncompressed SEC1 point (`04 || x || y`,
    /// 65 bytes), declared as securesystemslib declares it (keytype `ecdsa`,
    /// PEM SubjectPublicKeyInfo). Whether the point is on the curve shows
    /// when verifying: a key off the curve verifies nothing.
    pub fn from_ecdsa_p256_point(sec1: &[u8]) -> Result<Self, KeyError> {
        ecdsa::P256Key::from_point(sec1).map(|k| Self(Inner::EcdsaP256(k)))
    }

    /// Builds a key from a TUF key object (`{keytype, scheme, keyval: {public}}`).
    /// A scheme onionpkg does not verify is [`KeyError::Unsupported`].
    pub fn from_tuf(key: &sigstore_tuf::Key) -> Result<Self, KeyError> {
        let unsupported = || KeyError::Unsupported {
            keytype: key.keytype.clone(),
            scheme: key.scheme.clone(),
        };
        match key.scheme.as_str() {
            "ed25519" if key.keytype == "ed25519" => {
                let raw = hex::decode(key.keyval.public.trim())
                    .map_err(|e| KeyError::BadPublicKey(format!("not hex: {e}")))?;
                Self::from_ed25519_bytes(&raw)
            }
            ecdsa::SCHEME => ecdsa::P256Key::from_tuf(key).map(|k| Self(Inner::EcdsaP256(k))),
            _ => Err(unsupported()),
        }
    }

    /// The TUF key object of this key.
    pub fn to_tuf(&self) -> sigstore_tuf::Key {
        // The type is non-exhaustive upstream: build it through serde.
        #[allow(
            clippy::expect_used,
            reason = "three strings in the shape of a key object always deserialize"
        )]
        serde_json::from_value(self.to_json()).expect("a TUF key object")
    }

    /// The TUF key object as JSON (the public key file format).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.0 {
            Inner::Ed25519(k) => key_object("ed25519", "ed25519", &hex::encode(k.as_bytes())),
            Inner::EcdsaP256(k) => key_object(k.keytype(), ecdsa::SCHEME, k.pem()),
        }
    }

    /// Parses a public key file (a TUF key object in JSON).
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: sigstore_tuf::Key = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::BadPublicKey(format!("not a TUF key object: {e}")))?;
        Self::from_tuf(&key)
    }

    /// The kind of key.
    pub fn algorithm(&self) -> Algorithm {
        match &self.0 {
            Inner::Ed25519(_) => Algorithm::Ed25519,
            Inner::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The raw key: ed25519's 32 bytes, or ECDSA P-256's 65-byte
    /// uncompressed point.
    pub fn raw_bytes(&self) -> &[u8] {
        match &self.0 {
            Inner::Ed25519(k) => k.as_bytes(),
            Inner::EcdsaP256(k) => k.point(),
        }
    }

    /// The TUF key id: hex SHA-256 of the canonical key object.
    pub fn key_id(&self) -> String {
        match &self.0 {
            Inner::Ed25519(k) => {
                // Hex needs no escaping: this is the canonical JSON.
                let canonical = format!(
                    r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
                    hex::encode(k.as_bytes())
                );
                hex::encode(Sha256::digest(canonical.as_bytes()))
            }
            Inner::EcdsaP256(k) => k.key_id().to_string(),
        }
    }

    /// A short id (first 2 bytes of SHA-256 of [`PublicKey::raw_bytes`],
    /// hex), for places where every byte counts, such as the DNS
    /// announcement.
    pub fn short_id(&self) -> String {
        hex::encode(&Sha256::digest(self.raw_bytes())[..2])
    }

    /// Verifies a signature in the TUF encoding of the key's scheme: 64 bytes
    /// for ed25519 (strictly: no weak keys, no malleability), DER over
    /// SHA-256 of `msg` for ECDSA P-256.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        match &self.0 {
            Inner::Ed25519(k) => {
                let sig = Signature::from_slice(sig).map_err(|_| KeyError::BadSignature)?;
                k.verify_strict(msg, &sig)
                    .map_err(|_| KeyError::BadSignature)
            }
            Inner::EcdsaP256(k) => ecdsa::verify_der(k.point(), msg, sig),
        }
    }

    /// Verifies a signature in the fixed 64-byte form used where every byte
    /// counts (the DNS announcement): ed25519's own, or for ECDSA P-256
    /// `r || s` (32 bytes each, big-endian) over SHA-256 of `msg`.
    pub fn verify_fixed(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
        match &self.0 {
            Inner::Ed25519(_) => self.verify(msg, sig),
            Inner::EcdsaP256(k) => ecdsa::verify_fixed(k.point(), msg, sig),
        }
    }
}

/// A TUF key object.
fn key_object(keytype: &str, scheme: &str, public: &str) -> serde_json::Value {
    serde_json::json!({
        "keytype": keytype,
        "scheme": scheme,
        "keyval": { "public": public },
    })
}

/// The TUF key id of a key object.
fn key_id_of(object: &serde_json::Value) -> Result<String, KeyError> {
    let canonical = sigstore_tuf::canonical_json::to_canonical_bytes(object)
        .map_err(|e| KeyError::BadPublicKey(format!("no canonical form for a key id: {e}")))?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// A key bound to a role that onionpkg cannot use: its signatures count
/// towards no threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableKey {
    /// The key id the metadata declares.
    pub key_id: String,
    /// Why it cannot be used.
    pub error: KeyError,
}

impl std::fmt::Display for UnusableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            KeyError::Unsupported { scheme, .. } => write!(
                f,
                "key {} uses scheme {scheme}, which onionpkg does not verify",
                self.key_id
            ),
            other => write!(f, "key {} cannot be used: {other}", self.key_id),
        }
    }
}

/// The keys and threshold that a role is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    /// The authorized keys onionpkg can verify, by TUF key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// How many distinct keys must sign.
    pub threshold: usize,
    /// The role's keys onionpkg cannot verify (an unsupported scheme, a
    /// malformed key), which count towards no threshold.
    pub unusable: Vec<UnusableKey>,
}

impl RoleKeys {
    /// A binding of `keys` with `threshold`, all of them usable.
    pub fn new(keys: BTreeMap<String, PublicKey>, threshold: usize) -> Self {
        Self {
            keys,
            threshold,
            unusable: Vec::new(),
        }
    }

    /// Counts the distinct authorized keys whose signature over `msg` verifies;
    /// `sigs` pairs a key id with a signature in the TUF encoding.
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
