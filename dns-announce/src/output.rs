//! What a command of `onionpkg-announce` reports, apart from the command
//! line that prints it, so the commands do not depend on the command line.

/// What a command reports: lines of text, and the same as one JSON object.
#[derive(Debug, Clone)]
pub struct Output {
    /// The text form.
    pub text: Vec<String>,
    /// The `--json` form.
    pub json: serde_json::Value,
}
