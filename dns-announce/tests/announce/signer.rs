//! `serve` and `make` signing through a real `onionpkg-signer` (file
//! backend): the announcer names no key file of the timestamp role and has
//! none to read, yet serves a record `check` accepts; a client the signer
//! does not allow announcements gets none.

use onionpkg_testkit::signer::{Client, FileSigner, PASSPHRASE};
use onionpkg_trust::sign::SecretKey;

use crate::serve::ServeChild;
use crate::util::{NAME, TestRepo, ZONE, check, run};

fn client(name: &str, key: &SecretKey, roles: &[&str]) -> Client {
    Client {
        name: name.into(),
        key_hex: hex::encode(key.public().raw_bytes()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_a_record_signed_through_the_signer_with_no_key_file() {
    let repo = TestRepo::new();
    let tmp = repo.tmp.path();
    let mut signer = FileSigner::new(&tmp.join("signer")).unwrap();
    let [timestamp_key] = repo.timestamp_keys().try_into().unwrap();
    timestamp_key
        .write_file(&signer.key_file("timestamp"), Some(PASSPHRASE.as_bytes()))
        .unwrap();
    // The release keys leave this host's announcer: none is left to read.
    let offline = tmp.join("offline-keys");
    std::fs::rename(repo.keys_dir(), &offline).unwrap();
    let (announcer, stranger) = (SecretKey::generate(), SecretKey::generate());
    signer
        .start(&[
            client("announce", &announcer, &["announcement"]),
            client("other", &stranger, &["timestamp"]),
        ])
        .unwrap();
    let (client_key, stranger_key) = (tmp.join("client.key"), tmp.join("stranger.key"));
    announcer.write_file(&client_key, None).unwrap();
    stranger.write_file(&stranger_key, None).unwrap();
    let config = tmp.join("announce.toml");
    std::fs::write(
        &config,
        format!(
            "zone = \"{ZONE}\"\nname = \"{NAME}\"\nttl = 60\nrepo = {:?}\n\
             signer = {:?}\nsigner_key = {:?}\n[serve]\nlisten = [\"127.0.0.1:0\"]\n",
            repo.dir().display().to_string(),
            signer.socket().display().to_string(),
            client_key.display().to_string(),
        ),
    )
    .unwrap();

    let (_serve, addr, serial) = ServeChild::start(&config, &["--no-poll"]).await;
    let run_check = check(&repo.root(), addr, &["--json"]).await;
    run_check.assert_code(0);
    assert_eq!(run_check.json()["serial"], serial);
    assert!(!repo.keys_dir().exists(), "no key directory");
    let entries = signer.entries();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(
        entries[0].contains("\"kind\":\"announcement\"")
            && entries[0].contains("\"client\":\"announce\""),
        "{}",
        entries[0]
    );

    // A client not allowed announcements: refused, nothing signed.
    let made = run([
        "make",
        "--repo",
        &repo.dir().display().to_string(),
        "--name",
        NAME,
        "--signer",
        &signer.socket().display().to_string(),
        "--signer-key",
        &stranger_key.display().to_string(),
    ])
    .await;
    assert_ne!(made.code, 0);
    assert!(
        made.stderr.contains("forbidden")
            && made
                .stderr
                .contains("client other may not request announcement"),
        "{}",
        made.stderr
    );
    assert_eq!(signer.entries().len(), 1);
}
