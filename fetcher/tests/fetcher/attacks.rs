//! TUF attacks on the metadata, each through `onionpkg-fetch` as an
//! appliance runs it (HTTPS to a loopback mirror, a state directory, the
//! streaming download) rather than through the trust layer's in-memory
//! helper: one key's signature listed twice, a search past a terminating
//! delegation, and a mix-and-match that only the snapshot's hash pin tells
//! apart. Each test names the line of defence it pins; each was checked to
//! fail with that line removed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::Digest;

use onionpkg_repo::InitOptions;
use onionpkg_testkit::TestCa;
use onionpkg_trust::roles;
use onionpkg_trust::sign::{SecretKey, sign_metadata};

use crate::server::serve;
use crate::util::{Appliance, TestRepo};

const PKG: &str = "pkg/hello-1.0.tar";
const HELLO: &[u8] = b"hello, appliance\n";

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes `v` as `onionpkg-repo` writes metadata (pretty, a final newline).
fn write(path: &Path, v: &Value) {
    let mut bytes = serde_json::to_vec_pretty(v).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, bytes).unwrap();
}

fn md(repo: &TestRepo, name: &str) -> PathBuf {
    repo.repo.metadata_dir().join(name)
}

/// Re-signs the envelope at `path` after `edit`, with the key files `stems`
/// (a compromised key, where the attack needs one).
fn resign(repo: &TestRepo, path: &Path, stems: &[&str], edit: impl FnOnce(&mut Value)) {
    let mut env = read(path);
    edit(&mut env["signed"]);
    let keys: Vec<SecretKey> = stems.iter().map(|s| repo.keys.load(s).unwrap()).collect();
    let refs: Vec<&SecretKey> = keys.iter().collect();
    write(path, &sign_metadata(env["signed"].clone(), &refs).unwrap());
}

