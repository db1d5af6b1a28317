//! Keys in a PKCS#11 token (through `cryptoki`).
//!
//! Each role's key pair is generated inside the token with
//! `CKM_EC_EDWARDS_KEY_PAIR_GEN` on edwards25519, labelled and id'd
//! `onionpkg-ROLE` ([`KeyRole::label`]), with the private half
//! `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`.
//! Signing uses `CKM_EDDSA` (pure Ed25519).
//!
//! # Invariants
//! - A key is used only after [`Token::key`] checked that the token says it
//!   cannot be read out: `CKA_EXTRACTABLE` false, `CKA_SENSITIVE` true,
//!   `CKA_NEVER_EXTRACTABLE` and `CKA_ALWAYS_SENSITIVE` true (so it was never
//!   exportable, not merely locked now), and that it signs what its public
//!   half verifies.
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
use zeroize::Zeroizing;

use crate::keys::{KeyRole, RoleKey};
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

    /// Makes `role`'s key pair inside the token, not extractable, and
    /// returns its public half. Refuses if the role has a key already.
    pub fn generate(&mut self, role: KeyRole) -> Result<RoleKey> {
        if !self.find(ObjectClass::PRIVATE_KEY, role)?.is_empty()
            || !self.find(ObjectClass::PUBLIC_KEY, role)?.is_empty()
        {
            return Err(Error::KeyExists {
                role: role.to_string(),
                store: self.store(),
            });
        }
        let label = role.label().into_bytes();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_OID.to_vec()),
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
            .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
            .map_err(Error::token(format!("generating the {role} key")))?;
        tracing::info!(role = %role, token = %self.label, "made a key in the token");
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
        self.check_private(&label, private)?;
        let point = self
            .session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(Error::token(format!("reading the public key {label:?}")))?;
        let raw = point
            .iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p.clone()),
                _ => None,
            })
            .ok_or_else(|| Error::KeyUnusable {
                label: label.clone(),
                reason: "the public key has no CKA_EC_POINT".into(),
            })?;
        let public_key = ed25519_point(&raw).ok_or_else(|| Error::KeyUnusable {
            label: label.clone(),
            reason: "CKA_EC_POINT is not an ed25519 public key".into(),
        })?;
        let key = RoleKey {
            role,
            public: public_key,
        };
        let sig = self.sign_with(private, SELF_TEST, &label)?;
        key.public
            .verify(SELF_TEST, &sig)
            .map_err(|_| Error::KeyUnusable {
                label: label.clone(),
                reason: "its signatures do not verify with the public key of the same label".into(),
            })?;
        self.keys.insert(role, (private, key.clone()));
        Ok(key)
    }

    /// Refuses a private key the token would let out.
    fn check_private(&self, label: &str, key: ObjectHandle) -> Result<()> {
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
        if key_type != Some(KeyType::EC_EDWARDS) {
            return Err(Error::KeyUnusable {
                label: label.to_string(),
                reason: format!("not an ed25519 key ({key_type:?})"),
            });
        }
        Ok(())
    }

    fn sign_with(&self, key: ObjectHandle, msg: &[u8], label: &str) -> Result<Vec<u8>> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        self.session
            .sign(&mechanism, key, msg)
            .map_err(Error::token(format!("signing with {label:?}")))
    }

    /// Signs `msg` with `role`'s key (checked first if not yet).
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.key(role)?;
        let (handle, _) = self
            .keys
            .get(&role)
            .cloned()
            .ok_or_else(|| Error::KeyMissing {
                role: role.to_string(),
                store: self.store(),
            })?;
        self.sign_with(handle, msg, &role.label())
    }
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
