//! TLS for every hop that Tessera's own parts speak: the topology API and its Raft peers here,
//! and (through the same helpers) the router's clients and its MariaDB connections.
//!
//! rustls with its `ring` provider does the protocol: TLS 1.2 and 1.3 only, modern cipher
//! suites only, no system TLS library to link. A topology node serves HTTPS when it has a
//! certificate ([`NodeTls`]); with `mutual` it also requires every client and peer to present a
//! certificate signed by its CA. Peers always present their own certificate to each other, so
//! mutual TLS between peers needs no more than the CA they share.

use crate::error::{Result, TopoError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a client has to finish its TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming the CA file that topology clients verify nodes against.
pub const CA_ENV: &str = "TESSERA_TOPO_CA";
/// The environment variables naming a client certificate and key for nodes that require one.
pub const CERT_ENV: &str = "TESSERA_TOPO_CERT";
pub const KEY_ENV: &str = "TESSERA_TOPO_KEY";
/// The directory, beside the token file, where `tessera up` leaves its topology CA for the
/// command line: one file per node address (`127.0.0.1_15999.pem`).
pub const CA_DIR: &str = "topo-ca";

/// One topology node's TLS: its certificate chain and key (PEM), and the CA (PEM) that
/// signed its peers' certificates.
#[derive(Clone)]
pub struct NodeTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// Require a certificate signed by `ca_pem` of every client and peer.
    pub mutual: bool,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// The server side: this node's certificate, and the client verifier when `mutual`.
    ///
    /// # Errors
    /// A certificate, key or CA that cannot be used, named.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let client_ca = self.mutual.then_some(self.ca_pem.as_str());
        server_config(&self.cert_pem, &self.key_pem, client_ca, "topology tls")
    }

    /// The client side, as peers speak to each other: verify against the CA, present this
    /// node's own certificate.
    pub fn peer_client(&self) -> ClientTls {
        ClientTls {
            ca_pem: self.ca_pem.clone(),
            identity: Some((self.cert_pem.clone(), self.key_pem.clone())),
        }
    }
}

/// What a client of the topology service trusts, and the certificate it presents when asked.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// The CA (PEM) the nodes' certificates chain to.
    pub ca_pem: String,
    /// A client certificate chain and key (PEM), for nodes that require one.
    pub identity: Option<(String, String)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads a CA file and, when both are given, a client certificate and key.
    ///
    /// # Errors
    /// A file that cannot be read, named.
    pub fn from_files(
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<ClientTls> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map_err(|e| TopoError::invalid("topology tls", format!("{}: {e}", p.display())))
        };
        let identity = match identity {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        Ok(ClientTls {
            ca_pem: read(ca)?,
            identity,
        })
    }

    /// What a command-line client of `endpoints` uses by itself: the CA file named by
    /// `$TESSERA_TOPO_CA`, else the one a running `tessera up` left for one of those
    /// addresses; a client certificate when `$TESSERA_TOPO_CERT` and `$TESSERA_TOPO_KEY` name
    /// one. `None` when there is no CA.
    ///
    /// # Errors
    /// A named file that cannot be read.
    pub fn discover(endpoints: &[String]) -> Result<Option<ClientTls>> {
        let env_path = |v: &str| {
            std::env::var_os(v)
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from)
        };
        let ca = match env_path(CA_ENV) {
            Some(p) => p,
            None => {
                let left = endpoints
                    .iter()
                    .flat_map(|e| e.split(','))
                    .map(str::trim)
                    .filter(|e| !e.contains("://"))
                    .filter_map(ca_path_for)
                    .find(|p| p.exists());
                match left {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        let (cert, key) = (env_path(CERT_ENV), env_path(KEY_ENV));
        let identity = match (&cert, &key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(TopoError::invalid(
                    "topology tls",
                    format!("{CERT_ENV} and {KEY_ENV} go together: set both or neither"),
                ))
            }
        };
        ClientTls::from_files(&ca, identity).map(Some)
    }

    /// The rustls client setup.
    ///
    /// # Errors
    /// A CA or identity that cannot be used, named.
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let identity = self
            .identity
            .as_ref()
            .map(|(c, k)| (c.as_str(), k.as_str()));
        client_config(&self.ca_pem, identity, "topology tls")
    }
}

/// Where `tessera up` leaves its topology CA for the node at `addr` (`host:port`): beside
/// the token file, one file per address, so that clusters on other ports (or a clear-text
/// topology) are not read with another's CA.
pub fn ca_path_for(addr: &str) -> Option<std::path::PathBuf> {
    let name: String = addr
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::token::default_path()
        .parent()
        .map(|d| d.join(CA_DIR).join(format!("{name}.pem")))
}

/// The ring provider: no C toolchain beyond what ring builds itself (deprecated upstream
/// only for lacking post-quantum key exchange).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn invalid(what: &str, message: impl std::fmt::Display) -> TopoError {
    TopoError::invalid(what, message.to_string())
}

/// The certificates in `pem`; an error when there is none.
fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(what, e))?;
    if certs.is_empty() {
        return Err(invalid(what, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The trust roots in `ca_pem`.
///
/// # Errors
/// No certificate, or one that cannot be a root.
pub fn roots(ca_pem: &str, what: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem, what)? {
        roots.add(cert).map_err(|e| invalid(what, e))?;
    }
    Ok(roots)
}

/// A client setup that verifies servers against `ca_pem` (and their name, as the URL or
/// host gives it) and presents `identity` (certificate chain, key) when one is given.
///
/// # Errors
/// What cannot be used, under `what`.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    what: &str,
) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| invalid(what, e))?
        .with_root_certificates(roots(ca_pem, what)?);
    let cfg = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certs(cert, what)?, private_key(key, what)?)
            .map_err(|e| invalid(what, format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

fn private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| invalid(what, format!("key: {e}")))
}

/// A server setup with `cert_pem` (chain) and `key_pem`; with `client_ca`, clients must
/// present a certificate that CA signed.
///
/// # Errors
/// What cannot be used, under `what`.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca: Option<&str>,
    what: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| invalid(what, e))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, what)?),
                provider(),
            )
            .build()
            .map_err(|e| invalid(what, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(certs(cert_pem, what)?, private_key(key_pem, what)?)
        .map_err(|e| {
            invalid(
                what,
                format!("the key does not fit the certificate, or is unusable: {e}"),
            )
        })?;
    Ok(Arc::new(cfg))
}

/// An HTTP client builder whose TLS is ours: verified against `tls`'s CA when given; with
/// no CA, `https://` URLs fail to verify (no system roots are trusted).
///
/// # Errors
/// A CA or identity that cannot be used.
pub fn http_client(tls: Option<&ClientTls>) -> Result<reqwest::ClientBuilder> {
    let cfg = match tls {
        Some(t) => t.config()?,
        None => Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(VERSIONS)
                .map_err(|e| invalid("http client", e))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    };
    let cfg: rustls::ClientConfig = Arc::unwrap_or_clone(cfg);
    Ok(reqwest::Client::builder().tls_backend_preconfigured(cfg))
}

/// Gives `addr` a scheme: `https://` when TLS is on, else `http://`; one that has a scheme
/// keeps it.
pub fn url_of(addr: &str, tls: bool) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// A listener that hands the HTTP server only connections that finished their TLS handshake.
/// Handshakes run in tasks of their own, so a slow or silent client holds up no other.
pub struct TlsListener {
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
