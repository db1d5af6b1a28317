//! External checkers: programs that check formats the mirror does not parse
//! itself (`suricata -T` for rules, `location verify` for a libloc
//! database), run in a bubblewrap sandbox with a deadline.
//!
//! # Invariants
//! - No shell: the program and its arguments come from the configuration
//!   as a list; `{file}` becomes the path of the downloaded file inside the
//!   sandbox.
//! - The sandbox (`bwrap`) has no network (a network namespace of its own
//!   with loopback only), no capabilities, its own PID, IPC, UTS and cgroup
//!   namespaces, a new session (no terminal to inject into), and a file
//!   system of read-only binds: `/usr` (and the `/bin`, `/lib`... links or
//!   directories of the host), `/etc/ld.so.cache`, the paths the feed lists
//!   in `checker_paths`, and the file itself; `/tmp` is an empty tmpfs. The
//!   environment is cleared.
//! - The checker is killed (bwrap's process group; the sandbox dies with
//!   bwrap) when its deadline passes, and the check fails.
//! - At most [`OUTPUT_CAP`] bytes of each of stdout and stderr are kept
//!   (the rest is read and dropped, so the checker never blocks on a full
//!   pipe), for the status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use onionpkg_config::program::Argv;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// How much of each output stream is kept for the status.
pub const OUTPUT_CAP: usize = 4096;

/// How long the output is still read after the checker was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Where the file is inside the sandbox.
const FEED_DIR: &str = "/feed";

/// How to run one checker.
#[derive(Debug, Clone)]
pub struct Checker<'a> {
    /// The bubblewrap program.
    pub bwrap: &'a Path,
    /// The checker and its arguments.
    pub argv: &'a Argv,
    /// Extra read-only paths.
    pub paths: &'a [PathBuf],
    /// The deadline.
    pub timeout: Duration,
}

impl Checker<'_> {
    /// The bwrap command line that checks `file`, seen inside the sandbox as
    /// `/feed/NAME`.
    pub fn command_line(&self, file: &Path, name: &str) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |args: &[&std::ffi::OsStr]| a.extend(args.iter().map(|s| s.to_os_string()));
        push(&[
            "--unshare-all".as_ref(),
            "--die-with-parent".as_ref(),
            "--new-session".as_ref(),
            "--cap-drop".as_ref(),
            "ALL".as_ref(),
            "--ro-bind".as_ref(),
            "/usr".as_ref(),
            "/usr".as_ref(),
        ]);
        // Merged-/usr systems link these into /usr; others have directories.
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            match std::fs::symlink_metadata(dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(dir) {
                        push(&["--symlink".as_ref(), target.as_os_str(), dir.as_ref()]);
                    }
                }
                Ok(m) if m.is_dir() => push(&["--ro-bind".as_ref(), dir.as_ref(), dir.as_ref()]),
                _ => {}
            }
        }
        // The tmpfs first: paths under /tmp are bound over it, not hidden.
        push(&[
            "--proc".as_ref(),
            "/proc".as_ref(),
            "--dev".as_ref(),
            "/dev".as_ref(),
            "--tmpfs".as_ref(),
            "/tmp".as_ref(),
            "--ro-bind-try".as_ref(),
            "/etc/ld.so.cache".as_ref(),
            "/etc/ld.so.cache".as_ref(),
        ]);
        for p in self.paths {
            push(&["--ro-bind".as_ref(), p.as_os_str(), p.as_os_str()]);
        }
        let inside = Path::new(FEED_DIR).join(name);
        push(&[
            "--ro-bind".as_ref(),
            file.as_os_str(),
            inside.as_os_str(),
            "--chdir".as_ref(),
            "/tmp".as_ref(),
            "--clearenv".as_ref(),
            "--setenv".as_ref(),
            "PATH".as_ref(),
            "/usr/sbin:/usr/bin:/sbin:/bin".as_ref(),
            "--setenv".as_ref(),
            "HOME".as_ref(),
            "/tmp".as_ref(),
            "--setenv".as_ref(),
            "LANG".as_ref(),
            "C.UTF-8".as_ref(),
            "--".as_ref(),
        ]);
        let (program, args) = self.argv.expand(&inside);
        a.push(program.into_os_string());
        a.extend(args);
        a
    }

    /// Runs the checker on `file` (published as `name`): `Ok` with a short
    /// summary when it exits 0, or why not, with what it printed.
    pub async fn run(&self, file: &Path, name: &str) -> Result<String, String> {
        let program = self.argv.program().display().to_string();
        let mut cmd = tokio::process::Command::new(self.bwrap);
        cmd.args(self.command_line(file, name))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start the sandbox {} for the checker {program}: {e} (Debian package \
                 bubblewrap)",
                self.bwrap.display()
            )
        })?;
        let out = tokio::spawn(capped(child.stdout.take()));
        let err = tokio::spawn(capped(child.stderr.take()));
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(s) => Some(s.map_err(|e| format!("waiting for the checker {program}: {e}"))?),
            Err(_) => {
                if let Some(pid) = child
                    .id()
                    .and_then(|p| rustix::process::Pid::from_raw(p as i32))
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.start_kill();
                let _ = child.wait().await;
                None
            }
        };
        let output = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
            tokio::time::timeout(DRAIN_GRACE, h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        let shown = shown_output(&output(out).await, &output(err).await);
        match status {
            None => Err(format!(
                "the checker {program} did not finish within {}s and was killed{shown}",
                self.timeout.as_secs()
            )),
            Some(s) if s.success() => Ok(format!("passed {program}")),
            Some(s) => Err(match s.code() {
                Some(code) => format!("the checker {program} exited with code {code}{shown}"),
                None => format!("the checker {program} was killed by a signal{shown}"),
            }),
        }
    }
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

/// What a checker printed, on one line, for the status: `": stderr: …;
/// stdout: …"`, or nothing when it printed nothing.
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
    let mut parts = Vec::new();
    for (name, text) in [("stderr", clean(stderr)), ("stdout", clean(stdout))] {
        if !text.is_empty() {
            parts.push(format!("{name}: {text}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}
