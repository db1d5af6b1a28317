//! The signer end to end: a real SoftHSM2 token per test, the real binary
//! (front process and key holder), the client library over the Unix socket
//! and through a relay the signer dials.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code"
)]
#![allow(
    unreachable_pub,
    dead_code,
    reason = "helpers shared by the test modules"
)]

#[path = "signer/common.rs"]
mod common;
#[path = "signer/config.rs"]
mod config;
#[path = "signer/crash.rs"]
mod crash;
#[path = "signer/dial.rs"]
mod dial;
#[path = "signer/ecdsa.rs"]
mod ecdsa;
#[path = "signer/logfile.rs"]
mod logfile;
#[path = "signer/refusals.rs"]
mod refusals;
#[path = "signer/repo.rs"]
mod repo;
#[path = "signer/socket.rs"]
mod socket;
#[path = "signer/token.rs"]
mod token;
#[path = "signer/verify.rs"]
mod verify;
