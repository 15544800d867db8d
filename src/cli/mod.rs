//! Subcommands of the `tessera` binary, one file each.

mod audit;
mod flags;
mod keyspace;
pub mod movetables;
pub(crate) mod reshard;
mod router;
mod shard;
mod status;
mod topo;
mod up;
pub mod verify;
mod vindex;
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
    /// Move tables of an unsharded keyspace into another keyspace online.
    #[command(subcommand)]
    Movetables(movetables::MoveTablesCmd),
    /// Lookup vindexes: fill one from existing rows and verify it.
    #[command(subcommand)]
    Vindex(vindex::VindexCmd),
    /// Print the audit trail: who changed what, when.
    Audit(audit::AuditArgs),
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand fails with, for printing.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let audited = match &cli.command {
        Command::Vschema(c) => c.audited(),
        Command::Shard(c) => c.audited(),
        Command::Topo(c) => c.audited(),
        Command::Reshard(c) => c.audited(),
        Command::Verify(c) => c.audited(),
        Command::Vindex(c) => c.audited(),
        Command::Movetables(c) => c.audited(),
        Command::Up(_) | Command::Router(_) | Command::Status(_) | Command::Audit(_) => None,
    }
    .cloned();
    match audited {
        Some(topo) => audit::audited(&topo, command(cli)).await,
        None => command(cli).await,
    }
}

async fn command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(a) => up::run(a).await,
        Command::Router(a) => router::run(a).await,
        Command::Vschema(c) => vschema::run(c).await,
        Command::Shard(c) => shard::run(c).await,
        Command::Topo(c) => topo::run(c).await,
        Command::Reshard(c) => reshard::run(c).await,
        Command::Status(a) => status::run(a).await,
        Command::Verify(c) => verify::run(c).await,
        Command::Vindex(c) => vindex::run(c).await,
        Command::Movetables(c) => movetables::run(c).await,
        Command::Audit(a) => audit::run(a).await,
    }
}

pub use flags::{shutdown_signal, TopoFlags};
pub use keyspace::{apply_vschema, uncovered_unique_keys};
pub use vindex::{vindex_backfill, BackfillReport};
