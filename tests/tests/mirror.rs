//! End-to-end: onionpkg-mirror serves a signed repository as an onion
//! service (and over HTTPS) on a private Tor network; curl through C tor
//! fetches its metadata and a package, and the fetcher's transports fetch and
//! verify the same package via embedded arti and via C tor's SOCKS port from
//! the onion service, and over clearnet HTTPS.
//!
//! The repository comes the way it would in production: a primary (a
//! mirror holding the online keys) fetches two feeds from an HTTPS upstream
//! on loopback, checks them and publishes them as `feeds` targets; the
//! onion mirror syncs from the primary, verifying; and every transport also
//! fetches and verifies a feed from the onion mirror. Three of the feeds are
//! real: IPFire's location database (Debian's `libloc-database`), checked
//! against its own signature by the primary, and Tor's `geoip` and `geoip6`
//! (Debian's `tor-geoipdb`), checked line by line. An appliance
//! (`onionpkg-fetch` in tor mode) syncs all three from the onion service:
//! the bytes in its output are the originals, it runs the database's
//! `on_update` action (libloc's own `location verify`), and `location
//! lookup` answers from the synced file as from the original. The sync is
//! retried a bounded number of times after a broken transfer, never after
//! a refusal.
//!
//! One network for this test binary, torn down at the end; afterwards the
//! test checks that no tor of this run is left.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "test code: a panic or a printed line is the report"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use onionpkg_config::common::WebUrl;
use onionpkg_net::http::{HttpUrl, Limits};
use onionpkg_net::remote::RemoteRepository;
use onionpkg_net::tor::{Purpose, TorTransport};
use onionpkg_net::transport::{SocksTransport, Tls, Transport};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_testkit::TestCa;
use onionpkg_testkit::retry::retry;
use onionpkg_testkit::testdata;
use onionpkg_tests::testnet::arti::{BOOTSTRAP_TIMEOUT, bootstrap_arti};
use onionpkg_tests::testnet::curl::ONION_DEADLINE;
use onionpkg_tests::testnet::{TestNet, TestNetOptions};
use onionpkg_trust::metadata::Client;

const PACKAGE: &[u8] = b"a package delivered over an onion service\n";
/// One fetch attempt.
const ATTEMPT: Duration = Duration::from_secs(20);
/// Polling interval of the retry loops.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// IPFire's database and public key, where Debian's `libloc-database` and
/// `location` put them.
const LOCATION_DB: &str = "/usr/share/libloc-location/location.db";
const IPFIRE_KEY: &str = "/var/lib/location/signing-key.pem";
/// Tor's GeoIP files, where Debian's `tor-geoipdb` puts them.
const TOR_GEOIP: &str = "/usr/share/tor/geoip";
const TOR_GEOIP6: &str = "/usr/share/tor/geoip6";
/// The real feeds the appliance syncs: (feed name, file name, original).
const REAL_FEEDS: [(&str, &str, &str); 3] = [
    ("location", "location.db", LOCATION_DB),
    ("tor-geoip", "geoip", TOR_GEOIP),
    ("tor-geoip6", "geoip6", TOR_GEOIP6),
];
/// One run of the appliance's `feeds sync`: 80 MB over an onion service.
const SYNC_ATTEMPT: Duration = Duration::from_secs(900);
/// Runs of `feeds sync` before a broken transfer fails the test. The mirror
/// keeps a connection open as long as bytes move, so one run normally
/// suffices; a run broken by the network is resumed by the next one with
/// `Range` requests, keeping the files already verified.
const SYNC_ATTEMPTS: u32 = 3;

