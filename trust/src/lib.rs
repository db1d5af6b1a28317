//! The onionpkg trust layer: what is signed, by which key, how it is verified,
//! and until when it is valid.
//!
//! This crate is part of onionpkg. It owns every signed format the project
//! uses and their verification; it does no network I/O (transports live in the
//! fetcher and the mirror) and never reads the clock behind the caller's back:
//! every check takes `now` explicitly (see [`clock`]).
//!
//! # Overview
//! - [`metadata`]: repository metadata after The Update Framework (TUF) 1.0,
//!   verified with `sigstore-tuf`'s transport-free state machine over the
//!   [`Repository`](sigstore_tuf::Repository) trait our transports implement.
//! - [`roles`]: the onionpkg role layout (root, targets, snapshot, timestamp, and
//!   the delegated `mirrors` and `feeds` roles) and its file naming.
//! - [`mirrors`]: the signed, expiring mirror list `mirrors.json`.
//! - [`announce`]: the compact signed DNS TXT announcement.
//! - [`clock`]: the clock policy (skew tolerance, signed time floor).
//! - [`keys`]: public keys (ed25519 and ECDSA P-256) and key ids; with the
//!   `signing` feature, ed25519 private key files and signing (`sign`).
//!
//! # Invariants
//! - Nothing is trusted unless it chains to a pinned root through signatures
//!   that meet each role's threshold.
//! - A signature check never runs without our crypto provider installed
//!   ([`crypto::install`] is called by every verifying entry point).
//! - Secrets are never logged or printed, and are wiped when dropped.
//!
//! # Features
//! - `signing`: private keys and signing, for the release side only. The
//!   appliance's fetcher is built without it.

#![forbid(unsafe_code)]

pub mod announce;
pub mod clock;
pub mod crypto;
mod err;
pub mod keys;
pub mod metadata;
pub mod mirrors;
pub mod roles;
#[cfg(feature = "signing")]
pub mod sign;
pub mod util;

pub use err::{Error, Result};
