//! The onionpkg role layout and file naming.
//!
//! Top-level TUF roles: `root` (offline, M-of-N), `targets` (packages),
//! `snapshot` and `timestamp` (online). `targets` delegates, terminating, to:
//! - `mirrors`, with its own key, for the one target [`MIRRORS_TARGET`];
//! - `feeds`, with an online key, for third-party feed snapshots under
//!   `feeds/`;
//! - hashed bins `bin-XX`, signed with the `targets` keys, for every other
//!   path (packages): bin `bin-XX` holds the paths whose SHA-256 starts with
//!   one of its hex prefixes (`path_hash_prefixes`, TUF's hashed-bin
//!   delegation). An update then re-signs and ships the one bin that changed,
//!   not a list of every package, so the metadata a client fetches grows with
//!   the change, not with the repository. A repository made with no bins keeps
//!   its packages in `targets` itself; clients handle both.
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

/// The name prefix of the hashed-bin roles (`bin-00`, `bin-01`, ...).
pub const BIN_PREFIX: &str = "bin-";
/// The number of hashed bins a new repository gets unless told otherwise.
pub const DEFAULT_BINS: u32 = 128;
/// The most hashed bins a repository may have: one per first byte of the
/// path hash.
pub const MAX_BINS: u32 = 256;

/// Whether `role` names a hashed bin.
pub fn is_bin(role: &str) -> bool {
    role.strip_prefix(BIN_PREFIX)
        .is_some_and(|hex| hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `role` lists packages: `targets` itself or a hashed bin.
pub fn is_package_role(role: &str) -> bool {
    role == TARGETS || is_bin(role)
}

/// The hashed bins of a repository with `count` bins (a power of two from 1
/// to [`MAX_BINS`]): each bin's role name and its path hash prefixes. Bin `i`
/// holds the paths whose hash's first byte falls in its `256 / count` slice;
/// it is named after the first of them.
pub fn bins(count: u32) -> Option<Vec<(String, Vec<String>)>> {
    if count == 0 || count > MAX_BINS || !count.is_power_of_two() {
        return None;
    }
    let per = MAX_BINS / count;
    Some(
        (0..count)
            .map(|i| {
                let prefixes: Vec<String> = (i * per..(i + 1) * per)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (format!("{BIN_PREFIX}{}", prefixes[0]), prefixes)
            })
            .collect(),
    )
}

/// The lowercase hex SHA-256 of a target path, which hash prefixes match.
pub fn path_hash(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(path.as_bytes()))
}

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
    fn bins_split_the_hash_space_evenly() {
        for count in [1, 2, 16, 128, 256] {
            let b = bins(count).unwrap();
            assert_eq!(b.len() as u32, count);
            let all: Vec<&String> = b.iter().flat_map(|(_, p)| p).collect();
            assert_eq!(all.len(), 256);
            assert_eq!(all[0], "00");
            assert_eq!(all[255], "ff");
            assert!(b.iter().all(|(name, _)| is_bin(name)));
        }
        assert_eq!(
            bins(128).unwrap()[1],
            ("bin-02".into(), vec!["02".into(), "03".into()])
        );
        for bad in [0, 3, 100, 512] {
            assert!(bins(bad).is_none(), "{bad}");
        }
        assert!(!is_bin("bin-0g") && !is_bin("bin-000") && !is_bin("targets"));
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
