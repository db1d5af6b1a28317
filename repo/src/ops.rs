//! Creating a repository, staging targets, publishing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::roles;
use onionpkg_trust::sign::{SecretKey, sign_metadata};

use crate::err::{RepoError, Result};
use crate::keydir::KeyDir;
use crate::keydir::RoleSigner;
use crate::state::{Expiries, RepoDir, SPEC_VERSION, binding, version_of};

/// How many keys a role gets at `init`, and how many must sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Signatures required.
    pub threshold: usize,
    /// Keys made.
    pub count: usize,
}

impl std::str::FromStr for Threshold {
    type Err = RepoError;
    /// Parses `M/N`: M of N keys must sign.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || RepoError::Invalid(format!("{s:?} is not M/N (M of N keys must sign)"));
        let (m, n) = s.split_once('/').ok_or_else(bad)?;
        let t = Self {
            threshold: m.trim().parse().map_err(|_| bad())?,
            count: n.trim().parse().map_err(|_| bad())?,
        };
        if t.threshold == 0 || t.threshold > t.count || t.count > 16 {
            return Err(bad());
        }
        Ok(t)
    }
}

/// What `init` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Keys and threshold per top-level role (defaults: root 2/3, others 1/1).
    pub thresholds: BTreeMap<String, Threshold>,
    /// Root public keys held offline. When given, no root key is made here
    /// and the first root is left as a draft for the key holders to sign.
    pub offline_root_keys: Vec<PublicKey>,
    /// Hashed bins for packages (a power of two up to 256), or 0 to keep
    /// packages in `targets` itself. Fixed for the repository's life.
    pub bins: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        let one = Threshold {
            threshold: 1,
            count: 1,
        };
        Self {
            thresholds: BTreeMap::from([
                (
                    roles::ROOT.to_string(),
                    Threshold {
                        threshold: 2,
                        count: 3,
                    },
                ),
                (roles::TARGETS.to_string(), one),
                (roles::SNAPSHOT.to_string(), one),
                (roles::TIMESTAMP.to_string(), one),
            ]),
            offline_root_keys: Vec::new(),
            bins: roles::DEFAULT_BINS,
        }
    }
}

/// What `init` did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Key ids per role.
    pub keys: BTreeMap<String, Vec<String>>,
    /// Whether root version 1 is installed (false: a draft awaits signatures).
    pub root_installed: bool,
}

fn key_map(keys: &[PublicKey]) -> serde_json::Map<String, Value> {
    keys.iter().map(|k| (k.key_id(), k.to_json())).collect()
}

fn ids(keys: &[PublicKey]) -> Vec<String> {
    keys.iter().map(PublicKey::key_id).collect()
}

/// The delegations block of the top-level targets role: `mirrors` and
/// `feeds` by path, then the hashed bins (signed with the targets keys
/// `bin_keys`, `bin_threshold` of them) by path hash prefix. The bins come
/// last, so the paths of `mirrors` and `feeds` never reach them.
pub(crate) fn delegations(
    mirrors: &[PublicKey],
    feeds: &[PublicKey],
    bins: &[(String, Vec<String>)],
    bin_keys: &[PublicKey],
    bin_threshold: usize,
) -> Value {
    let mut keys = key_map(mirrors);
    keys.extend(key_map(feeds));
    let mut list = vec![
        json!({ "name": roles::MIRRORS, "keyids": ids(mirrors), "threshold": 1,
                "terminating": true, "paths": roles::MIRRORS_PATHS }),
        json!({ "name": roles::FEEDS, "keyids": ids(feeds), "threshold": 1,
                "terminating": true, "paths": roles::FEEDS_PATHS }),
    ];
    if !bins.is_empty() {
        keys.extend(key_map(bin_keys));
    }
    for (name, prefixes) in bins {
        list.push(
            json!({ "name": name, "keyids": ids(bin_keys), "threshold": bin_threshold,
                          "terminating": true, "path_hash_prefixes": prefixes }),
        );
    }
    json!({ "keys": keys, "roles": list })
}

