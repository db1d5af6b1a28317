//! `on_update` actions of feeds (`[feeds.NAME]` in the configuration): a
//! program run after `feeds sync` put a new verified version of a feed's
//! file in place, to tell its consumer (point libloc at it, `ipset restore`
//! a blocklist, reload Suricata's rules).
//!
//! The record of what ran is `STATE/feed-actions.json`: for each feed file
//! (target path), the SHA-256 of the version whose action succeeded.
//!
//! # Invariants
//! - An action runs only for a file that is verified and in place under its
//!   final name, and never changes or removes that file: a failed action
//!   leaves the new version where it is.
//! - It runs once per new version: not when the record names the file's
//!   current content, and again at the next sync when it failed (only a
//!   success is recorded). The record is written atomically after each
//!   success, so a crash later in the run never runs a finished action twice.
//! - No shell: the program and its arguments come from the configuration as
//!   a list; `{file}` is the file's path. The environment is cleared but for
//!   `PATH`, `LANG` and `ONIONPKG_FEED`, `ONIONPKG_FEED_FILE`,
//!   `ONIONPKG_FEED_SHA256`.
//! - Every action has a deadline; at it, the action's process group is
//!   killed. At most [`OUTPUT_CAP`] bytes of each output stream are kept.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::Timestamp;
use onionpkg_config::fetcher::FeedActionConfig;
use onionpkg_core::process::Running;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::commands::Downloaded;
use crate::context::App;
use crate::err::{AppError, AppResult};
use crate::state::{load_json, save_json};

/// How much of each output stream of an action is kept for the report.
pub use onionpkg_core::process::OUTPUT_CAP;

/// The largest record file read.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The version of each feed file whose action succeeded last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// By target path (`feeds/NAME/FILE`).
    pub files: BTreeMap<String, AppliedVersion>,
}

/// One file's last successful action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedVersion {
    /// SHA-256 (hex) of the version the action ran for.
    pub sha256: String,
    /// When it finished.
    pub at: Timestamp,
}

impl Applied {
    /// The record in `STATE/feed-actions.json`; empty when there is none.
    pub fn load(path: &Path) -> AppResult<Self> {
        load_json(path, MAX_RECORD_BYTES)
    }

    fn save(&self, path: &Path) -> AppResult<()> {
        save_json(path, self)
    }
}

/// What one action did.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    /// The feed.
    pub feed: String,
    /// The file it ran for.
    pub file: PathBuf,
    /// The version (SHA-256, hex) it ran for.
    pub sha256: String,
    /// The program.
    pub program: String,
    /// Whether it succeeded (exit code 0 within its deadline).
    pub ok: bool,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// How it went, with what it printed (capped) when it failed.
    pub message: String,
}

impl ActionReport {
    /// The line for the command's output.
    pub fn human(&self) -> String {
        if self.ok {
            format!(
                "on_update of feed {} ran for {}: {}",
                self.feed,
                self.file.display(),
                self.message
            )
        } else {
            format!(
                "on_update of feed {} failed for {}: {}; the verified file stays in place, and \
                 the action runs again at the next sync",
                self.feed,
                self.file.display(),
                self.message
            )
        }
    }
}

/// Runs the `on_update` action of each feed file in `done` (the result of a
/// `feeds sync`) whose version differs from the one its action last ran
/// for; returns what each did.
pub async fn run_on_update(app: &App, done: &[Downloaded]) -> AppResult<Vec<ActionReport>> {
    let record_path = app.state().dir().join("feed-actions.json");
    let mut reports = Vec::new();
    for d in done {
        let Some(feed) = d
            .target
            .strip_prefix("feeds/")
            .and_then(|rest| rest.split('/').next())
        else {
            continue;
        };
        let Some(action) = app.config().feeds.get(feed) else {
            continue;
        };
        let sha256 = file_sha256(&d.file).await?;
        let mut record = Applied::load(&record_path)?;
        if record
            .files
            .get(&d.target)
            .is_some_and(|v| v.sha256 == sha256)
        {
            continue;
        }
        let report = run_action(feed, action, &d.file, &sha256).await;
        if report.ok {
            info!(feed, file = %d.file.display(), "on_update action succeeded");
            record.files.insert(
                d.target.clone(),
                AppliedVersion {
                    sha256: sha256.clone(),
                    at: Timestamp::now(),
                },
            );
            record.save(&record_path)?;
        } else {
            warn!(feed, file = %d.file.display(), error = %report.message, "on_update action failed");
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The SHA-256 (hex) of the file in place: the version the action is for.
async fn file_sha256(path: &Path) -> AppResult<String> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut f = std::fs::File::open(&p)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(format!("{:x}", hasher.finalize()))
    })
    .await
    .map_err(|e| AppError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| AppError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Runs one action for `file` under its deadline.
async fn run_action(
    feed: &str,
    action: &FeedActionConfig,
    file: &Path,
    sha256: &str,
) -> ActionReport {
    let (program, args) = action.on_update.expand(file);
    let mut report = ActionReport {
        feed: feed.to_owned(),
        file: file.to_owned(),
        sha256: sha256.to_owned(),
        program: program.display().to_string(),
        ok: false,
        exit_code: None,
        message: String::new(),
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("ONIONPKG_FEED", feed)
        .env("ONIONPKG_FEED_FILE", file)
        .env("ONIONPKG_FEED_SHA256", sha256)
        .current_dir("/");
    let started = Instant::now();
    let running = match Running::spawn(&mut cmd) {
        Ok(r) => r,
        Err(e) => {
            report.message = format!("cannot start {}: {e}", report.program);
            return report;
        }
    };
    let finished = match running.finish(action.timeout).await {
        Ok(f) => f,
        Err(e) => {
            report.message = format!("waiting for {}: {e}", report.program);
            return report;
        }
    };
    let took = started.elapsed().as_secs_f64();
    let shown = finished.shown();
    let status = finished.status;
    report.exit_code = status.and_then(|s| s.code());
    match status {
        Some(s) if s.success() => {
            report.ok = true;
            report.message = format!("{} exited 0 after {took:.1}s", report.program);
        }
        Some(_) if report.exit_code.is_some() => {
            report.message = format!(
                "{} exited with code {} after {took:.1}s{shown}",
                report.program,
                report.exit_code.unwrap_or_default()
            );
        }
        Some(_) => {
            report.message = format!("{} was killed by a signal{shown}", report.program);
        }
        None => {
            report.message = format!(
                "{} did not finish within {}s and was killed{shown}",
                report.program,
                action.timeout.as_secs()
            );
        }
    }
    report
}