fn snapshot_version(repo: &TestRepo) -> u64 {
    read(&md(repo, "timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap()
}

/// The version of `role` the published snapshot pins.
fn pinned_version(repo: &TestRepo, role: &str) -> u64 {
    let snap = read(&md(
        repo,
        &format!("{}.snapshot.json", snapshot_version(repo)),
    ));
    snap["signed"]["meta"][format!("{role}.json")]["version"]
        .as_u64()
        .unwrap()
}

/// The hashed bin whose prefixes cover `path`.
fn bin_of(path: &str) -> String {
    let hash = roles::path_hash(path);
    roles::bins(roles::DEFAULT_BINS)
        .unwrap()
        .into_iter()
        .find(|(_, prefixes)| prefixes.iter().any(|p| hash.starts_with(p.as_str())))
        .unwrap()
        .0
}

/// A time `days` from now as metadata writes it.
fn in_days(days: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Threshold inflation on the appliance: targets is 2-of-3 (and the
/// package's bin, which follows its keys), and the mirror serves the role
/// with one genuine signature listed twice. Pins the refusal of a key id
/// seen twice among a role's signatures (sigstore-tuf's
/// `Metadata::verify_threshold`, `DuplicateSignature`, reported as
/// `VerifyError::DuplicateSignature`): with that check removed the run
/// still fails, but as a missed threshold ("1 valid signature(s), 2
/// required", the distinct-key count), not as this refusal. The top-level
/// role is refused in the refresh (the mirror marked bad, exit 8 through
/// "every mirror failed"); the bin while the packages are resolved (exit 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keys_signature_listed_twice_is_refused_by_the_appliance() {
    let mut opts = InitOptions::default();
    opts.thresholds
        .insert("targets".into(), "2/3".parse().unwrap());
    for role in [roles::TARGETS.to_string(), bin_of(PKG)] {
        let repo = TestRepo::with_options(&opts, &[(PKG, HELLO)]);
        let path = md(
            &repo,
            &format!("{}.{role}.json", pinned_version(&repo, &role)),
        );
        let mut env = read(&path);
        let sigs = env["signatures"].as_array_mut().unwrap();
        assert_eq!(sigs.len(), 3, "{role}: signed by all three keys");
        sigs.truncate(1);
        let first = sigs[0].clone();
        sigs.push(first.clone());
        write(&path, &env);
        let ca = TestCa::new();
        let srv = serve(repo.tree(), ca.server.clone()).await;
        let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
        let r = app.run(&["download", "--all"]).await;
        let keyid = first["keyid"].as_str().unwrap();
        let want = format!("{role} metadata lists more than one signature of key {keyid}");
        assert_eq!(r.code(), 8, "{role}: {}", r.stderr());
        assert!(r.stderr().contains(&want), "{role}: {}", r.stderr());
        assert!(!app.out().join(PKG).exists(), "{role}: downloaded");
        if role == roles::TARGETS {
            let row = app.mirror_row(&srv.url()).await;
            assert_eq!(row["health"], "bad", "{row}");
            assert!(row["reason"].as_str().unwrap().contains(&want), "{row}");
        }
    }
}

/// Publishes by hand what `onionpkg-repo` cannot make: the top-level
/// targets role edited by `edit` (signed with the targets key), a new
/// delegated role `name` with `payload` signed by the key file `key`, and
/// a snapshot and a timestamp that pin them.
fn publish_delegation(
    repo: &TestRepo,
    edit: impl FnOnce(&mut Value),
    (name, payload, key): (&str, Value, &str),
) {
    let tv = pinned_version(repo, roles::TARGETS);
    let sv = snapshot_version(repo);
    let next = md(repo, &format!("{}.targets.json", tv + 1));
    std::fs::copy(md(repo, &format!("{tv}.targets.json")), &next).unwrap();
    resign(repo, &next, &["targets"], |s| {
        s["version"] = json!(tv + 1);
        edit(s);
    });
    let role = md(repo, &format!("1.{name}.json"));
    write(&role, &json!({ "signed": payload, "signatures": [] }));
    resign(repo, &role, &[key], |_| {});
    let snap = md(repo, &format!("{}.snapshot.json", sv + 1));
    std::fs::copy(md(repo, &format!("{sv}.snapshot.json")), &snap).unwrap();
    resign(repo, &snap, &["snapshot"], |s| {
        s["version"] = json!(sv + 1);
        s["meta"]["targets.json"] = json!({ "version": tv + 1 });
        s["meta"][format!("{name}.json")] = json!({ "version": 1 });
    });
    let bytes = std::fs::read(&snap).unwrap();
    resign(repo, &md(repo, "timestamp.json"), &["timestamp"], |s| {
        s["version"] = json!(s["version"].as_u64().unwrap() + 1);
        s["meta"]["snapshot.json"] = json!({
            "version": sv + 1,
            "length": bytes.len(),
            "hashes": { "sha256": format!("{:x}", sha2::Sha256::digest(&bytes)) },
        });
    });
}

/// Wrong software through a delegation further down the list: `evil`
/// (holding the compromised mirrors key) is delegated `pkg/*` after the
/// hashed bins and signs `pkg/evil-6.6.tar`, which the bin of that path
/// does not list. Pins the search stopping at a terminating delegation
/// (sigstore-tuf's `Updater::get_target_info`, `if child.terminating {
/// to_visit.clear(); break; }`): the bin is terminating, so `evil` is never
/// consulted and `onionpkg-fetch download` says no trusted role lists the
/// target (exit 11), while the genuine package still downloads. The
/// control makes only that bin non-terminating, and the appliance then
/// downloads the evil target: the delegation is reachable but for the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_delegation_stops_the_appliances_search() {
    const EVIL: &str = "pkg/evil-6.6.tar";
    const CONTENT: &[u8] = b"evil\n";
    let bin = bin_of(EVIL);
    for terminating in [true, false] {
        let repo = TestRepo::new(&[(PKG, HELLO)]);
        let hash = format!("{:x}", sha2::Sha256::digest(CONTENT));
        let file = repo
            .repo
            .targets_dir()
            .join(format!("pkg/{hash}.evil-6.6.tar"));
        std::fs::write(file, CONTENT).unwrap();
        let evil = json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1,
            "expires": in_days(30),
            "targets": { EVIL: { "length": CONTENT.len(), "hashes": { "sha256": hash } } },
        });
        publish_delegation(
            &repo,
            |s| {
                let roles = s["delegations"]["roles"].as_array_mut().unwrap();
                let mirrors_key =
                    roles.iter().find(|r| r["name"] == "mirrors").unwrap()["keyids"].clone();
                let it = roles
                    .iter_mut()
                    .find(|r| r["name"] == bin.as_str())
                    .unwrap();
                assert_eq!(it["terminating"], true, "bins are terminating");
                it["terminating"] = json!(terminating);
                roles.push(json!({
                    "name": "evil", "keyids": mirrors_key, "threshold": 1,
                    "terminating": false, "paths": ["pkg/*"],
                }));
            },
            ("evil", evil, "mirrors"),
        );
        let ca = TestCa::new();
        let srv = serve(repo.tree(), ca.server.clone()).await;
        let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
        let r = app.run(&["download", EVIL]).await;
        if terminating {
            assert_eq!(r.code(), 11, "{}", r.stderr());
            assert!(
                r.stderr()
                    .contains(&format!("no trusted role lists target {EVIL}")),
                "{}",
                r.stderr()
            );
            assert!(!app.out().join(EVIL).exists());
            app.run(&["download", PKG]).await.ok();
            assert_eq!(std::fs::read(app.out().join(PKG)).unwrap(), HELLO);
        } else {
            let r = r.ok();
            assert!(r.stdout().contains(EVIL), "{}", r.stdout());
            assert_eq!(
                std::fs::read(app.out().join(EVIL)).unwrap(),
                CONTENT,
                "control: evil is reachable"
            );
        }
    }
}

