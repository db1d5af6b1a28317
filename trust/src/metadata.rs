//! Repository metadata verification, after The Update Framework 1.0.
//!
//! The state machine (thresholds, rollback, expiry, root chain, delegation
//! search) is `sigstore-tuf`'s [`TrustedMetadataSet`](sigstore_tuf::TrustedMetadataSet)
//! driven by its [`Updater`](sigstore_tuf::Updater); this module wraps it into
//! the [`Client`] onionpkg uses, and adds what onionpkg needs on top:
//! - typed errors ([`VerifyError`]) that tell each attack apart;
//! - size caps per role ([`crate::roles`]) that every transport must enforce
//!   while reading ([`FetchError::TooLarge`]);
//! - a delegated role that lists a target outside its delegated paths is
//!   refused as a whole ([`VerifyError::OutsideDelegation`]), not silently
//!   ignored: in the onionpkg layout it can only mean a compromised key;
//! - streaming verification of large targets ([`TargetVerifier`]), so that a
//!   package is never held in memory and never trusted before its last byte;
//! - keys of a scheme onionpkg does not verify (see [`crate::keys`]) count
//!   towards no threshold, and are named where a threshold is missed and
//!   where a role's keys are read ([`role_keys`]).
//!
//! # Invariants
//! - `now` always comes from the caller (see [`crate::clock`]).
//! - With a store directory, trusted versions persist across runs, so a
//!   rollback or a replay is caught after a restart too.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest;
/// What a [`Repository`] returns for one fetch: the body, or `None` when absent.
pub use sigstore_tuf::transport::FetchFuture;

pub use sigstore_tuf::{Repository, Root, TargetFile};

use crate::keys::RoleKeys;
use crate::roles;

mod bindings;
mod errors;
#[cfg(test)]
mod tests;

pub use bindings::role_keys;
use errors::{Context, map_err, pinned_root_error};
pub use errors::{FetchError, VerifyError};

/// A repository that answers a fetch of a targets role's versioned metadata
/// (`N.ROLE.json`, top-level or delegated) from the store of trusted metadata
/// when the store holds version N of that role, and asks `inner` otherwise.
///
/// sigstore-tuf keeps a targets role it verified in the store, but fetches it
/// again in a new process once the snapshot moved. With hashed bins that would mean one round trip
/// per bin on every `download --all`; this way only the bins whose version the
/// snapshot moved are fetched. The stored bytes are not trusted for being
/// there: they go through the same checks as a download (the snapshot's pin,
/// the delegator's keys and threshold, expiry).
///
/// A stored copy that fails those checks (a damaged or tampered store) must
/// not block updates: the files served are recorded in `served`, and
/// [`Client`] removes them and asks again once when a call fails.
struct StoreCached<R> {
    inner: R,
    dir: PathBuf,
    served: Served,
}

/// The store files a [`StoreCached`] answered from since it was last asked.
type Served = std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>;

impl<R> StoreCached<R> {
    fn cached(&self, name: &str, max_length: u64) -> Option<Vec<u8>> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            signed: Signed,
        }
        #[derive(serde::Deserialize)]
        struct Signed {
            version: u64,
        }
        let (version, rest) = name.split_once('.')?;
        let version: u64 = version.parse().ok()?;
        let role = rest.strip_suffix(".json")?;
        let plain = !role.is_empty()
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // Root, snapshot and timestamp have their own rules in sigstore-tuf
        // (the chain walk, the timestamp's pin); targets and the roles it
        // delegates are what this saves.
        if !plain || [roles::ROOT, roles::SNAPSHOT, roles::TIMESTAMP].contains(&role) {
            return None;
        }
        let path = self.dir.join(format!("{role}.json"));
        if std::fs::metadata(&path).ok()?.len() > max_length {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let env: Envelope = serde_json::from_slice(&bytes).ok()?;
        if env.signed.version != version {
            return None;
        }
        if let Ok(mut served) = self.served.lock() {
            served.push(path);
        }
        Some(bytes)
    }
}

impl<R: Repository> Repository for StoreCached<R> {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        match self.cached(name, max_length) {
            Some(bytes) => {
                tracing::debug!(%name, "unchanged delegated role taken from the store");
                Box::pin(async move { Ok(Some(bytes)) })
            }
            None => self.inner.fetch_metadata(name, max_length),
        }
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.inner.fetch_target(path, max_length)
    }
}

