//! `tessera router --config FILE`: one router, for real deployments.

use anyhow::Context;
use std::sync::Arc;
use tessera_router::{Router, RouterConfig};

#[derive(clap::Args, Debug)]
pub struct RouterArgs {
    /// The router's YAML config (listen address, users, topology endpoints, pools).
    #[arg(long)]
    config: std::path::PathBuf,
}

pub async fn run(a: RouterArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let cfg =
        RouterConfig::from_yaml(&text).with_context(|| format!("in {}", a.config.display()))?;
    let token = cfg
        .topo
        .token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok());
    let store = tessera_topo::HttpStore::new(&cfg.topo_endpoints(), token)?;
    let topo = tessera_topo::Topo::new(Arc::new(store));
    let handle = Router::new(cfg, topo).start().await?;
    println!("ready: router listening on {}", handle.local_addr());
    super::flags::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
