//! The mirror side of onionpkg: serving a repository as an onion service and
//! over HTTP(S), and syncing it from upstream.
//!
//! This crate is part of onionpkg. It owns the serving paths (one hyper
//! service for every listener, [`http`]), the listeners and their limits
//! ([`serve`], [`budget`], [`nofile`], [`tls`]), metrics ([`metrics`]),
//! the state file ([`state`]) sync ([`sync`]) and third-party feeds
//! ([`feeds`]). Verification is `onionpkg-trust`'s; the Tor
//! plumbing is `onionpkg-fetcher`'s, so fetcher and mirror join a network
//! the same way.
//!
//! # Invariants
//! - The mirror never serves a document trust rejected: sync verifies the
//!   upstream repository exactly as a client would before changing the
//!   served tree, and publishes `timestamp.json` last, so visitors never see
//!   a half-synced tree.
//! - Nothing outside the root is served: request paths are checked before
//!   they touch the filesystem, and symlinks are resolved and must stay
//!   inside the root. No directory listings.
//! - Every visitor gets the same response headers; no server version.
//! - Client addresses are logged only with `[log] access_log = true`; paths
//!   requested over the onion service never appear at info level.
//! - Every connection has header-read, header-size and idle limits, and
//!   takes a slot from its listener's budget (clearnet, onion, metrics:
//!   [`budget`]), on clearnet also from its address's share; connections
//!   beyond either are closed, not queued.
//! - The onion service identity key lives in the arti keystore under the
//!   mirror's state dir, so the .onion address survives restarts.

#![forbid(unsafe_code)]

pub mod app;
pub mod budget;
pub mod check;
pub mod cli;
mod err;
mod fastopen;
pub mod feeds;
pub mod files;
pub mod http;
pub mod idle;
pub mod metrics;
pub mod nofile;
pub mod onion;
pub mod serve;
pub mod state;
pub mod sync;
pub mod tls;

pub use app::Mirror;
pub use err::{Error, Result};
