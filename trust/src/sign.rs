//! Private keys and signing (feature `signing`: the release side only).
//!
//! A key file is a PKCS#8 PEM document holding an ed25519 private key, either
//! plain (`PRIVATE KEY`) or passphrase-encrypted (`ENCRYPTED PRIVATE KEY`,
//! PBES2 with scrypt and AES-256-CBC), the format `openssl` reads too. Files
//! are written with mode 0600, atomically. Secrets are wiped from memory when
//! dropped, never logged, and never shown: `Debug` prints the key id only.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey};
use pkcs8::LineEnding;
use zeroize::Zeroizing;

use crate::keys::{KeyError, PublicKey};
use crate::Result;

/// An ed25519 private key.
pub struct SecretKey {
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().key_id())
    }
}

impl SecretKey {
    /// Makes a fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        #[allow(clippy::expect_used, reason = "dalek's own verifying key is always valid")]
        PublicKey::from_bytes(self.key.verifying_key().as_bytes()).expect("a valid ed25519 key")
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// The key file contents: PKCS#8 PEM, encrypted when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        let bad = |reason: String| KeyError::BadKeyFile {
            path: Path::new("<new key>").to_path_buf(),
            reason,
        };
        let der = self.key.to_pkcs8_der().map_err(|e| bad(e.to_string()))?;
        match passphrase {
            None => der
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| bad(e.to_string())),
            Some(pass) => {
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes())
                    .map_err(|e| bad(e.to_string()))?;
                let enc = info
                    .encrypt(rand_core::OsRng, pass)
                    .map_err(|e| bad(e.to_string()))?;
                enc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| bad(e.to_string()))
            }
        }
    }

    /// Parses key file contents; `path` only names the file in errors.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>, path: &Path) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let encrypted = pem.contains("ENCRYPTED PRIVATE KEY");
        let key = match (encrypted, passphrase) {
            (false, _) => SigningKey::from_pkcs8_pem(pem)
                .map_err(|_| bad("not an ed25519 PKCS#8 private key"))?,
            (true, None) => return Err(bad("the key is encrypted and no passphrase was given")),
            (true, Some(pass)) => SigningKey::from_pkcs8_encrypted_pem(pem, pass).map_err(|_| {
                KeyError::WrongPassphrase {
                    path: path.to_path_buf(),
                }
            })?,
        };
        Ok(Self { key })
    }

    /// Writes the key file atomically with mode 0600; refuses to overwrite.
    pub fn write_file(&self, path: &Path, passphrase: Option<&[u8]>) -> Result<()> {
        if path.exists() {
            return Err(KeyError::BadKeyFile {
                path: path.to_path_buf(),
                reason: "refusing to overwrite an existing key file".into(),
            }
            .into());
        }
        let pem = self.to_pem(passphrase)?;
        crate::util::write_atomic(path, pem.as_bytes(), Some(0o600))
    }

    /// Reads a key file. Warns (through `tracing`) if others can read it.
    pub fn read_file(path: &Path, passphrase: Option<&[u8]>) -> Result<Self> {
        let bytes = Zeroizing::new(crate::util::read(path)?);
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
            }
        }
        let pem = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadKeyFile {
            path: path.to_path_buf(),
            reason: "not a PEM text file".into(),
        })?;
        Ok(Self::from_pem(pem, passphrase, path)?)
    }
}
