//! The built-in server: what it answers, and that a new publish reaches
//! `check` (by the poll of timestamp.json in process, by SIGHUP in the
//! binary), and a graceful stop on SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::serve::{AnnounceZone, Announcer, ServeOptions, Signing, listen};
use onionpkg_repo::RepoDir;
use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::util::{
    DEADLINE, InProcess, NAME, TestRepo, ZONE, check, poll_until, serve_config, tcp_query, txt_of,
    udp_query,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_only_for_its_zone() {
    let repo = TestRepo::new();
    let server = InProcess::start(Some(&repo.sign_now().text)).await;
    let addr = server.addr();
    let q = move |name: &'static str, t: RecordType| {
        tokio::task::spawn_blocking(move || udp_query(addr, name, t))
    };
    // Over UDP the record is more than three times the query: truncated,
    // so that a client asks over TCP.
    let (udp, _, _) = q(NAME, RecordType::TXT).await.unwrap();
    assert!(udp.metadata.truncation && udp.answers.is_empty());
    let (txt, _, _) = tokio::task::spawn_blocking(move || tcp_query(addr, NAME, RecordType::TXT))
        .await
        .unwrap();
    assert_eq!(txt.metadata.response_code, ResponseCode::NoError);
    assert!(txt.metadata.authoritative, "authoritative answer");
    assert!(!txt.metadata.recursion_available, "no recursion offered");
    assert_eq!(txt_of(&txt).len(), 1);

    let (soa, _, _) = q(ZONE, RecordType::SOA).await.unwrap();
    assert!(matches!(soa.answers[0].data, RData::SOA(_)));
    let (ns, _, _) = q(ZONE, RecordType::NS).await.unwrap();
    assert!(matches!(ns.answers[0].data, RData::NS(_)));

    let (other, _, _) = q("www.example.org", RecordType::A).await.unwrap();
    assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
    let (foreign, _, _) = q("example.net", RecordType::SOA).await.unwrap();
    assert_eq!(foreign.metadata.response_code, ResponseCode::Refused);
    let (root, _, _) = q("com", RecordType::NS).await.unwrap();
    assert_eq!(root.metadata.response_code, ResponseCode::Refused);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_publish_is_served_after_timestamp_json_changes() {
    let repo = TestRepo::new();
    let keys = repo.timestamp_keys();
    let zone = AnnounceZone::new(ZONE, NAME, 60, None).unwrap();
    let opts = ServeOptions {
        name: NAME.into(),
        channel: "stable".into(),
        valid_for: SignedDuration::from_hours(24),
        poll: Some(Duration::from_secs(1)),
        gate: None,
    };
    let mut announcer = Announcer::new(
        RepoDir::new(repo.dir()),
        Signing::Keys(keys),
        opts,
        zone.clone(),
    );
    let first = announcer
        .refresh(Timestamp::now(), false)
        .await
        .unwrap()
        .unwrap()
        .announcement
        .serial;
    let listening = listen(&zone, &["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listening.local_addrs()[0];

    let run = check(&repo.root(), addr, &["--json"]).await;
    run.assert_code(0);
    assert_eq!(run.json()["serial"], first);
    // Nothing changed: nothing re-signed.
    assert!(
        announcer
            .refresh(Timestamp::now(), false)
            .await
            .unwrap()
            .is_none()
    );

    let published = repo.publish_new();
    assert!(published > first);
    let renewed = announcer
        .refresh(Timestamp::now(), false)
        .await
        .unwrap()
        .expect("a changed timestamp.json is noticed")
        .announcement
        .serial;
    assert_eq!(renewed, published);
    let run = check(
        &repo.root(),
        addr,
        &["--json", "--timestamp-version", &first.to_string()],
    )
    .await;
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["serial"], published);
    assert_eq!(json["status"], "update-available");
    tokio::time::timeout(DEADLINE, listening.shutdown())
        .await
        .unwrap()
        .unwrap();
}

/// The `serve` binary as a child, killed on drop.
pub(crate) struct ServeChild {
    pub(crate) child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl ServeChild {
    pub(crate) async fn start(config: &std::path::Path, extra: &[&str]) -> (Self, SocketAddr, u64) {
        let mut child = tokio::process::Command::new(crate::util::bin())
            .arg("--json")
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting onionpkg-announce serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut me = Self {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = me.next_json().await;
        assert_eq!(ready["event"], "listening", "{ready}");
        let addr: SocketAddr = ready["addresses"][0].as_str().unwrap().parse().unwrap();
        let serial = ready["serial"].as_u64().unwrap();
        (me, addr, serial)
    }

    async fn next_json(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("serve printed nothing in time")
            .expect("reading serve's stdout")
            .expect("serve closed its stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn signal(&self, sig: Signal) {
        let pid = self.child.id().expect("serve is running");
        let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        kill_process(pid, sig).expect("signalling serve");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_binary_reloads_on_sighup_and_stops_on_sigterm() {
    let repo = TestRepo::new();
    let config = serve_config(&repo);
    // No polling: only SIGHUP makes it re-read the repository.
    let (mut serve, addr, first) = ServeChild::start(&config, &["--no-poll"]).await;
    let run = check(&repo.root(), addr, &["--json"]).await;
    run.assert_code(0);
    assert_eq!(run.json()["serial"], first);

    let published = repo.publish_new();
    assert!(published > first);
    serve.signal(Signal::HUP);
    let root = repo.root();
    poll_until(
        "the new serial after SIGHUP",
        Duration::from_millis(100),
        || {
            let root = root.clone();
            async move {
                let run = check(&root, addr, &["--json"]).await;
                run.assert_code(0);
                (run.json()["serial"] == published).then_some(())
            }
        },
    )
    .await;

    serve.signal(Signal::TERM);
    let stopped = serve.next_json().await;
    assert_eq!(stopped["event"], "stopped");
    let status = tokio::time::timeout(DEADLINE, serve.child.wait())
        .await
        .expect("serve did not exit in time after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_two_signatures_spans_two_strings() {
    let repo = TestRepo::with_two_timestamp_keys();
    let signed = repo.sign_now();
    assert!(signed.text.len() > 255, "two signatures need two strings");
    assert_eq!(signed.announcement.signed_by.len(), 2);

    let line = crate::util::run(repo.args("zone", &["--ttl", "120"])).await;
    line.assert_code(0);
    let line = line.stdout.trim();
    assert!(
        line.starts_with("_update.example.org. 120 IN TXT \"v=1;"),
        "{line}"
    );
    let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    assert_eq!(strings.len(), 2, "{line}");
    assert_eq!(strings[0].len(), 255);

    let server = InProcess::start(Some(&signed.text)).await;
    let (answer, query_len, response_len) = {
        let addr = server.addr();
        tokio::task::spawn_blocking(move || tcp_query(addr, NAME, RecordType::TXT))
            .await
            .unwrap()
    };
    assert!(!answer.metadata.truncation);
    assert!(response_len <= 1024, "{response_len} bytes");
    eprintln!(
        "wire: built-in server, two signatures, TCP: query {query_len} B, response \
         {response_len} B, record {} B",
        signed.text.len()
    );
    match &answer.answers[0].data {
        RData::TXT(txt) => assert_eq!(txt.txt_data.len(), 2),
        other => panic!("not TXT: {other:?}"),
    }
    let run = check(&repo.root(), server.addr(), &["--json"]).await;
    run.assert_code(0);
    assert_eq!(run.json()["key_ids"].as_array().unwrap().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn make_prints_the_value_and_json() {
    let repo = TestRepo::new();
    let run = crate::util::run(repo.args("make", &["--expires", "2h"])).await;
    run.assert_code(0);
    let text = run.stdout.trim();
    assert!(text.starts_with("v=1;c=stable;n="), "{text}");
    let parsed = onionpkg_trust::announce::parse(text).unwrap();
    assert_eq!(
        parsed.expires().duration_since(parsed.issued()),
        SignedDuration::from_hours(2)
    );
    let json_first = ["--json".to_owned()].into_iter();
    let run = crate::util::run(json_first.chain(repo.args("make", &["--channel", "beta"]))).await;
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["channel"], "beta");
    assert_eq!(json["name"], NAME);
    assert!(json["record"].as_str().unwrap().starts_with("v=1;c=beta;"));
    // Without the keys (here: not in the default REPO.keys), signing fails
    // and says why.
    let dir = repo.dir().display().to_string();
    let run = crate::util::run(["make", "--repo", &dir, "--name", NAME]).await;
    run.assert_code(12);
    assert!(
        run.stderr.contains("role timestamp needs 1 signature"),
        "{run:?}"
    );
}
