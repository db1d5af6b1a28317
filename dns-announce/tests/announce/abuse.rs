//! The built-in server under hostile input and hostile load: a UDP flood,
//! amplification, ANY, too many TCP connections, idle ones, and a flood of
//! client prefixes. Each test names the defence it pins; the server runs on
//! a thread of its own with a current-thread runtime, as in the binary.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use onionpkg_announce::StreamProvider;
use onionpkg_announce::check::{Expectation, timestamp_keys_of_root, verify_records};
use onionpkg_announce::query::{query_announcement, resolver_over_streams};
use onionpkg_announce::serve::{AnnounceZone, RateLimiter, Verdict, listen_with};
use onionpkg_config::announce::ServeLimits;
use onionpkg_trust::clock::Tolerance;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::util::{DEADLINE, NAME, TestRepo, ZONE, query_bytes, tcp_query, udp_exchange};

/// The built-in server on a thread of its own, stopped on drop.
struct Threaded {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Threaded {
    /// Serves `record` at [`NAME`] under `limits` on a free port.
    fn start(record: &str, limits: ServeLimits) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let record = record.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let zone = AnnounceZone::new(ZONE, NAME, 60, None).unwrap();
                zone.set_record(Some(&record)).await.unwrap();
                let listening = listen_with(&zone, &["127.0.0.1:0".parse().unwrap()], &limits)
                    .await
                    .unwrap();
                addr_tx.send(listening.local_addrs()[0]).unwrap();
                let _ = stopped.await;
                listening.shutdown().await.unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(DEADLINE).expect("the server started");
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// The TC flag and the answer count of a raw response.
fn tc_and_answers(response: &[u8]) -> (bool, u16) {
    (
        response[2] & 0x02 != 0,
        u16::from_be_bytes([response[6], response[7]]),
    )
}

/// Defences: response-rate limiting per client prefix (without it every
/// answered query gets the full record: thousands instead of at most
/// `burst + rate × seconds`) and the amplification bound (every response at
/// most 3 × its query); the UDP loop must not starve TCP (the verified
/// record arrives over TCP during the flood).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flood_is_rate_limited_while_tcp_still_gets_the_verified_record() {
    const FLOOD: usize = 10_000;
    let repo = TestRepo::new();
    let signed = repo.sign_now();
    let limits = ServeLimits::default();
    let server = Threaded::start(&signed.text, limits.clone());
    let target = server.addr;

    // Padded so that the full answer fits within 3 × the query: without
    // rate limiting every query would be answered in full.
    let mut query = query_bytes(0, NAME, RecordType::TXT, 100);
    let query_len = query.len();
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let flood_done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (socket, done) = (socket.clone(), flood_done.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            let mut sizes = Vec::new();
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                match tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await
                {
                    Ok(Ok((len, _))) => {
                        let (tc, answers) = tc_and_answers(&buf[..len]);
                        sizes.push((len, tc, answers));
                    }
                    Ok(Err(e)) => panic!("receiving: {e}"),
                    // A second of silence after the flood: all in.
                    Err(_) if done.load(Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            sizes
        })
    };

    let keys = timestamp_keys_of_root(&repo.root()).unwrap();
    let mut tcp_check = None;
    let start = Instant::now();
    for i in 0..FLOOD {
        assert!(start.elapsed() < DEADLINE, "the flood took too long");
        query[..2].copy_from_slice(&u16::try_from(i % 65_536).unwrap().to_be_bytes());
        socket.send_to(&query, target).await.unwrap();
        if i == 1000 {
            // A legitimate client, over TCP, in the middle of the flood.
            let provider = StreamProvider::new(move |_| TcpStream::connect(target));
            let resolver = resolver_over_streams(
                provider,
                "192.0.2.53:53".parse().unwrap(),
                Duration::from_secs(5),
                None,
            )
            .unwrap();
            tcp_check = Some(tokio::spawn(async move {
                let asked = Instant::now();
                let records = query_announcement(&resolver, NAME).await;
                (records, asked.elapsed())
            }));
        }
    }
    let flood_time = start.elapsed();
    flood_done.store(true, Ordering::SeqCst);
    let (records, tcp_time) = tcp_check.unwrap().await.unwrap();
    let records = records.expect("the TCP query was answered during the flood");
    let verified = verify_records(
        &records,
        &Expectation {
            name: NAME,
            channel: "stable",
            keys: &keys,
            now: jiff::Timestamp::now(),
            tolerance: Tolerance::ZERO,
            last_seen: None,
        },
    )
    .unwrap();
    assert_eq!(verified.serial, signed.announcement.serial);

