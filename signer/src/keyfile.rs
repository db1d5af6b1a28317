//! The file backend: one encrypted key file per role, for small setups.
//!
//! `KEY_DIR/onionpkg-ROLE.key` is a PKCS#8 PEM file encrypted (scrypt,
//! AES-256) with the passphrase in `PASSPHRASE_DIR/ROLE.passphrase`: an
//! ed25519 key written and read by the trust layer's [`SecretKey`], or an
//! ECDSA P-256 key (`id-ecPublicKey` on prime256v1, the same encryption)
//! through `p256`. The kind is the one asked for at `keys generate`, and is
//! read back from the key's PKCS#8 algorithm.
//!
//! # Invariants
//! - These keys can be copied by whoever reads the files and the
//!   passphrases: the signer says so at start (a warning).
//! - A passphrase is read only when its role's key is first used, and wiped
//!   after decrypting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::SecretKey;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use pkcs8::der::Document;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo, SecretDocument};
use zeroize::Zeroizing;

use crate::keys::{KeyKind, KeyRole, RoleKey};
use crate::{Error, Result};

/// A private key read from a key file.
enum FileKey {
    Ed25519(SecretKey),
    EcdsaP256(SigningKey),
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: the kind and the key id.
        write!(f, "FileKey({} {})", self.kind(), self.public().key_id())
    }
}

impl FileKey {
    fn kind(&self) -> KeyKind {
        match self {
            Self::Ed25519(_) => KeyKind::Ed25519,
            Self::EcdsaP256(_) => KeyKind::EcdsaP256,
        }
    }

    fn public(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => k.public(),
            Self::EcdsaP256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                #[allow(
                    clippy::expect_used,
                    reason = "p256's own uncompressed point is always 65 bytes starting with 04"
                )]
                PublicKey::from_ecdsa_p256_point(point.as_bytes()).expect("a P-256 point")
            }
        }
    }

    /// Signs in the TUF encoding of the key's kind: ed25519's 64 bytes, or
    /// the DER of an ECDSA P-256 signature over SHA-256 of `msg` (RFC 6979
    /// nonces).
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.sign(msg).to_vec(),
            Self::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// An encrypted PKCS#8 PEM file of a fresh P-256 key.
fn new_p256_file(passphrase: &[u8]) -> Result<Zeroizing<String>> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("a new P-256 key file: {e}"));
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let der = key.to_pkcs8_der().map_err(|e| bad(&e))?;
    let info = PrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| bad(&e))?;
    let encrypted = info
        .encrypt(rand_core::OsRng, passphrase)
        .map_err(|e| bad(&e))?;
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| bad(&e))
}

/// Reads a key file of either kind: its PKCS#8 algorithm says which.
fn read_key_file(path: &Path, passphrase: &[u8]) -> Result<FileKey> {
    let unusable = |reason: &str| Error::KeyUnusable {
        label: path.display().to_string(),
        reason: reason.to_string(),
    };
    let bytes = Zeroizing::new(std::fs::read(path).map_err(Error::io("reading", path))?);
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
        }
    }
    let pem = std::str::from_utf8(&bytes).map_err(|_| unusable("not a PEM text file"))?;
    let (label, doc) = Document::from_pem(pem).map_err(|_| unusable("not a PEM file"))?;
    let plain: SecretDocument = match label {
        "ENCRYPTED PRIVATE KEY" => EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|_| unusable("not an encrypted PKCS#8 key"))?
            .decrypt(passphrase)
            .map_err(|_| unusable("wrong passphrase, or the file is damaged"))?,
        "PRIVATE KEY" => {
            SecretDocument::try_from(doc.as_bytes()).map_err(|_| unusable("not a PKCS#8 key"))?
        }
        _ => return Err(unusable("not a PKCS#8 private key")),
    };
    let info =
        PrivateKeyInfo::try_from(plain.as_bytes()).map_err(|_| unusable("not a PKCS#8 key"))?;
    if info.algorithm.oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
        // The trust layer's reader, on the decrypted form (no second scrypt).
        let pem = plain
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|_| unusable("not a PKCS#8 key"))?;
        let key = SecretKey::from_pem(&pem, None, path).map_err(onionpkg_trust::Error::from)?;
        return Ok(FileKey::Ed25519(key));
    }
    p256::SecretKey::from_pkcs8_der(plain.as_bytes())
        .map(|k| FileKey::EcdsaP256(SigningKey::from(k)))
        .map_err(|_| unusable("neither an ed25519 nor an ECDSA P-256 private key"))
}

