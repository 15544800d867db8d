//! `tessera reshard …`: plan and run moves of logical shards between physical shards.

use super::flags::TopoFlags;
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use mysql_async::prelude::Queryable;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_rebalancer::{Options, Rebalancer, Stop};
use tessera_topo::{Job, Topo};

#[derive(Subcommand, Debug)]
pub enum ReshardCmd {
    /// Print the moves that bring a keyspace to the placement ring's assignment.
    Plan {
        #[arg(long)]
        keyspace: String,
        /// `size`: also even out measured bytes between physical shards.
        #[arg(long)]
        balance: Option<String>,
        /// Most extra moves `--balance size` may add.
        #[arg(long, default_value_t = 8)]
        max_extra: usize,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Create a move job and run it until verification has passed (then `cutover`).
    Start {
        #[arg(long)]
        keyspace: String,
        /// `LS:PHYSICAL_SHARD`, repeatable.
        #[arg(long = "move", value_name = "LS:TO")]
        moves: Vec<String>,
        /// Take the moves from `reshard plan`.
        #[arg(long)]
        plan: bool,
        /// With `--plan`: `size` to even out bytes too.
        #[arg(long)]
        balance: Option<String>,
        /// Only create the job; run it later with `reshard run`.
        #[arg(long)]
        no_run: bool,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Run (or resume) a job through cutover; with `--complete`, complete it too.
    Run {
        job: String,
        #[arg(long)]
        complete: bool,
        /// Stop once verification passed.
        #[arg(long)]
        until_verified: bool,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Show jobs: phase, per-table progress, journal backlog, last verification.
    Status {
        job: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Verify a job's copies again (between backfill and cutover).
    Verify {
        job: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Cut a verified job over: hold writes, fence the sources, drain, flip, release.
    Cutover {
        job: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Send a cut-over job back to its sources (nothing written since is lost).
    Rollback {
        job: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Finish a cut-over job: drop the old copies and the journals.
    Complete {
        job: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Abandon a job before cutover: sources as they were, target copies dropped.
    Abort {
        job: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

/// How a job runs.
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Logical shards copied at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Cap on rows per second copied and verified.
    #[arg(long)]
    max_rows_per_sec: Option<u64>,
    /// Pause copying while the source has more running threads than this.
    #[arg(long, default_value_t = 64)]
    max_threads_running: u64,
    /// Longest wait for routers to acknowledge a new epoch (ms).
    #[arg(long, default_value_t = 15_000)]
    ack_timeout_ms: u64,
}

impl RunFlags {
    fn options(&self) -> Options {
        Options {
            concurrency: self.concurrency.max(1),
            max_rows_per_sec: self.max_rows_per_sec,
            max_threads_running: self.max_threads_running,
            ack_timeout: Duration::from_millis(self.ack_timeout_ms),
            ..Options::default()
        }
    }
}

pub async fn run(c: ReshardCmd) -> anyhow::Result<()> {
    match c {
        ReshardCmd::Plan {
            keyspace,
            balance,
            max_extra,
            topo,
        } => {
            let topo = topo.topo()?;
            let moves = plan(&topo, &keyspace, balance.as_deref(), max_extra).await?;
            if moves.is_empty() {
                println!("keyspace {keyspace} is where the ring puts it: nothing to move");
                return Ok(());
            }
            println!(
                "{:>4}  {:<12} {:<12} {:>10} {:>12}",
                "LS", "FROM", "TO", "ROWS", "BYTES"
            );
            for m in &moves {
                println!(
                    "{:>4}  {:<12} {:<12} {:>10} {:>12}",
                    m.ls,
                    m.from,
                    m.to,
                    m.rows.map_or("?".into(), |r| r.to_string()),
                    m.bytes.map_or("?".into(), |r| r.to_string())
                );
            }
            println!(
                "{} moves; start them with: tessera reshard start --keyspace {keyspace} --plan{}",
                moves.len(),
                if balance.is_some() {
                    " --balance size"
                } else {
                    ""
                }
            );
            Ok(())
        }
        ReshardCmd::Start {
            keyspace,
            moves,
            plan: use_plan,
            balance,
            no_run,
            run,
            topo,
        } => {
            let topo = topo.topo()?;
            let mut list = Vec::new();
            for m in &moves {
                let (ls, to) = m
                    .split_once(':')
                    .ok_or_else(|| anyhow!("--move takes LS:PHYSICAL_SHARD, got {m}"))?;
                let ls: u32 = ls
                    .parse()
                    .map_err(|_| anyhow!("--move {m}: {ls} is not a logical shard number"))?;
                list.push((ls, to.to_string()));
            }
            if use_plan {
                for m in plan(&topo, &keyspace, balance.as_deref(), 8).await? {
                    list.push((m.ls, m.to));
                }
            }
            if list.is_empty() {
                bail!("nothing to move: give --move LS:TO or --plan");
            }
            let r = rebalancer(&topo, &run);
            let job = r.create_job(&keyspace, &list).await?;
            println!("job {}", job.id);
            for (ls, from, to) in &job.moves {
                println!("  logical shard {ls}: {from} -> {to}");
            }
            if no_run {
                return Ok(());
            }
            let job = r.run(&job.id, Stop::Verified).await?;
            finish(&job);
            println!("next: tessera reshard cutover {}", job.id);
            Ok(())
        }
        ReshardCmd::Run {
            job,
            complete,
            until_verified,
            run,
            topo,
        } => {
            let topo = topo.topo()?;
            let stop = if until_verified {
                Stop::Verified
            } else if complete {
                Stop::Completed
            } else {
                Stop::CutOver
            };
            let job = rebalancer(&topo, &run).run(&job, stop).await?;
            finish(&job);
            if job.phase == "cut_over" {
                println!(
                    "serving from the targets; the sources still receive every write. next: tessera reshard complete {} (or rollback)",
                    job.id
                );
            }
            Ok(())
        }
        ReshardCmd::Status { job, json, topo } => {
            let topo = topo.topo()?;
            let jobs: Vec<Job> = match job {
                Some(id) => vec![
                    topo.get_job(&id)
                        .await?
                        .ok_or_else(|| anyhow!("no job {id}"))?
                        .0,
                ],
                None => topo.jobs().await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
                return Ok(());
            }
            if jobs.is_empty() {
                println!("no jobs");
            }
            for j in &jobs {
                print!("{}", describe(j));
            }
            Ok(())
        }
        ReshardCmd::Verify { job, run, topo } => {
            let job = rebalancer(&topo.topo()?, &run).verify(&job).await?;
            finish(&job);
            Ok(())
        }
        ReshardCmd::Cutover { job, run, topo } => {
            let job = rebalancer(&topo.topo()?, &run).cutover(&job).await?;
            finish(&job);
            Ok(())
        }
        ReshardCmd::Rollback { job, run, topo } => {
            let job = rebalancer(&topo.topo()?, &run).rollback(&job).await?;
            finish(&job);
            Ok(())
        }
        ReshardCmd::Complete { job, run, topo } => {
            let job = rebalancer(&topo.topo()?, &run).complete(&job).await?;
            finish(&job);
            Ok(())
        }
        ReshardCmd::Abort { job, run, topo } => {
            let job = rebalancer(&topo.topo()?, &run).abort(&job).await?;
            finish(&job);
            Ok(())
        }
    }
}

fn rebalancer(topo: &Topo, run: &RunFlags) -> Rebalancer {
    let tty = std::io::stderr().is_terminal();
    let last: Arc<Mutex<(String, Option<Instant>)>> = Arc::default();
    Rebalancer::new(topo.clone(), run.options()).on_progress(move |j| {
        let mut l = last.lock().unwrap_or_else(|p| p.into_inner());
        let phase_changed = l.0 != j.phase;
        let due = l.1.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if !phase_changed && !due {
            return;
        }
        *l = (j.phase.clone(), Some(Instant::now()));
        let line = progress_line(j);
        if tty {
            eprint!("\r\x1b[2K{line}");
            if phase_changed {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    })
}

fn finish(job: &Job) {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    print!("{}", describe(job));
}

/// One progress line: phase, then per table a bar with rows, rate and ETA.
fn progress_line(j: &Job) -> String {
    let mut s = format!("[{}] {}", j.id, j.phase);
    if j.phase == "backfill" {
        for (t, p) in &j.tables {
            let frac = if p.rows_total == 0 {
                1.0
            } else {
                p.rows_copied as f64 / p.rows_total as f64
            };
            let filled = (frac * 20.0).round() as usize;
            let eta = if p.rows_per_sec > 0 && !p.done {
                format!(
                    " ETA {}s",
                    p.rows_total.saturating_sub(p.rows_copied) / p.rows_per_sec
                )
            } else {
                String::new()
            };
            s.push_str(&format!(
                "  {t} [{}{}] {}/{} rows {} rows/s{eta}",
                "#".repeat(filled.min(20)),
                "-".repeat(20 - filled.min(20)),
                p.rows_copied,
                p.rows_total,
                p.rows_per_sec
            ));
        }
    }
    s
}

/// A job, for people.
pub fn describe(j: &Job) -> String {
    let mut s = format!("job {}  keyspace {}  phase {}\n", j.id, j.keyspace, j.phase);
    for (ls, from, to) in &j.moves {
        s.push_str(&format!("  logical shard {ls}: {from} -> {to}\n"));
    }
    for (t, p) in &j.tables {
        s.push_str(&format!(
            "  table {t}: {}/{} rows copied{}{}\n",
            p.rows_copied,
            p.rows_total,
            if p.done { ", done" } else { "" },
            if p.rows_per_sec > 0 && !p.done {
                format!(
                    ", {} rows/s, ETA {}s",
                    p.rows_per_sec,
                    p.rows_total.saturating_sub(p.rows_copied) / p.rows_per_sec
                )
            } else {
                String::new()
            }
        ));
    }
    s.push_str(&format!("  journal backlog: {} rows\n", j.journal_backlog));
    if let Some(v) = &j.verify {
        s.push_str(&format!(
            "  last verification: {} (repaired {} rows)\n",
            if v.clean { "clean" } else { "NOT clean" },
            v.repaired
        ));
        for (t, c) in &v.tables {
            s.push_str(&format!(
                "    {t}: {} rows in {} chunks: {} matching, {} mismatched, {} missing on target, {} extra on target\n",
                c.rows, c.chunks, c.matching, c.mismatched, c.missing_on_target, c.extra_on_target
            ));
        }
    }
    if let Some(ms) = j.stall_ms {
        s.push_str(&format!("  write stall at the last switch: {ms} ms\n"));
    }
    if let Some(e) = &j.error {
        s.push_str(&format!("  error: {e}\n"));
    }
    for e in j.events.iter().rev().take(6).rev() {
        s.push_str(&format!("  | {e}\n"));
    }
    s
}

/// Measured `(rows, bytes)` per logical shard of a sharded keyspace, from each physical
/// shard's `information_schema` (estimates, as InnoDB keeps them).
pub async fn measure(topo: &Topo, keyspace: &str) -> anyhow::Result<Vec<(u64, u64)>> {
    let snap = topo.snapshot().await?;
    let p = snap
        .placements
        .get(keyspace)
        .ok_or_else(|| anyhow!("keyspace {keyspace} has no placement"))?;
    let sharded = snap
        .keyspaces
        .get(keyspace)
        .is_some_and(|k| k.vschema.sharded);
    let mut out = vec![(0u64, 0u64); p.shards.len()];
    let mut per_ps: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (ls, e) in p.shards.iter().enumerate() {
        per_ps.entry(e.ps.as_str()).or_default().push(ls);
    }
    for (ps, lss) in per_ps {
        let rec = snap
            .shards
            .get(ps)
            .ok_or_else(|| anyhow!("physical shard {ps} is not registered"))?;
        let opts = tessera_router::backend::opts_for(rec);
        let mut c = tessera_shardmove::login(|| mysql_async::Conn::new(opts.clone()))
            .await
            .with_context(|| format!("connecting to {ps} ({})", rec.address()))?;
        let rows: Vec<(String, u64, u64)> = c
            .exec(
                "SELECT TABLE_SCHEMA, CAST(COALESCE(SUM(TABLE_ROWS), 0) AS UNSIGNED), \
                 CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE ? \
                 AND TABLE_NAME NOT LIKE '\\_tessera\\_%' GROUP BY TABLE_SCHEMA",
                (format!("{keyspace}%"),),
            )
            .await?;
        for (schema, r, b) in rows {
            for &ls in &lss {
                if schema == tessera_topo::records::ls_schema(keyspace, sharded, ls as u32) {
                    out[ls] = (r, b);
                }
            }
        }
        let _ = c.disconnect().await;
    }
    Ok(out)
}

async fn plan(
    topo: &Topo,
    keyspace: &str,
    balance: Option<&str>,
    max_extra: usize,
) -> anyhow::Result<Vec<tessera_rebalancer::PlannedMove>> {
    let by_size = match balance {
        None => false,
        Some("size") => true,
        Some(other) => bail!("--balance takes `size`, got {other}"),
    };
    let sizes = measure(topo, keyspace).await.unwrap_or_default();
    let snap = topo.snapshot().await?;
    tessera_rebalancer::plan_moves(&snap, keyspace, &sizes, by_size, max_extra)
}

impl ReshardCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            ReshardCmd::Start { topo, .. }
            | ReshardCmd::Run { topo, .. }
            | ReshardCmd::Cutover { topo, .. }
            | ReshardCmd::Rollback { topo, .. }
            | ReshardCmd::Complete { topo, .. }
            | ReshardCmd::Abort { topo, .. } => Some(topo),
            ReshardCmd::Plan { .. } | ReshardCmd::Status { .. } | ReshardCmd::Verify { .. } => None,
        }
    }
}
