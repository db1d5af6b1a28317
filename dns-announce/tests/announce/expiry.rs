//! An announcement never extends the trust of the timestamp it names:
//! `make` and `push` refuse a validity past the timestamp's expiry, and
//! `serve` cuts its records there, withdraws the record once the timestamp
//! has expired, and serves again when a fresh timestamp.json appears (run
//! against a clock the test drives).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::check::{Expectation, timestamp_keys_of_root, verify_records};
use onionpkg_announce::exit;
use onionpkg_announce::serve::{
    AnnounceZone, Announcer, Control, ServeOptions, ServeStatus, Signing, Timer, drive, listen,
};
use onionpkg_repo::RepoDir;
use onionpkg_trust::clock::{Clock, Tolerance};
use tokio::sync::{mpsc, watch};

use crate::util::{DEADLINE, NAME, TestRepo, ZONE, run, tcp_query, txt_of, udp_query};

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

#[tokio::test]
async fn make_and_push_refuse_a_validity_past_the_timestamp_expiry() {
    let repo = TestRepo::new();
    let ts_expires = repo.timestamp_expires();

    let refused = run(repo.args("make", &["--expires", "2d"])).await;
    refused.assert_code(i32::from(exit::USAGE));
    let err = &refused.stderr;
    assert!(
        err.contains("would outlive the timestamp.json it names"),
        "{err}"
    );
    assert!(
        err.contains(&ts_expires.to_string()),
        "names the timestamp's expiry: {err}"
    );
    let suggested = err
        .split("give a shorter --expires (--expires ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("suggests a shorter --expires: {err}"))
        .to_string();
    // The record's own expiry (two days from now) is named too.
    let in_two_days = Timestamp::now().checked_add(hours(48)).unwrap();
    assert!(
        err.contains(&in_two_days.strftime("%Y-%m-%dT").to_string()),
        "names the record's expiry: {err}"
    );

    // A shorter validity is fine, and so is the default (a day, cut at the
    // timestamp's expiry).
    // The timestamp is seconds old and lives a day.
    assert!(["1d", "23h"].contains(&suggested.as_str()), "{err}");
    let ok = run(repo.args("make", &["--expires", "12h"])).await;
    ok.assert_code(0);
    let ok = run(repo.args("make", &["--json"])).await;
    ok.assert_code(0);
    let expires: Timestamp = ok.json()["expires"].as_str().unwrap().parse().unwrap();
    assert!(expires <= ts_expires, "{expires} after {ts_expires}");

    // push makes the record the same way, and refuses before any network.
    let key = repo.tmp.path().join("tsig.key");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(
            &mut f,
            b"hmac-sha256:update-key:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\n",
        )
        .unwrap();
    }
    let mut push = repo.args("make", &["--expires", "36h"]);
    push[0] = "push".into();
    push.extend(
        ["--zone", ZONE, "--server", "127.0.0.1:9", "--tsig-key"]
            .map(str::to_string)
            .into_iter()
            .chain([key.display().to_string()]),
    );
    let refused = run(push).await;
    refused.assert_code(i32::from(exit::USAGE));
    assert!(
        refused
            .stderr
            .contains("would outlive the timestamp.json it names"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn make_refuses_to_name_an_expired_timestamp() {
    let repo = TestRepo::new();
    repo.publish_new_at(Timestamp::now().checked_sub(hours(48)).unwrap());
    let refused = run(repo.args("make", &["--json"])).await;
    refused.assert_code(i32::from(exit::EXPIRED));
    let error = refused.json()["message"].as_str().unwrap().to_string();
    assert!(error.contains("expired at"), "{error}");
    assert!(
        error.contains("cron job that re-signs the timestamp"),
        "{error}"
    );
}

/// A clock the test sets; the server's loop waits on it.
#[derive(Debug)]
struct ManualClock(watch::Sender<Timestamp>);

impl ManualClock {
    fn new(at: Timestamp) -> Arc<Self> {
        Arc::new(Self(watch::Sender::new(at)))
    }

    fn set(&self, at: Timestamp) {
        self.0.send_replace(at);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.borrow()
    }
    fn name(&self) -> &str {
        "test clock"
    }
}

impl Timer for ManualClock {
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock: this only ends at `at`.
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// Waits (within [`DEADLINE`]) until the status satisfies `what`.
async fn status_until(
    rx: &mut watch::Receiver<ServeStatus>,
    label: &str,
    what: impl FnMut(&ServeStatus) -> bool,
) -> ServeStatus {
    let waited = tokio::time::timeout(DEADLINE, rx.wait_for(what))
        .await
        .map(|r| r.map(|s| s.clone()));
    match waited {
        Ok(status) => status.expect("the announcer is gone"),
        Err(_) => panic!("timed out waiting for {label}: {:?}", *rx.borrow()),
    }
}

fn serving(status: &ServeStatus) -> Option<&onionpkg_trust::announce::Announcement> {
    match status {
        ServeStatus::Serving(a) => Some(a),
        _ => None,
    }
}

/// The TXT records and the SOA serial the server answers now.
async fn answers(addr: std::net::SocketAddr) -> (Vec<String>, u32) {
    tokio::task::spawn_blocking(move || {
        // Over TCP: over UDP the record comes back truncated (it is more
        // than three times the query).
        let (txt, _, _) = tcp_query(addr, NAME, RecordType::TXT);
        let (soa, _, _) = udp_query(addr, ZONE, RecordType::SOA);
        let serial = match &soa.answers[0].data {
            RData::SOA(soa) => soa.serial,
            other => panic!("not an SOA: {other:?}"),
        };
        (txt_of(&txt), serial)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_withdraws_the_record_when_its_timestamp_expires_and_serves_again_after_a_new_one() {
    let repo = TestRepo::new();
    let ts_expires = repo.timestamp_expires();
    let keys = repo.timestamp_keys();
    let root_keys = timestamp_keys_of_root(&repo.root()).unwrap();
    let start = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let clock = ManualClock::new(start);
    let poll = Duration::from_secs(10);
    let opts = ServeOptions {
        name: NAME.into(),
        channel: "stable".into(),
        valid_for: hours(16),
        poll: Some(poll),
        gate: None,
    };
    let zone = AnnounceZone::new(ZONE, NAME, 60, None).unwrap();
    let mut announcer = Announcer::new(
        RepoDir::new(repo.dir()),
        Signing::Keys(keys),
        opts,
        zone.clone(),
    );
    let mut status = announcer.status();
    announcer.start(clock.now()).await.unwrap();
    let first = serving(&status.borrow())
        .cloned()
        .expect("serving at start");
    assert_eq!(first.expires, start.checked_add(hours(16)).unwrap());
    let listening = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listening.local_addrs()[0];
    let (control, mut control_rx) = mpsc::channel(1);
    let looping = {
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            drive(&mut announcer, &*clock, &mut control_rx).await?;
            Ok::<_, onionpkg_announce::Error>(announcer)
        })
    };
    let (txt, soa_first) = answers(addr).await;
    assert_eq!(txt.len(), 1);

    // Half the validity passed: re-made in time, now cut at the timestamp's
    // expiry (16 h from now would be after it).
    clock.set(start.checked_add(hours(8)).unwrap());
    let renewed = status_until(&mut status, "the renewal", |s| {
        serving(s).is_some_and(|a| a.issued > first.issued)
    })
    .await;
    let renewed = serving(&renewed).unwrap().clone();
    let ts_end = Timestamp::from_second(ts_expires.as_second()).unwrap();
    assert_eq!(renewed.expires, ts_end, "cut at the timestamp's expiry");
    assert_eq!(renewed.serial, first.serial);

    // The timestamp expires (the cron died): the record is withdrawn.
    clock.set(ts_end);
    let withdrawn = status_until(&mut status, "the withdrawal", |s| {
        matches!(s, ServeStatus::Withdrawn { .. })
    })
    .await;
    let ServeStatus::Withdrawn { reason } = withdrawn else {
        unreachable!()
    };
    assert!(
        reason.contains(&format!("version {} expired", first.serial)),
        "{reason}"
    );
    assert!(
        reason.contains("cron job that re-signs the timestamp"),
        "{reason}"
    );
    let (txt, soa_withdrawn) = answers(addr).await;
    assert!(
        txt.is_empty(),
        "no record naming an expired timestamp: {txt:?}"
    );
    assert!(soa_withdrawn > soa_first, "the SOA serial rose");
    // Polls while it stays expired change nothing.
    clock.set(ts_end.checked_add(SignedDuration::from_mins(1)).unwrap());
    clock.set(ts_end.checked_add(SignedDuration::from_mins(2)).unwrap());

    // A fresh timestamp.json appears: served again within a poll interval.
    let fresh_at = ts_end.checked_add(SignedDuration::from_mins(5)).unwrap();
    let published = repo.publish_new_at(fresh_at);
    clock.set(
        fresh_at
            .checked_add(SignedDuration::try_from(poll).unwrap())
            .unwrap(),
    );
    let again = status_until(&mut status, "the fresh record", |s| {
        serving(s).is_some_and(|a| a.serial == published)
    })
    .await;
    let again = serving(&again).unwrap().clone();
    let (txt, soa_again) = answers(addr).await;
    assert!(soa_again > soa_withdrawn);
    let expect = Expectation {
        name: NAME,
        channel: "stable",
        keys: &root_keys,
        now: clock.now(),
        tolerance: Tolerance::ZERO,
        last_seen: Some(first.serial),
    };
    let verified = verify_records(&txt, &expect).unwrap();
    assert_eq!(verified, again);
    assert!(verified.expires <= repo.timestamp_expires());

    control.send(Control::Stop).await.unwrap();
    tokio::time::timeout(DEADLINE, looping)
        .await
        .expect("the loop did not stop in time")
        .unwrap()
        .unwrap();
    tokio::time::timeout(DEADLINE, listening.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_without_a_record_when_the_timestamp_has_expired() {
    let repo = TestRepo::new();
    let keys = repo.timestamp_keys();
    let opts = ServeOptions {
        name: NAME.into(),
        channel: "stable".into(),
        valid_for: hours(24),
        poll: None,
        gate: None,
    };
    let zone = AnnounceZone::new(ZONE, NAME, 60, None).unwrap();
    let mut announcer = Announcer::new(RepoDir::new(repo.dir()), Signing::Keys(keys), opts, zone);
    let later = repo
        .timestamp_expires()
        .checked_add(SignedDuration::from_secs(1))
        .unwrap();
    announcer.start(later).await.unwrap();
    assert!(announcer.current().is_none());
    assert!(matches!(
        *announcer.status().borrow(),
        ServeStatus::Withdrawn { .. }
    ));
}
