//! One test per attack on the repository metadata, each refused with its own
//! typed error. The attacker controls the mirror (the tree the client reads)
//! and, where an attack needs it, a compromised online key.

use std::path::Path;

use jiff::SignedDuration;
use serde_json::{Value, json};

use onionpkg_repo::rootops::KeyChange;
use onionpkg_repo::{Expiries, InitOptions, RepoDir};
use onionpkg_trust::metadata::VerifyError;
use onionpkg_trust::sign::{SecretKey, add_signature, sign_metadata};

use crate::util::{TestRepo, at, block_on, client_run, t0};

const PKG: &str = "pkg/hello-1.0.tar";

pub(crate) fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub(crate) fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Re-signs the envelope at `path` after `edit`, with the key files `stems`.
pub(crate) fn resign(t: &TestRepo, path: &Path, stems: &[&str], edit: impl FnOnce(&mut Value)) {
    let mut env = read(path);
    edit(&mut env["signed"]);
    let keys: Vec<SecretKey> = stems.iter().map(|s| t.keys.load(s).unwrap()).collect();
    let refs: Vec<&SecretKey> = keys.iter().collect();
    write(path, &sign_metadata(env["signed"].clone(), &refs).unwrap());
}

/// The hashed bin that lists the package.
pub(crate) fn pkg_bin() -> String {
    crate::util::default_bin_of(PKG)
}

/// The consistent path of the published package.
fn pkg_file(t: &TestRepo) -> std::path::PathBuf {
    let env = read(&t.md(&format!("1.{}.json", pkg_bin())));
    let hash = env["signed"]["targets"][PKG]["hashes"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    t.repo
        .targets_dir()
        .join(format!("pkg/{hash}.hello-1.0.tar"))
}

pub(crate) fn fetch(t: &TestRepo, now: jiff::Timestamp) -> Result<Option<Vec<u8>>, VerifyError> {
    client_run(t.repo.dir(), &t.root_v1(), None, now, Some(PKG))
}

#[test]
fn an_untouched_repository_verifies() {
    let t = TestRepo::new();
    assert_eq!(fetch(&t, t0()).unwrap().unwrap(), b"hello, appliance\n");
}

#[test]
fn tampered_target_of_the_same_length_is_refused() {
    let t = TestRepo::new();
    let f = pkg_file(&t);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::TargetHashMismatch { ref path } if path == PKG),
        "{err:?}"
    );
}

#[test]
fn tampered_longer_target_is_refused_at_its_signed_length() {
    let t = TestRepo::new();
    let f = pkg_file(&t);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(&[b'x'; 4096]);
    std::fs::write(&f, bytes).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::TargetTooLong { length: 17, .. }),
        "{err:?}"
    );
}

#[test]
fn targets_signed_below_threshold_are_refused() {
    // targets is 2-of-3 here, and so are the bins that follow its keys; the
    // mirror strips one signature from targets, or from the package's bin.
    let mut opts = InitOptions::default();
    opts.thresholds
        .insert("targets".into(), "2/3".parse().unwrap());
    for role in ["targets".to_string(), pkg_bin()] {
        let t = TestRepo::with_options(&opts);
        let path = t.md(&format!("1.{role}.json"));
        let mut env = read(&path);
        env["signatures"].as_array_mut().unwrap().truncate(1);
        write(&path, &env);
        let err = fetch(&t, t0()).unwrap_err();
        assert!(
            matches!(err, VerifyError::ThresholdNotMet { role: ref r, found: 1, threshold: 2, .. } if *r == role),
            "{role}: {err:?}"
        );
    }
}

#[test]
fn a_bin_signed_by_another_key_is_refused() {
    // The mirrors key (compromised) signs the package's bin: bins follow the
    // targets keys only.
    let t = TestRepo::new();
    let bin = pkg_bin();
    resign(&t, &t.md(&format!("1.{bin}.json")), &["mirrors"], |_| {});
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, found: 0, .. } if *role == bin),
        "{err:?}"
    );
}

#[test]
fn a_forged_signature_does_not_count() {
    let t = TestRepo::new();
    let path = t.md("timestamp.json");
    let mut env = read(&path);
    env["signed"]["expires"] = json!("2099-01-01T00:00:00Z");
    write(&path, &env);
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, found: 0, .. } if role == "timestamp"),
        "{err:?}"
    );
}

