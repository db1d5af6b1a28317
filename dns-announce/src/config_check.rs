//! `check-config`: whether `serve` can start with a configuration, found by
//! reading only (no socket, no network, no key decrypted). A package's
//! installer asks it before enabling the service.
//!
//! Files under `/run/credentials/` are systemd credentials
//! (`LoadCredential=`): they exist only while the unit runs, so outside it
//! they are not read; systemd refuses to start the unit when a credential's
//! source is missing.

use std::path::Path;

use serde_json::json;

use crate::err::{Error, Result};
use crate::output::Output;

/// Where systemd puts the credentials of a running unit.
const CREDENTIALS_DIR: &str = "/run/credentials/";

/// Checks the configuration at `path` for `serve`: it loads and has a
/// `[serve]` section, the repository holds the `metadata/timestamp.json` to
/// announce, each timestamp key file is there (or is a credential of the
/// unit), and the `[mirrors]` settings load.
pub fn check_config(path: &Path) -> Result<Output> {
    let cfg =
        onionpkg_config::load_announce(path).map_err(|e| Error::arg("--config", format!("{e}")))?;
    if cfg.serve.is_none() {
        return Err(Error::arg(
            "--config",
            format!("{} has no [serve] section", path.display()),
        ));
    }
    let timestamp = cfg.repo.join("metadata").join("timestamp.json");
    if !timestamp.is_file() {
        return Err(Error::arg(
            "repo",
            format!(
                "{}: no metadata/timestamp.json to announce ({} is missing)",
                cfg.repo.display(),
                timestamp.display()
            ),
        ));
    }
    let mut text = vec![format!(
        "{}: configuration ok; announcing {}",
        path.display(),
        timestamp.display()
    )];
    let mut credentials = Vec::new();
    let keys = cfg
        .timestamp_keys
        .iter()
        .map(|k| ("timestamp_keys", k))
        .chain(cfg.signer_key.iter().map(|k| ("signer_key", k)));
    for (what, key) in keys {
        if key.starts_with(CREDENTIALS_DIR) && !key.exists() {
            credentials.push(key.display().to_string());
        } else if !key.is_file() {
            return Err(Error::arg(
                what,
                format!("{}: no such key file", key.display()),
            ));
        }
    }
    if !credentials.is_empty() {
        text.push(format!(
            "keys: systemd credentials, not present outside the unit: systemd \
             checks their sources (LoadCredential=) when it starts: {}",
            credentials.join(", ")
        ));
    }
    if let Some(m) = &cfg.mirrors
        && !m.wait_for.is_empty()
    {
        crate::mirrors::MirrorGate::new(&m.wait_for, m.extra_ca.as_deref())?;
    }
    Ok(Output {
        text,
        json: json!({
            "ok": true,
            "config": path.display().to_string(),
            "credentials_not_checked": credentials,
        }),
    })
}
