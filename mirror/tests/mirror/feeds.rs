//! Feeds: fetched from an HTTPS upstream on loopback, checked, stored,
//! published as `feeds` targets that verify like packages; a failing
//! upstream (down, garbage, endless, wrong checksum or signature) leaves the
//! last good version in place; and the mirror is no proxy.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use onionpkg_mirror::cli::{feeds_fetch, feeds_status};
use onionpkg_mirror::feeds::store::FeedStore;
use onionpkg_mirror::{Error, Mirror};
use onionpkg_testkit::TestCa;
use onionpkg_testkit::testdata;
use onionpkg_trust::metadata::{Client, FsRepository};

use crate::util::{TestRepo, WAIT, get, raw};

/// What the upstream answers on one path.
#[derive(Clone)]
pub enum Reply {
    Body(Vec<u8>),
    Status(u16),
    /// Zeros without end.
    Endless,
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An HTTPS feed upstream on loopback that counts every request.
pub struct Upstream {
    pub addr: SocketAddr,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    ca_pem: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        let ca = TestCa::new();
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (r, n) = (replies.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, r, n) = (acceptor.clone(), r.clone(), n.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        n.fetch_add(1, Ordering::SeqCst);
                        let reply = r.lock().unwrap().get(req.uri().path()).cloned();
                        async move { Ok::<_, Infallible>(respond(reply)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            replies,
            requests,
            task,
            ca_pem: ca.ca_pem,
        }
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn respond(reply: Option<Reply>) -> hyper::Response<BoxBody> {
    let (status, body): (u16, BoxBody) = match reply {
        Some(Reply::Body(b)) => (200, Full::new(Bytes::from(b)).boxed()),
        Some(Reply::Status(s)) => (s, Full::new(Bytes::new()).boxed()),
        Some(Reply::Endless) => {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![0u8; 16 * 1024])))
            });
            (200, StreamBody::new(chunks).boxed())
        }
        None => (404, Full::new(Bytes::new()).boxed()),
    };
    let mut r = hyper::Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// How a [`Primary`] publishes its feeds.
pub enum Publish {
    /// Not at all.
    No,
    /// With the repository's key files.
    Keys,
    /// Through `onionpkg-signer` at `socket`, asking with `client_key`.
    Signer {
        socket: PathBuf,
        client_key: PathBuf,
    },
}

/// A primary: a signed repository, and a mirror configuration serving it
/// with three feeds from `up` (a DROP list with a checksum, a rules archive
/// with a minisign signature, a GeoIP mmdb), publishing with the repo keys.
pub struct Primary {
    _dir: tempfile::TempDir,
    pub repo: TestRepo,
    pub config: PathBuf,
    pub state: PathBuf,
    pub minisign: minisign::KeyPair,
}

impl Primary {
    pub fn new(up: &Upstream, publish: bool, max_size: u64) -> Self {
        Self::with_feeds(up, publish, max_size, "")
    }

    /// [`Primary::new`], and the `[[feed]]` sections in `more`.
    pub fn with_feeds(up: &Upstream, publish: bool, max_size: u64, more: &str) -> Self {
        let publish = if publish { Publish::Keys } else { Publish::No };
        Self::publishing(up, &publish, max_size, more)
    }

