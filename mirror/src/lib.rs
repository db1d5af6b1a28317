//! The mirror side of onionpkg: serving a repository as an onion service and
//! over HTTP(S).
//!
//! This crate owns the serving paths. It builds its arti client with
//! `onionpkg-fetcher`'s Tor plumbing, so fetcher and mirror join a network
//! the same way.
//!
//! # Invariants
//! - The onion service identity key lives in the arti keystore under the
//!   mirror's state dir, so the .onion address survives restarts.
//! - Concurrent onion streams are capped; streams beyond the cap are refused,
//!   not queued.
//! - Every connection has header-read and lifetime deadlines.

#![forbid(unsafe_code)]

mod err;
pub mod files;
pub mod onion;

pub use err::{Error, Result};
