//! The directory of private keys at the release side.
//!
//! Each key is two files: `NAME.key` (PKCS#8 PEM, mode 0600, optionally
//! passphrase-encrypted) and `NAME.pub.json` (its public TUF key object). The
//! public file lets us find the key for a role by key id without decrypting
//! every private key.
//!
//! # Names
//! - The keys a role has now carry its stable names: `ROLE`, `ROLE-2`, … in
//!   the order the metadata lists them, and `root-1`, `root-2`, … for the
//!   root. Configurations name these files (the announcer's
//!   `keys/timestamp.key`), so they must stay the current keys across
//!   rotations: [`KeyDir::settle`] renames after every key change.
//! - A key made for a change not yet in effect (a root draft awaiting
//!   signatures) is `ROLE.next`, `ROLE.next-2`, …; it takes a stable name
//!   when the change is installed.
//! - A key no role has any more moves to `retired/STEM.YYYYMMDD.KEYID8.key`
//!   (and `.pub.json`), never overwriting another.
//! - Signing finds keys by key id, whatever their names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::sign::SecretKey;
use zeroize::Zeroizing;

use crate::err::{RepoError, Result};
use crate::remote::RemoteSigner;

/// A directory of key files, with the passphrase that unlocks them (if any),
/// and the signing service that signs every role but root, if one is used.
pub struct KeyDir {
    dir: PathBuf,
    passphrase: Option<Zeroizing<Vec<u8>>>,
    remote: Option<RemoteSigner>,
}

/// How one role gets its signatures.
pub(crate) enum RoleSigner {
    /// Key files at hand (at least the role's threshold).
    Files(Vec<SecretKey>),
    /// The signing service, whose signature must be by one of these keys
    /// (the role's, by key id).
    Remote(BTreeMap<String, PublicKey>),
}

impl std::fmt::Debug for KeyDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDir")
            .field("dir", &self.dir)
            .field("encrypted", &self.passphrase.is_some())
            .field("signer", &self.remote.is_some())
            .finish()
    }
}

impl KeyDir {
    /// Keys in `dir`; new keys are encrypted with `passphrase` when given.
    pub fn new(dir: impl Into<PathBuf>, passphrase: Option<Zeroizing<Vec<u8>>>) -> Self {
        Self {
            dir: dir.into(),
            passphrase,
            remote: None,
        }
    }

    /// No key directory: every role but root is signed through `signer`,
    /// and root cannot be signed. For the online processes (the mirror's
    /// feed publisher) that must hold no key file.
    pub fn signer_only(signer: RemoteSigner) -> Self {
        Self::new(PathBuf::new(), None).with_signer(signer)
    }

    /// Signs every role but root through `signer` instead of key files.
    #[must_use]
    pub fn with_signer(mut self, signer: RemoteSigner) -> Self {
        self.remote = Some(signer);
        self
    }

    /// Whether roles other than root are signed through the signer.
    pub fn uses_signer(&self) -> bool {
        self.remote.is_some()
    }

    /// How `role` is signed: through the signer when one is set and the
    /// role is not root, else with the key files `keyids` authorizes.
    /// `keys` is the `keys` object listing the role's public keys (the
    /// root's, or the delegating targets').
    pub(crate) fn role_signer(
        &self,
        role: &str,
        keyids: &[String],
        threshold: usize,
        keys: &serde_json::Value,
    ) -> Result<RoleSigner> {
        if self.remote.is_none() || role == onionpkg_trust::roles::ROOT {
            return Ok(RoleSigner::Files(self.signers(role, keyids, threshold)?));
        }
        let mut authorized = BTreeMap::new();
        for id in keyids {
            let json = keys
                .get(id)
                .ok_or_else(|| RepoError::Invalid(format!("{role}: key {id} is not listed")))?;
            let key = PublicKey::from_json(json.to_string().as_bytes())?;
            authorized.insert(id.clone(), key);
        }
        Ok(RoleSigner::Remote(authorized))
    }

