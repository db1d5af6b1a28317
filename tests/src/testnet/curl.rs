//! curl through the C tor client's SOCKS port, retried until an onion
//! service answers: how the end-to-end tests check that a C tor client
//! reaches a service.
//!
//! # Invariants
//! - Every attempt has curl's own `--max-time`; the loop ends by
//!   [`ONION_DEADLINE`].
//! - curl is only ever pointed at the private network's SOCKS port.

use std::process::Command;
use std::time::Duration;

use onionpkg_testkit::retry::retry;

use super::{Error, Result, TestNet};

/// How long an onion service may take to become reachable: one HS time
/// period of the private network (six minutes). C tor, once it missed a
/// descriptor, waits before asking the directories again (a minute or more
/// on a loaded two-core machine); around a time-period rollover, clients
/// find no descriptor, or no circuit to the service, for up to a few
/// minutes ("No more HSDir available").
pub const ONION_DEADLINE: Duration = Duration::from_secs(360);
/// One curl attempt.
pub const CURL_ATTEMPT: Duration = Duration::from_secs(20);
/// The pause between curl attempts.
const CURL_EVERY: Duration = Duration::from_millis(500);
/// Every this many failed attempts, the C tor client forgets its onion
/// state (`SIGNAL NEWNYM`).
const NEWNYM_EVERY: u32 = 3;

/// A successful curl through C tor.
#[derive(Debug, Clone)]
pub struct CurlFetch {
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time from the first attempt to the success.
    pub elapsed: Duration,
    /// curl's error from the first failed attempt, if any failed: the
    /// first failure says most about why a service was slow to reach.
    pub first_error: Option<String>,
}

impl TestNet {
    /// Fetches `url` with curl (with `extra` arguments) through the C tor
    /// client's SOCKS port until the body is `expect` or [`ONION_DEADLINE`]
    /// passes. Every third failure, the client forgets its onion-service
    /// state: C tor may be stuck on a stale descriptor of a service that
    /// re-published.
    pub fn curl_until(&self, url: &str, extra: &[&str], expect: &[u8]) -> Result<CurlFetch> {
        let socks = self.socks_addr().ok_or(Error::NoClient)?;
        let mut first_error = None;
        let r = retry(ONION_DEADLINE, CURL_EVERY, |attempt| {
            let mut newnym = None;
            if attempt > 1 && (attempt - 1) % NEWNYM_EVERY == 0 {
                newnym = self.client_newnym().err();
            }
            let out = match Command::new("curl")
                .args(["-q", "-sS", "--max-time"])
                .arg(CURL_ATTEMPT.as_secs().to_string())
                .arg("--socks5-hostname")
                .arg(socks.to_string())
                .args(extra)
                .arg(url)
                .output()
            {
                Ok(out) => out,
                // Not worth retrying: ends the loop with the error.
                Err(e) => return Ok(Err(Error::io("running curl (is it installed?)", e))),
            };
            if out.status.success() && out.stdout == expect {
                return Ok(Ok(()));
            }
            let mut err = if out.status.success() {
                format!("a different body ({} bytes)", out.stdout.len())
            } else {
                String::from_utf8_lossy(&out.stderr).trim().to_owned()
            };
            if let Some(e) = newnym {
                err = format!("{err} (after a failed newnym: {e})");
            }
            first_error.get_or_insert_with(|| err.clone());
            Err(err)
        })
        .map_err(|g| Error::Unreachable {
            url: url.to_owned(),
            gave_up: g.to_string(),
        })?;
        r.value?;
        Ok(CurlFetch {
            attempts: r.attempts,
            elapsed: r.elapsed,
            first_error,
        })
    }
}