fn targets_payload(version: u64, expires: &str, delegations: Option<Value>) -> Value {
    let mut v = json!({
        "_type": "targets", "spec_version": SPEC_VERSION, "version": version,
        "expires": expires, "targets": {},
    });
    if let Some(d) = delegations {
        v["delegations"] = d;
    }
    v
}

impl RepoDir {
    /// Creates a repository with fresh keys for every role in `keys`.
    pub fn init(
        &self,
        keys: &KeyDir,
        opts: &InitOptions,
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<InitReport> {
        let md = self.metadata_dir();
        let bins = match opts.bins {
            0 => Vec::new(),
            n => roles::bins(n).ok_or_else(|| {
                RepoError::Invalid(format!(
                    "{n} hashed bins: give a power of two up to {}, or 0",
                    roles::MAX_BINS
                ))
            })?,
        };
        crate::keydir::check_outside(keys.dir(), self.dir())?;
        if md.join("timestamp.json").exists() || md.join("root.json").exists() {
            return Err(RepoError::Invalid(format!(
                "{} already holds a repository",
                self.dir().display()
            )));
        }
        let mut secrets: BTreeMap<String, Vec<SecretKey>> = BTreeMap::new();
        let mut publics: BTreeMap<String, Vec<PublicKey>> = BTreeMap::new();
        let mut roles_json = serde_json::Map::new();
        let mut all_keys = serde_json::Map::new();
        for role in roles::TOP_LEVEL {
            let t = opts.thresholds.get(role).copied().unwrap_or(Threshold {
                threshold: 1,
                count: 1,
            });
            let pubs = if role == roles::ROOT && !opts.offline_root_keys.is_empty() {
                if opts.offline_root_keys.len() < t.threshold {
                    return Err(RepoError::Invalid(format!(
                        "{} offline root key(s) cannot meet a threshold of {}",
                        opts.offline_root_keys.len(),
                        t.threshold
                    )));
                }
                opts.offline_root_keys.clone()
            } else {
                let mut pubs = Vec::new();
                for _ in 0..t.count {
                    let (_, k) = keys.generate(role, role == roles::ROOT)?;
                    pubs.push(k.public());
                    secrets.entry(role.to_string()).or_default().push(k);
                }
                pubs
            };
            all_keys.extend(key_map(&pubs));
            roles_json.insert(
                role.to_string(),
                json!({ "keyids": ids(&pubs), "threshold": t.threshold }),
            );
            publics.insert(role.to_string(), pubs);
        }
        for role in roles::DELEGATED {
            let (_, k) = keys.generate(role, false)?;
            publics.insert(role.to_string(), vec![k.public()]);
            secrets.insert(role.to_string(), vec![k]);
        }
        let get = |role: &str| publics.get(role).cloned().unwrap_or_default();

        let root = json!({
            "_type": "root", "spec_version": SPEC_VERSION, "version": 1,
            "expires": exp.expires(roles::ROOT, now)?, "consistent_snapshot": true,
            "keys": all_keys, "roles": roles_json,
        });
        let signer_refs = |role: &str| -> Vec<&SecretKey> {
            secrets
                .get(role)
                .map(|v| v.iter().collect())
                .unwrap_or_default()
        };

        // Root first: a client bootstraps from it. Offline root keys leave a draft.
        let root_installed = opts.offline_root_keys.is_empty();
        if root_installed {
            let env = sign_metadata(root, &signer_refs(roles::ROOT))?;
            Self::write_json(&md.join(roles::versioned_name(roles::ROOT, 1)), &env)?;
            Self::write_json(&md.join("root.json"), &env)?;
        } else {
            let env = json!({ "signed": root, "signatures": [] });
            Self::write_json(&self.staged_dir().join("root.json"), &env)?;
        }

        let mut pins = serde_json::Map::new();
        let payloads = [
            (
                roles::TARGETS,
                targets_payload(
                    1,
                    &exp.expires(roles::TARGETS, now)?,
                    Some(delegations(
                        &get(roles::MIRRORS),
                        &get(roles::FEEDS),
                        &bins,
                        &get(roles::TARGETS),
                        opts.thresholds
                            .get(roles::TARGETS)
                            .map_or(1, |t| t.threshold),
                    )),
                ),
            ),
            (
                roles::MIRRORS,
                targets_payload(1, &exp.expires(roles::MIRRORS, now)?, None),
            ),
            (
                roles::FEEDS,
                targets_payload(1, &exp.expires(roles::FEEDS, now)?, None),
            ),
        ];
        for (role, payload) in payloads {
            let env = sign_metadata(payload, &signer_refs(role))?;
            Self::write_json(&md.join(roles::versioned_name(role, 1)), &env)?;
            pins.insert(format!("{role}.json"), json!({ "version": 1 }));
        }
        std::fs::create_dir_all(self.targets_dir())
            .map_err(RepoError::io("creating", &self.targets_dir()))?;
        let mut files = |role: &str| RoleSigner::Files(secrets.remove(role).unwrap_or_default());
        let (snapshot_signer, timestamp_signer) = (files(roles::SNAPSHOT), files(roles::TIMESTAMP));
        self.write_snapshot_and_timestamp(
            1,
            pins,
            1,
            keys,
            (&snapshot_signer, &timestamp_signer),
            exp,
            now,
        )?;
        Ok(InitReport {
            keys: publics.iter().map(|(r, k)| (r.clone(), ids(k))).collect(),
            root_installed,
        })
    }

    /// Writes snapshot version `snap_version` pinning `pins`, then the
    /// timestamp (the commit point).
    #[allow(clippy::too_many_arguments, reason = "one private call site per use")]
    fn write_snapshot_and_timestamp(
        &self,
        snap_version: u64,
        pins: serde_json::Map<String, Value>,
        ts_version: u64,
        keys: &KeyDir,
        (snapshot_signer, timestamp_signer): (&RoleSigner, &RoleSigner),
        exp: &Expiries,
        now: Timestamp,
    ) -> Result<()> {
        let md = self.metadata_dir();
        let snapshot = json!({
            "_type": "snapshot", "spec_version": SPEC_VERSION, "version": snap_version,
            "expires": exp.expires(roles::SNAPSHOT, now)?, "meta": pins,
        });
        let env = keys.sign(roles::SNAPSHOT, snapshot, snapshot_signer, now)?;
        let snap_path = md.join(roles::versioned_name(roles::SNAPSHOT, snap_version));
        Self::write_json(&snap_path, &env)?;
        let snap_bytes = std::fs::read(&snap_path).map_err(RepoError::io("reading", &snap_path))?;
        let timestamp = json!({
            "_type": "timestamp", "spec_version": SPEC_VERSION, "version": ts_version,
            "expires": exp.expires(roles::TIMESTAMP, now)?,
            "meta": { "snapshot.json": {
                "version": snap_version, "length": snap_bytes.len(),
                "hashes": { "sha256": hex::encode(Sha256::digest(&snap_bytes)) },
            }},
        });
        let env = keys.sign(roles::TIMESTAMP, timestamp, timestamp_signer, now)?;
        Self::write_json(&md.join("timestamp.json"), &env)
    }

    /// The keys that may sign `role` and its threshold, from the root (for
    /// top-level roles) or from the next targets payload (for delegated ones).
    /// `targets` is the next targets payload.
    fn role_binding(
        &self,
        role: &str,
        root: &Value,
        targets: &Value,
    ) -> Result<(Vec<String>, usize)> {
        if roles::TOP_LEVEL.contains(&role) {
            return Ok(binding(&root["signed"]["roles"][role]));
        }
        targets["delegations"]["roles"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == role))
            .map(binding)
            .ok_or_else(|| RepoError::Invalid(format!("no delegation for role {role:?}")))
    }

