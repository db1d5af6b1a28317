//! The file backend: one encrypted key file per role, for small setups.
//!
//! `KEY_DIR/onionpkg-ROLE.key` is a PKCS#8 PEM file encrypted (scrypt,
//! AES-256) with the passphrase in `PASSPHRASE_DIR/ROLE.passphrase`, written
//! and read by the trust layer's [`SecretKey`].
//!
//! # Invariants
//! - These keys can be copied by whoever reads the files and the
//!   passphrases: the signer says so at start (a warning).
//! - A passphrase is read only when its role's key is first used, and wiped
//!   after decrypting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use onionpkg_trust::sign::SecretKey;
use zeroize::Zeroizing;

use crate::keys::{KeyRole, RoleKey};
use crate::{Error, Result};

/// The key files of a file backend.
#[derive(Debug)]
pub struct KeyFiles {
    key_dir: PathBuf,
    passphrase_dir: PathBuf,
    keys: HashMap<KeyRole, SecretKey>,
}

impl KeyFiles {
    /// Keys in `key_dir`, passphrases in `passphrase_dir`.
    pub fn new(key_dir: &Path, passphrase_dir: &Path) -> Self {
        Self {
            key_dir: key_dir.to_path_buf(),
            passphrase_dir: passphrase_dir.to_path_buf(),
            keys: HashMap::new(),
        }
    }

    fn path(&self, role: KeyRole) -> PathBuf {
        self.key_dir.join(format!("{}.key", role.label()))
    }

    fn passphrase(&self, role: KeyRole) -> Result<Zeroizing<Vec<u8>>> {
        let path = self
            .passphrase_dir
            .join(format!("{}.passphrase", role.name()));
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| Error::Secret {
            what: format!("{role} passphrase"),
            reason: format!("{}: {e}", path.display()),
        })?);
        let end = bytes
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(Error::Secret {
                what: format!("{role} passphrase"),
                reason: format!("{} is empty", path.display()),
            });
        }
        Ok(Zeroizing::new(bytes[..end].to_vec()))
    }

    /// Makes `role`'s key file; refuses if it exists.
    pub fn generate(&mut self, role: KeyRole) -> Result<RoleKey> {
        let path = self.path(role);
        if path.exists() {
            return Err(Error::KeyExists {
                role: role.to_string(),
                store: self.key_dir.display().to_string(),
            });
        }
        let pass = self.passphrase(role)?;
        std::fs::create_dir_all(&self.key_dir).map_err(Error::io("creating", &self.key_dir))?;
        let key = SecretKey::generate();
        key.write_file(&path, Some(&pass))?;
        tracing::info!(role = %role, path = %path.display(), "made an encrypted key file");
        self.key(role)
    }

    /// The public key of `role`, decrypting its file once.
    pub fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        if let Some(k) = self.keys.get(&role) {
            return Ok(RoleKey {
                role,
                public: k.public(),
            });
        }
        let path = self.path(role);
        if !path.exists() {
            return Err(Error::KeyMissing {
                role: role.to_string(),
                store: self.key_dir.display().to_string(),
            });
        }
        let pass = self.passphrase(role)?;
        let key = SecretKey::read_file(&path, Some(&pass))?;
        let public = key.public();
        self.keys.insert(role, key);
        Ok(RoleKey { role, public })
    }

    /// Signs `msg` with `role`'s key.
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.key(role)?;
        self.keys
            .get(&role)
            .map(|k| k.sign(msg).to_vec())
            .ok_or_else(|| Error::KeyMissing {
                role: role.to_string(),
                store: self.key_dir.display().to_string(),
            })
    }
}
