//! The content checks a feed must pass before it is stored and published.
//!
//! Each check reads the downloaded file from disk, never the network, and
//! is bounded: lines of an `ip-list` are capped in length, an `mmdb` is
//! searched only in its tail, and a `tar.gz` is decompressed up to a fixed
//! multiple of the feed's size cap (a gzip bomb is refused, not unpacked).
//! A check says what it saw, for the status report.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Component, Path};

use onionpkg_config::mirror::FeedCheck;

/// The MaxMind DB metadata marker, which every `.mmdb` file has near its end.
pub const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// The marker lies within this many bytes of the end of an `.mmdb` file.
const MMDB_TAIL: u64 = 128 * 1024;

/// The longest line an `ip-list` may have.
const MAX_LINE: usize = 4096;

/// How many times its compressed size cap a `tar.gz` may decompress to.
const MAX_EXPANSION: u64 = 16;

/// Runs `check` on the file at `path`, downloaded under a cap of `max_size`
/// bytes. Returns a short description of what it found, or why it failed.
pub fn check_file(check: FeedCheck, path: &Path, max_size: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the download: {e}"))?;
    match check {
        FeedCheck::IpList => ip_list(file),
        FeedCheck::Mmdb => mmdb(file),
        FeedCheck::TarGz => tar_gz(file, max_size.saturating_mul(MAX_EXPANSION)),
        FeedCheck::Any => {
            let len = file
                .metadata()
                .map_err(|e| format!("cannot read the download: {e}"))?
                .len();
            Ok(format!("{len} bytes, not checked"))
        }
    }
}

/// Each line an IPv4 or IPv6 address or network (CIDR), optionally followed
/// by a `;` or `#` comment, or a comment or blank line. At least one entry.
fn ip_list(file: std::fs::File) -> Result<String, String> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut n, mut entries) = (0usize, 0usize);
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read the download: {e}"))?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.len() > MAX_LINE {
            return Err(format!("line {n}: longer than {MAX_LINE} bytes"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| format!("line {n}: not UTF-8 text"))?;
        let data = text.split([';', '#']).next().unwrap_or_default().trim();
        if data.is_empty() {
            continue;
        }
        let mut tokens = data.split_whitespace();
        let token = tokens.next().unwrap_or_default();
        if tokens.next().is_some() || !is_ip_or_net(token) {
            let shown: String = data.chars().take(60).collect();
            return Err(format!(
                "line {n}: {shown:?} is not an IP address or network"
            ));
        }
        entries += 1;
    }
    if entries == 0 {
        return Err("no address or network in the list".into());
    }
    Ok(format!("{entries} addresses or networks"))
}

fn is_ip_or_net(token: &str) -> bool {
    token.parse::<IpAddr>().is_ok() || token.parse::<ipnet::IpNet>().is_ok()
}

/// The MaxMind DB metadata marker in the file's last 128 KiB, followed by
/// metadata.
fn mmdb(mut file: std::fs::File) -> Result<String, String> {
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read the download: {e}"))?
        .len();
    let start = len.saturating_sub(MMDB_TAIL);
    file.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot read the download: {e}"))?;
    let mut tail = Vec::new();
    file.take(MMDB_TAIL)
        .read_to_end(&mut tail)
        .map_err(|e| format!("cannot read the download: {e}"))?;
    let at = tail
        .windows(MMDB_MARKER.len())
        .rposition(|w| w == MMDB_MARKER)
        .ok_or("no MaxMind DB metadata marker: not an mmdb file")?;
    if at + MMDB_MARKER.len() == tail.len() {
        return Err("the MaxMind DB metadata marker is not followed by metadata".into());
    }
    Ok(format!("MaxMind DB, {len} bytes"))
}

/// A gzip-compressed tar archive, read to its end (so the gzip checksum is
/// checked), whose entries are files or directories (or links to them) with
/// relative paths that never climb out with `..`.
fn tar_gz(file: std::fs::File, max_unpacked: u64) -> Result<String, String> {
    let gz = flate2::read::GzDecoder::new(BufReader::new(file));
    let mut archive = tar::Archive::new(gz.take(max_unpacked.saturating_add(1)));
    let (mut files, mut total) = (0usize, 0u64);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar.gz archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a valid tar.gz archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry has an unusable path: {e}"))?
            .into_owned();
        check_archive_path(&path)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| format!("{}: unusable link target: {e}", path.display()))?
                .ok_or_else(|| format!("{}: a link without a target", path.display()))?;
            check_archive_path(&target)
                .map_err(|e| format!("{}: link target {e}", path.display()))?;
        } else if kind.is_file() {
            files += 1;
        } else if !kind.is_dir() {
            return Err(format!("{}: not a file, directory or link", path.display()));
        }
        total += std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| format!("{}: cannot unpack: {e}", path.display()))?;
    }
    // The rest of the stream, so a damaged gzip trailer fails the check.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| format!("not a valid gzip stream: {e}"))?;
    if rest.limit() == 0 {
        return Err(format!("unpacks to more than {max_unpacked} bytes"));
    }
    if files == 0 {
        return Err("the archive holds no file".into());
    }
    Ok(format!("{files} files, {total} bytes unpacked"))
}

fn check_archive_path(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("an empty path".into());
    }
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("{} climbs out with '..'", path.display()));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{} is an absolute path", path.display()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
