//! Hostile clients: slowloris, connection floods, oversized headers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{WAIT, config, get, raw, start};

fn tree(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    std::fs::write(root.join("metadata/timestamp.json"), b"{\"t\":1}").unwrap();
    root
}

/// A mirror serving [`tree`] over HTTP on loopback with `limits` (the body
/// of its `[limits]` section), and its address; `prepare` adds files to
/// the tree first.
async fn limited(
    dir: &std::path::Path,
    limits: &str,
    prepare: impl FnOnce(&std::path::Path),
) -> (onionpkg_mirror::Mirror, std::net::SocketAddr) {
    let root = tree(dir);
    prepare(&root);
    let cfg = config(
        dir,
        &root,
        &format!("[listen]\nhttp = \"127.0.0.1:0\"\n[limits]\n{limits}"),
    );
    let mirror = start(&cfg).await;
    let addr = mirror.http_addr().unwrap();
    (mirror, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_client_served_during_slowloris() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr) = limited(
        tmp.path(),
        "max_connections = 400\nper_client = 400\nheader_read_timeout = \"3s\"\n",
        |_| {},
    )
    .await;

    // 200 connections that dribble a header byte at a time and never finish.
    let mut dribblers = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nX-A: ")
            .await
            .unwrap();
        dribblers.push(s);
    }
    let dribble = tokio::spawn(async move {
        let started = Instant::now();
        let mut closed = 0;
        // Keep dribbling until the server drops every one of them.
        while !dribblers.is_empty() && started.elapsed() < Duration::from_secs(15) {
            let mut alive = Vec::new();
            for mut s in dribblers {
                if s.write_all(b"a").await.is_ok() {
                    let mut b = [0u8; 256];
                    match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
                        Ok(Ok(0) | Err(_)) => closed += 1,
                        _ => alive.push(s),
                    }
                } else {
                    closed += 1;
                }
            }
            dribblers = alive;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (closed, started.elapsed())
    });

    // Meanwhile a normal client is served, promptly.
    let t = Instant::now();
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            get(addr, "/metadata/timestamp.json"),
        )
        .await
        .expect("served despite the slowloris connections");
        assert_eq!(r.status, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(5));

    // And the dribblers are cut off after the header read timeout.
    let (closed, took) = tokio::time::timeout(WAIT, dribble).await.unwrap().unwrap();
    assert_eq!(closed, 200, "every slowloris connection closed");
    assert!(took < Duration::from_secs(12), "closed after {took:?}");
    mirror.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr) = limited(
        tmp.path(),
        "max_connections = 4\nheader_read_timeout = \"20s\"\n",
        |_| {},
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // The fifth is closed at once, not queued.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: m\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, extra.read_to_end(&mut buf))
        .await
        .expect("closed promptly");
    assert!(
        n.is_err() || buf.is_empty(),
        "the fifth connection was served"
    );
    // Freeing a slot lets the next one in.
    drop(idle.pop());
    let r = tokio::time::timeout(WAIT, async {
        loop {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = s
                .write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if !buf.is_empty() {
                return buf;
            }
            // The slot is freed asynchronously after the drop.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("served once a slot is free");
    assert!(r.starts_with(b"HTTP/1.1 200"));
    let text = reqwest_metrics(&mirror);
    assert!(
        text.contains("onionpkg_mirror_connections_refused_total"),
        "{text}"
    );
    mirror.shutdown(WAIT).await;
}

fn reqwest_metrics(mirror: &onionpkg_mirror::Mirror) -> String {
    mirror.metrics().render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr) = limited(tmp.path(), "max_header_bytes = 8192\n", |_| {}).await;
    let big = "a".repeat(64 * 1024);
    let request = format!(
        "GET /metadata/timestamp.json HTTP/1.1\r\nHost: m\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&buf[..buf.len().min(100)])
    );
    let ok = raw(
        addr,
        b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok.status, 200);
    mirror.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_downloads_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr, big) = big_file_mirror(tmp.path(), 8 << 20, "").await;

    let (mut s, first) = start_download(addr).await;
    let n = first.len();

    // Shut down while the body is still being sent.
    let shutdown = tokio::spawn(mirror.shutdown(WAIT));
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the download ends")
        .unwrap();
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - body_at, big.len(), "the whole body arrived");
    assert!(all[body_at..] == big[..]);
    assert!(
        tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap(),
        "drained in time"
    );
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Polls the mirror's gauge until no connection is open, within [`WAIT`].
async fn all_closed(mirror: &onionpkg_mirror::Mirror) -> bool {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if reqwest_metrics(mirror).contains("onionpkg_mirror_connections_open 0\n") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Asks `addr` for `targets/big.bin` and reads the start of the answer
/// (a 200): the connection, and what was read.
async fn start_download(addr: std::net::SocketAddr) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /targets/big.bin HTTP/1.1\r\nHost: m\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, s.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    first.truncate(n);
    assert!(first.starts_with(b"HTTP/1.1 200"));
    (s, first)
}

/// A [`limited`] mirror with `targets/big.bin` of `size` bytes, and the
/// file's bytes.
async fn big_file_mirror(
    dir: &std::path::Path,
    size: u32,
    limits: &str,
) -> (onionpkg_mirror::Mirror, std::net::SocketAddr, Vec<u8>) {
    let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let (mirror, addr) = limited(dir, limits, |root| {
        std::fs::create_dir_all(root.join("targets")).unwrap();
        std::fs::write(root.join("targets/big.bin"), &big).unwrap();
    })
    .await;
    (mirror, addr, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    // Far more than the socket buffers hold, so the mirror's writes stall.
    let (mirror, addr, big) = big_file_mirror(tmp.path(), 64 << 20, "idle_timeout = \"2s\"").await;
    let (mut s, first) = start_download(addr).await;
    let n = first.len();

    // The client reads no more: the mirror gives the slot back.
    assert!(
        all_closed(&mirror).await,
        "the stalled connection was closed"
    );
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the connection ends");
    assert!(
        end.is_err() || rest.len() + n < big.len(),
        "the body was cut short"
    );
    mirror.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_steady_download_outlasts_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, addr, big) = big_file_mirror(tmp.path(), 8 << 20, "idle_timeout = \"1s\"").await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /targets/big.bin HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // 256 KiB every 100 ms: the download takes longer than the idle
    // timeout, but bytes never stop moving for that long.
    let started = Instant::now();
    let mut all = Vec::new();
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&chunk[..n]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(all[body_at..] == big[..], "the whole body arrived");
    mirror.shutdown(WAIT).await;
}
