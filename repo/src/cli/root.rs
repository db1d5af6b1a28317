//! The root commands and key rotation: offline M-of-N signing, and the
//! messages that lead an operator through it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use jiff::Timestamp;

use onionpkg_trust::keys::PublicKey;
use onionpkg_trust::roles;
use onionpkg_trust::sign::SecretKey;

use super::{Report, RootAction, Usage, parse_duration, read_pubkey, split_kv};
use crate::rootops::{KeyChange, Rotation, merge_files, root_roles, sign_file};
use crate::state::binding;
use crate::{Expiries, KeyDir, RepoDir, Threshold};

/// `rotate ROLE`: the root's keys only with `generate_online`; otherwise
/// the steps of the offline way, and exit code 2.
pub(super) fn rotate(
    repo: &RepoDir,
    keys: &KeyDir,
    role: &str,
    threshold: Option<Threshold>,
    generate_online: bool,
    now: Timestamp,
) -> Result<Report> {
    let mut report = Report::default();
    if role != roles::ROOT && generate_online {
        return Err(Usage(format!(
            "--generate-online is for `rotate root`; the {role} keys are always made on this machine"
        ))
        .into());
    }
    if roles::DELEGATED.contains(&role)
        && threshold.is_some_and(|t| t.count != 1 || t.threshold != 1)
    {
        return Err(Usage(format!("the {role} role has one key: its threshold is 1/1")).into());
    }
    let rotation = if role == roles::ROOT {
        let (ids, _) = current_root_binding(repo)?;
        if !generate_online {
            report.lines = offline_root_steps(repo)?;
            report.exit_code = onionpkg_core::exit::USAGE;
            return Ok(report);
        }
        let count = threshold.map_or(ids.len(), |t| t.count);
        report.notes.push(format!(
            "warning: --generate-online: {count} new root private key(s) were made on this machine, in {}. \
             Whoever can read them can sign a root, and so take over every appliance: move each to its \
             holder's offline media and delete it here now (docs/RELEASE.md, \"Rotating the root keys\").",
            keys.dir().display()
        ));
        repo.rotate_root_online(keys, threshold, &Expiries::default(), now)?
    } else {
        repo.rotate(role, keys, threshold, &Expiries::default(), now)?
    };
    match rotation {
        Rotation::Done { key_ids } => {
            report.lines.push(format!(
                "rotated {role}; new key(s): {}",
                key_ids.join(", ")
            ));
        }
        Rotation::NeedsSignatures { draft, key_ids } => {
            report
                .lines
                .push(format!("new key(s) for {role}: {}", key_ids.join(", ")));
            report.lines.push(format!(
                "root draft {} needs signatures from the offline root key holders: each signs a copy \
                 (`onionpkg-repo root sign COPY --key KEY`), then here `root merge`, `root install` and `publish`",
                draft.display()
            ));
            report.exit_code = onionpkg_core::exit::KEYS;
        }
    }
    Ok(report)
}

/// The key ids and threshold of the root role in the installed root.
fn current_root_binding(repo: &RepoDir) -> Result<(Vec<String>, usize)> {
    let root = RepoDir::read_json(&repo.metadata_dir().join("root.json"))?;
    Ok(binding(&root["signed"]["roles"][roles::ROOT]))
}

/// What to do instead of `rotate root`: the offline rotation, step by step.
fn offline_root_steps(repo: &RepoDir) -> Result<Vec<String>> {
    let (ids, threshold) = current_root_binding(repo)?;
    let d = repo.dir().display();
    Ok(vec![
        "`rotate root` would make the new root private keys on this machine, so it does nothing \
         unless asked to (--generate-online)."
            .into(),
        "The offline way (docs/RELEASE.md, \"Rotating the root keys\"):".into(),
        "  1. each holder of a new root key makes it on their own offline machine, and sends \
         the .pub.json file here:"
            .into(),
        "       onionpkg-repo keygen --out root-NAME".into(),
        "  2. here, draft the next root with those N public keys, M of which must sign:".into(),
        format!(
            "       onionpkg-repo -r {d} root draft --set-keys root=A.pub.json,B.pub.json,C.pub.json --threshold root=M/N"
        ),
        format!(
            "  3. copies of {} go to the signers: {threshold} holder(s) of the current {} root keys, \
             and M holders of the new ones; each signs their copy:",
            repo.root_draft_path().display(),
            ids.len()
        ),
        "       onionpkg-repo root sign COPY.json --key root-NAME.key".into(),
        "  4. here, merge the signed copies and install the new root:".into(),
        format!(
            "       onionpkg-repo -r {d} root merge -o signed.json COPY-1.json COPY-2.json ..."
        ),
        format!("       onionpkg-repo -r {d} root install signed.json"),
    ])
}

