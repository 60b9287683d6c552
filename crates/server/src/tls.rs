//! TLS for the listeners: a PEM certificate chain and private key, loaded once at start-up.
//! A configured certificate that cannot be loaded stops the server from starting; carelake never
//! falls back to serving in the clear.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// Where a listener's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsConfig {
    /// The acceptor, or an error naming what is wrong with the files.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        self.acceptor_with_clients(None)
    }

    /// The acceptor, requiring every client to present a certificate signed by one of the
    /// PEM certificates in `client_ca` when given (mutual TLS).
    pub fn acceptor_with_clients(
        &self,
        client_ca: Option<&std::path::Path>,
    ) -> Result<TlsAcceptor> {
        let bad = |what: String| Error::Tls(what);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| bad(format!("cannot read {}: {e}", self.cert.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                bad(format!(
                    "{} is not a PEM certificate: {e}",
                    self.cert.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(bad(format!("{} holds no certificate", self.cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| bad(format!("no private key in {}: {e}", self.key.display())))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .map_err(|e| bad(format!("cannot read {}: {e}", ca.display())))?
                {
                    let cert = cert.map_err(|e| {
                        bad(format!("{} is not a PEM certificate: {e}", ca.display()))
                    })?;
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("{}: {e}", ca.display())))?;
                }
                let verifier =
                    tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider,
                    )
                    .build()
                    .map_err(|e| bad(format!("client certificates from {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| bad(format!("the certificate and key do not make a pair: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
