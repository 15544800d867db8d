//! Backfill: every table copied in primary-key chunks (read without locks, written as
//! multi-row text `REPLACE`s by several connections at once, each chunk settled against the
//! source afterwards), throttled by load and checkpointed in topo, then the journal drained.

use super::{retriable, JobCell, Rebalancer};
use anyhow::{anyhow, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shardmove::{self as shardmove, qi, Chunk, Copier, TableMeta};
use tessera_topo::Job;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

/// Journal rows the backfill's last drain takes at once.
const DRAIN_BATCH: usize = 2000;

/// Smallest and largest backfill chunk (rows).
const CHUNK_MIN: usize = 200;
const CHUNK_MAX: usize = 20_000;

/// Where one table's backfill reads and writes.
#[derive(Clone)]
struct Place {
    ls: u32,
    from: String,
    to: String,
    schema: String,
    table: Arc<TableMeta>,
}

/// A chunk written and settled by a backfill writer.
struct Settled {
    seq: u64,
    rows: u64,
    /// The key the next chunk starts after; `None`: the table's end.
    next: Option<Vec<Value>>,
    took: Duration,
}

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
            // Catch up with the journal: batches until one is not full (under a write load
            // the journal never stays empty, and the routers copy what their own writes
            // journalled; the cutover drains it to empty behind the fence). Copies by key can
            // deadlock with the routers' copies of the same keys (the server rolls one back):
            // then take the journal again.
            let mut tries = 0;
            let mut rounds = 0;
            while rounds < 100 {
                let mut cp = Copier {
                    src: &mut s,
                    dst: &mut d,
                    src_schema: &schema,
                    dst_schema: &schema,
                };
                let mut full = false;
                let mut failed = None;
                for t in &tables {
                    match cp.drain_once(t, DRAIN_BATCH).await {
                        Ok(n) => full |= n >= DRAIN_BATCH,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    None if !full => break,
                    None => rounds += 1,
                    Some(e) if retriable(&e) && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some(e) => return Err(e),
                }
            }
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
        for t in &tables {
            let key = format!("backfill/{ls}/{}", t.name);
            let start = cell.lock().await.job.checkpoints.get(&key).cloned();
            if start.as_deref() == Some("done") {
                continue;
            }
            let after: Option<Vec<Value>> = match &start {
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
            let place = Place {
                ls,
                from: from.to_string(),
                to: to.to_string(),
                schema: schema.clone(),
                table: Arc::new(t.clone()),
            };
            self.backfill_table(cell, &place, after, rate).await?;
        }
        Ok(())
    }

    /// Copies one table of one logical shard as a pipeline: a reader takes chunks from the
    /// source in key order (consistent reads, no locks: writers never wait on the backfill)
    /// while `copy_writers` connections write earlier chunks into the target as multi-row
    /// text `REPLACE`s and settle them ([`Copier::settle_chunk`]: what changed on the source
    /// since the chunk's read is copied again, the locking way). The checkpoint advances over
    /// the chunks settled without a gap, so a restarted job redoes at most the chunks that were
    /// in flight (copying is idempotent).
    async fn backfill_table(
        &self,
        cell: &Arc<Mutex<JobCell>>,
        place: &Place,
        start: Option<Vec<Value>>,
        rate: Option<u64>,
    ) -> Result<()> {
        let writers = self.opts.copy_writers.max(1);
        let size = Arc::new(AtomicUsize::new(CHUNK_MIN.max(1000)));
        let (tx, rx) = mpsc::channel::<(u64, Arc<Chunk>)>(writers);
        let rx = Arc::new(Mutex::new(rx));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Settled>();
        let mut set: JoinSet<Result<()>> = JoinSet::new();
        {
            let (me, p, size, start) = (self.clone(), place.clone(), size.clone(), start.clone());
            set.spawn(async move { me.backfill_reader(&p, start, size, rate, tx).await });
        }
        for _ in 0..writers {
            let (me, p, rx, done) = (self.clone(), place.clone(), rx.clone(), done_tx.clone());
            set.spawn(async move {
                let r = me.backfill_writer(&p, &rx, done).await;
                if r.is_err() {
                    // Stop the reader: the job fails and resumes from its checkpoint.
                    rx.lock().await.close();
                }
                r
            });
        }
        drop(done_tx);

        let key = format!("backfill/{}/{}", place.ls, place.table.name);
        let target = self.opts.chunk_target;
        let mut pending: BTreeMap<u64, Settled> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut after = start;
        let mut finished = false;
        let mut last_save = Instant::now();
        let mut window = (Instant::now(), 0u64);
        while let Some(s) = done_rx.recv().await {
            // Chunks sized by the time their write and settling take.
            let n = size.load(Ordering::Relaxed);
            if s.took < target / 2 {
                size.store((n * 2).min(CHUNK_MAX), Ordering::Relaxed);
            } else if s.took > target * 2 {
                size.store((n / 2).max(CHUNK_MIN), Ordering::Relaxed);
            }
            pending.insert(s.seq, s);
            while let Some(s) = pending.remove(&next_seq) {
                next_seq += 1;
                window.1 += s.rows;
                match s.next {
                    Some(k) => after = Some(k),
                    None => finished = true,
                }
            }
            if finished || last_save.elapsed() > Duration::from_millis(500) {
                self.save_backfill(cell, &key, &place.table.name, &after, finished, &mut window)
                    .await?;
                last_save = Instant::now();
            }
        }
        let mut first_err = None;
        while let Some(r) = set.join_next().await {
            if let Err(e) = r
                .map_err(|e| anyhow!("backfill task failed: {e}"))
                .and_then(|x| x)
            {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            // Keep what was settled without a gap.
            let _ = self
                .save_backfill(cell, &key, &place.table.name, &after, false, &mut window)
                .await;
            return Err(e);
        }
        if !finished {
            return Err(anyhow!(
                "backfill of {}.{} stopped before the table's end",
                place.schema,
                place.table.name
            ));
        }
        Ok(())
    }

    /// Saves the backfill checkpoint of one table (`after`, or `done`) and its progress.
    async fn save_backfill(
        &self,
        cell: &Arc<Mutex<JobCell>>,
        key: &str,
        table: &str,
        after: &Option<Vec<Value>>,
        done: bool,
        window: &mut (Instant, u64),
    ) -> Result<()> {
        let secs = window.0.elapsed().as_secs_f64().max(0.001);
        let mut c = cell.lock().await;
        c.job.journal_backlog = self
            .backlog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum();
        let tp = c.job.tables.entry(table.to_string()).or_default();
        tp.rows_copied += window.1;
        tp.rows_per_sec = (window.1 as f64 / secs) as u64;
        tp.rows_total = tp.rows_total.max(tp.rows_copied);
        *window = (Instant::now(), 0);
        let cp = if done {
            "done".to_string()
        } else {
            match after {
                Some(k) => shardmove::encode_key(k),
                // Nothing settled yet: no checkpoint to write.
                None => return Ok(()),
            }
        };
        c.job.checkpoints.insert(key.to_string(), cp);
        if done
            && c.job.moves.iter().all(|(l, _, _)| {
                c.job
                    .checkpoints
                    .get(&format!("backfill/{l}/{table}"))
                    .is_some_and(|v| v == "done")
            })
        {
            tp_done(&mut c.job, table);
        }
        self.save(&mut c).await
    }

    /// Reads chunks in key order and hands them to the writers, throttled by the source's
    /// load and the rate cap.
    async fn backfill_reader(
        &self,
        p: &Place,
        mut after: Option<Vec<Value>>,
        size: Arc<AtomicUsize>,
        rate: Option<u64>,
        tx: mpsc::Sender<(u64, Arc<Chunk>)>,
    ) -> Result<()> {
        let mut src = self.conn(&p.from).await?;
        let mut seq = 0u64;
        loop {
            self.throttle(&mut src).await?;
            let t0 = Instant::now();
            let n = size.load(Ordering::Relaxed);
            let chunk = loop {
                match shardmove::read_chunk(&mut src, &p.schema, &p.table, after.as_deref(), n)
                    .await
                {
                    Ok(c) => break c,
                    Err(e) if retriable(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(e) => return Err(e),
                }
            };
            let rows = chunk.rows.len() as u64;
            let next = chunk.next(&p.table);
            if tx.send((seq, Arc::new(chunk))).await.is_err() {
                // The writers stopped (one failed); its error is the job's.
                return Ok(());
            }
            seq += 1;
            match next {
                Some(k) => after = Some(k),
                None => return Ok(()),
            }
            if let Some(r) = rate {
                let should = Duration::from_secs_f64(rows as f64 / r.max(1) as f64);
                let took = t0.elapsed();
                if should > took {
                    tokio::time::sleep(should - took).await;
                }
            }
        }
    }

    /// Writes chunks into the target and settles them, until the reader is done.
    async fn backfill_writer(
        &self,
        p: &Place,
        rx: &Mutex<mpsc::Receiver<(u64, Arc<Chunk>)>>,
        done: mpsc::UnboundedSender<Settled>,
    ) -> Result<()> {
        let mut src = self.conn(&p.from).await?;
        let mut dst = self.conn(&p.to).await?;
        loop {
            let next = rx.lock().await.recv().await;
            let Some((seq, chunk)) = next else {
                return Ok(());
            };
            let t0 = Instant::now();
            loop {
                let r = async {
                    shardmove::write_rows(&mut dst, &p.schema, &p.table, &chunk.rows).await?;
                    Copier {
                        src: &mut src,
                        dst: &mut dst,
                        src_schema: &p.schema,
                        dst_schema: &p.schema,
                    }
                    .settle_chunk(&p.table, &chunk)
                    .await
                }
                .await;
                match r {
                    Ok(_) => break,
                    Err(e) if retriable(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(e) => return Err(e),
                }
            }
            let _ = done.send(Settled {
                seq,
                rows: chunk.rows.len() as u64,
                next: chunk.next(&p.table),
                took: t0.elapsed(),
            });
        }
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
