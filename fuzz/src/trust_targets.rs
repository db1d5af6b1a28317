//! Targets over signed formats, feeds and configuration: each a pure parse
//! (and, where the format is signed, a verification against the fixtures).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use onionpkg_config::mirror::FeedCheck;
use onionpkg_mirror::feeds::libloc::LiblocKey;
use onionpkg_mirror::feeds::{check, floor, pick_checksum};
use onionpkg_trust::announce;
use onionpkg_trust::metadata::{Client, FetchError, FetchFuture, Repository, VerifyError};

use crate::{Fixture, first_line, fixture, runtime, scratch_file, timestamp_keys, tolerance};

/// The DNS announcement as a resolver hands it over: one joined TXT record.
/// Parsed strictly, then verified against the timestamp keys.
pub fn announce_parse(data: &[u8]) {
    let Ok(text) = announce::join(&[data]) else {
        return;
    };
    let f = fixture();
    let Ok(unverified) = announce::parse(&text) else {
        return;
    };
    // Whatever parses fits the limits, survives the trip through DNS
    // character-strings, and can be published in a zone file.
    assert!(text.len() <= announce::MAX_LEN);
    let chunks = announce::chunks(&text);
    assert!(chunks.iter().all(|c| c.len() <= announce::MAX_STRING));
    assert_eq!(announce::join(&chunks).ok().as_deref(), Some(text.as_str()));
    assert!(announce::zone_line(&f.owner, 300, &text).is_ok());
    let verified = unverified.verify(&expectation(&f));
    if let Ok(a) = verified {
        assert_eq!(a.serial, unverified.serial());
        assert_eq!(&a.timestamp_hash, unverified.timestamp_hash());
        assert!(a.issued < a.expires);
        assert!(!a.signed_by.is_empty());
    }
}

/// What the fixture's announcements are verified against: its owner,
/// channel, timestamp keys and time, no serial seen before.
fn expectation(f: &Fixture) -> announce::Expectation<'_> {
    announce::Expectation {
        name: &f.owner,
        channel: &f.channel,
        keys: timestamp_keys(),
        now: f.now,
        tolerance: tolerance(),
        last_seen: None,
    }
}

/// A DNS answer as the resolver decodes it: every TXT record joined and
/// the RRset verified as `query`/`check` and the fetcher do.
pub fn announce_rrset(data: &[u8]) {
    let Ok(msg) = hickory_proto::op::Message::from_vec(data) else {
        return;
    };
    let records: Vec<String> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::TXT(txt) => announce::join(&txt.txt_data).ok(),
            _ => None,
        })
        .collect();
    if let Ok(ours) = announce::select(&records) {
        assert!(!ours.is_empty() && ours.len() <= announce::MAX_RECORDS);
        assert!(ours.iter().all(|r| r.starts_with(announce::PREFIX)));
    }
    let f = fixture();
    let _ = announce::verify_rrset(&records, &expectation(&f));
}

/// The mirror list, as the fetcher reads it once its hash verified: what
/// parses serializes back to the same list.
pub fn mirror_list(data: &[u8]) {
    let Ok(list) = onionpkg_trust::mirrors::MirrorList::parse(data) else {
        return;
    };
    let again = onionpkg_trust::mirrors::MirrorList::parse(&list.to_json_bytes());
    assert_eq!(
        again.ok().as_ref(),
        Some(&list),
        "the list does not round-trip"
    );
    let _ = list.check_fresh(fixture().now, tolerance());
    for m in list.mirrors() {
        assert!(m.clearnet().is_some() || m.onion().is_some());
    }
}

/// Runs a feed's content check on `data` as a downloaded file, with a cap
/// of 64 KiB (so at most 1 MiB is decompressed).
fn feed(check: FeedCheck, data: &[u8]) -> Result<check::Checked, String> {
    let file = scratch_file(data);
    check::check_file(check, file.path(), 64 * 1024, None)
}

/// An `ip-list` feed (DROP-style).
pub fn feed_ip_list(data: &[u8]) {
    let _ = feed(FeedCheck::IpList, data);
}

