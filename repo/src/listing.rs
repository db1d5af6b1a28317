//! The mirror list and the DNS announcement: staged and signed from the
//! repository's published state.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use onionpkg_trust::roles;
use onionpkg_trust::sign::SecretKey;

use crate::err::{RepoError, Result};
use crate::keydir::KeyDir;
use crate::state::{RepoDir, version_of};

impl RepoDir {
    /// Validates a mirror list and stages it as the `mirrors` role's target.
    /// Returns the number of mirrors.
    pub fn set_mirrors(&self, bytes: &[u8], now: Timestamp) -> Result<usize> {
        let list = onionpkg_trust::mirrors::MirrorList::parse(bytes)?;
        if list.is_expired(now, onionpkg_trust::clock::Tolerance::ZERO) {
            return Err(RepoError::Invalid(
                "the mirror list has already expired; give it a later `expires`".into(),
            ));
        }
        if let Some((version, published)) = self.published_mirror_list()?
            && list.version() <= version
            && published != bytes
        {
            // Appliances holding the published list would refuse this one
            // (a rollback, or a reused version) and keep the old list.
            return Err(RepoError::Invalid(format!(
                "mirror list version {} is not above the published version {version}: \
                 appliances would refuse it; give it version {}",
                list.version(),
                version + 1
            )));
        }
        let n = list.mirrors().len();
        self.add_target_bytes(bytes, roles::MIRRORS_TARGET, roles::MIRRORS)?;
        Ok(n)
    }

    /// The version and bytes of the published mirror list, if any.
    fn published_mirror_list(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let published = self.published()?;
        let Some(env) = published.roles.get(roles::MIRRORS) else {
            return Ok(None);
        };
        let Some(hash) =
            env["signed"]["targets"][roles::MIRRORS_TARGET]["hashes"]["sha256"].as_str()
        else {
            return Ok(None);
        };
        let path = self
            .targets_dir()
            .join(roles::consistent_target_path(roles::MIRRORS_TARGET, hash));
        let bytes = std::fs::read(&path).map_err(RepoError::io("reading", &path))?;
        let list = onionpkg_trust::mirrors::MirrorList::parse(&bytes)
            .map_err(|e| RepoError::bad(&path, format!("the published mirror list: {e}")))?;
        Ok(Some((list.version(), bytes)))
    }
}

impl RepoDir {
    /// Makes the signed DNS announcement of the published state: the
    /// timestamp version as serial and the hash of `timestamp.json`, signed by
    /// the timestamp role's keys, valid for `valid_for` from `now`.
    pub fn announce(
        &self,
        keys: &KeyDir,
        owner: &str,
        channel: &str,
        valid_for: Option<jiff::SignedDuration>,
        now: Timestamp,
    ) -> Result<String> {
        let published = self.published()?;
        let signers = self.signers(keys, roles::TIMESTAMP, &published.root)?;
        let ts_path = self.metadata_dir().join("timestamp.json");
        let ts = std::fs::read(&ts_path).map_err(RepoError::io("reading", &ts_path))?;
        let hash: [u8; 32] = Sha256::digest(&ts).into();
        // An announcement never outlives the timestamp it names: it would
        // vouch for metadata appliances must no longer accept.
        let ts_expires: Timestamp = published.timestamp["signed"]["expires"]
            .as_str()
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| RepoError::BadFile {
                path: ts_path.clone(),
                reason: "has no valid expiry".into(),
            })?;
        let expires = match valid_for {
            None => ts_expires,
            Some(d) => now
                .checked_add(d)
                .map_err(|e| RepoError::Invalid(format!("announcement expiry: {e}")))?,
        };
        if expires > ts_expires {
            return Err(RepoError::Invalid(format!(
                "the announcement would be valid until {expires}, after the timestamp it names \
                 expires ({ts_expires}); give a shorter --expires, or re-sign the timestamp first"
            )));
        }
        if expires <= now {
            return Err(RepoError::Invalid(format!(
                "the published timestamp expired at {ts_expires}: re-sign it (onionpkg-repo \
                 timestamp) before announcing"
            )));
        }
        let refs: Vec<&SecretKey> = signers.iter().collect();
        let text = onionpkg_trust::announce::make(
            owner,
            channel,
            version_of(&published.timestamp["signed"]),
            now,
            expires,
            &hash,
            &refs,
        )?;
        Ok(text)
    }
}