#[test]
fn timestamp_rollback_is_refused() {
    let t = TestRepo::new();
    let store = t.store();
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap();
    // The mirror now serves a lower timestamp version, validly signed with
    // the (compromised) online timestamp key.
    resign(&t, &t.md("timestamp.json"), &["timestamp"], |s| {
        s["version"] = json!(1)
    });
    let err = client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Rollback { ref role, trusted: 2, offered: 1 } if role == "timestamp"),
        "{err:?}"
    );
}

#[test]
fn replayed_old_timestamp_is_refused_after_a_restart() {
    let t = TestRepo::new();
    let old = std::fs::read(t.md("timestamp.json")).unwrap();
    t.add_package("pkg/other-2.0.tar", b"other");
    t.publish();
    let store = t.store();
    // A client trusts the new state, and persists it.
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap();
    // A new process starts; the mirror replays the old, still valid timestamp.
    std::fs::write(t.md("timestamp.json"), old).unwrap();
    let err = client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Rollback { ref role, trusted: 3, offered: 2 } if role == "timestamp"),
        "{err:?}"
    );
}

#[test]
fn snapshot_rollback_is_refused() {
    let t = TestRepo::new();
    let store = t.store();
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap();
    // A newer timestamp pinning the older snapshot 1.
    let snap1 = std::fs::read(t.md("1.snapshot.json")).unwrap();
    resign(&t, &t.md("timestamp.json"), &["timestamp"], |s| {
        s["version"] = json!(3);
        s["meta"]["snapshot.json"] = json!({
            "version": 1, "length": snap1.len(),
            "hashes": { "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&snap1)) },
        });
    });
    let err = client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Rollback { ref role, trusted: 2, offered: 1 } if role == "snapshot"),
        "{err:?}"
    );
}

/// A repository whose targets and bins were re-signed once (version 2,
/// snapshot 3), so that version 1 is there to roll back to.
fn resigned() -> TestRepo {
    let t = TestRepo::new();
    t.repo
        .publish(&t.keys, &Expiries::default(), &["targets"], t.now)
        .unwrap();
    t
}

#[test]
fn targets_rollback_is_refused() {
    for role in ["targets".to_string(), pkg_bin()] {
        let t = resigned();
        let store = t.store();
        client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), Some(PKG)).unwrap();
        // Snapshot and timestamp keys compromised: a newer snapshot pins
        // version 1 of targets, or of the package's bin.
        resign(&t, &t.md("3.snapshot.json"), &["snapshot"], |s| {
            s["version"] = json!(4);
            s["meta"][format!("{role}.json")] = json!({ "version": 1 });
        });
        std::fs::rename(t.md("3.snapshot.json"), t.md("4.snapshot.json")).unwrap();
        let snap4 = std::fs::read(t.md("4.snapshot.json")).unwrap();
        resign(&t, &t.md("timestamp.json"), &["timestamp"], |s| {
            s["version"] = json!(4);
            s["meta"]["snapshot.json"] = json!({
                "version": 4, "length": snap4.len(),
                "hashes": { "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&snap4)) },
            });
        });
        let err =
            client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), Some(PKG)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Rollback { role: ref r, trusted: 2, offered: 1 } if *r == role),
            "{role}: {err:?}"
        );
    }
}

#[test]
fn mix_and_match_snapshot_is_refused() {
    let t = TestRepo::new();
    // The mirror serves snapshot 1's content under snapshot 2's name: the
    // timestamp pins snapshot 2's hash.
    std::fs::copy(t.md("1.snapshot.json"), t.md("2.snapshot.json")).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch(_)), "{err:?}");
}

#[test]
fn mix_and_match_targets_is_refused() {
    for role in ["targets".to_string(), pkg_bin()] {
        let t = resigned();
        // Version 1 served as version 2, which the snapshot pins.
        std::fs::copy(
            t.md(&format!("1.{role}.json")),
            t.md(&format!("2.{role}.json")),
        )
        .unwrap();
        let err = fetch(&t, t0()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch(_) | VerifyError::Malformed(_)),
            "{role}: {err:?}"
        );
    }
}

