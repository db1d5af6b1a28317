//! The feed publisher signing through a real `onionpkg-signer` (file
//! backend): the mirror holds no key file of a role, yet publishes feeds
//! that verify like packages, and the signer's log lists each signature.

use std::path::Path;

use onionpkg_testkit::signer::{Client, FileSigner, PASSPHRASE};
use onionpkg_testkit::testdata;
use onionpkg_trust::sign::SecretKey;

use crate::feeds::{Primary, Publish, Upstream, fetch};

/// The roles the feed publisher signs.
const ROLES: [&str; 3] = ["feeds", "snapshot", "timestamp"];

/// Moves the repository's `feeds`, `snapshot` and `timestamp` keys into the
/// signer and removes the key directory altogether.
fn hand_keys_to(signer: &FileSigner, keys: &Path) {
    for role in ROLES {
        let key = SecretKey::read_file(&keys.join(format!("{role}.key")), None).unwrap();
        key.write_file(&signer.key_file(role), Some(PASSPHRASE.as_bytes()))
            .unwrap();
    }
    std::fs::remove_dir_all(keys).unwrap();
}

fn client(name: &str, key: &SecretKey, roles: &[&str]) -> Client {
    Client {
        name: name.into(),
        key_hex: hex::encode(key.public().raw_bytes()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_are_published_through_the_signer_with_no_key_file() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut signer = FileSigner::new(&dir.path().join("signer")).unwrap();
    let (publisher, stranger) = (SecretKey::generate(), SecretKey::generate());
    let client_key = dir.path().join("client.key");
    publisher.write_file(&client_key, None).unwrap();
    let p = Primary::publishing(
        &up,
        &Publish::Signer {
            socket: signer.socket(),
            client_key: client_key.clone(),
        },
        1 << 20,
        "",
    );
    hand_keys_to(&signer, p.repo.keys.dir());
    signer
        .start(&[
            client("feeds", &publisher, &ROLES),
            client("other", &stranger, &["timestamp"]),
        ])
        .unwrap();
    p.serve_all(&up);

    let lines = fetch(&p, &[]).await.unwrap();
    assert!(
        lines.iter().all(|l| l.contains("new version")),
        "{lines:?}\n{}",
        signer.log()
    );
    assert!(!p.repo.keys.dir().exists(), "no key directory");
    let list = p.client_gets("feeds/blocklist/drop.txt").await;
    assert_eq!(list, testdata::DROP_LIST.as_bytes());
    assert_eq!(
        p.client_gets("feeds/geoip/GeoLite2-Country.mmdb").await,
        testdata::mmdb()
    );
    let published = p.status("blocklist").published_version.unwrap();
    // Three feeds, each published with feeds, snapshot and timestamp.
    let entries = signer.entries();
    assert_eq!(entries.len(), 9, "{entries:#?}");
    for role in ROLES {
        let n = entries
            .iter()
            .filter(|e| e.contains(&format!("\"role\":\"{role}\"")))
            .count();
        assert_eq!(n, 3, "{role}: {entries:#?}");
    }
    assert!(entries.iter().all(|e| e.contains("\"client\":\"feeds\"")));

    // A client the signer does not allow the feeds role publishes nothing;
    // the last good version stays published and served.
    std::fs::remove_file(&client_key).unwrap();
    stranger.write_file(&client_key, None).unwrap();
    let newer = format!("{}203.0.113.128/25 ; SBL000005\n", testdata::DROP_LIST);
    p.serve_list(&up, newer.as_bytes());
    match fetch(&p, &["blocklist"]).await {
        Err(onionpkg_mirror::Error::FeedsFailed(e)) => {
            assert!(e.contains("keeping the last good version"), "{e}");
        }
        other => panic!("expected the publish to fail, got {other:?}"),
    }
    let status = p.status("blocklist");
    let error = status.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("forbidden") && error.contains("client other may not request feeds"),
        "{error}"
    );
    assert_eq!(status.published_version, Some(published));
    assert_eq!(
        p.client_gets("feeds/blocklist/drop.txt").await,
        testdata::DROP_LIST.as_bytes()
    );
    assert_eq!(signer.entries().len(), 9);
}
