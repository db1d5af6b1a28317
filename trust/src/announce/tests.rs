//! Tests of the announcement format, its verification and its DNS helpers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jiff::SignedDuration;
use proptest::prelude::*;

use super::*;
use crate::keys::{PublicKey, RoleKeys};
use crate::sign::SecretKey;

const OWNER: &str = "_onionpkg.example.org";
const CHANNEL: &str = "stable";
const HASH: [u8; 32] = [7; 32];
const SERIAL: u64 = 195;

fn issued() -> Timestamp {
    Timestamp::from_second(1_795_384_336).unwrap()
}

fn expires() -> Timestamp {
    issued() + SignedDuration::from_hours(24 * 14)
}

fn now() -> Timestamp {
    issued() + SignedDuration::from_hours(1)
}

fn role(keys: &[&SecretKey], threshold: usize) -> RoleKeys {
    let keys: BTreeMap<String, PublicKey> = keys
        .iter()
        .map(|k| (k.public().key_id(), k.public()))
        .collect();
    RoleKeys::new(keys, threshold)
}

fn record(signers: &[&SecretKey]) -> String {
    make(OWNER, CHANNEL, SERIAL, issued(), expires(), &HASH, signers).unwrap()
}

/// Records at [`OWNER`] for [`CHANNEL`], signed by `keys`, checked at
/// [`now`] without tolerance or a serial seen before.
fn expect(keys: &RoleKeys) -> Expectation<'_> {
    Expectation {
        name: OWNER,
        channel: CHANNEL,
        keys,
        now: now(),
        tolerance: Tolerance::ZERO,
        last_seen: None,
    }
}

fn check(text: &str, keys: &RoleKeys) -> Result<Announcement, AnnounceError> {
    verify(text, &expect(keys))
}

/// Signs an arbitrary body, for records `make` refuses to produce.
fn sign_body(body: &str, signers: &[&SecretKey]) -> String {
    let msg = signed_message(OWNER, body);
    let sigs: Vec<String> = signers.iter().map(|k| format::b64(&k.sign(&msg))).collect();
    format!("{body};s={}", sigs.join(","))
}

fn body(e: i64) -> String {
    format!(
        "v=1;c={CHANNEL};n={SERIAL};t={};e={e};k={{k}};h={}",
        issued().as_second(),
        format::b64(&HASH)
    )
}

#[test]
fn round_trip() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed.channel(), CHANNEL);
    assert_eq!(parsed.serial(), SERIAL);
    assert_eq!(parsed.issued(), issued());
    assert_eq!(parsed.expires(), expires());
    assert_eq!(parsed.short_ids(), [key.public().short_id()]);
    assert_eq!(parsed.timestamp_hash(), &HASH);

    let a = check(&text, &role(&[&key], 1)).unwrap();
    assert_eq!(
        a,
        Announcement {
            channel: CHANNEL.into(),
            serial: SERIAL,
            issued: issued(),
            expires: expires(),
            timestamp_hash: HASH,
            signed_by: vec![key.public().key_id()],
        }
    );
    // The owner name is compared in its normal form.
    let keys = role(&[&key], 1);
    let upper = verify(
        &text,
        &Expectation {
            name: "_ONIONPKG.Example.org.",
            ..expect(&keys)
        },
    );
    assert_eq!(upper.unwrap(), a);
}

#[test]
fn record_with_one_signature_fits_one_string() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    assert!(text.len() <= MAX_STRING, "{} bytes", text.len());
    // The worst case: longest channel, largest serial, ten-digit times.
    let longest = make(
        OWNER,
        &"a".repeat(format::MAX_CHANNEL),
        u64::MAX,
        Timestamp::from_second(9_999_999_990).unwrap(),
        Timestamp::from_second(9_999_999_999).unwrap(),
        &HASH,
        &[&key],
    )
    .unwrap();
    assert!(longest.len() <= MAX_STRING, "{} bytes", longest.len());
    assert_eq!(chunks(&longest), [longest.as_str()]);
}

