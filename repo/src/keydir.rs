//! The directory of private keys at the release side.
//!
//! Each key is two files: `NAME.key` (PKCS#8 PEM, mode 0600, optionally
//! passphrase-encrypted) and `NAME.pub.json` (its public TUF key object). The
//! public file lets us find the key for a role by key id without decrypting
//! every private key. Names are `ROLE` or `ROLE-N` (`root-1`, `root-2`, …).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::SecretKey;
use zeroize::Zeroizing;

use crate::err::{RepoError, Result};

/// A directory of key files, with the passphrase that unlocks them (if any).
pub struct KeyDir {
    dir: PathBuf,
    passphrase: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for KeyDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDir")
            .field("dir", &self.dir)
            .field("encrypted", &self.passphrase.is_some())
            .finish()
    }
}

impl KeyDir {
    /// Keys in `dir`; new keys are encrypted with `passphrase` when given.
    pub fn new(dir: impl Into<PathBuf>, passphrase: Option<Zeroizing<Vec<u8>>>) -> Self {
        Self {
            dir: dir.into(),
            passphrase,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes a new key named `name` (the first free of `name`, `name-2`, …
    /// when `numbered` is false; `name-1`, `name-2`, … when true).
    pub fn generate(&self, name: &str, numbered: bool) -> Result<(String, SecretKey)> {
        std::fs::create_dir_all(&self.dir).map_err(RepoError::io("creating", &self.dir))?;
        let mut n = 1;
        let file_name = loop {
            let candidate = if numbered || n > 1 {
                format!("{name}-{n}")
            } else {
                name.to_string()
            };
            if !self.dir.join(format!("{candidate}.key")).exists() {
                break candidate;
            }
            n += 1;
        };
        let key = generate_file(
            &self.dir.join(&file_name),
            self.passphrase.as_deref().map(Vec::as_slice),
        )?;
        tracing::info!(key = %file_name, key_id = %key.public().key_id(), "made a key");
        Ok((file_name, key))
    }

    /// The public keys in this directory, by key id, with their file stems.
    pub fn public_keys(&self) -> Result<BTreeMap<String, (String, PublicKey)>> {
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RepoError::io("listing", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(RepoError::io("listing", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".pub.json") else {
                continue;
            };
            if !self.dir.join(format!("{stem}.key")).exists() {
                continue;
            }
            let path = entry.path();
            let bytes = std::fs::read(&path).map_err(RepoError::io("reading", &path))?;
            let key = PublicKey::from_json(&bytes)?;
            out.insert(key.key_id(), (stem.to_string(), key));
        }
        Ok(out)
    }

    /// Loads the private key with file stem `stem`.
    pub fn load(&self, stem: &str) -> Result<SecretKey> {
        let path = self.dir.join(format!("{stem}.key"));
        Ok(SecretKey::read_file(
            &path,
            self.passphrase.as_deref().map(Vec::as_slice),
        )?)
    }

    /// The private keys here that `keyids` authorizes; fails unless there are
    /// at least `threshold` of them.
    pub fn signers(
        &self,
        role: &str,
        keyids: &[String],
        threshold: usize,
    ) -> Result<Vec<SecretKey>> {
        let available = self.public_keys()?;
        let mut keys = Vec::new();
        for id in keyids {
            if let Some((stem, public)) = available.get(id) {
                let key = self.load(stem)?;
                if key.public() != *public {
                    return Err(RepoError::bad(
                        &self.dir.join(format!("{stem}.pub.json")),
                        "does not match its private key",
                    ));
                }
                keys.push(key);
            }
        }
        if keys.len() < threshold {
            return Err(RepoError::NotEnoughKeys {
                role: role.to_string(),
                threshold,
                available: keys.len(),
                dir: self.dir.clone(),
            });
        }
        Ok(keys)
    }
}

/// Makes a new key pair as `STEM.key` (encrypted with `passphrase` when
/// given) and `STEM.pub.json`, refusing to overwrite either: for a root key
/// holder on their own machine, who has no repository.
pub fn generate_file(stem: &Path, passphrase: Option<&[u8]>) -> Result<SecretKey> {
    let with_ext = |ext: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (key_path, pub_path) = (with_ext(".key"), with_ext(".pub.json"));
    if pub_path.exists() {
        return Err(RepoError::bad(
            &pub_path,
            "refusing to overwrite an existing key file",
        ));
    }
    let key = SecretKey::generate();
    key.write_file(&key_path, passphrase)?;
    let public = serde_json::to_vec_pretty(&key.public().to_json())
        .map_err(|e| RepoError::Invalid(e.to_string()))?;
    onionpkg_trust::util::write_atomic(&pub_path, &public, Some(0o644))?;
    Ok(key)
}
