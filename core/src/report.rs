//! One JSON shape for what every onionpkg program reports with `--json`:
//! errors and warnings look alike whichever program prints them.
//!
//! - an error: `{"ok": false, "event": "error", "error": NAME, "exit_code": CODE, "message": TEXT}`,
//!   NAME from [`crate::exit::name`];
//! - a warning: `{"event": "warning", "message": TEXT}`;
//! - a result: the result's fields and `"event"` naming what it is.
//!
//! Results go to stdout; errors, warnings and (with `--json`) log lines go
//! to stderr, so a consumer of stdout sees only results.

use serde::Serialize;

#[derive(Serialize)]
struct ErrorLine<'a> {
    ok: bool,
    event: &'static str,
    error: &'static str,
    exit_code: u8,
    message: &'a str,
}

#[derive(Serialize)]
struct WarningLine<'a> {
    event: &'static str,
    message: &'a str,
}

/// Reports on stderr the failure that ends a program, as every onionpkg
/// program does: `error: MESSAGE`, or with `json` its [`error_json`] line;
/// returns the exit code to end with.
#[allow(
    clippy::print_stderr,
    reason = "the programs' one way to report failure"
)]
pub fn fail(json: bool, exit_code: u8, message: &str) -> std::process::ExitCode {
    if json {
        eprintln!("{}", error_json(exit_code, message));
    } else {
        eprintln!("error: {message}");
    }
    std::process::ExitCode::from(exit_code)
}

/// The JSON line reporting an error that ends the program with `exit_code`.
pub fn error_json(exit_code: u8, message: &str) -> String {
    serde_json::to_string(&ErrorLine {
        ok: false,
        event: "error",
        error: crate::exit::name(exit_code),
        exit_code,
        message,
    })
    .unwrap_or_default()
}

/// The JSON line reporting a warning.
pub fn warning_json(message: &str) -> String {
    serde_json::to_string(&WarningLine {
        event: "warning",
        message,
    })
    .unwrap_or_default()
}

/// The JSON line reporting a result: `value`'s fields (an object) with
/// `"event": event`; a value that is not an object is put under `"value"`.
pub fn event_json<T: Serialize>(event: &str, value: &T) -> String {
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut o = match v {
        serde_json::Value::Object(o) => o,
        other => {
            let mut o = serde_json::Map::new();
            o.insert("value".into(), other);
            o
        }
    };
    o.insert("event".into(), event.into());
    serde_json::Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_warnings_have_one_shape() {
        let e: serde_json::Value = serde_json::from_str(&error_json(8, "bad \"sig\"")).unwrap();
        assert_eq!(e["ok"], false);
        assert_eq!(e["event"], "error");
        assert_eq!(e["error"], "verification");
        assert_eq!(e["exit_code"], 8);
        assert_eq!(e["message"], "bad \"sig\"");
        let w: serde_json::Value = serde_json::from_str(&warning_json("careful")).unwrap();
        assert_eq!(w["event"], "warning");
        assert_eq!(w["message"], "careful");
        let r: serde_json::Value =
            serde_json::from_str(&event_json("status", &serde_json::json!({"v": 1}))).unwrap();
        assert_eq!(r, serde_json::json!({"event": "status", "v": 1}));
    }
}