#[test]
fn wrong_channel_is_refused() {
    let key = SecretKey::generate();
    let text = make(
        OWNER,
        "testing",
        SERIAL,
        issued(),
        expires(),
        &HASH,
        &[&key],
    )
    .unwrap();
    let err = check(&text, &role(&[&key], 1)).unwrap_err();
    assert!(matches!(err, AnnounceError::WrongChannel { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Verification);
}

#[test]
fn record_for_another_owner_is_refused() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    let keys = role(&[&key], 1);
    let err = verify(
        &text,
        &Expectation {
            name: "_onionpkg.example.net",
            ..expect(&keys)
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, AnnounceError::NoValidSignature { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another name, or forged"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Verification);
}

#[test]
fn unknown_key_is_refused() {
    let key = SecretKey::generate();
    let other = SecretKey::generate();
    let err = check(&record(&[&key]), &role(&[&other], 1)).unwrap_err();
    assert!(matches!(err, AnnounceError::UnknownKeys { .. }), "{err}");
    assert!(err.to_string().contains(&key.public().short_id()), "{err}");
}

#[test]
fn threshold_two_of_three() {
    let [a, b, c, stranger] = std::array::from_fn(|_| SecretKey::generate());
    let keys = role(&[&a, &b, &c], 2);

    let good = check(&record(&[&a, &c]), &keys).unwrap();
    assert_eq!(good.signed_by, [a.public().key_id(), c.public().key_id()]);

    // One key's signature listed twice counts once.
    let id = a.public().short_id();
    let body = body(expires().as_second()).replace("{k}", &format!("{id},{id}"));
    let once = sign_body(&body, &[&a]);
    let sig = once.rsplit_once(";s=").unwrap().1;
    let twice = format!("{once},{sig}");
    // One key; an unknown key beside it (skipped, not counted); one key's
    // signature twice.
    for text in [record(&[&b]), record(&[&stranger, &b]), twice] {
        let err = check(&text, &keys).unwrap_err();
        assert!(
            matches!(
                err,
                AnnounceError::BelowThreshold {
                    found: 1,
                    required: 2
                }
            ),
            "{text}: {err}"
        );
    }
}

/// A timestamp role with an ECDSA P-256 key (a token or KMS) signs in the
/// fixed `r || s` form, which fits the 64-byte slots; with an ed25519 key
/// beside it, a 2-of-2 role counts both.
#[test]
fn ecdsa_p256_timestamp_keys_sign_in_the_fixed_form() {
    let ecdsa = crate::keys::testing::P256Signer::generate();
    let ed = SecretKey::generate();
    let ids = format!("{},{}", ecdsa.public().short_id(), ed.public().short_id());
    let body = body(expires().as_second()).replace("{k}", &ids);
    let msg = signed_message(OWNER, &body);
    let (ecdsa_sig, ed_sig) = (
        format::b64(&ecdsa.sign_fixed(&msg)),
        format::b64(&ed.sign(&msg)),
    );
    let text = format!("{body};s={ecdsa_sig},{ed_sig}");
    let mut keys = role(&[&ed], 2);
    keys.keys.insert(ecdsa.public().key_id(), ecdsa.public());
    let good = check(&text, &keys).unwrap();
    assert_eq!(
        good.signed_by,
        [ecdsa.public().key_id(), ed.public().key_id()]
    );
    // TUF's DER form does not fit the format; a bad ECDSA signature counts
    // for nothing.
    let forged = format!("{body};s={},{ed_sig}", format::b64(&[1; 64]));
    assert!(matches!(
        check(&forged, &keys),
        Err(AnnounceError::BelowThreshold {
            found: 1,
            required: 2
        })
    ));
}

#[test]
fn threshold_zero_still_needs_a_signature() {
    let key = SecretKey::generate();
    let stranger = SecretKey::generate();
    assert!(check(&record(&[&key]), &role(&[&key], 0)).is_ok());
    let err = check(&record(&[&stranger]), &role(&[&key], 0)).unwrap_err();
    assert!(matches!(err, AnnounceError::UnknownKeys { .. }), "{err:?}");
}

#[test]
fn keys_sharing_a_short_id_are_each_tried() {
    let mut seen: BTreeMap<String, SecretKey> = BTreeMap::new();
    let (first, second) = loop {
        let k = SecretKey::generate();
        match seen.remove(&k.public().short_id()) {
            Some(prev) => break (prev, k),
            None => {
                seen.insert(k.public().short_id(), k);
            }
        }
    };
    let keys = role(&[&first, &second], 1);
    for signer in [&first, &second] {
        let a = check(&record(&[signer]), &keys).unwrap();
        assert_eq!(a.signed_by, [signer.public().key_id()]);
    }
    let both = role(&[&first, &second], 2);
    let a = check(&record(&[&first, &second]), &both).unwrap();
    assert_eq!(a.signed_by.len(), 2);
}

#[test]
fn expired_is_refused_and_tolerance_applies() {
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let text = record(&[&key]);
    let late = expires() + SignedDuration::from_secs(60);
    let err = verify(
        &text,
        &Expectation {
            now: late,
            ..expect(&keys)
        },
    )
    .unwrap_err();
    assert!(matches!(err, AnnounceError::Expired { .. }), "{err}");
    assert!(err.to_string().contains(&expires().to_string()), "{err}");
    assert_eq!(err.kind(), ErrorKind::Expired);
    let tol = Tolerance::new(SignedDuration::from_secs(60)).unwrap();
    assert!(
        verify(
            &text,
            &Expectation {
                now: late,
                tolerance: tol,
                ..expect(&keys)
            }
        )
        .is_ok()
    );
}

#[test]
fn issued_in_the_future_is_refused_beyond_tolerance() {
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let text = record(&[&key]);
    let early = issued() - SignedDuration::from_secs(120);
    let err = verify(
        &text,
        &Expectation {
            now: early,
            ..expect(&keys)
        },
    )
    .unwrap_err();
    assert!(matches!(err, AnnounceError::IssuedInFuture { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Expired);
    let tol = Tolerance::new(SignedDuration::from_secs(120)).unwrap();
    assert!(
        verify(
            &text,
            &Expectation {
                now: early,
                tolerance: tol,
                ..expect(&keys)
            }
        )
        .is_ok()
    );
}

#[test]
fn expiry_before_issue_is_refused() {
    let key = SecretKey::generate();
    let body = body(issued().as_second() - 1).replace("{k}", &key.public().short_id());
    let text = sign_body(&body, &[&key]);
    let err = check(&text, &role(&[&key], 1)).unwrap_err();
    assert!(
        matches!(err, AnnounceError::ExpiresBeforeIssued { .. }),
        "{err}"
    );
    let err = make(OWNER, CHANNEL, 1, issued(), issued(), &HASH, &[&key]).unwrap_err();
    assert!(
        matches!(
            err,
            AnnounceError::InvalidArgument {
                what: "expires",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn lower_serial_is_a_replay() {
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let text = record(&[&key]);
    let run = |last| {
        verify(
            &text,
            &Expectation {
                last_seen: last,
                ..expect(&keys)
            },
        )
    };
    let err = run(Some(SERIAL + 1)).unwrap_err();
    assert!(
        matches!(err, AnnounceError::Rollback { serial: SERIAL, last_seen } if last_seen == SERIAL + 1),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Rollback);
    assert_eq!(run(Some(SERIAL)).unwrap().serial, SERIAL);
    assert_eq!(run(Some(SERIAL - 1)).unwrap().serial, SERIAL);
}

#[test]
fn every_prefix_is_truncated() {
    let [a, b] = std::array::from_fn(|_| SecretKey::generate());
    for text in [record(&[&a]), record(&[&a, &b])] {
        for cut in 0..text.len() {
            let err = parse(&text[..cut]).unwrap_err();
            assert!(
                matches!(err, AnnounceError::Truncated(_)),
                "cut at {cut}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::BadInput);
        }
    }
    // A lost final string of a multi-string record.
    let long = record(&[&a, &b]);
    let parts = chunks(&long);
    assert!(parts.len() > 1);
    let err = parse(&join(&parts[..parts.len() - 1]).unwrap()).unwrap_err();
    assert!(matches!(err, AnnounceError::Truncated(_)), "{err}");
}

#[test]
fn non_ascii_and_over_long_are_refused() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    let err = parse(&text.replacen("stable", "stäble", 1)).unwrap_err();
    assert!(
        matches!(err, AnnounceError::NonAscii { offset: 8 }),
        "{err}"
    );
    let err = join(&[&b"v=1;c=st"[..], b"\xffable"]).unwrap_err();
    assert!(
        matches!(err, AnnounceError::NonAscii { offset: 8 }),
        "{err}"
    );

    let long = format!("{text};{}", "x".repeat(MAX_LEN - text.len()));
    let err = parse(&long).unwrap_err();
    assert!(
        matches!(
            err,
            AnnounceError::TooLong {
                len: 1025,
                max: MAX_LEN
            }
        ),
        "{err}"
    );
    let err = join(&[long.as_bytes()]).unwrap_err();
    assert!(matches!(err, AnnounceError::TooLong { .. }), "{err}");
}

#[test]
fn malformed_fields_are_named() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    let id = key.public().short_id();
    let (head, sig) = text.rsplit_once(";s=").unwrap();
    let h = format::b64(&HASH);
    let t = issued().as_second().to_string();
    let malformed = |field: &'static str| move |e: &AnnounceError| matches!(e, AnnounceError::Malformed { field: f, .. } if *f == field);
    type Check = Box<dyn Fn(&AnnounceError) -> bool>;
    let cases: Vec<(String, Check)> = vec![
        (
            text.replace("c=stable", "c=Stable"),
            Box::new(malformed("c")),
        ),
        (text.replace("c=stable", "c="), Box::new(malformed("c"))),
        (
            text.replace("c=stable", &format!("c={}", "a".repeat(33))),
            Box::new(malformed("c")),
        ),
        (text.replace("n=195", "n=0195"), Box::new(malformed("n"))),
        (text.replace("n=195", "n=+195"), Box::new(malformed("n"))),
        (text.replace("n=195", "n=-195"), Box::new(malformed("n"))),
        (text.replace("n=195", "n=0"), Box::new(malformed("n"))),
        (
            text.replace("n=195", "n=18446744073709551616"),
            Box::new(malformed("n")),
        ),
        (
            text.replace(&format!("t={t}"), "t=1e9"),
            Box::new(malformed("t")),
        ),
        (
            text.replace(&format!("t={t}"), " t=1"),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::UnknownField(_))),
        ),
        (
            text.replace(";e=", ";e=9999999999999"),
            Box::new(malformed("e")),
        ),
        (
            text.replace(
                &format!("k={id}"),
                &format!(
                    "k={}",
                    id.to_uppercase().replace(|c: char| c.is_ascii_digit(), "A")
                ),
            ),
            Box::new(malformed("k")),
        ),
        (
            text.replace(&format!("k={id}"), "k=12345"),
            Box::new(malformed("k")),
        ),
        (text.replace(&h, &h[1..]), Box::new(malformed("h"))),
        (
            text.replace(&h, &format!("{}=", &h[1..])),
            Box::new(malformed("h")),
        ),
        (format!("{text}A"), Box::new(malformed("s"))),
        (format!("{head};s=!{}", &sig[1..]), Box::new(malformed("s"))),
        (format!("{text};"), Box::new(malformed("s"))),
        (
            format!("{text},{sig}"),
            Box::new(|e: &AnnounceError| {
                matches!(
                    e,
                    AnnounceError::SignatureCount {
                        keys: 1,
                        signatures: 2
                    }
                )
            }),
        ),
        (
            text.replacen("v=1", "v=2", 1),
            Box::new(
                |e: &AnnounceError| matches!(e, AnnounceError::UnsupportedVersion(v) if v == "2"),
            ),
        ),
        (
            "google-site-verification=abc".into(),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::NotAnnouncement)),
        ),
        (
            text.replace(";n=", ";x=1;n="),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::UnknownField(f) if f == "x")),
        ),
        (
            format!("{text};u=1"),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::UnknownField(f) if f == "u")),
        ),
        (
            text.replace(";n=", ";c=stable;n="),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::DuplicateField("c"))),
        ),
        (
            format!("{text};s={sig}"),
            Box::new(|e: &AnnounceError| matches!(e, AnnounceError::DuplicateField("s"))),
        ),
        (
            text.replace(&format!("n=195;t={t}"), &format!("t={t};n=195")),
            Box::new(|e: &AnnounceError| {
                matches!(
                    e,
                    AnnounceError::FieldOutOfOrder {
                        expected: "n",
                        found: "t"
                    }
                )
            }),
        ),
    ];
    for (bad, is_expected) in cases {
        let err = parse(&bad).unwrap_err();
        assert!(is_expected(&err), "{bad:?}: {err}");
        assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
    }
}

