//! Sync's clock policy, the fetcher's: `[clock] skew_tolerance` (at most
//! one hour) for expiry, and a clock behind the signed time floor refused.

use jiff::{SignedDuration, Timestamp};
use onionpkg_mirror::Error;
use onionpkg_mirror::sync::{TIME_FLOOR, clock_policy_with, sync_and_record};
use onionpkg_trust::clock::{ClockError, FixedClock, TimeFloor};
use onionpkg_trust::metadata::VerifyError;

use crate::sync::{Upstream, snapshot, sync_config, synced_one};
use crate::util::{TestRepo, WAIT, direct};

/// When the upstream's `timestamp.json` expires.
fn timestamp_expiry(repo: &TestRepo) -> Timestamp {
    let ts = std::fs::read(repo.repo.metadata_dir().join("timestamp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    v["signed"]["expires"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_expired_within_the_tolerance_is_accepted_and_beyond_it_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let root_json = std::fs::read(repo.root_path()).unwrap();
    let upstream = Upstream::start(repo.dir(), "none").await;
    // A clock 30 minutes past the timestamp's expiry.
    let late = timestamp_expiry(&repo) + SignedDuration::from_mins(30);

    let strict = tmp.path().join("strict");
    std::fs::create_dir_all(&strict).unwrap();
    let cfg = sync_config(&strict, &repo, &upstream.url(), "");
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let clock = clock_policy_with(&cfg, Box::new(FixedClock::new(late))).unwrap();
    let e = sync_and_record(&cfg, None, &direct(&cfg), &clock, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Verify(VerifyError::Expired { role, .. }) if role == "timestamp"),
        "{e}"
    );
    assert!(snapshot(&cfg.root).is_empty(), "a refused sync published");

    let tolerant = tmp.path().join("tolerant");
    std::fs::create_dir_all(&tolerant).unwrap();
    let cfg = sync_config(
        &tolerant,
        &repo,
        &upstream.url(),
        "[clock]\nskew_tolerance = \"1h\"\n",
    );
    let cfg = onionpkg_config::load_mirror(&cfg).unwrap();
    let clock = clock_policy_with(&cfg, Box::new(FixedClock::new(late))).unwrap();
    synced_one(&cfg, &clock, &root_json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_behind_the_time_floor_is_refused_naming_the_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), Timestamp::now());
    let upstream = Upstream::start(repo.dir(), "none").await;
    let cfg_path = sync_config(
        tmp.path(),
        &repo,
        &upstream.url(),
        "[clock]\nskew_tolerance = \"1h\"\n",
    );
    let cfg = onionpkg_config::load_mirror(&cfg_path).unwrap();
    // Signed time already seen, persisted in the mirror's state dir.
    let floor = Timestamp::now();
    let floor_file = cfg.state_dir.join(TIME_FLOOR);
    TimeFloor::load(&floor_file).unwrap().raise(floor).unwrap();

    // Behind by more than the tolerance: refused, nothing fetched.
    let behind = floor - SignedDuration::from_mins(61);
    let clock = clock_policy_with(&cfg, Box::new(FixedClock::new(behind))).unwrap();
    let e = sync_and_record(&cfg, None, &direct(&cfg), &clock, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Clock(ClockError::BehindFloor { clock, .. }) if clock == "fixed clock"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("the fixed clock is behind; set it right"),
        "{e}"
    );
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 5);
    assert!(snapshot(&cfg.root).is_empty(), "a refused sync published");

    // Within the tolerance: synced.
    let within = floor - SignedDuration::from_mins(59);
    let clock = clock_policy_with(&cfg, Box::new(FixedClock::new(within))).unwrap();
    sync_and_record(&cfg, None, &direct(&cfg), &clock, None)
        .await
        .unwrap();

    // The command reads the system clock, and says so.
    TimeFloor::load(&floor_file)
        .unwrap()
        .raise(Timestamp::now() + SignedDuration::from_hours(2))
        .unwrap();
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_onionpkg-mirror"))
            .args(["sync", "--config", &cfg_path.display().to_string()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("the system clock is behind; set it right"),
        "{stderr}"
    );

    // A damaged floor is refused, never silently dropped.
    std::fs::write(&floor_file, b"{").unwrap();
    let e = clock_policy_with(&cfg, Box::new(FixedClock::new(floor))).unwrap_err();
    assert!(
        matches!(e, Error::Clock(ClockError::CorruptFloor { .. })),
        "{e}"
    );
}
