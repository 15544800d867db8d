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
}

impl TopoFlags {
    /// Returns the typed topology client.
    ///
    /// # Errors
    /// When no endpoint is given.
    pub fn topo(&self) -> anyhow::Result<tessera_topo::Topo> {
        let store = tessera_topo::HttpStore::new(
            std::slice::from_ref(&self.endpoints),
            tessera_topo::token::find(&self.token_env),
        )?;
        Ok(tessera_topo::Topo::new(std::sync::Arc::new(store)))
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
