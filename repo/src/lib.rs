//! The release side of onionpkg: keys per role, signing, publishing.
//!
//! This crate is part of onionpkg. It creates and maintains a repository of
//! TUF metadata and targets (see [`state`] for the layout), with keys per
//! role: root (offline, M-of-N), targets, snapshot and timestamp, and the
//! delegated `mirrors` and `feeds` roles. It is the only crate that holds
//! private keys; the appliance's fetcher never links this code. With a
//! [`RemoteSigner`], every role but root is signed by `onionpkg-signer`
//! instead, and no key file of those roles is needed here.
//!
//! # Invariants
//! - Publishing writes new, versioned files first and `timestamp.json` last,
//!   so the published tree changes atomically for every reader.
//! - Every key a step needs is loaded before the step writes anything.
//! - A root is installed only when it meets the thresholds of both the
//!   previous root and itself, checked by the same code clients run.

#![forbid(unsafe_code)]

pub mod cli;
mod err;
pub mod keydir;
mod listing;
pub mod ops;
pub mod remote;
pub mod rootops;
pub mod state;
pub mod verify;

pub use err::{RepoError, Result};
pub use keydir::KeyDir;
pub use ops::{InitOptions, InitReport, Threshold};
pub use remote::RemoteSigner;
pub use state::{Expiries, RepoDir, RepoLock};
