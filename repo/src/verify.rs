//! Checking a repository tree exactly as a client would.

use std::io::Read;
use std::path::Path;

use jiff::Timestamp;

use onionpkg_trust::metadata::{Client, FsRepository, TargetVerifier, stored_target_path};

use crate::err::{RepoError, Result};

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The newest root version reached.
    pub root_version: u64,
    /// The timestamp version.
    pub timestamp_version: u64,
    /// Every target verified: (role, path, length).
    pub targets: Vec<(String, String, u64)>,
}

/// Verifies the tree at `dir` (`metadata/`, `targets/`) from the pinned root
/// `root`: refreshes all metadata, then reads and verifies every target.
pub fn verify_tree(dir: &Path, root: &[u8], now: Timestamp) -> Result<VerifyReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| RepoError::Invalid(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let mut client = Client::new(root, None, FsRepository::from_tree(dir))?;
        client.refresh(now).await?;
        // Delegations one level deep: the onionpkg layout has no deeper ones.
        for role in client.delegated_roles() {
            client.load_delegated(&role, now).await?;
        }
        let consistent = client.root().consistent_snapshot;
        let mut targets = Vec::new();
        for (role, path) in client.known_targets() {
            let info = client.target_info(&path, now).await?;
            let file_path = stored_target_path(&path, &info, consistent)?;
            let full = dir.join("targets").join(&file_path);
            let mut verifier = TargetVerifier::new(&path, &info)?;
            let file = std::fs::File::open(&full).map_err(RepoError::io("opening", &full))?;
            // Read at most one byte past the signed length: enough to notice
            // a longer file, never an endless one.
            let mut reader = file.take(info.length.saturating_add(1));
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(RepoError::io("reading", &full))?;
                if n == 0 {
                    break;
                }
                verifier.update(&buf[..n])?;
            }
            verifier.finish()?;
            targets.push((role, path, info.length));
        }
        Ok(VerifyReport {
            root_version: client.root().version,
            timestamp_version: client.timestamp_version().unwrap_or(0),
            targets,
        })
    })
}
