//! A served target that was changed behind sync's back is hashed again on
//! the next sync, and replaced through the staged publish.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use onionpkg_mirror::sync::sync_and_record;

use crate::sync::{Upstream, client_accepts, sync_config};
use crate::util::{TestRepo, clock, direct};

/// Overwrites `path` in place with bytes of the same length, and sets its
/// mtime to `mtime`.
fn corrupt(path: &std::path::Path, mtime: SystemTime) {
    let mut bytes = std::fs::read(path).unwrap();
    for b in &mut bytes {
        *b ^= 0x20;
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::io::Write::write_all(&mut &f, &bytes).unwrap();
    f.set_modified(mtime).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_served_target_is_repaired_by_the_next_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let root_json = std::fs::read(repo.root_path()).unwrap();
    let upstream = Upstream::start(repo.dir(), "none").await;
    let cfg = sync_config(tmp.path(), &repo, "https://upstream.example/", "");
    let served = tmp.path().join("served");
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let url = upstream.url();
    let transport = direct(&cfg);
    let policy = clock(&cfg);
    let sync = || sync_and_record(&cfg, Some(&url), &transport, &policy, None);

    let r = sync().await.unwrap();
    assert_eq!((r.downloaded, r.present), (1, 0));
    let target = served
        .join("targets")
        .join(repo.hashed("pkg/hello-1.0.tar"));
    let good = std::fs::read(&target).unwrap();

    // Nothing changed: nothing downloaded.
    let r = sync().await.unwrap();
    assert_eq!((r.downloaded, r.present), (0, 1));

    // Same length, other bytes, a new mtime: hashed, found wrong, replaced.
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    corrupt(&target, mtime + Duration::from_secs(7));
    assert_eq!(std::fs::metadata(&target).unwrap().len(), good.len() as u64);
    let r = sync().await.unwrap();
    assert_eq!((r.downloaded, r.present), (1, 0));
    assert_eq!(std::fs::read(&target).unwrap(), good);
    assert_eq!(
        client_accepts(&root_json, &served, "pkg/hello-1.0.tar").await,
        b"hello, appliance\n"
    );
    assert!(!served.join(onionpkg_mirror::sync::SCRATCH_DIR).exists());

    // A file sync has no record of (a tree copied in by hand) is hashed too,
    // whatever its mtime.
    std::fs::remove_file(cfg.state_dir.join(onionpkg_mirror::sync::TARGETS_RECORD)).unwrap();
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    corrupt(&target, mtime);
    let r = sync().await.unwrap();
    assert_eq!((r.downloaded, r.present), (1, 0));
    assert_eq!(std::fs::read(&target).unwrap(), good);

    // A present file without a record that verifies is kept, and recorded.
    std::fs::remove_file(cfg.state_dir.join(onionpkg_mirror::sync::TARGETS_RECORD)).unwrap();
    let r = sync().await.unwrap();
    assert_eq!((r.downloaded, r.present), (0, 1));
    assert!(
        cfg.state_dir
            .join(onionpkg_mirror::sync::TARGETS_RECORD)
            .exists()
    );
}
