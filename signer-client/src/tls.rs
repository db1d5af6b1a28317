//! Mutual TLS between a relay and the signer that dials it, each side
//! trusting exactly the keys it pins.
//!
//! A pin is the SHA-256 of a certificate's SubjectPublicKeyInfo (the DER of
//! its public key), as `openssl x509 -pubkey -noout | openssl pkey -pubin
//! -outform DER | sha256sum` prints it. No certificate authority is involved,
//! and names and validity dates are not checked: a certificate is only the
//! envelope of a pinned key, like an SSH host key.
//!
//! # Invariants
//! - TLS 1.3 only, with ring's algorithms.
//! - A peer whose end-entity key is not pinned fails the handshake; both
//!   sides require a certificate.
//! - The TLS link authorises nothing by itself: every request that crosses it
//!   is still signed by a configured client key and checked by the signer.

use std::fmt;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest as _, Sha256};

use crate::frame::TimedStream;
use crate::{ClientError, Result};

/// The SHA-256 of a certificate's SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parses 64 hex digits.
    pub fn parse(hex_digits: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits.trim(), &mut out).map_err(|_| {
            ClientError::Invalid(format!(
                "a pin is the SHA-256 of a certificate's public key, 64 hex digits; found {hex_digits:?}"
            ))
        })?;
        Ok(Self(out))
    }

    /// The pin of the end-entity certificate `cert` (DER).
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Result<Self> {
        let parsed = rustls::server::ParsedCertificate::try_from(cert)
            .map_err(|e| ClientError::Tls(format!("not a certificate: {e}")))?;
        Ok(Self(
            Sha256::digest(parsed.subject_public_key_info().as_ref()).into(),
        ))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// A certificate chain and its private key, read from PEM files.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("pin", &self.pin().ok())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ClientError::File {
        path: path.to_path_buf(),
        source,
    })
}

impl Identity {
    /// Reads the certificate chain (PEM, end entity first) and the private
    /// key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Tls(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(ClientError::Tls(format!(
                "{}: no certificate in it",
                cert.display()
            )));
        }
        // The error names no key material.
        let key = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|e| ClientError::Tls(format!("{}: no private key: {e}", key.display())))?;
        let identity = Self { chain, key };
        identity.pin()?;
        Ok(identity)
    }

    /// From DER values (tests, and callers holding them already).
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// The pin of this identity's certificate: what its peer configures.
    pub fn pin(&self) -> Result<Pin> {
        let first = self
            .chain
            .first()
            .ok_or_else(|| ClientError::Tls("no certificate".into()))?;
        Pin::of_certificate(first)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks end-entity certificates against the pins, and handshake
/// signatures against the certificate's key.
#[derive(Debug)]
struct Pinned {
    pins: Vec<Pin>,
    algorithms: WebPkiSupportedAlgorithms,
    /// "relay" or "signer": who is pinned, for the error.
    peer: &'static str,
}

impl Pinned {
    fn new(pins: &[Pin], peer: &'static str) -> Self {
        Self {
            pins: pins.to_vec(),
            algorithms: provider().signature_verification_algorithms,
            peer,
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
        let pin =
            Pin::of_certificate(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        if self.pins.contains(&pin) {
            Ok(())
        } else {
            Err(rustls::Error::General(format!(
                "the {} certificate's key {pin} is not pinned",
                self.peer
            )))
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn config_error(e: rustls::Error) -> ClientError {
    ClientError::Tls(e.to_string())
}

/// The signer's side: presents `identity`, trusts a relay only by `pins`.
pub fn client_config(identity: Identity, pins: &[Pin]) -> Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(pins, "relay")))
        .with_client_auth_cert(identity.chain, identity.key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// The relay's side: presents `identity`, requires a client certificate whose
/// key is among `pins`.
pub fn server_config(identity: Identity, pins: &[Pin]) -> Result<Arc<rustls::ServerConfig>> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(Arc::new(Pinned::new(pins, "signer")))
        .with_single_cert(identity.chain, identity.key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// A TLS stream over TCP carrying frames.
pub type TlsStream<C> = rustls::StreamOwned<C, TcpStream>;

impl<C, D> TimedStream for rustls::StreamOwned<C, TcpStream>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }
}

/// Completes the handshake on `stream` within `deadline` in all, so a peer
/// that trickles bytes cannot hold it open (it is unauthenticated until the
/// handshake ends).
pub fn handshake<C, D>(stream: &mut TlsStream<C>, deadline: Duration) -> Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    let io = |e: std::io::Error| ClientError::Tls(format!("handshake: {e}"));
    let end = Instant::now() + deadline;
    while stream.conn.is_handshaking() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Tls(format!(
                "handshake not complete within {deadline:?}"
            )));
        }
        stream.sock.set_read_timeout(Some(left)).map_err(io)?;
        stream.sock.set_write_timeout(Some(left)).map_err(io)?;
        stream.conn.complete_io(&mut stream.sock).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_pin_is_64_hex_digits() {
        let pin = Pin::parse(&"aB".repeat(32)).unwrap();
        assert_eq!(pin.to_string(), "ab".repeat(32));
        let e = Pin::parse("abcd").unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}