    /// Signs `payload` as `role` with `signer` (from [`KeyDir::role_signer`]).
    pub(crate) fn sign(
        &self,
        role: &str,
        payload: serde_json::Value,
        signer: &RoleSigner,
        now: Timestamp,
    ) -> Result<serde_json::Value> {
        match (signer, &self.remote) {
            (RoleSigner::Files(keys), _) => Ok(onionpkg_trust::sign::sign_metadata(
                payload,
                &keys.iter().collect::<Vec<_>>(),
            )?),
            (RoleSigner::Remote(authorized), Some(remote)) => {
                remote.sign(role, payload, authorized, now)
            }
            (RoleSigner::Remote(_), None) => Err(RepoError::Invalid(format!(
                "{role}: no signer to sign with"
            ))),
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

/// Key ids per role, in the order the metadata lists them.
pub type RoleKeyIds = BTreeMap<String, Vec<String>>;

/// The stable name of the `index`th (from 0) current key of `role`.
fn stable_name(role: &str, index: usize) -> String {
    match (role, index) {
        (onionpkg_trust::roles::ROOT, i) => format!("{role}-{}", i + 1),
        (_, 0) => role.to_string(),
        (_, i) => format!("{role}-{}", i + 1),
    }
}

/// Whether `stem` is one of the stable names of `role`.
fn is_stable_name(stem: &str, role: &str) -> bool {
    if stem == role && role != onionpkg_trust::roles::ROOT {
        return true;
    }
    stem.strip_prefix(role)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `stem` names a key made for a pending change of `role`.
fn is_pending_name(stem: &str, role: &str) -> bool {
    stem.strip_prefix(role)
        .and_then(|rest| rest.strip_prefix(".next"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

impl KeyDir {
    /// Makes a key for a change of `role` not yet in effect: `ROLE.next`,
    /// `ROLE.next-2`, …; [`KeyDir::settle`] gives it a stable name once the
    /// change is installed.
    pub fn generate_pending(&self, role: &str) -> Result<(String, SecretKey)> {
        self.generate(&format!("{role}.next"), false)
    }

    /// Puts the key files in order after the roles' keys changed from
    /// `before` to `after`: keys that `before` gave a role and `after` gives
    /// none, and keys made for a change of a role in `after` that did not
    /// happen, move to `retired/`; each role's keys in `after` take its
    /// stable names. Keys of other roles, and files that are not keys, are
    /// left alone. Returns what was moved, one line each.
    pub fn settle(
        &self,
        before: &RoleKeyIds,
        after: &RoleKeyIds,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let mut moved = Vec::new();
        let current: BTreeSet<&String> = after.values().flatten().collect();
        let files = self.public_keys()?;
        let stale_pending = files.iter().filter(|(id, (stem, _))| {
            !current.contains(id) && after.keys().any(|role| is_pending_name(stem, role))
        });
        let dropped = before
            .values()
            .flatten()
            .filter(|id| !current.contains(id))
            .filter_map(|id| files.get_key_value(id));
        let retiring: BTreeMap<&String, &String> = dropped
            .chain(stale_pending)
            .map(|(id, (stem, _))| (id, stem))
            .collect();
        for (id, stem) in retiring {
            let to = self.retire(stem, id, now)?;
            moved.push(format!("retired key {id} ({stem}) to {}", to.display()));
        }
        let files = self.public_keys()?;
        for (role, ids) in after {
            for id in ids {
                let Some((stem, _)) = files.get(id) else {
                    continue;
                };
                if is_stable_name(stem, role) {
                    continue;
                }
                let name = (0..)
                    .map(|i| stable_name(role, i))
                    .find(|n| !self.pair_exists(n))
                    .unwrap_or_else(|| role.clone());
                self.rename_pair(stem, &self.dir.join(&name))?;
                moved.push(format!(
                    "key {id} of {role} is now {}",
                    self.dir.join(format!("{name}.key")).display()
                ));
            }
        }
        for line in &moved {
            tracing::info!("{line}");
        }
        Ok(moved)
    }

    /// Moves the pair `stem` to `retired/STEM.YYYYMMDD.KEYID8[-N]`.
    fn retire(&self, stem: &str, id: &str, now: Timestamp) -> Result<PathBuf> {
        let retired = self.dir.join("retired");
        std::fs::create_dir_all(&retired).map_err(RepoError::io("creating", &retired))?;
        let base = format!(
            "{stem}.{}.{}",
            now.strftime("%Y%m%d"),
            id.get(..8).unwrap_or(id)
        );
        let free = |name: &String| {
            !retired.join(format!("{name}.key")).exists()
                && !retired.join(format!("{name}.pub.json")).exists()
        };
        let name = std::iter::once(base.clone())
            .chain((2..).map(|n| format!("{base}-{n}")))
            .find(free)
            .unwrap_or(base);
        let to = retired.join(&name);
        self.rename_pair(stem, &to)?;
        Ok(to.with_file_name(format!("{name}.key")))
    }

    /// Whether either file of the pair `stem` exists.
    fn pair_exists(&self, stem: &str) -> bool {
        ["key", "pub.json"]
            .iter()
            .any(|ext| self.dir.join(format!("{stem}.{ext}")).exists())
    }

    /// Renames the pair `stem` to `to` (a path without extension), the
    /// public file last: a key is listed only while both files are there.
    fn rename_pair(&self, stem: &str, to: &Path) -> Result<()> {
        for ext in ["key", "pub.json"] {
            let from = self.dir.join(format!("{stem}.{ext}"));
            let mut dest = to.as_os_str().to_owned();
            dest.push(format!(".{ext}"));
            std::fs::rename(&from, &dest).map_err(RepoError::io("renaming", &from))?;
        }
        Ok(())
    }
}

/// The key directory of the repository at `repo` when none is given:
/// `REPO.keys`, next to the repository and outside the tree that mirrors
/// copy and serve (`/srv/repo` keeps its keys in `/srv/repo.keys`).
pub fn default_dir(repo: &Path) -> Result<PathBuf> {
    let repo = resolve(repo)?;
    let name = repo
        .file_name()
        .ok_or_else(|| {
            RepoError::Invalid(format!(
                "{} has no name to put a key directory next to; give --keys",
                repo.display()
            ))
        })?
        .to_string_lossy()
        .into_owned();
    Ok(repo.with_file_name(format!("{name}.keys")))
}

/// Refuses a key directory inside the repository tree: whatever is in it
/// may be copied to mirrors and served.
pub fn check_outside(keys: &Path, repo: &Path) -> Result<()> {
    let (k, r) = (resolve(keys)?, resolve(repo)?);
    if k.starts_with(&r) {
        return Err(RepoError::KeysInRepository {
            keys: keys.to_path_buf(),
            repo: repo.to_path_buf(),
        });
    }
    Ok(())
}

/// `path` made absolute with every link in its existing part resolved, so
/// that a link into the repository is seen for what it is.
fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(RepoError::io("resolving", path))?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut real) => {
                for part in rest.iter().rev() {
                    real.push(part);
                }
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(RepoError::io("resolving", path)(e));
                };
                rest.push(name.to_owned());
                existing = parent;
            }
            Err(e) => return Err(RepoError::io("resolving", path)(e)),
        }
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
