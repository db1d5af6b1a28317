//! Shared support code for the end-to-end tests, the demo and the benchmarks:
//! the private Tor network harness ([`testnet`]), local HTTP servers
//! ([`http_server`]) and a real signing service ([`signer`]).
//!
//! This crate is test-only: nothing in production depends on it, and its
//! network descriptions never reach the fetcher or the mirror except through
//! [`testnet::arti::arti_config`], which refuses anything public.

#![forbid(unsafe_code)]

pub mod http_server;
pub mod signer;
pub mod testnet;

/// Sends `tracing` events (arti's among them) to the test's output, filtered
/// by `RUST_LOG`, when that variable is set; does nothing otherwise, or when
/// a subscriber is already installed.
pub fn trace_when_asked() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
