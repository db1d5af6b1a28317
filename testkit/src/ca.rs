//! A test CA and a server certificate it signs, for HTTPS servers on
//! loopback: as PEM (for programs that read files, and for clients told to
//! trust the CA) and as a rustls server configuration (for servers in the
//! test process).
//!
//! The CA and the leaf always carry distinct subject names: OpenSSL (curl,
//! nginx) takes a leaf named like its issuer for self-signed.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::PrivateKeyDer;

/// A fresh CA and a server certificate for 127.0.0.1 signed by it.
#[derive(Clone)]
pub struct TestCa {
    /// The CA certificate (PEM): what clients are told to trust.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// The server's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The server certificate and key as a rustls server configuration.
    pub server: Arc<rustls::ServerConfig>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A CA named "onionpkg test CA" and a certificate for 127.0.0.1.
    ///
    /// Also installs ring as the process's default rustls provider, which
    /// the clients under test build their TLS configurations from.
    pub fn new() -> Self {
        Self::for_names("onionpkg test CA", &["127.0.0.1"])
    }

    /// A CA named `ca_name` and a certificate for the host names or IP
    /// addresses `names` (the first is also its common name).
    pub fn for_names(ca_name: &str, names: &[&str]) -> Self {
        // An error only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        if let Some(first) = names.first() {
            leaf.distinguished_name.push(DnType::CommonName, *first);
        }
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            server: Arc::new(server),
        }
    }

    /// Writes `{prefix}ca.pem`, `{prefix}cert.pem` and `{prefix}key.pem` in
    /// `dir`, for programs configured with certificate files.
    pub fn write(&self, dir: &Path, prefix: &str) -> std::io::Result<()> {
        std::fs::write(dir.join(format!("{prefix}ca.pem")), &self.ca_pem)?;
        std::fs::write(dir.join(format!("{prefix}cert.pem")), &self.cert_pem)?;
        std::fs::write(dir.join(format!("{prefix}key.pem")), &self.key_pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_three_files_with_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        ca.write(dir.path(), "a-").unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert_eq!(read("a-ca.pem"), ca.ca_pem);
        assert_eq!(read("a-cert.pem"), ca.cert_pem);
        assert_eq!(read("a-key.pem"), ca.key_pem);
        assert_ne!(ca.ca_pem, ca.cert_pem);
    }
}
