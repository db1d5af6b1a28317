//! The onionpkg signing service: online keys that cannot be exported,
//! requests that prove who asked, a policy on what is signed, and a
//! tamper-evident record of every signature.
//!
//! This crate is part of onionpkg. It owns `onionpkg-signer`: the key stores
//! ([`backend`]: a PKCS#11 token through `cryptoki`, or encrypted key files),
//! the split between the process that reads requests and the one that holds
//! the keys ([`holder`]), the request format and its authentication
//! ([`request`], from `onionpkg-signer-client`, which the release side links
//! instead of this crate), the TUF side of the client ([`client`]),
//! and the log. What a TUF role's metadata looks like and how signatures are
//! verified stay in `onionpkg-trust`.
//!
//! # Invariants
//! - The process that reads the socket never opens the key store; the key
//!   holder reads nothing but fixed-size frames from its parent.
//! - The signer listens on no network socket: it dials out to relays
//!   ([`dial`]); the relay (`onionpkg-signer relay`, from
//!   `onionpkg-signer-client`) runs on the other host.
//! - Root is never signed.
//! - Nothing is signed for a request that is not signed by a configured
//!   client allowed the role.
//!
//! See docs/SIGNER.md for the design, the formats and the files.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod backend;
pub mod cli;
pub mod client;
pub mod dial;
pub mod entry;
mod err;
pub mod holder;
pub mod journal;
pub mod keyfile;
pub mod keys;
pub mod policy;
pub mod server;
pub mod service;
pub mod state;
pub mod tlog;
pub mod token;

pub use err::{Error, Result};
/// The request format and frames are the client crate's, shared with the
/// release side.
pub use onionpkg_signer_client::{frame, request};
