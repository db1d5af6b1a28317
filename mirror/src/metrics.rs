//! Counters of the mirror, rendered in the Prometheus text format.
//!
//! Plain atomics: the hot path only ever adds, and a scrape reads each value
//! once. Nothing here is per client: metrics must not identify visitors.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Which budget a connection takes its slot from (`crate::budget`), as
/// labelled in `onionpkg_mirror_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// HTTP and HTTPS.
    Clearnet,
    /// The onion service's streams.
    Onion,
    /// The metrics endpoint.
    Metrics,
}

impl Listener {
    /// The name in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Clearnet => "clearnet",
            Self::Onion => "onion",
            Self::Metrics => "metrics",
        }
    }
}

/// Why a connection was refused, as labelled in
/// `onionpkg_mirror_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot of the listener's budget was taken.
    Full,
    /// The client's address held its `per_client` slots already.
    PerClient,
}

impl Refusal {
    /// The name in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::PerClient => "per_client",
        }
    }
}

/// The onion service's state, as exported in `onionpkg_mirror_onion_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum OnionState {
    /// The onion service is not configured.
    Disabled = 0,
    /// Tor is bootstrapping or the service is being launched.
    Starting = 1,
    /// The service is launched and accepting streams.
    Running = 2,
    /// Launching failed; see the log.
    Failed = 3,
}

/// Every counter and gauge of one mirror process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class, index 0 for 1xx through 4 for 5xx.
    responses: [AtomicU64; 5],
    bytes_sent: AtomicU64,
    errors: AtomicU64,
    connections_open: AtomicI64,
    /// Refused connections by listener (clearnet, onion, metrics) and
    /// reason (budget full, per-client cap).
    connections_refused: [[AtomicU64; 2]; 3],
    sync_last_success: AtomicI64,
    sync_last_error_time: AtomicI64,
    sync_failures: AtomicU64,
    served_timestamp_version: AtomicU64,
    onion_state: AtomicI64,
    sync_last_error: Mutex<String>,
}