#[test]
fn stray_trailing_bits_are_refused() {
    // The last character of a 43-character hash carries 4 data bits and 2
    // zero bits; setting those makes a second spelling of the same bytes.
    let key = SecretKey::generate();
    let text = record(&[&key]);
    let h = format::b64(&HASH);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = h.as_bytes()[42];
    let pos = alphabet.iter().position(|&c| c == last).unwrap();
    let twin = char::from(alphabet[pos | 1]);
    assert_ne!(char::from(last), twin);
    let bad = text.replace(&h, &format!("{}{twin}", &h[..42]));
    let err = parse(&bad).unwrap_err();
    assert!(
        matches!(err, AnnounceError::Malformed { field: "h", .. }),
        "{err}"
    );
}

#[test]
fn chunks_and_join_round_trip() {
    assert!(chunks("").is_empty());
    for len in [1usize, 254, 255, 256, 510, 511, 1024] {
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let parts = chunks(&text);
        assert_eq!(parts.len(), len.div_ceil(MAX_STRING), "{len}");
        assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= MAX_STRING));
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p.len() == MAX_STRING)
        );
        assert_eq!(join(&parts).unwrap(), text);
    }
    // Never inside a character, even though records are ASCII.
    let wide = "é".repeat(200);
    let parts = chunks(&wide);
    assert!(parts.iter().all(|p| p.len() <= MAX_STRING));
    assert_eq!(parts.concat(), wide);
    // A real multi-signature record survives the trip.
    let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
    let refs: Vec<&SecretKey> = keys.iter().collect();
    let text = record(&refs);
    let parts = chunks(&text);
    assert!(parts.len() > 1);
    let wire: Vec<Vec<u8>> = parts.iter().map(|p| p.as_bytes().to_vec()).collect();
    let joined = join(&wire).unwrap();
    assert!(check(&joined, &role(&refs, 3)).is_ok());
}