    let sizes = receiver.await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let full = sizes.iter().filter(|(_, tc, n)| !tc && *n > 0).count();
    let slipped = sizes.iter().filter(|(_, tc, _)| *tc).count();
    let max = sizes.iter().map(|(len, _, _)| *len).max().unwrap_or(0);
    let bytes_out: usize = sizes.iter().map(|(len, _, _)| len).sum();
    let bytes_in = FLOOD * query_len;
    eprintln!(
        "flood: {FLOOD} UDP queries of {query_len} B sent in {flood_time:?} from one source; \
         {} responses ({full} full answers, {slipped} empty with TC=1), largest {max} B \
         ({:.2} × the query), {bytes_out} B out for {bytes_in} B in; the TCP query got the \
         verified record in {tcp_time:?}",
        sizes.len(),
        max as f64 / query_len as f64,
    );
    for (len, tc, _) in &sizes {
        assert!(
            *len <= 3 * query_len,
            "a {len}-byte response to {query_len} B"
        );
        if *tc {
            assert!(*len <= query_len, "a {len}-byte TC response");
        }
    }
    let allowed = f64::from(limits.burst) + f64::from(limits.responses_per_second) * elapsed;
    assert!(
        full as f64 <= allowed + 1.0,
        "{full} full answers in {elapsed:.1} s, more than the rate allows ({allowed:.0})"
    );
    assert!(full >= 1, "the first queries were answered");
    assert!(
        bytes_out <= bytes_in,
        "{bytes_out} B out for {bytes_in} B in"
    );
    drop(server);
}

/// Defence: the amplification bound. Every UDP response is at most three
/// times its query; the TXT record (264 B) asked for with a plain 48-byte
/// query comes back empty with TC=1, and in full over TCP or to a query
/// padded to a third of it. With the bound raised to 10 the same query gets
/// the record over UDP, so it is the bound that truncates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_never_exceed_three_times_their_query() {
    let repo = TestRepo::new();
    let signed = repo.sign_now();
    let server = Threaded::start(&signed.text, ServeLimits::default());
    let addr = server.addr;
    let cases: Vec<(&str, RecordType, usize)> = vec![
        (NAME, RecordType::TXT, 0),
        (NAME, RecordType::TXT, 100),
        (ZONE, RecordType::SOA, 0),
        (ZONE, RecordType::NS, 0),
        (ZONE, RecordType::ANY, 0),
        ("www.example.org", RecordType::A, 0),
        ("example.net", RecordType::SOA, 0),
    ];
    let results = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|(name, t, pad)| {
                let (msg, q, r) = udp_exchange(addr, &query_bytes(0x5eed, name, t, pad));
                (name, t, pad, msg, q, r)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (name, t, pad, msg, q, r) in &results {
        eprintln!(
            "amplification: {name} {t} (padding {pad}): query {q} B, response {r} B \
             ({:.2} ×), TC={}",
            *r as f64 / *q as f64,
            msg.metadata.truncation
        );
        assert!(*r <= 3 * *q, "{name} {t}: {r} B for a {q}-byte query");
    }
    let plain = &results[0].3;
    assert!(plain.metadata.truncation && plain.answers.is_empty());
    let padded = &results[1].3;
    assert!(!padded.metadata.truncation);
    assert_eq!(crate::util::txt_of(padded), vec![signed.text.clone()]);
    let (tcp, _, _) = tokio::task::spawn_blocking(move || tcp_query(addr, NAME, RecordType::TXT))
        .await
        .unwrap();
    assert_eq!(crate::util::txt_of(&tcp), vec![signed.text.clone()]);
    drop(server);

    let loose = Threaded::start(
        &signed.text,
        ServeLimits {
            udp_amplification: 10,
            ..ServeLimits::default()
        },
    );
    let addr = loose.addr;
    let (msg, q, r) = tokio::task::spawn_blocking(move || {
        udp_exchange(addr, &query_bytes(0x5eed, NAME, RecordType::TXT, 0))
    })
    .await
    .unwrap();
    assert!(!msg.metadata.truncation, "{r} B for {q} B");
    assert!(r > 3 * q);
}

/// Defence: ANY is never answered conventionally (RFC 8482, section 4.2):
/// at a name that exists, one synthesized HINFO "RFC8482"; elsewhere the
/// usual NXDOMAIN or REFUSED. Without it the apex gives SOA and NS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gets_only_a_synthesized_hinfo() {
    let repo = TestRepo::new();
    let server = Threaded::start(&repo.sign_now().text, ServeLimits::default());
    let addr = server.addr;
    let (udp_apex, udp_name, tcp_apex, tcp_name, missing, foreign) =
        tokio::task::spawn_blocking(move || {
            let udp = |name| udp_exchange(addr, &query_bytes(0x5eed, name, RecordType::ANY, 0)).0;
            let tcp = |name| tcp_query(addr, name, RecordType::ANY).0;
            (
                udp(ZONE),
                udp(NAME),
                tcp(ZONE),
                tcp(NAME),
                udp("www.example.org"),
                udp("example.net"),
            )
        })
        .await
        .unwrap();
    let hinfo_only = |m: &Message| {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1, "{m:?}");
        match &m.answers[0].data {
            RData::HINFO(h) => {
                assert_eq!(&*h.cpu, b"RFC8482");
                assert!(h.os.is_empty());
            }
            other => panic!("not HINFO: {other:?}"),
        }
        assert!(m.authorities.is_empty());
    };
    for m in [&udp_apex, &udp_name, &tcp_apex, &tcp_name] {
        hinfo_only(m);
    }
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(foreign.metadata.response_code, ResponseCode::Refused);
}

