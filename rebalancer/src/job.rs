//! Move jobs: the state machine that takes logical shards from one physical shard to another,
//! with its phase and checkpoints in topo so that a rebalancer killed at any point resumes.
//!
//! This file holds the API and the run loop; each phase has its own file: `prepare`,
//! `backfill`, `verify`, `cutover` (with complete and abort).

mod backfill;
mod cutover;
mod prepare;
mod verify;

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shardmove::{self as shardmove, TableMeta};
use tessera_topo::records::ls_schema;
use tessera_topo::{Job, LogicalShardState, PhysicalShard, Topo, TopoError};
use tokio::sync::Mutex;

/// How a job runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Logical shards copied at once.
    pub concurrency: usize,
    /// Rows per second cap for backfill and verification, over the whole job.
    pub max_rows_per_sec: Option<u64>,
    /// Backfill pauses while the source reports more `Threads_running` than this.
    pub max_threads_running: u64,
    /// Wanted duration of one backfill chunk; chunk sizes adapt to it.
    pub chunk_target: Duration,
    /// Connections per logical shard that write backfill chunks into the target at once
    /// (one more reads them from the source).
    pub copy_writers: usize,
    /// Longest wait for every live router to acknowledge a new epoch.
    pub ack_timeout: Duration,
    /// `lock_wait_timeout` (s) for fencing at cutover: in-flight transactions on the moving
    /// tables get this long to finish.
    pub fence_lock_wait_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 2,
            max_rows_per_sec: None,
            max_threads_running: 64,
            chunk_target: Duration::from_millis(200),
            copy_writers: 2,
            ack_timeout: Duration::from_secs(15),
            fence_lock_wait_s: 5,
        }
    }
}

/// Where [`Rebalancer::run`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// After verification passed.
    Verified,
    /// After cutover (serving from the targets, copying back for rollback).
    CutOver,
    /// After `complete`.
    Completed,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The job record and its revision, saved by compare-and-set so that two rebalancers can never
/// both advance one job.
struct JobCell {
    job: Job,
    rev: u64,
}

type Progress = Arc<dyn Fn(&Job) + Send + Sync>;

/// The rebalancer API.
#[derive(Clone)]
pub struct Rebalancer {
    pub(super) topo: Topo,
    pub(super) opts: Options,
    pub(super) pools: Arc<std::sync::Mutex<HashMap<String, (PhysicalShard, Pool)>>>,
    pub(super) progress: Option<Progress>,
    /// Journal rows waiting, per logical shard, as the drain tasks last saw them.
    pub(super) backlog: Arc<std::sync::Mutex<HashMap<u32, u64>>>,
}

impl Rebalancer {
    /// A rebalancer over `topo`.
    pub fn new(topo: Topo, opts: Options) -> Self {
        Rebalancer {
            topo,
            opts,
            pools: Arc::default(),
            progress: None,
            backlog: Arc::default(),
        }
    }

