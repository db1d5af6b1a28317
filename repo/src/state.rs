//! The repository directory: published metadata, staged changes, expiries.
//!
//! Layout of a repository directory:
//! - `metadata/`: published, served by mirrors. `N.root.json` for every root
//!   version and `root.json` (the newest), `N.targets.json`, `N.mirrors.json`,
//!   `N.feeds.json`, `N.snapshot.json`, and `timestamp.json`.
//! - `targets/`: published target files at `dir/SHA256.basename`.
//! - `staged/`: the next payload of a role that changed since the last
//!   publish, unsigned (`ROLE.json`), and a root draft being signed
//!   (`root.json`). Not served.
//!
//! Every published file but `timestamp.json` is new on each publish and never
//! rewritten, and `timestamp.json` is written last, so a client (or a mirror
//! syncing) sees either the old repository or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use onionpkg_trust::roles;

use crate::err::{RepoError, Result};

/// The TUF specification version our metadata declares.
pub const SPEC_VERSION: &str = "1.0.31";

/// How long each role's metadata stays valid after signing.
#[derive(Debug, Clone)]
pub struct Expiries(BTreeMap<String, SignedDuration>);

impl Default for Expiries {
    /// root 365 days, targets 90, mirrors 30, feeds 7, snapshot 7, timestamp 1.
    fn default() -> Self {
        let day = |d: i64| SignedDuration::from_hours(24 * d);
        Self(BTreeMap::from([
            (roles::ROOT.to_string(), day(365)),
            (roles::TARGETS.to_string(), day(90)),
            (roles::MIRRORS.to_string(), day(30)),
            (roles::FEEDS.to_string(), day(7)),
            (roles::SNAPSHOT.to_string(), day(7)),
            (roles::TIMESTAMP.to_string(), day(1)),
        ]))
    }
}

impl Expiries {
    /// Overrides the validity of `role`.
    pub fn set(&mut self, role: &str, d: SignedDuration) -> Result<()> {
        if !self.0.contains_key(role) {
            return Err(RepoError::Invalid(format!("unknown role {role:?}")));
        }
        if d <= SignedDuration::ZERO {
            return Err(RepoError::Invalid(format!(
                "the validity of {role} must be positive"
            )));
        }
        self.0.insert(role.to_string(), d);
        Ok(())
    }

    /// The expiry time of `role` metadata signed at `now`, in whole seconds.
    /// Hashed bins hold packages, so they live as long as `targets`.
    pub fn expires(&self, role: &str, now: Timestamp) -> Result<String> {
        let role = if roles::is_bin(role) {
            roles::TARGETS
        } else {
            role
        };
        let d = self
            .0
            .get(role)
            .copied()
            .unwrap_or(SignedDuration::from_hours(24));
        let t = now
            .checked_add(d)
            .map_err(|e| RepoError::Invalid(format!("expiry of {role}: {e}")))?;
        Ok(tuf_time(t))
    }
}

/// A time as TUF metadata writes it: whole seconds, `YYYY-MM-DDTHH:MM:SSZ`
/// (python-tuf refuses fractional seconds).
pub fn tuf_time(t: Timestamp) -> String {
    let whole = Timestamp::from_second(t.as_second()).unwrap_or(t);
    whole.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A repository directory on the release side.
#[derive(Debug, Clone)]
pub struct RepoDir {
    dir: PathBuf,
}

/// The file every writer of a repository locks: `REPO/.lock`.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive hold on a repository, released when dropped.
///
/// Every change to a repository reads the published state, then writes the
/// next versions; two writers at once (a release manager's `publish` and the
/// feed companion's) would both write snapshot N+1 and one would overwrite
/// the other. `onionpkg-repo` takes this lock for every command that writes,
/// and so does the feed companion.
#[derive(Debug)]
pub struct RepoLock {
    _file: std::fs::File,
}

/// The published state: every role's current envelope.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// The newest root.
    pub(crate) root: Value,
    /// The current timestamp.
    pub(crate) timestamp: Value,
    /// The snapshot the timestamp pins.
    pub(crate) snapshot: Value,
    /// The targets roles the snapshot pins, by role name.
    pub(crate) roles: BTreeMap<String, Value>,
}

impl RepoDir {
    /// The repository at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `metadata/`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    /// `targets/`.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    /// `staged/`.
    pub fn staged_dir(&self) -> PathBuf {
        self.dir.join("staged")
    }

    /// Checks that the directory holds a repository with an installed root;
    /// the error says what to do otherwise. Creates nothing.
    pub fn check_exists(&self) -> Result<()> {
        if self.metadata_dir().join("root.json").is_file() {
            return Ok(());
        }
        let draft = self.root_draft_path();
        if self.metadata_dir().is_dir() && draft.is_file() {
            return Err(RepoError::FirstRootPending {
                dir: self.dir.clone(),
                draft,
            });
        }
        Err(RepoError::NotARepository {
            dir: self.dir.clone(),
        })
    }

    /// Takes the writer lock of an existing repository (its root installed,
    /// or its first root awaiting signatures), waiting for another writer to
    /// finish; `waiting` is called once if it has to wait. A directory that
    /// holds no repository is refused, and nothing is created in it.
    pub fn lock(&self, waiting: impl FnOnce()) -> Result<RepoLock> {
        match self.check_exists() {
            Ok(()) | Err(RepoError::FirstRootPending { .. }) => {}
            Err(e) => return Err(e),
        }
        self.take_lock(waiting)
    }

    /// Takes the writer lock for `init`, creating the directory if needed.
    pub fn lock_new(&self, waiting: impl FnOnce()) -> Result<RepoLock> {
        std::fs::create_dir_all(&self.dir).map_err(RepoError::io("creating", &self.dir))?;
        self.take_lock(waiting)
    }

