//! End-to-end tests of `onionpkg-fetch` over HTTPS on 127.0.0.1: a
//! repository signed by `onionpkg-repo`, served by local mirrors that can
//! be dead, tampered, frozen or stalled.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub,
    missing_docs,
    reason = "test code: a panic is a test failure"
)]

mod announce;
mod announced;
mod attacks;
mod config;
mod download;
mod failover;
mod freeze;
mod hooks;
mod interop;
mod output;
mod schemes;
mod server;
mod streaming;
mod util;
