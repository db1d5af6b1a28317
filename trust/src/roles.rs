//! The onionpkg role layout and file naming.
//!
//! Top-level TUF roles: `root` (offline, M-of-N), `targets` (packages),
//! `snapshot` and `timestamp` (online). `targets` delegates, terminating, to:
//! - `mirrors`, with its own key, for the one target [`MIRRORS_TARGET`];
//! - `feeds`, with an online key, for third-party feed snapshots under
//!   `feeds/`.
//!
//! The repository always uses consistent snapshots: metadata files are named
//! `N.ROLE.json` (but `timestamp.json`), targets `dir/HASH.basename`. Every
//! published file but `timestamp.json` is therefore immutable, which is what
//! lets a repository (or a mirror) change atomically: writing
//! `timestamp.json` last is the commit point.

/// The root role.
pub const ROOT: &str = "root";
/// The top-level targets role (packages).
pub const TARGETS: &str = "targets";
/// The snapshot role.
pub const SNAPSHOT: &str = "snapshot";
/// The timestamp role; its keys also sign the DNS announcement.
pub const TIMESTAMP: &str = "timestamp";
/// The delegated role that signs the mirror list.
pub const MIRRORS: &str = "mirrors";
/// The delegated role that signs third-party feed snapshots.
pub const FEEDS: &str = "feeds";

/// The top-level roles, in the order a root lists them.
pub const TOP_LEVEL: [&str; 4] = [ROOT, TARGETS, SNAPSHOT, TIMESTAMP];
/// The delegated roles of the onionpkg layout.
pub const DELEGATED: [&str; 2] = [MIRRORS, FEEDS];

/// The target path of the mirror list.
pub const MIRRORS_TARGET: &str = "mirrors.json";
/// Delegation path patterns of the `mirrors` role.
pub const MIRRORS_PATHS: [&str; 1] = [MIRRORS_TARGET];
/// Delegation path patterns of the `feeds` role (`feeds/NAME/FILE`).
pub const FEEDS_PATHS: [&str; 1] = ["feeds/*/*"];

/// Upper bound on the size of a root metadata file (its size is not signed
/// anywhere, so the cap is what stops an endless-data attack).
pub const ROOT_MAX_BYTES: u64 = 512 * 1024;
/// Upper bound on the size of `timestamp.json` (likewise unsigned).
pub const TIMESTAMP_MAX_BYTES: u64 = 16 * 1024;
/// Upper bound on the size of a snapshot.
pub const SNAPSHOT_MAX_BYTES: u64 = 2 * 1024 * 1024;
/// Upper bound on the size of a targets metadata file (top-level or delegated).
pub const TARGETS_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The file name of version `version` of a versioned role's metadata.
pub fn versioned_name(role: &str, version: u64) -> String {
    format!("{version}.{role}.json")
}

/// Where a target lives in a consistent-snapshot repository:
/// `dir/HASH.basename` (the hash prefixes the file name, not the path).
pub fn consistent_target_path(path: &str, sha256_hex: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{sha256_hex}.{name}"),
        None => format!("{sha256_hex}.{path}"),
    }
}

/// Whether a target path is acceptable: relative, `/`-separated, no empty,
/// `.` or `..` segments, no backslash or control characters. Everything that
/// later becomes a file name passes through here first.
pub fn is_safe_target_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_paths_prefix_the_basename() {
        assert_eq!(consistent_target_path("a.tar", "ab"), "ab.a.tar");
        assert_eq!(
            consistent_target_path("pkg/x/a.tar", "ab"),
            "pkg/x/ab.a.tar"
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a\\b",
            "a\0b",
            "a/",
        ] {
            assert!(!is_safe_target_path(bad), "{bad:?}");
        }
        for good in ["a", "pkg/a-1.0.tar", "feeds/geoip/GeoIP.dat"] {
            assert!(is_safe_target_path(good), "{good:?}");
        }
    }
}
