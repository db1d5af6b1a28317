//! The exit codes of every onionpkg program: one table, so that the same
//! failure (a tampered target, an expired timestamp, an unreachable server)
//! exits with the same code from every binary that can meet it.
//!
//! docs/EXIT-CODES.md shows the same table; a test keeps the two in step.

use crate::kind::ErrorKind;

/// Success; for `onionpkg-fetch check`: no update.
pub const OK: u8 = 0;
/// An unexpected failure: local I/O, damaged state, a bug.
pub const FAILURE: u8 = 1;
/// Bad command line or configuration.
pub const USAGE: u8 = 2;
/// Nothing to work on yet: no pinned root (`onionpkg-fetch init`), no
/// repository (`onionpkg-repo init`).
pub const NOT_INITIALIZED: u8 = 3;
/// Signed data expired and could not be refreshed.
pub const EXPIRED: u8 = 4;
/// The clock is behind signed time already seen.
pub const CLOCK: u8 = 5;
/// The network failed: every mirror, the upstream, the DNS server.
pub const UNREACHABLE: u8 = 6;
/// Tor could not be started or reached.
pub const TOR: u8 = 7;
/// Verification refused something: a bad signature, too few signatures, a
/// tampered file, a rollback, malformed signed data.
pub const VERIFICATION: u8 = 8;
/// An update is announced but not available yet: try again later.
pub const NOT_YET: u8 = 9;
/// `onionpkg-fetch check`: an update is available (not an error).
pub const UPDATE_AVAILABLE: u8 = 10;
/// Something asked for does not exist (no announcement at the name).
pub const NOT_FOUND: u8 = 11;
/// A key is unusable, or too few keys are at hand to sign.
pub const KEYS: u8 = 12;
/// A peer refused the request (a DNS server, the signing service).
pub const REFUSED: u8 = 13;
/// `onionpkg-fetch feeds sync`: a feed's `on_update` action failed; the
/// verified files are in place.
pub const ACTION_FAILED: u8 = 14;

/// Every code, its name (as `--json` error reports give it) and its
/// meaning, in order.
pub const TABLE: &[(u8, &str, &str)] = &[
    (OK, "ok", "success; `check`: up to date"),
    (
        FAILURE,
        "failure",
        "an unexpected failure: local I/O, damaged state, a bug",
    ),
    (USAGE, "usage", "bad command line or configuration"),
    (
        NOT_INITIALIZED,
        "not-initialized",
        "nothing to work on yet: no pinned root, no repository",
    ),
    (
        EXPIRED,
        "expired",
        "signed data expired and could not be refreshed",
    ),
    (
        CLOCK,
        "clock",
        "the clock is behind signed time already seen",
    ),
    (
        UNREACHABLE,
        "unreachable",
        "the network failed: every mirror, the upstream, or the server",
    ),
    (TOR, "tor", "Tor could not be started or reached"),
    (
        VERIFICATION,
        "verification",
        "verification refused something: a signature, a hash, a rollback, malformed signed data",
    ),
    (
        NOT_YET,
        "not-yet",
        "an update is announced but not available yet; try again later",
    ),
    (
        UPDATE_AVAILABLE,
        "update-available",
        "`check`: an update is available",
    ),
    (NOT_FOUND, "not-found", "something asked for does not exist"),
    (
        KEYS,
        "keys",
        "a key is unusable, or too few keys are at hand to sign",
    ),
    (
        REFUSED,
        "refused",
        "a peer refused the request (a DNS server, the signing service)",
    ),
    (
        ACTION_FAILED,
        "action-failed",
        "`feeds sync`: an `on_update` action failed; the verified files are in place",
    ),
];

/// The exit code for an error of `kind`.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::BadConfig => USAGE,
        ErrorKind::BadInput | ErrorKind::Verification | ErrorKind::Rollback => VERIFICATION,
        ErrorKind::Expired => EXPIRED,
        ErrorKind::ClockBehind => CLOCK,
        ErrorKind::Network => UNREACHABLE,
        ErrorKind::Tor => TOR,
        ErrorKind::NotYetAvailable => NOT_YET,
        ErrorKind::NotInitialized => NOT_INITIALIZED,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Key => KEYS,
        ErrorKind::Refused => REFUSED,
        ErrorKind::Io | ErrorKind::Internal => FAILURE,
    }
}

/// The name of an exit code, for `--json` error reports.
pub fn name(code: u8) -> &'static str {
    TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("failure", |(_, n, _)| n)
}

/// The table as text for a program's `--help` (`after_help`).
pub fn help() -> String {
    let mut out =
        String::from("Exit codes (the same for every onionpkg program; docs/EXIT-CODES.md):\n");
    for (c, _, what) in TABLE {
        out.push_str(&format!("  {c:<3} {what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<u8> = TABLE.iter().map(|(c, _, _)| *c).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn every_kind_has_a_code_in_the_table() {
        use ErrorKind as K;
        for k in [
            K::BadConfig,
            K::BadInput,
            K::Verification,
            K::Expired,
            K::ClockBehind,
            K::Rollback,
            K::Network,
            K::Tor,
            K::NotYetAvailable,
            K::Io,
            K::NotInitialized,
            K::NotFound,
            K::Key,
            K::Refused,
            K::Internal,
        ] {
            let c = code(k);
            assert!(TABLE.iter().any(|(t, _, _)| *t == c), "{k:?}");
            assert_ne!(c, OK);
            assert_ne!(c, UPDATE_AVAILABLE);
        }
    }
}

#[cfg(test)]
mod doc_tests {
    use super::TABLE;

    /// docs/EXIT-CODES.md shows exactly this table.
    #[test]
    fn the_documented_table_is_this_one() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/EXIT-CODES.md"),
        )
        .unwrap_or_default();
        let rows: Vec<(u8, String)> = doc
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse().ok()?;
                let name = cells.get(2)?.trim_matches('`').to_owned();
                let meaning = cells.get(3)?;
                (!meaning.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                    .then_some((code, name))
            })
            .collect();
        let want: Vec<(u8, String)> = TABLE
            .iter()
            .map(|(c, n, _)| (*c, (*n).to_owned()))
            .collect();
        assert_eq!(rows, want);
    }
}
