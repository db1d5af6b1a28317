//! Keys in a PKCS#11 token (through `cryptoki`).
//!
//! Each role's key pair is generated inside the token, labelled and id'd
//! `onionpkg-ROLE` ([`KeyRole::label`]), with the private half
//! `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`,
//! of the kind asked for ([`KeyKind`]):
//! - ed25519: `CKM_EC_EDWARDS_KEY_PAIR_GEN` on edwards25519; signing uses
//!   `CKM_EDDSA` (pure Ed25519);
//! - ECDSA P-256: `CKM_EC_KEY_PAIR_GEN` with `CKA_EC_PARAMS` the OID of
//!   prime256v1; signing uses `CKM_ECDSA` over the SHA-256 digest of the
//!   message (computed here: every token that does P-256 has `CKM_ECDSA`,
//!   not all have `CKM_ECDSA_SHA256`), and the token's fixed-width `r || s`
//!   becomes the DER signature TUF's `ecdsa-sha2-nistp256` wants.
//!
//! # Invariants
//! - A key is used only after [`Token::key`] checked that the token says it
//!   cannot be read out: `CKA_EXTRACTABLE` false, `CKA_SENSITIVE` true,
//!   `CKA_NEVER_EXTRACTABLE` and `CKA_ALWAYS_SENSITIVE` true (so it was never
//!   exportable, not merely locked now), that it is ed25519 or ECDSA on
//!   P-256 (no other curve), and that it signs what its public half
//!   verifies.
//! - The PIN is wiped once the login is done and never logged.
//! - Only the key-holding process and `keys generate` open a token.

use std::collections::HashMap;
use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use onionpkg_trust::keys::PublicKey;
use pkcs8::AssociatedOid as _;
use pkcs8::der::{Decode as _, Encode as _, asn1::OctetStringRef};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::keys::{KeyKind, KeyRole, RoleKey};
use crate::{Error, Result};

/// DER of the object identifier of Ed25519 (1.3.101.112, RFC 8410), the
/// `CKA_EC_PARAMS` of an edwards25519 key.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// The message signed at start to check that a key pair belongs together.
const SELF_TEST: &[u8] = b"onionpkg-signer key self-test";

/// An open, logged-in session on the token holding the signer's keys.
pub struct Token {
    // Dropped after the session: the context must outlive it.
    session: Session,
    _ctx: Pkcs11,
    label: String,
    keys: HashMap<KeyRole, (ObjectHandle, RoleKey)>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.label).finish()
    }
}

