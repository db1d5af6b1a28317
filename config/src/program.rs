//! External programs named in a configuration: a feed's checker on the
//! mirror, a feed's `on_update` action on the appliance. Both are started
//! without a shell, from an argument list.
//!
//! # Invariants
//! - An [`Argv`] is never empty, its program is an absolute path (no
//!   `PATH` lookup), and no argument holds a NUL byte.
//! - The only placeholder is `{file}`; any other `{` or `}` is refused at
//!   load, so a mistyped placeholder (`{path}`) never reaches a program as
//!   literal text.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The placeholder replaced by the path of the file a program works on.
pub const FILE_PLACEHOLDER: &str = "{file}";

/// The longest deadline an external program may be given.
pub const MAX_PROGRAM_TIMEOUT: Duration = Duration::from_secs(3600);

/// The default deadline of an external program.
pub const DEFAULT_PROGRAM_TIMEOUT: Duration = Duration::from_secs(300);

/// The most arguments an [`Argv`] may have, the program included.
const MAX_ARGS: usize = 64;

/// The longest single argument, in bytes.
const MAX_ARG_LEN: usize = 4096;

/// A program and its arguments, run without a shell: `["/usr/bin/suricata",
/// "-T", "-S", "{file}"]`. `{file}` in an argument stands for the file's
/// path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Argv(Vec<String>);

impl TryFrom<Vec<String>> for Argv {
    type Error = String;

    fn try_from(args: Vec<String>) -> Result<Self, String> {
        let Some(program) = args.first() else {
            return Err("expected a program and its arguments, found an empty list".into());
        };
        if !program.starts_with('/') {
            return Err(format!(
                "the program must be an absolute path (no PATH lookup, no shell), found \
                 {program:?}"
            ));
        }
        if program.contains(FILE_PLACEHOLDER) {
            return Err("the program itself cannot be the {file} placeholder".into());
        }
        if args.len() > MAX_ARGS {
            return Err(format!(
                "at most {MAX_ARGS} arguments, found {}",
                args.len()
            ));
        }
        for (i, a) in args.iter().enumerate() {
            if a.len() > MAX_ARG_LEN {
                return Err(format!("argument {i} is longer than {MAX_ARG_LEN} bytes"));
            }
            if a.contains('\0') {
                return Err(format!("argument {i} holds a NUL byte"));
            }
            if a.replace(FILE_PLACEHOLDER, "").contains(['{', '}']) {
                return Err(format!(
                    "argument {i} ({a:?}) has a '{{' or '}}' that is not the placeholder \
                     {FILE_PLACEHOLDER}, the only one there is"
                ));
            }
        }
        Ok(Self(args))
    }
}

impl Argv {
    /// The program's path.
    pub fn program(&self) -> &Path {
        Path::new(&self.0[0])
    }

    /// The arguments as written, placeholders included.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether an argument names the file with `{file}`.
    pub fn names_file(&self) -> bool {
        self.0[1..].iter().any(|a| a.contains(FILE_PLACEHOLDER))
    }

    /// The program and its arguments with `{file}` replaced by `file`.
    pub fn expand(&self, file: &Path) -> (PathBuf, Vec<OsString>) {
        let file = file.as_os_str().to_string_lossy();
        let args = self.0[1..]
            .iter()
            .map(|a| OsString::from(a.replace(FILE_PLACEHOLDER, &file)))
            .collect();
        (self.program().to_owned(), args)
    }
}

impl std::fmt::Display for Argv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// Whether `timeout` is a usable deadline for an external program.
pub(crate) fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() || timeout > MAX_PROGRAM_TIMEOUT {
        return Err(format!(
            "must be longer than 0s and at most {}, found {}",
            crate::common::format_duration(MAX_PROGRAM_TIMEOUT),
            crate::common::format_duration(timeout)
        ));
    }
    Ok(())
}

pub(crate) fn default_timeout() -> Duration {
    DEFAULT_PROGRAM_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Result<Argv, String> {
        Argv::try_from(a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn argument_lists() {
        let a = argv(&["/usr/bin/suricata", "-T", "-S", "{file}", "--x={file}"]).unwrap();
        assert!(a.names_file());
        let (p, args) = a.expand(Path::new("/feed/rules"));
        assert_eq!(p, Path::new("/usr/bin/suricata"));
        assert_eq!(args, ["-T", "-S", "/feed/rules", "--x=/feed/rules"]);
        assert!(!argv(&["/bin/true"]).unwrap().names_file());
        for (bad, needle) in [
            (&[][..], "empty list"),
            (&["suricata", "{file}"][..], "absolute path"),
            (&["{file}"][..], "absolute path"),
            (&["/bin/x", "{path}"][..], "placeholder"),
            (&["/bin/x", "a}"][..], "placeholder"),
            (&["/bin/x", "a\0"][..], "NUL"),
        ] {
            let e = argv(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
        assert!(check_timeout(Duration::ZERO).is_err());
        assert!(check_timeout(Duration::from_secs(3601)).is_err());
        check_timeout(Duration::from_secs(1)).unwrap();
    }
}
