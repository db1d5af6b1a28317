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
//! threshold; [`crate::keys::PublicKey::from_tuf`] names such a scheme where
//! a role's keys are read.

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
            SigningScheme::Ed25519 => {
                crate::keys::verify_ed25519(spki_pubkey_bytes, data, signature)
            }
            SigningScheme::EcdsaP256Sha256 => {
                crate::keys::verify_ecdsa_p256(spki_pubkey_bytes, data, signature)
            }
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
