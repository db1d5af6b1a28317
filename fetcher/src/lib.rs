//! The appliance side of onionpkg: `onionpkg-fetch`.
//!
//! This crate is part of onionpkg. It owns the appliance's program: its
//! state directory, the mirror order and cooldowns, freeze detection against
//! the DNS announcement, downloads into the output directory, and the
//! command line. How bytes travel (Tor, SOCKS, HTTPS) is `onionpkg-net`'s;
//! whether they may be trusted is `onionpkg-trust`'s.
//!
//! # Invariants
//! - Nothing reaches the output directory under its final name before it
//!   verified against trusted metadata.
//! - In Tor and SOCKS mode, nothing leaves the appliance outside Tor.

#![forbid(unsafe_code)]

pub mod announce;
pub mod cli;
pub mod commands;
pub mod context;
pub mod download;
mod err;
mod floor;
pub mod freeze;
pub mod hooks;
pub mod output;
mod refresh;
mod root;
pub mod select;
pub mod state;

pub use context::App;
pub use err::{AppError, AppResult, Attempt};
