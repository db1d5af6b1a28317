//! An ECDSA P-256 signer for tests: onionpkg verifies ECDSA P-256 but its
//! tools make ed25519 keys only, so tests sign with ring directly.

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};

use super::PublicKey;

/// A fresh P-256 key pair.
pub(crate) struct P256Signer {
    der: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
    rng: SystemRandom,
}

impl P256Signer {
    /// Makes a fresh key.
    pub(crate) fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let der = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let fixed =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap();
        Self { der, fixed, rng }
    }

    /// The public key, declared as securesystemslib declares it.
    pub(crate) fn public(&self) -> PublicKey {
        PublicKey::from_ecdsa_p256_point(self.der.public_key().as_ref()).unwrap()
    }

    /// A signature in TUF's encoding: DER over SHA-256 of `msg`.
    pub(crate) fn sign_der(&self, msg: &[u8]) -> Vec<u8> {
        self.der.sign(&self.rng, msg).unwrap().as_ref().to_vec()
    }

    /// A signature in the fixed form `r || s`.
    pub(crate) fn sign_fixed(&self, msg: &[u8]) -> [u8; 64] {
        self.fixed
            .sign(&self.rng, msg)
            .unwrap()
            .as_ref()
            .try_into()
            .unwrap()
    }
}