/// A TCP connection to `server` from `from` (an address of 127.0.0.0/8).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    tokio::time::timeout(DEADLINE, socket.connect(server))
        .await
        .expect("connected in time")
        .unwrap()
}

/// Asks for the TXT record on `stream`; `None` when the server closed it.
async fn ask(stream: &mut TcpStream) -> Option<Message> {
    let query = query_bytes(0x1d, NAME, RecordType::TXT, 0);
    let mut framed = u16::try_from(query.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    // A write to a connection the server already closed may still succeed.
    stream.write_all(&framed).await.ok()?;
    let mut prefix = [0u8; 2];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut prefix))
        .await
        .expect("an answer or a close in time")
        .ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut body).await.ok()?;
    Some(Message::from_vec(&body).unwrap())
}

/// Defence: the TCP connection caps, per address and in all. Connections
/// above a cap are closed at once; the ones open keep working, and a slot
/// given back is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_over_the_caps_are_closed_while_open_ones_work() {
    let repo = TestRepo::new();
    let server = Threaded::start(
        &repo.sign_now().text,
        ServeLimits {
            max_tcp_connections: 3,
            max_tcp_per_address: 2,
            tcp_idle_timeout: Duration::from_secs(60),
            ..ServeLimits::default()
        },
    );
    let addr = server.addr;
    let mut a1 = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut a1).await.is_some());
    let mut a2 = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut a2).await.is_some());
    let mut a3 = connect_from("127.0.0.1", addr).await;
    assert!(ask(&mut a3).await.is_none(), "a third from one address");
    let mut b1 = connect_from("127.0.0.2", addr).await;
    assert!(
        ask(&mut b1).await.is_some(),
        "another address, within the cap"
    );
    let mut c1 = connect_from("127.0.0.3", addr).await;
    assert!(ask(&mut c1).await.is_none(), "a fourth in all");
    // The open ones still answer.
    assert!(ask(&mut a1).await.is_some());
    assert!(ask(&mut b1).await.is_some());
    // A closed connection gives its slot back (once the server has seen
    // the close).
    drop(a2);
    let start = Instant::now();
    loop {
        let mut again = connect_from("127.0.0.1", addr).await;
        if ask(&mut again).await.is_some() {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Defence: the TCP idle deadline. A connection that sends nothing is
/// closed after `tcp_idle_timeout`, and its slot (the only one) serves the
/// next client. Without it the connection would hold the slot forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tcp_connection_is_closed_and_its_slot_reused() {
    let repo = TestRepo::new();
    let server = Threaded::start(
        &repo.sign_now().text,
        ServeLimits {
            max_tcp_connections: 1,
            max_tcp_per_address: 1,
            tcp_idle_timeout: Duration::from_secs(1),
            ..ServeLimits::default()
        },
    );
    let mut idle = connect_from("127.0.0.1", server.addr).await;
    // Half a query: the length prefix only.
    idle.write_all(&[0, 40]).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("closed within 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    eprintln!("idle: a silent TCP connection was closed after {waited:?} (timeout 1 s)");
    let start = Instant::now();
    loop {
        let mut next = connect_from("127.0.0.1", server.addr).await;
        if ask(&mut next).await.is_some() {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Defence: the rate table is bounded. 100 000 client prefixes (spoofed
/// sources) leave at most `rate_table_size` entries, and a client that
/// keeps flooding stays limited meanwhile: the prefix seen least recently
/// is the one forgotten.
#[test]
fn the_rate_table_stays_bounded_under_a_flood_of_prefixes() {
    let limits = ServeLimits {
        rate_table_size: 16,
        ..ServeLimits::default()
    };
    let mut rl = RateLimiter::new(&limits);
    let now = Instant::now();
    let heavy: IpAddr = "198.51.100.7".parse().unwrap();
    let mut heavy_answered = 0;
    for i in 0u32..100_000 {
        // One new /24 after another, 10.0.0.0/8 and up.
        let spoofed = IpAddr::V4(std::net::Ipv4Addr::from((10 << 24) + (i << 8)));
        assert_eq!(rl.check(spoofed, now), Verdict::Answer);
        if rl.check(heavy, now) == Verdict::Answer {
            heavy_answered += 1;
        }
        assert!(rl.prefixes() <= 16);
    }
    assert_eq!(rl.prefixes(), 16);
    assert_eq!(
        heavy_answered, limits.burst,
        "the flooding client stayed limited"
    );
    eprintln!(
        "rate table: 100000 prefixes seen, {} remembered; the flooding client got {} of \
         100000 answered",
        rl.prefixes(),
        heavy_answered
    );
}

/// Defence: the TC answer is one a real client acts on. dig gets the TXT
/// record empty with TC=1 over UDP, retries over TCP by itself, and prints
/// the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_retries_a_truncated_answer_over_tcp_and_gets_the_record() {
    let repo = TestRepo::new();
    let signed = repo.sign_now();
    let server = Threaded::start(&signed.text, ServeLimits::default());
    let port = server.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        crate::knot::output(
            std::process::Command::new(crate::knot::program("dig"))
                .args(["@127.0.0.1", "-p", &port, NAME, "TXT"])
                .args(["+norec", "+tries=1", "+time=5"]),
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("Truncated, retrying in TCP mode"),
        "{stdout}"
    );
    assert!(stdout.contains(&signed.text[..100]), "{stdout}");
    assert!(stdout.contains("(TCP)"), "{stdout}");
}
