//! What an idle check costs on the wire, and the pluggable transport: a
//! resolver whose only connection is a stream the caller opened, with no UDP
//! at all.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_net::runtime::RuntimeProvider as _;
use hickory_proto::rr::RecordType;
use onionpkg_announce::check::{Expectation, timestamp_keys_of_root, verify_records};
use onionpkg_announce::query::{query_announcement, resolver_over_streams};
use onionpkg_announce::{AnnouncementState, StreamProvider};
use onionpkg_trust::clock::Tolerance;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::util::{InProcess, NAME, TestRepo, tcp_query, udp_query};

/// The goal for an idle check: one exchange of at most this many bytes.
const BUDGET: usize = 1024;

/// A stream that keeps a copy of every byte written and read.
pub(crate) struct Recording<S> {
    pub(crate) inner: S,
    pub(crate) written: Arc<Mutex<Vec<u8>>>,
    pub(crate) read: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.read.lock().unwrap().extend_from_slice(&new);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.written.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The lengths of the DNS-over-TCP messages in `bytes` (2-byte length
/// prefix each); panics on a partial message.
pub(crate) fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "a partial message");
        out.push(len);
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_check_is_one_exchange_under_a_kilobyte() {
    let repo = TestRepo::new();
    let signed = repo.sign_now();
    let server = InProcess::start(Some(&signed.text)).await;
    let target = server.addr();

    // UDP, as a resolver first asks: the answer is more than three times
    // the query, so it comes back empty with TC=1 (no amplification) and
    // the resolver asks again over TCP.
    let (answer, query_len, response_len) =
        tokio::task::spawn_blocking(move || udp_query(target, NAME, RecordType::TXT))
            .await
            .unwrap();
    assert!(answer.metadata.truncation, "truncated over UDP");
    assert!(response_len <= query_len, "{response_len} bytes");
    // Over TCP, one exchange.
    let (answer, tcp_query_len, tcp_response_len) =
        tokio::task::spawn_blocking(move || tcp_query(target, NAME, RecordType::TXT))
            .await
            .unwrap();
    assert!(!answer.metadata.truncation);
    assert!(tcp_response_len <= BUDGET, "{tcp_response_len} bytes");
    eprintln!(
        "wire: built-in server, UDP: query {query_len} B, response {response_len} B (TC=1); \
         TCP: query {tcp_query_len} B, response {tcp_response_len} B, record {} B",
        signed.text.len()
    );

    // TCP through the pluggable provider: a tokio TcpStream from the
    // caller's connect function, every byte recorded.
    let written = Arc::new(Mutex::new(Vec::new()));
    let read = Arc::new(Mutex::new(Vec::new()));
    let (w, r) = (written.clone(), read.clone());
    let provider = StreamProvider::new(move |addr| {
        let (w, r) = (w.clone(), r.clone());
        async move {
            // The address is the label the resolver was configured with.
            assert_eq!(addr.port(), 53);
            let inner = tokio::net::TcpStream::connect(target).await?;
            Ok(Recording {
                inner,
                written: w,
                read: r,
            })
        }
    });
    let label = "192.0.2.53:53".parse().unwrap();
    let resolver =
        resolver_over_streams(provider.clone(), label, Duration::from_secs(5), None).unwrap();
    let records = query_announcement(&resolver, NAME).await.unwrap();
    assert_eq!(records, vec![signed.text.clone()]);

    let keys = timestamp_keys_of_root(&repo.root()).unwrap();
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
    assert!(AnnouncementState::compare(&verified, signed.announcement.serial).may_skip_mirrors());

    assert_eq!(provider.tcp_connects(), 1, "one connection");
    assert_eq!(provider.udp_bind_attempts(), 0, "no UDP socket at all");
    let sent = frames(&written.lock().unwrap());
    let received = frames(&read.lock().unwrap());
    assert_eq!(sent.len(), 1, "one query: {sent:?}");
    assert_eq!(received.len(), 1, "one response: {received:?}");
    let total = written.lock().unwrap().len() + read.lock().unwrap().len();
    assert!(total <= BUDGET, "{total} bytes");
    eprintln!(
        "wire: built-in server, TCP via StreamProvider: {} connection, query {} B, \
         response {} B (with 2-byte length prefixes: {total} B in all)",
        provider.tcp_connects(),
        sent[0],
        received[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_stream_provider_never_binds_udp() {
    let provider = StreamProvider::new(|_| async {
        Err::<tokio::net::TcpStream, _>(std::io::Error::other("no network in this test"))
    });
    let any = "127.0.0.1:0".parse().unwrap();
    let err = provider
        .bind_udp(any, "192.0.2.53:53".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(provider.udp_bind_attempts(), 1);
    // A connect error from the function reaches the resolver as a failure.
    let resolver = resolver_over_streams(
        provider.clone(),
        "192.0.2.53:53".parse().unwrap(),
        Duration::from_secs(2),
        None,
    )
    .unwrap();
    let err = query_announcement(&resolver, NAME).await.unwrap_err();
    assert_eq!(
        err.exit_code(),
        onionpkg_announce::exit::UNREACHABLE,
        "{err}"
    );
    assert!(provider.tcp_connects() >= 1);
    assert_eq!(
        provider.udp_bind_attempts(),
        1,
        "the resolver itself tried no UDP"
    );
}
