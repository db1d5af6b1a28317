//! tor processes: finding the binaries, starting them in their own process
//! groups, stopping them reliably, and their logs.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::{Error, Result};

/// How long a tor gets to exit after SIGTERM before it is killed: tor has
/// been seen to hang after "exiting cleanly".
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Interval between polls of any condition.
pub const POLL: Duration = Duration::from_millis(100);

/// Finds `name` on PATH or in the sbin dirs Debian installs tor into.
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingBinary(name.to_owned()))
}

/// Runs a short command (key generation) to completion within `deadline`, feeding
/// `stdin`; returns its stdout.
pub fn run(mut cmd: Command, stdin: &[u8], deadline: Duration) -> Result<String> {
    use std::io::Write;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("starting a tor key tool", e))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin)
            .map_err(|e| Error::io("feeding a tor key tool", e))?;
    }
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for a tor key tool", e))?
        {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !status.success() {
                return Err(Error::KeyTool {
                    what,
                    output: format!("{status}: {out}{err}"),
                });
            }
            return Ok(out);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                what: format!("{what} to finish"),
                after: deadline,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// One running tor.
#[derive(Debug)]
pub struct TorProcess {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl TorProcess {
    /// Starts `tor -f <dir>/torrc` in its own process group, output to
    /// `<dir>/stdout.log`.
    pub fn start(tor: &Path, name: &str, dir: &Path) -> Result<Self> {
        let out = std::fs::File::create(dir.join("stdout.log"))
            .map_err(|e| Error::io("creating a tor output log", e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("creating a tor output log", e))?;
        let child = Command::new(tor)
            .arg("-f")
            .arg(dir.join("torrc"))
            .arg("--defaults-torrc")
            .arg(dir.join("torrc.defaults-empty"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own group: a terminal's ^C does not reach it, and we can
            // signal the tor and anything it spawns as one.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("starting tor", e))?;
        Ok(Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            child: Some(child),
        })
    }

    /// The node's name (auth1, relay1, exit1, client, onionhost).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The notice-level log.
    pub fn notice_log(&self) -> PathBuf {
        self.dir.join("notice.log")
    }

    /// Fails if the process has exited (it should run until stopped).
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Exited {
                node: self.name.clone(),
                status: "stopped".into(),
            });
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                node: self.name.clone(),
                status: status.to_string(),
            }),
            Err(e) => Err(Error::io("polling tor", e)),
        }
    }

    /// Whether the notice log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.notice_log()).is_ok_and(|s| s.contains(needle))
    }

    fn signal(&self, sig: Signal) {
        if let Some(child) = &self.child {
            let pid = Pid::from_child(child);
            let _ = kill_process_group(pid, sig);
        }
    }

    fn reap(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            None | Some(Ok(Some(_))) | Some(Err(_)) => {
                self.child = None;
                true
            }
            Some(Ok(None)) => false,
        }
    }
}

impl Drop for TorProcess {
    fn drop(&mut self) {
        stop_all(std::slice::from_mut(self));
    }
}

/// Stops every process: SIGTERM to each group, then SIGKILL to whatever is
/// left after [`STOP_GRACE`], then reaps them.
pub fn stop_all(procs: &mut [TorProcess]) {
    for p in procs.iter() {
        p.signal(Signal::TERM);
    }
    let start = Instant::now();
    while start.elapsed() < STOP_GRACE {
        let mut all = true;
        for p in procs.iter_mut() {
            all &= p.reap();
        }
        if all {
            return;
        }
        std::thread::sleep(POLL);
    }
    for p in procs.iter_mut() {
        if p.child.is_some() {
            p.signal(Signal::KILL);
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The last `lines` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let all: Vec<&str> = buf.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Processes (pid, command line) whose command line mentions `dir`: the
/// leak check after a teardown.
pub fn processes_mentioning(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(&needle).then(|| (pid, cmd.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tor_says_how_to_install_it() {
        let e = find_binary("onionpkg-no-such-tor").unwrap_err().to_string();
        assert!(
            e.contains("onionpkg-no-such-tor") && e.contains("install tor"),
            "{e}"
        );
    }

    #[test]
    fn key_tools_have_deadlines() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec sleep 5"]);
        let start = Instant::now();
        let e = run(cmd, b"", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&dir.path().join("missing"), 2), "");
    }
}