impl Token {
    /// Loads `module`, finds the token labelled `label` and logs in as the
    /// user with `pin`.
    pub fn open(module: &Path, label: &str, pin: Zeroizing<String>) -> Result<Self> {
        let ctx = Pkcs11::new(module).map_err(Error::token(format!(
            "loading the module {}",
            module.display()
        )))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(Error::token("initializing the module"))?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(Error::token("listing the slots"))?;
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(Error::token("reading a token's information"))?;
            if info.label().trim_end() == label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| Error::KeyUnusable {
            label: label.to_string(),
            reason: format!("no token with this label behind {}", module.display()),
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(Error::token("opening a session"))?;
        let pin = AuthPin::from(String::from(pin.as_str()));
        session
            .login(UserType::User, Some(&pin))
            .map_err(Error::token(format!("logging in to token {label:?}")))?;
        Ok(Self {
            session,
            _ctx: ctx,
            label: label.to_string(),
            keys: HashMap::new(),
        })
    }

    fn store(&self) -> String {
        format!("token {:?}", self.label)
    }

    fn find(&self, class: ObjectClass, role: KeyRole) -> Result<Vec<ObjectHandle>> {
        self.session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(role.label().into_bytes()),
            ])
            .map_err(Error::token(format!("finding the {role} key")))
    }

    /// Makes `role`'s key pair of `kind` inside the token, not extractable,
    /// and returns its public half. Refuses if the role has a key already.
    pub fn generate(&mut self, role: KeyRole, kind: KeyKind) -> Result<RoleKey> {
        if !self.find(ObjectClass::PRIVATE_KEY, role)?.is_empty()
            || !self.find(ObjectClass::PUBLIC_KEY, role)?.is_empty()
        {
            return Err(Error::KeyExists {
                role: role.to_string(),
                store: self.store(),
            });
        }
        let label = role.label().into_bytes();
        let (mechanism, params) = match kind {
            KeyKind::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, ED25519_OID.to_vec()),
            KeyKind::EcdsaP256 => (Mechanism::EccKeyPairGen, p256_params()?),
        };
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ];
        self.session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(Error::token(format!("generating the {role} key ({kind})")))?;
        tracing::info!(role = %role, kind = %kind, token = %self.label, "made a key in the token");
        self.key(role)
    }

    /// The public key of `role`, after checking (once) that its private half
    /// cannot leave the token and that the pair signs and verifies.
    pub fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        if let Some((_, key)) = self.keys.get(&role) {
            return Ok(key.clone());
        }
        let label = role.label();
        let one = |found: Vec<ObjectHandle>, what: &str| -> Result<ObjectHandle> {
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(Error::KeyMissing {
                    role: role.to_string(),
                    store: self.store(),
                }),
                _ => Err(Error::KeyUnusable {
                    label: label.clone(),
                    reason: format!("{} {what} objects carry this label; keep one", found.len()),
                }),
            }
        };
        let private = one(self.find(ObjectClass::PRIVATE_KEY, role)?, "private key")?;
        let public = one(self.find(ObjectClass::PUBLIC_KEY, role)?, "public key")?;
        let kind = self.check_private(&label, private)?;
        let attrs = self
            .session
            .get_attributes(public, &[AttributeType::EcPoint, AttributeType::EcParams])
            .map_err(Error::token(format!("reading the public key {label:?}")))?;
        let unusable = |reason: &str| Error::KeyUnusable {
            label: label.clone(),
            reason: reason.to_string(),
        };
        let raw = attrs
            .iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p.clone()),
                _ => None,
            })
            .ok_or_else(|| unusable("the public key has no CKA_EC_POINT"))?;
        let public_key = match kind {
            KeyKind::Ed25519 => ed25519_point(&raw)
                .ok_or_else(|| unusable("CKA_EC_POINT is not an ed25519 public key"))?,
            KeyKind::EcdsaP256 => {
                let params = attrs.iter().find_map(|a| match a {
                    Attribute::EcParams(p) => Some(p.clone()),
                    _ => None,
                });
                if params != Some(p256_params()?) {
                    return Err(unusable(
                        "an ECDSA key on another curve than P-256 (CKA_EC_PARAMS)",
                    ));
                }
                p256_point(&raw)
                    .ok_or_else(|| unusable("CKA_EC_POINT is not a P-256 public key"))?
            }
        };
        let key = RoleKey {
            role,
            public: public_key,
        };
        let sig = self.sign_with(private, kind, SELF_TEST, &label)?;
        key.public
            .verify(SELF_TEST, &sig)
            .map_err(|_| Error::KeyUnusable {
                label: label.clone(),
                reason: "its signatures do not verify with the public key of the same label".into(),
            })?;
        self.keys.insert(role, (private, key.clone()));
        Ok(key)
    }

    /// Refuses a private key the token would let out; returns its kind.
    fn check_private(&self, label: &str, key: ObjectHandle) -> Result<KeyKind> {
        let attrs = self
            .session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                ],
            )
            .map_err(Error::token(format!("reading the attributes of {label:?}")))?;
        let flag = |want: AttributeType| -> Option<bool> {
            attrs.iter().find_map(|a| match (a, want) {
                (Attribute::Extractable(b), AttributeType::Extractable)
                | (Attribute::Sensitive(b), AttributeType::Sensitive)
                | (Attribute::NeverExtractable(b), AttributeType::NeverExtractable)
                | (Attribute::AlwaysSensitive(b), AttributeType::AlwaysSensitive) => Some(*b),
                _ => None,
            })
        };
        let exportable = |attribute| Error::KeyExportable {
            label: label.to_string(),
            attribute,
        };
        // An attribute the token does not report counts as the unsafe value.
        if flag(AttributeType::Extractable) != Some(false) {
            return Err(exportable("CKA_EXTRACTABLE=true"));
        }
        if flag(AttributeType::Sensitive) != Some(true) {
            return Err(exportable("CKA_SENSITIVE=false"));
        }
        if flag(AttributeType::NeverExtractable) != Some(true) {
            return Err(exportable("CKA_NEVER_EXTRACTABLE=false"));
        }
        if flag(AttributeType::AlwaysSensitive) != Some(true) {
            return Err(exportable("CKA_ALWAYS_SENSITIVE=false"));
        }
        let key_type = attrs.iter().find_map(|a| match a {
            Attribute::KeyType(t) => Some(*t),
            _ => None,
        });
        match key_type {
            Some(KeyType::EC_EDWARDS) => Ok(KeyKind::Ed25519),
            Some(KeyType::EC) => Ok(KeyKind::EcdsaP256),
            other => Err(Error::KeyUnusable {
                label: label.to_string(),
                reason: format!("neither an ed25519 nor an ECDSA P-256 key ({other:?})"),
            }),
        }
    }

    /// Signs `msg` in the TUF encoding of `kind`: ed25519's 64 bytes, or
    /// for ECDSA P-256 the DER of the token's `r || s` over SHA-256 of `msg`.
    fn sign_with(
        &self,
        key: ObjectHandle,
        kind: KeyKind,
        msg: &[u8],
        label: &str,
    ) -> Result<Vec<u8>> {
        let failed = || Error::token(format!("signing with {label:?}"));
        match kind {
            KeyKind::Ed25519 => {
                let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                self.session.sign(&mechanism, key, msg).map_err(failed())
            }
            KeyKind::EcdsaP256 => {
                let digest = Sha256::digest(msg);
                let fixed = self
                    .session
                    .sign(&Mechanism::Ecdsa, key, &digest)
                    .map_err(failed())?;
                let sig =
                    p256::ecdsa::Signature::from_slice(&fixed).map_err(|_| Error::KeyUnusable {
                        label: label.to_string(),
                        reason: format!(
                            "the token's ECDSA signature is {} bytes, not r || s of 32 each",
                            fixed.len()
                        ),
                    })?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// Signs `msg` with `role`'s key (checked first if not yet), in the
    /// TUF encoding of its kind.
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.key(role)?;
        let (handle, key) = self
            .keys
            .get(&role)
            .cloned()
            .ok_or_else(|| Error::KeyMissing {
                role: role.to_string(),
                store: self.store(),
            })?;
        let kind = KeyKind::of(&key.public).ok_or_else(|| Error::KeyUnusable {
            label: role.label(),
            reason: "a key of a kind the signer does not hold".into(),
        })?;
        self.sign_with(handle, kind, msg, &role.label())
    }
}

/// `CKA_EC_PARAMS` of a P-256 key: the DER of the curve's object identifier
/// (prime256v1, 1.2.840.10045.3.1.7).
fn p256_params() -> Result<Vec<u8>> {
    p256::NistP256::OID
        .to_der()
        .map_err(|e| Error::Invalid(format!("encoding the P-256 curve's OID: {e}")))
}

/// The public key of a P-256 `CKA_EC_POINT`: the uncompressed point in a
/// DER OCTET STRING (what PKCS#11 specifies and SoftHSM2 gives), or bare.
fn p256_point(raw: &[u8]) -> Option<PublicKey> {
    let bytes = match OctetStringRef::from_der(raw) {
        Ok(inner) => inner.as_bytes(),
        Err(_) => raw,
    };
    // The point must lie on the curve, not merely be 65 bytes.
    p256::PublicKey::from_sec1_bytes(bytes).ok()?;
    PublicKey::from_ecdsa_p256_point(bytes).ok()
}

/// The 32 key bytes of an edwards25519 `CKA_EC_POINT`: DER OCTET STRING
/// (what SoftHSM2 and most tokens give) or raw.
fn ed25519_point(raw: &[u8]) -> Option<PublicKey> {
    let bytes = match raw {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        _ if raw.len() == 32 => raw,
        _ => return None,
    };
    PublicKey::from_ed25519_bytes(bytes).ok()
}

/// Reads the token's PIN: from a file (a trailing newline dropped) or an
/// environment variable.
pub fn read_pin(file: Option<&Path>, env: Option<&str>) -> Result<Zeroizing<String>> {
    let secret = |reason: String| Error::Secret {
        what: "token PIN".into(),
        reason,
    };
    let pin = match (file, env) {
        (Some(path), _) => {
            let bytes = Zeroizing::new(
                std::fs::read(path).map_err(|e| secret(format!("{}: {e}", path.display())))?,
            );
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| secret(format!("{} is not UTF-8 text", path.display())))?;
            Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string())
        }
        (None, Some(var)) => Zeroizing::new(
            std::env::var(var)
                .map_err(|_| secret(format!("the environment variable {var} is not set")))?,
        ),
        (None, None) => return Err(secret("no pin_file or pin_env is configured".into())),
    };
    if pin.is_empty() {
        return Err(secret("it is empty".into()));
    }
    Ok(pin)
}
