//! The cryptographic provider installed into `sigstore-crypto`.
//!
//! `sigstore-crypto` is built without its aws-lc backend (a C build we do not
//! need), so it has no provider until we install one, and the first signature
//! check would panic. [`install`] registers ours: ed25519 with
//! `ed25519-dalek`'s `verify_strict` (which refuses weak keys and malleable
//! signatures), ECDSA P-256 with SHA-256 (`ecdsa-sha2-nistp256`, DER
//! signatures) with `ring`, and SHA-2 from `sha2`. Every verifying entry point
//! of this crate calls [`install`] first, so callers never have to remember it.
//!
//! Only these two schemes are accepted: ed25519, which onionpkg's own tools
//! make, and ECDSA P-256, the one hardware tokens and cloud KMSs sign with; a
//! smaller provider is a smaller attack surface. A signature of any other
//! scheme (RSA, P-384, ML-DSA, ...) fails its check and so counts towards no
//! threshold; `keys::PublicKey::from_tuf` names such a scheme where
//! a role's keys are read.

use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use sha2::Digest;
use sigstore_crypto::{CryptoProvider, HashContext, SigningScheme};
use sigstore_types::HashAlgorithm;

/// Our provider: ed25519 and ECDSA P-256 verification and SHA-2, nothing else.
#[derive(Debug)]
struct Provider;

static PROVIDER: Provider = Provider;

/// Installs our provider into `sigstore-crypto`, once per process.
///
/// Idempotent. If some other provider was installed first (nothing in
/// onionpkg does that), it stays, and our tests would catch it.
pub fn install() {
    let _ = sigstore_crypto::install_default_provider(&PROVIDER);
}

struct Hasher<D: Digest + Send>(D);

impl<D: Digest + Send> HashContext for Hasher<D> {
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finalize(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

impl CryptoProvider for Provider {
    fn hash(&self, algorithm: HashAlgorithm) -> sigstore_crypto::Result<Box<dyn HashContext>> {
        Ok(match algorithm {
            HashAlgorithm::Sha2256 => Box::new(Hasher(sha2::Sha256::new())),
            HashAlgorithm::Sha2384 => Box::new(Hasher(sha2::Sha384::new())),
            HashAlgorithm::Sha2512 => Box::new(Hasher(sha2::Sha512::new())),
            #[allow(unreachable_patterns, reason = "the enum may grow")]
            other => {
                return Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
                    "{other:?}"
                )));
            }
        })
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        // sigstore-crypto hands over the key's raw bytes (the subject public
        // key of the SubjectPublicKeyInfo): 32 bytes for ed25519, the
        // uncompressed point for P-256.
        let verified = match scheme {
            SigningScheme::Ed25519 => ed25519(spki_pubkey_bytes, data, signature),
            SigningScheme::EcdsaP256Sha256 => p256_der(spki_pubkey_bytes, data, signature),
            other => {
                return Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
                    "{other:?}"
                )));
            }
        };
        verified.map_err(|e| sigstore_crypto::Error::Verification(e.to_string()))
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        _spki_pubkey_bytes: &[u8],
        _digest: &[u8],
        _signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
            "prehashed {scheme:?}"
        )))
    }
}

/// A signature the primitives refuse: it does not verify, or the key could
/// not verify anything. They say no more, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify")]
pub(crate) struct Rejected;

/// ed25519 (RFC 8032) by a raw 32-byte key, strictly: small-order keys and
/// malleable signatures are refused.
pub(crate) fn ed25519(raw_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Rejected> {
    let key: [u8; 32] = raw_key.try_into().map_err(|_| Rejected)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| Rejected)?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| Rejected)?;
    key.verify_strict(msg, &sig).map_err(|_| Rejected)
}

/// ECDSA P-256 over SHA-256 of `msg`, a DER signature, by an uncompressed
/// SEC1 point.
pub(crate) fn p256_der(point: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Rejected> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(msg, sig)
        .map_err(|_| Rejected)
}

/// ECDSA P-256 over SHA-256 of `msg`, a fixed-width `r || s` signature (32
/// bytes each, big-endian), by an uncompressed SEC1 point.
pub(crate) fn p256_fixed(point: &[u8], msg: &[u8], sig: &[u8; 64]) -> Result<(), Rejected> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(msg, sig)
        .map_err(|_| Rejected)
}
