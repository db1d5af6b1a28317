//! `check-config`: whether `serve` can start with a configuration, found by
//! reading only: no listener is bound, no network used, nothing written. A
//! package's installer asks it before enabling the service.
//!
//! Files under `/run/credentials/` are systemd credentials (`LoadCredential=`):
//! they exist only while the unit runs, so outside it they are not read;
//! systemd itself refuses to start the unit when a credential's source is
//! missing.

use std::path::Path;

use onionpkg_trust::roles;

use crate::{Error, Result};

/// Where systemd puts the credentials of a running unit.
const CREDENTIALS_DIR: &str = "/run/credentials/";

/// A credential path that cannot be checked from here: the unit is not
/// running, so systemd has not placed it.
fn absent_credential(path: &Path) -> bool {
    path.starts_with(CREDENTIALS_DIR) && !path.exists()
}

/// Checks the configuration at `path` and the files `serve` reads at start:
/// the TLS certificate and key, the trusted root and extra CAs of `[sync]`,
/// and, without `[sync]`, the repository tree. Returns what was checked, one
/// line each.
pub fn check_config(path: &Path) -> Result<Vec<String>> {
    let config = onionpkg_config::load_mirror(path)?;
    let mut lines = vec![format!("{}: configuration ok", path.display())];
    if let Some(tls) = &config.tls {
        if absent_credential(&tls.cert) || absent_credential(&tls.key) {
            lines.push(
                "tls: systemd credentials, not present outside the unit: systemd checks \
                 their sources (LoadCredential=) when it starts"
                    .to_owned(),
            );
        } else {
            crate::tls::load_config(&tls.cert, &tls.key)?;
            lines.push(format!("tls: {} ok", tls.cert.display()));
        }
    }
    match &config.sync {
        Some(sync) => {
            let root_err = |reason: String| Error::TrustRoot {
                path: sync.trust_root.clone(),
                reason,
            };
            let meta = std::fs::metadata(&sync.trust_root).map_err(|e| root_err(e.to_string()))?;
            if meta.len() > roles::ROOT_MAX_BYTES {
                return Err(root_err(format!(
                    "larger than {} bytes",
                    roles::ROOT_MAX_BYTES
                )));
            }
            let bytes = std::fs::read(&sync.trust_root).map_err(|e| root_err(e.to_string()))?;
            let root = onionpkg_trust::metadata::check_root(&bytes)
                .map_err(|e| root_err(e.to_string()))?;
            crate::sync::tls(&config)?;
            lines.push(format!(
                "sync: trusted root version {} ({})",
                root.version,
                sync.trust_root.display()
            ));
        }
        // Without sync nothing makes the tree: it must be there.
        None => {
            if !config.root.is_dir() {
                return Err(Error::Root {
                    path: config.root.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a directory, and no [sync] to make it",
                    ),
                });
            }
            lines.push(format!("root: {} ok", config.root.display()));
        }
    }
    Ok(lines)
}
