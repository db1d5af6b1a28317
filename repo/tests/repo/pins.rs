//! Attacks that each only one line of defence stops: a signature counted
//! twice, a search past a terminating delegation, and a snapshot that only
//! its hash pin tells apart. Each test names the check it pins, and has a
//! control (or a precondition) showing that without that check the attack
//! would pass.

use serde_json::{Value, json};
use sha2::Digest;

use onionpkg_repo::InitOptions;
use onionpkg_trust::metadata::VerifyError;

use crate::attacks::{fetch, pkg_bin, read, resign, write};
use crate::util::{TestRepo, client_run, t0};

/// Threshold inflation: a 2-of-3 targets role (and the package's bin, which
/// follows its keys) carries one genuine signature, listed twice. Pins the
/// refusal of a key id seen twice among a role's signatures
/// (sigstore-tuf's `verify_threshold`, reported as
/// [`VerifyError::DuplicateSignature`]): without it the signature would be
/// counted once and the role refused for a missed threshold instead; were
/// signatures counted rather than keys, the role would pass. A duplicate
/// is refused even beside enough other signatures.
#[test]
fn one_keys_signature_listed_twice_is_refused() {
    let mut opts = InitOptions::default();
    opts.thresholds
        .insert("targets".into(), "2/3".parse().unwrap());
    for role in ["targets".to_string(), pkg_bin()] {
        for keep in [1, 2] {
            let t = TestRepo::with_options(&opts);
            let path = t.md(&format!("1.{role}.json"));
            let mut env = read(&path);
            let sigs = env["signatures"].as_array_mut().unwrap();
            sigs.truncate(keep);
            let first = sigs[0].clone();
            sigs.push(first.clone());
            write(&path, &env);
            let err = fetch(&t, t0()).unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::DuplicateSignature { role: ref r, ref keyid }
                        if *r == role && keyid == first["keyid"].as_str().unwrap()
                ),
                "{role}, {keep} signature(s) kept: {err:?}"
            );
        }
    }
}

/// The current version of `role` as the published snapshot pins it.
fn pinned_version(t: &TestRepo, role: &str) -> u64 {
    let snap = snapshot_version(t);
    read(&t.md(&format!("{snap}.snapshot.json")))["signed"]["meta"][format!("{role}.json")]
        ["version"]
        .as_u64()
        .unwrap()
}

