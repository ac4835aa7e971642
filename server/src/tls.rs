//! TLS for the offload server (feature `tls`): rustls with the ring provider, from PEM files.

use super::server::{OffloadError, TlsConfig};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;

pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, OffloadError> {
    let tls_err = |what: &str, e: &dyn std::fmt::Display| OffloadError::Tls(format!("{what}: {e}"));
    let cert_file = std::fs::read(&config.cert_pem).map_err(|e| tls_err("reading the certificate", &e))?;
    let key_file = std::fs::read(&config.key_pem).map_err(|e| tls_err("reading the key", &e))?;
    let certs = rustls_pemfile::certs(&mut cert_file.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err("parsing the certificate", &e))?;
    let key = rustls_pemfile::private_key(&mut key_file.as_slice())
        .map_err(|e| tls_err("parsing the key", &e))?
        .ok_or_else(|| OffloadError::Tls("no private key in the key file".into()))?;
    let server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("certificate", &e))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
