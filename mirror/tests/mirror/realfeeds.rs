//! Real feeds, checked as their authors check them: IPFire's signed location
//! database from Debian's `libloc-database` (its own signature against
//! IPFire's key, its `created_at` as the version floor), databases made by
//! libloc's own writer (`python3-location`) and signed with a test key, Tor's
//! `geoip` and `geoip6` from Debian's `tor-geoipdb`, and external checkers
//! in their sandbox.
//!
//! The Debian packages are installed by `tests/run.sh` (location,
//! libloc-database, python3-location, tor-geoipdb, bubblewrap, faketime);
//! the 55 MB database is read from where Debian puts it, never copied into
//! the repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use onionpkg_mirror::feeds::floor::TimeSource;
use onionpkg_mirror::feeds::store::FeedStore;
use p521::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

use crate::feeds::{Primary, Reply, Upstream, fails_and_keeps, fetch};

/// IPFire's database, as Debian's `libloc-database` installs it.
const LOCATION_DB: &str = "/usr/share/libloc-location/location.db";
/// IPFire's public key, as Debian's `location` installs it.
const IPFIRE_KEY: &str = "/var/lib/location/signing-key.pem";
/// Tor's GeoIP files, as Debian's `tor-geoipdb` installs them.
const TOR_GEOIP: &str = "/usr/share/tor/geoip";
const TOR_GEOIP6: &str = "/usr/share/tor/geoip6";
/// Fetching, checking and publishing 55 MB in a debug build.
const BIG_WAIT: Duration = Duration::from_secs(300);

fn installed(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e}; install Debian's location, libloc-database and tor-geoipdb")
    })
}

async fn fetch_big(p: &Primary, name: &str) -> Result<Vec<String>, onionpkg_mirror::Error> {
    tokio::time::timeout(
        BIG_WAIT,
        onionpkg_mirror::cli::feeds_fetch(&p.config, &[name.to_owned()]),
    )
    .await
    .expect("feeds fetch within the deadline")
}

/// A feed section fetching `path` from `up` with the given checks.
fn feed(up: &Upstream, name: &str, path: &str, checks: &str) -> String {
    format!(
        "\n[[feed]]\nname = \"{name}\"\nupstream = \"{}\"\nvia_tor = false\n\
         max_size = 104857600\n{checks}\n",
        up.url(path)
    )
}

