//! Hashed bins: a package update ships the bin that changed and nothing that
//! grows with the repository; bins follow the targets keys.

use std::sync::{Arc, Mutex};

use onionpkg_repo::{Expiries, InitOptions, RepoDir};
use onionpkg_trust::metadata::{Client, FetchFuture, FsRepository, Repository, VerifyError};
use onionpkg_trust::roles;
use serde_json::Value;

use crate::util::{TestRepo, block_on, client_run, default_bin_of, t0};

/// A repository that records the name of every file it hands out.
struct Recording {
    inner: FsRepository,
    fetched: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn record<'a>(&'a self, name: &'a str, f: FetchFuture<'a>) -> FetchFuture<'a> {
        Box::pin(async move {
            let got = f.await?;
            if got.is_some() {
                self.fetched.lock().unwrap().push(name.to_owned());
            }
            Ok(got)
        })
    }
}

impl Repository for Recording {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.record(name, self.inner.fetch_metadata(name, max_length))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        self.record(path, self.inner.fetch_target(path, max_length))
    }
}

/// Refreshes a client with a persistent store and loads every bin, as
/// `onionpkg-fetch download --all` does. Returns the files fetched and the
/// packages known.
fn update_all(t: &TestRepo) -> Result<(Vec<String>, Vec<String>), VerifyError> {
    let fetched = Arc::new(Mutex::new(Vec::new()));
    let repo = Recording {
        inner: FsRepository::from_tree(t.repo.dir()),
        fetched: Arc::clone(&fetched),
    };
    let store = t.store();
    let packages = block_on(async {
        let mut client = Client::new(&t.root_v1(), Some(&store), repo)?;
        client.refresh(t0()).await?;
        client.load_all_delegated(t0()).await?;
        Ok::<_, VerifyError>(
            client
                .known_targets()
                .into_iter()
                .filter(|(role, _)| roles::is_package_role(role))
                .map(|(_, path)| path)
                .collect(),
        )
    })?;
    let fetched = fetched.lock().unwrap().clone();
    Ok((fetched, packages))
}