/// The key files of a file backend.
#[derive(Debug)]
pub struct KeyFiles {
    key_dir: PathBuf,
    passphrase_dir: PathBuf,
    keys: HashMap<KeyRole, FileKey>,
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

    /// Makes `role`'s key file with a key of `kind`; refuses if it exists.
    pub fn generate(&mut self, role: KeyRole, kind: KeyKind) -> Result<RoleKey> {
        let path = self.path(role);
        if path.exists() {
            return Err(Error::KeyExists {
                role: role.to_string(),
                store: self.key_dir.display().to_string(),
            });
        }
        let pass = self.passphrase(role)?;
        std::fs::create_dir_all(&self.key_dir).map_err(Error::io("creating", &self.key_dir))?;
        match kind {
            KeyKind::Ed25519 => SecretKey::generate().write_file(&path, Some(&pass))?,
            KeyKind::EcdsaP256 => {
                let pem = new_p256_file(&pass)?;
                onionpkg_trust::util::write_atomic(&path, pem.as_bytes(), Some(0o600))?;
            }
        }
        tracing::info!(role = %role, kind = %kind, path = %path.display(), "made an encrypted key file");
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
        let key = read_key_file(&path, &pass)?;
        let public = key.public();
        self.keys.insert(role, key);
        Ok(RoleKey { role, public })
    }

    /// Signs `msg` with `role`'s key.
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.key(role)?;
        self.keys
            .get(&role)
            .map(|k| k.sign(msg))
            .ok_or_else(|| Error::KeyMissing {
                role: role.to_string(),
                store: self.key_dir.display().to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use onionpkg_trust::keys::Algorithm;

    use super::*;

    /// A key and a passphrase directory with a passphrase for `role`.
    fn files(role: KeyRole) -> (tempfile::TempDir, KeyFiles) {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::create_dir_all(&pass).unwrap();
        std::fs::write(pass.join(format!("{}.passphrase", role.name())), "s3cret\n").unwrap();
        let f = KeyFiles::new(&dir.path().join("keys"), &pass);
        (dir, f)
    }

    #[test]
    fn a_p256_key_file_is_encrypted_read_back_and_signs_der_that_verifies() {
        let role = KeyRole::Timestamp;
        let (dir, mut f) = files(role);
        let made = f.generate(role, KeyKind::EcdsaP256).unwrap();
        assert_eq!(made.public.algorithm(), Algorithm::EcdsaP256);
        let path = dir.path().join("keys/onionpkg-timestamp.key");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A fresh backend reads it back as the same P-256 key.
        let mut again = KeyFiles::new(&dir.path().join("keys"), &dir.path().join("pass"));
        let read = again.key(role).unwrap();
        assert_eq!(read.key_id(), made.key_id());
        let sig = again.sign(role, b"message").unwrap();
        assert_eq!(sig[0], 0x30, "DER");
        read.public.verify(b"message", &sig).unwrap();
        assert!(read.public.verify(b"other", &sig).is_err());

        // A second key for the role is refused.
        assert!(matches!(
            again.generate(role, KeyKind::EcdsaP256),
            Err(Error::KeyExists { .. })
        ));
    }

    #[test]
    fn ed25519_key_files_still_work_and_a_wrong_passphrase_is_named() {
        let role = KeyRole::Snapshot;
        let (dir, mut f) = files(role);
        let made = f.generate(role, KeyKind::Ed25519).unwrap();
        assert_eq!(made.public.algorithm(), Algorithm::Ed25519);
        let sig = f.sign(role, b"message").unwrap();
        assert_eq!(sig.len(), 64);
        made.public.verify(b"message", &sig).unwrap();

        std::fs::write(dir.path().join("pass/snapshot.passphrase"), "wrong").unwrap();
        let mut again = KeyFiles::new(&dir.path().join("keys"), &dir.path().join("pass"));
        match again.key(role) {
            Err(Error::KeyUnusable { reason, .. }) => {
                assert!(reason.contains("wrong passphrase"), "{reason}")
            }
            other => panic!("expected a wrong passphrase, got {other:?}"),
        }
    }
}
