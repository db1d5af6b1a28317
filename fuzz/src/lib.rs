//! The bodies of the onionpkg fuzz targets, and the fixtures they share.
//!
//! Each `fuzz_targets/NAME.rs` is one line that hands libFuzzer's input to
//! the function of the same name here. Every function reaches the parser
//! through the same public entry point the program uses on data from the
//! network or from an upstream, and checks what must hold of the result
//! (a round trip, a bound, a consistency) besides "no panic".
//!
//! The fixtures (`fixtures/repo.json`) are a real repository made by
//! `onionpkg-repo`, its DNS announcement and a minisign-signed feed, all
//! written by `examples/seedgen.rs` at a fixed signing time, so that
//! verification runs at a fixed time and a run is reproducible.
//!
//! # Invariants
//! - No target reads the clock, the network, or any file but its fixtures
//!   and the scratch files it writes itself.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jiff::Timestamp;
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::keys::RoleKeys;

mod http_targets;
mod trust_targets;

pub use http_targets::{http_response, mirror_request};
pub use trust_targets::{
    announce_parse, announce_rrset, config, feed_checksum, feed_ip_list, feed_libloc, feed_mmdb,
    feed_signature, feed_tar_gz, feed_tor_geoip, feed_tor_geoip6, mirror_list, tuf_client,
    tuf_root,
};

/// The fixture bundle written by `examples/seedgen.rs`.
#[derive(Debug, serde::Deserialize)]
pub struct Fixture {
    /// The time every check runs at (the signing time plus an hour).
    pub now: Timestamp,
    /// The announcement's owner name.
    pub owner: String,
    /// The announcement's channel.
    pub channel: String,
    /// The pinned root (`1.root.json`).
    pub root: String,
    /// Every metadata file of the repository, by file name.
    pub metadata: BTreeMap<String, String>,
    /// Every target file of the repository, by consistent path, hex.
    pub targets: BTreeMap<String, String>,
    /// The package a client resolves.
    pub package: String,
    /// The minisign public key of the signed feed (its base64 line).
    pub minisign_key: String,
    /// The feed content that signature covers.
    pub signed_feed: String,
}

/// The fixtures, parsed once.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        serde_json::from_str(include_str!("../fixtures/repo.json"))
            .unwrap_or_else(|e| panic!("fixtures/repo.json: {e}; run examples/seedgen.rs"))
    })
}

/// The keys of the timestamp role under the newest root of the fixture:
/// the keys that sign the announcement.
pub fn timestamp_keys() -> &'static RoleKeys {
    static K: OnceLock<RoleKeys> = OnceLock::new();
    K.get_or_init(|| {
        let f = fixture();
        let newest = f
            .metadata
            .iter()
            .filter_map(|(name, text)| {
                let v: u64 = name.strip_suffix(".root.json")?.parse().ok()?;
                Some((v, text))
            })
            .max_by_key(|(v, _)| *v)
            .map(|(_, text)| text.as_bytes())
            .unwrap_or(f.root.as_bytes());
        let root = onionpkg_trust::metadata::check_root(newest)
            .unwrap_or_else(|e| panic!("the fixture's root does not verify: {e}"));
        onionpkg_trust::metadata::role_keys(&root, "timestamp")
            .unwrap_or_else(|e| panic!("the fixture's timestamp keys: {e}"))
    })
}

/// No clock skew: what appliances run with by default.
pub fn tolerance() -> Tolerance {
    Tolerance::ZERO
}

/// A current-thread tokio runtime with time and I/O, built once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime: {e}"))
    })
}

/// A scratch directory for this process, removed when it exits normally.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("onionpkg-fuzz-")
            .tempdir()
            .unwrap_or_else(|e| panic!("a scratch directory: {e}"))
    })
    .path()
}

/// A scratch file holding one input, removed when dropped.
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `data` to a new scratch file: the feed checks read a downloaded
/// file from disk. A new name every time: rewriting one file in place
/// makes ext4 flush it to disk on every input.
pub fn scratch_file(data: &[u8]) -> ScratchFile {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch().join(format!("input-{n}"));
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    ScratchFile(path)
}

/// Splits `data` at its first newline: (the line, the rest).
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
