//! The signer's keys: one per online role, plus the log's checkpoint key.
//!
//! # Invariants
//! - Root has no key here: root is never signed online.
//! - The hashed bins are signed with the `targets` key, as the repository's
//!   delegations say ([`KeyRole::for_role`]); the DNS announcement with the
//!   `timestamp` key.
//! - Key ids are the trust layer's ([`onionpkg_trust::keys::PublicKey`]), so
//!   what `keys generate` prints is what a root or a delegation must list.
//! - A role's key is ed25519 or ECDSA P-256 ([`KeyKind`]), chosen when it is
//!   made; the log key is always ed25519 (signed notes are).

use onionpkg_trust::keys::{Algorithm, PublicKey};
use onionpkg_trust::roles;

/// A key in the key store, by what it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyRole {
    /// The top-level targets role and every hashed bin.
    Targets,
    /// The delegated `mirrors` role.
    Mirrors,
    /// The delegated `feeds` role.
    Feeds,
    /// The snapshot role.
    Snapshot,
    /// The timestamp role and the DNS announcement.
    Timestamp,
    /// The transparency log's checkpoints.
    Log,
}

impl KeyRole {
    /// Every key role, in a fixed order (also the wire code's order).
    pub const ALL: [Self; 6] = [
        Self::Targets,
        Self::Mirrors,
        Self::Feeds,
        Self::Snapshot,
        Self::Timestamp,
        Self::Log,
    ];

    /// The role's name (`targets`, …, `log`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Targets => roles::TARGETS,
            Self::Mirrors => roles::MIRRORS,
            Self::Feeds => roles::FEEDS,
            Self::Snapshot => roles::SNAPSHOT,
            Self::Timestamp => roles::TIMESTAMP,
            Self::Log => "log",
        }
    }

    /// Parses a key role's name; root and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The key that signs TUF role `role` (`bin-XX` → targets); `None` for
    /// root and unknown roles.
    pub fn for_role(role: &str) -> Option<Self> {
        if roles::is_bin(role) {
            return Some(Self::Targets);
        }
        Self::from_name(role).filter(|r| *r != Self::Log)
    }

    /// The one-byte code of the key-holder protocol.
    pub fn code(self) -> u8 {
        match self {
            Self::Targets => 1,
            Self::Mirrors => 2,
            Self::Feeds => 3,
            Self::Snapshot => 4,
            Self::Timestamp => 5,
            Self::Log => 6,
        }
    }

    /// The role of a protocol code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The label (`CKA_LABEL`) and id (`CKA_ID`) of the role's key objects in
    /// a token, and the file stem of the file backend.
    pub fn label(self) -> String {
        format!("onionpkg-{}", self.name())
    }
}

impl std::fmt::Display for KeyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of a signing key, chosen per role when the key is made
/// (`keys generate --key-type`); a key in the store keeps its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyKind {
    /// Ed25519 (`CKM_EDDSA`), TUF `keytype`/`scheme` `ed25519`.
    #[default]
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (`CKM_ECDSA` over the SHA-256
    /// digest), TUF keytype `ecdsa`, scheme `ecdsa-sha2-nistp256`: the
    /// public key as PEM SubjectPublicKeyInfo, signatures DER.
    EcdsaP256,
}

impl KeyKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 2] = [Self::Ed25519, Self::EcdsaP256];

    /// The one-byte code of the key-holder protocol.
    pub fn code(self) -> u8 {
        match self {
            Self::Ed25519 => 1,
            Self::EcdsaP256 => 2,
        }
    }

    /// The kind of a protocol code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The name on the command line (`ed25519`, `ecdsa-p256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// Parses a name of [`KeyKind::name`], or the TUF scheme
    /// (`ecdsa-sha2-nistp256`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(Self::Ed25519),
            "ecdsa-p256" | "ecdsa-sha2-nistp256" => Some(Self::EcdsaP256),
            _ => None,
        }
    }

    /// The kind of a public key the trust layer parsed.
    pub fn of(key: &PublicKey) -> Option<Self> {
        match key.algorithm() {
            Algorithm::Ed25519 => Some(Self::Ed25519),
            Algorithm::EcdsaP256 => Some(Self::EcdsaP256),
            _ => None,
        }
    }

    /// A public key of this kind from its raw form: 32 bytes for ed25519,
    /// the 65-byte uncompressed point for ECDSA P-256.
    pub fn public_key(self, raw: &[u8]) -> Result<PublicKey, onionpkg_trust::keys::KeyError> {
        match self {
            Self::Ed25519 => PublicKey::from_ed25519_bytes(raw),
            Self::EcdsaP256 => PublicKey::from_ecdsa_p256_point(raw),
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A role's public key, as the front process learns it from the key holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKey {
    /// Which role it signs for.
    pub role: KeyRole,
    /// The public key.
    pub public: PublicKey,
}

impl RoleKey {
    /// The TUF key id.
    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    /// The signed-note verifier key of this key under `name` (for the log key:
    /// the log's origin).
    pub fn note_verifier_key(&self, name: &str) -> crate::Result<String> {
        let raw: &[u8; 32] = self
            .public
            .raw_bytes()
            .try_into()
            .map_err(|_| crate::Error::Invalid("the log key is not an ed25519 key".into()))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(raw)
            .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        Ok(signed_note::new_ed25519_verifier_key(name, &vk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_use_the_targets_key_and_root_has_none() {
        assert_eq!(KeyRole::for_role("bin-0a"), Some(KeyRole::Targets));
        assert_eq!(KeyRole::for_role("timestamp"), Some(KeyRole::Timestamp));
        assert_eq!(KeyRole::for_role("root"), None);
        assert_eq!(KeyRole::for_role("log"), None);
        for r in KeyRole::ALL {
            assert_eq!(KeyRole::from_code(r.code()), Some(r));
        }
    }

    #[test]
    fn key_kinds_round_trip_through_codes_and_names() {
        for k in KeyKind::ALL {
            assert_eq!(KeyKind::from_code(k.code()), Some(k));
            assert_eq!(KeyKind::from_name(k.name()), Some(k));
        }
        assert_eq!(
            KeyKind::from_name("ecdsa-sha2-nistp256"),
            Some(KeyKind::EcdsaP256)
        );
        assert_eq!(KeyKind::from_name("rsa"), None);
        assert_eq!(KeyKind::from_code(0), None);
    }
}
