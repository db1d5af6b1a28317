//! Typed, validated TOML configuration for the onionpkg programs.
//!
//! This crate is part of onionpkg. It owns the configuration file formats of
//! the fetcher ([`FetcherConfig`]), the mirror ([`MirrorConfig`]), the
//! announcer ([`AnnounceConfig`]) and the signing service ([`SignerConfig`]),
//! and the error kinds every crate shares
//! ([`ErrorKind`], [`HasKind`]).
//!
//! # Loading
//! [`load_fetcher`], [`load_mirror`], [`load_announce`] and [`load_signer`] (or the generic
//! [`load`], and [`from_str`] for text in memory) read a file of at most
//! [`MAX_FILE_SIZE`] bytes, parse it, and check every rule. A
//! [`ConfigError`] names the file, the line and column, and the dotted key,
//! and displays as
//! ``mirror.toml:12:8: key `listen.http`: expected a socket address like 127.0.0.1:8080``.
//!
//! # Invariants
//! - A configuration returned by a loader is valid: every rule of its
//!   [`ConfigFile::validate`] holds. Deserializing the types directly skips
//!   those rules; the other crates only use the loaders.
//! - Unknown keys are errors, never ignored, so a typo cannot silently leave
//!   a setting at its default.
//! - Relative paths in a file are resolved against the file's directory, so
//!   the meaning of a file does not depend on the working directory.
//! - Loading reads nothing but the configuration file itself, and never
//!   resolves host names: addresses are IP addresses and ports.

#![forbid(unsafe_code)]

pub mod announce;
pub mod common;
mod err;
pub mod fetcher;
mod keypath;
mod load;
pub mod mirror;
pub mod program;
pub mod signer;
pub mod tor;

pub use announce::AnnounceConfig;
pub use err::{ConfigError, Location};
pub use fetcher::FetcherConfig;
pub use load::{ConfigFile, Invalid, MAX_FILE_SIZE, from_str, load};
pub use mirror::MirrorConfig;
pub use onionpkg_core::{ErrorKind, HasKind};
pub use signer::{SignerConfig, UpstreamConfig};

use std::path::Path;

/// Loads and validates an `onionpkg-fetch` configuration file.
pub fn load_fetcher(path: impl AsRef<Path>) -> Result<FetcherConfig, ConfigError> {
    load(path)
}

/// Loads and validates an `onionpkg-mirror` configuration file.
pub fn load_mirror(path: impl AsRef<Path>) -> Result<MirrorConfig, ConfigError> {
    load(path)
}

/// Loads and validates an `onionpkg-announce` configuration file.
pub fn load_announce(path: impl AsRef<Path>) -> Result<AnnounceConfig, ConfigError> {
    load(path)
}

/// Loads and validates an `onionpkg-signer` configuration file.
pub fn load_signer(path: impl AsRef<Path>) -> Result<SignerConfig, ConfigError> {
    load(path)
}