    /// [`Primary::with_feeds`], publishing as `publish` says.
    pub fn publishing(up: &Upstream, publish: &Publish, max_size: u64, more: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = TestRepo::new(dir.path(), Timestamp::now());
        std::fs::write(dir.path().join("ca.pem"), &up.ca_pem).unwrap();
        let minisign = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        std::fs::write(
            dir.path().join("rules.pub"),
            minisign.pk.to_box().unwrap().into_string(),
        )
        .unwrap();
        let publish = match publish {
            Publish::No => String::new(),
            Publish::Keys => format!(
                "[feeds.publish]\nrepo = {:?}\nkeys = {:?}\n",
                repo.dir().display().to_string(),
                dir.path().join("keys").display().to_string()
            ),
            Publish::Signer { socket, client_key } => format!(
                "[feeds.publish]\nrepo = {:?}\nsigner = {:?}\nsigner_key = {:?}\n",
                repo.dir().display().to_string(),
                socket.display().to_string(),
                client_key.display().to_string()
            ),
        };
        let extra = format!(
            r#"
[listen]
http = "127.0.0.1:0"

[feeds]
extra_ca = "ca.pem"
keep = 2
{publish}
[[feed]]
name = "blocklist"
upstream = "{}"
checksum_url = "{}"
check = "ip-list"
via_tor = false
max_size = {max_size}

[[feed]]
name = "rules"
upstream = "{}"
signature_url = "{}"
signature_key = "rules.pub"
check = "tar.gz"
via_tor = false
max_size = {max_size}

[[feed]]
name = "geoip"
upstream = "{}"
file = "GeoLite2-Country.mmdb"
check = "mmdb"
via_tor = false
{more}"#,
            up.url("/drop.txt"),
            up.url("/drop.txt.sha256"),
            up.url("/rules.tar.gz"),
            up.url("/rules.tar.gz.minisig"),
            up.url("/db"),
        );
        let config = crate::util::config(dir.path(), repo.dir(), &extra);
        let state = dir.path().join("state");
        Self {
            _dir: dir,
            repo,
            config,
            state,
            minisign,
        }
    }

    /// Serves `list` as the blocklist, with its checksum.
    pub fn serve_list(&self, up: &Upstream, list: &[u8]) {
        up.set("/drop.txt", Reply::Body(list.to_vec()));
        up.set(
            "/drop.txt.sha256",
            Reply::Body(format!("{}  drop.txt\n", sha256_hex(list)).into_bytes()),
        );
    }

    /// Serves `archive` as the rules, signed with the pinned key.
    pub fn serve_rules(&self, up: &Upstream, archive: &[u8]) {
        let sig = minisign::sign(
            Some(&self.minisign.pk),
            &self.minisign.sk,
            std::io::Cursor::new(archive),
            None,
            None,
        )
        .unwrap();
        up.set("/rules.tar.gz", Reply::Body(archive.to_vec()));
        up.set(
            "/rules.tar.gz.minisig",
            Reply::Body(sig.into_string().into_bytes()),
        );
    }

    pub fn serve_all(&self, up: &Upstream) {
        self.serve_list(up, testdata::DROP_LIST.as_bytes());
        self.serve_rules(up, &testdata::rules_tar_gz().unwrap());
        up.set("/db", Reply::Body(testdata::mmdb()));
    }

    pub fn status(&self, name: &str) -> onionpkg_mirror::feeds::store::FeedStatus {
        FeedStore::new(&self.state, name).status().unwrap()
    }

    /// What an appliance gets for `target` from the served tree: verified.
    pub async fn client_gets(&self, target: &str) -> Vec<u8> {
        let root = std::fs::read(self.repo.root_path()).unwrap();
        let mut c = Client::new(&root, None, FsRepository::from_tree(self.repo.dir())).unwrap();
        let now = Timestamp::now();
        c.refresh(now).await.unwrap();
        c.load_delegated("feeds", now).await.unwrap();
        c.fetch_target(target, now).await.unwrap()
    }
}