/// The store of trusted metadata, on disk, with an optional staging area.
///
/// While staging, what the updater verifies is kept in memory and read back
/// from there, except the roots: a root is signed by root keys, whatever the
/// mirror that served it is judged to be, so the chain of roots is written
/// through at once. [`StagedStore::commit`] writes the staged files to disk
/// in publish order (everything, then `snapshot.json`, then
/// `timestamp.json`, so a crash midway leaves an older, consistent set the
/// updater re-verifies) and writes through from then on. Dropping a staging
/// store without committing forgets what it staged: metadata from a mirror
/// the caller refused never becomes a floor.
struct StagedStore {
    inner: sigstore_tuf::FileStore,
    /// `Some` while staging: the files verified since, in order.
    staged: std::sync::Mutex<Option<Vec<StagedFile>>>,
}

/// A verified file kept until commit: its store name and bytes.
type StagedFile = (String, Vec<u8>);

impl StagedStore {
    fn is_root(name: &str) -> bool {
        name == "root.json" || name.starts_with("root_history/")
    }

    fn commit(&self) -> sigstore_tuf::Result<()> {
        use sigstore_tuf::MetadataStore as _;
        let staged = match self.staged.lock() {
            Ok(mut s) => s.take(),
            Err(_) => return Err(sigstore_tuf::Error::Malformed("store lock poisoned".into())),
        };
        let Some(mut files) = staged else {
            return Ok(());
        };
        // Later writes of a name replace earlier ones; the pinning files go
        // last, so a crash leaves what they pin in place before them.
        let rank = |n: &str| match n {
            "timestamp.json" => 2,
            "snapshot.json" => 1,
            _ => 0,
        };
        files.sort_by_key(|(n, _)| rank(n));
        for (name, bytes) in &files {
            self.inner.store(name, bytes)?;
        }
        Ok(())
    }
}

impl sigstore_tuf::MetadataStore for StagedStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if let Ok(staged) = self.staged.lock()
            && let Some(files) = staged.as_ref()
            && let Some((_, bytes)) = files.iter().rev().find(|(n, _)| n == name)
        {
            return Ok(Some(bytes.clone()));
        }
        self.inner.load(name)
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        if !Self::is_root(name)
            && let Ok(mut staged) = self.staged.lock()
            && let Some(files) = staged.as_mut()
        {
            files.push((name.to_owned(), bytes.to_vec()));
            return Ok(());
        }
        self.inner.store(name, bytes)
    }
}

/// A [`StagedStore`] shared by the updater and the [`Client`] that commits it.
#[derive(Clone)]
struct SharedStore(std::sync::Arc<StagedStore>);

impl sigstore_tuf::MetadataStore for SharedStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        self.0.load(name)
    }
    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        self.0.store(name, bytes)
    }
}

/// A verifying client of one repository: refreshes metadata and resolves targets.
pub struct Client {
    updater: sigstore_tuf::Updater,
    /// What the store answered for the current call (none without a store).
    served: Served,
    /// The store, to commit what it staged.
    store: Option<SharedStore>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("root_version", &self.root().version)
            .finish()
    }
}

impl Client {
    /// Starts from a pinned root (the bytes of a trusted `root.json`) over
    /// `repo`. With `store`, trusted metadata persists in that directory and
    /// its versions are the floor for every later refresh.
    pub fn new(
        root: &[u8],
        store: Option<&Path>,
        repo: impl Repository + 'static,
    ) -> Result<Self, VerifyError> {
        Self::build(root, store, repo, false)
    }

    /// Like [`Client::new`], but what a refresh verifies is only staged,
    /// not stored, until [`Client::commit`]: the caller can still refuse the
    /// mirror (frozen, equivocating) without its metadata becoming the
    /// floor for the next run. Roots are stored at once: they are signed by
    /// the root keys, whoever served them.
    pub fn new_staged(
        root: &[u8],
        store: &Path,
        repo: impl Repository + 'static,
    ) -> Result<Self, VerifyError> {
        Self::build(root, Some(store), repo, true)
    }

