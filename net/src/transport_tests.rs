use super::*;
use crate::testutil::{Reply, fake_socks, serve};
use onionpkg_testkit::TestCa;

fn limits() -> Limits {
    Limits {
        max_body: 1 << 20,
        timeout: Duration::from_secs(10),
    }
}

/// GETs `url` as metadata through `t`, with [`limits`].
async fn get(t: &Transport, url: &str) -> Result<Response> {
    t.get(
        Purpose::Metadata,
        &HttpUrl::parse_any(url).unwrap(),
        &limits(),
    )
    .await
}

#[tokio::test]
async fn https_with_extra_ca_fetches_and_without_it_refuses() {
    let ca = TestCa::new();
    let srv = serve(Some(ca.server.clone()), |_| Reply::Body(b"hello".to_vec())).await;
    let url = format!("https://{}/metadata/x.json", srv.addr);

    let t = Transport::Https {
        tls: Tls::new(Some(ca.ca_pem.as_bytes())).unwrap(),
        loopback_http: false,
    };
    let r = get(&t, &url).await.unwrap();
    assert_eq!(&r.body[..], b"hello");

    let untrusted = Transport::Https {
        tls: Tls::new(None).unwrap(),
        loopback_http: false,
    };
    let e = get(&untrusted, &url).await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
}

#[tokio::test]
async fn https_refuses_plain_http_and_onions() {
    let t = Transport::Https {
        tls: Tls::new(None).unwrap(),
        loopback_http: false,
    };
    for url in [
        "http://127.0.0.1:9/x",
        "https://oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd.onion/x",
    ] {
        let e = get(&t, url).await.unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{url}: {e}");
    }
}

#[tokio::test]
async fn https_with_loopback_http_fetches_plain_http_from_loopback_only() {
    let srv = serve(None, |_| Reply::Body(b"local".to_vec())).await;
    let t = Transport::Https {
        tls: Tls::new(None).unwrap(),
        loopback_http: true,
    };
    let url = format!("http://{}/metadata/x.json", srv.addr);
    let r = get(&t, &url).await.unwrap();
    assert_eq!(&r.body[..], b"local");
    let url = format!("http://[::1]:{}/x", srv.addr.port());
    assert!(t.check(&HttpUrl::parse(&url).unwrap()).is_ok());
    // Anything that would leave the host in clear text is still refused,
    // names included: a name is resolved by the system, maybe elsewhere.
    for url in [
        "http://192.0.2.1/x",
        "http://localhost/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd.onion/x",
    ] {
        let e = get(&t, url).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Refused {
                    transport: "https",
                    ..
                }
            ),
            "{url}: {e}"
        );
    }
}

#[test]
fn bad_extra_ca_is_refused() {
    assert!(matches!(
        Tls::new(Some(b"not pem")),
        Err(Error::TlsSettings(_))
    ));
}

#[tokio::test]
async fn socks_passes_names_unresolved_with_credentials_per_purpose() {
    let (proxy, seen, _srv) = fake_socks(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let socks = SocksTransport::new(proxy);
    let t = Transport::Socks {
        socks,
        tls: Tls::new(None).unwrap(),
    };
    let host = "oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd.onion";
    for purpose in [Purpose::Metadata, Purpose::Packages] {
        let r = t
            .get(
                purpose,
                &HttpUrl::parse_any(&format!("http://{host}/x")).unwrap(),
                &limits(),
            )
            .await
            .unwrap();
        assert_eq!(&r.body[..], b"ok");
    }
    // A name that would resolve locally is passed on as a name too.
    get(&t, "http://localhost:8001/x").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.atyp == 3), "{seen:?}");
    assert_eq!((seen[0].host.as_str(), seen[0].port), (host, 80));
    assert_eq!((seen[2].host.as_str(), seen[2].port), ("localhost", 8001));
    assert_eq!(seen[0].user, "onionpkg-metadata");
    assert_eq!(seen[1].user, "onionpkg-packages");
    assert_eq!(seen[0].pass, seen[1].pass);
    assert_eq!(seen[0].pass.len(), 32);
    // Another process (another transport) gets other credentials.
    let other = SocksTransport::new(proxy);
    assert_ne!(other.credentials(Purpose::Metadata).1, seen[0].pass);
}
