//! ECDSA P-256 keys (`ecdsa-sha2-nistp256`), the kind hardware tokens
//! (YubiKey PIV), cloud KMSs, tuf-on-ci and Sigstore's root use.
//!
//! The encodings are securesystemslib's, checked against what python-tuf 7 /
//! securesystemslib 1.6 write, not only against a reading of the spec:
//! - the key object: keytype `ecdsa` (securesystemslib still accepts its
//!   deprecated keytype `ecdsa-sha2-nistp256`, and so do we), scheme
//!   `ecdsa-sha2-nistp256`, and `keyval.public` a PEM `PUBLIC KEY` block: a
//!   DER SubjectPublicKeyInfo (id-ecPublicKey, curve prime256v1) holding the
//!   uncompressed point, in lines of 64 characters ending in `\n`;
//! - a signature: the ASN.1 DER `ECDSA-Sig-Value` (r, s) over SHA-256 of the
//!   message (for TUF metadata, of the canonical JSON of `signed`), hex in
//!   the metadata. Either value of `s` (low or high) is valid, as in
//!   OpenSSL, which signs with both.
//!
//! # Invariants
//! - A key parses here exactly when sigstore-tuf's verifier can use it: the
//!   PEM and SubjectPublicKeyInfo go through the same code
//!   (`sigstore_tuf::Key::verification_key`); what is kept is the 65-byte
//!   uncompressed point (a compressed one is refused, as sigstore-tuf does).
//! - The PEM text is kept as declared, so the key id (a hash of the key
//!   object) is the one the metadata's producer computed.
//! - ring checks that the point lies on the curve on every verification: a
//!   key whose point does not parses, but verifies nothing.

use sigstore_crypto::SigningScheme;

use super::KeyError;

/// The TUF signing scheme.
pub(super) const SCHEME: &str = "ecdsa-sha2-nistp256";

/// The key type securesystemslib writes.
pub(super) const KEYTYPE: &str = "ecdsa";

/// The key type securesystemslib wrote before, deprecated but still accepted.
const LEGACY_KEYTYPE: &str = "ecdsa-sha2-nistp256";

/// Bytes of an uncompressed SEC1 point: `04 || x || y`.
const POINT_LEN: usize = 65;

/// The DER SubjectPublicKeyInfo of a P-256 key up to its point:
/// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 },
/// BIT STRING (0 unused bits, 65 bytes) }`.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An ECDSA P-256 public key, with the key object it was declared as.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct P256Key {
    /// `ecdsa`, or the legacy `ecdsa-sha2-nistp256`, as declared.
    keytype: &'static str,
    /// `keyval.public` as declared.
    pem: String,
    /// The uncompressed point.
    point: [u8; POINT_LEN],
    /// The TUF key id of the declared object.
    key_id: String,
}

impl P256Key {
    /// Parses a TUF key object whose scheme is `ecdsa-sha2-nistp256`.
    pub(super) fn from_tuf(key: &sigstore_tuf::Key) -> Result<Self, KeyError> {
        let keytype = match key.keytype.as_str() {
            KEYTYPE => KEYTYPE,
            LEGACY_KEYTYPE => LEGACY_KEYTYPE,
            _ => {
                return Err(KeyError::Unsupported {
                    keytype: key.keytype.clone(),
                    scheme: key.scheme.clone(),
                });
            }
        };
        // sigstore-tuf's parser hashes through the installed provider.
        crate::crypto::install();
        let parsed = key.verification_key().map_err(|e| {
            KeyError::BadPublicKey(format!(
                "not a P-256 public key in PEM (SubjectPublicKeyInfo): {}",
                reason(&e)
            ))
        })?;
        if parsed.scheme() != SigningScheme::EcdsaP256Sha256 {
            return Err(KeyError::BadPublicKey(format!(
                "a {} key where a P-256 key is declared",
                parsed.scheme().name()
            )));
        }
        let point = point(parsed.as_bytes())?;
        let pem = key.keyval.public.clone();
        let key_id = super::key_id_of(&super::key_object(keytype, SCHEME, &pem))?;
        Ok(Self {
            keytype,
            pem,
            point,
            key_id,
        })
    }

    /// A key from its uncompressed SEC1 point (what a PKCS#11 token reports
    /// as `CKA_EC_POINT`, unwrapped), declared as securesystemslib does.
    pub(super) fn from_point(sec1: &[u8]) -> Result<Self, KeyError> {
        let point = point(sec1)?;
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&point);
        let pem = pem("PUBLIC KEY", &der);
        let key_id = super::key_id_of(&super::key_object(KEYTYPE, SCHEME, &pem))?;
        Ok(Self {
            keytype: KEYTYPE,
            pem,
            point,
            key_id,
        })
    }

    /// The declared key type.
    pub(super) fn keytype(&self) -> &'static str {
        self.keytype
    }

    /// `keyval.public`, as declared.
    pub(super) fn pem(&self) -> &str {
        &self.pem
    }

    /// The uncompressed point.
    pub(super) fn point(&self) -> &[u8] {
        &self.point
    }

    /// The TUF key id.
    pub(super) fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// Why sigstore-tuf could not use a key, without the key id it computed
/// (the declared one is what reports name) and with the underlying cause.
fn reason(e: &sigstore_tuf::Error) -> String {
    match e {
        sigstore_tuf::Error::UnusableKey { reason, .. } => reason.clone(),
        sigstore_tuf::Error::Crypto(cause) => cause.to_string(),
        other => other.to_string(),
    }
}

/// Checks that `sec1` is an uncompressed P-256 point's encoding (not that it
/// is on the curve: ring does that when verifying).
fn point(sec1: &[u8]) -> Result<[u8; POINT_LEN], KeyError> {
    match sec1.first() {
        Some(0x04) => {}
        Some(0x02 | 0x03) => {
            return Err(KeyError::BadPublicKey(
                "a compressed P-256 point; onionpkg needs the uncompressed form".into(),
            ));
        }
        _ => {
            return Err(KeyError::BadPublicKey(
                "not an uncompressed P-256 point (it must start with 04)".into(),
            ));
        }
    }
    sec1.try_into().map_err(|_| {
        KeyError::BadPublicKey(format!(
            "a P-256 point is {POINT_LEN} bytes uncompressed, not {}",
            sec1.len()
        ))
    })
}

/// PEM text: base64 in lines of 64 characters, `\n` line ends, as
/// securesystemslib (through `cryptography`) writes it.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII: every index is a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Verifies a DER signature over SHA-256 of `msg` (TUF's encoding) by the
/// key with uncompressed point `point`.
pub(super) fn verify_der(point: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
    crate::crypto::p256_der(point, msg, sig).map_err(|_| KeyError::BadSignature)
}

/// Verifies a fixed-width signature `r || s` (32 bytes each, big-endian)
/// over SHA-256 of `msg`.
pub(super) fn verify_fixed(point: &[u8], msg: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
    crate::crypto::p256_fixed(point, msg, sig).map_err(|_| KeyError::BadSignature)
}
