//! Downloading one verified target into the output directory.
//!
//! The bytes go to `DIR/.NAME.onionpkg-partial` (a hidden name no package
//! manager picks up), capped at the signed length and hashed on the way;
//! only after the last byte verifies is the file fsync'd and renamed to
//! `DIR/NAME`. A partial file left by an interrupted run, or by another
//! mirror that dropped the connection, is resumed with a `Range` request
//! once its prefix has been hashed again; whatever happens, the whole file
//! is verified at the end.
//!
//! # Invariants
//! - A resumed file that fails verification is downloaded again whole from
//!   the same mirror before that mirror is blamed: the bad bytes may have
//!   come from whoever wrote the prefix, and blaming the mirror that
//!   finished it would steer appliances away from honest mirrors.
//! - The output directory is opened once, by handle ([`OutDir`]); every
//!   directory and file below it is opened relative to that handle and never
//!   through a symbolic link, so a link planted at a partial file's name or
//!   in a target's directory cannot send bytes elsewhere.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use onionpkg_core::url::WebUrl;
use onionpkg_net::HttpUrl;
use onionpkg_net::tor::Purpose;
use onionpkg_net::transport::Transport;
use onionpkg_trust::metadata::{TargetFile, TargetVerifier, VerifyError};
use rustix::fs::{AtFlags, Mode, OFlags};
use tokio::time::Instant;
use tracing::warn;

/// The suffix of files still being downloaded.
pub const PARTIAL_SUFFIX: &str = ".onionpkg-partial";

/// The output directory, opened once; everything below it is reached from
/// this handle without following links.
#[derive(Debug)]
pub struct OutDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The directory of one target inside the output directory, and the names
/// of its final and partial files there.
struct Place {
    dir: OwnedFd,
    name: String,
    partial: String,
    /// For messages only.
    dest: PathBuf,
}

fn open_dir_flags() -> OFlags {
    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC
}

impl OutDir {
    /// Creates (if needed) and opens the output directory at `path`. The
    /// configured path itself may be a link the administrator made; nothing
    /// below it may.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        let fd = rustix::fs::open(path, open_dir_flags(), Mode::empty())?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where target `path` ends up, for reports.
    pub fn dest(&self, path: &str) -> PathBuf {
        self.path.join(path)
    }

    /// Opens (creating them) the directories of target `path`, each
    /// component without following a link.
    fn place(&self, path: &str) -> std::io::Result<Place> {
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap_or_default().to_owned();
        if name.is_empty()
            || parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unsafe target path {path:?}"),
            ));
        }
        let mut dir = self.fd.try_clone()?;
        for part in parts {
            match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = rustix::fs::openat(
                &dir,
                part,
                open_dir_flags() | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .map_err(|e| link_in_the_way(e, &self.path, path))?;
        }
        Ok(Place {
            dir,
            partial: format!(".{name}{PARTIAL_SUFFIX}"),
            dest: self.dest(path),
            name,
        })
    }
}

/// ELOOP from an `O_NOFOLLOW` open means a link sits where a directory of
/// ours belongs.
fn link_in_the_way(e: rustix::io::Errno, out: &Path, path: &str) -> std::io::Error {
    if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
        std::io::Error::other(format!(
            "a link or file is in the way of the directories of {path} in {}; \
             refusing to follow it",
            out.display()
        ))
    } else {
        e.into()
    }
}

/// Limits on one download.
#[derive(Debug, Clone, Copy)]
pub struct DownloadLimits {
    /// The slowest rate tolerated, bytes per second over `window`.
    pub min_throughput: u64,
    /// The window the rate is measured over.
    pub window: Duration,
    /// When the whole update must be over.
    pub deadline: Instant,
}

/// One target to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    /// The target path, as signed (`pkg/hello-1.0.tar`).
    pub path: String,
    /// Its signed length and hashes.
    pub info: TargetFile,
    /// The path on the mirror (`pkg/HASH.hello-1.0.tar` with consistent snapshots).
    pub remote_path: String,
}

