//! Move jobs: the state machine that takes logical shards from one physical shard to another,
//! with its phase and checkpoints in topo so that a rebalancer killed at any point resumes.

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shardmove::{self as shardmove, qi, Copier, TableMeta};
use tessera_topo::records::ls_schema;
use tessera_topo::{
    Job, LogicalShardState, PhysicalShard, Topo, TopoError, VerifyCounts, VerifyReport,
};
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

fn now_ms() -> u64 {
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
    topo: Topo,
    opts: Options,
    pools: Arc<std::sync::Mutex<HashMap<String, (PhysicalShard, Pool)>>>,
    progress: Option<Progress>,
    /// Journal rows waiting, per logical shard, as the drain tasks last saw them.
    backlog: Arc<std::sync::Mutex<HashMap<u32, u64>>>,
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
                    let opts = mysql_async::OptsBuilder::default()
                        .ip_or_hostname(rec.host.clone())
                        .tcp_port(rec.port)
                        .user(Some(rec.user.clone()))
                        .pass(rec.resolve_password())
                        .prefer_socket(false)
                        .stmt_cache_size(64);
                    let p = Pool::new(opts);
                    pools.insert(ps.to_string(), (rec.clone(), p.clone()));
                    p
                }
            }
        };
        let mut c = tokio::time::timeout(Duration::from_secs(10), pool.get_conn())
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

    async fn prepare(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
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
    async fn new_targets(&self, job: &Job) -> Result<Vec<(String, String)>> {
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
    async fn copy_reference_tables(&self, keyspace: &str, member: &str, to: &str) -> Result<u64> {
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

    async fn dual_write(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
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

    async fn throttle(&self, src: &mut Conn) -> Result<()> {
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

    async fn backfill(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
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
    async fn backfill_ls(
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

    async fn verify_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        let job = cell.lock().await.job.clone();
        let mut report = VerifyReport::default();
        let mut clean = true;
        let rate = self.opts.max_rows_per_sec;
        for (ls, from, to) in &job.moves {
            let schema = self.schema_of(&job, *ls).await?;
            let tables = self.tables(&job, *ls, from).await?;
            let mut src = self.conn(from).await?;
            let mut dst = self.conn(to).await?;
            src.query_drop("SET SESSION innodb_lock_wait_timeout = 5")
                .await?;
            for t in &tables {
                let key = format!("verify/{ls}/{}", t.name);
                let saved = cell.lock().await.job.checkpoints.get(&key).cloned();
                // A checkpoint is `done` or `<encoded key>|<counts json>`.
                let (mut lo, mut counts): (Option<Vec<Value>>, VerifyCounts) = match saved
                    .as_deref()
                {
                    Some("done") => {
                        if let Some(v) = cell.lock().await.job.verify.as_ref() {
                            if let Some(c) = v.tables.get(&format!("{ls}/{}", t.name)) {
                                merge_counts(report.tables.entry(t.name.clone()).or_default(), c);
                            }
                        }
                        continue;
                    }
                    Some(s) => {
                        let (k, c) = s.split_once('|').unwrap_or((s, "{}"));
                        (
                            Some(shardmove::decode_key(k)?),
                            serde_json::from_str(c).unwrap_or_default(),
                        )
                    }
                    None => (None, VerifyCounts::default()),
                };
                let mut last_save = Instant::now();
                loop {
                    let t0 = Instant::now();
                    let hi =
                        shardmove::chunk_end(&mut src, &schema, t, lo.as_deref(), 1000).await?;
                    let mut cp = Copier {
                        src: &mut src,
                        dst: &mut dst,
                        src_schema: &schema,
                        dst_schema: &schema,
                    };
                    let r = match cp.verify_chunk(t, lo.as_deref(), hi.as_deref()).await {
                        Ok(r) => r,
                        Err(e) if retriable(&e) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    counts.rows += r.rows;
                    counts.chunks += 1;
                    counts.matching += r.matching;
                    counts.mismatched += r.mismatched;
                    counts.missing_on_target += r.missing_on_target;
                    counts.extra_on_target += r.extra_on_target;
                    report.repaired += r.repaired;
                    if !r.clean_after_repair {
                        clean = false;
                    }
                    if let Some(rate) = rate {
                        let should = Duration::from_secs_f64(r.rows as f64 / rate.max(1) as f64);
                        let took = t0.elapsed();
                        if should > took {
                            tokio::time::sleep(should - took).await;
                        }
                    }
                    let done = hi.is_none();
                    lo = hi;
                    if done || last_save.elapsed() > Duration::from_millis(500) {
                        let mut c = cell.lock().await;
                        let v = if done {
                            "done".to_string()
                        } else {
                            format!(
                                "{}|{}",
                                lo.as_deref().map(shardmove::encode_key).unwrap_or_default(),
                                serde_json::to_string(&counts).unwrap_or_default()
                            )
                        };
                        c.job.checkpoints.insert(key.clone(), v);
                        let rep = c.job.verify.get_or_insert_with(VerifyReport::default);
                        rep.tables
                            .insert(format!("{ls}/{}", t.name), counts.clone());
                        self.save(&mut c).await?;
                        last_save = Instant::now();
                    }
                    if done {
                        break;
                    }
                }
                merge_counts(report.tables.entry(t.name.clone()).or_default(), &counts);
            }
        }
        report.at_ms = now_ms();
        report.clean = clean;
        let summary: Vec<String> = report
            .tables
            .iter()
            .map(|(t, c)| {
                format!(
                    "{t}: {} rows, {} matching, {} mismatched, {} missing on target, {} extra on target",
                    c.rows, c.matching, c.mismatched, c.missing_on_target, c.extra_on_target
                )
            })
            .collect();
        {
            let mut c = cell.lock().await;
            c.job.verify = Some(report.clone());
            c.job.checkpoints.retain(|k, _| !k.starts_with("verify/"));
            c.job.events.push(format!(
                "{} verified: {}; repaired {} rows; {}",
                stamp(),
                summary.join("; "),
                report.repaired,
                if clean { "clean" } else { "NOT clean" }
            ));
            self.save(&mut c).await?;
        }
        if !clean {
            // Start over: the next run verifies again from the beginning.
            bail!("verification did not converge (rows kept differing after repair); run verify again");
        }
        self.set_phase(cell, "verified").await
    }

    /// Cutover (`forward`) or rollback: hold writes, fence the serving side, drain its journal
    /// to empty, unfence the other side, flip placement, release.
    async fn switch(&self, cell: &Arc<Mutex<JobCell>>, forward: bool) -> Result<()> {
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

    async fn complete_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
        self.set_phase(cell, "completing").await?;
        self.settle(cell, true).await?;
        self.set_phase(cell, "completed").await
    }

    /// Ends a job's moves: each logical shard serves alone on its target (`on_target`, for
    /// complete) or its source (abort). The kept side loses its journal and fence; the other
    /// copy is dropped (on abort, only a target this job created).
    async fn settle(&self, cell: &Arc<Mutex<JobCell>>, on_target: bool) -> Result<()> {
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

    async fn abort_phase(&self, cell: &Arc<Mutex<JobCell>>) -> Result<()> {
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

/// One logical shard's side of a switch, connected before writes are held.
struct SwitchSide {
    serving: String,
    schema: String,
    tables: Vec<TableMeta>,
    s: Conn,
    d: Conn,
}

fn tp_done(job: &mut Job, table: &str) {
    if let Some(tp) = job.tables.get_mut(table) {
        tp.done = true;
        tp.rows_total = tp.rows_copied.max(tp.rows_total);
    }
}

fn merge_counts(into: &mut VerifyCounts, c: &VerifyCounts) {
    into.rows += c.rows;
    into.chunks += c.chunks;
    into.matching += c.matching;
    into.mismatched += c.mismatched;
    into.missing_on_target += c.missing_on_target;
    into.extra_on_target += c.extra_on_target;
}

/// Whether a copy failure is worth retrying at once (deadlock, lock wait timeout).
fn retriable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<mysql_async::Error>().is_some_and(
            |m| matches!(m, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205),
        )
    })
}

fn stamp() -> String {
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