fn expiring(role: &str) -> TestRepo {
    let t = TestRepo::new();
    let mut exp = Expiries::default();
    exp.set(role, SignedDuration::from_hours(1)).unwrap();
    t.repo.publish(&t.keys, &exp, &["targets"], t.now).unwrap();
    t
}

#[test]
fn expired_timestamp_is_refused() {
    let t = TestRepo::new();
    // Valid at t0 + 23 h, expired at t0 + 25 h (timestamps live a day).
    assert!(fetch(&t, at(23)).is_ok());
    let err = fetch(&t, at(25)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Expired { ref role, .. } if role == "timestamp"),
        "{err:?}"
    );
}

#[test]
fn expired_snapshot_is_refused() {
    let t = expiring("snapshot");
    let err = fetch(&t, at(2)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Expired { ref role, .. } if role == "snapshot"),
        "{err:?}"
    );
}

#[test]
fn expired_targets_is_refused() {
    let t = expiring("targets");
    let err = fetch(&t, at(2)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Expired { ref role, .. } if role == "targets"),
        "{err:?}"
    );
}

#[test]
fn expired_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = RepoDir::new(tmp.path().join("repo"));
    let keys = onionpkg_repo::KeyDir::new(tmp.path().join("keys"), None);
    let mut exp = Expiries::default();
    exp.set("root", SignedDuration::from_hours(1)).unwrap();
    repo.init(&keys, &InitOptions::default(), &exp, t0())
        .unwrap();
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    assert!(client_run(repo.dir(), &root, None, t0(), None).is_ok());
    let err = client_run(repo.dir(), &root, None, at(2), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Expired { ref role, .. } if role == "root"),
        "{err:?}"
    );
}

#[test]
fn endless_timestamp_is_cut_at_its_cap() {
    let t = TestRepo::new();
    let path = t.md("timestamp.json");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(b' ', 1 << 20));
    std::fs::write(&path, bytes).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::TooLarge { ref name, limit: 16384 } if name == "timestamp.json"),
        "{err:?}"
    );
}

#[test]
fn endless_root_is_cut_at_its_cap() {
    let t = TestRepo::new();
    let mut big = std::fs::read(t.md("1.root.json")).unwrap();
    big.extend(std::iter::repeat_n(b' ', 600 * 1024));
    std::fs::write(t.md("2.root.json"), big).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::TooLarge { ref name, .. } if name == "2.root.json"),
        "{err:?}"
    );
}

#[test]
fn delegated_role_signing_outside_its_paths_is_refused() {
    let t = TestRepo::new();
    // The mirrors key (compromised) signs a package it has no authority over.
    let evil = json!({ "length": 4, "hashes": { "sha256": "00".repeat(32) } });
    let mut payload = read(&t.md("1.mirrors.json"))["signed"].clone();
    payload["targets"]["pkg/evil-6.6.tar"] = evil;
    std::fs::create_dir_all(t.repo.staged_dir()).unwrap();
    write(&t.repo.staged_dir().join("mirrors.json"), &payload);
    t.publish();
    let err = client_run(t.repo.dir(), &t.root_v1(), None, t0(), Some("mirrors.json")).unwrap_err();
    assert!(
        matches!(err, VerifyError::OutsideDelegation { ref role, ref path } if role == "mirrors" && path == "pkg/evil-6.6.tar"),
        "{err:?}"
    );
    // And the package it tried to sign is not trusted.
    let err = client_run(
        t.repo.dir(),
        &t.root_v1(),
        None,
        t0(),
        Some("pkg/evil-6.6.tar"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TargetNotFound(_) | VerifyError::OutsideDelegation { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn fast_forward_recovers_after_a_timestamp_key_rotation() {
    let t = TestRepo::new();
    let store = t.store();
    let good_ts = std::fs::read(t.md("timestamp.json")).unwrap();
    // An attacker with the timestamp key pushes version 1000 to the client.
    resign(&t, &t.md("timestamp.json"), &["timestamp"], |s| {
        s["version"] = json!(1000)
    });
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap();
    std::fs::write(t.md("timestamp.json"), &good_ts).unwrap();
    // Without a rotation, the legitimate repository now looks like a rollback.
    let err = client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Rollback { trusted: 1000, .. }),
        "{err:?}"
    );
    // The distro rotates the timestamp key: the client discards the inflated
    // timestamp along with the old key, and follows the repository again.
    let rotation = t
        .repo
        .rotate("timestamp", &t.keys, None, &Expiries::default(), t0())
        .unwrap();
    assert!(matches!(
        rotation,
        onionpkg_repo::rootops::Rotation::Done { .. }
    ));
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), Some(PKG)).unwrap();
}

