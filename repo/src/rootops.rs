//! Root changes: drafts, offline M-of-N signing, installation, key rotation.
//!
//! A root change is a draft (`staged/root.json`, an envelope of the next root
//! version) that key holders sign one by one, each with their own key file,
//! possibly on separate offline machines; copies are merged; `install` puts it
//! in place once it meets the threshold of the previous root and its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Value, json};

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::metadata::{check_root, check_root_update};
use onionpkg_trust::roles;
use onionpkg_trust::sign::{SecretKey, add_signature, merge_signatures};

use crate::err::{RepoError, Result};
use crate::keydir::{KeyDir, RoleKeyIds};
use crate::state::{Expiries, RepoDir, binding, version_of};

/// A change of one role's keys in a root draft.
#[derive(Debug, Clone)]
pub struct KeyChange {
    /// The top-level role.
    pub role: String,
    /// Its new keys.
    pub keys: Vec<PublicKey>,
    /// Its new threshold.
    pub threshold: usize,
}

/// The result of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Done: the new keys are in use.
    Done {
        /// The new key ids.
        key_ids: Vec<String>,
    },
    /// The root draft needs more signatures from offline key holders.
    NeedsSignatures {
        /// The draft to sign with `root sign`, then `root install`.
        draft: PathBuf,
        /// The new key ids.
        key_ids: Vec<String>,
    },
}

impl RepoDir {
    /// The path of the root draft.
    pub fn root_draft_path(&self) -> PathBuf {
        self.staged_dir().join("root.json")
    }

