//! Tests of the mirror list format, its validation and the cache.

use jiff::SignedDuration;
use proptest::prelude::*;
use sha2::Sha256;

use super::*;
use onionpkg_core::url::WebUrl;

/// A fixed, random-looking ed25519 public key (any 32 bytes make a
/// syntactically valid address).
fn key(seed: &str) -> [u8; 32] {
    Sha256::digest(seed.as_bytes()).into()
}

fn onion_url(seed: &str) -> String {
    format!("http://{}/", onion_host(&key(seed)))
}

fn sample(version: u64) -> String {
    format!(
        r#"{{
  "version": {version},
  "expires": "2026-12-01T00:00:00Z",
  "mirrors": [
    {{
      "name": "primary",
      "clearnet": "https://mirror.example.org/onionpkg/",
      "onion": "{}",
      "region": "eu",
      "weight": 10
    }},
    {{ "name": "onion-only", "onion": "{}" }},
    {{ "name": "plain", "clearnet": "https://other.example.net:8443/pub/onionpkg/" }}
  ]
}}"#,
        onion_url("primary"),
        onion_url("second")
    )
}

fn parse_str(s: &str) -> Result<MirrorList, MirrorListError> {
    MirrorList::parse(s.as_bytes())
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn valid_list_round_trips() {
    let list = parse_str(&sample(3)).unwrap();
    assert_eq!(list.version(), 3);
    assert_eq!(list.expires(), ts("2026-12-01T00:00:00Z"));
    let [primary, onion_only, plain] = list.mirrors() else {
        panic!("three mirrors expected");
    };
    assert_eq!(primary.name(), "primary");
    assert_eq!(
        primary.clearnet().map(WebUrl::as_str),
        Some("https://mirror.example.org/onionpkg/")
    );
    assert_eq!(
        primary.onion().map(WebUrl::as_str),
        Some(onion_url("primary").as_str())
    );
    assert_eq!(primary.region(), Some("eu"));
    assert_eq!(primary.weight(), 10);
    assert_eq!(onion_only.clearnet(), None);
    assert_eq!(onion_only.region(), None);
    assert_eq!(onion_only.weight(), 1, "the default weight");
    assert_eq!(plain.onion(), None);
    assert_eq!(
        plain.clearnet().unwrap().as_str(),
        "https://other.example.net:8443/pub/onionpkg/"
    );

    let bytes = list.to_json_bytes();
    let again = MirrorList::parse(&bytes).unwrap();
    assert_eq!(again, list);
    assert_eq!(again.to_json_bytes(), bytes, "output is stable");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("{\n  \"version\": 3,\n  \"expires\": \"2026-12-01T00:00:00Z\","));
    assert!(text.ends_with("}\n"));

    let built = MirrorList::new(
        3,
        list.expires(),
        vec![
            Mirror::new(
                "primary",
                Some("https://mirror.example.org/onionpkg/"),
                Some(&onion_url("primary")),
                Some("eu"),
                10,
            )
            .unwrap(),
            Mirror::new("onion-only", None, Some(&onion_url("second")), None, 1).unwrap(),
            Mirror::new(
                "plain",
                Some("https://other.example.net:8443/pub/onionpkg/"),
                None,
                None,
                1,
            )
            .unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(built, list);
}

#[test]
fn each_validation_failure_has_its_error() {
    let good = sample(3);
    let primary = onion_url("primary");
    let clear = "https://mirror.example.org/onionpkg/";
    let with = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1)
    };
    type Check = fn(&MirrorListError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (with("\"version\": 3", "\"version\": 0"), |e| {
            matches!(e, MirrorListError::BadVersion)
        }),
        (with("\"version\": 3", "\"version\": -1"), |e| {
            matches!(e, MirrorListError::Json(_))
        }),
        (
            with("\"version\": 3", "\"version\": 3, \"extra\": 1"),
            |e| matches!(e, MirrorListError::Json(_)),
        ),
        (
            with("\"region\": \"eu\"", "\"region\": \"eu\", \"url\": \"x\""),
            |e| matches!(e, MirrorListError::Json(_)),
        ),
        (
            with("\"version\": 3", "\"version\": 3, \"version\": 4"),
            |e| matches!(e, MirrorListError::Json(_)),
        ),
        (
            with("2026-12-01T00:00:00Z", "2026-12-01T00:00:00.5Z"),
            |e| matches!(e, MirrorListError::BadTime { .. }),
        ),
        (with("2026-12-01T00:00:00Z", "2026-12-01 00:00:00Z"), |e| {
            matches!(e, MirrorListError::BadTime { .. })
        }),
        (
            with("2026-12-01T00:00:00Z", "2026-12-01T00:00:00+00:00"),
            |e| matches!(e, MirrorListError::BadTime { .. }),
        ),
        (with("2026-12-01T00:00:00Z", "2026-02-30T00:00:00Z"), |e| {
            matches!(e, MirrorListError::BadTime { .. })
        }),
        (with("2026-12-01T00:00:00Z", "2026-12-31T23:59:60Z"), |e| {
            matches!(e, MirrorListError::BadTime { .. })
        }),
        (
            r#"{"version": 1, "expires": "2026-12-01T00:00:00Z", "mirrors": []}"#.into(),
            |e| matches!(e, MirrorListError::NoMirrors),
        ),
        (with("\"primary\"", "\"Primary\""), |e| {
            matches!(e, MirrorListError::BadName { .. })
        }),
        (with("\"primary\"", "\"\""), |e| {
            matches!(e, MirrorListError::BadName { .. })
        }),
        (
            with("\"primary\"", &format!("\"{}\"", "a".repeat(65))),
            |e| matches!(e, MirrorListError::BadName { .. }),
        ),
        (
            with("\"primary\"", "\"plain\""),
            |e| matches!(e, MirrorListError::DuplicateName(n) if n == "plain"),
        ),
        (with("\"eu\"", "\"europe-west-north-1\""), |e| {
            matches!(e, MirrorListError::BadRegion { .. })
        }),
        (with("\"eu\"", "\"EU\""), |e| {
            matches!(e, MirrorListError::BadRegion { .. })
        }),
        (with("\"weight\": 10", "\"weight\": 0"), |e| {
            matches!(e, MirrorListError::BadWeight { weight: 0, .. })
        }),
        (with("\"weight\": 10", "\"weight\": 1001"), |e| {
            matches!(e, MirrorListError::BadWeight { weight: 1001, .. })
        }),
        (with("\"weight\": 10", "\"weight\": 70000"), |e| {
            matches!(e, MirrorListError::BadWeight { weight: 70000, .. })
        }),
        (
            with(
                &format!(
                    "{{ \"name\": \"onion-only\", \"onion\": \"{}\" }}",
                    onion_url("second")
                ),
                "{ \"name\": \"nothing\" }",
            ),
            |e| matches!(e, MirrorListError::NoUrl { .. }),
        ),
        (with(clear, "http://mirror.example.org/onionpkg/"), |e| {
            matches!(
                e,
                MirrorListError::WrongScheme {
                    field: "clearnet",
                    ..
                }
            )
        }),
        (with(clear, "ftp://mirror.example.org/onionpkg/"), |e| {
            matches!(e, MirrorListError::WrongScheme { .. })
        }),
        (with(clear, "not a url"), |e| {
            matches!(e, MirrorListError::UnparsableUrl { .. })
        }),
        (
            with(clear, "https://user:pw@mirror.example.org/onionpkg/"),
            |e| {
                matches!(
                    e,
                    MirrorListError::UrlExtra {
                        part: "userinfo",
                        ..
                    }
                )
            },
        ),
        (
            with(clear, "https://mirror.example.org/onionpkg/?a=b"),
            |e| matches!(e, MirrorListError::UrlExtra { part: "query", .. }),
        ),
        (with(clear, "https://mirror.example.org/onionpkg/?"), |e| {
            matches!(e, MirrorListError::UrlExtra { part: "query", .. })
        }),
        (
            with(clear, "https://mirror.example.org/onionpkg/#top"),
            |e| {
                matches!(
                    e,
                    MirrorListError::UrlExtra {
                        part: "fragment",
                        ..
                    }
                )
            },
        ),
        (with(clear, "https://mirror.example.org/onionpkg"), |e| {
            matches!(e, MirrorListError::NoTrailingSlash { .. })
        }),
        (
            with(clear, "https://Mirror.Example.org/onionpkg/"),
            |e| matches!(e, MirrorListError::NotCanonical { canonical, .. } if canonical == "https://mirror.example.org/onionpkg/"),
        ),
        (
            with(clear, "https://mirror.example.org:443/onionpkg/"),
            |e| matches!(e, MirrorListError::NotCanonical { .. }),
        ),
        (
            with(clear, "https://mirror.example.org/a/../onionpkg/"),
            |e| matches!(e, MirrorListError::NotCanonical { .. }),
        ),
        (with(clear, &primary.replacen("http:", "https:", 1)), |e| {
            matches!(e, MirrorListError::OnionInClearnet { .. })
        }),
        (with(&primary, "ftp://x.onion/"), |e| {
            matches!(e, MirrorListError::WrongScheme { field: "onion", .. })
        }),
        (with(&primary, "https://mirror.example.org/other/"), |e| {
            matches!(e, MirrorListError::BadOnionHost { .. })
        }),
        (with(&primary, "http://abc.onion/"), |e| {
            matches!(e, MirrorListError::BadOnionHost { .. })
        }),
        (
            with(&primary, &primary.replacen("http://", "http://www.", 1)),
            |e| matches!(e, MirrorListError::BadOnionHost { .. }),
        ),
        (
            with(&primary, &format!("http://{}.onion/", "1".repeat(56))),
            |e| matches!(e, MirrorListError::BadOnionHost { .. }),
        ),
        (
            with(
                &primary,
                &primary
                    .to_uppercase()
                    .replacen("HTTP://", "http://", 1)
                    .replace(".ONION/", ".onion/"),
            ),
            |e| matches!(e, MirrorListError::NotCanonical { .. }),
        ),
        (with(&primary, &onion_url("second")), |e| {
            matches!(e, MirrorListError::DuplicateUrl(_))
        }),
    ];
    for (doc, is_expected) in cases {
        let err = parse_str(&doc).unwrap_err();
        assert!(is_expected(&err), "{err}\n{doc}");
        assert_eq!(err.kind(), ErrorKind::BadInput);
    }
}

