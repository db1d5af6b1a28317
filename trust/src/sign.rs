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

use crate::Result;
use crate::keys::{KeyError, PublicKey};

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
        #[allow(
            clippy::expect_used,
            reason = "dalek's own verifying key is always valid"
        )]
        PublicKey::from_ed25519_bytes(self.key.verifying_key().as_bytes())
            .expect("a valid ed25519 key")
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
            (true, Some(pass)) => {
                SigningKey::from_pkcs8_encrypted_pem(pem, pass).map_err(|_| {
                    KeyError::WrongPassphrase {
                        path: path.to_path_buf(),
                    }
                })?
            }
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

/// Removes `null` members from every object, recursively.
///
/// Optional fields that are unset must be absent, not `null`: python-tuf
/// re-serializes without them, so a signature over a form with `null`s would
/// not verify there.
pub fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The bytes a TUF signature covers: the canonical JSON of `signed`.
pub fn canonical_bytes(signed: &serde_json::Value) -> Result<Vec<u8>> {
    sigstore_tuf::canonical_json::to_canonical_bytes(signed)
        .map_err(|e| crate::metadata::VerifyError::Malformed(e.to_string()).into())
}

/// Signs a metadata payload: returns the envelope
/// `{"signed": …, "signatures": [{"keyid", "sig"}]}` with one signature per key.
pub fn sign_metadata(
    mut signed: serde_json::Value,
    keys: &[&SecretKey],
) -> Result<serde_json::Value> {
    strip_nulls(&mut signed);
    let mut envelope = serde_json::json!({ "signed": signed, "signatures": [] });
    for key in keys {
        add_signature(&mut envelope, key)?;
    }
    Ok(envelope)
}

/// Adds (or replaces) `key`'s signature on an envelope. This is how each holder
/// of an offline root key signs in turn.
pub fn add_signature(envelope: &mut serde_json::Value, key: &SecretKey) -> Result<()> {
    let malformed =
        |m: &str| -> crate::Error { crate::metadata::VerifyError::Malformed(m.to_string()).into() };
    let signed = envelope
        .get("signed")
        .ok_or_else(|| malformed("envelope has no `signed`"))?;
    let sig = hex::encode(key.sign(&canonical_bytes(signed)?));
    let keyid = key.public().key_id();
    let sigs = envelope
        .get_mut("signatures")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| malformed("envelope has no `signatures` list"))?;
    sigs.retain(|s| s.get("keyid").and_then(serde_json::Value::as_str) != Some(&keyid));
    sigs.push(serde_json::json!({ "keyid": keyid, "sig": sig }));
    Ok(())
}

/// Merges the signatures of several copies of one envelope (the offline M-of-N
/// workflow: each key holder signs a copy). Refuses copies whose `signed`
/// parts differ: a signature over other content must never be carried over.
pub fn merge_signatures(copies: &[serde_json::Value]) -> Result<serde_json::Value> {
    let malformed =
        |m: &str| -> crate::Error { crate::metadata::VerifyError::Malformed(m.to_string()).into() };
    let (first, rest) = copies
        .split_first()
        .ok_or_else(|| malformed("nothing to merge"))?;
    let signed = first
        .get("signed")
        .ok_or_else(|| malformed("envelope has no `signed`"))?;
    let canonical = canonical_bytes(signed)?;
    let mut merged = serde_json::json!({ "signed": signed, "signatures": [] });
    let mut seen = std::collections::BTreeSet::new();
    for copy in std::iter::once(first).chain(rest) {
        let other = copy
            .get("signed")
            .ok_or_else(|| malformed("envelope has no `signed`"))?;
        if canonical_bytes(other)? != canonical {
            return Err(malformed(
                "the copies sign different contents; refusing to merge their signatures",
            ));
        }
        for sig in copy
            .get("signatures")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = sig.get("keyid").and_then(serde_json::Value::as_str);
            if let Some(id) = id
                && seen.insert(id.to_string())
                && let Some(list) = merged["signatures"].as_array_mut()
            {
                list.push(sig.clone());
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_with_mode_0600_and_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = SecretKey::generate();
        key.write_file(&path, None).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = SecretKey::read_file(&path, None).unwrap();
        assert_eq!(back.public(), key.public());
        // Debug shows the key id, not the secret.
        let shown = format!("{back:?}");
        assert!(shown.contains(&key.public().key_id()));
        let pem = std::fs::read_to_string(&path).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!shown.contains(&body));
        // Never overwritten.
        let err = SecretKey::generate().write_file(&path, None).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }

    #[test]
    fn encrypted_key_files_need_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = SecretKey::generate();
        key.write_file(&path, Some(b"correct horse")).unwrap();
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = SecretKey::read_file(&path, Some(b"correct horse")).unwrap();
        assert_eq!(back.public(), key.public());
        assert!(matches!(
            SecretKey::read_file(&path, Some(b"wrong")),
            Err(crate::Error::Key(KeyError::WrongPassphrase { .. }))
        ));
        assert!(matches!(
            SecretKey::read_file(&path, None),
            Err(crate::Error::Key(KeyError::BadKeyFile { .. }))
        ));
    }

    #[test]
    fn signatures_cover_the_canonical_form_without_nulls() {
        let key = SecretKey::generate();
        let signed = serde_json::json!({ "b": 1, "a": null, "c": { "x": null, "y": [1, 2] } });
        let env = sign_metadata(signed, &[&key]).unwrap();
        assert_eq!(
            env["signed"],
            serde_json::json!({ "b": 1, "c": { "y": [1, 2] } })
        );
        let canonical = canonical_bytes(&env["signed"]).unwrap();
        assert_eq!(canonical, br#"{"b":1,"c":{"y":[1,2]}}"#);
        let sig = hex::decode(env["signatures"][0]["sig"].as_str().unwrap()).unwrap();
        key.public().verify(&canonical, &sig).unwrap();
        assert_eq!(env["signatures"][0]["keyid"], key.public().key_id());
    }

    #[test]
    fn signing_twice_with_one_key_keeps_one_signature() {
        let key = SecretKey::generate();
        let mut env = sign_metadata(serde_json::json!({ "v": 1 }), &[&key]).unwrap();
        add_signature(&mut env, &key).unwrap();
        assert_eq!(env["signatures"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn key_ids_are_the_tuf_key_ids() {
        // sigstore-tuf computes securesystemslib's key id; ours must agree.
        crate::crypto::install();
        for _ in 0..4 {
            let public = SecretKey::generate().public();
            assert_eq!(public.key_id(), public.to_tuf().key_id().unwrap());
        }
    }
}
