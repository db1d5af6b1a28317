//! Sync: verified like a client, atomic publish, refusals leave the served
//! tree alone, and a sync killed midway leaves it intact.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use onionpkg_mirror::Error;
use onionpkg_mirror::http::RepoService;
use onionpkg_mirror::metrics::Metrics;
use onionpkg_mirror::sync::sync_and_record;
use onionpkg_trust::metadata::{Client, FsRepository, VerifyError};
use tokio::sync::Notify;

use crate::util::{TestRepo, WAIT, clock, config, direct};

/// An upstream serving a repository tree over HTTP (or HTTPS) on loopback;
/// it can be told to stall halfway through one file.
pub(crate) struct Upstream {
    addr: SocketAddr,
    tls: bool,
    stall: Arc<AtomicBool>,
    half_sent: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Serves `dir` over plain HTTP.
    pub(crate) async fn start(dir: &Path, stall_suffix: &'static str) -> Self {
        Self::start_with(dir, stall_suffix, None).await
    }

    /// Serves `dir`, over HTTPS with `tls` if given.
    pub(crate) async fn start_with(
        dir: &Path,
        stall_suffix: &'static str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let https = acceptor.is_some();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = RepoService::new(dir, Arc::new(Metrics::default()), false).unwrap();
        let stall = Arc::new(AtomicBool::new(false));
        let half_sent = Arc::new(Notify::new());
        let (s, h) = (Arc::clone(&stall), Arc::clone(&half_sent));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (service, stall, half_sent) = (service.clone(), Arc::clone(&s), Arc::clone(&h));
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                        let (service, stall, half_sent) =
                            (service.clone(), Arc::clone(&stall), Arc::clone(&half_sent));
                        async move {
                            let (parts, _) = req.into_parts();
                            let req = http::Request::from_parts(parts, ());
                            let resp = service.respond(&req).await;
                            if !(stall.load(Ordering::SeqCst)
                                && req.uri().path().ends_with(stall_suffix))
                            {
                                return Ok::<_, Infallible>(resp);
                            }
                            // Headers promise the whole file; half of it comes, then nothing.
                            let (parts, body) = resp.into_parts();
                            let whole = body.collect().await.unwrap().to_bytes();
                            let half = whole.slice(..whole.len() / 2);
                            let stream = futures::stream::iter([Ok::<_, std::io::Error>(
                                Frame::data(half),
                            )])
                            .chain(futures::stream::once(async move {
                                half_sent.notify_one();
                                std::future::pending::<Result<Frame<Bytes>, std::io::Error>>().await
                            }));
                            Ok(http::Response::from_parts(
                                parts,
                                StreamBody::new(stream).boxed_unsync(),
                            ))
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            let Ok(stream) = a.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            tls: https,
            stall,
            half_sent,
            task,
        }
    }

    /// The base URL.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }
}

use futures::StreamExt as _;

/// Every file under `root` but the sync scratch dir, with its content.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.file_name()
                .is_some_and(|n| n == onionpkg_mirror::sync::SCRATCH_DIR)
            {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A mirror configuration syncing from `upstream` without Tor, `extra`
/// appended to `[sync]`.
pub(crate) fn sync_config(dir: &Path, repo: &TestRepo, upstream: &str, extra: &str) -> PathBuf {
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    config(
        dir,
        &served,
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[sync]\nupstream = \"{upstream}\"\n\
             trust_root = {:?}\nvia_tor = false\n{extra}",
            repo.root_path().display().to_string()
        ),
    )
}

/// Syncs `cfg` from its upstream with `clock`: one package downloaded,
/// which a client trusting `root_json` accepts from the served tree.
pub(crate) async fn synced_one(
    cfg: &onionpkg_config::MirrorConfig,
    clock: &onionpkg_trust::clock::ClockPolicy,
    root_json: &[u8],
) {
    let r = sync_and_record(cfg, None, &direct(cfg), clock, None)
        .await
        .unwrap();
    assert_eq!(r.downloaded, 1);
    assert_eq!(
        client_accepts(root_json, &cfg.root, "pkg/hello-1.0.tar").await,
        b"hello, appliance\n"
    );
}

