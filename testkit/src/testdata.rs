//! Realistic sample feeds, made locally, for tests and the demo: a
//! DROP-style IP blocklist, an IDS rules archive and a MaxMind DB. Every
//! address in them is from the ranges reserved for documentation.

/// An IP blocklist in the format of Spamhaus DROP: `CIDR ; SBL id` lines and
/// `;` comments.
pub const DROP_LIST: &str = "\
; onionpkg sample DROP list, format of Spamhaus DROP
; Last-Modified: Mon, 23 Nov 2026 12:00:00 GMT
; Expires: Tue, 24 Nov 2026 12:00:00 GMT
192.0.2.0/24 ; SBL000001
198.51.100.0/24 ; SBL000002
203.0.113.0/25 ; SBL000003
2001:db8:1::/48 ; SBL000004
";

/// Suricata-style rules, as in an IDS rules tarball.
const RULES: &str = "\
alert tcp $EXTERNAL_NET any -> $HOME_NET 22 (msg:\"onionpkg sample: SSH scan\"; \
flags:S; threshold:type both, track by_src, count 5, seconds 60; \
classtype:attempted-recon; sid:9000001; rev:1;)
alert ip [192.0.2.0/24,198.51.100.0/24] any -> $HOME_NET any \
(msg:\"onionpkg sample: DROP-listed source\"; classtype:misc-attack; sid:9000002; rev:1;)
";

/// The classification file of the rules archive.
const CLASSIFICATION: &str = "\
config classification: attempted-recon,Attempted Information Leak,2
config classification: misc-attack,Misc Attack,2
";

/// An IDS rules archive: `rules/` with a rules file and a classification file.
pub fn rules_tar_gz() -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, body) in [
        ("rules/onionpkg-sample.rules", RULES),
        ("rules/classification.config", CLASSIFICATION),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_795_000_000);
        h.set_cksum();
        tar.append_data(&mut h, path, body.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

/// The MaxMind DB metadata marker, as the format defines it (the mirror's
/// check looks for the same bytes).
const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// When [`mmdb`]'s database was built: its metadata's `build_epoch`.
pub const MMDB_BUILD_EPOCH: u64 = 1_795_000_000;

/// A MaxMind DB (format 2.0) with an IPv4 search tree of one node and no
/// data: a valid, empty database, built with the format's own encoding.
pub fn mmdb() -> Vec<u8> {
    mmdb_built_at(MMDB_BUILD_EPOCH)
}

/// [`mmdb`], built at `build_epoch` (Unix seconds) by its metadata.
pub fn mmdb_built_at(build_epoch: u64) -> Vec<u8> {
    let mut out = Vec::new();
    // One node, both 24-bit records pointing past the tree: "no data".
    out.extend_from_slice(&[0, 0, 1, 0, 0, 1]);
    // The data section separator, then an empty data section.
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(MMDB_MARKER);
    let mut meta = Vec::new();
    map(&mut meta, 9);
    string(&mut meta, "binary_format_major_version");
    uint(&mut meta, 5, 2);
    string(&mut meta, "binary_format_minor_version");
    uint(&mut meta, 5, 0);
    string(&mut meta, "build_epoch");
    extended(&mut meta, 2, build_epoch);
    string(&mut meta, "database_type");
    string(&mut meta, "onionpkg-sample-country");
    string(&mut meta, "description");
    map(&mut meta, 1);
    string(&mut meta, "en");
    string(&mut meta, "onionpkg sample GeoIP database");
    string(&mut meta, "ip_version");
    uint(&mut meta, 5, 4);
    string(&mut meta, "languages");
    meta.extend_from_slice(&[0, 4]); // an empty array
    string(&mut meta, "node_count");
    uint(&mut meta, 6, 1);
    string(&mut meta, "record_size");
    uint(&mut meta, 5, 24);
    out.extend_from_slice(&meta);
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Short strings only: the size fits the control byte.
    out.push(0x40 | (s.len() as u8 & 0x1f));
    out.extend_from_slice(s.as_bytes());
}

fn map(out: &mut Vec<u8>, pairs: u8) {
    out.push(0xe0 | (pairs & 0x1f));
}

/// An unsigned integer of type `kind` (5: uint16, 6: uint32) in as few bytes
/// as it needs.
fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = minimal(v);
    out.push((kind << 5) | bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

/// An integer of extended type `7 + ext` (2: uint64).
fn extended(out: &mut Vec<u8>, ext: u8, v: u64) {
    let bytes = minimal(v);
    out.push(bytes.len() as u8);
    out.push(ext);
    out.extend_from_slice(&bytes);
}

fn minimal(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count();
    b[skip..].to_vec()
}