pub async fn fetch(p: &Primary, names: &[&str]) -> Result<Vec<String>, Error> {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    tokio::time::timeout(WAIT, feeds_fetch(&p.config, &names))
        .await
        .expect("feeds fetch within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_are_checked_published_and_verify_like_packages() {
    let up = Upstream::start().await;
    let p = Primary::new(&up, true, 1 << 20);
    p.serve_all(&up);
    let lines = fetch(&p, &[]).await.unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("new version")), "{lines:?}");

    // Published: an appliance verifies each feed like a package.
    let list = p.client_gets("feeds/blocklist/drop.txt").await;
    assert_eq!(list, testdata::DROP_LIST.as_bytes());
    let rules = p.client_gets("feeds/rules/rules.tar.gz").await;
    assert_eq!(
        sha256_hex(&rules),
        sha256_hex(&testdata::rules_tar_gz().unwrap())
    );
    let db = p.client_gets("feeds/geoip/GeoLite2-Country.mmdb").await;
    assert_eq!(db, testdata::mmdb());
    let s = p.status("blocklist");
    let published = s.published_version.unwrap();
    assert_eq!(
        s.current.as_ref().unwrap().summary,
        "4 addresses or networks"
    );
    assert_eq!(
        s.published_sha256,
        Some(sha256_hex(testdata::DROP_LIST.as_bytes()))
    );

    // The same content again: nothing new is signed.
    let lines = fetch(&p, &["blocklist"]).await.unwrap();
    assert!(lines[0].contains("unchanged"), "{lines:?}");
    assert_eq!(p.status("blocklist").published_version, Some(published));

    // A new list: a new target version, a new timestamp.
    let newer = format!("{}203.0.113.128/25 ; SBL000005\n", testdata::DROP_LIST);
    p.serve_list(&up, newer.as_bytes());
    fetch(&p, &["blocklist"]).await.unwrap();
    assert!(p.status("blocklist").published_version.unwrap() > published);
    assert_eq!(
        p.client_gets("feeds/blocklist/drop.txt").await,
        newer.as_bytes()
    );
    let report = tokio::task::spawn_blocking({
        let (dir, root) = (p.repo.dir().to_owned(), p.repo.root_path());
        move || {
            onionpkg_repo::verify::verify_tree(
                &dir,
                &std::fs::read(root).unwrap(),
                Timestamp::now(),
            )
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        report
            .targets
            .iter()
            .filter(|(role, ..)| role == "feeds")
            .count(),
        3
    );

    // Unknown feed names are a usage error, before any request.
    let before = up.requests();
    let e = fetch(&p, &["nosuchfeed"]).await.unwrap_err();
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 11, "{e}");
    assert_eq!(up.requests(), before);
}

/// Fetches `name` expecting a failure that mentions `needle`; the current
/// version stays, the status says why, and no temp file is left.
pub async fn fails_and_keeps(p: &Primary, name: &str, needle: &str) {
    let good = p.status(name).current.unwrap();
    let e = fetch(p, &[name]).await.unwrap_err();
    assert_eq!(onionpkg_mirror::cli::exit_code(&e), 6);
    assert!(e.to_string().contains(needle), "{needle}: {e}");
    let s = p.status(name);
    assert_eq!(s.current.as_ref(), Some(&good));
    assert!(s.last_error.as_deref().unwrap().contains(needle), "{s:?}");
    assert!(s.last_error_at.is_some());
    let store = FeedStore::new(&p.state, name);
    assert_eq!(
        std::fs::read(store.version_path(&good.sha256))
            .unwrap()
            .len() as u64,
        good.size
    );
    let leftovers: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".download-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let report = feeds_status(&p.config).unwrap();
    let line = report.iter().find(|r| r.name == name).unwrap().to_string();
    assert!(
        line.contains("last fetch failed") && line.contains(needle),
        "{line}"
    );
}