pub(super) fn run(
    repo: &RepoDir,
    keys: &KeyDir,
    passphrase: Option<&[u8]>,
    action: &RootAction,
    now: Timestamp,
    report: &mut Report,
) -> Result<()> {
    let out = &mut report.lines;
    match action {
        RootAction::Draft {
            set_keys,
            thresholds,
            expires,
        } => {
            let mut keys_of: BTreeMap<&str, Vec<PublicKey>> = BTreeMap::new();
            for s in set_keys {
                let (role, files) = split_kv(s)?;
                let keys = files
                    .split(',')
                    .map(|f| read_pubkey(&PathBuf::from(f)))
                    .collect::<Result<Vec<_>>>()?;
                if keys_of.insert(role, keys).is_some() {
                    return Err(Usage(format!("--set-keys for {role} is given twice")).into());
                }
            }
            let mut threshold_of = BTreeMap::new();
            for t in thresholds {
                let role = t.role.as_deref().unwrap_or_default();
                let Some(keys) = keys_of.get(role) else {
                    return Err(Usage(format!(
                        "--threshold {} needs --set-keys {role}=FILES: the keys it is a threshold of",
                        t.text
                    ))
                    .into());
                };
                let m = t.for_keys(keys.len(), &mut report.notes)?;
                if threshold_of.insert(role, m).is_some() {
                    return Err(Usage(format!("--threshold for {role} is given twice")).into());
                }
            }
            let changes: Vec<KeyChange> = keys_of
                .into_iter()
                .map(|(role, keys)| KeyChange {
                    role: role.to_string(),
                    keys,
                    threshold: threshold_of.get(role).copied().unwrap_or(1),
                })
                .collect();
            let mut exp = Expiries::default();
            exp.set(roles::ROOT, parse_duration(expires)?)?;
            let path = repo.draft_root(&changes, &exp, now)?;
            out.push(format!("root draft written to {}", path.display()));
        }
        RootAction::Sign { file, key } => {
            let key = SecretKey::read_file(key, passphrase)?;
            sign_file(file, &key)?;
            out.push(format!(
                "signed {} with key {}",
                file.display(),
                key.public().key_id()
            ));
        }
        RootAction::Merge { out: dest, copies } => {
            merge_files(dest, copies)?;
            out.push(format!(
                "merged {} copies into {}",
                copies.len(),
                dest.display()
            ));
        }
        RootAction::Install { file } => {
            let file = file.clone().unwrap_or_else(|| repo.root_draft_path());
            let root = repo.metadata_dir().join("root.json");
            let before = if root.exists() {
                root_roles(&RepoDir::read_json(&root)?)
            } else {
                BTreeMap::new()
            };
            let (v, moved) = repo.install_root_with_keys(&file, keys, now)?;
            let after = root_roles(&RepoDir::read_json(&root)?);
            out.push(format!("installed root version {v}"));
            for (role, (ids, t)) in &after {
                out.push(format!("  {role:<10} {t} of {}", ids.len()));
            }
            out.extend(moved);
            let changed: Vec<&str> = [roles::TARGETS, roles::SNAPSHOT, roles::TIMESTAMP]
                .into_iter()
                .filter(|r| !before.is_empty() && before.get(*r) != after.get(*r))
                .collect();
            if !changed.is_empty() {
                out.push(format!(
                    "the keys of {} changed: run `onionpkg-repo -r {} publish` now, so that clients \
                     following this root get metadata those keys signed",
                    changed.join(", "),
                    repo.dir().display()
                ));
            }
            if changed.contains(&roles::TIMESTAMP) {
                out.push(
                    "then restart onionpkg-announce: it reads its timestamp key file at start"
                        .into(),
                );
            }
        }
    }
    Ok(())
}
