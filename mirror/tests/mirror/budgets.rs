//! Connection budgets: a full clearnet budget leaves the metrics endpoint
//! answering, and one address cannot take the clearnet budget.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::{WAIT, config, get, start};

/// A mirror serving `metadata/timestamp.json` and a `targets/big.bin` of
/// `big` bytes over HTTP, with metrics, and `limits` as the body of its
/// `[limits]` section.
async fn mirror_with(
    dir: &std::path::Path,
    limits: &str,
    big: usize,
) -> (onionpkg_mirror::Mirror, SocketAddr, Vec<u8>) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    std::fs::create_dir_all(root.join("targets")).unwrap();
    std::fs::write(root.join("metadata/timestamp.json"), b"{\"t\":1}").unwrap();
    let body: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("targets/big.bin"), &body).unwrap();
    let cfg = config(
        dir,
        &root,
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
             [limits]\n{limits}"
        ),
    );
    let mirror = start(&cfg).await;
    let addr = mirror.http_addr().unwrap();
    (mirror, addr, body)
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let ip: IpAddr = from.parse().unwrap();
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(ip, 0))?;
    s.connect(addr).await
}

/// Sends a GET of `path` and reads the whole answer; empty when the mirror
/// closed the connection without one.
async fn fetch_on(mut s: TcpStream, path: &str) -> Vec<u8> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("answered or closed in time");
    buf
}

/// The value of the sample `name` (with its labels) in the metrics text.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

const REFUSED_FULL: &str =
    "onionpkg_mirror_connections_refused_total{listener=\"clearnet\",reason=\"full\"}";
const REFUSED_PER_CLIENT: &str =
    "onionpkg_mirror_connections_refused_total{listener=\"clearnet\",reason=\"per_client\"}";

/// Polls the mirror's counters until `done` holds, within [`WAIT`].
async fn until(mirror: &onionpkg_mirror::Mirror, done: impl Fn(&str) -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if done(&mirror.metrics().render()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_clearnet_budget_leaves_the_metrics_endpoint_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr, _) = mirror_with(
        tmp.path(),
        "max_connections = 4\nper_client = 4\nheader_read_timeout = \"20s\"\n",
        0,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // The budget is full: the fifth clearnet connection is closed unserved.
    let fifth = fetch_on(
        TcpStream::connect(addr).await.unwrap(),
        "/metadata/timestamp.json",
    )
    .await;
    assert!(fifth.is_empty(), "served beyond the clearnet budget");
    assert!(until(&mirror, |t| sample(t, REFUSED_FULL) >= 1).await);

    // The metrics endpoint has a budget of its own.
    let metrics = mirror.metrics_addr().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), get(metrics, "/metrics"))
        .await
        .expect("metrics answered while the clearnet budget is full");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(sample(&text, REFUSED_FULL) >= 1, "{text}");
    drop(held);
    mirror.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_held_to_its_per_client_share_and_another_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr, _) = mirror_with(
        tmp.path(),
        "max_connections = 64\nper_client = 3\nheader_read_timeout = \"20s\"\n",
        0,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", addr).await.unwrap());
    }
    // A fourth connection from 127.0.0.1 is closed unserved, though the
    // budget has 61 free slots.
    let fourth = fetch_on(
        connect_from("127.0.0.1", addr).await.unwrap(),
        "/metadata/timestamp.json",
    )
    .await;
    assert!(fourth.is_empty(), "127.0.0.1 served beyond its share");
    assert!(until(&mirror, |t| sample(t, REFUSED_PER_CLIENT) == 1).await);
    assert_eq!(sample(&mirror.metrics().render(), REFUSED_FULL), 0);

    // 127.0.0.2 is another client, served while 127.0.0.1 is at its cap.
    let other = fetch_on(
        connect_from("127.0.0.2", addr).await.unwrap(),
        "/metadata/timestamp.json",
    )
    .await;
    assert!(
        other.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&other)
    );

    // A closed connection gives its address's share back.
    drop(held.pop());
    let served = tokio::time::timeout(WAIT, async {
        loop {
            let r = fetch_on(
                connect_from("127.0.0.1", addr).await.unwrap(),
                "/metadata/timestamp.json",
            )
            .await;
            if !r.is_empty() {
                return r;
            }
            // The share is given back once the mirror saw the close.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("served once a connection of its own closed");
    assert!(served.starts_with(b"HTTP/1.1 200"));
    mirror.shutdown(WAIT).await;
}

/// 600 slow clients (acceptance: they do not stop another client from
/// downloading): from 127.0.0.3 to 127.0.0.6, 150 each, every one asks for
/// a 32 MiB package and then never reads (the first two addresses) or
/// reads one byte every 200 ms (the other two). The clearnet budget is
/// 512, so without a defence they would take all of it.
///
/// What defends: the per-address cap (`per_client`, default 32) holds the
/// 600 to 128 slots, so curl from 127.0.0.2 downloads the package at once;
/// with `per_client = 512` this test fails. The idle timeout then gives
/// back the slots they hold: a never-reading client moves no byte, and a
/// one-byte reader opens the TCP window by less than a segment, so the
/// mirror's writes stall too (silly-window avoidance); all 128 are closed
/// after `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_slow_clients_do_not_stop_a_download() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr, body) = mirror_with(
        tmp.path(),
        "max_connections = 512\nidle_timeout = \"3s\"\n",
        32 << 20,
    )
    .await;
    let attackers = ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (i, from) in attackers.iter().enumerate() {
        for _ in 0..150 {
            let mut s = connect_from(from, addr).await.unwrap();
            let _ = s
                .write_all(b"GET /targets/big.bin HTTP/1.1\r\nHost: m\r\n\r\n")
                .await;
            let trickle = i >= 2;
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                if !trickle {
                    let _ = stopped.wait_for(|s| *s).await;
                    return;
                }
                let mut one = [0u8; 1];
                loop {
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => return,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    if !matches!(s.read(&mut one).await, Ok(1)) {
                        return;
                    }
                }
            }));
        }
    }
    // Every connection beyond the 4 x 32 admitted was refused by address.
    assert!(
        until(&mirror, |t| sample(t, REFUSED_PER_CLIENT) == 600 - 128).await,
        "{}",
        mirror.metrics().render()
    );

    let out = tmp.path().join("downloaded");
    let started = Instant::now();
    let curl = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "20"])
        .args(["--interface", "127.0.0.2", "--output"])
        .arg(&out)
        .arg(format!("http://{addr}/targets/big.bin"))
        .output();
    let curl = tokio::time::timeout(WAIT, curl).await.unwrap().unwrap();
    assert!(
        curl.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(
        std::fs::read(&out).unwrap() == body,
        "the package arrived whole"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "download took {took:?}");
    assert_eq!(sample(&mirror.metrics().render(), REFUSED_FULL), 0);

    // The idle timeout gives back every slot the slow clients held.
    assert!(
        until(&mirror, |t| sample(t, "onionpkg_mirror_connections_open")
            == 0)
        .await,
        "{}",
        mirror.metrics().render()
    );
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(WAIT, t).await;
    }
    mirror.shutdown(WAIT).await;
}
