//! `check --dnssec-anchors` and the resolvers with anchors, against a real
//! Knot DNS that signs the zone itself (one Ed25519 combined signing key):
//! a signed answer validates with the key Knot's key store names, and a
//! signed denial is "no announcement"; a wrong anchor, an unsigned zone and
//! a forged unsigned answer or denial (from the built-in server, which does
//! not sign) are refused with the DNSSEC error, also through the stream
//! resolver of the Tor path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onionpkg_announce::query::{query_announcement, resolver_over_streams};
use onionpkg_announce::{DnssecAnchors, Error, StreamProvider, exit, load_anchors};
use onionpkg_trust::sign::SecretKey;

use crate::knot::{Knot, push_args};
use crate::util::{InProcess, NAME, TestRepo, ZONE, check, run};
use crate::wire::{Recording, frames};

const DNSSEC_ERROR: &str = "failed DNSSEC validation against the configured anchors";

/// Writes `text` as an anchors file in the repository's temp dir.
fn anchors_file(repo: &TestRepo, file: &str, text: &str) -> PathBuf {
    let path = repo.tmp.path().join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// An Ed25519 DNSKEY line for the zone that is not its key.
fn wrong_anchor() -> String {
    use base64::Engine as _;
    let key = SecretKey::generate();
    let public = key.public();
    let raw = public.raw_bytes();
    format!(
        "{ZONE}. 60 IN DNSKEY 257 3 15 {}\n",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// What the stream resolver did.
struct Streamed {
    result: Result<Vec<String>, Error>,
    connects: usize,
    udp: usize,
    /// Lengths of the messages sent and received.
    sent: Vec<usize>,
    received: Vec<usize>,
}

/// Asks `server` for the announcement over the stream resolver (a TCP
/// stream the test opens, as the fetcher opens a Tor stream), with
/// `anchors`, recording every byte.
async fn over_streams(server: SocketAddr, anchors: &DnssecAnchors) -> Streamed {
    let written = Arc::new(Mutex::new(Vec::new()));
    let read = Arc::new(Mutex::new(Vec::new()));
    let (w, r) = (written.clone(), read.clone());
    let provider = StreamProvider::new(move |_label| {
        let (written, read) = (w.clone(), r.clone());
        async move {
            let inner = tokio::net::TcpStream::connect(server).await?;
            // Small messages on loopback would otherwise each wait for a
            // delayed ACK (about 40 ms).
            inner.set_nodelay(true)?;
            Ok(Recording {
                inner,
                written,
                read,
            })
        }
    });
    let label = "192.0.2.53:53".parse().unwrap();
    let resolver = resolver_over_streams(
        provider.clone(),
        label,
        Duration::from_secs(5),
        Some(anchors),
    )
    .unwrap();
    let result = query_announcement(&resolver, NAME).await;
    let sent = frames(&written.lock().unwrap());
    let received = frames(&read.lock().unwrap());
    Streamed {
        result,
        connects: provider.tcp_connects(),
        udp: provider.udp_bind_attempts(),
        sent,
        received,
    }
}

async fn check_with(path: &Path, repo: &TestRepo, server: SocketAddr) -> crate::util::Run {
    let anchors = path.display().to_string();
    check(
        &repo.root(),
        server,
        &["--json", "--dnssec-anchors", &anchors],
    )
    .await
}

/// Checks `repo`'s announcement at `server` with the anchors file `path`:
/// refused as a verification failure that names DNSSEC. Gives the message.
async fn check_refused(path: &Path, repo: &TestRepo, server: SocketAddr) -> String {
    let refused = check_with(path, repo, server).await;
    refused.assert_code(i32::from(exit::VERIFICATION));
    let error = refused.json()["message"].as_str().unwrap().to_string();
    assert!(error.contains(DNSSEC_ERROR), "{error}");
    error
}

/// Checks `repo`'s announcement at `server` with the anchors file `path`,
/// and looks it up over streams with `anchors`: both refuse it as failing
/// DNSSEC (the check with a verification failure that says so). `what`
/// names the case in the test's output. Gives the streamed lookup.
async fn refused(
    path: &Path,
    anchors: &DnssecAnchors,
    repo: &TestRepo,
    server: SocketAddr,
    what: &str,
) -> Streamed {
    let error = check_refused(path, repo, server).await;
    eprintln!("dnssec: {what}: {error}");
    let streamed = over_streams(server, anchors).await;
    assert!(
        matches!(streamed.result, Err(Error::Dnssec { .. })),
        "{:?}",
        streamed.result
    );
    streamed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_answer_validates_with_the_zone_key_and_not_with_another() {
    let knot = tokio::task::spawn_blocking(|| Knot::start_with(true))
        .await
        .unwrap();
    let repo = TestRepo::new();
    run(push_args(&repo, &knot, &knot.key_file()))
        .await
        .assert_code(0);
    let good = anchors_file(&repo, "zone.keys", &knot.keymgr_dnskeys());
    let anchors = load_anchors(&good).unwrap();
    assert_eq!(anchors.zones(), [format!("{ZONE}.")]);
    assert_eq!(anchors.key_count(), 1, "one CSK");

    let ok = check_with(&good, &repo, knot.addr()).await;
    ok.assert_code(0);
    let json = ok.json();
    assert_eq!(json["dnssec"], "secure", "{json}");
    let text = check(
        &repo.root(),
        knot.addr(),
        &["--dnssec-anchors", &good.display().to_string()],
    )
    .await;
    text.assert_code(0);
    assert!(
        text.stdout
            .contains("dnssec   secure (anchors for example.org.)"),
        "{text:?}"
    );

    // The Tor path validates too, over the same one stream.
    let streamed = over_streams(knot.addr(), &anchors).await;
    let records = streamed.result.unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0].starts_with("v=1;c=stable;"), "{records:?}");
    assert_eq!(streamed.udp, 0, "no UDP socket");
    assert_eq!(streamed.sent.len(), 2, "the TXT and the DNSKEY query");
    let total: usize = streamed
        .sent
        .iter()
        .chain(&streamed.received)
        .map(|n| n + 2)
        .sum();
    eprintln!(
        "wire: Knot, DNSSEC-validated over StreamProvider: {} connection(s), queries {:?} B, \
         responses {:?} B ({total} B in all)",
        streamed.connects, streamed.sent, streamed.received
    );

    // Another key as the anchor: refused.
    let wrong = anchors_file(&repo, "wrong.keys", &wrong_anchor());
    let wrong_anchors = load_anchors(&wrong).unwrap();
    refused(&wrong, &wrong_anchors, &repo, knot.addr(), "another key").await;

    // A name the signed zone proves absent is no announcement.
    let absent = run([
        "check",
        "_absent.example.org",
        "--root",
        &repo.root().display().to_string(),
        "--server",
        &knot.addr().to_string(),
        "--dnssec-anchors",
        &good.display().to_string(),
    ])
    .await;
    absent.assert_code(i32::from(exit::NOT_FOUND));

    // A bad anchors file is a configuration error.
    let bad = anchors_file(&repo, "bad.keys", "example.org. 60 IN DS 1 15 2 00ff\n");
    let refused = check_with(&bad, &repo, knot.addr()).await;
    refused.assert_code(i32::from(exit::USAGE));
    let error = refused.json()["message"].as_str().unwrap().to_string();
    assert!(error.contains("DNSSEC anchors file"), "{error}");
    assert!(error.contains("DS records cannot be anchors"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_forged_answers_are_refused_with_anchors() {
    let (signed, unsigned) =
        tokio::task::spawn_blocking(|| (Knot::start_with(true), Knot::start()))
            .await
            .unwrap();
    let repo = TestRepo::new();
    let good = anchors_file(&repo, "zone.keys", &signed.keymgr_dnskeys());
    let anchors = load_anchors(&good).unwrap();

    // The same genuine record from an unsigned zone: fine without anchors,
    // refused with them.
    run(push_args(&repo, &unsigned, &unsigned.key_file()))
        .await
        .assert_code(0);
    check(&repo.root(), unsigned.addr(), &[])
        .await
        .assert_code(0);
    let streamed = refused(&good, &anchors, &repo, unsigned.addr(), "unsigned zone").await;
    assert_eq!(streamed.udp, 0);

    // Another server answering for the zone without signatures (the
    // built-in one does not sign): refused.
    let forger = InProcess::start(Some(&repo.sign_now().text)).await;
    check(&repo.root(), forger.addr(), &[]).await.assert_code(0);
    let streamed = refused(
        &good,
        &anchors,
        &repo,
        forger.addr(),
        "forged unsigned answer",
    )
    .await;
    // Refusing costs the validator many queries (bounded by its depth).
    eprintln!(
        "wire: forged unsigned answer refused over StreamProvider: {} queries, {} B in all",
        streamed.sent.len(),
        streamed
            .sent
            .iter()
            .chain(&streamed.received)
            .map(|n| n + 2)
            .sum::<usize>()
    );
    // A forged unsigned "no such record" does not validate either.
    forger.zone.set_record(None).await.unwrap();
    check_refused(&good, &repo, forger.addr()).await;
    forger.stop().await;
}
