//! Integration tests of onionpkg-mirror: path safety, HTTP semantics over
//! HTTP and HTTPS with curl, connection limits, configuration errors and
//! verified sync.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub,
    reason = "test code: failures should panic with context"
)]

mod budgets;
mod cli;
mod curl;
mod feeds;
mod feeds_signer;
mod floor;
mod limits;
mod load;
mod paths;
mod realfeeds;
mod status;
mod sync;
mod sync_clock;
mod sync_repair;
mod sync_upstream;
mod util;