/// A client that pinned root 1 follows the repository to the package.
fn assert_hello_verifies(t: &TestRepo) {
    let got = client_run(
        t.repo.dir(),
        &t.root_v1(),
        None,
        t0(),
        Some("pkg/hello-1.0.tar"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(got, b"hello, appliance\n");
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_one_package_update_fetches_only_the_bin_that_changed() {
    let t = TestRepo::new();
    for i in 0..40 {
        t.add_package(&format!("pkg/p{i}-1.0.tar"), format!("{i}").as_bytes());
    }
    t.publish();
    let (first, packages) = update_all(&t).unwrap();
    assert_eq!(packages.len(), 41);
    assert!(first.iter().filter(|f| f.contains(".bin-")).count() > 10);

    t.add_package("pkg/new-1.0.tar", b"new");
    t.publish();
    let (second, packages) = update_all(&t).unwrap();
    assert_eq!(packages.len(), 42);
    let bin = default_bin_of("pkg/new-1.0.tar");
    let snapshot = read(&t.md("timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let bin_version = read(&t.md(&format!("{snapshot}.snapshot.json")))["signed"]["meta"]
        [format!("{bin}.json")]["version"]
        .as_u64()
        .unwrap();
    assert_eq!(
        second,
        vec![
            "timestamp.json".to_string(),
            format!("{snapshot}.snapshot.json"),
            format!("{bin_version}.{bin}.json"),
        ]
    );
    // targets itself did not change: it delegates, it does not list.
    assert!(!t.md("2.targets.json").exists());
}

#[test]
fn a_tampered_bin_in_the_store_is_fetched_again_and_verified() {
    let t = TestRepo::new();
    update_all(&t).unwrap();
    let bin = default_bin_of("pkg/hello-1.0.tar");
    let cached = t.store().join(format!("{bin}.json"));
    let mut env = read(&cached);
    env["signed"]["targets"]["pkg/evil-6.6.tar"] =
        env["signed"]["targets"]["pkg/hello-1.0.tar"].clone();
    std::fs::write(&cached, serde_json::to_vec(&env).unwrap()).unwrap();
    // The stored copy has the right version but not a valid signature: it is
    // not used, the mirror's copy is fetched and verified instead.
    let (fetched, packages) = update_all(&t).unwrap();
    assert!(fetched.contains(&format!("1.{bin}.json")), "{fetched:?}");
    assert_eq!(packages, vec!["pkg/hello-1.0.tar".to_string()]);
    // And a mirror serving the same tampered bin is refused.
    std::fs::write(
        t.md(&format!("1.{bin}.json")),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&cached).unwrap();
    let err = update_all(&t).unwrap_err();
    assert!(
        matches!(err, VerifyError::ThresholdNotMet { ref role, .. } if *role == bin),
        "{err:?}"
    );
}

#[test]
fn without_bins_packages_stay_in_targets() {
    let t = TestRepo::with_options(&InitOptions {
        bins: 0,
        ..InitOptions::default()
    });
    let targets = read(&t.md("2.targets.json"));
    assert!(targets["signed"]["targets"]["pkg/hello-1.0.tar"].is_object());
    let roles: Vec<Value> = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(roles.len(), 2);
    let (_, packages) = update_all(&t).unwrap();
    assert_eq!(packages, vec!["pkg/hello-1.0.tar".to_string()]);
}

#[test]
fn a_bin_count_that_is_not_a_power_of_two_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = RepoDir::new(tmp.path().join("repo"));
    let keys = onionpkg_repo::KeyDir::new(tmp.path().join("keys"), None);
    let opts = InitOptions {
        bins: 100,
        ..InitOptions::default()
    };
    let err = repo
        .init(&keys, &opts, &Expiries::default(), t0())
        .unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
    assert!(!repo.metadata_dir().join("root.json").exists());
}

#[test]
fn rotating_the_targets_keys_moves_the_bins_to_the_new_keys() {
    let t = TestRepo::new();
    let rotation = t
        .repo
        .rotate("targets", &t.keys, None, &Expiries::default(), t0())
        .unwrap();
    let onionpkg_repo::rootops::Rotation::Done { key_ids } = rotation else {
        panic!("the root keys are at hand: {rotation:?}");
    };
    let bin = default_bin_of("pkg/hello-1.0.tar");
    let snapshot = read(&t.md("timestamp.json"))["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap = read(&t.md(&format!("{snapshot}.snapshot.json")));
    let targets_v = snap["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let targets = read(&t.md(&format!("{targets_v}.targets.json")));
    for role in targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap()
    {
        if roles::is_bin(role["name"].as_str().unwrap()) {
            assert_eq!(role["keyids"], serde_json::json!(key_ids));
        }
    }
    let bin_v = snap["signed"]["meta"][format!("{bin}.json")]["version"]
        .as_u64()
        .unwrap();
    assert_eq!(bin_v, 2, "the bin is re-signed with the new key");
    assert_hello_verifies(&t);
}

#[test]
fn a_plain_publish_after_an_offline_targets_rotation_re_signs_targets_and_bins() {
    let t = TestRepo::new();
    // The root keys are offline: rotate leaves a draft for their holders.
    let offline = t.tmp.path().join("offline");
    std::fs::create_dir_all(&offline).unwrap();
    for stem in ["root-1", "root-2", "root-3"] {
        for ext in ["key", "pub.json"] {
            let name = format!("{stem}.{ext}");
            std::fs::rename(t.keys.dir().join(&name), offline.join(&name)).unwrap();
        }
    }
    let rotation = t
        .repo
        .rotate("targets", &t.keys, None, &Expiries::default(), t0())
        .unwrap();
    let onionpkg_repo::rootops::Rotation::NeedsSignatures { draft, .. } = rotation else {
        panic!("the root keys are offline: {rotation:?}");
    };
    let holders = onionpkg_repo::KeyDir::new(&offline, None);
    for stem in ["root-1", "root-2"] {
        onionpkg_repo::rootops::sign_file(&draft, &holders.load(stem).unwrap()).unwrap();
    }
    assert_eq!(t.repo.install_root(&draft).unwrap(), 2);
    // What the guide says next: `publish`, with nothing staged.
    t.publish();
    assert_hello_verifies(&t);
}
