//! Publishing a checked feed version as a target of the delegated `feeds`
//! role, on the distro's primary: the role, the snapshot and the timestamp
//! are re-signed with the online keys, so the feed reaches every mirror by
//! sync and appliances verify it like a package. The keys are key files, or
//! held by `onionpkg-signer` (`[feeds.publish] signer`): then this process
//! reads no key file of a role, only its own client key, and the signer's
//! policy and log apply to every signature.
//!
//! # Invariants
//! - Only the `feeds` role's targets change: when another role has staged,
//!   unpublished changes (a release in preparation), nothing is published,
//!   so a feed never pushes out someone else's half-made release.
//! - Two writers of one repository never interleave: a feed publish holds
//!   the repository's writer lock (`RepoDir::lock`, the file `.lock`), which
//!   every writing `onionpkg-repo` command takes too.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use onionpkg_config::mirror::FeedPublishConfig;
use onionpkg_repo::{Expiries, KeyDir, RemoteSigner, RepoDir};
use onionpkg_trust::roles;
use onionpkg_trust::sign::SecretKey;
use zeroize::Zeroizing;

use super::FeedError;

/// Adds `file` as target `feeds/NAME/FILE_NAME` and publishes; returns the
/// new timestamp version.
pub fn publish(
    config: &FeedPublishConfig,
    name: &str,
    file_name: &str,
    file: &Path,
    fetched_at: Timestamp,
    now: Timestamp,
) -> Result<u64, FeedError> {
    let fail = |e: &dyn std::fmt::Display| FeedError::Publish(e.to_string());
    let repo = RepoDir::new(&config.repo);
    // The repository's own writer lock, shared with `onionpkg-repo`: a
    // release manager's publish and this one never interleave.
    let lock = repo
        .lock(|| tracing::info!("waiting for another writer of the repository"))
        .map_err(|e| fail(&e))?;
    let others: Vec<String> = repo
        .staged_roles()
        .map_err(|e| fail(&e))?
        .into_iter()
        .filter(|r| r != roles::FEEDS)
        .collect();
    if !others.is_empty() {
        return Err(FeedError::Publish(format!(
            "the repository has unpublished changes of {}; publish them first",
            others.join(", ")
        )));
    }
    let keys = keys(config)?;
    let custom = BTreeMap::from([("fetched".to_owned(), fetched_at.to_string())]);
    let target = format!("feeds/{name}/{file_name}");
    repo.add_target(file, &target, &custom, roles::FEEDS)
        .map_err(|e| fail(&e))?;
    let version = repo
        .publish(&keys, &Expiries::default(), &[], now)
        .map_err(|e| fail(&e))?;
    drop(lock);
    Ok(version)
}

/// How the roles are signed: through the signer when `signer` is set (no
/// key file of a role is read then), else with the key directory.
fn keys(config: &FeedPublishConfig) -> Result<KeyDir, FeedError> {
    let passphrase = match &config.passphrase_env {
        None => None,
        Some(var) => Some(Zeroizing::new(
            std::env::var(var)
                .map_err(|_| {
                    FeedError::Publish(format!("the passphrase variable {var} is not set"))
                })?
                .into_bytes(),
        )),
    };
    match (&config.signer, &config.signer_key, &config.keys) {
        (Some(socket), Some(client_key), _) => {
            let client = SecretKey::read_file(client_key, passphrase.as_deref().map(Vec::as_slice))
                .map_err(|e| {
                    FeedError::Publish(format!(
                        "the signer client key {}: {e}",
                        client_key.display()
                    ))
                })?;
            Ok(KeyDir::signer_only(RemoteSigner::new(socket, client)))
        }
        (_, _, Some(dir)) => Ok(KeyDir::new(dir, passphrase)),
        // The configuration refuses every other combination at load.
        _ => Err(FeedError::Publish(
            "neither feeds.publish.keys nor feeds.publish.signer is set".into(),
        )),
    }
}