    /// Calls `f` with the job after every saved change (for progress displays).
    pub fn on_progress(mut self, f: impl Fn(&Job) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The topology this rebalancer works on.
    pub fn topo(&self) -> &Topo {
        &self.topo
    }

    /// A copy connection to `ps`.
    async fn conn(&self, ps: &str) -> Result<Conn> {
        let snap = self.topo.snapshot().await?;
        let rec = snap
            .shards
            .get(ps)
            .ok_or_else(|| anyhow!("physical shard {ps} is not registered"))?
            .clone();
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            match pools.get(ps) {
                Some((r, p)) if *r == rec => p.clone(),
                _ => {
                    let opts = tessera_shardmove::server_opts(
                        &rec.host,
                        rec.port,
                        &rec.user,
                        rec.resolve_password(),
                        rec.tls_ca.as_deref(),
                    )
                    .stmt_cache_size(64);
                    let p = Pool::new(opts);
                    pools.insert(ps.to_string(), (rec.clone(), p.clone()));
                    p
                }
            }
        };
        let mut c = tokio::time::timeout(
            Duration::from_secs(10),
            tessera_shardmove::login(|| pool.get_conn()),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "connecting to physical shard {ps} ({}) timed out",
                rec.address()
            )
        })?
        .with_context(|| format!("connecting to physical shard {ps} ({})", rec.address()))?;
        c.query_drop(shardmove::COPY_SESSION).await?;
        Ok(c)
    }

    /// Creates a job moving `moves` (`(logical shard, target physical shard)`) of `keyspace`.
    ///
    /// # Errors
    /// Unknown keyspace, logical shard or physical shard; a logical shard already moving or
    /// already on its target.
    pub async fn create_job(&self, keyspace: &str, moves: &[(u32, String)]) -> Result<Job> {
        let snap = self.topo.snapshot().await?;
        let ks = snap
            .keyspaces
            .get(keyspace)
            .ok_or_else(|| anyhow!("unknown keyspace {keyspace}"))?;
        let p = snap
            .placements
            .get(keyspace)
            .ok_or_else(|| anyhow!("keyspace {keyspace} has no placement"))?;
        if moves.is_empty() {
            bail!("nothing to move");
        }
        let mut out = Vec::new();
        for (ls, to) in moves {
            let e = p.shards.get(*ls as usize).ok_or_else(|| {
                anyhow!(
                    "keyspace {keyspace} has {} logical shards; there is no {ls}",
                    p.shards.len()
                )
            })?;
            if !snap.shards.contains_key(to) {
                bail!("physical shard {to} is not registered (tessera shard add)");
            }
            if e.state != LogicalShardState::Serving || e.job.is_some() {
                bail!(
                    "logical shard {ls} of {keyspace} is already in a move (job {})",
                    e.job.as_deref().unwrap_or("?")
                );
            }
            if e.ps == *to {
                bail!("logical shard {ls} of {keyspace} is already on {to}");
            }
            if out.iter().any(|(l, _, _): &(u32, String, String)| l == ls) {
                bail!("logical shard {ls} is listed twice");
            }
            out.push((*ls, e.ps.clone(), to.clone()));
        }
        for j in self.topo.jobs().await? {
            if j.keyspace == keyspace && !matches!(j.phase.as_str(), "completed" | "aborted") {
                for (ls, _, _) in &out {
                    if j.moves.iter().any(|(l, _, _)| l == ls) {
                        bail!(
                            "logical shard {ls} of {keyspace} belongs to unfinished job {}",
                            j.id
                        );
                    }
                }
            }
        }
        let _ = ks;
        let now = now_ms();
        let job = Job {
            id: format!("{keyspace}-{now:x}"),
            keyspace: keyspace.to_string(),
            moves: out,
            phase: "created".into(),
            checkpoints: BTreeMap::new(),
            updated_ms: now,
            created_ms: now,
            tables: BTreeMap::new(),
            journal_backlog: 0,
            verify: None,
            stall_ms: None,
            error: None,
            events: vec![format!("{} created", stamp())],
        };
        self.topo.create_job(&job).await?;
        Ok(job)
    }

    async fn load(&self, id: &str) -> Result<Arc<Mutex<JobCell>>> {
        let (job, rev) = self
            .topo
            .get_job(id)
            .await?
            .ok_or_else(|| anyhow!("no job {id}"))?;
        Ok(Arc::new(Mutex::new(JobCell { job, rev })))
    }

    /// Saves the job, failing if someone else advanced it.
    async fn save(&self, cell: &mut JobCell) -> Result<()> {
        cell.job.updated_ms = now_ms();
        if cell.job.events.len() > 50 {
            let cut = cell.job.events.len() - 50;
            cell.job.events.drain(..cut);
        }
        match self.topo.update_job(&cell.job, cell.rev).await {
            Ok(r) => {
                cell.rev = r;
                if let Some(p) = &self.progress {
                    p(&cell.job);
                }
                Ok(())
            }
            Err(TopoError::Conflict { .. }) => Err(anyhow!(
                "job {} was changed by another rebalancer; stopping (run it again to take over once that one stopped)",
                cell.job.id
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_phase(&self, cell: &Arc<Mutex<JobCell>>, phase: &str) -> Result<()> {
        let mut c = cell.lock().await;
        c.job.phase = phase.to_string();
        c.job.events.push(format!("{} phase {phase}", stamp()));
        self.save(&mut c).await
    }

    async fn event(&self, cell: &Arc<Mutex<JobCell>>, msg: String) -> Result<()> {
        tracing::info!(message = %msg, "job");
        let mut c = cell.lock().await;
        c.job.events.push(format!("{} {msg}", stamp()));
        self.save(&mut c).await
    }

    /// Returns a job.
    ///
    /// # Errors
    /// Unknown job; topo failures.
    pub async fn job(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    /// Drives a job forward from wherever it is, up to `stop`.
    ///
    /// # Errors
    /// The first failure; the job keeps its phase and checkpoints, so running it again
    /// resumes.
    pub async fn run(&self, id: &str, stop: Stop) -> Result<Job> {
        let cell = self.load(id).await?;
        loop {
            let phase = cell.lock().await.job.phase.clone();
            let r = match phase.as_str() {
                "created" | "prepare" => self.prepare(&cell).await,
                "dual_write" => self.dual_write(&cell).await,
                "backfill" => self.backfill(&cell).await,
                "verify" => self.verify_phase(&cell).await,
                "verified" | "rolled_back" => {
                    if stop == Stop::Verified {
                        break;
                    }
                    self.switch(&cell, true).await
                }
                "cutover" => self.switch(&cell, true).await,
                "rollback" => self.switch(&cell, false).await,
                "cut_over" => {
                    if stop < Stop::Completed {
                        break;
                    }
                    self.complete_phase(&cell).await
                }
                "completed" | "aborted" => break,
                "aborting" => self.abort_phase(&cell).await,
                "completing" => self.complete_phase(&cell).await,
                other => Err(anyhow!("job {id} is in phase {other}; nothing to run")),
            };
            if let Err(e) = r {
                let mut c = cell.lock().await;
                c.job.error = Some(format!("{e:#}"));
                c.job.events.push(format!("{} error: {e:#}", stamp()));
                let _ = self.save(&mut c).await;
                return Err(e);
            }
        }
        let mut c = cell.lock().await;
        if c.job.error.is_some() {
            c.job.error = None;
            self.save(&mut c).await?;
        }
        Ok(c.job.clone())
    }

    /// Verifies again (the job must be past backfill and not cut over).
    ///
    /// # Errors
    /// Wrong phase; failures.
    pub async fn verify(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let phase = cell.lock().await.job.phase.clone();
        if !matches!(phase.as_str(), "verify" | "verified" | "rolled_back") {
            bail!(
                "job {id} is in phase {phase}; verification runs after backfill and before cutover"
            );
        }
        {
            let mut c = cell.lock().await;
            c.job.checkpoints.retain(|k, _| !k.starts_with("verify/"));
        }
        self.set_phase(&cell, "verify").await?;
        self.verify_phase(&cell).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    /// Cuts a verified job over.
    ///
    /// # Errors
    /// Wrong phase; failures (the job goes back to `verified`, writes are released).
    pub async fn cutover(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let phase = cell.lock().await.job.phase.clone();
        if !matches!(phase.as_str(), "verified" | "rolled_back" | "cutover") {
            bail!("job {id} is in phase {phase}; cutover needs a verified job");
        }
        self.switch(&cell, true).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    /// Rolls a cut-over job back to its sources (a reverse cutover; nothing written since is
    /// lost). The job is then `rolled_back`: it can be cut over again or aborted.
    ///
    /// # Errors
    /// Wrong phase; failures.
    pub async fn rollback(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let phase = cell.lock().await.job.phase.clone();
        if !matches!(phase.as_str(), "cut_over" | "rollback") {
            bail!("job {id} is in phase {phase}; only a cut-over job can be rolled back");
        }
        self.switch(&cell, false).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    /// Completes a cut-over job: the targets serve alone, the old copies are dropped.
    ///
    /// # Errors
    /// Wrong phase; failures.
    pub async fn complete(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let phase = cell.lock().await.job.phase.clone();
        if !matches!(phase.as_str(), "cut_over" | "completing") {
            bail!("job {id} is in phase {phase}; complete needs a cut-over job");
        }
        self.complete_phase(&cell).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    /// Aborts a job before cutover (or after a rollback): the sources serve as before, the
    /// target copies and the journals are removed.
    ///
    /// # Errors
    /// Wrong phase; failures.
    pub async fn abort(&self, id: &str) -> Result<Job> {
        let cell = self.load(id).await?;
        let phase = cell.lock().await.job.phase.clone();
        if matches!(
            phase.as_str(),
            "cut_over" | "cutover" | "rollback" | "completing" | "completed"
        ) {
            bail!("job {id} is in phase {phase}; roll it back before aborting (the targets serve now)");
        }
        if phase == "aborted" {
            let job = cell.lock().await.job.clone();
            return Ok(job);
        }
        self.set_phase(&cell, "aborting").await?;
        self.abort_phase(&cell).await?;
        let job = cell.lock().await.job.clone();
        Ok(job)
    }

    // ----- phases -----

    fn schemas(job: &Job, ls: u32) -> String {
        ls_schema(&job.keyspace, true, ls)
    }

    async fn sharded(&self, keyspace: &str) -> Result<bool> {
        Ok(self
            .topo
            .get_keyspace(keyspace)
            .await?
            .map(|(k, _)| k.vschema.sharded)
            .unwrap_or(true))
    }

    async fn schema_of(&self, job: &Job, ls: u32) -> Result<String> {
        if self.sharded(&job.keyspace).await? {
            Ok(Self::schemas(job, ls))
        } else {
            Ok(job.keyspace.clone())
        }
    }

    async fn tables(&self, job: &Job, ls: u32, ps: &str) -> Result<Vec<TableMeta>> {
        let schema = self.schema_of(job, ls).await?;
        let mut c = self.conn(ps).await?;
        shardmove::load_tables(&mut c, &schema).await
    }

    /// Updates placement entries of the job's logical shards at a new epoch; returns it.
    async fn set_entries(
        &self,
        job: &Job,
        f: impl Fn(u32, &str, &str, &mut tessera_topo::PlacementEntry),
    ) -> Result<u64> {
        for _ in 0..20 {
            let (mut p, rev) = self
                .topo
                .get_placement(&job.keyspace)
                .await?
                .ok_or_else(|| anyhow!("keyspace {} has no placement", job.keyspace))?;
            let before = p.clone();
            for (ls, from, to) in &job.moves {
                let e = p
                    .shards
                    .get_mut(*ls as usize)
                    .ok_or_else(|| anyhow!("no logical shard {ls}"))?;
                f(*ls, from, to, e);
            }
            if p == before {
                return Ok(p.epoch);
            }
            p.epoch += 1;
            match self.topo.put_placement(&p, rev).await {
                Ok(_) => return Ok(p.epoch),
                Err(TopoError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        bail!("placement of {} kept changing; gave up", job.keyspace)
    }

    /// Waits until every live router serves `epoch` of `keyspace` (or the timeout passes).
    /// Returns the routers that did not acknowledge.
    async fn wait_acks(
        &self,
        keyspace: &str,
        epoch: u64,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let routers = self.topo.routers().await?;
            let lagging: Vec<String> = routers
                .iter()
                .filter(|r| r.epochs.get(keyspace).copied().unwrap_or(0) < epoch)
                .map(|r| r.id.clone())
                .collect();
            if lagging.is_empty() || Instant::now() >= deadline {
                return Ok(lagging);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether a copy failure is worth retrying at once (deadlock, lock wait timeout).
pub(super) fn retriable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<mysql_async::Error>().is_some_and(
            |m| matches!(m, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205),
        )
    })
}

pub(super) fn stamp() -> String {
    let ms = now_ms();
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}