#[test]
fn zone_line_quotes_each_string() {
    let key = SecretKey::generate();
    let text = record(&[&key]);
    assert_eq!(
        zone_line("_onionpkg.Example.org", 300, &text).unwrap(),
        format!("_onionpkg.example.org. 300 IN TXT \"{text}\"")
    );
    let long = "a".repeat(300);
    assert_eq!(
        zone_line("x.example.", 60, &long).unwrap(),
        format!(
            "x.example. 60 IN TXT \"{}\" \"{}\"",
            "a".repeat(255),
            "a".repeat(45)
        )
    );
    assert_eq!(
        zone_line("x.example", 60, "a\"b\\c\u{1}").unwrap(),
        "x.example. 60 IN TXT \"a\\\"b\\\\c\\001\""
    );
    let err = zone_line("bad name.example", 60, &text).unwrap_err();
    assert!(matches!(err, AnnounceError::InvalidOwner { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::BadConfig);
}

#[test]
fn rrset_picks_the_highest_valid_serial() {
    let key = SecretKey::generate();
    let keys = role(&[&key], 1);
    let at = |serial, hash: &[u8; 32]| {
        make(OWNER, CHANNEL, serial, issued(), expires(), hash, &[&key]).unwrap()
    };
    let old = at(190, &[1; 32]);
    let new = at(195, &HASH);
    let forged = at(999, &[9; 32]).replacen("n=999", "n=998", 1);
    let records = vec![
        "google-site-verification=abc".to_string(),
        forged.clone(),
        new.replacen("v=1;", "v=2;", 1),
        new.clone(),
        old.clone(),
    ];
    let run = |records: &[String]| verify_rrset(records, &expect(&keys));
    let a = run(&records).unwrap();
    assert_eq!((a.serial, a.timestamp_hash), (195, HASH));
    assert_eq!(select(&records).unwrap(), [&forged, &new, &old]);

    let err = run(&["other".to_string()]).unwrap_err();
    assert!(matches!(err, AnnounceError::NoRecord), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let err = run(&vec![old; MAX_RECORDS + 1]).unwrap_err();
    assert!(
        matches!(err, AnnounceError::TooManyRecords { count: 9, .. }),
        "{err}"
    );

    let err = run(std::slice::from_ref(&forged)).unwrap_err();
    assert!(
        matches!(err, AnnounceError::NoValidSignature { .. }),
        "{err}"
    );
    let err = run(&[forged.clone(), forged]).unwrap_err();
    assert!(
        matches!(err, AnnounceError::NoneValid { count: 2, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Verification);

    let err = run(&[new.clone(), at(195, &[2; 32])]).unwrap_err();
    assert!(
        matches!(err, AnnounceError::Conflict { serial: 195 }),
        "{err}"
    );

    // The same state re-signed later: the later expiry wins.
    let later = make(
        OWNER,
        CHANNEL,
        195,
        issued(),
        expires() + SignedDuration::from_hours(1),
        &HASH,
        &[&key],
    )
    .unwrap();
    let a = run(&[new, later]).unwrap();
    assert_eq!(a.expires, expires() + SignedDuration::from_hours(1));
}

#[test]
fn make_refuses_bad_arguments() {
    let key = SecretKey::generate();
    let go = |owner, channel, serial, signers: &[&SecretKey]| {
        make(owner, channel, serial, issued(), expires(), &HASH, signers).unwrap_err()
    };
    let cases: [(&str, u64, &[&SecretKey], &str); 4] = [
        ("Stable", 1, &[&key], "channel"),
        (CHANNEL, 0, &[&key], "serial"),
        (CHANNEL, 1, &[], "signers"),
        (CHANNEL, 1, &[&key, &key], "signers"),
    ];
    for (channel, serial, signers, named) in cases {
        let err = go(OWNER, channel, serial, signers);
        assert!(
            matches!(err, AnnounceError::InvalidArgument { what, .. } if what == named),
            "{channel} {serial} {}: {err}",
            signers.len()
        );
    }
    for owner in ["", ".", "a..b", "bad name", "ä.example", &"a".repeat(64)] {
        let err = go(owner, CHANNEL, 1, &[&key]);
        assert!(
            matches!(err, AnnounceError::InvalidOwner { .. }),
            "{owner:?}: {err}"
        );
    }
    let before_1970 = Timestamp::from_second(-10).unwrap();
    let err = make(OWNER, CHANNEL, 1, before_1970, expires(), &HASH, &[&key]).unwrap_err();
    assert!(
        matches!(err, AnnounceError::InvalidArgument { what: "time", .. }),
        "{err}"
    );
}

/// One valid record and its role, shared by the property tests.
fn fixture() -> &'static (String, RoleKeys) {
    static FIXTURE: OnceLock<(String, RoleKeys)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let [a, b] = std::array::from_fn(|_| SecretKey::generate());
        (record(&[&a, &b]), role(&[&a, &b], 2))
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_any_string(s in any::<String>()) {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_ascii(s in "[ -~]{0,1100}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_records(
        s in "v=1(;[a-z]{0,2}=[A-Za-z0-9_,=-]{0,90}){0,10};?"
    ) {
        let _ = parse(&s);
    }

    #[test]
    fn join_never_panics(strings in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 0..6)
    ) {
        if let Ok(text) = join(&strings) {
            let _ = parse(&text);
        }
    }

    #[test]
    fn any_one_character_change_is_refused(
        at in any::<prop::sample::Index>(),
        c in prop_oneof![proptest::char::range(' ', '~'), any::<char>()],
    ) {
        let (text, keys) = fixture();
        let i = at.index(text.len());
        prop_assume!(char::from(text.as_bytes()[i]) != c);
        let mut mutated = text[..i].to_string();
        mutated.push(c);
        mutated.push_str(&text[i + 1..]);
        // Signatures are checked before anything else a record says, so a
        // changed record is refused by its parser or its signatures, never
        // for its channel, times or serial.
        let refused = verify(&mutated, &expect(keys));
        prop_assert!(
            matches!(
                refused,
                Err(AnnounceError::TooLong { .. }
                    | AnnounceError::NonAscii { .. }
                    | AnnounceError::Truncated(_)
                    | AnnounceError::NotAnnouncement
                    | AnnounceError::UnsupportedVersion(_)
                    | AnnounceError::UnknownField(_)
                    | AnnounceError::DuplicateField(_)
                    | AnnounceError::FieldOutOfOrder { .. }
                    | AnnounceError::Malformed { .. }
                    | AnnounceError::SignatureCount { .. }
                    | AnnounceError::NoValidSignature { .. }
                    | AnnounceError::UnknownKeys { .. }
                    | AnnounceError::BelowThreshold { .. })
            ),
            "{mutated:?}: {refused:?}"
        );
    }
}

#[test]
fn the_fixture_itself_verifies() {
    let (text, keys) = fixture();
    assert!(verify(text, &expect(keys)).is_ok());
}

#[test]
fn a_draft_signed_elsewhere_makes_the_record_make_makes() {
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let draft = Draft::new(
        OWNER,
        CHANNEL,
        SERIAL,
        issued(),
        expires(),
        &HASH,
        &[a.public(), b.public()],
    )
    .unwrap();
    let msg = draft.message();
    let (sa, sb) = (a.sign(&msg), b.sign(&msg));
    let text = draft.finish(&[&sa[..], &sb[..]]).unwrap();
    assert_eq!(text, record(&[&a, &b]));
    check(&text, &role(&[&a, &b], 2)).unwrap();

    let err = draft.finish(&[&sa[..]]).unwrap_err();
    assert!(
        matches!(
            err,
            AnnounceError::InvalidArgument {
                what: "signatures",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("1 signature(s) for 2 key(s)"),
        "{err}"
    );
    let err = draft.finish(&[&sa[..], &sb[..63]]).unwrap_err();
    assert!(err.to_string().contains("63 bytes, not 64"), "{err}");
}
