//! Backfill: every table copied in primary-key chunks, throttled by load and checkpointed in
//! topo, then the journal drained.

use super::{retriable, JobCell, Rebalancer};
use anyhow::{anyhow, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shardmove::{self as shardmove, qi, Copier};
use tessera_topo::Job;
use tokio::sync::Mutex;

pub(super) fn tp_done(job: &mut Job, table: &str) {
    if let Some(tp) = job.tables.get_mut(table) {
        tp.done = true;
        tp.rows_total = tp.rows_copied.max(tp.rows_total);
    }
}

impl Rebalancer {
    pub(super) async fn backfill(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(self.opts.concurrency.max(1)));
        let per_task_rate = self
            .opts
            .max_rows_per_sec
            .map(|r| (r / self.opts.concurrency.max(1) as u64).max(1));
        let mut tasks = tokio::task::JoinSet::new();
        let stop_drain = Arc::new(tokio::sync::Notify::new());
        let mut drains = Vec::new();
        for (ls, from, to) in job.moves.clone() {
            let me = self.clone();
            let cell2 = cell.clone();
            let sem = sem.clone();
            let job2 = job.clone();
            let (ls2, from2, to2) = (ls, from.clone(), to.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                me.backfill_ls(&cell2, &job2, ls2, &from2, &to2, per_task_rate)
                    .await
            });
            // Drain the journal alongside, for writes no router copied.
            let me = self.clone();
            let stop = stop_drain.clone();
            let job3 = job.clone();
            let backlog = self.backlog.clone();
            drains.push(tokio::spawn(async move {
                loop {
                    let r = async {
                        let schema = me.schema_of(&job3, ls).await?;
                        let tables = me.tables(&job3, ls, &from).await?;
                        let mut s = me.conn(&from).await?;
                        let mut d = me.conn(&to).await?;
                        let mut cp = Copier {
                            src: &mut s,
                            dst: &mut d,
                            src_schema: &schema,
                            dst_schema: &schema,
                        };
                        loop {
                            cp.drain_all(&tables, 4).await?;
                            let left = shardmove::journal_backlog(cp.src, &schema, &tables).await?;
                            backlog
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(ls, left);
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                                _ = stop.notified() => return Ok::<(), anyhow::Error>(()),
                            }
                        }
                    };
                    match r.await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, ls, "journal drain failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }));
        }
        let mut first_err = None;
        while let Some(r) = tasks.join_next().await {
            let r = r
                .map_err(|e| anyhow!("backfill task failed: {e}"))
                .and_then(|x| x);
            if let Err(e) = r {
                first_err.get_or_insert(e);
                tasks.abort_all();
            }
        }
        stop_drain.notify_waiters();
        for d in drains {
            d.abort();
            let _ = d.await;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // What is left in the journals.
        let mut backlog = 0;
        for (ls, from, to) in &job.moves {
            let schema = self.schema_of(&job, *ls).await?;
            let tables = self.tables(&job, *ls, from).await?;
            let mut s = self.conn(from).await?;
            let mut d = self.conn(to).await?;
            Copier {
                src: &mut s,
                dst: &mut d,
                src_schema: &schema,
                dst_schema: &schema,
            }
            .drain_all(&tables, 100)
            .await?;
            backlog += shardmove::journal_backlog(&mut s, &schema, &tables).await?;
        }
        {
            let mut c = cell.lock().await;
            c.job.journal_backlog = backlog;
            self.save(&mut c).await?;
        }
        self.set_phase(cell, "verify").await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn backfill_ls(
        &self,
        cell: &Arc<Mutex<JobCell>>,
        job: &Job,
        ls: u32,
        from: &str,
        to: &str,
        rate: Option<u64>,
    ) -> Result<()> {
        let schema = self.schema_of(job, ls).await?;
        let tables = self.tables(job, ls, from).await?;
        let mut src = self.conn(from).await?;
        let mut dst = self.conn(to).await?;
        for t in &tables {
            let key = format!("backfill/{ls}/{}", t.name);
            let start = cell.lock().await.job.checkpoints.get(&key).cloned();
            if start.as_deref() == Some("done") {
                continue;
            }
            let mut after: Option<Vec<Value>> = match &start {
                Some(s) => Some(shardmove::decode_key(s)?),
                None => None,
            };
            // Estimated rows, for progress.
            let est: Option<u64> = src
                .exec_first(
                    format!("SELECT COUNT(*) FROM {}.{}", qi(&schema), qi(&t.name)),
                    (),
                )
                .await?;
            {
                let mut c = cell.lock().await;
                let tp = c.job.tables.entry(t.name.clone()).or_default();
                if start.is_none() {
                    tp.rows_total += est.unwrap_or(0);
                }
                tp.done = false;
            }
            let mut chunk = 500usize;
            let mut last_save = Instant::now();
            let mut window = (Instant::now(), 0u64);
            loop {
                self.throttle(&mut src).await?;
                let t0 = Instant::now();
                let mut cp = Copier {
                    src: &mut src,
                    dst: &mut dst,
                    src_schema: &schema,
                    dst_schema: &schema,
                };
                let (n, last) = match cp.copy_chunk(t, after.as_deref(), chunk).await {
                    Ok(x) => x,
                    Err(e) if retriable(&e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let took = t0.elapsed();
                if took < self.opts.chunk_target / 2 {
                    chunk = (chunk * 2).min(20_000);
                } else if took > self.opts.chunk_target * 2 {
                    chunk = (chunk / 2).max(50);
                }
                window.1 += n;
                if let Some(r) = rate {
                    let should = Duration::from_secs_f64(n as f64 / r as f64);
                    if should > took {
                        tokio::time::sleep(should - took).await;
                    }
                }
                let done = last.is_none();
                if last.is_some() {
                    after = last;
                }
                if done || last_save.elapsed() > Duration::from_millis(500) {
                    let secs = window.0.elapsed().as_secs_f64().max(0.001);
                    let mut c = cell.lock().await;
                    c.job.journal_backlog = self
                        .backlog
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .sum();
                    let tp = c.job.tables.entry(t.name.clone()).or_default();
                    tp.rows_copied += window.1;
                    tp.rows_per_sec = (window.1 as f64 / secs) as u64;
                    tp.rows_total = tp.rows_total.max(tp.rows_copied);
                    window = (Instant::now(), 0);
                    let cp = if done {
                        "done".to_string()
                    } else {
                        after
                            .as_deref()
                            .map(shardmove::encode_key)
                            .unwrap_or_default()
                    };
                    c.job.checkpoints.insert(key.clone(), cp);
                    if done
                        && c.job.moves.iter().all(|(l, _, _)| {
                            c.job
                                .checkpoints
                                .get(&format!("backfill/{l}/{}", t.name))
                                .is_some_and(|v| v == "done")
                        })
                    {
                        tp_done(&mut c.job, &t.name);
                    }
                    self.save(&mut c).await?;
                    last_save = Instant::now();
                }
                if done {
                    break;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn throttle(&self, src: &mut Conn) -> Result<()> {
        loop {
            let row: Option<(String, u64)> = src
                .query_first("SHOW GLOBAL STATUS LIKE 'Threads_running'")
                .await?;
            let running = row.map(|r| r.1).unwrap_or(0);
            if running <= self.opts.max_threads_running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
