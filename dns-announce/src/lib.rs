//! onionpkg-announce: the signed DNS TXT announcement of an onionpkg
//! repository's state, so that appliances learn with one DNS query whether
//! anything changed, instead of polling mirrors.
//!
//! This crate is part of onionpkg. The record format, its signature and its
//! verification belong to the trust layer
//! ([`onionpkg_trust::announce`]); this crate moves the record through DNS:
//!
//! - [`make`]: the signed record of a repository's published state (serial =
//!   version of `timestamp.json`, its SHA-256, issue and expiry time), signed
//!   by the timestamp role's keys for one owner name and channel.
//! - [`push`]: one RFC 2136 UPDATE (delete the TXT RRset, add the record),
//!   TSIG-signed, over TCP, to the zone's primary server; [`tsig`] reads the
//!   key files of Knot DNS and BIND.
//! - [`serve`]: a small authoritative server for the announcement zone.
//! - [`query`]: asks DNS for the TXT records at a name, through a resolver
//!   that reads no system file, optionally over caller-given streams
//!   ([`transport::StreamProvider`], for Tor), validating the answer with
//!   DNSSEC when [`dnssec`] anchors are given.
//! - [`check`]: verification against the pinned root and what the result
//!   means for an appliance ([`check::AnnouncementState`]); [`state`] keeps
//!   the highest serial seen, bound to the keys that signed it.
//! - [`cli`]: the `onionpkg-announce` command line.
//!
//! # Exit codes of `onionpkg-announce`
//! The same for every subcommand ([`exit`]): 0 ok; 1 failure (network,
//! files, server); 2 bad usage or configuration; 3 invalid announcement (bad
//! signature, unknown keys, another owner name or channel, malformed, or a
//! replayed older serial); 4 expired (or issued in the future; making a
//! record: the timestamp it would name is expired); 5 no
//! announcement at the name; 6 update refused by the DNS server.
//!
//! # Invariants
//! - An announcement is acted on only after the trust layer verified it;
//!   only a verified record whose serial equals the trusted timestamp
//!   version lets an appliance skip the mirrors. Missing or invalid records
//!   never block updates: they mean "ask the mirrors".
//! - An announcement never outlives the `timestamp.json` it names: `make`
//!   and `push` refuse a longer validity, `serve` cuts its records at the
//!   timestamp's expiry and serves none once it has passed.
//! - A replay floor counts only while the timestamp keys that signed it are
//!   still trusted ([`state`]).
//! - No resolver here reads `/etc/resolv.conf` or `/etc/hosts` on its own.
//! - Secrets (TSIG keys, signing keys) are never printed or logged.

#![forbid(unsafe_code)]

pub mod check;
#[cfg(feature = "release")]
pub mod cli;
#[cfg(feature = "release")]
pub mod config_check;
pub mod dnssec;
mod err;
#[cfg(feature = "release")]
pub mod make;
#[cfg(feature = "release")]
pub mod mirrors;
#[cfg(feature = "release")]
pub mod output;
#[cfg(feature = "release")]
pub mod push;
pub mod query;
#[cfg(feature = "release")]
pub mod serve;
pub mod state;
pub mod transport;
#[cfg(feature = "release")]
pub mod tsig;

pub use check::AnnouncementState;
pub use dnssec::{DnssecAnchors, load_anchors};
pub use err::{Error, Result, announce_exit_code, exit};
pub use query::query_announcement;
pub use transport::StreamProvider;
