//! A serial is announced only once the main mirrors serve it
//! (`[mirrors] wait_for`, `push --wait-for-mirror`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use onionpkg_announce::Error;
use onionpkg_announce::mirrors::MirrorGate;
use onionpkg_announce::serve::{AnnounceZone, Announcer, ServeOptions, Signing};
use onionpkg_config::common::WebUrl;
use onionpkg_repo::RepoDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::util::{NAME, TestRepo, ZONE, run};

/// A mirror on 127.0.0.1 that serves `dir/timestamp.json` (plain HTTP, one
/// request a connection), as a main mirror that syncs by copying.
struct Mirror {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mirror(dir: PathBuf) -> Mirror {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req);
                let path = head.split(' ').nth(1).unwrap_or("/");
                let reply = match path {
                    "/metadata/timestamp.json" => std::fs::read(dir.join("timestamp.json")).ok(),
                    _ => None,
                };
                let response = match reply {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = tcp.write_all(&response).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    Mirror { url, task }
}

/// Copies the repository's published timestamp to the mirror's directory.
fn sync(repo: &TestRepo, mirror_dir: &Path) {
    std::fs::create_dir_all(mirror_dir).unwrap();
    std::fs::copy(
        repo.dir().join("metadata/timestamp.json"),
        mirror_dir.join("timestamp.json"),
    )
    .unwrap();
}

fn served(zone_announcer: &Announcer) -> Option<u64> {
    zone_announcer.current().map(|s| s.announcement.serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_announces_a_serial_only_once_the_mirrors_serve_it() {
    let repo = TestRepo::new();
    let mirror_dir = repo.tmp.path().join("mirror");
    sync(&repo, &mirror_dir);
    let m = mirror(mirror_dir.clone()).await;
    let keys = repo.timestamp_keys();
    let opts = ServeOptions {
        name: NAME.into(),
        channel: "stable".into(),
        valid_for: SignedDuration::from_hours(1),
        poll: Some(Duration::from_secs(1)),
        gate: Some(MirrorGate::new(&[WebUrl::parse_local_base(&m.url).unwrap()], None).unwrap()),
    };
    let zone = AnnounceZone::new(ZONE, NAME, 60, None).unwrap();
    let mut announcer = Announcer::new(RepoDir::new(repo.dir()), Signing::Keys(keys), opts, zone);
    announcer.start(Timestamp::now()).await.unwrap();
    let first = served(&announcer).expect("the mirror serves the published serial");

    // Published, not yet on the mirror: the old record stays.
    let next = repo.publish_new();
    let e = announcer
        .refresh(Timestamp::now(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::NotYetOnMirrors { serial, ref reason, .. } if serial == next && reason.contains(&format!("serves version {first}"))),
        "{e}"
    );
    assert_eq!(served(&announcer), Some(first));

    // Another timestamp of the announced version on the mirror: still not.
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.dir().join("metadata/timestamp.json")).unwrap())
            .unwrap();
    other["signatures"] = serde_json::json!([]);
    std::fs::write(
        mirror_dir.join("timestamp.json"),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    let e = announcer
        .refresh(Timestamp::now(), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("other bytes"), "{e}");
    assert_eq!(served(&announcer), Some(first));

    // The mirror syncs: the next poll announces it.
    sync(&repo, &mirror_dir);
    announcer.refresh(Timestamp::now(), false).await.unwrap();
    assert_eq!(served(&announcer), Some(next));

    // An unreachable mirror counts as not serving it.
    drop(m);
    repo.publish_new();
    let e = announcer
        .refresh(Timestamp::now(), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("could not be asked"), "{e}");
    assert_eq!(served(&announcer), Some(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_waits_for_the_mirrors_and_pushes_nothing_before() {
    let repo = TestRepo::new();
    let mirror_dir = repo.tmp.path().join("mirror");
    sync(&repo, &mirror_dir);
    repo.publish_new();
    let m = mirror(mirror_dir).await;
    let tsig = repo.tmp.path().join("tsig.key");
    std::fs::write(
        &tsig,
        "key \"update-key\" {\n  algorithm hmac-sha256;\n  secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\";\n};\n",
    )
    .unwrap();
    // The server is a port nothing listens on: had anything been pushed,
    // the failure would be the connection's, not the mirror's.
    let r = run(repo.args(
        "push",
        &[
            "--zone",
            ZONE,
            "--server",
            "127.0.0.1:9",
            "--tsig-key",
            tsig.to_str().unwrap(),
            "--wait-for-mirror",
            &m.url,
        ],
    ))
    .await;
    r.assert_code(9);
    assert!(r.stderr.contains("not announced yet"), "{}", r.stderr);
    assert!(r.stderr.contains(&m.url), "{}", r.stderr);
}
