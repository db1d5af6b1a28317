use std::io::Write as _;

use super::*;
use onionpkg_testkit::testdata;

fn check_bytes(check: FeedCheck, bytes: &[u8]) -> Result<String, String> {
    dated(check, bytes).map(|c| c.summary)
}

fn dated(check: FeedCheck, bytes: &[u8]) -> Result<Checked, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed");
    std::fs::write(&path, bytes).unwrap();
    check_file(check, &path, 1 << 20, None)
}

#[test]
fn drop_style_lists_pass() {
    let ok = check_bytes(FeedCheck::IpList, testdata::DROP_LIST.as_bytes()).unwrap();
    assert_eq!(ok, "4 addresses or networks");
    check_bytes(FeedCheck::IpList, b"192.0.2.1\n2001:db8::/32\n").unwrap();
}

#[test]
fn lists_with_anything_else_fail_with_the_line() {
    for (bad, needle) in [
        (&b"192.0.2.0/24\n<html>blocked</html>\n"[..], "line 2"),
        (b"192.0.2.0/33\n", "line 1"),
        (b"192.0.2.1 192.0.2.2\n", "line 1"),
        (b"\xff\xfe\n", "not UTF-8"),
        (b"; only comments\n\n", "no address"),
        (b"", "no address"),
    ] {
        let e = check_bytes(FeedCheck::IpList, bad).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
    let long = vec![b'1'; MAX_LINE + 10];
    let e = check_bytes(FeedCheck::IpList, &long).unwrap_err();
    assert!(e.contains("longer than"), "{e}");
}

#[test]
fn mmdb_needs_the_metadata_marker() {
    let db = testdata::mmdb();
    assert!(
        check_bytes(FeedCheck::Mmdb, &db)
            .unwrap()
            .starts_with("MaxMind DB")
    );
    let e = check_bytes(FeedCheck::Mmdb, b"<html>not found</html>").unwrap_err();
    assert!(e.contains("marker"), "{e}");
    let e = check_bytes(FeedCheck::Mmdb, MMDB_MARKER).unwrap_err();
    assert!(e.contains("not followed"), "{e}");
    // Metadata must be metadata, with a build time.
    let mut junk = MMDB_MARKER.to_vec();
    junk.extend_from_slice(b"<html>");
    let e = check_bytes(FeedCheck::Mmdb, &junk).unwrap_err();
    assert!(e.contains("MaxMind DB metadata"), "{e}");
    // The marker must be in the tail, where readers look for it.
    let mut buried = db;
    buried.extend(std::iter::repeat_n(0u8, 200 * 1024));
    check_bytes(FeedCheck::Mmdb, &buried).unwrap_err();
}

#[test]
fn an_mmdb_is_dated_by_its_build_epoch() {
    let c = dated(FeedCheck::Mmdb, &testdata::mmdb_built_at(1_790_000_000)).unwrap();
    let made = c.made.unwrap();
    assert_eq!(made.time, Timestamp::from_second(1_790_000_000).unwrap());
    assert_eq!(made.from, TimeSource::MmdbBuildEpoch);
    // Formats without a date have none.
    let list = dated(FeedCheck::IpList, testdata::DROP_LIST.as_bytes()).unwrap();
    assert_eq!(list.made, None);
    let rules = dated(FeedCheck::TarGz, &testdata::rules_tar_gz().unwrap()).unwrap();
    assert_eq!(rules.made, None);
}

#[test]
fn rules_archives_pass() {
    let ok = check_bytes(FeedCheck::TarGz, &testdata::rules_tar_gz().unwrap()).unwrap();
    assert!(ok.starts_with("2 files"), "{ok}");
}

/// A raw tar entry: a header naming `path` (and `link`) of type `kind`,
/// then `body` padded to whole blocks. Raw, as tar's builder refuses such
/// paths.
fn raw_entry(path: &str, kind: tar::EntryType, link: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        header.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// The end-of-archive marker: two zero blocks.
const END: [u8; 1024] = [0; 1024];

/// `data` as one gzip member.
fn gz(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Entries that must be refused wherever they are, with the reason.
fn escaping_entries() -> Vec<(Vec<u8>, &'static str)> {
    use tar::EntryType::{Char, Fifo, Link, Regular, Symlink};
    vec![
        (raw_entry("../x", Regular, None, b"x"), "'..'"),
        (raw_entry("/etc/cron.d/x", Regular, None, b"x"), "absolute"),
        (
            raw_entry("rules/l", Symlink, Some("../../etc"), b""),
            "link target",
        ),
        (
            raw_entry("rules/a", Symlink, Some("/etc/shadow"), b""),
            "link target",
        ),
        (
            raw_entry("rules/h", Link, Some("../../etc/passwd"), b""),
            "link target",
        ),
        (raw_entry("rules/dev", Char, None, b""), "not a file"),
        (raw_entry("rules/fifo", Fifo, None, b""), "not a file"),
    ]
}

#[test]
fn every_gzip_member_is_checked() {
    let good = raw_entry("rules/a.rules", tar::EntryType::Regular, None, b"alert");
    for (bad, needle) in escaping_entries() {
        // The first member ends mid-archive: `tar xzf` reads on into the
        // second as one archive.
        let split = [gz(&good), gz(&[&bad[..], &END].concat())].concat();
        let e = check_bytes(FeedCheck::TarGz, &split).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
        // A whole archive, then a second one after its end marker (read by
        // `tar -i`, and by tools that concatenate archives).
        let appended = [
            gz(&[&good[..], &END].concat()),
            gz(&[&bad[..], &END].concat()),
        ]
        .concat();
        let e = check_bytes(FeedCheck::TarGz, &appended).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // Good members pass, and every member's files count.
    let other = raw_entry("rules/b.rules", tar::EntryType::Regular, None, b"alert");
    let two = [gz(&good), gz(&[&other[..], &END].concat())].concat();
    let ok = check_bytes(FeedCheck::TarGz, &two).unwrap();
    assert!(ok.starts_with("2 files"), "{ok}");
    // Anything after the last member that is not one is refused.
    let mut trailing = two;
    trailing.extend_from_slice(b"not a gzip member");
    let e = check_bytes(FeedCheck::TarGz, &trailing).unwrap_err();
    assert!(e.contains("gzip"), "{e}");
}

/// A tar.gz with one entry whose header names `path` (and `link`).
fn raw_tar_gz(path: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    gz(&[raw_entry(path, kind, link, b""), END.to_vec()].concat())
}

#[test]
fn archives_that_escape_fail() {
    for (path, kind, link, needle) in [
        ("../etc/passwd", tar::EntryType::Regular, None, "'..'"),
        ("rules/../../x", tar::EntryType::Regular, None, "'..'"),
        ("/etc/passwd", tar::EntryType::Regular, None, "absolute"),
        (
            "rules/x",
            tar::EntryType::Symlink,
            Some("/etc/shadow"),
            "link target",
        ),
        (
            "rules/y",
            tar::EntryType::Link,
            Some("../../z"),
            "link target",
        ),
        ("rules/dev", tar::EntryType::Char, None, "not a file"),
    ] {
        let e = check_bytes(FeedCheck::TarGz, &raw_tar_gz(path, kind, link)).unwrap_err();
        assert!(e.contains(needle), "{path}: {e}");
    }
}

#[test]
fn damaged_or_foreign_archives_fail() {
    let mut good = testdata::rules_tar_gz().unwrap();
    let n = good.len();
    good[n - 6] ^= 0xff; // the gzip CRC
    check_bytes(FeedCheck::TarGz, &good).unwrap_err();
    check_bytes(FeedCheck::TarGz, b"plain text, not gzip").unwrap_err();
    let e = check_bytes(
        FeedCheck::TarGz,
        &raw_tar_gz("rules", tar::EntryType::Directory, None),
    )
    .unwrap_err();
    assert!(e.contains("no file"), "{e}");
}

#[test]
fn gzip_bombs_are_not_unpacked() {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let zeros = vec![0u8; 4 << 20];
    let mut h = tar::Header::new_gnu();
    h.set_size(zeros.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "zeros", &zeros[..]).unwrap();
    let bomb = b.into_inner().unwrap().finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed");
    std::fs::write(&path, &bomb).unwrap();
    // A 64 KiB cap allows 1 MiB unpacked.
    let e = check_file(FeedCheck::TarGz, &path, 64 * 1024, None).unwrap_err();
    assert!(e.contains("unpacks to more than 1048576 bytes"), "{e}");
    check_file(FeedCheck::TarGz, &path, 1 << 20, None).unwrap();
}

/// One file of 4 MiB of zeros whose content is spread over eight gzip
/// members of 512 KiB each, then a member with the end marker.
fn bomb_over_members() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(4 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let chunk = vec![0u8; 512 * 1024];
    let mut out = gz(&[h.as_bytes(), &chunk[..]].concat());
    for _ in 0..7 {
        out.extend(gz(&chunk));
    }
    out.extend(gz(&END));
    out
}

#[test]
fn gzip_bombs_spread_over_members_are_cut_at_the_cap() {
    let bomb = bomb_over_members();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed");
    std::fs::write(&path, &bomb).unwrap();
    // Each member is under the 1 MiB a 64 KiB cap allows; all of them are not.
    let e = check_file(FeedCheck::TarGz, &path, 64 * 1024, None).unwrap_err();
    assert!(e.contains("unpacks to more than 1048576 bytes"), "{e}");
    let ok = check_file(FeedCheck::TarGz, &path, 1 << 20, None).unwrap();
    assert_eq!(ok.summary, "1 files, 4194304 bytes unpacked");
}

#[test]
fn any_only_counts() {
    assert_eq!(
        check_bytes(FeedCheck::Any, b"xyz").unwrap(),
        "3 bytes, not checked"
    );
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn bombs_are_never_decompressed_past_the_cap() {
    let mut single = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    single
        .append_data(&mut h, "zeros", &vec![0u8; 4 << 20][..])
        .unwrap();
    let single = single.into_inner().unwrap().finish().unwrap();
    let cap = 1 << 20;
    for bomb in [single, bomb_over_members()] {
        let read = std::rc::Rc::default();
        let unpacked = Counting {
            inner: flate2::read::MultiGzDecoder::new(&bomb[..]),
            read: std::rc::Rc::clone(&read),
        };
        let e = tar_stream(unpacked, cap).unwrap_err();
        assert!(e.contains("unpacks to more than"), "{e}");
        // The cap and the one byte that shows there is more.
        assert_eq!(read.get(), cap + 1);
    }
}
