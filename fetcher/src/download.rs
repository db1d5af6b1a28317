//! Downloading one verified target into the output directory.
//!
//! The bytes go to `DIR/.NAME.onionpkg-partial` (a hidden name no package
//! manager picks up), capped at the signed length and hashed on the way;
//! only after the last byte verifies is the file fsync'd and renamed to
//! `DIR/NAME`. A partial file left by an interrupted run is resumed with a
//! `Range` request once its prefix has been hashed again; whatever happens,
//! the whole file is verified at the end, and a mismatch deletes the partial
//! file so the next attempt starts over.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use onionpkg_trust::metadata::{TargetFile, TargetVerifier, VerifyError};
use tokio::time::Instant;

use onionpkg_net::tor::Purpose;
use onionpkg_net::transport::Transport;

/// The suffix of files still being downloaded.
pub const PARTIAL_SUFFIX: &str = ".onionpkg-partial";

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

/// Where `path` ends up, and its partial file, under `out`.
pub fn final_and_partial(out: &Path, path: &str) -> (PathBuf, PathBuf) {
    let dest = out.join(path);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dest.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"));
    (dest, partial)
}

/// Whether the file at `dest` is already the signed target.
pub fn already_there(dest: &Path, job: &Job) -> bool {
    let Ok(mut f) = std::fs::File::open(dest) else {
        return false;
    };
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

/// Downloads `job` from the mirror at `base` into `out`, resuming a partial
/// file; `progress`, if given, follows the bytes on disk. Returns the final
/// path.
pub async fn download(
    transport: &Transport,
    base: &str,
    job: &Job,
    out: &Path,
    limits: &DownloadLimits,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<PathBuf, DownloadError> {
    let (dest, partial) = final_and_partial(out, &job.path);
    if let Some(dir) = partial.parent() {
        std::fs::create_dir_all(dir).map_err(local(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(local(&partial))?;
    let mut verifier = TargetVerifier::new(&job.path, &job.info)
        .map_err(|e| DownloadError::Mirror(e.to_string()))?;
    let mut have = file.metadata().map_err(local(&partial))?.len();
    if have > job.info.length || (have > 0 && hash_prefix(&mut file, &mut verifier).is_err()) {
        have = 0;
    }
    if have == 0 {
        file.set_len(0).map_err(local(&partial))?;
        verifier = TargetVerifier::new(&job.path, &job.info)
            .map_err(|e| DownloadError::Mirror(e.to_string()))?;
    }
    if let Some(p) = progress {
        p.set_length(job.info.length);
        p.set_position(have);
    }
    if have < job.info.length {
        let mut t = Transfer {
            file: &mut file,
            partial: &partial,
            verifier: &mut verifier,
            progress,
        };
        fetch_rest(transport, base, job, &mut t, have, limits).await?;
    }
    if let Err(e) = verifier.finish() {
        // Start over next time: the prefix we kept is not the signed file.
        let _ = std::fs::remove_file(&partial);
        return Err(DownloadError::Mirror(e.to_string()));
    }
    file.sync_all().map_err(local(&partial))?;
    drop(file);
    std::fs::rename(&partial, &dest).map_err(local(&dest))?;
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(local(dir))?;
    }
    Ok(dest)
}

/// The local side of one transfer.
struct Transfer<'a> {
    file: &'a mut std::fs::File,
    partial: &'a Path,
    verifier: &'a mut TargetVerifier,
    progress: Option<&'a indicatif::ProgressBar>,
}

async fn fetch_rest(
    transport: &Transport,
    base: &str,
    job: &Job,
    t: &mut Transfer<'_>,
    have: u64,
    limits: &DownloadLimits,
) -> Result<(), DownloadError> {
    let partial = t.partial;
    let url = format!("{base}targets/{}", job.remote_path);
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
                    .map_err(|e| DownloadError::Mirror(e.to_string()))?;
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