/// Mix-and-match on an appliance in service, caught by the snapshot's hash
/// pin alone. The appliance has downloaded release 1; release 2 adds a
/// package. The mirror serves the genuine timestamp of release 2 but, in
/// place of its snapshot, one the compromised snapshot key signed: the
/// version the timestamp pins, padded to the same length, every role
/// pinned as release 1 pinned it (so nothing rolls back against what the
/// appliance trusts), which withholds the new package. Version, length, signature
/// and rollback checks all pass; only the timestamp's sha256 of the
/// snapshot (sigstore-tuf's `check_integrity` in
/// `TrustedMetadataSet::update_snapshot`) refuses it. Without that check the
/// run succeeds with the new package silently missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_and_match_is_refused_by_the_appliance_through_the_snapshot_hash_pin_alone() {
    const NEW: &str = "pkg/hello-1.1.tar";
    let repo = TestRepo::new(&[(PKG, HELLO)]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.run(&["download", "--all"]).await.ok();
    let old = read(&md(
        &repo,
        &format!("{}.snapshot.json", snapshot_version(&repo)),
    ));
    let trusted = read(&app.state().join("metadata/timestamp.json"))["signed"]["version"].clone();

    repo.add_package(NEW, b"newer\n");
    repo.publish();
    let sv = snapshot_version(&repo);
    let path = md(&repo, &format!("{sv}.snapshot.json"));
    let genuine = std::fs::read(&path).unwrap();
    assert_ne!(old["signed"]["meta"], read(&path)["signed"]["meta"]);
    let expires = read(&path)["signed"]["expires"].clone();
    resign(&repo, &path, &["snapshot"], |s| {
        s["meta"] = old["signed"]["meta"].clone();
        s["expires"] = expires;
    });
    // Padded with white space (outside what is signed) to the pinned length.
    let mut forged = std::fs::read(&path).unwrap();
    assert!(forged.len() <= genuine.len());
    forged.pop();
    forged.resize(genuine.len() - 1, b' ');
    forged.push(b'\n');
    std::fs::write(&path, &forged).unwrap();
    assert_ne!(forged, genuine);
    assert_eq!(forged.len(), genuine.len(), "the forgery keeps the length");
    let pin = &read(&md(&repo, "timestamp.json"))["signed"]["meta"]["snapshot.json"];
    assert_eq!(pin["version"], read(&path)["signed"]["version"]);
    assert_eq!(pin["length"], forged.len());

    let r = app.run(&["download", "--all"]).await;
    assert_eq!(r.code(), 8, "{}\n{}", r.stdout(), r.stderr());
    let want = "metadata does not match what its parent pinned: snapshot.json: sha256 mismatch";
    assert!(r.stderr().contains(want), "{}", r.stderr());
    assert!(!app.out().join(NEW).exists());
    let row = app.mirror_row(&srv.url()).await;
    assert_eq!(row["health"], "bad", "{row}");
    assert!(row["reason"].as_str().unwrap().contains(want), "{row}");
    // The refused refresh moved no floor.
    assert_eq!(
        read(&app.state().join("metadata/timestamp.json"))["signed"]["version"],
        trusted
    );
}

/// The same mix-and-match planted in the appliance's store: after release
/// 2 was downloaded, `STATE/metadata/snapshot.json` is replaced by a
/// snapshot the compromised snapshot key signed, of the version the stored
/// timestamp pins, padded to its length, pinning every role as release 1
/// did. Pins the hash pin applied to the stored copy too (sigstore-tuf's
/// `load_cached_snapshot`, through the same `check_integrity`): the copy is
/// ignored, the genuine snapshot fetched again and stored, and release 2's
/// package is still found. Without that check the stored forgery is
/// trusted and the package is "not listed" (exit 11).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_snapshot_in_the_store_is_refused_by_the_hash_pin_and_fetched_again() {
    const NEW: &str = "pkg/hello-1.1.tar";
    let repo = TestRepo::new(&[(PKG, HELLO)]);
    let old = read(&md(
        &repo,
        &format!("{}.snapshot.json", snapshot_version(&repo)),
    ));
    repo.add_package(NEW, b"newer\n");
    repo.publish();
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[srv.url()], "");
    app.run(&["download", "--all"]).await.ok();

    let stored = app.state().join("metadata/snapshot.json");
    let genuine = std::fs::read(&stored).unwrap();
    assert_ne!(old["signed"]["meta"], read(&stored)["signed"]["meta"]);
    resign(&repo, &stored, &["snapshot"], |s| {
        s["meta"] = old["signed"]["meta"].clone();
    });
    let mut forged = std::fs::read(&stored).unwrap();
    assert!(forged.len() <= genuine.len());
    forged.pop();
    forged.resize(genuine.len() - 1, b' ');
    forged.push(b'\n');
    std::fs::write(&stored, &forged).unwrap();
    let pin =
        &read(&app.state().join("metadata/timestamp.json"))["signed"]["meta"]["snapshot.json"];
    assert_eq!(pin["version"], read(&stored)["signed"]["version"]);
    assert_eq!(pin["length"], forged.len());

    let r = app.run(&["download", NEW]).await.ok();
    assert!(r.stdout().contains("already verified"), "{}", r.stdout());
    assert_eq!(std::fs::read(&stored).unwrap(), genuine, "fetched again");
}