/// Why a download from one mirror failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The mirror sent something that does not verify, or too slowly: avoid it.
    #[error("{0}")]
    Mirror(String),
    /// The bytes run past the signed length or do not match the signed
    /// hashes. The mirror that sent them is to blame unless part of the file
    /// came from elsewhere.
    #[error("{0}")]
    Unverified(String),
    /// The mirror could not be reached or the transfer broke: try another.
    #[error("{0}")]
    Network(String),
    /// The update's deadline passed.
    #[error("the download deadline passed")]
    Deadline,
    /// A local file could not be written: no mirror would help.
    #[error("{path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Whether the file for `job` in `out` is already the signed target. A
/// link at its name is not followed: it counts as absent, and the download
/// replaces it.
pub fn already_there(out: &OutDir, job: &Job) -> bool {
    let Ok(place) = out.place(&job.path) else {
        return false;
    };
    let Ok(fd) = rustix::fs::openat(
        &place.dir,
        place.name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut f = std::fs::File::from(fd);
    let Ok(mut v) = TargetVerifier::new(&job.path, &job.info) else {
        return false;
    };
    hash_prefix(&mut f, &mut v).is_ok() && v.finish().is_ok()
}

fn local(path: &Path) -> impl Fn(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Local {
        path: path.to_owned(),
        source,
    }
}

/// Feeds a file's bytes to the verifier.
fn hash_prefix(f: &mut std::fs::File, v: &mut TargetVerifier) -> Result<(), VerifyError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| VerifyError::Store(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        v.update(&buf[..n])?;
    }
}

/// Opens the partial file of `place` for reading and writing. A link
/// planted at its name is removed, never followed.
fn open_partial(place: &Place) -> std::io::Result<std::fs::File> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o644);
    match rustix::fs::openat(&place.dir, place.partial.as_str(), flags, mode) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        Err(rustix::io::Errno::LOOP) => {
            warn!(file = %place.partial, "a link was planted at a partial file's name; removing it");
            rustix::fs::unlinkat(&place.dir, place.partial.as_str(), AtFlags::empty())?;
            let fd = rustix::fs::openat(
                &place.dir,
                place.partial.as_str(),
                flags | OFlags::EXCL,
                mode,
            )?;
            Ok(std::fs::File::from(fd))
        }
        Err(e) => Err(e.into()),
    }
}

