//! The key stores behind one interface: a PKCS#11 token or key files.
//!
//! # Invariants
//! - A [`KeyStore`] is opened only in the key-holding process (and by
//!   `keys generate`), never in the process that reads requests.
//! - The file backend warns at every open that its keys are exportable.

use onionpkg_config::signer::{BackendConfig, BackendKind};

use crate::keyfile::KeyFiles;
use crate::keys::{KeyKind, KeyRole, RoleKey};
use crate::token::{Token, read_pin};
use crate::{Error, Result};

/// Where the private keys live.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyStore {
    /// In a PKCS#11 token, not exportable.
    Token(Token),
    /// In encrypted files.
    Files(KeyFiles),
}

impl KeyStore {
    /// Opens the configured key store (logs in to the token).
    pub fn open(cfg: &BackendConfig) -> Result<Self> {
        let missing = |key: &str| Error::Invalid(format!("backend.{key} is not configured"));
        match cfg.kind {
            BackendKind::Pkcs11 => {
                let module = cfg.module.as_deref().ok_or_else(|| missing("module"))?;
                let label = cfg.token.as_deref().ok_or_else(|| missing("token"))?;
                let pin = read_pin(cfg.pin_file.as_deref(), cfg.pin_env.as_deref())?;
                Ok(Self::Token(Token::open(module, label, pin)?))
            }
            BackendKind::File => {
                let keys = cfg.key_dir.as_deref().ok_or_else(|| missing("key_dir"))?;
                let pass = cfg
                    .passphrase_dir
                    .as_deref()
                    .ok_or_else(|| missing("passphrase_dir"))?;
                tracing::warn!(
                    key_dir = %keys.display(),
                    "the file backend keeps keys in files: whoever reads them and the \
                     passphrases can copy the keys; use a PKCS#11 token to make them unexportable"
                );
                Ok(Self::Files(KeyFiles::new(keys, pass)))
            }
        }
    }

    /// Makes `role`'s key of `kind`; refuses if one exists, and refuses an
    /// ECDSA log key (checkpoints are signed notes, which are ed25519).
    pub fn generate(&mut self, role: KeyRole, kind: KeyKind) -> Result<RoleKey> {
        if role == KeyRole::Log && kind != KeyKind::Ed25519 {
            return Err(Error::Invalid(format!(
                "the log key signs C2SP signed notes, which are ed25519; not {kind}"
            )));
        }
        match self {
            Self::Token(t) => t.generate(role, kind),
            Self::Files(f) => f.generate(role, kind),
        }
    }

    /// `role`'s public key, after the checks of the store.
    pub fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        match self {
            Self::Token(t) => t.key(role),
            Self::Files(f) => f.key(role),
        }
    }

    /// Signs `msg` with `role`'s key, in the TUF encoding of its kind.
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Token(t) => t.sign(role, msg),
            Self::Files(f) => f.sign(role, msg),
        }
    }
}
