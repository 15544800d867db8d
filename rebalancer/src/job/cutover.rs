//! Cut over, complete and abort: writes held, the source fenced, the journal drained, the
//! placement flipped; then the old copy removed, or the move undone.

use super::{stamp, JobCell, Rebalancer};
use anyhow::{bail, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;
use std::time::Instant;
use tessera_shardmove::{self as shardmove, qi, Copier, TableMeta};
use tessera_topo::LogicalShardState;
use tokio::sync::Mutex;

/// One logical shard's side of a switch, connected before writes are held.
pub(super) struct SwitchSide {
    pub(super) serving: String,
    pub(super) schema: String,
    pub(super) tables: Vec<TableMeta>,
    pub(super) s: Conn,
    pub(super) d: Conn,
}

impl Rebalancer {
    /// Cutover (`forward`) or rollback: hold writes, fence the serving side, drain its journal
    /// to empty, unfence the other side, flip placement, release.
    pub(super) async fn switch(&self, cell: &Arc<Mutex<JobCell>>, forward: bool) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let (phase, done_phase, back_phase) = if forward {
            ("cutover", "cut_over", "verified")
        } else {
            ("rollback", "rolled_back", "cut_over")
        };
        // (ls, serving side, other side)
        let sides: Vec<(u32, String, String)> = job
            .moves
            .iter()
            .map(|(ls, from, to)| {
                if forward {
                    (*ls, from.clone(), to.clone())
                } else {
                    (*ls, to.clone(), from.clone())
                }
            })
            .collect();
        let done_state = if forward {
            LogicalShardState::Reverse
        } else {
            LogicalShardState::DualWrite
        };
        // Resumed after the flip already happened?
        if let Some((p, _)) = self.topo.get_placement(&job.keyspace).await? {
            let flipped = sides.iter().all(|(ls, _, other)| {
                p.shards
                    .get(*ls as usize)
                    .is_some_and(|e| e.ps == *other && e.state == done_state)
            });
            if flipped {
                return self.set_phase(cell, done_phase).await;
            }
        }
        let new_targets = if forward {
            self.new_targets(&job).await?
        } else {
            Vec::new()
        };
        // Everything the switch needs is read and connected before writes are held.
        let ctxs = async {
            let mut v = Vec::new();
            for (ls, serving, other) in &sides {
                let schema = self.schema_of(&job, *ls).await?;
                let tables = self.tables(&job, *ls, serving).await?;
                let mut s = self.conn(serving).await?;
                s.query_drop(format!(
                    "SET SESSION lock_wait_timeout = {}",
                    self.opts.fence_lock_wait_s
                ))
                .await?;
                let d = self.conn(other).await?;
                v.push(SwitchSide {
                    serving: serving.clone(),
                    schema,
                    tables,
                    s,
                    d,
                });
            }
            Ok::<_, anyhow::Error>(v)
        }
        .await?;
        self.set_phase(cell, phase).await?;
        let held_at = Instant::now();
        let id = job.id.clone();
        let epoch = self
            .set_entries(&job, |ls, _, _, e| {
                if let Some((_, serving, other)) = sides.iter().find(|s| s.0 == ls) {
                    e.ps = serving.clone();
                    e.peer = Some(other.clone());
                    e.state = LogicalShardState::Cutover;
                    e.job = Some(id.clone());
                }
            })
            .await?;
        let lagging = self
            .wait_acks(&job.keyspace, epoch, self.opts.ack_timeout)
            .await?;
        let acked_at = held_at.elapsed();
        let result = async {
            let mut ctxs = ctxs;
            let work = ctxs.iter_mut().map(|c| async move {
                shardmove::install_fence(
                    &mut c.s,
                    &c.schema,
                    &c.tables,
                    &format!("{} on {}", c.schema, c.serving),
                )
                .await?;
                let mut cp = Copier {
                    src: &mut c.s,
                    dst: &mut c.d,
                    src_schema: &c.schema,
                    dst_schema: &c.schema,
                };
                cp.drain_all(&c.tables, 10_000).await?;
                let left = shardmove::journal_backlog(&mut c.s, &c.schema, &c.tables).await?;
                if left > 0 {
                    bail!(
                        "journal of {} on {} did not drain ({left} rows left)",
                        c.schema,
                        c.serving
                    );
                }
                shardmove::remove_fence(&mut c.d, &c.schema, &c.tables).await?;
                Ok::<(), anyhow::Error>(())
            });
            futures_util::future::try_join_all(work).await?;
            if forward {
                for (to, member) in &new_targets {
                    self.copy_reference_tables(&job.keyspace, member, to)
                        .await?;
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match result {
            Ok(_) => {
                let epoch2 = self
                    .set_entries(&job, |ls, _, _, e| {
                        if let Some((_, serving, other)) = sides.iter().find(|s| s.0 == ls) {
                            e.ps = other.clone();
                            e.peer = Some(serving.clone());
                            e.state = done_state;
                        }
                    })
                    .await?;
                let flipped_at = held_at.elapsed();
                let lag2 = self
                    .wait_acks(&job.keyspace, epoch2, self.opts.ack_timeout)
                    .await?;
                let stall = held_at.elapsed();
                {
                    let mut c = cell.lock().await;
                    c.job.stall_ms = Some(stall.as_millis() as u64);
                    c.job.events.push(format!(
                        "{} {phase}: writes held {} ms (routers acknowledged the hold in {} ms, placement flipped at {} ms){}{}",
                        stamp(),
                        stall.as_millis(),
                        acked_at.as_millis(),
                        flipped_at.as_millis(),
                        if lagging.is_empty() { String::new() } else { format!("; routers {lagging:?} did not acknowledge the hold (the fence refuses their writes)") },
                        if lag2.is_empty() { String::new() } else { format!("; routers {lag2:?} did not acknowledge the flip in time") },
                    ));
                    self.save(&mut c).await?;
                }
                self.set_phase(cell, done_phase).await
            }
            Err(e) => {
                // Undo: unfence, back to the previous state, writes released.
                for (ls, serving, _) in &sides {
                    if let Ok(schema) = self.schema_of(&job, *ls).await {
                        if let (Ok(tables), Ok(mut c)) = (
                            self.tables(&job, *ls, serving).await,
                            self.conn(serving).await,
                        ) {
                            let _ = shardmove::remove_fence(&mut c, &schema, &tables).await;
                        }
                    }
                }
                let back_state = if forward {
                    LogicalShardState::DualWrite
                } else {
                    LogicalShardState::Reverse
                };
                self.set_entries(&job, |ls, _, _, e| {
                    if let Some((_, serving, other)) = sides.iter().find(|s| s.0 == ls) {
                        e.ps = serving.clone();
                        e.peer = Some(other.clone());
                        e.state = back_state;
                    }
                })
                .await?;
                self.set_phase(cell, back_phase).await?;
                Err(e.context(format!(
                    "{phase} failed; writes released, job back to {back_phase}"
                )))
            }
        }
    }

    pub(super) async fn complete_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        self.set_phase(cell, "completing").await?;
        self.settle(cell, true).await?;
        self.set_phase(cell, "completed").await
    }

    /// Ends a job's moves: each logical shard serves alone on its target (`on_target`, for
    /// complete) or its source (abort). The kept side loses its journal and fence; the other
    /// copy is dropped (on abort, only a target this job created).
    pub(super) async fn settle(&self, cell: &Arc<Mutex<JobCell>>, on_target: bool) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let kept = |from: &str, to: &str| -> (String, String) {
            if on_target {
                (to.to_string(), from.to_string())
            } else {
                (from.to_string(), to.to_string())
            }
        };
        let epoch = self
            .set_entries(&job, |_, from, to, e| {
                if e.ps == kept(from, to).0 {
                    e.state = LogicalShardState::Serving;
                    e.peer = None;
                    e.job = None;
                }
            })
            .await?;
        self.wait_acks(&job.keyspace, epoch, self.opts.ack_timeout)
            .await?;
        for (ls, from, to) in &job.moves {
            let (keep, other) = kept(from, to);
            let schema = self.schema_of(&job, *ls).await?;
            let tables = self.tables(&job, *ls, &keep).await?;
            let mut k = self.conn(&keep).await?;
            shardmove::remove_journal(&mut k, &schema, &tables).await?;
            shardmove::remove_fence(&mut k, &schema, &tables).await?;
            if on_target || job.checkpoints.contains_key(&format!("prepared/{ls}")) {
                let mut o = self.conn(&other).await?;
                o.query_drop(format!("DROP DATABASE IF EXISTS {}", qi(&schema)))
                    .await?;
            }
            if on_target {
                self.event(
                    cell,
                    format!("logical shard {ls} now on {to} alone; dropped {schema} on {from}"),
                )
                .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn abort_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        let job = cell.lock().await.job.clone();
        self.settle(cell, false).await?;
        for (to, _) in self.new_targets(&job).await? {
            let mut d = self.conn(&to).await?;
            d.query_drop(format!(
                "DROP DATABASE IF EXISTS {}",
                qi(&tessera_topo::records::reference_schema(&job.keyspace))
            ))
            .await?;
        }
        self.event(
            cell,
            "aborted: sources serve as before, target copies dropped".into(),
        )
        .await?;
        self.set_phase(cell, "aborted").await
    }
}
