//! curl fetches over HTTP and HTTPS: whole files, ranges, conditional
//! requests, and a certificate reload without a restart.

use std::path::Path;
use std::process::Output;

use onionpkg_testkit::TestCa;

use crate::util::{TestRepo, WAIT, config, start};

/// A CA certificate (PEM) and a server chain and key for 127.0.0.1, written
/// as `{prefix}ca.pem`, `{prefix}cert.pem`, `{prefix}key.pem` in `dir`.
fn make_certs(dir: &Path, prefix: &str) {
    TestCa::for_names(
        &format!("onionpkg test CA {prefix}"),
        &["127.0.0.1", "localhost"],
    )
    .write(dir, prefix)
    .unwrap();
}

async fn curl(args: &[&str]) -> Output {
    tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--noproxy", "*"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl finished in time")
    .expect("curl runs")
}

/// `curl -D -` output split into (status, headers, body).
fn split(out: &Output) -> (u16, String, Vec<u8>) {
    let buf = &out.stdout;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("curl: {}", String::from_utf8_lossy(&out.stderr)));
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, buf[end + 4..].to_vec())
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {head}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http_and_https() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(tmp.path(), jiff::Timestamp::now());
    let package = repo.hashed("pkg/hello-1.0.tar");
    make_certs(tmp.path(), "");
    let d = tmp.path().display();
    let cfg = config(
        tmp.path(),
        repo.dir(),
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n"
        ),
    );
    let mirror = start(&cfg).await;
    let http = format!("http://{}", mirror.http_addr().unwrap());
    let https = format!("https://{}", mirror.https_addr().unwrap());
    let ca = format!("{d}/ca.pem");
    let timestamp = std::fs::read(repo.repo.metadata_dir().join("timestamp.json")).unwrap();
    let content = b"hello, appliance\n";
    // Larger than what is read whole, and than one streaming read.
    let big_content: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(repo.dir().join("targets/pkg")).unwrap();
    std::fs::write(repo.dir().join("targets/pkg/big.bin"), &big_content).unwrap();

    for base in [&http, &https] {
        let tls: &[&str] = if base.starts_with("https") {
            &["--cacert", &ca]
        } else {
            &[]
        };
        let url = |p: &str| format!("{base}{p}");
        // Metadata.
        let out = curl(&[tls, &["-D", "-", &url("/metadata/timestamp.json")]].concat()).await;
        let (status, head, body) = split(&out);
        assert_eq!(status, 200, "{base}");
        assert_eq!(body, timestamp);
        assert_eq!(header(&head, "content-type"), "application/json");
        assert_eq!(header(&head, "cache-control"), "public, max-age=60");
        assert_eq!(header(&head, "content-length"), timestamp.len().to_string());
        assert!(!head.contains("server:"), "{head}");
        let snapshot = curl(&[tls, &["-D", "-", &url("/metadata/1.snapshot.json")]].concat()).await;
        let (status, head, _) = split(&snapshot);
        assert_eq!(status, 200);
        assert!(header(&head, "cache-control").contains("immutable"));

        // A package.
        let pkg = url(&format!("/targets/{package}"));
        let out = curl(&[tls, &["-D", "-", &pkg]].concat()).await;
        let (status, head, body) = split(&out);
        assert_eq!(status, 200);
        assert_eq!(body, content);
        assert_eq!(header(&head, "content-type"), "application/octet-stream");
        assert!(header(&head, "cache-control").contains("immutable"));
        let etag = header(&head, "etag");
        let last_modified = header(&head, "last-modified");

        // Range.
        let out = curl(&[tls, &["-D", "-", "-r", "0-4", &pkg]].concat()).await;
        let (status, head, body) = split(&out);
        assert_eq!(status, 206);
        assert_eq!(body, b"hello");
        assert_eq!(
            header(&head, "content-range"),
            format!("bytes 0-4/{}", content.len())
        );
        let out = curl(&[tls, &["-D", "-", "-r", "-3", &pkg]].concat()).await;
        assert_eq!(split(&out).2, b"ce\n");
        let out = curl(&[tls, &["-D", "-", "-r", "100-", &pkg]].concat()).await;
        let (status, head, _) = split(&out);
        assert_eq!(status, 416);
        assert_eq!(
            header(&head, "content-range"),
            format!("bytes */{}", content.len())
        );
        let out = curl(&[tls, &["-D", "-", "-r", "0-1,3-4", &pkg]].concat()).await;
        let (status, _, body) = split(&out);
        assert_eq!(status, 200, "multi-range: the whole file");
        assert_eq!(body, content);

        // A file streamed in several reads: whole, and a range across reads.
        let big = url("/targets/pkg/big.bin");
        let out = curl(&[tls, &["-D", "-", &big]].concat()).await;
        let (status, _, body) = split(&out);
        assert_eq!(status, 200);
        assert!(body == big_content, "the whole streamed file");
        let out = curl(&[tls, &["-D", "-", "-r", "100000-300000", &big]].concat()).await;
        let (status, _, body) = split(&out);
        assert_eq!(status, 206);
        assert!(
            body == big_content[100_000..=300_000],
            "a range across reads"
        );

        // Conditional requests.
        let inm = format!("If-None-Match: {etag}");
        let out = curl(&[tls, &["-D", "-", "-H", &inm, &pkg]].concat()).await;
        let (status, _, body) = split(&out);
        assert_eq!(status, 304);
        assert!(body.is_empty());
        let out = curl(&[tls, &["-D", "-", "-H", "If-None-Match: \"other\"", &pkg]].concat()).await;
        assert_eq!(split(&out).0, 200);
        let out = curl(&[tls, &["-D", "-", "-z", &last_modified, &pkg]].concat()).await;
        assert_eq!(split(&out).0, 304);
        let out = curl(
            &[
                tls,
                &["-D", "-", "-z", "Thu, 01 Jan 1998 00:00:00 GMT", &pkg],
            ]
            .concat(),
        )
        .await;
        assert_eq!(split(&out).0, 200);

        // HEAD: headers, no body.
        let out = curl(&[tls, &["-I", &pkg]].concat()).await;
        let (status, head, body) = split(&out);
        assert_eq!(status, 200);
        assert_eq!(header(&head, "content-length"), content.len().to_string());
        assert!(body.is_empty());
    }

    // The certificate is replaced on reload; no restart, old CA refused after.
    make_certs(tmp.path(), "new-");
    std::fs::rename(tmp.path().join("new-cert.pem"), tmp.path().join("cert.pem")).unwrap();
    std::fs::rename(tmp.path().join("new-key.pem"), tmp.path().join("key.pem")).unwrap();
    mirror.reload_tls().unwrap();
    let new_ca = format!("{d}/new-ca.pem");
    let url = format!("{https}/metadata/timestamp.json");
    let status_with_new_ca = async || {
        let args = [
            "--cacert",
            &new_ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ];
        String::from_utf8_lossy(&curl(&args).await.stdout).into_owned()
    };
    assert_eq!(status_with_new_ca().await, "200");
    let out = curl(&["--cacert", &ca, "-o", "/dev/null", &url]).await;
    assert!(
        !out.status.success(),
        "the old certificate is no longer served"
    );
    // A broken reload keeps the current certificate.
    std::fs::write(tmp.path().join("cert.pem"), b"not pem").unwrap();
    let err = mirror.reload_tls().unwrap_err();
    assert!(
        matches!(
            err,
            onionpkg_mirror::Error::Tls {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(status_with_new_ca().await, "200");

    // Metrics: counted, on the loopback listener.
    let metrics = format!("http://{}/metrics", mirror.metrics_addr().unwrap());
    let out = curl(&[&metrics[..]]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("onionpkg_mirror_responses_total{class=\"2xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("onionpkg_mirror_responses_total{class=\"3xx\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("onionpkg_mirror_responses_total{class=\"4xx\"} 2"),
        "{text}"
    );
    assert!(text.contains("onionpkg_mirror_onion_state 0"), "{text}");
    let version =
        serde_json::from_slice::<serde_json::Value>(&timestamp).unwrap()["signed"]["version"]
            .as_u64()
            .unwrap();
    assert!(
        text.contains(&format!(
            "onionpkg_mirror_served_timestamp_version {version}\n"
        )),
        "{text}"
    );
    mirror.shutdown(WAIT).await;
}
