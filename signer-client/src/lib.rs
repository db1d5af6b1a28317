//! The client side of the onionpkg signing service (`onionpkg-signer`): the
//! request format ([`request`]), the length-prefixed frames ([`frame`]), and
//! a client that sends signed requests over the signer's Unix socket
//! ([`client`]). With the feature `relay`: the relay a signer on another
//! host dials out to ([`relay`]) and their mutual TLS ([`tls`]).
//!
//! The release side links this crate, never the signer itself: nothing here
//! opens a key store, and nothing listens but the relay. What a request says is signed with the
//! caller's own client key through the [`client::RequestKey`] trait, so this
//! crate needs no key file format; callers check the signer's signature
//! against the role's key with the trust layer.
//!
//! # Invariants
//! - A request is sent only signed; an answer is read with a size cap and a
//!   deadline.
//!
//! See docs/SIGNER.md for the protocol.

#![forbid(unsafe_code)]

pub mod client;
mod err;
pub mod frame;
#[cfg(feature = "relay")]
pub mod relay;
pub mod request;
#[cfg(feature = "relay")]
pub mod tls;

pub use err::{ClientError, Result};
