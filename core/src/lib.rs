//! The few things every onionpkg crate shares: error kinds and the one
//! table of exit codes, the error for a local file that failed, and the
//! typed URLs and DNS names parsed at the edge; behind the features of the
//! same names, the bounded run of an external program (`process`) and the
//! programs' logging setup (`log`).
//!
//! This crate is part of onionpkg. It sits below every other crate and
//! depends on none of them: the configuration (`onionpkg-config`) and the
//! trust layer (`onionpkg-trust`) both build on it, so that verifying
//! signed data needs no TOML and reading a configuration needs no TUF.
//!
//! # Invariants
//! - [`exit::code`] maps every [`ErrorKind`] to exactly one code of
//!   [`exit::TABLE`]; no binary keeps a table of its own.

#![forbid(unsafe_code)]

pub mod exit;
pub mod io;
mod kind;
#[cfg(feature = "log")]
pub mod log;
#[cfg(feature = "process")]
pub mod process;
pub mod report;
pub mod url;

pub use io::IoError;
pub use kind::{ErrorKind, HasKind};
