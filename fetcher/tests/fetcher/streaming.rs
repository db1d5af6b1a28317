//! Attacks on the streaming download of a target (`download::download`, the
//! path every package and feed takes into the output directory): endless
//! data past the signed length, and slow retrieval. Each is checked on
//! the download itself and end to end through `onionpkg-fetch`, where the
//! next mirror must finish the job.

use std::sync::atomic::Ordering;
use std::time::Duration;

use onionpkg_fetcher::download::{DownloadError, DownloadLimits, Job, OutDir, download};
use onionpkg_net::transport::{Tls, Transport};
use onionpkg_trust::metadata::{Client, FsRepository};
use tokio::time::Instant;

use crate::server::{Ctl, Server, serve};
use crate::util::{Appliance, TestRepo};
use onionpkg_testkit::TestCa;

const TARGET: &str = "pkg/big.bin";

fn content() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 253) as u8).collect()
}

/// The download job of `path` as the fetcher makes it from verified metadata.
async fn job(repo: &TestRepo, path: &str) -> Job {
    let root = std::fs::read(repo.root_file()).unwrap();
    let mut client = Client::new(&root, None, FsRepository::from_tree(&repo.tree())).unwrap();
    client.refresh(repo.now).await.unwrap();
    let info = client.target_info(path, repo.now).await.unwrap();
    let remote_path = onionpkg_trust::roles::consistent_target_path(path, &info.hashes["sha256"]);
    Job {
        path: path.to_owned(),
        info,
        remote_path,
    }
}

fn https(ca: &TestCa) -> Transport {
    Transport::Https {
        tls: Tls::new(Some(ca.ca_pem.as_bytes())).unwrap(),
        loopback_http: false,
    }
}

/// Downloads [`TARGET`] from a mirror that `misbehave` sets up, with
/// `limits` (a deadline 30 s away), bounded by a test deadline well past the
/// download's own: the refusal, how long it took, and the output directory.
async fn refused(
    misbehave: impl FnOnce(&Ctl),
    min_throughput: u64,
    window: Duration,
) -> (DownloadError, Duration, tempfile::TempDir) {
    let repo = TestRepo::new(&[(TARGET, &content())]);
    let ca = TestCa::new();
    let srv = serve(repo.tree(), ca.server.clone()).await;
    misbehave(&srv.ctl);
    let job = job(&repo, TARGET).await;
    let out = tempfile::tempdir().unwrap();
    let limits = DownloadLimits {
        min_throughput,
        window,
        deadline: Instant::now() + Duration::from_secs(30),
    };
    let started = Instant::now();
    let dir = OutDir::open(out.path()).unwrap();
    let base = onionpkg_core::url::WebUrl::parse_local_base(&srv.url()).unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(90),
        download(&https(&ca), &base, &job, &dir, &limits, None),
    )
    .await
    .expect("the download outlived its own deadline")
    .unwrap_err();
    (err, started.elapsed(), out)
}

/// End to end through `onionpkg-fetch` with `extra` configuration: a
/// mirror that `misbehave` sets up is listed before an honest one; the
/// honest one delivers the target, and the other is marked bad with a
/// reason containing `reason`. Gives the misbehaving mirror.
async fn next_mirror_used(misbehave: impl FnOnce(&Ctl), extra: &str, reason: &str) -> Server {
    let repo = TestRepo::new(&[(TARGET, &content())]);
    let ca = TestCa::new();
    let bad = serve(repo.tree(), ca.server.clone()).await;
    misbehave(&bad.ctl);
    let honest = serve(repo.tree(), ca.server.clone()).await;
    let app = Appliance::https(&ca, &repo.root_file(), &[bad.url(), honest.url()], extra);
    let r = app.run(&["download", "--all"]).await.ok();
    assert!(r.stdout().contains(&honest.url()), "{}", r.stdout());
    assert_eq!(std::fs::read(app.out().join(TARGET)).unwrap(), content());
    let row = app.mirror_row(&bad.url()).await;
    assert_eq!(row["health"], "bad", "{row}");
    assert!(row["reason"].as_str().unwrap().contains(reason), "{row}");
    bad
}

/// Endless data on the streaming path: the mirror sends the target's
/// signed bytes and then 16 MiB more. Pins the cap at the signed length
/// that `TargetVerifier::update` (trust) applies to every chunk before it
/// is written: the download stops at the first byte past the signed
/// length, says so, and nothing past it reaches the disk. Without the cap
/// all 16 MiB would be written before the length check at the end refused
/// the file (as too short a count of the wrong bytes, not this).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_longer_than_signed_is_cut_at_its_signed_length() {
    let (err, took, out) = refused(
        |ctl| ctl.overlong.store(true, Ordering::SeqCst),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(err, DownloadError::Unverified(ref m)
            if m == &format!("target {TARGET} is longer than its signed length 100000")),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(20), "not cut at once");
    assert!(!out.path().join(TARGET).exists());
    let partial = out.path().join("pkg/.big.bin.onionpkg-partial");
    let kept = std::fs::metadata(&partial).map_or(0, |m| m.len());
    assert!(
        kept <= 100_000,
        "{kept} bytes written past the signed length"
    );
}

/// End to end: the mirror sending more than signed is marked bad with the
/// reason, and the next mirror delivers the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_sending_more_than_signed_is_marked_bad_and_the_next_used() {
    next_mirror_used(
        |ctl| ctl.overlong.store(true, Ordering::SeqCst),
        "",
        "is longer than its signed length",
    )
    .await;
}

/// The trickle: 64 bytes every 400 ms (160 bytes/s).
fn trickle(ctl: &Ctl) {
    ctl.trickle_bytes.store(64, Ordering::SeqCst);
    ctl.trickle_every_ms.store(400, Ordering::SeqCst);
}

/// Slow retrieval: the mirror trickles the target, 64 bytes every 400 ms
/// (160 bytes/s): a piece always arrives well within the 1 s window, so no
/// stall is ever seen, but 100 kB would take ten minutes. Pins the minimum
/// throughput over `throughput_window` in `fetch_rest`: the download is
/// cut after the first window, as too slow. Without it the download would
/// trickle on until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_mirror_is_cut_by_the_minimum_throughput() {
    let (err, took, out) = refused(trickle, 1024, Duration::from_secs(1)).await;
    assert!(
        matches!(err, DownloadError::Mirror(ref m)
            if m.starts_with("too slow: ") && m.ends_with("1024 bytes/s required")),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(10), "cut only after {took:?}");
    assert!(!out.path().join(TARGET).exists());
}

/// End to end: `onionpkg-fetch` cuts the trickling mirror, marks it bad as
/// too slow, and takes the target from the next mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_mirror_is_cut_and_the_next_mirror_used() {
    let slow = next_mirror_used(
        trickle,
        "[download]\nthroughput_window = \"1s\"\nmin_throughput = 1024\n",
        "too slow",
    )
    .await;
    assert!(
        slow.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.path.starts_with("/targets/")),
        "the slow mirror was not asked for the target"
    );
}
