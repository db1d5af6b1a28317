//! Opening a small, hot file for a request without leaving the async thread.
//!
//! A request for a small file in the page cache would otherwise spend most of
//! its time on a hop to tokio's blocking pool and on resolving the path in
//! user space (`docs/bench/PROFILES.md`). Here the kernel does the work in
//! calls that refuse to wait instead of blocking:
//! - `openat2` below the root's directory descriptor with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS` (the file is the request's own path under the root,
//!   no symlink anywhere on the way) and `RESOLVE_CACHED` (fail rather than
//!   wait for a directory lookup on disk);
//! - `preadv2` with `RWF_NOWAIT` (fail rather than wait for the disk).
//!
//! # Invariants
//! - Nothing here blocks. Every "would have to wait", every symlink, every
//!   kernel without these flags is [`Fast::Slow`], and the caller takes the
//!   blocking path, which resolves symlinks and keeps them inside the served
//!   directories.
//! - What is served from here is the request's path itself, below the root:
//!   the request path was already checked (no `..`, `.` or empty segment, a
//!   served top-level directory), and the kernel refuses any symlink.
//! - A FIFO or device never blocks the open (`O_NONBLOCK`); only regular
//!   files are read.

use std::fs::{File, Metadata};
use std::io::IoSliceMut;
use std::os::fd::OwnedFd;

use bytes::Bytes;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::{Errno, ReadWriteFlags};

/// What the fast path found.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per request and unpacked at once; a box would cost an allocation"
)]
pub(crate) enum Fast {
    /// Opened; a regular file of at most the small size is read whole.
    Opened(File, Metadata, Option<Bytes>),
    /// The path does not exist (the kernel knows from its cache).
    Missing,
    /// Not decided here: take the blocking path.
    Slow,
}

/// Opens `rel` (checked request segments) below `root` without blocking,
/// reading it whole if it is a regular file of at most `small_max` bytes.
pub(crate) fn open(root: &OwnedFd, rel: &[String], small_max: u64) -> Fast {
    let path = rel.join("/");
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::CACHED;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat2(root, path.as_str(), flags, Mode::empty(), how) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Fast::Missing,
        // EAGAIN: not in the cache; ELOOP: a symlink; EXDEV: an escape;
        // ENOSYS, EINVAL: an older kernel. The blocking path decides.
        Err(_) => return Fast::Slow,
    };
    let file = File::from(fd);
    let Ok(meta) = file.metadata() else {
        return Fast::Slow;
    };
    if !meta.is_file() || meta.len() > small_max {
        return Fast::Opened(file, meta, None);
    }
    let Ok(len) = usize::try_from(meta.len()) else {
        return Fast::Slow;
    };
    let mut buf = vec![0u8; len];
    match rustix::io::preadv2(
        &file,
        &mut [IoSliceMut::new(&mut buf)],
        0,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) if n == len => Fast::Opened(file, meta, Some(Bytes::from(buf))),
        // Not all in the page cache, or the file changed under us.
        _ => Fast::Slow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn rel(path: &str) -> Vec<String> {
        path.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn a_plain_cached_file_is_read_and_symlinks_go_the_slow_way() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("metadata")).unwrap();
        std::fs::write(dir.join("metadata/timestamp.json"), b"{}").unwrap();
        std::fs::write(dir.join("metadata/big"), vec![7u8; 100]).unwrap();
        std::fs::write(dir.join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("metadata/link")).unwrap();
        std::os::unix::fs::symlink(dir.join("metadata"), dir.join("targets")).unwrap();
        let root = root(dir);

        match open(&root, &rel("metadata/timestamp.json"), 64) {
            Fast::Opened(_, meta, Some(bytes)) => {
                assert_eq!(&bytes[..], b"{}");
                assert_eq!(meta.len(), 2);
            }
            other => panic!("a hot small file: {other:?}"),
        }
        assert!(matches!(
            open(&root, &rel("metadata/big"), 64),
            Fast::Opened(_, _, None)
        ));
        assert!(matches!(
            open(&root, &rel("metadata/missing"), 64),
            Fast::Missing | Fast::Slow
        ));
        for link in ["metadata/link", "targets/timestamp.json"] {
            assert!(matches!(open(&root, &rel(link), 64), Fast::Slow), "{link}");
        }
        // A directory is opened, never read: the caller answers 404.
        assert!(matches!(
            open(&root, &rel("metadata"), 64),
            Fast::Opened(_, meta, None) if meta.is_dir()
        ));
    }

    #[test]
    fn a_fifo_does_not_block_the_open() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("feeds")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("feeds/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let root = root(tmp.path());
        assert!(matches!(
            open(&root, &rel("feeds/fifo"), 64),
            Fast::Opened(_, meta, None) if !meta.is_file()
        ));
    }
}
