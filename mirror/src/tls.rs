//! The HTTPS listener's certificate: read from PEM files, swapped on reload.
//!
//! Each accepted connection takes the configuration current at that moment,
//! so a reload (SIGHUP) never drops a connection: established ones keep the
//! configuration they started with, new ones get the new certificate. A
//! reload that fails keeps the old certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// The largest PEM file read: a chain of a few certificates is far smaller.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A TLS server configuration that can be replaced while serving.
#[derive(Debug)]
pub struct ReloadableTls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the certificate chain and key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let config = load_config(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(config),
        })
    }

    /// Reads the files again; on failure the current certificate stays.
    pub fn reload(&self) -> Result<()> {
        let config = load_config(&self.cert, &self.key)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = config;
        }
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    let tls_err = |reason: String| Error::Tls {
        what,
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| tls_err(e.to_string()))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(tls_err(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| tls_err(e.to_string()))
}

/// Builds a rustls server configuration (HTTP/1.1 only) from PEM files.
pub fn load_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let cert_pem = read_pem("certificate", cert)?;
    let key_pem = read_pem("key", key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls {
            what: "certificate",
            path: cert.to_owned(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(Error::Tls {
            what: "certificate",
            path: cert.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Tls {
        what: "key",
        path: key.to_owned(),
        reason: format!("no usable PEM private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e: rustls::Error| Error::Tls {
            what: "key",
            path: key.to_owned(),
            reason: format!("does not fit the certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