/// Downloads `job` from the mirror at `base` into `out`, resuming a partial
/// file; `progress`, if given, follows the bytes on disk. Returns the final
/// path.
pub async fn download(
    transport: &Transport,
    base: &WebUrl,
    job: &Job,
    out: &OutDir,
    limits: &DownloadLimits,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<PathBuf, DownloadError> {
    let out_path = out.path().to_owned();
    let place = out.place(&job.path).map_err(local(&out_path))?;
    let partial = place.dest.with_file_name(&place.partial);
    let mut file = open_partial(&place).map_err(local(&partial))?;
    let fresh = || {
        TargetVerifier::new(&job.path, &job.info).map_err(|e| DownloadError::Mirror(e.to_string()))
    };
    let mut verifier = fresh()?;
    let mut have = file.metadata().map_err(local(&partial))?.len();
    if have > job.info.length || (have > 0 && hash_prefix(&mut file, &mut verifier).is_err()) {
        have = 0;
    }
    if have == 0 {
        file.set_len(0).map_err(local(&partial))?;
        verifier = fresh()?;
    }
    // Bytes this mirror did not send are in the file: a failure at the end
    // does not prove this mirror wrong.
    let mut resumed = have > 0;
    if let Some(p) = progress {
        p.set_length(job.info.length);
        p.set_position(have);
    }
    loop {
        if have < job.info.length {
            let mut t = Transfer {
                file: &mut file,
                partial: &partial,
                verifier: &mut verifier,
                progress,
                restarted: false,
            };
            let fetched = fetch_rest(transport, base, job, &mut t, have, limits).await;
            if t.restarted {
                // The mirror ignored the range and sent the whole file.
                resumed = false;
            }
            match fetched {
                Ok(()) => {}
                // Too long on a resumed file: the prefix may be to blame.
                Err(DownloadError::Unverified(_)) if resumed => {
                    warn!(target = %job.path, "a resumed download failed verification; downloading it whole");
                    (have, resumed) = (0, false);
                    file.set_len(0).map_err(local(&partial))?;
                    file.seek(SeekFrom::Start(0)).map_err(local(&partial))?;
                    verifier = fresh()?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let done = std::mem::replace(&mut verifier, fresh()?);
        match done.finish() {
            Ok(()) => break,
            Err(e) if resumed => {
                warn!(target = %job.path, error = %e, "a resumed download failed verification; downloading it whole");
                (have, resumed) = (0, false);
                file.set_len(0).map_err(local(&partial))?;
                file.seek(SeekFrom::Start(0)).map_err(local(&partial))?;
                if let Some(p) = progress {
                    p.set_position(0);
                }
            }
            Err(e) => {
                // Start over next time: the bytes kept are not the signed file.
                let _ = rustix::fs::unlinkat(&place.dir, place.partial.as_str(), AtFlags::empty());
                return Err(DownloadError::Unverified(e.to_string()));
            }
        }
    }
    file.sync_all().map_err(local(&partial))?;
    drop(file);
    rustix::fs::renameat(
        &place.dir,
        place.partial.as_str(),
        &place.dir,
        place.name.as_str(),
    )
    .map_err(|e| DownloadError::Local {
        path: place.dest.clone(),
        source: e.into(),
    })?;
    rustix::fs::fsync(place.dir.as_fd()).map_err(|e| DownloadError::Local {
        path: place.dest.clone(),
        source: e.into(),
    })?;
    Ok(place.dest)
}

/// The local side of one transfer.
struct Transfer<'a> {
    file: &'a mut std::fs::File,
    partial: &'a Path,
    verifier: &'a mut TargetVerifier,
    progress: Option<&'a indicatif::ProgressBar>,
    /// Whether the mirror ignored the range and the file started over.
    restarted: bool,
}

async fn fetch_rest(
    transport: &Transport,
    base: &WebUrl,
    job: &Job,
    t: &mut Transfer<'_>,
    have: u64,
    limits: &DownloadLimits,
) -> Result<(), DownloadError> {
    let partial = t.partial;
    let url = HttpUrl::join(base, &format!("targets/{}", job.remote_path));
    let range = (have > 0).then_some(have);
    let head_timeout = limits
        .window
        .min(limits.deadline.saturating_duration_since(Instant::now()));
    let mut body = transport
        .get_streaming(Purpose::for_target(&job.path), &url, range, head_timeout)
        .await
        .map_err(|e| DownloadError::Network(e.to_string()))?;
    match body.status.as_u16() {
        206 if range.is_some() => {
            t.file.seek(SeekFrom::End(0)).map_err(local(partial))?;
        }
        200 => {
            // The mirror ignored the range: take the whole file again.
            if have > 0 {
                t.restarted = true;
                t.file.set_len(0).map_err(local(partial))?;
                t.file.seek(SeekFrom::Start(0)).map_err(local(partial))?;
                *t.verifier = TargetVerifier::new(&job.path, &job.info)
                    .map_err(|e| DownloadError::Mirror(e.to_string()))?;
                if let Some(p) = t.progress {
                    p.set_position(0);
                }
            }
        }
        s => return Err(DownloadError::Network(format!("http status {s}"))),
    }
    let need = (limits.min_throughput as f64 * limits.window.as_secs_f64()) as u64;
    let mut win_start = Instant::now();
    let mut win_bytes = 0u64;
    loop {
        let until = (win_start + limits.window).min(limits.deadline);
        let next = tokio::time::timeout_at(until, body.chunk()).await;
        let now = Instant::now();
        match next {
            Ok(Ok(Some(chunk))) => {
                t.verifier
                    .update(&chunk)
                    .map_err(|e| DownloadError::Unverified(e.to_string()))?;
                t.file.write_all(&chunk).map_err(local(partial))?;
                if let Some(p) = t.progress {
                    p.inc(chunk.len() as u64);
                }
                win_bytes = win_bytes.saturating_add(chunk.len() as u64);
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(DownloadError::Network(e.to_string())),
            Err(_) if now >= limits.deadline => return Err(DownloadError::Deadline),
            Err(_) => {}
        }
        if now.duration_since(win_start) >= limits.window {
            if win_bytes < need {
                return Err(DownloadError::Mirror(format!(
                    "too slow: {win_bytes} bytes in {:?}, {} bytes/s required",
                    limits.window, limits.min_throughput
                )));
            }
            win_start = now;
            win_bytes = 0;
        }
    }
}