#[test]
fn root_rotation_needs_both_the_old_and_the_new_threshold() {
    let t = TestRepo::new();
    let new_keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
    let draft = t
        .repo
        .draft_root(
            &[KeyChange {
                role: "root".into(),
                keys: new_keys.iter().map(SecretKey::public).collect(),
                threshold: 2,
            }],
            &Expiries::default(),
            t0(),
        )
        .unwrap();
    let unsigned = read(&draft);
    let old: Vec<SecretKey> = ["root-1", "root-2"]
        .iter()
        .map(|s| t.keys.load(s).unwrap())
        .collect();
    let sign = |keys: &[&SecretKey]| {
        let mut env = unsigned.clone();
        for k in keys {
            add_signature(&mut env, k).unwrap();
        }
        write(&draft, &env);
    };
    let root_error = |e: onionpkg_repo::RepoError| match e {
        onionpkg_repo::RepoError::Trust(onionpkg_trust::Error::Verify(v)) => v,
        other => panic!("{other:?}"),
    };

    // New keys only: the old root did not approve.
    sign(&[&new_keys[0], &new_keys[1]]);
    let err = root_error(t.repo.install_root(&draft).unwrap_err());
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, .. } if role == "root"),
        "{err:?}"
    );
    // A client refuses the same file from a mirror.
    std::fs::copy(&draft, t.md("2.root.json")).unwrap();
    let err = fetch(&t, t0()).unwrap_err();
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, .. } if role == "root"),
        "{err:?}"
    );

    // Old keys only: the new root does not meet its own threshold.
    sign(&[&old[0], &old[1]]);
    let err = root_error(t.repo.install_root(&draft).unwrap_err());
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, found: 0, threshold: 2, .. } if role == "root"),
        "{err:?}"
    );
    std::fs::copy(&draft, t.md("2.root.json")).unwrap();
    assert!(matches!(
        fetch(&t, t0()).unwrap_err(),
        VerifyError::ThresholdNotMet { .. }
    ));

    // Two old and two new: installed, and clients follow.
    sign(&[&old[0], &old[1], &new_keys[0], &new_keys[2]]);
    assert_eq!(t.repo.install_root(&draft).unwrap(), 2);
    assert_eq!(fetch(&t, t0()).unwrap().unwrap(), b"hello, appliance\n");
}

#[test]
fn offline_root_signatures_merge_and_install() {
    let tmp = tempfile::tempdir().unwrap();
    let holders: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
    let opts = InitOptions {
        offline_root_keys: holders.iter().map(SecretKey::public).collect(),
        ..Default::default()
    };
    let repo = RepoDir::new(tmp.path().join("repo"));
    let keys = onionpkg_repo::KeyDir::new(tmp.path().join("keys"), None);
    let report = repo.init(&keys, &opts, &Expiries::default(), t0()).unwrap();
    assert!(!report.root_installed);
    // Two holders sign their own copies on their own machines.
    let draft = repo.root_draft_path();
    let copies: Vec<_> = [0usize, 2]
        .iter()
        .map(|&i| {
            let copy = tmp.path().join(format!("copy-{i}.json"));
            std::fs::copy(&draft, &copy).unwrap();
            onionpkg_repo::rootops::sign_file(&copy, &holders[i]).unwrap();
            copy
        })
        .collect();
    // One copy alone is below the threshold.
    let err = repo.install_root(&copies[0]).unwrap_err();
    assert!(
        matches!(
            err,
            onionpkg_repo::RepoError::Trust(onionpkg_trust::Error::Verify(
                VerifyError::ThresholdNotMet { ref role, found: 1, threshold: 2, .. }
            )) if role == "root"
        ),
        "{err:?}"
    );
    let merged = tmp.path().join("merged.json");
    onionpkg_repo::rootops::merge_files(&merged, &copies).unwrap();
    assert_eq!(repo.install_root(&merged).unwrap(), 1);
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    client_run(repo.dir(), &root, None, t0(), None).unwrap();
    // Copies of different contents are never merged.
    let mut other = read(&copies[1]);
    other["signed"]["version"] = json!(7);
    write(&copies[1], &other);
    let err = onionpkg_repo::rootops::merge_files(&merged, &copies).unwrap_err();
    assert!(
        err.to_string()
            .contains("the copies sign different contents"),
        "{err}"
    );
}

