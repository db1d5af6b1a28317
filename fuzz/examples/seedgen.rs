//! Writes the fuzz fixtures (`fixtures/repo.json`) and the seed corpora
//! (`seeds/TARGET/`) from real inputs: a repository made and signed by
//! `onionpkg-repo` (hashed bins, a feed, a mirror list, a root rotation),
//! its DNS announcement as `onionpkg-repo announce` makes it, the sample
//! feeds of the mirror's test data, a minisign signature, checksum
//! documents, HTTP responses and requests, and the example configurations.
//!
//! Run from `fuzz/`: `cargo run --example seedgen`. Keys are made fresh and
//! thrown away, so every run writes other bytes; the committed seeds are
//! one run's output.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a one-off generator"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record};
use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{Expiries, InitOptions, KeyDir, RepoDir};
use onionpkg_testkit::testdata;
use sha2::Digest;

const OWNER: &str = "_onionpkg.example.org";
const CHANNEL: &str = "stable";
const PACKAGE: &str = "pkg/hello-1.0.tar";

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = here.join("seeds");
    // A fixed signing time: the targets verify at a fixed time, an hour later.
    let t0: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
    let now = t0 + SignedDuration::from_hours(1);

    let tmp = tempfile::tempdir().unwrap();
    let repo = RepoDir::new(tmp.path().join("repo"));
    let keys = KeyDir::new(tmp.path().join("keys"), None);
    let opts = InitOptions {
        bins: 4,
        ..Default::default()
    };
    repo.init(&keys, &opts, &Expiries::default(), t0).unwrap();
    let add = |path: &str, content: &[u8], role: &str| {
        let file = tmp.path().join("input");
        std::fs::write(&file, content).unwrap();
        repo.add_target(&file, path, &BTreeMap::new(), role)
            .unwrap();
    };
    add(PACKAGE, b"hello, appliance\n", "targets");
    add("pkg/other-2.0.tar", &[7u8; 600], "targets");
    add(
        "feeds/blocklist/drop.txt",
        testdata::DROP_LIST.as_bytes(),
        "feeds",
    );
    let list = mirror_list();
    repo.set_mirrors(list.as_bytes(), t0).unwrap();
    repo.publish(&keys, &Expiries::default(), &[], t0).unwrap();
    // A rotated timestamp key: the client walks a root chain of two.
    repo.rotate("timestamp", &keys, None, &Expiries::default(), t0)
        .unwrap();
    add("pkg/hello-1.1.tar", b"newer\n", "targets");
    repo.publish(&keys, &Expiries::default(), &[], t0).unwrap();

    let read_dir = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    };
    let metadata = read_dir(&repo.metadata_dir());
    let targets = read_dir(&repo.targets_dir());
    let record = repo.announce(&keys, OWNER, CHANNEL, None, t0).unwrap();

    let minisign = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let feed = testdata::DROP_LIST;
    let sign = |comment: Option<&str>| {
        minisign::sign(
            Some(&minisign.pk),
            &minisign.sk,
            feed.as_bytes(),
            comment,
            None,
        )
        .unwrap()
        .into_string()
    };

    let fixture = serde_json::json!({
        "now": now,
        "owner": OWNER,
        "channel": CHANNEL,
        "root": String::from_utf8(metadata["1.root.json"].clone()).unwrap(),
        "metadata": metadata.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
            .collect::<BTreeMap<_, _>>(),
        "targets": targets.iter().map(|(k, v)| (k.clone(), hex::encode(v))).collect::<BTreeMap<_, _>>(),
        "package": PACKAGE,
        "minisign_key": minisign.pk.to_base64(),
        "signed_feed": feed,
    });
    std::fs::create_dir_all(here.join("fixtures")).unwrap();
    std::fs::write(
        here.join("fixtures/repo.json"),
        serde_json::to_vec_pretty(&fixture).unwrap(),
    )
    .unwrap();

    let mut out = Seeds::new(seeds);

    // The announcement: as made, one signed by a key the role does not
    // have, one for another channel, and one with two signatures.
    let ts_key = keys.load("timestamp").unwrap();
    let other = onionpkg_trust::sign::SecretKey::generate();
    let hash: [u8; 32] = sha2::Sha256::digest(&metadata["timestamp.json"]).into();
    let expires = t0 + SignedDuration::from_hours(24);
    let make = |channel: &str, serial: u64, signers: &[&onionpkg_trust::sign::SecretKey]| {
        onionpkg_trust::announce::make(OWNER, channel, serial, t0, expires, &hash, signers).unwrap()
    };
    let records = [
        record.clone(),
        make(CHANNEL, 3, &[&other]),
        make("testing", 3, &[&ts_key]),
        make(CHANNEL, 3, &[&ts_key, &other]),
        make(CHANNEL, 2, &[&ts_key]),
    ];
    for (i, r) in records.iter().enumerate() {
        out.put("announce_parse", &format!("record-{i}"), r.as_bytes());
    }
    // DNS answers: the record in one string, cut into strings, beside an
    // older record and a record of another format.
    out.put("announce_rrset", "one", &dns_answer(&[&[&record]]));
    let (a, b) = record.split_at(100);
    out.put("announce_rrset", "split", &dns_answer(&[&[a, b]]));
    out.put(
        "announce_rrset",
        "several",
        &dns_answer(&[&[&record], &[&records[4]], &["v=spf1 -all"], &[&records[1]]]),
    );

    out.put("mirror_list", "list", list.as_bytes());
    out.put(
        "mirror_list",
        "minimal",
        br#"{"version":1,"expires":"2026-12-01T00:00:00Z","mirrors":[{"name":"a","clearnet":"https://a.example/"}]}"#,
    );

    for (name, req) in [
        ("timestamp", "GET /metadata/timestamp.json\n".to_owned()),
        (
            "range",
            "GET /targets/pkg/big.bin\nRange: bytes=100-200\n".to_owned(),
        ),
        (
            "suffix",
            "GET /targets/pkg/in.bin\nRange: bytes=-500\nIf-Range: \"x\"\n".to_owned(),
        ),
        (
            "open-range",
            "GET /targets/pkg/big.bin\nRange: bytes=199990-\n".to_owned(),
        ),
        (
            "head",
            "HEAD /metadata/1.root.json\nIf-None-Match: *\n".to_owned(),
        ),
        (
            "since",
            "GET /metadata/2.root.json\nIf-Modified-Since: Sun, 06 Nov 2094 08:49:37 GMT\n"
                .to_owned(),
        ),
        ("escape", "GET /targets/pkg/%2e%2e/secret.txt\n".to_owned()),
        ("link-out", "GET /targets/pkg/out.txt\n".to_owned()),
        ("post", "POST /metadata/timestamp.json\n".to_owned()),
        (
            "encoded",
            "GET /targets/pkg/%62ig.bin\nRange: bytes=0-0\n".to_owned(),
        ),
    ] {
        out.put("mirror_request", name, req.as_bytes());
    }
    for (path, content) in &targets {
        let req = format!("GET /targets/{path}\nRange: bytes=3-{}\n", content.len());
        out.put(
            "mirror_request",
            &format!("target-{}", short(path)),
            req.as_bytes(),
        );
    }

    out.put("feed_ip_list", "drop", feed.as_bytes());
    out.put(
        "feed_ip_list",
        "mixed",
        b"# hosts\n192.0.2.1\n2001:db8::1 # one\n\n198.51.100.0/24;x\n",
    );
    out.put("feed_mmdb", "empty-db", &testdata::mmdb());
    out.put(
        "feed_mmdb",
        "old-db",
        &testdata::mmdb_built_at(1_600_000_000),
    );
    let archive = testdata::rules_tar_gz().unwrap();
    out.put("feed_tar_gz", "rules", &archive);
    let mut two = archive.clone();
    two.extend_from_slice(&archive);
    out.put("feed_tar_gz", "two-members", &two);

    out.put(
        "feed_signature",
        "signed",
        sign(Some("timestamp:1795000000\tfile:drop.txt\thashed")).as_bytes(),
    );
    out.put(
        "feed_signature",
        "no-time",
        sign(Some("file:drop.txt")).as_bytes(),
    );
    out.put("feed_signature", "default", sign(None).as_bytes());

    let h1 = hex::encode(sha2::Sha256::digest(b"one"));
    let h2 = hex::encode(sha2::Sha256::digest(b"two")).to_uppercase();
    out.put(
        "feed_checksum",
        "sha256sum",
        format!("drop.txt\n{h1}  drop.txt\n{h2} *edrop.txt\n").as_bytes(),
    );
    out.put(
        "feed_checksum",
        "bare",
        format!("x.mmdb\n{h1}\n").as_bytes(),
    );

    for (name, raw) in [
        ("ok", &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..]),
        (
            "partial",
            b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 7-9/10\r\ncontent-length: 3\r\n\r\nabc",
        ),
        (
            "chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        ("close", b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end"),
        ("not-found", b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
        ("too-long", b"HTTP/1.1 200 OK\r\ncontent-length: 99999\r\n\r\nabc"),
    ] {
        out.put("http_response", name, raw);
    }

    let root_dir = here.parent().unwrap();
    for (dir, label) in [
        ("config/examples", "example"),
        ("packaging/etc/onionpkg", "packaged"),
    ] {
        for (i, kind) in ["fetcher", "mirror", "announce", "signer"]
            .iter()
            .enumerate()
        {
            let text = std::fs::read(root_dir.join(dir).join(format!("{kind}.toml"))).unwrap();
            let mut seed = vec![i as u8];
            seed.extend_from_slice(&text);
            out.put("config", &format!("{label}-{kind}"), &seed);
        }
    }

    out.put("tuf_root", "root-1", &metadata["1.root.json"]);
    out.put("tuf_root", "root-2", &metadata["2.root.json"]);
    let files: Vec<(String, &Vec<u8>)> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v))
        .chain(
            targets
                .iter()
                .map(|(k, v)| (format!("target-{}", short(k)), v)),
        )
        .collect();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let mut seed = vec![u8::try_from(i).unwrap()];
        seed.extend_from_slice(bytes);
        out.put("tuf_client", name, &seed);
    }
    println!("wrote {} seeds", out.count);
}

