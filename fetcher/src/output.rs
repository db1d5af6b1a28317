//! How `onionpkg-fetch` prints what its commands found: a human line, or
//! with `--json` one JSON object per line (`"event"` says what it is), from
//! the same values. Errors and warnings take the shape every onionpkg
//! program uses ([`onionpkg_core::report`]).

use serde::Serialize;

use crate::commands::{
    CheckReport, ConfigReport, Downloaded, MirrorRow, StatusReport, UpdateReport,
};
use crate::hooks::ActionReport;

/// What the binary prints, for `main` to write out.
#[derive(Debug, Default)]
pub struct Output {
    /// Lines for stdout.
    pub stdout: Vec<String>,
    /// Lines for stderr (warnings, the error).
    pub stderr: Vec<String>,
    /// The exit code.
    pub code: u8,
}

/// Text or JSON lines.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    /// A printer for `--json` (or not).
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether lines are JSON.
    pub fn json(self) -> bool {
        self.json
    }

    /// `value` as a JSON event, or the human line.
    fn event<T: Serialize>(self, event: &str, value: &T, human: String) -> String {
        if !self.json {
            return human;
        }
        let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), event.into());
        }
        v.to_string()
    }

    /// The error that ends the run with `code`.
    pub fn error(self, code: u8, message: &str) -> String {
        if self.json {
            onionpkg_core::report::error_json(code, message)
        } else {
            format!("error: {message}")
        }
    }

    /// A warning.
    pub fn warning(self, message: &str) -> String {
        if self.json {
            onionpkg_core::report::warning_json(message)
        } else {
            format!("warning: {message}")
        }
    }
}

/// `init`.
pub fn init(p: &Printer, version: u64, changed: bool) -> String {
    p.event(
        "init",
        &serde_json::json!({"root_version": version, "changed": changed}),
        if changed {
            format!("pinned root version {version}")
        } else {
            format!("root version {version} is already pinned")
        },
    )
}

/// `update`.
pub fn update(p: &Printer, r: &UpdateReport) -> String {
    let human = format!(
        "metadata up to date from {} (timestamp version {})",
        r.mirror,
        r.timestamp_version.unwrap_or(0)
    );
    p.event("update", r, human)
}

/// One downloaded (or already present) file; `event` is `downloaded` or
/// `feed`.
pub fn downloaded(p: &Printer, event: &str, d: &Downloaded) -> String {
    let human = match &d.mirror {
        Some(m) => format!(
            "{} verified ({} bytes) from {m}",
            d.file.display(),
            d.length
        ),
        None => format!("{} already verified", d.file.display()),
    };
    p.event(event, d, human)
}

/// `check`.
pub fn check(p: &Printer, r: &CheckReport) -> String {
    let human = if r.update_available && r.source == "pending" {
        format!(
            "update available: the downloads of timestamp version {} did not complete",
            r.trusted.map_or_else(|| "-".into(), |v| v.to_string()),
        )
    } else if r.update_available {
        format!(
            "update available: timestamp version {} (trusted {}), from the {}",
            r.available.map_or_else(|| "-".into(), |v| v.to_string()),
            r.trusted.map_or_else(|| "none".into(), |v| v.to_string()),
            if r.source == "announcement" {
                "announcement"
            } else {
                "mirror"
            },
        )
    } else if r.source == "announcement" {
        "up to date (by the announcement; no mirror contacted)".to_owned()
    } else {
        "up to date".to_owned()
    };
    p.event("check", r, human)
}

/// `status`.
pub fn status(p: &Printer, s: &StatusReport) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let human = format!(
        "root: {}\nmetadata: {} (timestamp version {}, expires {})\nmirror list: {}\nclock: {}{}\nlast mirror: {}",
        match (s.root_version, s.pinned_root_version) {
            (None, _) => "none (run init)".to_owned(),
            (Some(v), Some(pinned)) if pinned != v =>
                format!("version {v} (pinned version {pinned})"),
            (Some(v), _) => format!("version {v}"),
        },
        s.metadata_state,
        dash(s.timestamp_version.map(|v| v.to_string())),
        dash(s.timestamp_expires.map(|t| t.to_string())),
        match (s.mirror_list_version, s.mirror_list_expires) {
            (Some(v), Some(e)) => format!(
                "version {v}, expires {e}, cached {}",
                dash(s.mirror_list_updated.map(|t| t.to_string()))
            ),
            _ => "none cached (main mirrors only)".into(),
        },
        s.clock,
        s.time_floor
            .map_or(String::new(), |f| format!(" (signed time floor {f})")),
        s.last_mirror
            .as_ref()
            .map_or_else(|| "-".into(), |(m, t)| format!("{m} at {t}")),
    );
    p.event("status", s, human)
}

/// `check-config`.
pub fn check_config(p: &Printer, r: &ConfigReport) -> String {
    let human = format!(
        "configuration ok; trust root version {} ({}{})",
        r.root_version,
        r.root_file.display(),
        if r.pinned {
            ", pinned"
        } else {
            ", pinned on the first run"
        },
    );
    p.event("check-config", r, human)
}

/// The result of one feed's `on_update` action.
pub fn action(p: &Printer, r: &ActionReport) -> String {
    p.event("action", r, r.human())
}

/// One line of `mirrors`.
pub fn mirror(p: &Printer, m: &MirrorRow) -> String {
    let human = match (&m.bad_until, &m.reason) {
        (Some(u), Some(r)) => format!("{} {} bad until {u}: {r}", m.name, m.url),
        _ => format!("{} {} ok", m.name, m.url),
    };
    p.event("mirror", m, human)
}
