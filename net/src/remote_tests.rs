use super::*;
use crate::testutil::{Reply, serve};
use crate::transport::Tls;
use onionpkg_core::url::WebUrl;
use onionpkg_testkit::TestCa;

async fn setup() -> (crate::testutil::TestServer, RemoteRepository) {
    let ca = TestCa::new();
    let srv = serve(Some(ca.server.clone()), |path| match path {
        "/m/metadata/timestamp.json" => Reply::Body(b"{\"ts\":1}".to_vec()),
        "/m/metadata/forbidden.json" => Reply::Status(403),
        "/m/metadata/broken.json" => Reply::Status(500),
        "/m/metadata/endless.json" => Reply::Endless,
        "/m/metadata/slow.json" => Reply::Stall,
        "/m/targets/pkgs/abc.a.tar" => Reply::Body(vec![7; 100]),
        _ => Reply::Status(404),
    })
    .await;
    let transport = Arc::new(Transport::Https {
        tls: Tls::new(Some(ca.ca_pem.as_bytes())).unwrap(),
        loopback_http: false,
    });
    let repo = RemoteRepository::new(transport, &web(&format!("https://{}/m", srv.addr)))
        .unwrap()
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(5));
    (srv, repo)
}

fn from_tuf(e: sigstore_tuf::Error) -> FetchError {
    let sigstore_tuf::Error::Transport { source, .. } = e else {
        panic!("not a transport error: {e}");
    };
    let source = source.expect("a source");
    match source.downcast::<FetchError>() {
        Ok(f) => *f,
        Err(other) => panic!("not a FetchError: {other}"),
    }
}

#[tokio::test]
async fn maps_statuses() {
    let (srv, repo) = setup().await;
    assert_eq!(repo.base_url().as_str(), format!("https://{}/m/", srv.addr));
    let ts = repo.fetch_metadata("timestamp.json", 1024).await.unwrap();
    assert_eq!(ts.as_deref(), Some(&b"{\"ts\":1}"[..]));
    assert_eq!(
        repo.fetch_metadata("2.root.json", 1024).await.unwrap(),
        None
    );
    assert_eq!(
        repo.fetch_metadata("forbidden.json", 1024).await.unwrap(),
        None
    );
    let e = from_tuf(repo.fetch_metadata("broken.json", 1024).await.unwrap_err());
    assert!(
        matches!(&e, FetchError::Failed { reason, .. } if reason.contains("500")),
        "{e}"
    );
    let t = repo.fetch_target("pkgs/abc.a.tar", 100).await.unwrap();
    assert_eq!(t, Some(vec![7; 100]));
    let seen = srv.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"/m/targets/pkgs/abc.a.tar".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn caps_length_while_reading() {
    let (_srv, repo) = setup().await;
    // The signed length is the cap: one byte less than the target is refused.
    let e = from_tuf(repo.fetch_target("pkgs/abc.a.tar", 99).await.unwrap_err());
    assert!(matches!(e, FetchError::TooLarge { limit: 99, .. }), "{e}");
    // An endless body ends at the cap, not when memory runs out.
    let e = from_tuf(
        repo.fetch_metadata("endless.json", 16 * 1024)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, FetchError::TooLarge { limit: 16384, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn slow_retrieval_times_out() {
    let (_srv, repo) = setup().await;
    let started = std::time::Instant::now();
    let e = from_tuf(repo.fetch_metadata("slow.json", 1024).await.unwrap_err());
    assert!(
        matches!(&e, FetchError::Failed { reason, .. } if reason.contains("timed out")),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refuses_unsafe_names_and_urls_the_transport_cannot_fetch() {
    let (_srv, repo) = setup().await;
    let e = from_tuf(repo.fetch_metadata("../x.json", 1024).await.unwrap_err());
    assert!(matches!(e, FetchError::Failed { .. }), "{e}");
    let https = Arc::new(Transport::Https {
        tls: Tls::new(None).unwrap(),
        loopback_http: false,
    });
    let err = RemoteRepository::new(https, &web("http://127.0.0.1:1/")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                transport: "https",
                ..
            }
        ),
        "{err}"
    );
}

/// GETs `url` as metadata file `name` from `repo`: at most 1024 bytes,
/// within 5 s.
async fn get(repo: &RemoteRepository, name: &str, url: &HttpUrl) -> Result<Option<Vec<u8>>> {
    repo.get(Purpose::Metadata, name, url, 1024, Duration::from_secs(5))
        .await
}

#[tokio::test]
async fn get_keeps_the_transport_error() {
    let (srv, repo) = setup().await;
    let url = repo.metadata_url("timestamp.json");
    let got = get(&repo, "timestamp.json", &url).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"{\"ts\":1}"[..]));
    let url = repo.metadata_url("broken.json");
    let e = get(&repo, "broken.json", &url).await.unwrap_err();
    assert!(matches!(e, Error::Status(s) if s.as_u16() == 500), "{e}");
    let e = get(&repo, "../x.json", &url).await.unwrap_err();
    assert!(matches!(e, Error::Url(_)), "{e}");

    // The same server with roots that do not include its CA: a TLS error,
    // typed, and reported to the updater as a failed fetch.
    let untrusted = Arc::new(Transport::Https {
        tls: Tls::new(None).unwrap(),
        loopback_http: false,
    });
    let repo = RemoteRepository::new(untrusted, &web(&format!("https://{}/m", srv.addr))).unwrap();
    let url = repo.metadata_url("timestamp.json");
    let e = get(&repo, "timestamp.json", &url).await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
    let f = fetch_error("timestamp.json", &e);
    assert!(
        matches!(&f, FetchError::Failed { name, reason } if name == "timestamp.json" && reason.contains("tls handshake")),
        "{f}"
    );
    assert!(matches!(
        fetch_error("x", &Error::BodyTooLarge { limit: 3 }),
        FetchError::TooLarge { limit: 3, .. }
    ));
}

/// A base URL as a configuration file gives it.
fn web(s: &str) -> WebUrl {
    WebUrl::parse_local_base(s).unwrap()
}

#[test]
fn target_paths_are_percent_encoded_segment_by_segment() {
    let base = web("https://mirror.example.org/r");
    let url = HttpUrl::join(&base, "targets/dir/abc.a b#1?%é.txt");
    assert_eq!(url.path(), "/r/targets/dir/abc.a%20b%231%3F%25%C3%A9.txt");
    assert_eq!(url.host(), "mirror.example.org");
    assert!(url.is_tls());
}
