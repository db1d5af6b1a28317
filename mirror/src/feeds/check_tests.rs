use std::io::Write as _;

use super::*;
use crate::feeds::testdata;

fn check_bytes(check: FeedCheck, bytes: &[u8]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed");
    std::fs::write(&path, bytes).unwrap();
    check_file(check, &path, 1 << 20)
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
    // The marker must be in the tail, where readers look for it.
    let mut buried = db;
    buried.extend(std::iter::repeat_n(0u8, 200 * 1024));
    check_bytes(FeedCheck::Mmdb, &buried).unwrap_err();
}

#[test]
fn rules_archives_pass() {
    let ok = check_bytes(FeedCheck::TarGz, &testdata::rules_tar_gz().unwrap()).unwrap();
    assert!(ok.starts_with("2 files"), "{ok}");
}

/// A tar.gz with one entry whose header names `path` (and `link`), written
/// raw: tar's builder refuses such paths.
fn raw_tar_gz(path: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        header.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(header.as_bytes()).unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
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
    check_file(FeedCheck::TarGz, &path, 64 * 1024).unwrap_err();
    check_file(FeedCheck::TarGz, &path, 1 << 20).unwrap();
}

#[test]
fn any_only_counts() {
    assert_eq!(
        check_bytes(FeedCheck::Any, b"xyz").unwrap(),
        "3 bytes, not checked"
    );
}
