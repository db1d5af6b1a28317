//! Integration tests of the release side and the trust layer together: a
//! repository made by `onionpkg-repo`, attacked and verified as a client would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test binary: a panic is the failure report"
)]

mod attacks;
mod bins;
mod cli;
mod docs;
mod interop;
mod norepo;
mod pins;
mod rotation;
mod thresholds;
mod util;