/// A mirror list with a clearnet and an onion mirror, valid at the fixed time.
fn mirror_list() -> String {
    let onion = |n: u8| onionpkg_trust::mirrors::onion_host(&[n; 32]);
    format!(
        r#"{{
  "version": 1,
  "expires": "2027-01-01T00:00:00Z",
  "mirrors": [
    {{
      "name": "primary",
      "clearnet": "https://updates.example.org/onionpkg/",
      "onion": "http://{}/",
      "region": "eu",
      "weight": 10
    }},
    {{ "name": "onion-only", "onion": "http://{}/repo/" }}
  ]
}}
"#,
        onion(1),
        onion(2)
    )
}

/// A DNS response to a TXT query for the owner, one record per entry, each
/// entry the record's character-strings.
fn dns_answer(records: &[&[&str]]) -> Vec<u8> {
    let name = Name::from_ascii(format!("{OWNER}.")).unwrap();
    let mut msg = Message::new(4242, MessageType::Response, OpCode::Query);
    for strings in records {
        let txt = TXT::new(strings.iter().map(|s| (*s).to_owned()).collect());
        msg.add_answer(Record::from_rdata(name.clone(), 300, RData::TXT(txt)));
    }
    msg.to_vec().unwrap()
}

/// A file name for a seed from a target path: the end of its base name.
fn short(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let skip = base.chars().count().saturating_sub(24);
    base.chars().skip(skip).collect()
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(base, &path, out);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

/// The seed directories, emptied of the seeds of an earlier run.
struct Seeds {
    dir: PathBuf,
    cleared: std::collections::BTreeSet<String>,
    count: usize,
}

impl Seeds {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            cleared: Default::default(),
            count: 0,
        }
    }

    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        if self.cleared.insert(target.to_owned()) && dir.exists() {
            // Regression inputs (`crash-*`, `timeout-*`) stay.
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let keep = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("crash-") || n.starts_with("timeout-"));
                if !keep {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        self.count += 1;
    }
}