/// What a client sees in the mirror's tree: it must verify.
pub(crate) async fn client_accepts(root_json: &[u8], tree: &Path, target: &str) -> Vec<u8> {
    let mut c = Client::new(root_json, None, FsRepository::from_tree(tree)).unwrap();
    c.refresh(Timestamp::now()).await.unwrap();
    c.fetch_target(target, Timestamp::now()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_verifies_publishes_atomically_and_survives_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = TestRepo::new(tmp.path(), Timestamp::now());
    let root_json = std::fs::read(repo.root_path()).unwrap();
    let upstream = Upstream::start(repo.dir(), "big-1.0.bin").await;
    let url = upstream.url();
    let cfg_path = sync_config(tmp.path(), &repo, "https://upstream.example/", "");
    let served = tmp.path().join("served");
    let cfg = onionpkg_config::load_mirror(&cfg_path).unwrap();

    // A good sync: the tree verifies for a client.
    let r = sync_and_record(&cfg, Some(&url), &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap();
    assert_eq!(r.downloaded, 1);
    assert_eq!(
        std::fs::read(served.join("metadata/timestamp.json")).unwrap(),
        std::fs::read(repo.repo.metadata_dir().join("timestamp.json")).unwrap()
    );
    assert_eq!(
        client_accepts(&root_json, &served, "pkg/hello-1.0.tar").await,
        b"hello, appliance\n"
    );
    let good = snapshot(&served);

    // A tampered target: refused, nothing changes.
    repo.add("pkg/two-1.0.tar", b"second package\n");
    repo.publish();
    let two = repo.repo.targets_dir().join(repo.hashed("pkg/two-1.0.tar"));
    std::fs::write(&two, b"SECOND package\n").unwrap();
    let e = sync_and_record(&cfg, Some(&url), &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Verify(VerifyError::TargetHashMismatch { .. })),
        "{e}"
    );
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 8);
    assert_eq!(snapshot(&served), good, "a refused sync changed the tree");
    std::fs::write(&two, b"second package\n").unwrap();

    // An expired timestamp: refused, nothing changes.
    repo.now = Timestamp::now() - SignedDuration::from_hours(48);
    repo.publish();
    let e = sync_and_record(&cfg, Some(&url), &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Verify(VerifyError::Expired { .. })),
        "{e}"
    );
    assert_eq!(snapshot(&served), good, "a refused sync changed the tree");
    let state = onionpkg_mirror::state::State::load(&cfg.state_dir).unwrap();
    assert!(state.last_sync_error.unwrap().contains("expired"));

    // A sync killed while downloading a large target leaves the tree intact.
    repo.now = Timestamp::now();
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    repo.add("pkg/big-1.0.bin", &big);
    let version = repo.publish();
    upstream.stall.store(true, Ordering::SeqCst);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onionpkg-mirror"))
        .args([
            "sync",
            "--config",
            &cfg_path.display().to_string(),
            "--upstream",
            &url,
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, upstream.half_sent.notified())
        .await
        .expect("the sync reached the large target");
    child.start_kill().unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert_eq!(snapshot(&served), good, "a killed sync changed the tree");

    // The next sync completes; older versioned files stay.
    upstream.stall.store(false, Ordering::SeqCst);
    let r = sync_and_record(&cfg, Some(&url), &direct(&cfg), &clock(&cfg), None)
        .await
        .unwrap();
    assert_eq!(r.version, version);
    assert_eq!(
        client_accepts(&root_json, &served, "pkg/big-1.0.bin").await,
        big
    );
    let now_served = snapshot(&served);
    for (path, content) in &good {
        if !path.ends_with("timestamp.json") {
            assert_eq!(
                now_served.get(path),
                Some(content),
                "{} kept",
                path.display()
            );
        }
    }
    assert!(!served.join(onionpkg_mirror::sync::SCRATCH_DIR).exists());

    // status reads what sync recorded.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_onionpkg-mirror"))
            .args([
                "status",
                "--json",
                "--config",
                &cfg_path.display().to_string(),
            ])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["served_version"], version);
    assert!(v["last_sync"].is_string());
}