/// A libloc signing key (ECDSA P-521, as IPFire's): the private key file
/// libloc's writer reads, and the public key file a feed is configured with.
fn libloc_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let secret = p521::SecretKey::random(&mut rand_core::OsRng);
    let private = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pem"));
    std::fs::write(&private, secret.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
    std::fs::write(
        &public,
        secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

/// A libloc database made by libloc's own writer (Debian's
/// `python3-location`), signed with `private`, with the `created_at` of
/// `at`: the writer takes the time from the clock, so libfaketime sets it,
/// stopped there (`-f` with an absolute date; without `-f` the clock runs
/// on from `at` and may pass the next second before the writer reads it).
fn libloc_db(private: &Path, at: Timestamp, out: &Path) -> Vec<u8> {
    let script = r#"
import sys, location
with open(sys.argv[1]) as key:
    w = location.Writer(key)
w.vendor = "onionpkg test"
w.description = "a test database made by libloc's writer"
w.license = "CC0"
c = w.add_country("DE"); c.continent_code = "EU"; c.name = "Germany"
a = w.add_as(64496); a.name = "Documentation AS"
n = w.add_network("192.0.2.0/24"); n.country_code = "DE"; n.asn = 64496
w.write(sys.argv[2])
"#;
    let at = at.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let out_status = std::process::Command::new("faketime")
        .env("TZ", "UTC")
        .arg("-f")
        .arg(&at)
        .args(["/usr/bin/python3", "-c", script])
        .arg(private)
        .arg(out)
        .output()
        .expect("faketime and python3-location must be installed");
    assert!(
        out_status.status.success(),
        "{}",
        String::from_utf8_lossy(&out_status.stderr)
    );
    std::fs::read(out).unwrap()
}

/// `location --database DB --public-key KEY verify`: libloc's own verdict.
fn location_verifies(db: &Path, key: &Path) -> bool {
    std::process::Command::new("/usr/bin/location")
        .arg("--quiet")
        .arg("--database")
        .arg(db)
        .arg("--public-key")
        .arg(key)
        .arg("verify")
        .output()
        .expect("Debian's location must be installed")
        .status
        .success()
}

fn version_time(p: &Primary, name: &str) -> (Timestamp, TimeSource) {
    let vt = p
        .status(name)
        .current
        .unwrap()
        .version_time
        .expect("a version time");
    (vt.time, vt.from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfires_location_database_is_verified_by_its_own_signature() {
    let up = Upstream::start().await;
    let real = installed(LOCATION_DB);
    let more = feed(
        &up,
        "location",
        "/location.db",
        &format!("check = \"libloc\"\nlibloc_key = \"{IPFIRE_KEY}\""),
    );
    let p = Primary::with_feeds(&up, true, 1 << 20, &more);
    up.set("/location.db", Reply::Body(real.clone()));
    let lines = fetch_big(&p, "location").await.unwrap();
    assert!(lines[0].contains("new version"), "{lines:?}");
    let s = p.status("location");
    let summary = &s.current.as_ref().unwrap().summary;
    assert!(
        summary.starts_with("libloc database by IPFire Project, created 2022-10-29T05:59:54Z"),
        "{summary}"
    );
    assert_eq!(
        version_time(&p, "location"),
        (
            "2022-10-29T05:59:54Z".parse().unwrap(),
            TimeSource::LiblocCreatedAt
        )
    );
    // Published: an appliance gets IPFire's file, byte for byte.
    assert!(p.client_gets("feeds/location/location.db").await == real);

    // One byte changed: the signature no longer verifies; the last good
    // version stays stored and served.
    let mut tampered = real.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    up.set("/location.db", Reply::Body(tampered));
    fails_and_keeps_big(
        &p,
        "location",
        "does not verify against the configured libloc_key",
    )
    .await;
    assert!(p.client_gets("feeds/location/location.db").await == real);
    // A byte of the header, which the signature covers too.
    let mut tampered = real.clone();
    tampered[8 + 16] ^= 0x01;
    up.set("/location.db", Reply::Body(tampered));
    fails_and_keeps_big(&p, "location", "does not verify").await;

    // Cut short: the header names sections past the end of the file.
    up.set("/location.db", Reply::Body(real[..1 << 20].to_vec()));
    fails_and_keeps(&p, "location", "lies outside the file").await;

    // A valid libloc database, newer, signed by another key.
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = libloc_keypair(dir.path(), "other");
    let foreign = libloc_db(&other, Timestamp::now(), &dir.path().join("foreign.db"));
    up.set("/location.db", Reply::Body(foreign));
    fails_and_keeps(
        &p,
        "location",
        "does not verify against the configured libloc_key",
    )
    .await;
    assert!(p.client_gets("feeds/location/location.db").await == real);
}

/// [`fails_and_keeps`] for a feed too large to fetch within its deadline.
async fn fails_and_keeps_big(p: &Primary, name: &str, needle: &str) {
    let good = p.status(name).current.unwrap();
    let e = fetch_big(p, name).await.unwrap_err();
    assert!(e.to_string().contains(needle), "{needle}: {e}");
    assert_eq!(p.status(name).current.as_ref(), Some(&good));
    assert!(
        FeedStore::new(&p.state, name)
            .version_path(&good.sha256)
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libloc_database_older_than_the_last_one_is_a_rollback() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = libloc_keypair(dir.path(), "test");
    let more = feed(
        &up,
        "testloc",
        "/test.db",
        &format!(
            "check = \"libloc\"\nlibloc_key = {:?}",
            public.display().to_string()
        ),
    );
    let p = Primary::with_feeds(&up, true, 1 << 20, &more);
    // Whole seconds: the writer's created_at has no fraction, and faketime
    // is given the time to the second.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let day = jiff::SignedDuration::from_hours(24);
    let newer_at = now - day;
    let newer = libloc_db(&private, newer_at, &dir.path().join("newer.db"));
    // libloc itself accepts what the writer made, and so does the mirror.
    assert!(location_verifies(&dir.path().join("newer.db"), &public));
    up.set("/test.db", Reply::Body(newer.clone()));
    let lines = fetch(&p, &["testloc"]).await.unwrap();
    assert!(lines[0].contains("new version"), "{lines:?}");
    assert_eq!(
        version_time(&p, "testloc"),
        (newer_at, TimeSource::LiblocCreatedAt)
    );
    assert!(p.client_gets("feeds/testloc/test.db").await == newer);

    // Made the same way, signed with the same key, a day older: a rollback.
    let older = libloc_db(&private, newer_at - day, &dir.path().join("older.db"));
    assert!(location_verifies(&dir.path().join("older.db"), &public));
    up.set("/test.db", Reply::Body(older));
    fails_and_keeps(&p, "testloc", "rollback refused").await;
    assert!(p.client_gets("feeds/testloc/test.db").await == newer);

    // Newer again: accepted, and the floor moves up.
    let newest = libloc_db(&private, now, &dir.path().join("newest.db"));
    up.set("/test.db", Reply::Body(newest.clone()));
    fetch(&p, &["testloc"]).await.unwrap();
    let floor = FeedStore::new(&p.state, "testloc")
        .floor()
        .unwrap()
        .unwrap();
    assert_eq!(floor.time, now);
    assert!(p.client_gets("feeds/testloc/test.db").await == newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tors_geoip_files_are_checked_line_by_line() {
    let up = Upstream::start().await;
    let (v4, v6) = (installed(TOR_GEOIP), installed(TOR_GEOIP6));
    let more = format!(
        "{}{}",
        feed(&up, "tor-geoip", "/geoip", "check = \"tor-geoip\""),
        feed(&up, "tor-geoip6", "/geoip6", "check = \"tor-geoip6\"")
    );
    let p = Primary::with_feeds(&up, true, 1 << 20, &more);
    up.set("/geoip", Reply::Body(v4.clone()));
    up.set("/geoip6", Reply::Body(v6.clone()));
    fetch_big(&p, "tor-geoip").await.unwrap();
    fetch_big(&p, "tor-geoip6").await.unwrap();
    for (name, file, bytes) in [("tor-geoip", "geoip", &v4), ("tor-geoip6", "geoip6", &v6)] {
        let summary = p.status(name).current.unwrap().summary;
        assert!(summary.starts_with("Tor GeoIP file, "), "{summary}");
        let (_, from) = version_time(&p, name);
        assert_eq!(from, TimeSource::TorGeoipGenerated);
        assert!(p.client_gets(&format!("feeds/{name}/{file}")).await == *bytes);
    }
    // The date is the export's, from the file's comments.
    let text = String::from_utf8_lossy(&v4[..4096]).into_owned();
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("# Generated:"))
        .expect("Debian's geoip names its export date")
        .trim()
        .to_owned();
    let (time, _) = version_time(&p, "tor-geoip");
    assert_eq!(
        time,
        jiff::fmt::rfc2822::parse(&generated).unwrap().timestamp()
    );

    // One malformed line refuses the file, by its number.
    let mut lines: Vec<&[u8]> = v4.split(|b| *b == b'\n').collect();
    lines[29] = b"16777216,16777471";
    let broken = lines.join(&b'\n');
    up.set("/geoip", Reply::Body(broken));
    fails_and_keeps(&p, "tor-geoip", "line 30: \"16777216,16777471\"").await;
    // An IPv6 file served as the IPv4 one.
    up.set("/geoip", Reply::Body(v6.clone()));
    fails_and_keeps(&p, "tor-geoip", "32-bit integer").await;
    assert!(p.client_gets("feeds/tor-geoip/geoip").await == v4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_checkers_run_sandboxed_with_a_deadline() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = libloc_keypair(dir.path(), "test");
    let key = public.display().to_string();
    let python = |code: &str| format!("[\"/usr/bin/python3\", \"-c\", {code:?}, \"{{file}}\"]");
    let probe = format!(
        "import socket, sys\n\
         try:\n    socket.create_connection(('127.0.0.1', {}), timeout=5)\n\
         except OSError as e:\n    print('no network:', e, file=sys.stderr); sys.exit(3)\n",
        up.addr.port()
    );
    let more = [
        // The real `location verify`, as an external checker of a libloc
        // database, the key read-only in the sandbox.
        feed(
            &up,
            "loc-ext",
            "/test.db",
            &format!(
                "check = \"external\"\nchecker = [\"/usr/bin/location\", \"--quiet\", \
                 \"--database\", \"{{file}}\", \"--public-key\", {key:?}, \"verify\"]\n\
                 checker_paths = [{key:?}]"
            ),
        ),
        feed(
            &up,
            "slow",
            "/any",
            &format!(
                "check = \"any\"\nchecker = {}\nchecker_timeout = \"2s\"",
                python("import time; time.sleep(60)")
            ),
        ),
        feed(
            &up,
            "netprobe",
            "/any",
            &format!("check = \"any\"\nchecker = {}", python(&probe)),
        ),
        feed(
            &up,
            "writer",
            "/any",
            &format!(
                "check = \"any\"\nchecker = {}",
                python("import sys; open(sys.argv[1], 'a').write('x')")
            ),
        ),
        feed(
            &up,
            "loud",
            "/any",
            &format!(
                "check = \"any\"\nchecker = {}",
                python("import sys; print('x' * 100000); sys.exit(1)")
            ),
        ),
        feed(
            &up,
            "listcheck",
            "/any",
            &format!(
                "check = \"ip-list\"\nchecker = {}",
                python("import sys; sys.exit(0 if b'192.0.2.0/24' in open(sys.argv[1], 'rb').read() else 5)")
            ),
        ),
    ]
    .concat();
    let p = Primary::with_feeds(&up, false, 1 << 20, &more);
    let good = libloc_db(&private, Timestamp::now(), &dir.path().join("good.db"));
    up.set("/test.db", Reply::Body(good.clone()));
    up.set(
        "/any",
        Reply::Body(onionpkg_testkit::testdata::DROP_LIST.as_bytes().to_vec()),
    );

    // `location verify` passes the database its key signed...
    fetch(&p, &["loc-ext"]).await.unwrap();
    let summary = p.status("loc-ext").current.unwrap().summary;
    assert!(summary.ends_with("passed /usr/bin/location"), "{summary}");
    // ...and refuses it with one byte changed: exit code 1, reported.
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 100] ^= 1;
    up.set("/test.db", Reply::Body(tampered));
    fails_and_keeps(
        &p,
        "loc-ext",
        "the checker /usr/bin/location exited with code 1",
    )
    .await;

    // The built-in check runs first, then the checker; both pass here.
    fetch(&p, &["listcheck"]).await.unwrap();
    let summary = p.status("listcheck").current.unwrap().summary;
    assert_eq!(summary, "4 addresses or networks; passed /usr/bin/python3");

    // Killed at its deadline.
    let started = std::time::Instant::now();
    let e = fetch(&p, &["slow"]).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("did not finish within 2s and was killed"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // No network: the upstream listens on this host's loopback, which the
    // sandbox, with a network namespace of its own, does not reach.
    let e = fetch(&p, &["netprobe"]).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("exited with code 3") && msg.contains("no network"),
        "{msg}"
    );
    // The file is read-only.
    let e = fetch(&p, &["writer"]).await.unwrap_err();
    assert!(e.to_string().contains("Read-only file system"), "{e}");
    // What a checker prints is capped in the status.
    let e = fetch(&p, &["loud"]).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exited with code 1: stdout: xxxx"), "{msg}");
    assert!(msg.len() < 2 * 4096 + 500, "{} bytes", msg.len());
    let s = p.status("loud");
    assert!(s.last_error.unwrap().contains("exited with code 1"));
}