impl Metrics {
    /// Counts one response with `status`.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
    }

    /// Responses counted so far with a status in class `class` (1 to 5).
    pub fn responses(&self, class: usize) -> u64 {
        self.responses
            .get(class.wrapping_sub(1))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Counts body bytes handed to a connection.
    pub fn sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    /// Counts a failed connection or a failed body read.
    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// Counts a connection to `listener` refused for `why`.
    pub fn refused(&self, listener: Listener, why: Refusal) {
        self.connections_refused[listener_index(listener)][refusal_index(why)]
            .fetch_add(1, Relaxed);
    }

    /// A connection opened; the guard counts it closed when dropped.
    pub fn open(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.connections_open.fetch_add(1, Relaxed);
        OpenConnection(std::sync::Arc::clone(self))
    }

    /// Records a successful sync at `unix` seconds, serving `version`.
    pub fn sync_ok(&self, unix: i64, version: u64) {
        self.sync_last_success.store(unix, Relaxed);
        self.served_timestamp_version.store(version, Relaxed);
    }

    /// Records a failed sync at `unix` seconds.
    pub fn sync_failed(&self, unix: i64, error: &str) {
        self.sync_last_error_time.store(unix, Relaxed);
        self.sync_failures.fetch_add(1, Relaxed);
        if let Ok(mut e) = self.sync_last_error.lock() {
            error.clone_into(&mut e);
        }
    }

    /// Records the timestamp version being served.
    pub fn served_version(&self, version: u64) {
        self.served_timestamp_version.store(version, Relaxed);
    }

    /// Records the onion service's state.
    pub fn onion(&self, state: OnionState) {
        self.onion_state.store(state as i64, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            let _ = writeln!(out, "# HELP onionpkg_mirror_{name} {help}");
            let _ = writeln!(out, "# TYPE onionpkg_mirror_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "onionpkg_mirror_{name}{labels} {value}");
            }
        };
        let classes: Vec<(String, String)> = (1..=5)
            .map(|c| {
                (
                    format!("{{class=\"{c}xx\"}}"),
                    self.responses(c).to_string(),
                )
            })
            .collect();
        let classes: Vec<(&str, String)> = classes
            .iter()
            .map(|(l, v)| (l.as_str(), v.clone()))
            .collect();
        metric(
            "responses_total",
            "counter",
            "HTTP responses by status class.",
            &classes,
        );
        let one = |v: String| [("", v)];
        metric(
            "sent_bytes_total",
            "counter",
            "Response body bytes sent.",
            &one(self.bytes_sent.load(Relaxed).to_string()),
        );
        metric(
            "errors_total",
            "counter",
            "Failed connections and body reads.",
            &one(self.errors.load(Relaxed).to_string()),
        );
        metric(
            "connections_open",
            "gauge",
            "Connections being served, over all listeners.",
            &one(self.connections_open.load(Relaxed).to_string()),
        );
        let refused: Vec<(String, String)> = LISTENERS
            .iter()
            .flat_map(|&l| REFUSALS.iter().map(move |&r| (l, r)))
            // A per-client cap exists on clearnet only.
            .filter(|&(l, r)| r != Refusal::PerClient || l == Listener::Clearnet)
            .map(|(l, r)| {
                (
                    format!("{{listener=\"{}\",reason=\"{}\"}}", l.name(), r.name()),
                    self.connections_refused[listener_index(l)][refusal_index(r)]
                        .load(Relaxed)
                        .to_string(),
                )
            })
            .collect();
        let refused: Vec<(&str, String)> = refused
            .iter()
            .map(|(l, v)| (l.as_str(), v.clone()))
            .collect();
        metric(
            "connections_refused_total",
            "counter",
            "Connections closed at once: their listener's budget was full, or their \
             address held its per-client share.",
            &refused,
        );
        metric(
            "sync_last_success_timestamp_seconds",
            "gauge",
            "When the last sync succeeded (0: never).",
            &one(self.sync_last_success.load(Relaxed).to_string()),
        );
        metric(
            "sync_last_error_timestamp_seconds",
            "gauge",
            "When the last sync failed (0: never).",
            &one(self.sync_last_error_time.load(Relaxed).to_string()),
        );
        metric(
            "sync_failures_total",
            "counter",
            "Failed syncs.",
            &one(self.sync_failures.load(Relaxed).to_string()),
        );
        metric(
            "served_timestamp_version",
            "gauge",
            "The version of the timestamp.json being served (0: unknown).",
            &one(self.served_timestamp_version.load(Relaxed).to_string()),
        );
        metric(
            "onion_state",
            "gauge",
            "The onion service: 0 disabled, 1 starting, 2 running, 3 failed.",
            &one(self.onion_state.load(Relaxed).to_string()),
        );
        out
    }
}

const LISTENERS: [Listener; 3] = [Listener::Clearnet, Listener::Onion, Listener::Metrics];
const REFUSALS: [Refusal; 2] = [Refusal::Full, Refusal::PerClient];

fn listener_index(l: Listener) -> usize {
    match l {
        Listener::Clearnet => 0,
        Listener::Onion => 1,
        Listener::Metrics => 2,
    }
}

fn refusal_index(r: Refusal) -> usize {
    match r {
        Refusal::Full => 0,
        Refusal::PerClient => 1,
    }
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub struct OpenConnection(std::sync::Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = std::sync::Arc::new(Metrics::default());
        m.response(200);
        m.response(404);
        m.response(404);
        m.sent(10);
        let open = m.open();
        m.sync_ok(1_700_000_000, 7);
        m.onion(OnionState::Running);
        let text = m.render();
        assert!(
            text.contains("onionpkg_mirror_responses_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("onionpkg_mirror_responses_total{class=\"4xx\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("onionpkg_mirror_sent_bytes_total 10\n"),
            "{text}"
        );
        assert!(
            text.contains("onionpkg_mirror_connections_open 1\n"),
            "{text}"
        );
        assert!(
            text.contains("onionpkg_mirror_served_timestamp_version 7\n"),
            "{text}"
        );
        assert!(text.contains("onionpkg_mirror_onion_state 2\n"), "{text}");
        drop(open);
        assert!(m.render().contains("onionpkg_mirror_connections_open 0\n"));
    }
}
