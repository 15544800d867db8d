//! TLS for client connections: the router's certificate and key loaded once at start, and the
//! switch a client asks for with `SSLRequest` before its handshake response.
//!
//! rustls (with its `ring` provider) does the protocol: TLS 1.2 and 1.3 only, modern cipher
//! suites only, no system TLS library to link against. Classical key exchange (X25519,
//! P-256, P-384); the post-quantum hybrid groups need the `aws-lc-rs` provider, which this
//! build does not carry.

use crate::config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Builds the acceptor for `cfg`.
///
/// # Errors
/// A message naming the file that cannot be read or used.
pub(super) fn acceptor(cfg: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| format!("tls.cert {}: {e}", cfg.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cfg.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate in it",
            cfg.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| format!("tls.key {}: {e}", cfg.key.display()))?;
    // The ring provider (deprecated upstream only for lacking post-quantum key exchange): no
    // C toolchain beyond what ring builds itself.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the key does not fit the certificate, or is unusable: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Whether a client's first packet is an `SSLRequest`: the first 32 bytes of a handshake
/// response, with `CLIENT_SSL`, and nothing after them.
pub(super) fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]])
            & crate::wire::constants::CLIENT_SSL
            != 0
}
