//! Moving logical shards with the rebalancer API — what `tessera reshard start --plan` and
//! `tessera reshard run --complete` do, in a program.
//!
//! Start a local cluster with a spare server and register it first:
//!
//! ```sh
//! tessera up --shards 2 --spare-servers 1 --vschema examples/demo/vschema.yaml \
//!     --sample-data examples/demo/data.sql
//! export TESSERA_SPARE_PASSWORD=tessera
//! tessera shard add ps2 --mysql 127.0.0.1:PORT --user tessera --password-env TESSERA_SPARE_PASSWORD
//! cargo run --example reshard -- 127.0.0.1:15999 demo
//! ```

use std::sync::Arc;
use tessera_rebalancer::{plan_moves, Options, Rebalancer, Stop};
use tessera_topo::{HttpStore, Topo};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "127.0.0.1:15999".into());
    let keyspace = args.next().unwrap_or_else(|| "demo".into());
    let topo = Topo::new(Arc::new(HttpStore::new(&[endpoint], None)?));

    // The moves that bring the keyspace to the ring's assignment over the registered shards.
    let snap = topo.snapshot().await?;
    let moves = plan_moves(&snap, &keyspace, &[], false, 0)?;
    if moves.is_empty() {
        println!("{keyspace} is balanced; register another physical shard first");
        return Ok(());
    }
    for m in &moves {
        println!("move logical shard {} from {} to {}", m.ls, m.from, m.to);
    }

    let rebalancer = Rebalancer::new(topo, Options::default())
        .on_progress(|job| eprintln!("[{}] {}", job.id, job.phase));
    let list: Vec<(u32, String)> = moves.iter().map(|m| (m.ls, m.to.clone())).collect();
    let job = rebalancer.create_job(&keyspace, &list).await?;

    // Prepare, dual-write, backfill, verify; then cut over and complete. Running the same
    // job id again after a crash resumes it from its checkpoints.
    let job = rebalancer.run(&job.id, Stop::Verified).await?;
    if let Some(v) = &job.verify {
        println!(
            "verification clean: {}, rows repaired: {}",
            v.clean, v.repaired
        );
    }
    let job = rebalancer.run(&job.id, Stop::Completed).await?;
    println!(
        "job {} {} (write stall at cutover: {} ms)",
        job.id,
        job.phase,
        job.stall_ms.unwrap_or(0)
    );
    Ok(())
}