    /// Writes a draft of the next root version with `changes` applied and
    /// no signatures yet.
    pub fn draft_root(
        &self,
        changes: &[KeyChange],
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<PathBuf> {
        let current = Self::read_json(&self.metadata_dir().join("root.json"))?;
        let mut signed = current["signed"].clone();
        signed["version"] = json!(version_of(&signed) + 1);
        signed["expires"] = json!(exp.expires(roles::ROOT, now)?);
        for change in changes {
            if !roles::TOP_LEVEL.contains(&change.role.as_str()) {
                return Err(RepoError::Invalid(format!(
                    "{} is not a top-level role",
                    change.role
                )));
            }
            if change.threshold == 0 || change.threshold > change.keys.len() {
                return Err(RepoError::Invalid(format!(
                    "a threshold of {} cannot be met by {} key(s)",
                    change.threshold,
                    change.keys.len()
                )));
            }
            for k in &change.keys {
                signed["keys"][k.key_id()] = k.to_json();
            }
            let ids: Vec<String> = change.keys.iter().map(PublicKey::key_id).collect();
            signed["roles"][&change.role] = json!({ "keyids": ids, "threshold": change.threshold });
        }
        // Drop keys no role uses any more.
        let used: BTreeSet<String> = signed["roles"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .flat_map(|r| binding(r).0)
            .collect();
        if let Some(keys) = signed["keys"].as_object_mut() {
            keys.retain(|id, _| used.contains(id));
        }
        let path = self.root_draft_path();
        Self::write_json(&path, &json!({ "signed": signed, "signatures": [] }))?;
        Ok(path)
    }

    /// Installs a signed root as [`RepoDir::install_root`] does, then puts
    /// the files in `keys` in order for it ([`KeyDir::settle`]): the keys it
    /// drops are retired, the keys it adds take their roles' stable names.
    /// Returns the version installed and what was moved.
    pub fn install_root_with_keys(
        &self,
        envelope: &Path,
        keys: &KeyDir,
        now: Timestamp,
    ) -> Result<(u64, Vec<String>)> {
        let current = self.metadata_dir().join("root.json");
        let before = if current.exists() {
            root_role_ids(&Self::read_json(&current)?)
        } else {
            RoleKeyIds::new()
        };
        let version = self.install_root(envelope)?;
        let after = root_role_ids(&Self::read_json(&current)?);
        let moved = keys.settle(&before, &after, now)?;
        Ok((version, moved))
    }

    /// Installs a signed root (a draft that met its thresholds) as the next
    /// root version. Returns the version installed.
    pub fn install_root(&self, envelope: &Path) -> Result<u64> {
        let new_bytes = std::fs::read(envelope).map_err(RepoError::io("reading", envelope))?;
        let md = self.metadata_dir();
        let current = md.join("root.json");
        let root = if current.exists() {
            let trusted = std::fs::read(&current).map_err(RepoError::io("reading", &current))?;
            check_root_update(&trusted, &new_bytes)?
        } else {
            let root = check_root(&new_bytes)?;
            if root.version != 1 {
                return Err(RepoError::Invalid(format!(
                    "the first root must be version 1, not {}",
                    root.version
                )));
            }
            root
        };
        let value: Value = serde_json::from_slice(&new_bytes)
            .map_err(|e| RepoError::bad(envelope, format!("not JSON: {e}")))?;
        Self::write_json(
            &md.join(roles::versioned_name(roles::ROOT, root.version)),
            &value,
        )?;
        Self::write_json(&current, &value)?;
        let draft = self.root_draft_path();
        if draft.exists() {
            std::fs::remove_file(&draft).map_err(RepoError::io("removing", &draft))?;
        }
        tracing::info!(version = root.version, "installed root");
        Ok(root.version)
    }

    /// Rotates the keys of `role` (any but `root`): fresh keys (as many as
    /// before, same threshold unless `threshold` says otherwise), a new root
    /// (for top-level roles) or new delegations (for `mirrors` and `feeds`),
    /// and a publish re-signed with the new keys. A root change is signed
    /// with every root key at hand; if that does not meet both thresholds,
    /// the draft is left for the offline key holders.
    ///
    /// The root's own keys are never made here: see
    /// [`RepoDir::rotate_root_online`], or draft the next root with the
    /// public keys the holders made offline ([`RepoDir::draft_root`]).
    pub fn rotate(
        &self,
        role: &str,
        keys: &KeyDir,
        threshold: Option<crate::ops::Threshold>,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<Rotation> {
        if role == roles::ROOT {
            return Err(RepoError::Invalid(
                "rotate does not make root keys on this machine: draft the next root with the \
                 public keys the holders made offline (`root draft --set-keys root=…`)"
                    .into(),
            ));
        }
        if roles::DELEGATED.contains(&role) {
            if threshold.is_some_and(|t| t.threshold != 1 || t.count != 1) {
                return Err(RepoError::Invalid(format!(
                    "the {role} role has one key; a threshold other than 1/1 is not supported"
                )));
            }
            return self.rotate_delegated(role, keys, None, exp, now);
        }
        if !roles::TOP_LEVEL.contains(&role) {
            return Err(RepoError::Invalid(format!("unknown role {role:?}")));
        }
        self.rotate_top_level(role, keys, threshold, exp, now)
    }

    /// Rotates the root keys, making the new root private keys here, in
    /// `keys`: whoever can read them can sign any root, so they must go to
    /// their holders' offline media at once. The new root is signed with
    /// every root key at hand, old and new; without enough old ones, the
    /// draft is left for their holders.
    pub fn rotate_root_online(
        &self,
        keys: &KeyDir,
        threshold: Option<crate::ops::Threshold>,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<Rotation> {
        self.rotate_top_level(roles::ROOT, keys, threshold, exp, now)
    }

    fn rotate_top_level(
        &self,
        role: &str,
        keys: &KeyDir,
        threshold: Option<crate::ops::Threshold>,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<Rotation> {
        let current = Self::read_json(&self.metadata_dir().join("root.json"))?;
        let (old_ids, old_threshold) = binding(&current["signed"]["roles"][role]);
        let t = threshold.unwrap_or_else(|| crate::ops::Threshold {
            threshold: old_threshold,
            count: old_ids.len().max(1),
        });
        // Pending names until the new root is installed: till then the
        // current keys keep theirs (the cron job's `timestamp` signs).
        let mut new_keys = Vec::new();
        for _ in 0..t.count {
            new_keys.push(keys.generate_pending(role)?.1);
        }
        let new_pubs: Vec<PublicKey> = new_keys.iter().map(SecretKey::public).collect();
        let key_ids: Vec<String> = new_pubs.iter().map(PublicKey::key_id).collect();
        let draft = self.draft_root(
            &[KeyChange {
                role: role.to_string(),
                keys: new_pubs,
                threshold: t.threshold,
            }],
            exp,
            now,
        )?;
        // Sign with every root key at hand, old and new.
        let mut envelope = Self::read_json(&draft)?;
        let (new_root_ids, _) = binding(&envelope["signed"]["roles"][roles::ROOT]);
        let (cur_root_ids, _) = binding(&current["signed"]["roles"][roles::ROOT]);
        let wanted: BTreeSet<&String> = cur_root_ids.iter().chain(&new_root_ids).collect();
        for (id, (stem, _)) in keys.public_keys()? {
            if wanted.contains(&id) {
                add_signature(&mut envelope, &keys.load(&stem)?)?;
            }
        }
        Self::write_json(&draft, &envelope)?;
        match self.install_root(&draft) {
            Ok(_) => {}
            Err(RepoError::Trust(e))
                if matches!(
                    &e,
                    onionpkg_trust::Error::Verify(
                        onionpkg_trust::metadata::VerifyError::ThresholdNotMet { .. }
                    )
                ) =>
            {
                return Ok(Rotation::NeedsSignatures { draft, key_ids });
            }
            Err(e) => return Err(e),
        }
        let resign: &[&str] = if role == roles::TARGETS {
            &[roles::TARGETS]
        } else {
            &[]
        };
        if role != roles::ROOT {
            self.publish(keys, exp, resign, now)?;
        }
        let installed = Self::read_json(&self.metadata_dir().join("root.json"))?;
        keys.settle(&root_role_ids(&current), &root_role_ids(&installed), now)?;
        Ok(Rotation::Done { key_ids })
    }

    /// Rotates a delegated role (`mirrors`, `feeds`) to `public`, a key
    /// made elsewhere (the signing service's, printed by `onionpkg-signer
    /// keys show`): no key is made here, and the publish that puts the new
    /// delegation in effect signs the role with it.
    pub fn rotate_delegated_to(
        &self,
        role: &str,
        keys: &KeyDir,
        public: PublicKey,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<Rotation> {
        if !roles::DELEGATED.contains(&role) {
            return Err(RepoError::Invalid(format!(
                "{role} is not a delegated role (mirrors, feeds); set a top-level role's keys with \
                 `root draft --set-keys {role}=FILE`"
            )));
        }
        self.rotate_delegated(role, keys, Some(public), exp, now)
    }

    fn rotate_delegated(
        &self,
        role: &str,
        keys: &KeyDir,
        given: Option<PublicKey>,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<Rotation> {
        // A pending name until the publish that puts the new delegation in
        // effect gives it the stable one.
        let public = match given {
            Some(k) => k,
            None => keys.generate_pending(role)?.1.public(),
        };
        let mut targets = self.next_payload(roles::TARGETS)?;
        let entry = targets["delegations"]["roles"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|r| r["name"] == role))
            .ok_or_else(|| RepoError::Invalid(format!("no delegation for role {role:?}")))?;
        entry["keyids"] = json!([public.key_id()]);
        entry["threshold"] = json!(1);
        targets["delegations"]["keys"][public.key_id()] = public.to_json();
        crate::ops::prune_delegation_keys(&mut targets);
        self.stage(roles::TARGETS, &targets)?;
        self.publish(keys, exp, &[role], now)?;
        Ok(Rotation::Done {
            key_ids: vec![public.key_id()],
        })
    }
}

/// Adds `key`'s signature to the envelope in `file`, in place.
pub fn sign_file(file: &Path, key: &SecretKey) -> Result<()> {
    let mut envelope = RepoDir::read_json(file)?;
    add_signature(&mut envelope, key)?;
    RepoDir::write_json(file, &envelope)
}

/// Merges the signatures of copies of one envelope into `out`.
pub fn merge_files(out: &Path, copies: &[PathBuf]) -> Result<()> {
    let values = copies
        .iter()
        .map(|p| RepoDir::read_json(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = merge_signatures(&values)?;
    RepoDir::write_json(out, &merged)
}

/// Key ids per role in a root file, for display.
pub fn root_roles(root: &Value) -> BTreeMap<String, (Vec<String>, usize)> {
    root["signed"]["roles"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(r, b)| (r.clone(), binding(b)))
        .collect()
}

/// Key ids per top-level role in a root envelope.
pub(crate) fn root_role_ids(root: &Value) -> RoleKeyIds {
    root_roles(root)
        .into_iter()
        .map(|(role, (ids, _))| (role, ids))
        .collect()
}
