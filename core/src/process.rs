//! Running an external program under a deadline, keeping a bounded part of
//! what it prints: the fetcher's `on_update` actions and the mirror's
//! sandboxed feed checkers.
//!
//! # Invariants
//! - The program runs in a process group of its own, with stdin closed;
//!   when its deadline passes the whole group is killed (a script's
//!   children go with it), and the child is reaped.
//! - At most [`OUTPUT_CAP`] bytes of each of stdout and stderr are kept;
//!   the rest is read and dropped, so the program never blocks on a full
//!   pipe. After the program ended, its output is read for at most
//!   [`DRAIN_GRACE`] more (a grandchild may hold the pipe open).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How much of each output stream is kept.
pub const OUTPUT_CAP: usize = 4096;

/// How long the output is still read after the program ended or was
/// killed.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// A started program whose output is being read.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

/// How a program ended, and the start of what it printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status; `None` when it was killed at its deadline.
    pub status: Option<ExitStatus>,
    /// The first [`OUTPUT_CAP`] bytes of its stdout.
    pub stdout: Vec<u8>,
    /// The first [`OUTPUT_CAP`] bytes of its stderr.
    pub stderr: Vec<u8>,
}

impl Running {
    /// Starts `cmd` with stdin closed, stdout and stderr piped, in a new
    /// process group, killed if dropped.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdout = tokio::spawn(capped(child.stdout.take()));
        let stderr = tokio::spawn(capped(child.stderr.take()));
        Ok(Self {
            child,
            stdout,
            stderr,
        })
    }

    /// Waits for the program for at most `timeout`, then kills its process
    /// group; an error is a failure to wait, not the program's.
    pub async fn finish(mut self, timeout: Duration) -> std::io::Result<Finished> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(s) => Some(s?),
            Err(_) => {
                if let Some(pid) = self
                    .child
                    .id()
                    .and_then(|p| rustix::process::Pid::from_raw(p.try_into().unwrap_or(0)))
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                None
            }
        };
        Ok(Finished {
            status,
            stdout: drained(self.stdout).await,
            stderr: drained(self.stderr).await,
        })
    }
}

impl Finished {
    /// What the program printed, on one line: `": stderr: …; stdout: …"`,
    /// or nothing when it printed nothing.
    pub fn shown(&self) -> String {
        shown_output(&self.stdout, &self.stderr)
    }
}

/// What one output stream read, waiting at most [`DRAIN_GRACE`].
async fn drained(h: JoinHandle<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(DRAIN_GRACE, h)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Reads `stream` to its end, keeping the first [`OUTPUT_CAP`] bytes.
async fn capped(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// `stdout` and `stderr` on one line, control characters blanked:
/// `": stderr: …; stdout: …"`, or nothing when both are empty.
pub fn shown_output(stdout: &[u8], stderr: &[u8]) -> String {
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
    };
    let parts: Vec<String> = [("stderr", clean(stderr)), ("stdout", clean(stdout))]
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(name, t)| format!("{name}: {t}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}
