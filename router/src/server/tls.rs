//! TLS for client connections: the router's certificate and key loaded once at start, and the
//! switch a client asks for with `SSLRequest` before its handshake response.
//!
//! rustls (with its `ring` provider, set up in `tessera_topo::tls`, shared by every hop) does
//! the protocol: TLS 1.2 and 1.3 only, modern cipher suites only, no system TLS library to
//! link against. Classical key exchange (X25519,
//! P-256, P-384); the post-quantum hybrid groups need the `aws-lc-rs` provider, which this
//! build does not carry.

use crate::config::TlsConfig;

/// Builds the acceptor for `cfg`.
///
/// # Errors
/// A message naming the file that cannot be read or used.
pub(super) fn acceptor(cfg: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    let read = |field: &str, p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{field} {}: {e}", p.display()))
    };
    let cert = read("tls.cert", &cfg.cert)?;
    let key = read("tls.key", &cfg.key)?;
    let config =
        tessera_topo::tls::server_config(&cert, &key, None, "tls").map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(config))
}

/// Whether a client's first packet is an `SSLRequest`: the first 32 bytes of a handshake
/// response, with `CLIENT_SSL`, and nothing after them.
pub(super) fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]])
            & crate::wire::constants::CLIENT_SSL
            != 0
}
