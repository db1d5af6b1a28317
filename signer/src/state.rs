//! What the signer remembers between requests, derived from the log.
//!
//! The last version (and payload hash) signed per role, the first version
//! signed per role, the signature times of the last hour per limited role,
//! and the nonces of the request window all follow from the entries, so a
//! restart (or a `kill -9`) rebuilds exactly the state of the last
//! acknowledged signature. Nonces of authenticated requests that were
//! refused come from the refusal record (`STATE_DIR/refusals.jsonl`), which
//! is also the audit record of refusals: one JSON line per refusal, with the
//! time, the client (if it authenticated), the role, the reason and the
//! message.
//!
//! # Invariants
//! - A nonce stays known for as long as a request carrying it could pass the
//!   time check, across restarts.
//! - The refusal record is bounded: past 16 MiB it is moved to
//!   `refusals.jsonl.1` (replacing the older one) and restarted.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::request::Reason;
use crate::{Error, Result};

/// The refusal record's name in the state directory.
pub const REFUSALS: &str = "refusals.jsonl";
const REFUSALS_MAX: u64 = 16 * 1024 * 1024;
const HOUR: i64 = 3600;

/// The last signature for a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    /// Its version.
    pub version: u64,
    /// SHA-256 of what was signed, hex.
    pub sha256: String,
    /// An announcement's issue time.
    pub issued: Option<i64>,
}

/// The signer's memory.
#[derive(Debug, Default)]
pub struct State {
    window: i64,
    last: HashMap<String, Last>,
    first: HashMap<String, u64>,
    recent: HashMap<String, VecDeque<i64>>,
    nonces: HashMap<String, i64>,
}

/// One line of the refusal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRecord {
    /// When, unix seconds.
    pub time: i64,
    /// The client's name, once it authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The role asked for, if the request could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Why.
    pub reason: Reason,
    /// The message sent to the client.
    pub message: String,
    /// The nonce of an authenticated request, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<(String, i64)>,
}

impl State {
    /// The state after `entries` and `refusals`, at `now`, with a request
    /// window of `window` seconds.
    pub fn rebuild(entries: &[Entry], refusals: &[RefusalRecord], now: i64, window: i64) -> Self {
        let mut s = Self {
            window,
            ..Self::default()
        };
        for e in entries {
            s.record(e, now);
        }
        for r in refusals {
            if let Some((nonce, t)) = &r.nonce {
                s.remember_nonce(nonce, *t, now);
            }
        }
        s
    }

    /// Takes a signature into account.
    pub fn record(&mut self, e: &Entry, now: i64) {
        let key = e.track_key().to_string();
        self.first.entry(key.clone()).or_insert(e.version);
        self.last.insert(
            key,
            Last {
                version: e.version,
                sha256: e.sha256.clone(),
                issued: e.issued,
            },
        );
        if e.time > now - HOUR {
            self.recent
                .entry(e.limit_role().to_string())
                .or_default()
                .push_back(e.time);
        }
        self.remember_nonce(&e.nonce, e.request_time, now);
    }

    /// The last signature tracked under `key` (a role, or `announcement`).
    pub fn last(&self, key: &str) -> Option<&Last> {
        self.last.get(key)
    }

    /// The first version signed under `key`.
    pub fn first(&self, key: &str) -> Option<u64> {
        self.first.get(key).copied()
    }

    /// Signatures under `limit_role` in the hour before `now`.
    pub fn count_last_hour(&mut self, limit_role: &str, now: i64) -> usize {
        let Some(q) = self.recent.get_mut(limit_role) else {
            return 0;
        };
        while q.front().is_some_and(|t| *t <= now - HOUR) {
            q.pop_front();
        }
        q.len()
    }

    /// Whether `nonce` was seen within the window.
    pub fn seen(&mut self, nonce: &str, now: i64) -> bool {
        let window = self.window;
        self.nonces.retain(|_, t| *t + window >= now);
        self.nonces.contains_key(nonce)
    }

    /// Remembers a nonce of a request made at `time`.
    pub fn remember_nonce(&mut self, nonce: &str, time: i64, now: i64) {
        if time + self.window >= now {
            self.nonces.insert(nonce.to_string(), time);
        }
    }
}

/// The refusal record file.
#[derive(Debug)]
pub struct RefusalLog {
    path: PathBuf,
}

impl RefusalLog {
    /// The record in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(REFUSALS),
        }
    }

    /// Reads every record (damaged lines are skipped with a warning: this
    /// file only feeds nonces and the audit of refusals).
    pub fn read(&self) -> Result<Vec<RefusalRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", &self.path)(e)),
        };
        let mut out = Vec::new();
        for line in text.lines() {
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "skipping a damaged refusal record")
                }
            }
        }
        Ok(out)
    }

    /// Appends a record durably.
    pub fn append(&self, record: &RefusalRecord) -> Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() > REFUSALS_MAX) {
            let old = self.path.with_extension("jsonl.1");
            std::fs::rename(&self.path, &old).map_err(Error::io("rotating", &self.path))?;
        }
        let mut line = serde_json::to_vec(record).map_err(|e| Error::Log(e.to_string()))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(Error::io("opening", &self.path))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(Error::io("appending to", &self.path))
    }
}