fn snapshot_version(t: &TestRepo) -> u64 {
    read(&t.md("timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap()
}

/// Publishes by hand what `onionpkg-repo` cannot make: the top-level
/// targets role edited by `edit` (signed with the targets key), new
/// delegated roles `(name, signed payload, key file)`, then a snapshot and a
/// timestamp that pin them.
fn publish_by_hand(t: &TestRepo, edit: impl FnOnce(&mut Value), roles: &[(&str, Value, &str)]) {
    let tv = pinned_version(t, "targets");
    let sv = snapshot_version(t);
    let next = t.md(&format!("{}.targets.json", tv + 1));
    std::fs::copy(t.md(&format!("{tv}.targets.json")), &next).unwrap();
    resign(t, &next, &["targets"], |s| {
        s["version"] = json!(tv + 1);
        edit(s);
    });
    for (name, payload, key) in roles {
        let path = t.md(&format!("1.{name}.json"));
        write(&path, &json!({ "signed": payload, "signatures": [] }));
        resign(t, &path, &[key], |_| {});
    }
    let snap = t.md(&format!("{}.snapshot.json", sv + 1));
    std::fs::copy(t.md(&format!("{sv}.snapshot.json")), &snap).unwrap();
    resign(t, &snap, &["snapshot"], |s| {
        s["version"] = json!(sv + 1);
        s["meta"]["targets.json"] = json!({ "version": tv + 1 });
        for (name, _, _) in roles {
            s["meta"][format!("{name}.json")] = json!({ "version": 1 });
        }
    });
    let bytes = std::fs::read(&snap).unwrap();
    resign(t, &t.md("timestamp.json"), &["timestamp"], |s| {
        s["version"] = json!(s["version"].as_u64().unwrap() + 1);
        s["meta"]["snapshot.json"] = json!({
            "version": sv + 1,
            "length": bytes.len(),
            "hashes": { "sha256": hex::encode(sha2::Sha256::digest(&bytes)) },
        });
    });
}

/// Wrong software through a delegation further down the list: `evil`
/// (holding the compromised mirrors key) is delegated `pkg/*` after the
/// hashed bins and signs `pkg/evil-6.6.tar`, which the bin of that path
/// does not list. Pins the delegation search stopping at a terminating
/// role (sigstore-tuf's `get_target_info`): the bin is terminating, so
/// `evil` is never consulted. The control makes only that bin
/// non-terminating, and the same target is then found and fetched.
#[test]
fn a_terminating_delegation_stops_the_search() {
    const EVIL: &str = "pkg/evil-6.6.tar";
    let bin = onionpkg_trust::roles::bins(onionpkg_trust::roles::DEFAULT_BINS)
        .unwrap()
        .into_iter()
        .find(|(_, p)| {
            p.iter()
                .any(|p| onionpkg_trust::roles::path_hash(EVIL).starts_with(p.as_str()))
        })
        .unwrap()
        .0;
    for terminating in [true, false] {
        let t = TestRepo::new();
        let content = b"evil\n";
        let hash = hex::encode(sha2::Sha256::digest(content));
        std::fs::write(
            t.repo
                .targets_dir()
                .join(format!("pkg/{hash}.evil-6.6.tar")),
            content,
        )
        .unwrap();
        let evil = json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1,
            "expires": "2027-01-01T00:00:00Z",
            "targets": { EVIL: { "length": content.len(), "hashes": { "sha256": hash } } },
        });
        publish_by_hand(
            &t,
            |s| {
                let d = &mut s["delegations"];
                let roles = d["roles"].as_array_mut().unwrap();
                let mirrors_key =
                    roles.iter().find(|r| r["name"] == "mirrors").unwrap()["keyids"].clone();
                for r in roles.iter_mut().filter(|r| r["name"] == bin.as_str()) {
                    assert_eq!(r["terminating"], true, "bins are terminating");
                    r["terminating"] = json!(terminating);
                }
                roles.push(json!({
                    "name": "evil", "keyids": mirrors_key, "threshold": 1,
                    "terminating": false, "paths": ["pkg/*"],
                }));
            },
            &[("evil", evil, "mirrors")],
        );
        let got = client_run(t.repo.dir(), &t.root_v1(), None, t0(), Some(EVIL));
        if terminating {
            assert!(
                matches!(got, Err(VerifyError::TargetNotFound(ref p)) if p == EVIL),
                "{got:?}"
            );
            // The genuine package is still found through its bin.
            assert_eq!(fetch(&t, t0()).unwrap().unwrap(), b"hello, appliance\n");
        } else {
            assert_eq!(got.unwrap().unwrap(), content, "control: evil is reachable");
        }
    }
}

/// Mix-and-match caught by the hash pin alone: the compromised snapshot key
/// signs another snapshot of the version, and the length, the timestamp
/// pins (a later expiry, nothing else changed). Version, length and
/// signature all check out; only the timestamp's sha256 of the snapshot
/// (`check_integrity` in sigstore-tuf) tells it is not the snapshot the
/// timestamp vouched for. Without that check the client would take it.
#[test]
fn mix_and_match_is_refused_by_the_snapshot_hash_pin_alone() {
    let t = TestRepo::new();
    let sv = snapshot_version(&t);
    let path = t.md(&format!("{sv}.snapshot.json"));
    let before = std::fs::read(&path).unwrap();
    resign(&t, &path, &["snapshot"], |s| {
        let expires = s["expires"].as_str().unwrap().replace(":00Z", ":01Z");
        s["expires"] = json!(expires);
    });
    // `write` leaves no final newline where onionpkg-repo writes one.
    let mut after = std::fs::read(&path).unwrap();
    after.push(b'\n');
    std::fs::write(&path, &after).unwrap();
    assert_ne!(after, before);
    assert_eq!(
        after.len(),
        before.len(),
        "the forgery keeps the pinned length"
    );
    let pin = &read(&t.md("timestamp.json"))["signed"]["meta"]["snapshot.json"];
    assert_eq!(pin["version"], read(&path)["signed"]["version"]);
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Mismatch(ref m) if m == "snapshot.json: sha256 mismatch"),
        "{err:?}"
    );
}