/// An `mmdb` feed: the metadata marker in the tail and its `build_epoch`.
pub fn feed_mmdb(data: &[u8]) {
    if let Ok(c) = feed(FeedCheck::Mmdb, data) {
        assert!(c.made.is_some(), "an mmdb that passes has a version time");
    }
}

/// The fixture's libloc public key (ECDSA P-521), which signed the seed
/// database `seeds/feed_libloc/signed`.
fn libloc_key() -> &'static LiblocKey {
    static K: OnceLock<LiblocKey> = OnceLock::new();
    K.get_or_init(|| {
        LiblocKey::from_pem(include_str!("../fixtures/libloc-key.pem"))
            .unwrap_or_else(|e| panic!("fixtures/libloc-key.pem: {e}"))
    })
}

/// A `libloc` feed (IPFire's `location.db`): the header's bounds, the
/// signature slots, verification against the fixture's key, then the
/// signed `created_at` and the string pool. Only an input the key signed
/// gets past verification: the seed, whose every byte is signed.
pub fn feed_libloc(data: &[u8]) {
    let file = scratch_file(data);
    let checked = check::check_file(
        FeedCheck::Libloc,
        file.path(),
        64 * 1024,
        Some(libloc_key()),
    );
    if let Ok(c) = checked {
        let made = c.made.as_ref().map(|m| m.from);
        assert_eq!(made, Some(floor::TimeSource::LiblocCreatedAt));
        assert!(c.summary.starts_with("libloc database"), "{}", c.summary);
    }
}

/// Checks a Tor GeoIP file; what passes counted a range, and a version
/// time comes only from its `Generated:` comment.
fn tor_geoip(check: FeedCheck, data: &[u8]) {
    if let Ok(c) = feed(check, data) {
        assert!(c.summary.starts_with("Tor GeoIP file, "), "{}", c.summary);
        assert!(
            !c.summary.starts_with("Tor GeoIP file, 0 "),
            "{}",
            c.summary
        );
        if let Some(m) = c.made {
            assert_eq!(m.from, floor::TimeSource::TorGeoipGenerated);
        }
    }
}

/// A Tor `geoip` feed (IPv4 ranges as integers).
pub fn feed_tor_geoip(data: &[u8]) {
    tor_geoip(FeedCheck::TorGeoip, data);
}

/// A Tor `geoip6` feed (IPv6 ranges as addresses).
pub fn feed_tor_geoip6(data: &[u8]) {
    tor_geoip(FeedCheck::TorGeoip6, data);
}

/// A `tar.gz` feed: every gzip member, every entry, the decompression cap.
pub fn feed_tar_gz(data: &[u8]) {
    let _ = feed(FeedCheck::TarGz, data);
}

/// A feed's detached minisign signature: decoded, verified against the
/// fixture's key and content, and its trusted comment's time read and
/// judged against the version floor.
pub fn feed_signature(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = floor::trusted_comment_time(text);
    let Ok(sig) = minisign_verify::Signature::decode(text) else {
        return;
    };
    let _ = floor::trusted_comment_time(sig.trusted_comment());
    let f = fixture();
    let Ok(key) = minisign_verify::PublicKey::from_base64(&f.minisign_key) else {
        panic!("the fixture's minisign key does not decode");
    };
    if key.verify(f.signed_feed.as_bytes(), &sig, false).is_ok()
        && let Ok(Some(t)) = floor::trusted_comment_time(sig.trusted_comment())
    {
        let _ = floor::judge(None, Some(&t), &"0".repeat(64), f.now);
    }
}

