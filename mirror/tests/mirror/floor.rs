//! Version floors of feeds: a validly signed (or dated) version older than
//! the newest accepted one is a rollback, one of the same time with other
//! content a replay; either is refused, the last good version stays served,
//! and the status says why. The floor survives a restart; a damaged floor
//! file is an error.

use jiff::{SignedDuration, Timestamp};
use onionpkg_mirror::cli::feeds_status;
use onionpkg_mirror::feeds::floor::TimeSource;
use onionpkg_mirror::feeds::store::FeedStore;
use onionpkg_mirror::feeds::{FeedError, Feeds, Outcome};
use onionpkg_testkit::testdata;

use crate::feeds::{Primary, Reply, Upstream, fails_and_keeps};
use crate::util::WAIT;

/// A DROP list feed signed with minisign, beside the usual three.
const SIGNED_LIST: &str = r#"
[[feed]]
name = "signed-list"
upstream = "UPSTREAM/signed.txt"
signature_url = "UPSTREAM/signed.txt.minisig"
signature_key = "rules.pub"
check = "ip-list"
via_tor = false
"#;

fn primary(up: &Upstream, publish: bool) -> Primary {
    let more = SIGNED_LIST.replace("UPSTREAM", &up.url(""));
    Primary::with_feeds(up, publish, 1 << 20, &more)
}

/// Serves `list` as the signed list, signed with the trusted comment
/// `comment`.
fn serve_signed(p: &Primary, up: &Upstream, list: &str, comment: &str) {
    let sig = minisign::sign(
        Some(&p.minisign.pk),
        &p.minisign.sk,
        list.as_bytes(),
        Some(comment),
        None,
    )
    .unwrap();
    up.set("/signed.txt", Reply::Body(list.as_bytes().to_vec()));
    up.set(
        "/signed.txt.minisig",
        Reply::Body(sig.into_string().into_bytes()),
    );
}

/// minisign's default trusted comment for a file signed at `at`.
fn signed_at(at: Timestamp) -> String {
    format!("timestamp:{}\tfile:signed.txt\thashed", at.as_second())
}

/// A list with one network of its own, so each is distinct content.
fn list(n: u8) -> String {
    format!("{}198.51.100.{n}/32 ; SBL1{n:05}\n", testdata::DROP_LIST)
}

/// One fetch of `name` by a mirror started afresh from the configuration.
async fn fetch_one(p: &Primary, name: &str) -> Result<Outcome, FeedError> {
    let config = onionpkg_config::load_mirror(&p.config).unwrap();
    let feeds = Feeds::new(&config, None).unwrap();
    let feed = feeds.get(name).unwrap().clone();
    tokio::time::timeout(WAIT, feeds.fetch(&feed))
        .await
        .expect("the fetch within the deadline")
}

/// Seconds precision, as the signature and the status carry it.
fn ago(d: SignedDuration) -> Timestamp {
    Timestamp::from_second((Timestamp::now() - d).as_second()).unwrap()
}