    fn take_lock(&self, waiting: impl FnOnce()) -> Result<RepoLock> {
        let path = self.dir.join(LOCK_FILE);
        let file =
            onionpkg_trust::util::open_lock_file(&path).map_err(RepoError::io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(RepoError::io("locking", &path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(RepoError::io("locking", &path)(e));
            }
        }
        Ok(RepoLock { _file: file })
    }

    pub(crate) fn read_json(path: &Path) -> Result<Value> {
        let bytes = std::fs::read(path).map_err(RepoError::io("reading", path))?;
        serde_json::from_slice(&bytes).map_err(|e| RepoError::bad(path, format!("not JSON: {e}")))
    }

    pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| RepoError::Invalid(format!("serializing {}: {e}", path.display())))?;
        bytes.push(b'\n');
        onionpkg_trust::util::write_atomic(path, &bytes, Some(0o644))?;
        Ok(())
    }

    /// Reads the published state.
    pub(crate) fn published(&self) -> Result<Published> {
        let md = self.metadata_dir();
        let root = Self::read_json(&md.join("root.json"))?;
        let ts_path = md.join("timestamp.json");
        let timestamp = Self::read_json(&ts_path)?;
        let snap_version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
            .as_u64()
            .ok_or_else(|| RepoError::bad(&ts_path, "does not pin a snapshot version"))?;
        let snap_path = md.join(roles::versioned_name(roles::SNAPSHOT, snap_version));
        let snapshot = Self::read_json(&snap_path)?;
        let mut role_files = BTreeMap::new();
        if let Some(meta) = snapshot["signed"]["meta"].as_object() {
            for (file, pin) in meta {
                let role = file.strip_suffix(".json").unwrap_or(file);
                let v = pin["version"]
                    .as_u64()
                    .ok_or_else(|| RepoError::bad(&snap_path, format!("no version for {file}")))?;
                let env = Self::read_json(&md.join(roles::versioned_name(role, v)))?;
                role_files.insert(role.to_string(), env);
            }
        }
        Ok(Published {
            root,
            timestamp,
            snapshot,
            roles: role_files,
        })
    }

    /// The staged payload of `role`, if it changed since the last publish.
    pub(crate) fn staged(&self, role: &str) -> Result<Option<Value>> {
        let path = self.staged_dir().join(format!("{role}.json"));
        if path.exists() {
            Self::read_json(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The targets roles with changes staged for the next publish: `targets`,
    /// `mirrors`, `feeds`, then the hashed bins in name order.
    pub fn staged_roles(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for role in [roles::TARGETS, roles::MIRRORS, roles::FEEDS] {
            if self.staged(role)?.is_some() {
                out.push(role.to_string());
            }
        }
        let dir = self.staged_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RepoError::io("listing", &dir)(e)),
        };
        let mut bins = Vec::new();
        for entry in entries {
            let entry = entry.map_err(RepoError::io("listing", &dir))?;
            let name = entry.file_name();
            if let Some(role) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && roles::is_bin(role)
            {
                bins.push(role.to_string());
            }
        }
        bins.sort();
        out.extend(bins);
        Ok(out)
    }

    /// The payload `role` will have at the next publish: staged, else
    /// published, else (for a hashed bin that never held a package) empty.
    pub(crate) fn next_payload(&self, role: &str) -> Result<Value> {
        if let Some(v) = self.staged(role)? {
            return Ok(v);
        }
        Self::published_payload(role, &self.published()?)
    }

    /// [`RepoDir::next_payload`] against an already read published state.
    pub(crate) fn next_payload_in(&self, role: &str, published: &Published) -> Result<Value> {
        if let Some(v) = self.staged(role)? {
            return Ok(v);
        }
        Self::published_payload(role, published)
    }

    fn published_payload(role: &str, published: &Published) -> Result<Value> {
        if let Some(env) = published.roles.get(role) {
            return Ok(env["signed"].clone());
        }
        if roles::is_bin(role) {
            return Ok(serde_json::json!({
                "_type": "targets", "spec_version": SPEC_VERSION, "version": 0,
                "expires": published.timestamp["signed"]["expires"].clone(), "targets": {},
            }));
        }
        Err(RepoError::Invalid(format!(
            "the repository has no role {role:?}"
        )))
    }

    /// The hashed bin that holds package `target_path` at the next publish,
    /// or `None` when the repository keeps packages in `targets` itself.
    pub(crate) fn bin_of(&self, target_path: &str, targets: &Value) -> Option<String> {
        let hash = roles::path_hash(target_path);
        targets["delegations"]["roles"]
            .as_array()?
            .iter()
            .filter(|r| r["name"].as_str().is_some_and(roles::is_bin))
            .find(|r| {
                r["path_hash_prefixes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|p| hash.starts_with(p))
            })
            .and_then(|r| r["name"].as_str().map(str::to_string))
    }

    /// Stages the next payload of `role`.
    pub(crate) fn stage(&self, role: &str, payload: &Value) -> Result<()> {
        Self::write_json(&self.staged_dir().join(format!("{role}.json")), payload)
    }
}

/// The version of a payload (the `signed` part of an envelope).
pub(crate) fn version_of(signed: &Value) -> u64 {
    signed["version"].as_u64().unwrap_or(0)
}

/// The key ids and threshold a `roles` entry (root) or delegation declares.
pub(crate) fn binding(entry: &Value) -> (Vec<String>, usize) {
    let ids = entry["keyids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let threshold = entry["threshold"].as_u64().unwrap_or(1) as usize;
    (ids, threshold)
}
