//! The content checks a feed must pass before it is stored and published.
//!
//! Each check reads the downloaded file from disk, never the network, and
//! is bounded: lines of an `ip-list` are capped in length, an `mmdb` is
//! searched only in its tail, and a `tar.gz` is decompressed up to a fixed
//! multiple of the feed's size cap (a gzip bomb is refused, not unpacked).
//! A check says what it saw, for the status report, and when the content
//! says it was made, where the format has a date (`mmdb`: the metadata's
//! `build_epoch`), for the version floor ([`super::floor`]).
//!
//! # Invariants
//! - A `tar.gz` is checked as a consumer unpacks it: every gzip member, and
//!   every tar entry, also after an end-of-archive marker. The cap on
//!   decompressed bytes counts all members together, and no more than the
//!   cap (and one byte) is ever decompressed.
//! - No entry of a passing archive is a device, a fifo or anything but a
//!   file, a directory or a link; no path or link target is absolute or
//!   climbs with `..`.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Component, Path};

use jiff::Timestamp;
use onionpkg_config::mirror::FeedCheck;

use super::floor::{TimeSource, VersionTime};
use super::geoip::{self, Family};
use super::libloc::{self, LiblocKey};

/// The MaxMind DB metadata marker, which every `.mmdb` file has near its end.
pub const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// The marker lies within this many bytes of the end of an `.mmdb` file.
const MMDB_TAIL: u64 = 128 * 1024;

/// The longest line an `ip-list` may have.
const MAX_LINE: usize = 4096;

/// How many times its compressed size cap a `tar.gz` may decompress to.
const MAX_EXPANSION: u64 = 16;

/// What a passing check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// A short description, for the status report.
    pub summary: String,
    /// When the content says it was made, for formats that carry a date.
    pub made: Option<VersionTime>,
}

impl Checked {
    fn undated(summary: String) -> Self {
        Self {
            summary,
            made: None,
        }
    }
}

/// Runs `check` on the file at `path`, downloaded under a cap of `max_size`
/// bytes; a `libloc` database is verified against `libloc_key`. Returns
/// what it found, or why it failed. (`external` checks nothing here: its
/// checker runs after, see [`super::external`].)
pub fn check_file(
    check: FeedCheck,
    path: &Path,
    max_size: u64,
    libloc_key: Option<&LiblocKey>,
) -> Result<Checked, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the download: {e}"))?;
    match check {
        FeedCheck::IpList => ip_list(file).map(Checked::undated),
        FeedCheck::Mmdb => mmdb(file),
        FeedCheck::TarGz => {
            tar_gz(file, max_size.saturating_mul(MAX_EXPANSION)).map(Checked::undated)
        }
        FeedCheck::Libloc => {
            let key = libloc_key.ok_or("no libloc_key to verify the database with")?;
            libloc::check(path, key)
        }
        FeedCheck::TorGeoip => geoip::check(file, Family::V4),
        FeedCheck::TorGeoip6 => geoip::check(file, Family::V6),
        FeedCheck::Any | FeedCheck::External => {
            let len = file
                .metadata()
                .map_err(|e| format!("cannot read the download: {e}"))?
                .len();
            Ok(Checked::undated(format!("{len} bytes, not checked")))
        }
    }
}

/// Calls `each` with the number (from 1) and text of every line of `input`,
/// line end included, until it refuses one. A line longer than `max` bytes
/// or not UTF-8 is refused here, so a file without newlines is never
/// buffered whole.
pub(super) fn text_lines(
    input: impl Read,
    max: usize,
    mut each: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read the download: {e}"))?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        if line.len() > max {
            return Err(format!("line {n}: longer than {max} bytes"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| format!("line {n}: not UTF-8 text"))?;
        each(n, text)?;
    }
}

/// Each line an IPv4 or IPv6 address or network (CIDR), optionally followed
/// by a `;` or `#` comment, or a comment or blank line. At least one entry.
fn ip_list(file: std::fs::File) -> Result<String, String> {
    let mut entries = 0usize;
    text_lines(file, MAX_LINE, |n, text| {
        let data = text.split([';', '#']).next().unwrap_or_default().trim();
        if data.is_empty() {
            return Ok(());
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
        Ok(())
    })?;
    if entries == 0 {
        return Err("no address or network in the list".into());
    }
    Ok(format!("{entries} addresses or networks"))
}

fn is_ip_or_net(token: &str) -> bool {
    token.parse::<IpAddr>().is_ok() || token.parse::<ipnet::IpNet>().is_ok()
}

/// The MaxMind DB metadata marker in the file's last 128 KiB, followed by
/// metadata with a `build_epoch`, the database's version time.
fn mmdb(mut file: std::fs::File) -> Result<Checked, String> {
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
    let meta = &tail[at + MMDB_MARKER.len()..];
    if meta.is_empty() {
        return Err("the MaxMind DB metadata marker is not followed by metadata".into());
    }
    let epoch = super::mmdb::build_epoch(meta)?;
    let time = i64::try_from(epoch)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or_else(|| format!("the MaxMind DB build_epoch {epoch} is not a usable time"))?;
    Ok(Checked {
        summary: format!("MaxMind DB, {len} bytes"),
        made: Some(VersionTime {
            time,
            from: TimeSource::MmdbBuildEpoch,
        }),
    })
}

/// A gzip-compressed tar archive, read to its end (so every gzip checksum is
/// checked), whose entries are files or directories (or links to them) with
/// relative paths that never climb out with `..`.
///
/// Every gzip member is read, not only the first: `tar xzf` (gzip, and any
/// consumer) unpacks concatenated members as one stream, so a check of the
/// first alone would pass entries that a consumer unpacks unchecked.
/// Refusing a second member outright would refuse archives that gzip reads
/// fine (bgzip and parallel compressors write several), so all are checked.
fn tar_gz(file: std::fs::File, max_unpacked: u64) -> Result<String, String> {
    tar_stream(
        flate2::read::MultiGzDecoder::new(BufReader::new(file)),
        max_unpacked,
    )
}

/// Checks the tar archive `unpacked` (the decompressed stream), reading at
/// most `max_unpacked` bytes of it, plus one to see that there is more.
fn tar_stream(unpacked: impl Read, max_unpacked: u64) -> Result<String, String> {
    let mut archive = tar::Archive::new(Capped {
        inner: unpacked,
        left: max_unpacked,
        exceeded: false,
    });
    // Entries after an end-of-archive marker are checked too: `tar -i` and
    // tools that concatenate archives unpack them.
    archive.set_ignore_zeros(true);
    let entries = (|| -> Result<(usize, u64), String> {
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
        Ok((files, total))
    })();
    // The rest of the stream, so a damaged gzip trailer or anything after
    // the last member fails the check.
    let mut rest = archive.into_inner();
    let rest_read = match entries {
        Ok(_) => std::io::copy(&mut rest, &mut std::io::sink()).map(|_| ()),
        Err(_) => Ok(()),
    };
    // Whatever tar made of a stream cut at the cap, the cap is the reason.
    if rest.exceeded {
        return Err(format!("unpacks to more than {max_unpacked} bytes"));
    }
    let (files, total) = entries?;
    rest_read.map_err(|e| format!("not a valid gzip stream: {e}"))?;
    if files == 0 {
        return Err("the archive holds no file".into());
    }
    Ok(format!("{files} files, {total} bytes unpacked"))
}

/// A reader that yields at most `left` bytes of `inner` and fails, noting
/// it, when `inner` has more: a cap that a decompressor cannot get past.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One byte more than the cap, only to tell the end from more.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded = true;
                    Err(std::io::Error::other("more than the cap unpacked"))
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
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
