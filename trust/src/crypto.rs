//! The cryptographic provider installed into `sigstore-crypto`.
//!
//! `sigstore-crypto` is built without its aws-lc backend (a C build we do not
//! need), so it has no provider until we install one, and the first signature
//! check would panic. [`install`] registers ours: ed25519 with
//! `ed25519-dalek`'s `verify_strict` (which refuses weak keys and malleable
//! signatures) and SHA-2 from `sha2`. Every verifying entry point of this crate
//! calls [`install`] first, so callers never have to remember it.
//!
//! Only ed25519 is accepted: onionpkg makes only ed25519 keys, and a smaller
//! provider is a smaller attack surface. Metadata that names another scheme
//! fails its signature check and so counts towards no threshold.

use sha2::Digest;
use sigstore_crypto::{CryptoProvider, HashContext, SigningScheme};
use sigstore_types::HashAlgorithm;

/// Our provider: ed25519 verification and SHA-2, nothing else.
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
        if !matches!(scheme, SigningScheme::Ed25519) {
            return Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
                "{scheme:?}"
            )));
        }
        crate::keys::verify_ed25519(spki_pubkey_bytes, data, signature)
            .map_err(|e| sigstore_crypto::Error::Verification(e.to_string()))
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
