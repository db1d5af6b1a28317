//! The setup the announcement tests share: a mirror, the built-in
//! announcement server for one zone, and an appliance pointed at both.

use std::net::SocketAddr;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::serve::{AnnounceZone, Listening, listen};
use onionpkg_repo::Expiries;
use sha2::Digest as _;

use crate::server::{Server, serve};
use crate::util::{Appliance, TestRepo};
use onionpkg_testkit::TestCa;

/// The announcement's record name.
pub const NAME: &str = "_update.example.org";

/// The `[announcement]` section that asks `resolver` for [`NAME`].
pub fn dns_config(resolver: SocketAddr) -> String {
    format!("[announcement]\nname = \"{NAME}\"\nresolver = \"{resolver}\"\n")
}

/// A repository whose timestamps are valid for `hours`, with `packages`.
pub fn repo_with_timestamp_hours(hours: i64, packages: &[(&str, &[u8])]) -> TestRepo {
    let mut expiries = Expiries::default();
    expiries
        .set(
            onionpkg_trust::roles::TIMESTAMP,
            SignedDuration::from_hours(hours),
        )
        .unwrap();
    TestRepo::with_expiries(Timestamp::now(), expiries, packages)
}

/// A mirror, an announcement server and an appliance using both.
pub struct Announced {
    pub mirror: Server,
    pub zone: AnnounceZone,
    pub dns: Listening,
    pub app: Appliance,
    _ca: TestCa,
}

impl Announced {
    /// A mirror serving `tree`, an empty zone served on 127.0.0.1, and an
    /// appliance trusting `repo`'s root whose configuration has `extra`
    /// lines in its `[announcement]` section.
    pub async fn start(repo: &TestRepo, tree: PathBuf, extra: &str) -> Self {
        let ca = TestCa::new();
        let mirror = serve(tree, ca.server.clone()).await;
        let zone = AnnounceZone::new("example.org", NAME, 60, None).unwrap();
        let dns = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
            .await
            .unwrap();
        let config = format!("{}{extra}", dns_config(dns.local_addrs()[0]));
        let app = Appliance::https(&ca, &repo.root_file(), &[mirror.url()], &config);
        Self {
            mirror,
            zone,
            dns,
            app,
            _ca: ca,
        }
    }

    /// How many requests the mirror has answered.
    pub fn requests(&self) -> usize {
        self.mirror.seen.lock().unwrap().len()
    }

    /// Signs `repo`'s published state, valid for an hour, and serves it.
    pub async fn announce(&self, repo: &TestRepo) {
        self.zone.set_record(Some(&signed(repo))).await.unwrap();
    }

    /// Serves a record for `serial` and `hash`, valid from now for `valid`,
    /// signed by `repo`'s current timestamp key: whatever the release tools would
    /// allow, as an attacker holding the key (or replaying an old record)
    /// can.
    pub async fn forge(
        &self,
        repo: &TestRepo,
        serial: u64,
        hash: &[u8; 32],
        valid: SignedDuration,
    ) {
        let key = repo.keys.load("timestamp").unwrap();
        let now = Timestamp::now();
        let text =
            onionpkg_trust::announce::make(NAME, "stable", serial, now, now + valid, hash, &[&key])
                .unwrap();
        self.zone.set_record(Some(&text)).await.unwrap();
    }

    /// Stops the announcement server.
    pub async fn shutdown(self) {
        self.dns.shutdown().await.unwrap();
    }
}

/// The published timestamp's version and SHA-256.
pub fn published(repo: &TestRepo) -> (u64, [u8; 32]) {
    let bytes = std::fs::read(repo.tree().join("metadata/timestamp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    (
        v["signed"]["version"].as_u64().unwrap(),
        sha2::Sha256::digest(&bytes).into(),
    )
}

/// The record the release tools sign for `repo`'s published state, valid
/// for an hour.
pub fn signed(repo: &TestRepo) -> String {
    repo.repo
        .announce(
            &repo.keys,
            NAME,
            "stable",
            Some(SignedDuration::from_hours(1)),
            Timestamp::now(),
        )
        .unwrap()
}