/// A signed repository with one package; returns its dir and the package's
/// consistent path under `targets/`.
fn make_repo(dir: &Path) -> (PathBuf, String) {
    let repo = RepoDir::new(dir.join("repo"));
    let keys = KeyDir::new(dir.join("keys"), None);
    let now = jiff::Timestamp::now();
    repo.init(&keys, &InitOptions::default(), &Expiries::default(), now)
        .unwrap();
    let input = dir.join("input");
    std::fs::write(&input, PACKAGE).unwrap();
    repo.add_target(&input, "pkg/onion-1.0.tar", &Default::default(), "targets")
        .unwrap();
    repo.publish(&keys, &Expiries::default(), &[], now).unwrap();
    let name = std::fs::read_dir(repo.targets_dir().join("pkg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(".onion-1.0.tar"))
        .unwrap();
    (repo.dir().to_owned(), format!("pkg/{name}"))
}

/// The upstream's files by path: a DROP-style list, a GeoIP database, and
/// the real feeds (IPFire's location database, Tor's GeoIP files) at
/// `/` and their file names.
fn upstream_files() -> anyhow::Result<HashMap<String, bytes::Bytes>> {
    let mut files = HashMap::from([
        (
            "/drop.txt".to_owned(),
            bytes::Bytes::from(testdata::DROP_LIST),
        ),
        (
            "/GeoLite2-Country.mmdb".to_owned(),
            bytes::Bytes::from(testdata::mmdb()),
        ),
    ]);
    for (_, file, original) in REAL_FEEDS {
        let bytes = std::fs::read(original).with_context(|| {
            format!("{original}: install Debian's libloc-database, location and tor-geoipdb")
        })?;
        files.insert(format!("/{file}"), bytes.into());
    }
    Ok(files)
}

/// A feed upstream: HTTPS on loopback with the test CA's certificate,
/// serving `files` by path. Runs until the runtime ends.
async fn feed_upstream(
    tls: Arc<rustls::ServerConfig>,
    files: Arc<HashMap<String, bytes::Bytes>>,
) -> anyhow::Result<SocketAddr> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let files = Arc::clone(&files);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let body = files.get(req.uri().path()).cloned();
                        let mut r = hyper::Response::new(http_body_util::Full::new(
                            body.clone().unwrap_or_default(),
                        ));
                        if body.is_none() {
                            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                        }
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Writes the primary's configuration: it serves the repository at `root`
/// over HTTP on loopback and publishes five feeds from `upstream`: a list,
/// a GeoIP database, IPFire's location database, checked with IPFire's key,
/// and Tor's `geoip` and `geoip6`, checked line by line.
fn write_primary_config(dir: &Path, root: &Path, upstream: SocketAddr) -> PathBuf {
    let path = dir.join("primary.toml");
    std::fs::write(
        &path,
        format!(
            "root = {root:?}\nstate_dir = \"primary-state\"\n\
             [listen]\nhttp = \"127.0.0.1:0\"\n\
             [feeds]\nextra_ca = \"ca.pem\"\n\
             [feeds.publish]\nrepo = {root:?}\nkeys = \"keys\"\n\
             [[feed]]\nname = \"blocklist\"\nupstream = \"https://{upstream}/drop.txt\"\n\
             check = \"ip-list\"\nvia_tor = false\n\
             [[feed]]\nname = \"geoip\"\nupstream = \"https://{upstream}/GeoLite2-Country.mmdb\"\n\
             check = \"mmdb\"\nvia_tor = false\n\
             [[feed]]\nname = \"location\"\nupstream = \"https://{upstream}/location.db\"\n\
             check = \"libloc\"\nlibloc_key = {IPFIRE_KEY:?}\nvia_tor = false\n\
             [[feed]]\nname = \"tor-geoip\"\nupstream = \"https://{upstream}/geoip\"\n\
             check = \"tor-geoip\"\nvia_tor = false\n\
             [[feed]]\nname = \"tor-geoip6\"\nupstream = \"https://{upstream}/geoip6\"\n\
             check = \"tor-geoip6\"\nvia_tor = false\n",
            root = root.display().to_string(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn mirror_serves_its_onion_service() {
    onionpkg_tests::trace_when_asked();
    let suite = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let (root, package) = make_repo(work.path());
    let served = work.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let state = work.path().join("state");
    let cfg_path = work.path().join("mirror.toml");
    let ca = TestCa::new();
    ca.write(work.path(), "").unwrap();
    let ca_pem = ca.ca_pem.clone();
    let pinned_root = std::fs::read(root.join("metadata/1.root.json")).unwrap();
    let upstream_files = Arc::new(upstream_files().expect("the real feeds"));

    let net = TestNet::start(&TestNetOptions::default()).expect("private tor network");
    println!(
        "network usable after {:.1}s",
        net.usable_after().as_secs_f64()
    );
    let socks = net.socks_addr().expect("a C tor client");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = (|| -> anyhow::Result<String> {
        // The primary fetches, checks and publishes the feeds; the onion
        // mirror syncs from it, verifying.
        let (primary, config, feeds) = rt.block_on(async {
            let upstream = feed_upstream(ca.server.clone(), Arc::clone(&upstream_files)).await?;
            let primary_cfg = write_primary_config(work.path(), &root, upstream);
            let primary =
                onionpkg_mirror::Mirror::start(&onionpkg_mirror::app::load_config(&primary_cfg)?)
                    .await?;
            let feeds = onionpkg_mirror::cli::feeds_fetch(&primary_cfg, &[]).await?;
            let primary_http = primary.http_addr().context("the primary's http listener")?;
            std::fs::write(
                &cfg_path,
                format!(
                    "root = {:?}\nstate_dir = {:?}\n[listen]\nhttps = \"127.0.0.1:0\"\n\
                     [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
                     [onion]\nenabled = true\nnickname = \"mirror\"\n\
                     [sync]\nupstream = \"https://primary.example/\"\n\
                     trust_root = \"repo/metadata/1.root.json\"\nvia_tor = false\n",
                    served.display().to_string(),
                    state.display().to_string()
                ),
            )?;
            let config = onionpkg_mirror::app::load_config(&cfg_path)?;
            // The primary is on loopback here: plain http, given as the
            // command line's `--upstream` would.
            let from = format!("http://{primary_http}/");
            let transport = onionpkg_mirror::sync::transport(
                &config,
                onionpkg_mirror::sync::tls(&config)?,
                None,
            )?;
            let clock = onionpkg_mirror::sync::clock_policy(&config)?;
            let synced = onionpkg_mirror::sync::sync_and_record(
                &config,
                Some(&from),
                &transport,
                &clock,
                None,
            )
            .await?;
            println!("feeds: {feeds:?}; mirror {synced}");
            anyhow::Ok((primary, config, feeds))
        })?;
        ensure!(
            feeds.len() == 5 && feeds.iter().all(|l| l.contains("new version")),
            "{feeds:?}"
        );
        let timestamp = std::fs::read(served.join("metadata/timestamp.json"))?;
        ensure!(timestamp == std::fs::read(root.join("metadata/timestamp.json"))?);

        let (mirror, address) = rt.block_on(async {
            let mut mirror = onionpkg_mirror::Mirror::start(&config).await?;
            let client =
                bootstrap_arti(net.network(), &work.path().join("host"), BOOTSTRAP_TIMEOUT).await?;
            let address = mirror.launch_onion(&client)?.to_owned();
            anyhow::Ok((mirror, address))
        })?;
        println!("mirror onion service at {address}");

        // An arti client first: C tor remembers an early descriptor miss
        // and would not ask again for a while.
        let probe = rt.block_on(bootstrap_arti(
            net.network(),
            &work.path().join("client"),
            BOOTSTRAP_TIMEOUT,
        ))?;
        let t = TorTransport::new(probe);
        let url = HttpUrl::parse(&format!("http://{address}/metadata/timestamp.json"))?;
        let limits = Limits {
            max_body: 1 << 20,
            timeout: ATTEMPT,
        };
        let probe_took = retry(ONION_DEADLINE, RETRY_EVERY, |_| {
            match rt.block_on(t.get(Purpose::Metadata, &url, &limits)) {
                Ok(r) if r.status == 200 && r.body == timestamp => Ok(()),
                Ok(r) => {
                    println!("    probe: status {}", r.status);
                    Err(format!("status {}", r.status))
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .map_err(|g| anyhow::anyhow!("arti probe: {}", g.last))?
        .elapsed;

        let curl = net.curl_until(&url.to_string(), &[], &timestamp)?;
        let pkg_url = format!("http://{address}/targets/{package}");
        net.curl_until(&pkg_url, &[], PACKAGE)?;
        net.curl_until(&pkg_url, &["-r", "2-8"], &PACKAGE[2..=8])?;
        let traversal = format!("http://{address}/metadata/%2e%2e/%2e%2e/mirror.toml");
        let out = Command::new("curl")
            .args([
                "-q",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--path-as-is",
            ])
            .args(["--max-time", &ATTEMPT.as_secs().to_string()])
            .arg("--socks5-hostname")
            .arg(socks.to_string())
            .arg(&traversal)
            .output()?;
        ensure!(
            out.stdout == b"400",
            "traversal over the onion: {:?}",
            out.stdout
        );

        // The fetcher's transports: the same package, verified, via arti and
        // via C tor's SOCKS port from the onion service, and over HTTPS.
        let tls = Tls::new(Some(ca_pem.as_bytes()))?;
        let onion_base = format!("http://{address}/");
        let https_addr = mirror.https_addr().context("an https listener")?;
        let https_base = format!("https://{https_addr}/");
        let ways = [
            (
                "arti, onion",
                Transport::Tor {
                    tor: t,
                    tls: tls.clone(),
                },
                &onion_base,
            ),
            (
                "C tor socks, onion",
                Transport::Socks {
                    socks: SocksTransport::new(socks),
                    tls: tls.clone(),
                },
                &onion_base,
            ),
            (
                "https",
                Transport::Https {
                    tls,
                    loopback_http: false,
                },
                &https_base,
            ),
        ];
        let mut fetched = Vec::new();
        for (name, transport, base) in ways {
            let transport = Arc::new(transport);
            // Retried until the deadline: a fresh circuit to an onion service
            // can fail on a busy test network.
            let bytes = retry(ONION_DEADLINE, RETRY_EVERY, |_| {
                rt.block_on(async {
                    let base = WebUrl::parse_local_base(base).map_err(anyhow::Error::msg)?;
                    let repo = RemoteRepository::new(Arc::clone(&transport), &base)?;
                    let mut client = Client::new(&pinned_root, None, repo)?;
                    let now = jiff::Timestamp::now();
                    client.refresh(now).await?;
                    let package = client.fetch_target("pkg/onion-1.0.tar", now).await?;
                    client.load_delegated("feeds", now).await?;
                    let feed = client.fetch_target("feeds/blocklist/drop.txt", now).await?;
                    anyhow::Ok((package, feed))
                })
                .inspect_err(|e| println!("    {name}: {e:#}"))
            })
            .map_err(|g| g.last.context(format!("fetching via {name}")))?
            .value;
            fetched.push((name, bytes));
        }
        for (name, (package, feed)) in &fetched {
            ensure!(package.as_slice() == PACKAGE, "{name}: different bytes");
            ensure!(
                feed.as_slice() == testdata::DROP_LIST.as_bytes(),
                "{name}: a different feed"
            );
        }

        // The appliance: onionpkg-fetch in tor mode syncs the real feeds
        // from the onion service, verified, and runs the database's
        // on_update action.
        let (app_took, action) = appliance_syncs_feeds(&rt, &net, work.path(), &address)?;

        let text = mirror.metrics().render();
        ensure!(text.contains("onionpkg_mirror_onion_state 2"), "{text}");
        let status = onionpkg_mirror::cli::status(&cfg_path)?;
        ensure!(status.onion_address.as_deref() == Some(address.as_str()));
        ensure!(
            rt.block_on(mirror.shutdown(Duration::from_secs(10))),
            "connections left at shutdown"
        );
        rt.block_on(primary.shutdown(Duration::from_secs(10)));
        Ok(format!(
            "feeds published by the primary and synced; arti probe {:.1}s, curl metadata after {} attempt(s) in {:.1}s, package, range, traversal refused; the package and a feed via arti, C tor's SOCKS port and HTTPS identical and verified; IPFire's location database and Tor's geoip and geoip6 synced by the appliance over Tor, identical, {app_took}, {action}, and location lookup 1.1.1.1 answers as from the original",
            probe_took.as_secs_f64(),
            curl.attempts,
            curl.elapsed.as_secs_f64(),
        ))
    })();
    rt.shutdown_timeout(Duration::from_secs(5));
    if result.is_err() {
        net.print_log_tails(40);
    }
    let leftovers = net.shutdown();
    println!("total {:.1}s", suite.elapsed().as_secs_f64());
    assert!(leftovers.is_empty(), "tor processes left: {leftovers:?}");
    println!("ok: {}", result.unwrap());
}

/// The bytes of the files below `dir`: what an appliance's runs left there.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// `location --database DB lookup 1.1.1.1`: libloc's own answer.
fn location_lookup(db: &Path) -> anyhow::Result<String> {
    let out = Command::new("/usr/bin/location")
        .arg("--database")
        .arg(db)
        .args(["lookup", "1.1.1.1"])
        .output()
        .context("running Debian's location")?;
    ensure!(
        out.status.success(),
        "location lookup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How one run of `feeds sync` failed.
#[derive(Debug)]
enum SyncFailure {
    /// The transfer broke (exit 6, unreachable, or 7, Tor) or the run
    /// passed its deadline: worth another run.
    Transport(String),
    /// Anything else, a verification failure above all: never retried.
    Refused { code: u8, stderr: String },
}

/// One run of `onionpkg-fetch --config CFG feeds sync FEEDS…` on `rt`
/// within [`SYNC_ATTEMPT`]; returns its stdout.
fn feeds_sync_once(rt: &tokio::runtime::Runtime, cfg: &Path) -> Result<String, SyncFailure> {
    let args = ["onionpkg-fetch", "--config"]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([cfg.as_os_str()])
        .chain(["feeds", "sync"].map(std::ffi::OsStr::new))
        .chain(REAL_FEEDS.map(|(name, ..)| std::ffi::OsStr::new(name)));
    let cli = <onionpkg_fetcher::cli::Cli as clap::Parser>::try_parse_from(args).map_err(|e| {
        SyncFailure::Refused {
            code: onionpkg_core::exit::USAGE,
            stderr: e.to_string(),
        }
    })?;
    let out = rt
        .block_on(async {
            tokio::time::timeout(SYNC_ATTEMPT, onionpkg_fetcher::cli::run(cli)).await
        })
        .map_err(|_| SyncFailure::Transport(format!("no end within {SYNC_ATTEMPT:?}")))?;
    let stderr = out.stderr.join("\n");
    match out.code {
        0 => Ok(out.stdout.join("\n")),
        onionpkg_core::exit::UNREACHABLE | onionpkg_core::exit::TOR => Err(SyncFailure::Transport(
            format!("exit {}: {}", out.code, stderr.trim()),
        )),
        code => Err(SyncFailure::Refused { code, stderr }),
    }
}

/// An appliance in tor mode (the private network) syncs the real feeds
/// from the onion mirror at `address` with `onionpkg-fetch feeds sync` (the
/// program's own `cli::run`, in this process, on `rt`): up to
/// runs each within its deadline, again after a run that reached nothing
/// (within the onion deadline) or one whose transfer broke (up to
/// [`SYNC_ATTEMPTS`] of those), never after a refusal; each failure
/// logged. Checks the files in its
/// output are the originals' bytes and each is reported synced, that the
/// database's `on_update` action (`location verify`, IPFire's key) ran,
/// and that `location lookup` gives the same answer from it as from the
/// original. Returns how the sync went and what the action did.
fn appliance_syncs_feeds(
    rt: &tokio::runtime::Runtime,
    net: &TestNet,
    work: &Path,
    address: &str,
) -> anyhow::Result<(String, String)> {
    let dir = work.join("appliance");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        work.join("repo/metadata/1.root.json"),
        dir.join("root.json"),
    )?;
    let cfg = dir.join("fetcher.toml");
    std::fs::write(
        &cfg,
        format!(
            "trust_root = \"root.json\"\nstate_dir = \"state\"\ncache_dir = \"cache\"\n\
             output_dir = \"out\"\ntransport = \"tor\"\nmain_mirrors = [\"http://{address}/\"]\n\
             [feeds.location]\non_update = [\"/usr/bin/location\", \"--quiet\", \"--database\", \
             \"{{file}}\", \"verify\"]\n{}",
            net.network().config_toml("60s")
        ),
    )?;
    // The binary builds its arti configuration from this file: check it
    // names only the private network before it starts.
    let parsed = onionpkg_config::load_fetcher(&cfg)?;
    let arti_cfg =
        onionpkg_net::tor::client_config(&onionpkg_net::tor::TorSettings::from(&parsed.tor))?;
    onionpkg_tests::testnet::arti::check_private(&arti_cfg)?;
    // A run that moved no byte (a fresh Tor client that cannot reach the
    // onion service yet) is retried within the onion deadline; a run that
    // broke after bytes arrived counts against SYNC_ATTEMPTS.
    let first = Instant::now();
    let mut broken = 0;
    let synced = retry(
        ONION_DEADLINE + SYNC_ATTEMPT * SYNC_ATTEMPTS,
        RETRY_EVERY,
        |attempt| {
            let start = Instant::now();
            let before = dir_size(&dir);
            match feeds_sync_once(rt, &cfg) {
                Ok(stdout) => Ok(Ok(stdout)),
                Err(SyncFailure::Transport(e)) => {
                    let moved = dir_size(&dir) > before;
                    broken += u32::from(moved);
                    println!(
                        "    appliance: feeds sync run {attempt} {} after {:.1}s: {e}",
                        if moved { "broke" } else { "reached nothing" },
                        start.elapsed().as_secs_f64()
                    );
                    if broken >= SYNC_ATTEMPTS || (!moved && first.elapsed() > ONION_DEADLINE) {
                        // Ends the loop with this failure.
                        return Ok(Err(SyncFailure::Transport(e)));
                    }
                    Err(e)
                }
                // Not worth retrying: ends the loop with the refusal.
                Err(refused) => Ok(Err(refused)),
            }
        },
    )
    .map_err(|g| anyhow::anyhow!("feeds sync over Tor: {g}"))?;
    let stdout = match synced.value {
        Ok(stdout) => stdout,
        Err(SyncFailure::Refused { code, stderr }) => {
            ensure!(
                code != onionpkg_core::exit::VERIFICATION,
                "the appliance refused what the mirror served (a verification failure, not \
                 retried): {stderr}"
            );
            anyhow::bail!("feeds sync over Tor failed with exit {code}, not retried: {stderr}");
        }
        Err(SyncFailure::Transport(e)) => anyhow::bail!("feeds sync over Tor: {e}"),
    };
    for (name, file, original) in REAL_FEEDS {
        let path = dir.join(format!("out/feeds/{name}/{file}"));
        ensure!(
            std::fs::read(&path)? == std::fs::read(original)?,
            "the synced {name} feed differs from {original}"
        );
        // "… verified (N bytes) from MIRROR", or "… already verified" for
        // a file a broken run had verified before.
        let reported = format!("feeds/{name}/{file} ");
        ensure!(
            stdout
                .lines()
                .any(|l| l.contains(&reported) && l.contains("verified")),
            "no report of {name}/{file} in: {stdout}"
        );
    }
    let action = stdout
        .lines()
        .find(|l| l.starts_with("on_update of feed location ran"))
        .with_context(|| format!("no on_update report in: {stdout}"))?
        .to_owned();
    let synced_db = dir.join("out/feeds/location/location.db");
    let (from_synced, from_original) = (
        location_lookup(&synced_db)?,
        location_lookup(Path::new(LOCATION_DB))?,
    );
    ensure!(
        from_synced == from_original && from_synced.contains("1.1.1.0/24"),
        "lookup differs: {from_synced:?} vs {from_original:?}"
    );
    Ok((
        format!(
            "{} run(s) of feeds sync in {:.1}s",
            synced.attempts,
            synced.elapsed.as_secs_f64()
        ),
        action,
    ))
}
