//! Shared support code for the end-to-end tests, the demo and the benchmarks:
//! the private Tor network harness ([`testnet`]) and local HTTP servers
//! ([`http_server`]).
//!
//! This crate is test-only: nothing in production depends on it, and its
//! network descriptions never reach the fetcher or the mirror except through
//! [`testnet::arti::arti_config`], which refuses anything public.

#![forbid(unsafe_code)]

pub mod http_server;
pub mod testnet;
