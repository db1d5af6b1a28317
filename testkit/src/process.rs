//! A child process that is stopped when its guard is dropped, so a failing
//! test, demo or benchmark leaves nothing running.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How long a child may take to exit after SIGTERM by default.
pub const GRACE: Duration = Duration::from_secs(10);

/// A child process stopped when dropped: SIGTERM first, so a server can stop
/// its own children, then SIGKILL after the grace period; always reaped.
pub struct Proc {
    /// The process.
    pub child: Child,
    name: String,
    grace: Duration,
}

impl Proc {
    /// Guards `child`, called `name` in errors.
    pub fn new(name: &str, child: Child) -> Self {
        Self {
            child,
            name: name.to_owned(),
            grace: GRACE,
        }
    }

    /// Starts `cmd` with stdin closed and stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self::new(name, child))
    }

    /// Sets how long the child may take to exit after SIGTERM.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The name given at the start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peak resident set size so far, in KiB (`VmHWM`, Linux).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM for {}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id().cast_signed()) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_stops_and_reaps_its_child() {
        let proc = Proc::new("sleep", Command::new("sleep").arg("60").spawn().unwrap());
        let pid = proc.child.id();
        let start = Instant::now();
        drop(proc);
        assert!(start.elapsed() < GRACE, "sleep ignored SIGTERM");
        // Reaped: the pid no longer names a process (or a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
        let child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; sleep 60"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut proc = Proc::new("sh", child).with_grace(Duration::from_millis(300));
        // Wait for the trap to be set before the guard signals.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(proc.child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let pid = proc.child.id();
        drop(proc);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