#[test]
fn the_clock_policy_decides_expiry_and_refuses_a_clock_behind_the_floor() {
    use onionpkg_trust::clock::{ClockPolicy, FixedClock, TimeFloor, Tolerance};
    use onionpkg_trust::metadata::{Client, FsRepository};

    let t = TestRepo::new();
    let floor_file = t.tmp.path().join("floor.json");
    let policy = |now, tolerance_secs| {
        ClockPolicy::new(
            Box::new(FixedClock::new(now)),
            Tolerance::from_secs(tolerance_secs).unwrap(),
            TimeFloor::load(&floor_file).unwrap(),
        )
    };
    let refresh = |p: &ClockPolicy| {
        block_on(async {
            let mut c = Client::new(&t.root_v1(), None, FsRepository::from_tree(t.repo.dir()))?;
            c.refresh_with(p).await
        })
    };
    // The timestamp expires at t0 + 24 h: 30 minutes late is refused with no
    // tolerance, accepted with one hour.
    let late = at(24).checked_add(SignedDuration::from_mins(30)).unwrap();
    assert!(matches!(
        refresh(&policy(late, 0)).unwrap_err(),
        onionpkg_trust::Error::Verify(VerifyError::Expired { .. })
    ));
    assert!(refresh(&policy(late, 3600)).is_ok());
    // Tolerance is bounded.
    assert!(matches!(
        Tolerance::from_secs(2 * 3600),
        Err(onionpkg_trust::clock::ClockError::ToleranceTooLarge { .. })
    ));
    // A signed time seen at t0 + 10 h raises the floor, persisted; a clock
    // reading t0 + 1 h is then refused, naming the clock.
    let mut p = policy(at(10), 0);
    p.raise_floor(at(10)).unwrap();
    let err = refresh(&policy(at(1), 0)).unwrap_err();
    assert!(err.to_string().contains("fixed clock"), "{err}");
    assert!(refresh(&policy(at(11), 0)).is_ok());
}

/// A staged refresh stores nothing but the roots until it is committed:
/// metadata from a mirror the caller refuses never becomes the next run's
/// floor, while the chain of roots (signed by root keys) always persists.
#[test]
fn a_staged_refresh_stores_only_roots_until_committed() {
    use onionpkg_trust::metadata::{Client, FsRepository};
    let t = TestRepo::new();
    let store = t.store();
    client_run(t.repo.dir(), &t.root_v1(), Some(&store), t0(), None).unwrap();
    let version = |name: &str| -> u64 {
        read(&store.join(name))["signed"]["version"]
            .as_u64()
            .unwrap()
    };
    let before = version("timestamp.json");
    t.repo
        .rotate("timestamp", &t.keys, None, &Expiries::default(), t0())
        .unwrap();
    t.add_package("pkg/other-2.0.tar", b"other");
    t.publish();

    // Refreshed, verified, but not committed: only the new root is stored.
    block_on(async {
        let mut c = Client::new_staged(&t.root_v1(), &store, FsRepository::from_tree(t.repo.dir()))
            .unwrap();
        c.refresh(t0()).await.unwrap();
        assert!(c.timestamp_version().unwrap() > before);
    });
    assert_eq!(version("timestamp.json"), before);
    assert_eq!(version("root.json"), 2);

    // Committed: the refreshed metadata is the floor from now on.
    block_on(async {
        let mut c = Client::new_staged(&t.root_v1(), &store, FsRepository::from_tree(t.repo.dir()))
            .unwrap();
        c.refresh(t0()).await.unwrap();
        c.commit().unwrap();
    });
    assert!(version("timestamp.json") > before);
    assert!(version("snapshot.json") > 0);
}