/// A gzip member holding a tar archive with one entry, `../x`: appended to
/// an archive, `tar xzf` would unpack it after the rest.
fn gzip_member_climbing_out() -> Vec<u8> {
    use std::io::Write as _;
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..4].copy_from_slice(b"../x");
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(header.as_bytes()).unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_leaves_the_last_good_version() {
    let mut up = Upstream::start().await;
    let cap = 64 * 1024;
    let p = Primary::new(&up, false, cap);
    p.serve_all(&up);
    fetch(&p, &[]).await.unwrap();
    // Without [feeds.publish], nothing is signed.
    assert_eq!(p.status("blocklist").published_version, None);

    // Garbage: an HTML error page with a matching checksum.
    p.serve_list(&up, b"<html><body>503 Service Unavailable</body></html>\n");
    fails_and_keeps(&p, "blocklist", "content check failed").await;
    // A list whose checksum does not match.
    p.serve_list(&up, b"192.0.2.77\n");
    up.set(
        "/drop.txt.sha256",
        Reply::Body(format!("{}\n", "0".repeat(64)).into_bytes()),
    );
    fails_and_keeps(&p, "blocklist", "checksum").await;
    // Endless: the cap holds.
    up.set("/drop.txt", Reply::Endless);
    fails_and_keeps(&p, "blocklist", &format!("cap of {cap} bytes")).await;
    // An error status.
    up.set("/drop.txt", Reply::Status(404));
    fails_and_keeps(&p, "blocklist", "404").await;
    // Rules signed by another key.
    let archive = testdata::rules_tar_gz().unwrap();
    let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let sig = minisign::sign(Some(&other.pk), &other.sk, &archive[..], None, None).unwrap();
    up.set(
        "/rules.tar.gz.minisig",
        Reply::Body(sig.into_string().into_bytes()),
    );
    fails_and_keeps(&p, "rules", "signature").await;
    // Rules tampered after signing.
    p.serve_rules(&up, &archive);
    let mut tampered = archive.clone();
    let n = tampered.len();
    tampered[n / 2] ^= 1;
    up.set("/rules.tar.gz", Reply::Body(tampered));
    fails_and_keeps(&p, "rules", "signature").await;
    // Validly signed, with a second gzip member that climbs out.
    let mut two = archive.clone();
    two.extend(gzip_member_climbing_out());
    p.serve_rules(&up, &two);
    fails_and_keeps(&p, "rules", "'..'").await;
    // The upstream is down.
    up.task.abort();
    let _ = (&mut up.task).await;
    fails_and_keeps(&p, "geoip", "upstream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_is_no_proxy() {
    let up = Upstream::start().await;
    let p = Primary::new(&up, true, 1 << 20);
    p.serve_all(&up);
    fetch(&p, &[]).await.unwrap();
    let config = onionpkg_config::load_mirror(&p.config).unwrap();
    let mirror = Mirror::start(&config).await.unwrap();
    let addr = mirror.http_addr().unwrap();
    let before = up.requests();
    let host = format!("127.0.0.1:{}", up.addr.port());
    for request in [
        "GET /drop.txt HTTP/1.1\r\nHost: m\r\n".to_owned(),
        "GET /feeds/blocklist/drop.txt HTTP/1.1\r\nHost: m\r\n".to_owned(),
        "GET /targets/feeds/blocklist/drop.txt HTTP/1.1\r\nHost: m\r\n".to_owned(),
        "GET /targets/feeds/other/x.txt HTTP/1.1\r\nHost: m\r\n".to_owned(),
        format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", up.url("/drop.txt")),
        format!("GET http://{host}/drop.txt HTTP/1.1\r\nHost: {host}\r\n"),
        format!("GET /drop.txt HTTP/1.1\r\nHost: {host}\r\n"),
        format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n"),
        format!("GET /?url={} HTTP/1.1\r\nHost: m\r\n", up.url("/drop.txt")),
        format!(
            "GET /feeds?upstream={} HTTP/1.1\r\nHost: m\r\n",
            up.url("/db")
        ),
    ] {
        let r = raw(
            addr,
            format!("{request}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(r.status >= 400, "{request:?} got {}", r.status);
    }
    // The feed itself is served from the signed tree, not from upstream.
    let hashed = p.repo.hashed("feeds/blocklist/drop.txt");
    let r = get(addr, &format!("/targets/{hashed}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, testdata::DROP_LIST.as_bytes());
    assert_eq!(up.requests(), before, "a request reached the upstream");
    mirror.shutdown(WAIT).await;
}

/// The checksum documents and keys live next to the config; the test must
/// not leave them anywhere else.
#[test]
fn config_paths_resolve_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = dir.path();
    let c = crate::util::config(
        path,
        path,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[feeds]\nextra_ca = \"ca.pem\"\n\
         [feeds.publish]\nrepo = \"repo\"\nkeys = \"keys\"\n",
    );
    let config = onionpkg_config::load_mirror(&c).unwrap();
    assert_eq!(config.feeds.extra_ca.unwrap(), path.join("ca.pem"));
    let publish = config.feeds.publish.unwrap();
    assert_eq!(publish.repo, path.join("repo"));
    assert_eq!(publish.keys, Some(path.join("keys")));
}
