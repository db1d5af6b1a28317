//! `--threshold ROLE=M/N`: the one threshold syntax of `init`, `rotate` and
//! `root draft` (M of the role's N keys must sign). The older spellings,
//! `M/N` for `rotate` and `ROLE=M` for `root draft`, are still read, each
//! with a note saying how to write it now.

use super::Usage;
use crate::Threshold;

/// A `--threshold` value as written: `ROLE=M/N`, or an older spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdArg {
    /// The role; absent in the old `M/N` of `rotate`.
    pub role: Option<String>,
    /// Signatures required.
    pub m: usize,
    /// Keys; absent in the old `ROLE=M` of `root draft`.
    pub n: Option<usize>,
    /// The value as written, for messages.
    pub text: String,
}

/// The most keys a role may have.
const MAX_KEYS: usize = 16;

/// Parses a `--threshold` value (clap's value parser: an error is bad usage).
pub(super) fn parse(s: &str) -> Result<ThresholdArg, String> {
    let hint = "write ROLE=M/N: M of the role's N keys must sign";
    let (role, mn) = match s.split_once('=') {
        Some((role, mn)) => (Some(role.trim()), mn),
        None => (None, s),
    };
    if role.is_some_and(str::is_empty) {
        return Err(hint.into());
    }
    let (m, n) = match mn.split_once('/') {
        Some((m, n)) => (m, Some(n)),
        None => (mn, None),
    };
    if role.is_none() && n.is_none() {
        return Err(hint.into());
    }
    let number = |x: &str| x.trim().parse::<usize>().map_err(|_| hint.to_string());
    let m = number(m)?;
    let n = n.map(number).transpose()?;
    let bounds = format!("M of N keys must sign, with 1 <= M <= N <= {MAX_KEYS}");
    if m == 0 || n.is_some_and(|n| m > n || n > MAX_KEYS) || m > MAX_KEYS {
        return Err(bounds);
    }
    Ok(ThresholdArg {
        role: role.map(str::to_string),
        m,
        n,
        text: s.to_string(),
    })
}

impl ThresholdArg {
    fn usage_hint(&self) -> Usage {
        Usage(format!(
            "--threshold {}: write ROLE=M/N (M of the role's N keys must sign)",
            self.text
        ))
    }

    /// The role and threshold of a value that must be `ROLE=M/N` (`init`).
    pub(super) fn role_and_threshold(&self) -> Result<(String, Threshold), Usage> {
        match (&self.role, self.n) {
            (Some(role), Some(n)) => Ok((
                role.clone(),
                Threshold {
                    threshold: self.m,
                    count: n,
                },
            )),
            _ => Err(self.usage_hint()),
        }
    }

    /// The threshold of `rotate ROLE`: the value must name `role`; the old
    /// `M/N` adds a note to `notes`.
    pub(super) fn for_rotation(
        &self,
        role: &str,
        notes: &mut Vec<String>,
    ) -> Result<Threshold, Usage> {
        let Some(n) = self.n else {
            return Err(self.usage_hint());
        };
        match &self.role {
            Some(r) if r != role => {
                return Err(Usage(format!(
                    "--threshold names {r}, but the role rotated is {role}"
                )));
            }
            Some(_) => {}
            None => notes.push(format!(
                "note: `--threshold {}` is deprecated; write `--threshold {role}={}/{n}`",
                self.text, self.m
            )),
        }
        Ok(Threshold {
            threshold: self.m,
            count: n,
        })
    }

    /// The threshold of a role given `keys` keys with `--set-keys` in
    /// `root draft`; the old `ROLE=M` adds a note to `notes`.
    pub(super) fn for_keys(&self, keys: usize, notes: &mut Vec<String>) -> Result<usize, Usage> {
        let Some(role) = &self.role else {
            return Err(self.usage_hint());
        };
        match self.n {
            Some(n) if n != keys => Err(Usage(format!(
                "--threshold {} names {n} keys, but --set-keys gives {role} {keys}",
                self.text
            ))),
            Some(_) => Ok(self.m),
            None => {
                notes.push(format!(
                    "note: `--threshold {}` is deprecated; write `--threshold {role}={}/{keys}`",
                    self.text, self.m
                ));
                Ok(self.m)
            }
        }
    }
}