/// The `feeds status` line of feed `name`.
fn status_line(p: &Primary, name: &str) -> String {
    feeds_status(&p.config)
        .unwrap()
        .iter()
        .find(|r| r.name == name)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_signed_list_is_a_rollback() {
    let up = Upstream::start().await;
    let p = primary(&up, true);
    let (last_year, yesterday, an_hour_ago) = (
        ago(SignedDuration::from_hours(365 * 24)),
        ago(SignedDuration::from_hours(24)),
        ago(SignedDuration::from_hours(1)),
    );
    serve_signed(&p, &up, &list(1), &signed_at(yesterday));
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Ok(Outcome::New(_))
    ));
    let current = p.status("signed-list").current.unwrap();
    let vt = current.version_time.as_ref().unwrap();
    assert_eq!(
        (vt.time, vt.from),
        (yesterday, TimeSource::MinisignTrustedComment)
    );
    let floor = FeedStore::new(&p.state, "signed-list")
        .floor()
        .unwrap()
        .unwrap();
    assert_eq!(
        (floor.time, floor.sha256.as_str()),
        (yesterday, current.sha256.as_str())
    );

    // Last year's list, validly signed last year: a rollback.
    serve_signed(&p, &up, &list(2), &signed_at(last_year));
    match fetch_one(&p, "signed-list").await {
        Err(FeedError::Rollback {
            version,
            from,
            floor,
        }) => {
            assert_eq!((version, floor), (last_year, yesterday));
            assert_eq!(from, TimeSource::MinisignTrustedComment);
        }
        other => panic!("{other:?}"),
    }
    let needle = format!("rollback refused: the new version is from {last_year}");
    fails_and_keeps(&p, "signed-list", &needle).await;
    let s = p.status("signed-list");
    let why = s.last_error.unwrap();
    assert!(why.contains(&yesterday.to_string()), "{why}");
    // Still served, and still what appliances verify.
    assert_eq!(
        p.client_gets("feeds/signed-list/signed.txt").await,
        list(1).as_bytes()
    );

    // Other content signed at the very time of the accepted version.
    serve_signed(&p, &up, &list(3), &signed_at(yesterday));
    match fetch_one(&p, "signed-list").await {
        Err(FeedError::Replay { version, .. }) => assert_eq!(version, yesterday),
        other => panic!("{other:?}"),
    }
    fails_and_keeps(&p, "signed-list", "replay refused").await;

    // A signature without a timestamp, once versions have one.
    serve_signed(&p, &up, &list(4), "signed without a time");
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Err(FeedError::Undated { .. })
    ));
    fails_and_keeps(&p, "signed-list", "no version time").await;

    // A time ahead of the clock would raise the floor past versions not
    // made yet.
    let tomorrow = ago(SignedDuration::from_hours(-24));
    serve_signed(&p, &up, &list(5), &signed_at(tomorrow));
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Err(FeedError::FromTheFuture { .. })
    ));
    fails_and_keeps(&p, "signed-list", "ahead of this host's clock").await;

    // The current content with an older signature is no rollback.
    serve_signed(&p, &up, &list(1), &signed_at(last_year));
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Ok(Outcome::Unchanged(_))
    ));

    // A newer version is accepted and raises the floor.
    serve_signed(&p, &up, &list(6), &signed_at(an_hour_ago));
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Ok(Outcome::New(_))
    ));
    let store = FeedStore::new(&p.state, "signed-list");
    assert_eq!(store.floor().unwrap().unwrap().time, an_hour_ago);
    assert_eq!(
        p.client_gets("feeds/signed-list/signed.txt").await,
        list(6).as_bytes()
    );
    let line = status_line(&p, "signed-list");
    assert!(
        line.contains(&format!(
            "version time {an_hour_ago} (minisign trusted comment)"
        )) && line.contains(&format!("version floor {an_hour_ago}")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_mmdb_is_a_rollback() {
    let up = Upstream::start().await;
    let p = Primary::new(&up, false, 1 << 20);
    let built = testdata::MMDB_BUILD_EPOCH;
    up.set("/db", Reply::Body(testdata::mmdb_built_at(built)));
    assert!(matches!(fetch_one(&p, "geoip").await, Ok(Outcome::New(_))));
    let at = |epoch: u64| Timestamp::from_second(epoch as i64).unwrap();
    let vt = p.status("geoip").current.unwrap().version_time.unwrap();
    assert_eq!((vt.time, vt.from), (at(built), TimeSource::MmdbBuildEpoch));

    // Last week's database.
    let older = built - 7 * 86_400;
    up.set("/db", Reply::Body(testdata::mmdb_built_at(older)));
    match fetch_one(&p, "geoip").await {
        Err(FeedError::Rollback {
            version,
            from,
            floor,
        }) => {
            assert_eq!((version, floor), (at(older), at(built)));
            assert_eq!(from, TimeSource::MmdbBuildEpoch);
        }
        other => panic!("{other:?}"),
    }
    fails_and_keeps(&p, "geoip", "(mmdb build_epoch), older than").await;
    assert_eq!(
        std::fs::read(
            FeedStore::new(&p.state, "geoip")
                .version_path(&p.status("geoip").current.unwrap().sha256)
        )
        .unwrap(),
        testdata::mmdb_built_at(built)
    );

    // A newer build passes.
    up.set("/db", Reply::Body(testdata::mmdb_built_at(built + 86_400)));
    assert!(matches!(fetch_one(&p, "geoip").await, Ok(Outcome::New(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_without_a_version_time_have_no_floor_and_say_so() {
    let up = Upstream::start().await;
    let p = Primary::new(&up, false, 1 << 20);
    p.serve_all(&up);
    fetch_one(&p, "blocklist").await.unwrap();
    let s = p.status("blocklist");
    assert_eq!(s.current.unwrap().version_time, None);
    assert_eq!(FeedStore::new(&p.state, "blocklist").floor().unwrap(), None);
    let line = status_line(&p, "blocklist");
    assert!(line.contains("no version floor"), "{line}");
    // Any list with a good checksum is taken, older or not.
    p.serve_list(&up, b"192.0.2.1\n");
    assert!(matches!(
        fetch_one(&p, "blocklist").await,
        Ok(Outcome::New(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_survives_a_restart_and_a_damaged_one_is_an_error() {
    let up = Upstream::start().await;
    let p = primary(&up, false);
    let yesterday = ago(SignedDuration::from_hours(24));
    serve_signed(&p, &up, &list(1), &signed_at(yesterday));
    {
        let config = onionpkg_config::load_mirror(&p.config).unwrap();
        let feeds = Feeds::new(&config, None).unwrap();
        let feed = feeds.get("signed-list").unwrap().clone();
        feeds.fetch(&feed).await.unwrap();
    }
    // A new mirror process over the same state: the floor holds.
    let last_month = ago(SignedDuration::from_hours(30 * 24));
    serve_signed(&p, &up, &list(2), &signed_at(last_month));
    assert!(matches!(
        fetch_one(&p, "signed-list").await,
        Err(FeedError::Rollback { .. })
    ));

    // A damaged floor file is an error, never an absent floor.
    let store = FeedStore::new(&p.state, "signed-list");
    let floor_file = store.dir().join("floor.json");
    std::fs::write(&floor_file, b"{\"time\": \"not a ti").unwrap();
    match fetch_one(&p, "signed-list").await {
        Err(FeedError::Local(onionpkg_mirror::Error::DamagedFloor { path, .. })) => {
            assert_eq!(path, floor_file);
        }
        other => panic!("{other:?}"),
    }
    fails_and_keeps(&p, "signed-list", "version floor").await;
    let e = store.floor().unwrap_err().to_string();
    assert!(
        e.contains("damaged") && e.contains(&floor_file.display().to_string()),
        "{e}"
    );
    // The status report shows it too.
    let line = status_line(&p, "signed-list");
    assert!(line.contains("version floor unreadable"), "{line}");
}