/// A checksum document (`sha256sum` style, or one bare hash): the first
/// line of the input names the file, the rest is the document.
pub fn feed_checksum(data: &[u8]) {
    let (file, doc) = first_line(data);
    let (Ok(file), Ok(doc)) = (std::str::from_utf8(file), std::str::from_utf8(doc)) else {
        return;
    };
    if let Some(hash) = pick_checksum(doc, file) {
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}

/// A configuration file of one of the programs, by the first byte.
pub fn config(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = "/etc/onionpkg/fuzz.toml";
    let shown = match which % 4 {
        0 => onionpkg_config::from_str::<onionpkg_config::FetcherConfig>(text, name).err(),
        1 => onionpkg_config::from_str::<onionpkg_config::MirrorConfig>(text, name).err(),
        2 => onionpkg_config::from_str::<onionpkg_config::AnnounceConfig>(text, name).err(),
        _ => onionpkg_config::from_str::<onionpkg_config::SignerConfig>(text, name).err(),
    };
    if let Some(e) = shown {
        // Every error names the file it is about.
        assert!(e.to_string().contains("fuzz.toml"), "{e}");
    }
}

/// A root file on its own (`init --root`), and as the next root after the
/// fixture's pinned one.
pub fn tuf_root(data: &[u8]) {
    if let Ok(root) = onionpkg_trust::metadata::check_root(data) {
        for role in ["root", "targets", "snapshot", "timestamp"] {
            let _ = onionpkg_trust::metadata::role_keys(&root, role);
        }
    }
    let _ = onionpkg_trust::metadata::check_root_update(fixture().root.as_bytes(), data);
}

/// The fixture repository in memory, with one file replaced by fuzzed bytes.
/// Reads are capped as a transport caps them.
struct MemRepo {
    metadata: BTreeMap<String, Vec<u8>>,
    targets: BTreeMap<String, Vec<u8>>,
}

impl MemRepo {
    fn get(
        files: &BTreeMap<String, Vec<u8>>,
        name: &str,
        max_length: u64,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        match files.get(name) {
            Some(b) if b.len() as u64 > max_length => Err(FetchError::TooLarge {
                name: name.to_owned(),
                limit: max_length,
            }),
            Some(b) => Ok(Some(b.clone())),
            None => Ok(None),
        }
    }
}

impl Repository for MemRepo {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        let r = Self::get(&self.metadata, name, max_length).map_err(FetchError::into_tuf);
        Box::pin(async move { r })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        let r = Self::get(&self.targets, path, max_length).map_err(FetchError::into_tuf);
        Box::pin(async move { r })
    }
}

/// A client refresh, as the fetcher runs it, over the fixture repository
/// with one file (chosen by the first byte, metadata then targets, in name
/// order) replaced by the rest of the input; then the package is resolved
/// and fetched, and every delegated role loaded.
pub fn tuf_client(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let mut repo = MemRepo {
        metadata: f
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect(),
        targets: f
            .targets
            .iter()
            .map(|(k, v)| (k.clone(), hex::decode(v).unwrap_or_default()))
            .collect(),
    };
    let names: Vec<(bool, String)> = repo
        .metadata
        .keys()
        .map(|k| (true, k.clone()))
        .chain(repo.targets.keys().map(|k| (false, k.clone())))
        .collect();
    let (is_meta, name) = &names[usize::from(which) % names.len()];
    let files = if *is_meta {
        &mut repo.metadata
    } else {
        &mut repo.targets
    };
    files.insert(name.clone(), body.to_vec());
    let now = f.now;
    let outcome: Result<(), VerifyError> = runtime().block_on(async {
        let mut client = Client::new(f.root.as_bytes(), None, repo)?;
        client.refresh(now).await?;
        let bytes = client.fetch_target(&f.package, now).await?;
        let info = client.target_info(&f.package, now).await?;
        assert_eq!(bytes.len() as u64, info.length);
        client.load_all_delegated(now).await?;
        let known = client.known_targets();
        assert!(known.iter().any(|(_, p)| *p == f.package));
        Ok(())
    });
    // Replacing a file by itself is the one change that must verify.
    let original = if *is_meta {
        f.metadata.get(name).map(|s| s.as_bytes().to_vec())
    } else {
        f.targets.get(name).and_then(|h| hex::decode(h).ok())
    };
    if original.as_deref() == Some(body) {
        assert!(
            outcome.is_ok(),
            "the untouched repository fails: {outcome:?}"
        );
    }
}