    /// Loads the private keys for `role` (at least its threshold).
    pub(crate) fn signers(
        &self,
        keys: &KeyDir,
        role: &str,
        root: &Value,
    ) -> Result<Vec<SecretKey>> {
        let targets = self.next_payload(roles::TARGETS)?;
        let (ids, threshold) = self.role_binding(role, root, &targets)?;
        keys.signers(role, &ids, threshold)
    }

    /// How `role` is signed: its key files (at least its threshold), or
    /// the signer with the keys the root or the delegation gives the role.
    /// `targets` is the next targets payload.
    pub(crate) fn role_signer(
        &self,
        keys: &KeyDir,
        role: &str,
        root: &Value,
        targets: &Value,
    ) -> Result<RoleSigner> {
        let (ids, threshold) = self.role_binding(role, root, targets)?;
        let listed = if roles::TOP_LEVEL.contains(&role) {
            &root["signed"]["keys"]
        } else {
            &targets["delegations"]["keys"]
        };
        keys.role_signer(role, &ids, threshold, listed)
    }

    /// Adds a file as target `target_path` of `role` (`targets` or `feeds`),
    /// with custom fields (such as `version`). The file is copied into
    /// `targets/` under its hashed name now; clients see it after `publish`.
    pub fn add_target(
        &self,
        file: &Path,
        target_path: &str,
        custom: &BTreeMap<String, String>,
        role: &str,
    ) -> Result<Value> {
        let mut entries = self.add_targets(&[(file, target_path)], custom, role)?;
        entries
            .pop()
            .ok_or_else(|| RepoError::Invalid("no target was added".into()))
    }