#[test]
fn size_and_count_limits() {
    let big = format!("{}{}", sample(3), " ".repeat(MAX_BYTES));
    let err = parse_str(&big).unwrap_err();
    assert!(matches!(err, MirrorListError::TooLarge { .. }), "{err}");

    let entries: Vec<String> = (0..=MAX_MIRRORS)
        .map(|i| format!(r#"{{"name": "m{i}", "clearnet": "https://m{i}.example.org/"}}"#))
        .collect();
    let doc = format!(
        r#"{{"version": 1, "expires": "2026-12-01T00:00:00Z", "mirrors": [{}]}}"#,
        entries.join(",")
    );
    let err = parse_str(&doc).unwrap_err();
    assert!(
        matches!(err, MirrorListError::TooManyMirrors { count: 1001, .. }),
        "{err}"
    );
    let doc = doc.replacen(&format!(",{}", entries[MAX_MIRRORS]), "", 1);
    assert_eq!(parse_str(&doc).unwrap().mirrors().len(), MAX_MIRRORS);
}

#[test]
fn real_onion_addresses_pass() {
    // Published v3 addresses, checked against an independent encoder.
    for host in [
        "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
    ] {
        check_onion_host("m", host).unwrap();
    }
}

#[test]
fn flipped_character_fails_the_checksum() {
    let host = onion_host(&key("primary"));
    check_onion_host("m", &host).unwrap();
    let mut chars: Vec<char> = host.chars().collect();
    chars[0] = if chars[0] == 'a' { 'b' } else { 'a' };
    let flipped: String = chars.into_iter().collect();
    let err = check_onion_host("m", &flipped).unwrap_err();
    assert!(
        matches!(err, MirrorListError::OnionChecksum { .. }),
        "{err}"
    );
    let err = parse_str(&sample(3).replacen(&host, &flipped, 1)).unwrap_err();
    assert!(
        matches!(err, MirrorListError::OnionChecksum { .. }),
        "{err}"
    );
}

#[test]
fn onion_version_must_be_3() {
    let pubkey = key("v2");
    let mut raw = pubkey.to_vec();
    raw.extend_from_slice(&onion_checksum(&pubkey, 2));
    raw.push(2);
    let host = format!(
        "{}.onion",
        data_encoding::BASE32_NOPAD
            .encode(&raw)
            .to_ascii_lowercase()
    );
    let err = check_onion_host("m", &host).unwrap_err();
    assert!(
        matches!(err, MirrorListError::OnionVersion { version: 2, .. }),
        "{err}"
    );
}

proptest! {
    #[test]
    fn random_keys_give_valid_addresses(pubkey in any::<[u8; 32]>(), at in 52usize..56, to in 0u8..32) {
        let host = onion_host(&pubkey);
        prop_assert_eq!(host.len(), 62);
        prop_assert!(check_onion_host("m", &host).is_ok());
        let url = format!("http://{host}/");
        prop_assert!(Mirror::new("m", None, Some(&url), None, 1).is_ok());
        // Characters 52 to 55 hold only checksum and version bits: changing
        // one is always caught.
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let new = char::from(alphabet[usize::from(to)]);
        let mut chars: Vec<char> = host.chars().collect();
        prop_assume!(chars[at] != new);
        chars[at] = new;
        let flipped: String = chars.into_iter().collect();
        let refused = matches!(
            check_onion_host("m", &flipped),
            Err(MirrorListError::OnionChecksum { .. } | MirrorListError::OnionVersion { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = MirrorList::parse(&bytes);
    }
}

#[test]
fn expiry_honours_the_tolerance() {
    let list = parse_str(&sample(3)).unwrap();
    let expires = list.expires();
    assert!(!list.is_expired(expires, Tolerance::ZERO));
    let late = expires + SignedDuration::from_secs(30);
    assert!(list.is_expired(late, Tolerance::ZERO));
    let err = list.check_fresh(late, Tolerance::ZERO).unwrap_err();
    assert!(matches!(err, MirrorListError::Expired { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Expired);
    let tol = Tolerance::new(SignedDuration::from_secs(30)).unwrap();
    assert!(!list.is_expired(late, tol));
    assert!(list.check_fresh(late, tol).is_ok());
    assert!(list.is_expired(late + SignedDuration::from_secs(1), tol));
}

#[test]
fn cache_refuses_rollback_and_reused_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache").join("mirrors.json");
    let mut cache = MirrorCache::load(&path).unwrap();
    assert!(cache.list().is_none());
    assert_eq!(cache.path(), path);

    let v3 = parse_str(&sample(3)).unwrap();
    cache.store(v3.clone()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), v3.to_json_bytes());

    // A new run sees what the last one stored.
    let mut cache = MirrorCache::load(&path).unwrap();
    assert_eq!(cache.list(), Some(&v3));

    let err = cache.store(parse_str(&sample(2)).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorList(MirrorListError::Rollback {
                cached: 3,
                offered: 2
            })
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Rollback);

    cache.store(v3.clone()).unwrap();
    let changed = parse_str(&sample(3).replace("\"weight\": 10", "\"weight\": 11")).unwrap();
    let err = cache.store(changed).unwrap_err();
    assert!(
        matches!(err, Error::MirrorList(MirrorListError::VersionReused(3))),
        "{err}"
    );
    assert_eq!(MirrorCache::load(&path).unwrap().list(), Some(&v3));

    let v4 = parse_str(&sample(4)).unwrap();
    cache.store(v4.clone()).unwrap();
    assert_eq!(MirrorCache::load(&path).unwrap().list(), Some(&v4));
}

#[test]
fn corrupt_cache_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirrors.json");
    std::fs::write(&path, b"{\"version\": 3").unwrap();
    let err = MirrorCache::load(&path).unwrap_err();
    assert!(
        matches!(err, Error::MirrorList(MirrorListError::CorruptCache { .. })),
        "{err}"
    );
}

#[test]
fn built_lists_are_checked_too() {
    let m = Mirror::new("a", Some("https://a.example.org/"), None, None, 1).unwrap();
    let err = MirrorList::new(1, ts("2026-12-01T00:00:00.5Z"), vec![m.clone()]).unwrap_err();
    assert!(matches!(err, MirrorListError::BadTime { .. }), "{err}");
    let err = MirrorList::new(0, ts("2026-12-01T00:00:00Z"), vec![m.clone()]).unwrap_err();
    assert!(matches!(err, MirrorListError::BadVersion), "{err}");
    let err = MirrorList::new(1, ts("2026-12-01T00:00:00Z"), vec![m.clone(), m]).unwrap_err();
    assert!(matches!(err, MirrorListError::DuplicateName(_)), "{err}");
    let err = Mirror::new("a", None, None, None, 1).unwrap_err();
    assert!(matches!(err, MirrorListError::NoUrl { .. }), "{err}");
    let err = Mirror::new("a", Some("https://a.example.org/"), None, None, 0).unwrap_err();
    assert!(matches!(err, MirrorListError::BadWeight { .. }), "{err}");
}