    fn build(
        root: &[u8],
        store: Option<&Path>,
        repo: impl Repository + 'static,
        staged: bool,
    ) -> Result<Self, VerifyError> {
        crate::crypto::install();
        let mut config = sigstore_tuf::UpdaterConfig::default();
        config.root_max_length = roles::ROOT_MAX_BYTES;
        config.timestamp_max_length = roles::TIMESTAMP_MAX_BYTES;
        config.snapshot_max_length = roles::SNAPSHOT_MAX_BYTES;
        config.targets_max_length = roles::TARGETS_MAX_BYTES;
        // Target lengths are signed, and transports cap reads at that length;
        // this bound only guards the buffered path of `fetch_target`.
        config.target_max_length = 64 * 1024 * 1024;
        let served = Served::default();
        let (updater, store) = match store {
            Some(dir) => {
                let repo = StoreCached {
                    inner: repo,
                    dir: dir.to_path_buf(),
                    served: std::sync::Arc::clone(&served),
                };
                let shared = SharedStore(std::sync::Arc::new(StagedStore {
                    inner: sigstore_tuf::FileStore::new(dir),
                    staged: std::sync::Mutex::new(staged.then(Vec::new)),
                }));
                let updater = sigstore_tuf::Updater::new(repo, root)
                    .map_err(|e| pinned_root_error(e, root))?
                    .with_config(config)
                    .with_store(shared.clone());
                (updater, Some(shared))
            }
            None => (
                sigstore_tuf::Updater::new(repo, root)
                    .map_err(|e| pinned_root_error(e, root))?
                    .with_config(config),
                None,
            ),
        };
        Ok(Self {
            updater,
            served,
            store,
        })
    }

    /// Stores what was staged since [`Client::new_staged`] (the verified
    /// metadata becomes the floor of later runs) and stores everything
    /// verified from now on at once. Does nothing for a client that does
    /// not stage.
    pub fn commit(&self) -> Result<(), VerifyError> {
        match &self.store {
            Some(store) => store.0.commit().map_err(|e| map_err(e, Context::Metadata)),
            None => Ok(()),
        }
    }

    /// Runs the TUF refresh: root chain, timestamp, snapshot, top-level
    /// targets. `now` is the time for expiry checks.
    pub async fn refresh(&mut self, now: jiff::Timestamp) -> Result<(), VerifyError> {
        self.take_served();
        let mut result = self.updater.refresh(now).await;
        if result.is_err() && self.forget_served() {
            result = self.updater.refresh(now).await;
        }
        result.map_err(|e| self.explain(map_err(e, Context::Metadata)))
    }

    /// Adds to a missed threshold the role's keys onionpkg cannot verify.
    fn explain(&self, e: VerifyError) -> VerifyError {
        let trusted = self.updater.trusted();
        let delegations = trusted
            .targets_role(roles::TARGETS)
            .and_then(|t| t.delegations.as_ref());
        bindings::explain(e, Some(trusted.root()), delegations)
    }

    /// Clears the record of store files served.
    fn take_served(&self) -> Vec<PathBuf> {
        self.served
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// After a failed call: removes the store files it was answered from, so
    /// that a retry asks the mirror. Returns whether there were any.
    fn forget_served(&self) -> bool {
        let served = self.take_served();
        for path in &served {
            tracing::warn!(file = %path.display(), "a stored copy of metadata failed verification; fetching it again");
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove the stored copy");
                return false;
            }
        }
        !served.is_empty()
    }

    /// Refreshes at the time the clock policy gives: refuses a clock behind
    /// the signed time floor, and checks expiry with the policy's tolerance.
    /// Returns the time used.
    pub async fn refresh_with(
        &mut self,
        clock: &crate::clock::ClockPolicy,
    ) -> Result<jiff::Timestamp, crate::Error> {
        let now = clock.now()?;
        self.refresh(clock.expiry_now(now)).await?;
        Ok(now)
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        self.updater.trusted().root()
    }

    /// The version of the trusted timestamp, if one is trusted.
    pub fn timestamp_version(&self) -> Option<u64> {
        self.updater.trusted().timestamp().map(|t| t.version)
    }

    /// The expiry of the trusted timestamp, if one is trusted.
    pub fn timestamp_expires(&self) -> Option<jiff::Timestamp> {
        self.updater.trusted().timestamp().map(|t| t.expires)
    }

