//! Test support for onionpkg, in one place for the unit tests, the
//! end-to-end tests, the demo and the benchmarks: a test CA and its
//! 127.0.0.1 server certificate ([`ca`]), a guard that stops a child process
//! when dropped ([`process`]), polling with a deadline ([`retry`]), and
//! sample third-party feeds ([`testdata`]).
//!
//! # Invariants
//! - Nothing here is linked into a shipped binary: library crates take this
//!   crate as a dev-dependency only.
//! - Every wait has a deadline; a dropped [`process::Proc`] leaves no
//!   running child behind.

#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure to make a test certificate is a test failure"
)]

pub mod ca;
pub mod process;
pub mod retry;
pub mod signer;
pub mod testdata;

pub use ca::TestCa;
pub use process::Proc;
