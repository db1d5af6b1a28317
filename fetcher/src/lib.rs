//! The appliance side of onionpkg: transports that fetch signed metadata and
//! packages, and the Tor plumbing the mirror shares.
//!
//! This crate owns the network paths of an update: the embedded Tor client
//! ([`tor`]: configuration, bootstrap, purpose isolation), HTTP/1.1 over
//! any stream ([`http`]), the three transports to a mirror ([`transport`]:
//! Tor, a Tor SOCKS port, HTTPS) and a TUF repository on a mirror
//! ([`remote`]). It verifies nothing itself; every byte fetched is
//! checked by `onionpkg-trust` before use.
//!
//! # Invariants
//! - Every request has a deadline and a body size cap.
//! - Each [`tor::Purpose`] uses its own circuits.
//! - Relaxations that only make sense on a private Tor network (loopback
//!   targets, relays sharing an address) exist only for
//!   [`tor::Network::Custom`]; the public network always gets arti's defaults.
//! - Full URLs of Tor-fetched resources are never logged above debug level.

#![forbid(unsafe_code)]

pub mod announce;
pub mod app;
pub mod cli;
pub mod commands;
pub mod download;
mod err;
pub mod http;
pub mod remote;
pub mod select;
pub mod setup;
pub mod state;
#[cfg(test)]
mod testutil;
pub mod tor;
pub mod transport;

pub use err::{Error, Result};
