//! Integration tests of onionpkg-announce: `push` against a real Knot DNS
//! server, the built-in server and its reloads, `check`'s refusals and exit
//! codes, and the bytes an idle check costs on the wire.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test binary: a panic is the failure report"
)]

mod abuse;
mod config;
mod dnssec;
mod expiry;
mod floors;
mod knot;
mod mirrors;
mod refusals;
mod rotation;
mod serve;
mod signer;
mod util;
mod wire;