    /// The version of the trusted snapshot, if one is trusted.
    pub fn snapshot_version(&self) -> Option<u64> {
        self.updater.trusted().snapshot().map(|s| s.version)
    }

    /// The keys and threshold the trusted root gives `role`.
    pub fn role_keys(&self, role: &str) -> Result<RoleKeys, VerifyError> {
        role_keys(self.root(), role)
    }

    /// Resolves a target through the delegation tree.
    pub async fn target_info(
        &mut self,
        path: &str,
        now: jiff::Timestamp,
    ) -> Result<TargetFile, VerifyError> {
        self.take_served();
        let mut found = self.updater.get_target_info(path, now).await;
        if found.is_err() && self.forget_served() {
            found = self.updater.get_target_info(path, now).await;
        }
        let found = found.map_err(|e| self.explain(map_err(e, Context::Metadata)))?;
        self.check_delegations()?;
        found.ok_or_else(|| VerifyError::TargetNotFound(path.to_string()))
    }

    /// Fetches and verifies a small target into memory (mirror list, feed
    /// indexes). Large targets go through [`TargetVerifier`] instead.
    pub async fn fetch_target(
        &mut self,
        path: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<u8>, VerifyError> {
        let info = self.target_info(path, now).await?;
        self.updater
            .download_target(&info, path)
            .await
            .map_err(|e| map_err(e, Context::Target(path, info.length)))
    }

    /// Every target listed by the top-level targets role and the delegated
    /// roles loaded so far, with the role that lists it.
    pub fn known_targets(&self) -> Vec<(String, String)> {
        let trusted = self.updater.trusted();
        let mut out = Vec::new();
        let mut names = vec![roles::TARGETS.to_string()];
        if let Some(d) = trusted
            .targets_role(roles::TARGETS)
            .and_then(|t| t.delegations.as_ref())
        {
            names.extend(d.roles.iter().map(|r| r.name.clone()));
        }
        for name in names {
            if let Some(t) = trusted.targets_role(&name) {
                out.extend(t.targets.keys().map(|p| (name.clone(), p.clone())));
            }
        }
        out
    }

    /// The names of the roles the top-level targets role delegates to.
    pub fn delegated_roles(&self) -> Vec<String> {
        self.updater
            .trusted()
            .targets_role(roles::TARGETS)
            .and_then(|t| t.delegations.as_ref())
            .map(|d| d.roles.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Loads a role the top-level targets role delegates to, so its targets
    /// show in [`Client::known_targets`]. sigstore-tuf loads delegated roles
    /// only while resolving a path, so we resolve a path made from the role's
    /// first path pattern. A role delegated by hash prefixes only, or whose
    /// pattern yields no matching path, is left unloaded.
    pub async fn load_delegated(
        &mut self,
        role: &str,
        now: jiff::Timestamp,
    ) -> Result<(), VerifyError> {
        let probe = self
            .updater
            .trusted()
            .targets_role(roles::TARGETS)
            .and_then(|t| t.delegations.as_ref())
            .and_then(|d| d.roles.iter().find(|r| r.name == role))
            .and_then(probe_path);
        let Some(probe) = probe else {
            return Ok(());
        };
        match self.target_info(&probe, now).await {
            Ok(_) | Err(VerifyError::TargetNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Loads every role the top-level targets role delegates to (mirrors,
    /// feeds, hashed bins), so that [`Client::known_targets`] lists every
    /// target. Roles unchanged since the last run come from the store.
    pub async fn load_all_delegated(&mut self, now: jiff::Timestamp) -> Result<(), VerifyError> {
        for role in self.delegated_roles() {
            self.load_delegated(&role, now).await?;
        }
        Ok(())
    }

    /// Refuses any loaded delegated role that lists a target outside the paths
    /// delegated to it.
    fn check_delegations(&self) -> Result<(), VerifyError> {
        let trusted = self.updater.trusted();
        let Some(delegations) = trusted
            .targets_role(roles::TARGETS)
            .and_then(|t| t.delegations.as_ref())
        else {
            return Ok(());
        };
        for role in &delegations.roles {
            let Some(targets) = trusted.targets_role(&role.name) else {
                continue;
            };
            for path in targets.targets.keys() {
                let inside = role
                    .matches_path(path)
                    .map_err(|e| VerifyError::Malformed(e.to_string()))?;
                if !inside {
                    return Err(VerifyError::OutsideDelegation {
                        role: role.name.clone(),
                        path: path.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Most tries spent looking for a path whose hash starts with a delegation's
/// hash prefix: enough for a 4-hex-digit prefix (expected 65,536 tries) many
/// times over; hashed bins use 2 digits.
const MAX_PROBE_TRIES: u32 = 1 << 20;

/// A target path that `role` is delegated: for hash prefixes, a path whose
/// hash starts with the first prefix, found by trying; for path patterns, the
/// first pattern with each glob character replaced by a literal it accepts.
fn probe_path(role: &sigstore_tuf::DelegatedRole) -> Option<String> {
    if let Some(prefixes) = &role.path_hash_prefixes {
        let prefix = prefixes.first()?;
        if prefix.len() > 4 {
            return None;
        }
        return (0..MAX_PROBE_TRIES)
            .map(|n| format!("onionpkg-probe/{n}"))
            .find(|p| roles::path_hash(p).starts_with(prefix.as_str()))
            .filter(|p| role.matches_path(p).unwrap_or(false));
    }
    let pattern = role.paths.as_ref()?.first()?;
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => out.push('x'),
            '[' => {
                // The first literal of a class; a negated class is skipped.
                let first = chars.next()?;
                if first == '!' {
                    return None;
                }
                out.push(first);
                for k in chars.by_ref() {
                    if k == ']' {
                        break;
                    }
                }
            }
            other => out.push(other),
        }
    }
    role.matches_path(&out).ok()?.then_some(out)
}

/// Checks a root file on its own: well-formed and signed by its own root
/// threshold. This is what `init --root FILE` runs before trusting a root.
pub fn check_root(bytes: &[u8]) -> Result<Root, VerifyError> {
    crate::crypto::install();
    let set = sigstore_tuf::TrustedMetadataSet::from_root(bytes)
        .map_err(|e| pinned_root_error(e, bytes))?;
    Ok(set.root().clone())
}

/// Verifies a target while it streams in: caps it at the signed length and
/// hashes it on the way, so that nothing is trusted before the last byte.
pub struct TargetVerifier {
    path: String,
    length: u64,
    seen: u64,
    sha256: Option<(Vec<u8>, sha2::Sha256)>,
    sha512: Option<(Vec<u8>, sha2::Sha512)>,
}

impl std::fmt::Debug for TargetVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetVerifier")
            .field("path", &self.path)
            .field("length", &self.length)
            .field("seen", &self.seen)
            .finish()
    }
}

impl TargetVerifier {
    /// Starts verifying `path` against its signed `info`. Refuses a target
    /// with no sha256 or sha512 hash: it could not be verified.
    pub fn new(path: &str, info: &TargetFile) -> Result<Self, VerifyError> {
        let decode = |algo: &str| -> Result<Option<Vec<u8>>, VerifyError> {
            info.hashes
                .get(algo)
                .map(|h| {
                    hex::decode(h).map_err(|_| {
                        VerifyError::Malformed(format!("{path}: {algo} hash is not hex"))
                    })
                })
                .transpose()
        };
        let sha256 = decode("sha256")?.map(|h| (h, sha2::Sha256::new()));
        let sha512 = decode("sha512")?.map(|h| (h, sha2::Sha512::new()));
        if sha256.is_none() && sha512.is_none() {
            return Err(VerifyError::Malformed(format!(
                "{path}: no sha256 or sha512 hash to verify against"
            )));
        }
        Ok(Self {
            path: path.to_string(),
            length: info.length,
            seen: 0,
            sha256,
            sha512,
        })
    }

    /// The signed length: read no more than this.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Bytes seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Feeds the next chunk. Fails as soon as the target runs past its length.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), VerifyError> {
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if self.seen > self.length {
            return Err(VerifyError::TargetTooLong {
                path: self.path.clone(),
                length: self.length,
            });
        }
        if let Some((_, h)) = &mut self.sha256 {
            h.update(chunk);
        }
        if let Some((_, h)) = &mut self.sha512 {
            h.update(chunk);
        }
        Ok(())
    }

    /// Checks length and every hash once all bytes are in.
    pub fn finish(self) -> Result<(), VerifyError> {
        if self.seen != self.length {
            return Err(VerifyError::TargetTooShort {
                path: self.path,
                length: self.length,
                got: self.seen,
            });
        }
        let ok256 = self
            .sha256
            .map(|(want, h)| h.finalize().as_slice() == want.as_slice())
            .unwrap_or(true);
        let ok512 = self
            .sha512
            .map(|(want, h)| h.finalize().as_slice() == want.as_slice())
            .unwrap_or(true);
        if ok256 && ok512 {
            Ok(())
        } else {
            Err(VerifyError::TargetHashMismatch { path: self.path })
        }
    }

    /// Verifies a whole target held in memory.
    pub fn verify_bytes(path: &str, info: &TargetFile, bytes: &[u8]) -> Result<(), VerifyError> {
        let mut v = Self::new(path, info)?;
        v.update(bytes)?;
        v.finish()
    }
}

/// Where target `path` is stored in a repository: under consistent
/// snapshots `dir/HASH.name`, named by its sha256 when it has one, else by
/// its sha512 (the two hashes a target is verified by, in the order
/// sigstore-tuf and python-tuf repositories use); otherwise `path` itself.
pub fn stored_target_path(
    path: &str,
    info: &TargetFile,
    consistent: bool,
) -> Result<String, VerifyError> {
    if !consistent {
        return Ok(path.to_owned());
    }
    let hash = ["sha256", "sha512"]
        .iter()
        .find_map(|algo| info.hashes.get(*algo))
        .ok_or_else(|| {
            VerifyError::Malformed(format!(
                "{path}: no sha256 or sha512 hash to locate it under consistent snapshots"
            ))
        })?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::Malformed(format!(
            "{path}: its hash is not hex"
        )));
    }
    Ok(roles::consistent_target_path(path, hash))
}

/// A repository tree on the local filesystem (`metadata/` and `targets/`),
/// read with the same size caps as a network transport. Used by
/// `onionpkg-repo verify` and by tests.
#[derive(Debug, Clone)]
pub struct FsRepository {
    metadata: PathBuf,
    targets: PathBuf,
}

impl FsRepository {
    /// A repository whose metadata and targets live in the given directories.
    pub fn new(metadata: impl Into<PathBuf>, targets: impl Into<PathBuf>) -> Self {
        Self {
            metadata: metadata.into(),
            targets: targets.into(),
        }
    }

    /// The onionpkg layout: `DIR/metadata` and `DIR/targets`.
    pub fn from_tree(dir: &Path) -> Self {
        Self::new(dir.join("metadata"), dir.join("targets"))
    }

    fn read_capped(base: &Path, name: &str, max: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if !roles::is_safe_target_path(name) {
            return Err(FetchError::Failed {
                name: name.to_string(),
                reason: "unsafe file name".into(),
            }
            .into_tuf());
        }
        let path = base.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FetchError::Failed {
                    name: name.to_string(),
                    reason: e.to_string(),
                }
                .into_tuf());
            }
        };
        let mut buf = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| {
                FetchError::Failed {
                    name: name.to_string(),
                    reason: e.to_string(),
                }
                .into_tuf()
            })?;
        if buf.len() as u64 > max {
            return Err(FetchError::TooLarge {
                name: name.to_string(),
                limit: max,
            }
            .into_tuf());
        }
        Ok(Some(buf))
    }
}

impl Repository for FsRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { Self::read_capped(&self.metadata, name, max_length) })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { Self::read_capped(&self.targets, path, max_length) })
    }
}

/// Checks that `new` may follow the trusted root `trusted`: the next version,
/// signed by the thresholds of both. Clients run exactly this check.
pub fn check_root_update(trusted: &[u8], new: &[u8]) -> Result<Root, VerifyError> {
    crate::crypto::install();
    let mut set = sigstore_tuf::TrustedMetadataSet::from_root(trusted)
        .map_err(|e| pinned_root_error(e, trusted))?;
    // A new root must meet its own threshold as well as the trusted one's;
    // unusable keys of the new root are the likelier cause to name.
    set.update_root(new)
        .map_err(|e| pinned_root_error(e, new))?;
    Ok(set.root().clone())
}
