//! Prepare: the target schemas, the journal on the source, reference tables, and the switch
//! to dual-write.

use super::{JobCell, Rebalancer};
use anyhow::{bail, Result};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use tessera_shardmove::{self as shardmove, qi, Copier};
use tessera_topo::{Job, LogicalShardState};
use tokio::sync::Mutex;

impl Rebalancer {
    pub(super) async fn prepare(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        self.set_phase(cell, "prepare").await?;
        let job = cell.lock().await.job.clone();
        // A target new to the keyspace gets the reference tables' definitions now and their
        // rows at cutover, while routers hold reference-table writes.
        for (to, member) in self.new_targets(&job).await? {
            let rs = tessera_topo::records::reference_schema(&job.keyspace);
            let mut m = self.conn(&member).await?;
            let tables = shardmove::load_tables(&mut m, &rs).await?;
            let mut d = self.conn(&to).await?;
            shardmove::create_schema_like(&mut m, &mut d, &rs, &rs, &tables).await?;
        }
        for (ls, from, to) in &job.moves {
            let schema = self.schema_of(&job, *ls).await?;
            let tables = self.tables(&job, *ls, from).await?;
            let mut src = self.conn(from).await?;
            let mut dst = self.conn(to).await?;
            let exists: Option<String> = dst
                .exec_first(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                    (&schema,),
                )
                .await?;
            if exists.is_some() && !job.checkpoints.contains_key(&format!("prepared/{ls}")) {
                let n: Option<u64> = dst
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                        (&schema,),
                    )
                    .await?;
                if n.unwrap_or(0) > 0 {
                    bail!("schema {schema} already exists with tables on target {to}; drop it or pick another target");
                }
            }
            {
                let mut c = cell.lock().await;
                c.job
                    .checkpoints
                    .insert(format!("prepared/{ls}"), "started".into());
                self.save(&mut c).await?;
            }
            shardmove::create_schema_like(&mut src, &mut dst, &schema, &schema, &tables).await?;
            // The target never takes writes except copies until it serves; its journal is
            // ready for the reverse direction after cutover.
            shardmove::install_fence(
                &mut dst,
                &schema,
                &tables,
                &format!("copy of {schema} on {to}"),
            )
            .await?;
            shardmove::install_journal(&mut dst, &schema, &tables).await?;
            src.query_drop(format!("SET SESSION lock_wait_timeout = {}", 30))
                .await?;
            shardmove::install_journal(&mut src, &schema, &tables).await?;
            self.event(
                cell,
                format!(
                    "prepared logical shard {ls}: {} tables on {to}, journal on {from}",
                    tables.len()
                ),
            )
            .await?;
        }
        self.set_phase(cell, "dual_write").await
    }

    /// Targets of the job that hold no logical shard of its (sharded) keyspace yet, each with
    /// a physical shard that does (to copy reference tables from).
    pub(super) async fn new_targets(&self, job: &Job) -> Result<Vec<(String, String)>> {
        let snap = self.topo.snapshot().await?;
        let (Some(ks), Some(p)) = (
            snap.keyspaces.get(&job.keyspace),
            snap.placements.get(&job.keyspace),
        ) else {
            return Ok(Vec::new());
        };
        let has_refs = ks
            .vschema
            .tables
            .values()
            .any(|t| t.kind != tessera_topo::TableKind::Sharded);
        if !ks.vschema.sharded || !has_refs {
            return Ok(Vec::new());
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for (_, from, to) in &job.moves {
            if !p.shards.iter().any(|e| e.ps == *to) && !out.iter().any(|(t, _)| t == to) {
                out.push((to.clone(), from.clone()));
            }
        }
        Ok(out)
    }

    /// Copies the keyspace's reference tables to `to` from `member` under `LOCK TABLES … READ`
    /// (which waits for in-flight writers); routers hold reference writes meanwhile.
    pub(super) async fn copy_reference_tables(
        &self,
        keyspace: &str,
        member: &str,
        to: &str,
    ) -> Result<u64> {
        let rs = tessera_topo::records::reference_schema(keyspace);
        let mut m = self.conn(member).await?;
        let tables = shardmove::load_tables(&mut m, &rs).await?;
        if tables.is_empty() {
            return Ok(0);
        }
        let mut d = self.conn(to).await?;
        shardmove::create_schema_like(&mut m, &mut d, &rs, &rs, &tables).await?;
        m.query_drop(format!(
            "SET SESSION lock_wait_timeout = {}",
            self.opts.fence_lock_wait_s
        ))
        .await?;
        let locks: Vec<String> = tables
            .iter()
            .map(|t| format!("{}.{} READ", qi(&rs), qi(&t.name)))
            .collect();
        m.query_drop(format!("LOCK TABLES {}", locks.join(", ")))
            .await?;
        let r = async {
            let mut n = 0;
            let mut cp = Copier {
                src: &mut m,
                dst: &mut d,
                src_schema: &rs,
                dst_schema: &rs,
            };
            for t in &tables {
                n += cp.copy_whole(t).await?;
            }
            Ok::<u64, anyhow::Error>(n)
        }
        .await;
        let _ = m.query_drop("UNLOCK TABLES").await;
        r
    }

    pub(super) async fn dual_write(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let id = job.id.clone();
        let epoch = self
            .set_entries(&job, |_, from, to, e| {
                if e.state == LogicalShardState::Serving && e.ps == from {
                    e.state = LogicalShardState::DualWrite;
                    e.peer = Some(to.to_string());
                    e.job = Some(id.clone());
                }
            })
            .await?;
        let lagging = self
            .wait_acks(&job.keyspace, epoch, self.opts.ack_timeout)
            .await?;
        if lagging.is_empty() {
            self.event(
                cell,
                format!("every router serves dual-write epoch {epoch}"),
            )
            .await?;
        } else {
            // The journal catches their writes; they are only slower to copy.
            self.event(
                cell,
                format!("routers {lagging:?} did not acknowledge epoch {epoch}; the journal covers their writes"),
            )
            .await?;
        }
        self.set_phase(cell, "backfill").await
    }
}
