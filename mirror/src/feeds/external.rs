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
use std::time::Duration;

use onionpkg_config::program::Argv;
use onionpkg_core::process::Running;

/// How much of each output stream is kept for the status.
pub use onionpkg_core::process::OUTPUT_CAP;

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
        cmd.args(self.command_line(file, name)).env_clear();
        let running = Running::spawn(&mut cmd).map_err(|e| {
            format!(
                "cannot start the sandbox {} for the checker {program}: {e} (Debian package \
                 bubblewrap)",
                self.bwrap.display()
            )
        })?;
        let finished = running
            .finish(self.timeout)
            .await
            .map_err(|e| format!("waiting for the checker {program}: {e}"))?;
        let shown = finished.shown();
        match finished.status {
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
