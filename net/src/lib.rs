//! The network layer of onionpkg: how the fetcher and the mirror reach a
//! repository.
//!
//! This crate is part of onionpkg. It owns the embedded Tor client
//! ([`tor`]: configuration from a `[tor]` section, bootstrap, purpose
//! isolation), HTTP/1.1 over any stream ([`http`]), the three transports to
//! a mirror ([`transport`]: Tor, a Tor SOCKS port, HTTPS) and a TUF
//! repository on a mirror ([`remote`]). It verifies nothing itself: every
//! byte fetched is checked by `onionpkg-trust` before use. What to do with
//! the bytes (the appliance's commands, the mirror's sync and feeds) is left
//! to the crates above it.
//!
//! # Invariants
//! - Every request has a deadline and a body size cap.
//! - Each [`tor::Purpose`] uses its own circuits.
//! - Relaxations that only make sense on a private Tor network (loopback
//!   targets, relays sharing an address) exist only for
//!   [`tor::Network::Custom`]; the public network always gets arti's defaults.
//! - Full URLs of Tor-fetched resources are never logged above debug level.

#![forbid(unsafe_code)]

mod err;
pub mod http;
pub mod order;
pub mod remote;
#[cfg(test)]
mod testutil;
pub mod tor;
pub mod transport;

pub use err::{Error, Result};
/// The URL every request is made to, parsed once at the edge.
pub use http::HttpUrl;
