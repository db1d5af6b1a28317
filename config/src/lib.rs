//! Typed, validated TOML configuration for the onionpkg programs.
//!
//! This crate is part of onionpkg. It owns the configuration file formats of
//! the fetcher, the mirror and the announcer, and the error kinds every crate
//! shares ([`ErrorKind`], [`HasKind`]).

#![forbid(unsafe_code)]

mod kind;

pub use kind::{ErrorKind, HasKind};
