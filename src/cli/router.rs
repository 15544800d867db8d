//! `tessera router --config FILE`: one router, for real deployments.

use anyhow::Context;
use std::sync::Arc;
use tessera_router::{Router, RouterConfig};

#[derive(clap::Args, Debug)]
pub struct RouterArgs {
    /// The router's YAML config (listen address, users, topology endpoints, pools).
    #[arg(long, required_unless_present = "hash_password")]
    config: Option<std::path::PathBuf>,
    /// Print the stored form of the password read from stdin (one line), for a user's
    /// `password_hash`, and exit.
    #[arg(long)]
    hash_password: bool,
}

pub async fn run(a: RouterArgs) -> anyhow::Result<()> {
    if a.hash_password {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let pw = line.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(
            !pw.is_empty(),
            "an empty password has no stored form; leave the user's password out instead"
        );
        println!("{}", tessera_router::wire::auth::native_hash(pw.as_bytes()));
        return Ok(());
    }
    let config = a.config.context("--config is needed")?;
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let cfg = RouterConfig::from_yaml(&text).with_context(|| format!("in {}", config.display()))?;
    let token = tessera_topo::token::find(
        cfg.topo
            .token_env
            .as_deref()
            .unwrap_or(tessera_topo::token::TOKEN_ENV),
    );
    let store =
        tessera_topo::HttpStore::with_tls(&cfg.topo_endpoints(), token, cfg.topo.client_tls()?)?;
    let topo = tessera_topo::Topo::new(Arc::new(store));
    let handle = Router::new(cfg, topo).start().await?;
    println!("ready: router listening on {}", handle.local_addr());
    super::flags::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