    /// Adds many files at once, each `(file, target_path)` as
    /// [`RepoDir::add_target`] does, staging the role once: for releases and
    /// feeds of thousands of files.
    pub fn add_targets(
        &self,
        files: &[(&Path, &str)],
        custom: &BTreeMap<String, String>,
        role: &str,
    ) -> Result<Vec<Value>> {
        for (_, target_path) in files {
            check_target_path(target_path, role)?;
        }
        let published = self.published()?;
        let targets = self.next_payload_in(roles::TARGETS, &published)?;
        let mut payloads: BTreeMap<String, Value> = BTreeMap::new();
        let mut entries = Vec::with_capacity(files.len());
        for (file, target_path) in files {
            let owner = self.owner_of(target_path, role, &targets);
            let entry = self.store_target_file(file, target_path, custom)?;
            let payload = match payloads.entry(owner) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let payload = self.next_payload_in(v.key(), &published)?;
                    v.insert(payload)
                }
            };
            payload["targets"][*target_path] = entry.clone();
            entries.push(entry);
        }
        for (owner, payload) in &payloads {
            self.stage(owner, payload)?;
        }
        Ok(entries)
    }

    /// The role whose metadata lists `target_path` of `role`: for a package,
    /// its hashed bin if the repository has bins (`targets` is the next
    /// targets payload).
    fn owner_of(&self, target_path: &str, role: &str, targets: &Value) -> String {
        if role == roles::TARGETS
            && let Some(bin) = self.bin_of(target_path, targets)
        {
            return bin;
        }
        role.to_string()
    }

    /// Adds bytes as target `target_path` of `role` (used for the mirror list).
    pub(crate) fn add_target_bytes(
        &self,
        bytes: &[u8],
        target_path: &str,
        role: &str,
    ) -> Result<Value> {
        let hash = hex::encode(Sha256::digest(bytes));
        let dest = self
            .targets_dir()
            .join(roles::consistent_target_path(target_path, &hash));
        onionpkg_trust::util::write_atomic(&dest, bytes, Some(0o644))?;
        let entry = json!({ "length": bytes.len(), "hashes": { "sha256": hash } });
        let mut payload = self.next_payload(role)?;
        payload["targets"][target_path] = entry.clone();
        self.stage(role, &payload)?;
        Ok(entry)
    }

    /// Hashes `file` while copying it to a temp file in `targets/`, then
    /// renames it to its hashed name.
    fn store_target_file(
        &self,
        file: &Path,
        target_path: &str,
        custom: &BTreeMap<String, String>,
    ) -> Result<Value> {
        let mut src = std::fs::File::open(file).map_err(RepoError::io("opening", file))?;
        let tdir = self.targets_dir();
        let dest_dir = match target_path.rsplit_once('/') {
            Some((d, _)) => tdir.join(d),
            None => tdir.clone(),
        };
        std::fs::create_dir_all(&dest_dir).map_err(RepoError::io("creating", &dest_dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dest_dir)
            .map_err(RepoError::io("creating a temp file in", &dest_dir))?;
        let mut hasher = Sha256::new();
        let mut length: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = src.read(&mut buf).map_err(RepoError::io("reading", file))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            length += n as u64;
            tmp.write_all(&buf[..n])
                .map_err(RepoError::io("writing a copy of", file))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(RepoError::io("syncing a copy of", file))?;
        let hash = hex::encode(hasher.finalize());
        let dest = tdir.join(roles::consistent_target_path(target_path, &hash));
        tmp.persist(&dest)
            .map_err(|e| RepoError::io("renaming into place", &dest)(e.error))?;
        let mut entry = json!({ "length": length, "hashes": { "sha256": hash } });
        if !custom.is_empty() {
            entry["custom"] = json!(custom);
        }
        Ok(entry)
    }

    /// Removes target `target_path` from `role` at the next publish. The file
    /// stays under `targets/`: clients holding older metadata may still ask
    /// for it.
    pub fn remove_target(&self, target_path: &str, role: &str) -> Result<()> {
        let targets = self.next_payload(roles::TARGETS)?;
        let owner = self.owner_of(target_path, role, &targets);
        let mut payload = self.next_payload(&owner)?;
        let removed = payload["targets"]
            .as_object_mut()
            .and_then(|t| t.remove(target_path));
        if removed.is_none() {
            return Err(RepoError::Invalid(format!(
                "{role} has no target {target_path}"
            )));
        }
        self.stage(&owner, &payload)
    }

    /// Publishes: signs every staged role (and each role in `resign`) as a new
    /// version, then a new snapshot, then the timestamp. Returns the new
    /// timestamp version. Re-signing `targets` re-signs its hashed bins too:
    /// they hold the packages, expire with `targets`, and follow its keys.
    pub fn publish(
        &self,
        keys: &KeyDir,
        exp: &Expiries,
        resign: &[&str],
        now: Timestamp,
    ) -> Result<u64> {
        let published = self.published()?;
        let md = self.metadata_dir();
        let mut pins = published.snapshot["signed"]["meta"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // Targets first: its delegations decide who signs the delegated roles.
        let mut changed: Vec<String> = self.staged_roles()?;
        let add = |changed: &mut Vec<String>, role: &str| {
            if !changed.iter().any(|c| c == role) {
                changed.push(role.to_string());
            }
        };
        let published_bins: Vec<&String> = published
            .roles
            .keys()
            .filter(|r| roles::is_bin(r))
            .collect();
        for role in resign {
            // Snapshot and timestamp are new on every publish anyway.
            if [roles::SNAPSHOT, roles::TIMESTAMP].contains(role) {
                continue;
            }
            if !([roles::TARGETS, roles::MIRRORS, roles::FEEDS].contains(role)
                || roles::is_bin(role))
            {
                return Err(RepoError::Invalid(format!(
                    "cannot re-sign {role:?} on publish: give targets, mirrors, feeds or a bin (root changes go through `root`)"
                )));
            }
            add(&mut changed, role);
        }
        if resign.contains(&roles::TARGETS) {
            published_bins.iter().for_each(|b| add(&mut changed, b));
        }
        // After a targets key rotation whose root the offline holders
        // installed, the published targets no longer meets the root's
        // threshold: re-sign it now rather than publish a tree clients refuse.
        if !changed.iter().any(|c| c == roles::TARGETS)
            && !signed_by_root_keys(&published, roles::TARGETS)
        {
            changed.insert(0, roles::TARGETS.to_string());
        }
        let mut next_targets = self.next_payload_in(roles::TARGETS, &published)?;
        if changed.iter().any(|c| c == roles::TARGETS)
            && follow_targets_keys(&mut next_targets, &published.root)
        {
            // The targets keys were rotated: the bins follow them, and every
            // bin is re-signed with the new keys.
            self.stage(roles::TARGETS, &next_targets)?;
            published_bins.iter().for_each(|b| add(&mut changed, b));
        }
        // Load every needed key before writing anything: a missing key must
        // not leave a half-published repository. Bins share the targets keys:
        // each set of keys is loaded (and decrypted) once.
        let mut by_binding: BTreeMap<(Vec<String>, usize), std::rc::Rc<RoleSigner>> =
            BTreeMap::new();
        let mut signers: BTreeMap<String, std::rc::Rc<RoleSigner>> = BTreeMap::new();
        for role in changed
            .iter()
            .map(String::as_str)
            .chain([roles::SNAPSHOT, roles::TIMESTAMP])
        {
            let binding = self.role_binding(role, &published.root, &next_targets)?;
            let keys_for = match by_binding.get(&binding) {
                Some(k) => std::rc::Rc::clone(k),
                None => {
                    let k = std::rc::Rc::new(self.role_signer(
                        keys,
                        role,
                        &published.root,
                        &next_targets,
                    )?);
                    by_binding.insert(binding, std::rc::Rc::clone(&k));
                    k
                }
            };
            signers.insert(role.to_string(), keys_for);
        }
        let no_keys = RoleSigner::Files(Vec::new());
        let signer_of =
            |role: &str| -> &RoleSigner { signers.get(role).map_or(&no_keys, |s| s.as_ref()) };
        for role in &changed {
            let role = role.as_str();
            let mut payload = self.next_payload_in(role, &published)?;
            let old = published
                .roles
                .get(role)
                .map(|e| version_of(&e["signed"]))
                .unwrap_or(0);
            let version = old + 1;
            payload["version"] = json!(version);
            payload["expires"] = json!(exp.expires(role, now)?);
            let env = keys.sign(role, payload, signer_of(role), now)?;
            Self::write_json(&md.join(roles::versioned_name(role, version)), &env)?;
            pins.insert(format!("{role}.json"), json!({ "version": version }));
        }
        let snap_version = version_of(&published.snapshot["signed"]) + 1;
        let ts_version = version_of(&published.timestamp["signed"]) + 1;
        self.write_snapshot_and_timestamp(
            snap_version,
            pins,
            ts_version,
            keys,
            (signer_of(roles::SNAPSHOT), signer_of(roles::TIMESTAMP)),
            exp,
            now,
        )?;
        for role in &changed {
            let path = self.staged_dir().join(format!("{role}.json"));
            if path.exists() {
                std::fs::remove_file(&path).map_err(RepoError::io("removing", &path))?;
            }
        }
        tracing::info!(timestamp = ts_version, snapshot = snap_version, "published");
        if changed.iter().any(|c| c == roles::TARGETS) {
            // A new delegation of `mirrors` or `feeds` is in effect now: its
            // key takes the role's stable name. The publish is done; a key
            // directory that cannot be renamed in must not undo it.
            let before = published
                .roles
                .get(roles::TARGETS)
                .map(|e| delegated_role_ids(&e["signed"]))
                .unwrap_or_default();
            if let Err(e) = keys.settle(&before, &delegated_role_ids(&next_targets), now) {
                tracing::warn!(error = %e, "published, but the key files could not be put in order");
            }
        }
        Ok(ts_version)
    }

    /// Re-signs the timestamp alone with a new version and expiry (for cron).
    pub fn timestamp(&self, keys: &KeyDir, exp: &Expiries, now: Timestamp) -> Result<u64> {
        let published = self.published()?;
        let targets = self.next_payload_in(roles::TARGETS, &published)?;
        let signer = self.role_signer(keys, roles::TIMESTAMP, &published.root, &targets)?;
        let mut payload = published.timestamp["signed"].clone();
        let version = version_of(&payload) + 1;
        payload["version"] = json!(version);
        payload["expires"] = json!(exp.expires(roles::TIMESTAMP, now)?);
        let env = keys.sign(roles::TIMESTAMP, payload, &signer, now)?;
        Self::write_json(&self.metadata_dir().join("timestamp.json"), &env)?;
        Ok(version)
    }
}

/// Whether the published `role` carries signatures of at least the threshold
/// of the keys the current root gives it.
fn signed_by_root_keys(published: &crate::state::Published, role: &str) -> bool {
    let (ids, threshold) = binding(&published.root["signed"]["roles"][role]);
    let Some(env) = published.roles.get(role) else {
        return true;
    };
    let signers: std::collections::BTreeSet<&str> = env["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["keyid"].as_str())
        .collect();
    ids.iter()
        .filter(|id| signers.contains(id.as_str()))
        .count()
        >= threshold
}

/// Points the hashed-bin delegations of the targets payload `targets` at the
/// keys and threshold `root` gives the targets role. Returns whether anything
/// changed.
fn follow_targets_keys(targets: &mut Value, root: &Value) -> bool {
    let (ids, threshold) = binding(&root["signed"]["roles"][roles::TARGETS]);
    let Some(list) = targets["delegations"]["roles"].as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for role in list
        .iter_mut()
        .filter(|r| r["name"].as_str().is_some_and(roles::is_bin))
    {
        if binding(role) != (ids.clone(), threshold) {
            role["keyids"] = json!(ids);
            role["threshold"] = json!(threshold);
            changed = true;
        }
    }
    if changed {
        for id in &ids {
            targets["delegations"]["keys"][id] = root["signed"]["keys"][id].clone();
        }
        prune_delegation_keys(targets);
    }
    changed
}

/// Drops the keys of a targets payload's delegations block that no delegated
/// role names any more (after a rotation).
pub(crate) fn prune_delegation_keys(targets: &mut Value) {
    let used: std::collections::BTreeSet<String> = targets["delegations"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| binding(r).0)
        .collect();
    if let Some(keys) = targets["delegations"]["keys"].as_object_mut() {
        keys.retain(|id, _| used.contains(id));
    }
}

/// Checks that `target_path` is safe and belongs to `role`.
fn check_target_path(target_path: &str, role: &str) -> Result<()> {
    if !roles::is_safe_target_path(target_path) {
        return Err(RepoError::Invalid(format!(
            "{target_path:?} is not a safe target path (relative, no '..', no empty parts)"
        )));
    }
    match role {
        roles::TARGETS
            if target_path == roles::MIRRORS_TARGET || target_path.starts_with("feeds/") =>
        {
            return Err(RepoError::Invalid(format!(
                "{target_path} belongs to a delegated role; use `mirrors set` or `--role feeds`"
            )));
        }
        roles::TARGETS => {}
        roles::FEEDS
            if target_path.split('/').count() == 3 && target_path.starts_with("feeds/") => {}
        roles::FEEDS => {
            return Err(RepoError::Invalid(format!(
                "feed targets are named feeds/NAME/FILE, not {target_path}"
            )));
        }
        other => {
            return Err(RepoError::Invalid(format!(
                "targets can be added to `targets` or `feeds`, not {other:?}"
            )));
        }
    }
    Ok(())
}

/// Key ids of the delegated `mirrors` and `feeds` roles in a targets payload.
fn delegated_role_ids(targets: &Value) -> crate::keydir::RoleKeyIds {
    targets["delegations"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let name = r["name"].as_str()?;
            roles::DELEGATED
                .contains(&name)
                .then(|| (name.to_string(), binding(r).0))
        })
        .collect()
}
