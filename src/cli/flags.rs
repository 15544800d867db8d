//! Flags and signals shared by the subcommands.

/// Flags that choose the topology service.
#[derive(clap::Args, Debug, Clone)]
pub struct TopoFlags {
    /// Topology endpoints, comma separated (`host:port`).
    #[arg(long = "topo", env = "TESSERA_TOPO", default_value = "127.0.0.1:15999")]
    pub endpoints: String,
    /// Environment variable holding the topology token (when unset, the token file that
    /// `tessera up` and `tessera topo serve` keep is read: see docs/operations.md).
    #[arg(long, default_value = "TESSERA_TOPO_TOKEN")]
    pub token_env: String,
    /// The CA the topology nodes' certificates chain to: `host:port` endpoints are then
    /// reached over HTTPS. Without it, the CA `tessera up` left beside the token file, if any.
    #[arg(long, env = "TESSERA_TOPO_CA")]
    pub topo_ca: Option<std::path::PathBuf>,
    /// A client certificate, for nodes that require one (with `--topo-key`).
    #[arg(long, env = "TESSERA_TOPO_CERT", requires = "topo_key")]
    pub topo_cert: Option<std::path::PathBuf>,
    /// The client certificate's key.
    #[arg(long, env = "TESSERA_TOPO_KEY", requires = "topo_cert")]
    pub topo_key: Option<std::path::PathBuf>,
}

impl TopoFlags {
    /// Returns the topology client.
    ///
    /// # Errors
    /// When no endpoint is given, or the TLS files cannot be used.
    pub fn store(&self) -> anyhow::Result<tessera_topo::HttpStore> {
        let cfg = tessera_router::config::TopoConfig {
            endpoints: vec![self.endpoints.clone()],
            token_env: Some(self.token_env.clone()),
            tls_ca: self.topo_ca.clone(),
            tls_cert: self.topo_cert.clone(),
            tls_key: self.topo_key.clone(),
        };
        Ok(tessera_topo::HttpStore::with_tls(
            &cfg.endpoints,
            tessera_topo::token::find(&self.token_env),
            cfg.client_tls()?,
        )?)
    }

    /// Returns the typed topology client.
    ///
    /// # Errors
    /// As [`TopoFlags::store`].
    pub fn topo(&self) -> anyhow::Result<tessera_topo::Topo> {
        Ok(tessera_topo::Topo::new(std::sync::Arc::new(self.store()?)))
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
