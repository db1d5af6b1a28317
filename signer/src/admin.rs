//! `keys generate` and `keys show`: the operator's commands on the key store.
//!
//! They open the key store in their own process: they read no network or
//! client input, only the configuration.

use onionpkg_config::SignerConfig;

use crate::backend::KeyStore;
use crate::keys::{KeyKind, KeyRole, RoleKey};
use crate::{Error, Result};

fn describe(cfg: &SignerConfig, key: &RoleKey) -> Result<Vec<String>> {
    let mut lines = vec![
        format!("role: {}", key.role),
        format!("key id: {}", key.key_id()),
        format!("scheme: {}", key.public.algorithm()),
        format!("public key: {}", key.public.to_json()),
    ];
    if key.role == KeyRole::Log {
        lines.push(format!(
            "verifier key: {}",
            key.note_verifier_key(&cfg.log.origin)?
        ));
    }
    Ok(lines)
}

/// Makes `role`'s key of `kind` in the configured store and describes it:
/// the role, the TUF key id and scheme, the TUF public key object (and for
/// the log key, the signed-note verifier key to put in `log.verifier_key`).
pub fn generate(cfg: &SignerConfig, role: KeyRole, kind: KeyKind) -> Result<Vec<String>> {
    let mut store = KeyStore::open(&cfg.backend)?;
    let key = store.generate(role, kind)?;
    describe(cfg, &key)
}

/// Checks and describes the keys of `roles` (every role that has one when
/// empty).
pub fn show(cfg: &SignerConfig, roles: &[KeyRole]) -> Result<Vec<String>> {
    let mut store = KeyStore::open(&cfg.backend)?;
    let mut lines = Vec::new();
    let all = roles.is_empty();
    let roles = if all { &KeyRole::ALL[..] } else { roles };
    for role in roles {
        match store.key(*role) {
            Ok(key) => lines.extend(describe(cfg, &key)?),
            Err(Error::KeyMissing { .. }) if all => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(lines)
}
