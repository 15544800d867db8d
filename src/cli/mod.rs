//! Subcommands of the `tessera` binary, one file each.

pub(crate) mod reshard;
mod router;
mod shard;
mod status;
mod topo;
mod up;
pub mod verify;
mod vschema;

use clap::{Parser, Subcommand};

/// Tessera: sharding middleware for MySQL and MariaDB.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a local cluster (MariaDB servers, topology, router) in the foreground.
    Up(up::UpArgs),
    /// Run a router from a config file.
    Router(router::RouterArgs),
    /// Apply or show vschemas.
    #[command(subcommand)]
    Vschema(vschema::VschemaCmd),
    /// Register, list and remove physical shards.
    #[command(subcommand)]
    Shard(shard::ShardCmd),
    /// Move logical shards between physical shards online.
    #[command(subcommand)]
    Reshard(reshard::ReshardCmd),
    /// Print a router's overview: placement, jobs, routers, topology nodes, top queries.
    Status(status::StatusArgs),
    /// Talk to the topology service.
    #[command(subcommand)]
    Topo(topo::TopoCmd),
    /// The shadow verifier: check traffic against a candidate vschema.
    #[command(subcommand)]
    Verify(verify::VerifyCmd),
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand fails with, for printing.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(a) => up::run(a).await,
        Command::Router(a) => router::run(a).await,
        Command::Vschema(c) => vschema::run(c).await,
        Command::Shard(c) => shard::run(c).await,
        Command::Topo(c) => topo::run(c).await,
        Command::Reshard(c) => reshard::run(c).await,
        Command::Status(a) => status::run(a).await,
        Command::Verify(c) => verify::run(c).await,
    }
}

/// Flags that choose the topology service.
#[derive(clap::Args, Debug, Clone)]
pub struct TopoFlags {
    /// Topology endpoints, comma separated (`host:port`).
    #[arg(long = "topo", env = "TESSERA_TOPO", default_value = "127.0.0.1:15999")]
    pub endpoints: String,
    /// Environment variable holding the topology token, if one is configured.
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
            std::env::var(&self.token_env).ok(),
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

/// Returns, per sharded table of `keyspace` that exists, a line for each unique key that does
/// not contain the table's shard key: unique within one logical shard only, and the reason
/// the router refuses `REPLACE`, `INSERT IGNORE` and `ON DUPLICATE KEY UPDATE` there.
///
/// # Errors
/// Topology or backend failures.
pub async fn uncovered_unique_keys(
    topo: &tessera_topo::Topo,
    keyspace: &str,
) -> anyhow::Result<Vec<String>> {
    let snap = topo.snapshot().await?;
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let Some(ks) = snap.keyspaces.get(keyspace) else {
        return Ok(Vec::new());
    };
    let backends = tessera_router::backend::Backends::new(Default::default());
    let mut out = Vec::new();
    let mut failed = None;
    for (table, spec) in &ks.vschema.tables {
        let (Some(shard_key), tessera_topo::TableKind::Sharded) = (&spec.shard_key, spec.kind)
        else {
            continue;
        };
        match tessera_router::unique_keys::read_table(&backends, &rt, keyspace, table).await {
            Ok(keys) => {
                for k in tessera_router::unique_keys::uncovered(&keys, shard_key) {
                    out.push(format!(
                        "table {table}: unique key {} does not contain the shard key {shard_key}: \
                         unique within each logical shard only; REPLACE, INSERT IGNORE and \
                         INSERT … ON DUPLICATE KEY UPDATE are refused on this table",
                        k.describe()
                    ));
                }
            }
            Err(e) => {
                failed = Some(format!("reading the keys of {table}: {}", e.message));
                break;
            }
        }
    }
    backends.disconnect_all().await;
    match failed {
        Some(f) => Err(anyhow::anyhow!(f)),
        None => Ok(out),
    }
}

/// Applies a vschema through `topo` and creates its schemas on the physical shards.
///
/// # Errors
/// Invalid vschema, topology or backend failures.
pub async fn apply_vschema(
    topo: &tessera_topo::Topo,
    v: &tessera_topo::VSchema,
) -> anyhow::Result<tessera_topo::Placement> {
    let placement = topo.apply_vschema(v).await?;
    let snap = topo.snapshot().await?;
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let backends = tessera_router::backend::Backends::new(Default::default());
    let r = tessera_router::backend::create_keyspace_schemas(&rt, &v.keyspace, &backends).await;
    backends.disconnect_all().await;
    r.map_err(|e| {
        anyhow::anyhow!(
            "creating schemas for keyspace {}: {}",
            v.keyspace,
            e.message
        )
    })?;
    Ok(placement)
}
