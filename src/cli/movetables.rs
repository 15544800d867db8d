//! `tessera movetables`: move tables of an unsharded keyspace (a database the router serves,
//! whoever created it) into another keyspace — sharded, or unsharded on another physical
//! shard — online, while the application keeps reading and writing them through the router.
//!
//! 1. `start` creates the tables in every schema of the target keyspace, installs the
//!    journal on the source (triggers record the key of every row written) and marks the
//!    tables `copying` in the source's vschema (still served by the source).
//! 2. `run` copies every table in primary-key chunks, each row into the logical shard its
//!    shard key maps to, draining the journal after each chunk (a row written since the
//!    chunk was read is copied again from the source, after the chunk), then verifies: per
//!    target logical shard, the row count and a sum of row digests against the source's rows
//!    bucketed the same way.
//! 3. `cutover` first catches up and verifies every row while the tables are still served;
//!    then it marks them `switching` (routers hold statements on them), fences the source
//!    tables (a write that slipped through fails with a retriable 1205), drains the journal
//!    and compares exactly the rows written since each table's verification (the keys its
//!    journal named from then on: every other row is as verified) — the hold lasts as long
//!    as those rows take, not the table (a table that would not verify while written is
//!    verified whole under the hold) — installs a journal on the target tables (for
//!    `rollback`) and marks them `moved`: routers send statements on them to the target
//!    keyspace.
//! 4. `rollback` (after `cutover`) holds them again, fences the target, copies the rows the
//!    target journalled since the cutover back to the source, and serves the source again
//!    (`copying`); `complete` drops the source tables and the journals.
//!
//! # Resuming a copy
//!
//! `run` records, per table, the primary key of the last row copied and the rows copied so
//! far in topo ([`MoveTablesProgress`](tessera_topo::MoveTablesProgress),
//! `/tessera/movetables/{source keyspace}`): at most
//! every [`CHECKPOINT_EVERY`] and when a table's last chunk is copied (then marked done). A
//! `run` that stopped (killed, a lost connection) is simply run again: each table continues
//! after its checkpoint, a table marked done is only caught up with the journal and verified.
//! `start` and `rollback` of a table clear its checkpoint (its next copy begins at the first
//! row), and so does `complete`.
//!
//! Why skipping the rows up to a checkpoint loses nothing:
//!
//! - A checkpoint is written only after the chunk it names was written to the target (each
//!   `REPLACE` commits before the checkpoint is put), so every row with a key up to the
//!   checkpoint reached the target with its value as of the moment its chunk was read; a
//!   checkpoint that lags only makes rows be copied twice, which `REPLACE` of the current row
//!   makes harmless.
//! - The journal is installed by `start`, before any row is copied, inside the writers' own
//!   transactions: every row written since then (by anyone) has a journal entry that commits
//!   with the write. So a row changed after its chunk was read has an entry that the chunk
//!   never covered.
//! - `drain` deletes only the journal entries it read (by their `_seq`, never a range: an
//!   entry of a transaction still open when the batch was read may carry a lower `_seq` and
//!   commit later), and only after the rows they name were read from the source as they are
//!   now and written to the target. A crash between the two leaves the entries in place, and
//!   the next drain copies those rows again. So an entry disappears only once its row's value
//!   at least as new as the write it records is on the target.
//! - Every `run` drains after each chunk and before verifying, and `cutover` drains to empty
//!   with the tables fenced and verifies exactly; a resumed copy therefore ends with every row
//!   as the source holds it, whatever the checkpoint was.
//!
//! This holds for one `run` at a time per source keyspace: a chunk read by one run and written
//! after another run drained a newer value of one of its rows would leave that row stale
//! without a journal entry (the verification and the cutover's exact check catch it). The
//! same goes for the one statement a killed run may have left executing on a server: its
//! rows are beyond the checkpoint (copied again by the next run) or named by journal entries
//! still there (drained again), so it is harmless unless it outlasts the next run's start and
//! its copy of those very rows, and then the checks catch it.

use super::flags::TopoFlags;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tessera_router::backend::Backends;
use tessera_router::engine::lookup::ksid_of;
use tessera_router::sql::quote_ident as qi;
use tessera_router::topology::{RoutingTable, TableRouting};
use tessera_router::vindex;
use tessera_shardmove::{
    decode_key, encode_key, install_fence, install_journal, remove_fence, remove_journal,
    table_meta, TableMeta,
};
use tessera_topo::{CopyCheckpoint, MoveState, MovedTable, Topo, TopoError};

/// Rows per backfill chunk and per journal batch.
const CHUNK: usize = 2000;
const BATCH: usize = 500;
/// Longest time between two copy checkpoints of a table.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

#[derive(Subcommand, Debug)]
pub enum MoveTablesCmd {
    /// Create the tables in the target keyspace, start journalling the source, mark them
    /// copying.
    Start {
        /// The unsharded keyspace the tables are in.
        #[arg(long)]
        from: String,
        /// The keyspace they move to (its vschema declares them).
        #[arg(long)]
        to: String,
        /// The tables, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Copy the tables being moved out of `--from`, catch up with the journal, verify. A run
    /// that stopped resumes after the rows it copied.
    Run {
        #[arg(long)]
        from: String,
        /// Copy at most this many rows a second (to spare a busy source). Default: no limit.
        #[arg(long)]
        max_rows_per_sec: Option<u64>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Switch the tables over to the target keyspace (writes wait for a moment).
    Cutover {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Switch back to the source, with the writes made since the cutover.
    Rollback {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Drop the source tables and the journals (after a cutover).
    Complete {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Show the tables of `--from` being moved or moved, and the journal backlog.
    Status {
        #[arg(long)]
        from: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

pub async fn run(c: MoveTablesCmd) -> Result<()> {
    match c {
        MoveTablesCmd::Start {
            from,
            to,
            tables,
            topo,
        } => {
            movetables_start(&topo.topo()?, &from, &to, &tables).await?;
            println!(
                "moving {} from {from} to {to}: tables created, source journalled; next: \
                 tessera movetables run --from {from}",
                tables.join(", ")
            );
        }
        MoveTablesCmd::Run {
            from,
            max_rows_per_sec,
            topo,
        } => {
            let r = movetables_run_with(
                &topo.topo()?,
                &from,
                RunOptions {
                    max_rows_per_sec: max_rows_per_sec.filter(|n| *n > 0),
                },
            )
            .await?;
            println!(
                "{} rows copied in {:.1} s ({:.0} rows/s){}, {} journal rows caught up; verified: {}",
                r.rows,
                r.seconds,
                r.rows as f64 / r.seconds.max(0.001),
                if r.resumed > 0 {
                    format!(", after {} rows an earlier run copied", r.resumed)
                } else {
                    String::new()
                },
                r.journal,
                if r.verified {
                    "equal"
                } else {
                    "not yet (writes kept changing rows between the two sides' reads; the cutover verifies exactly, with writes held)"
                }
            );
        }
        MoveTablesCmd::Cutover { from, topo } => {
            let r = movetables_cutover(&topo.topo()?, &from).await?;
            println!(
                "cut over: statements on the tables waited {} ms; they are served by the target keyspace now",
                r.stall_ms
            );
        }
        MoveTablesCmd::Rollback { from, topo } => {
            let n = movetables_rollback(&topo.topo()?, &from).await?;
            println!("rolled back: {n} rows written since the cutover copied back; the source serves the tables again");
        }
        MoveTablesCmd::Complete { from, topo } => {
            movetables_complete(&topo.topo()?, &from).await?;
            println!("completed: the source tables and the journals are dropped");
        }
        MoveTablesCmd::Status { from, topo } => {
            let t = topo.topo()?;
            let m = Mover::new(&t, &from).await?;
            let (progress, _) = t.get_movetables_progress(&from).await?;
            if m.moved.is_empty() {
                println!("no table of {from} is being moved");
            }
            for (name, mt) in &m.moved {
                // The source journal is gone after `complete`.
                let backlog = match m.backlog(name).await {
                    Ok(n) => n.to_string(),
                    Err(_) => "-".into(),
                };
                println!(
                    "{from}.{name} -> {}: {}, {}, journal backlog {backlog}",
                    mt.to,
                    state_name(mt.state),
                    copy_progress(progress.tables.get(name).filter(|c| c.to == mt.to))
                );
            }
            m.backends.disconnect_all().await;
        }
    }
    Ok(())
}

/// A move state as `movetables status` shows it.
fn state_name(s: MoveState) -> &'static str {
    match s {
        MoveState::Copying => "copying",
        MoveState::Switching => "switching",
        MoveState::Moved => "moved",
    }
}

/// A table's copy checkpoint, described.
fn copy_progress(cp: Option<&CopyCheckpoint>) -> String {
    let Some(cp) = cp else {
        return "copy not started".into();
    };
    let ago = now_ms().saturating_sub(cp.updated_ms) / 1000;
    if cp.done {
        format!("copy done ({} rows, {ago} s ago)", cp.rows_copied)
    } else {
        format!(
            "copied {}/~{} rows (checkpoint {ago} s ago; a run resumes after it)",
            cp.rows_copied, cp.rows_total
        )
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What `run` did.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Rows this run copied.
    pub rows: u64,
    /// Rows earlier runs had copied (per their checkpoints), not copied again.
    pub resumed: u64,
    pub journal: u64,
    pub seconds: f64,
    pub verified: bool,
}

/// What `cutover` did.
#[derive(Debug, Default, Clone)]
pub struct CutoverReport {
    /// From holding statements on the tables to serving them from the target.
    pub stall_ms: u64,
}

/// One move's view of the topology and the servers.
struct Mover {
    topo: Topo,
    from: String,
    rt: RoutingTable,
    backends: Backends,
    moved: BTreeMap<String, MovedTable>,
    /// The keyspace's movetables lock, for the commands that change its move.
    lock: Option<tessera_topo::TopoLock>,
}

/// A table's place in the target keyspace: each logical shard's physical shard and schema,
/// and how a row's shard key picks one.
struct Target {
    places: Vec<(String, String)>,
    by: By,
}

/// How a target's rows are placed.
#[derive(Clone, Copy)]
enum By {
    /// An unsharded target: one place.
    One,
    /// A sharded target: the position of the shard key among the table's columns, its vindex
    /// and type pick each row's logical shard (place).
    Key(usize, tessera_topo::VindexKind, tessera_topo::KeyType),
    /// A reference table: every place (the reference schema on each physical shard of the
    /// keyspace) holds every row.
    Every,
}

impl Target {
    /// The place of `row` (0 where there is one place, and for a reference table, whose rows
    /// are in every place).
    fn ls_of(&self, row: &[Value]) -> Result<usize> {
        let By::Key(at, v, ty) = self.by else {
            return Ok(0);
        };
        let key = row
            .get(at)
            .ok_or_else(|| anyhow!("a row without its shard key"))?;
        let k = ksid_of(v, ty, key)
            .ok_or_else(|| anyhow!("a row's shard key {key:?} maps to no logical shard"))?;
        Ok(vindex::logical_shard(k, self.places.len() as u32) as usize)
    }
}

impl Mover {
    async fn new(topo: &Topo, from: &str) -> Result<Mover> {
        let snap = topo.snapshot().await?;
        let rt = RoutingTable::from_snapshot(&snap);
        let ks = snap
            .keyspaces
            .get(from)
            .ok_or_else(|| anyhow!("no keyspace {from}"))?;
        if ks.vschema.sharded {
            bail!("{from} is sharded; movetables moves tables out of an unsharded keyspace");
        }
        Ok(Mover {
            topo: topo.clone(),
            from: from.to_string(),
            rt,
            backends: Backends::new(Default::default()),
            moved: ks.vschema.moved_tables.clone(),
            lock: None,
        })
    }

    /// [`Mover::new`] for a command that changes the move: one such command runs at a time
    /// per source keyspace (two copies at once could leave a row stale on the target).
    async fn locked(topo: &Topo, from: &str) -> Result<Mover> {
        let holder = format!("{} (pid {})", super::audit::who(), std::process::id());
        let lock = topo
            .lock(&format!("movetables/{from}"), &holder)
            .await
            .context("another tessera movetables command on this keyspace is running")?;
        // Read after the lock: what the previous holder left is what this one sees.
        let mut m = Mover::new(topo, from).await?;
        m.lock = Some(lock);
        Ok(m)
    }

    /// Closes the connections and gives the lock up.
    async fn finish(&mut self) {
        self.backends.disconnect_all().await;
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
    }

    async fn conn(&self, ps: &str) -> Result<Conn> {
        let pool = self
            .backends
            .pool_for(&self.rt, ps, true)
            .map_err(|e| anyhow!(e.message))?;
        let mut c = pool.get_conn().await.map_err(|e| anyhow!(e.message))?;
        c.query_drop(tessera_shardmove::COPY_SESSION).await?;
        Ok(c)
    }

    /// The source's physical shard and schema.
    fn source(&self) -> Result<(String, String)> {
        let ks = self
            .rt
            .keyspace(&self.from)
            .ok_or_else(|| anyhow!("no keyspace {}", self.from))?;
        let ps = ks
            .placement
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("keyspace {} has no placement", self.from))?;
        Ok((ps, ks.schema(0)))
    }

    async fn source_conn(&self) -> Result<(Conn, String)> {
        let (ps, schema) = self.source()?;
        Ok((self.conn(&ps).await?, schema))
    }

    fn target(&self, table: &str, meta: &TableMeta) -> Result<Target> {
        let to = &self
            .moved
            .get(table)
            .ok_or_else(|| anyhow!("{table} is not being moved"))?
            .to;
        target_of(&self.rt, to, table, meta)
    }

    async fn meta(&self, table: &str) -> Result<TableMeta> {
        let (mut c, schema) = self.source_conn().await?;
        table_meta(&mut c, &schema, table).await
    }

    async fn set_state(
        &mut self,
        tables: &[String],
        state: Option<MoveState>,
        to: &str,
    ) -> Result<()> {
        let (rec, _) = self
            .topo
            .get_keyspace(&self.from)
            .await?
            .ok_or_else(|| anyhow!("no keyspace {}", self.from))?;
        let mut v = rec.vschema.clone();
        for t in tables {
            match state {
                Some(state) => {
                    v.moved_tables.insert(
                        t.clone(),
                        MovedTable {
                            to: to.to_string(),
                            state,
                        },
                    );
                }
                None => {
                    v.moved_tables.remove(t);
                }
            }
        }
        self.topo.apply_vschema(&v).await?;
        self.moved = v.moved_tables;
        Ok(())
    }

    /// The tables in `state`, with where they go.
    fn in_state(&self, state: MoveState) -> Vec<(String, String)> {
        self.moved
            .iter()
            .filter(|(_, m)| m.state == state)
            .map(|(t, m)| (t.clone(), m.to.clone()))
            .collect()
    }

    /// Records the copy checkpoint of `table` (re-reading the record, so that a concurrent
    /// `start` or `rollback` of another table keeps its change).
    async fn save_checkpoint(&self, table: &str, cp: &CopyCheckpoint) -> Result<()> {
        for attempt in 0.. {
            let (mut p, rev) = self.topo.get_movetables_progress(&self.from).await?;
            p.tables.insert(table.to_string(), cp.clone());
            match self.topo.put_movetables_progress(&p, rev).await {
                Ok(_) => return Ok(()),
                Err(TopoError::Conflict { .. }) if attempt < 5 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes the copy checkpoints of `tables` (their next copy starts at the first row).
    async fn clear_checkpoints(&self, tables: &[String]) -> Result<()> {
        for attempt in 0.. {
            let (mut p, rev) = self.topo.get_movetables_progress(&self.from).await?;
            if !tables.iter().any(|t| p.tables.contains_key(t)) {
                return Ok(());
            }
            p.tables.retain(|t, _| !tables.contains(t));
            match self.topo.put_movetables_progress(&p, rev).await {
                Ok(_) => return Ok(()),
                Err(TopoError::Conflict { .. }) if attempt < 5 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn backlog(&self, table: &str) -> Result<u64> {
        let (mut c, schema) = self.source_conn().await?;
        let meta = table_meta(&mut c, &schema, table).await?;
        tessera_shardmove::journal_backlog(&mut c, &schema, &[meta]).await
    }
}

/// The place of `table` in keyspace `to`.
fn target_of(rt: &RoutingTable, to: &str, table: &str, meta: &TableMeta) -> Result<Target> {
    let ks = rt.keyspace(to).ok_or_else(|| anyhow!("no keyspace {to}"))?;
    let places: Vec<(String, String)> = ks
        .placement
        .iter()
        .enumerate()
        .map(|(ls, ps)| (ps.clone(), ks.schema(ls as u32)))
        .collect();
    if places.is_empty() {
        bail!("keyspace {to} has no placement");
    }
    let by = match ks.table(table) {
        Some(TableRouting::Sharded {
            shard_key,
            vindex,
            key_type,
            ..
        }) => {
            let at = meta
                .columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(&shard_key))
                .ok_or_else(|| {
                    anyhow!("{table} has no column {shard_key} (its shard key in {to})")
                })?;
            By::Key(at, vindex, key_type)
        }
        Some(TableRouting::Unsharded) => By::One,
        Some(TableRouting::Reference) => {
            // A copy in the reference schema of every physical shard of the keyspace.
            let places: Vec<(String, String)> = ks
                .physical_shards()
                .into_iter()
                .map(|ps| (ps, ks.reference_schema()))
                .collect();
            return Ok(Target {
                places,
                by: By::Every,
            });
        }
        None => bail!("keyspace {to} does not declare table {table}: add it to its vschema first"),
    };
    Ok(Target { places, by })
}

/// Deletes the rows with `keys` (primary keys) from `schema.table` on `c`.
async fn delete_keys(c: &mut Conn, schema: &str, t: &TableMeta, keys: &[Vec<Value>]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    c.exec_drop(
        format!(
            "DELETE FROM {}.{} WHERE {}",
            qi(schema),
            qi(&t.name),
            t.pk_in(keys.len())
        ),
        keys.iter().flatten().cloned().collect::<Vec<Value>>(),
    )
    .await?;
    Ok(())
}

/// Reads the rows with `keys` from `schema.table` on `c`.
async fn rows_of(
    c: &mut Conn,
    schema: &str,
    t: &TableMeta,
    keys: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = c
        .exec(
            format!(
                "SELECT {} FROM {}.{} WHERE {}",
                t.cols_sql(),
                qi(schema),
                qi(&t.name),
                t.pk_in(keys.len())
            ),
            keys.iter().flatten().cloned().collect::<Vec<Value>>(),
        )
        .await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// Connections to every physical shard of `target`, by name.
async fn target_conns(m: &Mover, target: &Target) -> Result<BTreeMap<String, Conn>> {
    let mut out = BTreeMap::new();
    for (ps, _) in &target.places {
        if !out.contains_key(ps) {
            out.insert(ps.clone(), m.conn(ps).await?);
        }
    }
    Ok(out)
}

/// Writes `rows` (read from the source) into their logical shards of `target`, first
/// deleting `keys` (the rows' keys, and those of rows gone) everywhere, so that a row whose
/// shard key changed leaves no copy behind.
async fn apply_rows(
    conns: &mut BTreeMap<String, Conn>,
    target: &Target,
    t: &TableMeta,
    keys: &[Vec<Value>],
    rows: Vec<Vec<Value>>,
    delete_first: bool,
) -> Result<()> {
    let mut per: BTreeMap<usize, Vec<Vec<Value>>> = BTreeMap::new();
    if let By::Every = target.by {
        for ls in 0..target.places.len() {
            per.insert(ls, rows.clone());
        }
    } else {
        for r in rows {
            per.entry(target.ls_of(&r)?).or_default().push(r);
        }
    }
    if let Some((ps, _)) = target.places.iter().find(|(ps, _)| !conns.contains_key(ps)) {
        bail!("no connection to {ps}");
    }
    // Each physical shard's logical shards in turn, the physical shards at once.
    let per = &per;
    let work = conns.iter_mut().map(|(ps, c)| async move {
        for (ls, (_, schema)) in target
            .places
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p == ps)
        {
            if delete_first {
                delete_keys(c, schema, t, keys).await?;
            }
            if let Some(rows) = per.get(&ls) {
                tessera_shardmove::write_rows(c, schema, t, rows).await?;
            }
        }
        Ok::<(), anyhow::Error>(())
    });
    futures_util::future::try_join_all(work).await?;
    Ok(())
}

/// Copies the rows the source journal lists (as they are now) to the target, and removes
/// those journal rows. Returns how many journal rows it consumed.
async fn drain(
    src: &mut Conn,
    schema: &str,
    conns: &mut BTreeMap<String, Conn>,
    target: &Target,
    t: &TableMeta,
) -> Result<u64> {
    drain_into(src, schema, conns, target, t, None).await
}

/// [`drain`], adding the keys of the rows it copies to `touched` (by their key string).
async fn drain_into(
    src: &mut Conn,
    schema: &str,
    conns: &mut BTreeMap<String, Conn>,
    target: &Target,
    t: &TableMeta,
    mut touched: Option<&mut BTreeMap<String, Vec<Value>>>,
) -> Result<u64> {
    let mut n = 0;
    loop {
        let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
        let got: Vec<Row> = src
            .query(format!(
                "SELECT `_seq`, {} FROM {}.{} ORDER BY `_seq` LIMIT {BATCH}",
                pk.join(", "),
                qi(schema),
                qi(&t.journal())
            ))
            .await?;
        if got.is_empty() {
            return Ok(n);
        }
        let full = got.len();
        let (seqs, keys) = journal_batch(got);
        n += seqs.len() as u64;
        // The rows first, then their entries: an entry is gone only once its row is copied.
        let rows = rows_of(src, schema, t, &keys).await?;
        apply_rows(conns, target, t, &keys, rows, true).await?;
        delete_seqs(src, schema, t, &seqs).await?;
        if let Some(touched) = touched.as_deref_mut() {
            for k in keys {
                touched.insert(tessera_shardmove::key_string(&k), k);
            }
        }
        // Caught up (a batch that was not full): what writers add meanwhile waits for the
        // next drain, which always comes after this one (a writer faster than the drain is
        // never chased for ever).
        if full < BATCH {
            return Ok(n);
        }
    }
}

/// The rows of `keys` on the source and on the target, compared exactly: the same values,
/// each on the logical shard its shard key names, none missing or extra. Returns what differs.
async fn compare_keys(
    src: &mut Conn,
    schema: &str,
    conns: &mut BTreeMap<String, Conn>,
    target: &Target,
    t: &TableMeta,
    keys: &[Vec<Value>],
) -> Result<Vec<String>> {
    use tessera_shardmove::key_string;
    let mut diffs = Vec::new();
    for chunk in keys.chunks(1000) {
        let want: BTreeMap<String, Vec<Value>> = rows_of(src, schema, t, chunk)
            .await?
            .into_iter()
            .map(|r| (key_string(&t.key_of(&r)), r))
            .collect();
        // The places compared with the source as one: all of them, or each reference copy
        // on its own.
        let groups: Vec<Vec<usize>> = match target.by {
            By::Every => (0..target.places.len()).map(|ls| vec![ls]).collect(),
            _ => vec![(0..target.places.len()).collect()],
        };
        for group in groups {
            let on = match target.by {
                By::Every => group
                    .first()
                    .and_then(|&ls| target.places.get(ls))
                    .map(|(ps, _)| format!(" (the copy on {ps})"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let mut got: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for ls in group {
                let (ps, s) = &target.places[ls];
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                for r in rows_of(c, s, t, chunk).await? {
                    let k = key_string(&t.key_of(&r));
                    if matches!(target.by, By::Key(..)) && target.ls_of(&r)? != ls {
                        diffs.push(format!(
                            "{}: row {k} is on the wrong logical shard ({ls})",
                            t.name
                        ));
                    }
                    if got.insert(k.clone(), r).is_some() {
                        diffs.push(format!("{}: row {k} is on the target twice", t.name));
                    }
                }
            }
            for (k, w) in &want {
                match got.remove(k) {
                    Some(g) if g == *w => {}
                    Some(_) => diffs.push(format!("{}: row {k} differs{on}", t.name)),
                    None => diffs.push(format!("{}: row {k} is missing on the target{on}", t.name)),
                }
            }
            for k in got.keys() {
                diffs.push(format!(
                    "{}: row {k} is on the target{on}, not the source",
                    t.name
                ));
            }
        }
    }
    Ok(diffs)
}

/// Splits journal rows (`_seq`, then the key) into their `_seq`s and their distinct keys.
fn journal_batch(got: Vec<Row>) -> (Vec<Value>, Vec<Vec<Value>>) {
    let mut seqs = Vec::with_capacity(got.len());
    let mut seen = std::collections::HashSet::new();
    let mut keys = Vec::new();
    for r in got {
        let mut v = r.unwrap();
        if v.is_empty() {
            continue;
        }
        let key = v.split_off(1);
        seqs.extend(v);
        if seen.insert(tessera_shardmove::key_string(&key)) {
            keys.push(key);
        }
    }
    (seqs, keys)
}

/// Deletes the journal entries `seqs` of `t` in `schema`: exactly those read, never a range (an
/// entry of a transaction still open when they were read may hold a lower `_seq` and commit
/// later; its row has not been copied).
async fn delete_seqs(c: &mut Conn, schema: &str, t: &TableMeta, seqs: &[Value]) -> Result<()> {
    for batch in seqs.chunks(10_000) {
        c.exec_drop(
            format!(
                "DELETE FROM {}.{} WHERE `_seq` IN ({})",
                qi(schema),
                qi(&t.journal()),
                vec!["?"; batch.len()].join(", ")
            ),
            batch.to_vec(),
        )
        .await?;
    }
    Ok(())
}

/// The next `limit` rows of `schema.t` in primary-key order after key `after` (from the
/// start without one), as `items` (a select list).
async fn key_chunk(
    c: &mut Conn,
    schema: &str,
    t: &TableMeta,
    items: &str,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Vec<Value>>> {
    let cond = match after {
        Some(_) => format!("WHERE {} > {}", t.pk_sql(), t.tuple()),
        None => String::new(),
    };
    let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
    let rows: Vec<Row> = c
        .exec(
            format!(
                "SELECT {items} FROM {}.{} {cond} ORDER BY {} LIMIT {limit}",
                qi(schema),
                qi(&t.name),
                pk.join(", ")
            ),
            after.map(<[Value]>::to_vec).unwrap_or_default(),
        )
        .await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// A per-row digest, the same on both sides: CRC-32 of the columns (NULLs marked).
fn digest_sql(t: &TableMeta) -> String {
    let c: Vec<String> = t.columns.iter().map(|c| qi(c)).collect();
    let nulls: Vec<String> = c.iter().map(|c| format!("ISNULL({c})")).collect();
    format!(
        "CRC32(CONCAT_WS(CHAR(31), {}, CONCAT({})))",
        c.join(", "),
        nulls.join(", ")
    )
}

/// Compares the target's rows of `t` with the source's: per target logical shard, count and
/// digest sum. Returns the differences found, described.
async fn verify(m: &Mover, t: &TableMeta, target: &Target) -> Result<Vec<String>> {
    let n = target.places.len();
    // The source's count and digest per logical shard (one for every reference copy), read
    // while the target's are.
    let buckets = match target.by {
        By::Key(..) => n,
        By::One | By::Every => 1,
    };
    let source = async {
        let (mut src, schema) = m.source_conn().await?;
        let mut want = vec![(0u64, 0u128); buckets];
        let key_col = match target.by {
            By::Key(at, _, _) => qi(&t.columns[at]),
            By::One | By::Every => "NULL".into(),
        };
        let mut after: Option<Vec<Value>> = None;
        loop {
            let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
            let items = format!("{}, {key_col}, {}", pk.join(", "), digest_sql(t));
            let rows = key_chunk(&mut src, &schema, t, &items, after.as_deref(), 20_000).await?;
            let got = rows.len();
            for v in rows {
                after = Some(v[..t.pk.len()].to_vec());
                let key = &v[t.pk.len()];
                let ls = match target.by {
                    By::Key(_, vi, ty) => ksid_of(vi, ty, key)
                        .map(|k| vindex::logical_shard(k, n as u32) as usize)
                        .ok_or_else(|| {
                            anyhow!("a row's shard key {key:?} maps to no logical shard")
                        })?,
                    By::One | By::Every => 0,
                };
                let d: u64 = mysql_async::from_value_opt(v[t.pk.len() + 1].clone()).unwrap_or(0);
                want[ls].0 += 1;
                want[ls].1 += u128::from(d);
            }
            if got < 20000 {
                break;
            }
        }
        Ok::<_, anyhow::Error>(want)
    };
    // The target's, each physical shard's logical shards in turn, the physical shards at once.
    let targets = async {
        let mut conns = target_conns(m, target).await?;
        let work = conns.iter_mut().map(|(ps, c)| async move {
            let mut out = Vec::new();
            for (ls, (_, schema)) in target
                .places
                .iter()
                .enumerate()
                .filter(|(_, (p, _))| p == ps)
            {
                let got: Option<(u64, Option<String>)> = c
                    .query_first(format!(
                        "SELECT COUNT(*), CAST(SUM({}) AS CHAR) FROM {}.{}",
                        digest_sql(t),
                        qi(schema),
                        qi(&t.name)
                    ))
                    .await?;
                let (count, sum) = got.unwrap_or((0, None));
                let sum: u128 = sum.and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push((ls, (count, sum)));
            }
            Ok::<_, anyhow::Error>(out)
        });
        let per_ps = futures_util::future::try_join_all(work).await?;
        Ok::<_, anyhow::Error>(per_ps.into_iter().flatten().collect::<BTreeMap<_, _>>())
    };
    let (want, got) = tokio::join!(source, targets);
    let (want, got) = (want?, got?);
    let mut diffs = Vec::new();
    if let By::Every = target.by {
        let want = want.first().copied().unwrap_or((0, 0));
        for (ls, (ps, _)) in target.places.iter().enumerate() {
            let (count, sum) = got.get(&ls).copied().unwrap_or((0, 0));
            if (count, sum) != want {
                diffs.push(format!(
                    "{}: the copy on {ps} holds {count} rows (digest {sum}), the source {} (digest {})",
                    t.name, want.0, want.1
                ));
            }
        }
        return Ok(diffs);
    }
    for (ls, want) in want.iter().enumerate() {
        let (count, sum) = got.get(&ls).copied().unwrap_or((0, 0));
        if (count, sum) != *want {
            diffs.push(format!(
                "{}: logical shard {ls} holds {count} rows (digest {sum}), the source {} (digest {})",
                t.name, want.0, want.1
            ));
        }
    }
    Ok(diffs)
}

/// `start`: see the module doc.
///
/// # Errors
/// An unknown keyspace or table, a table the target does not declare, backend failures.
pub async fn movetables_start(topo: &Topo, from: &str, to: &str, tables: &[String]) -> Result<()> {
    let mut m = Mover::locked(topo, from).await?;
    let r = async {
        if m.rt.keyspace(to).is_none() {
            bail!("no keyspace {to}: apply its vschema (declaring the tables) first");
        }
        let (mut src, schema) = m.source_conn().await?;
        let mut metas = Vec::new();
        for t in tables {
            if let Some(mt) = m.moved.get(t) {
                if mt.state != MoveState::Copying || mt.to != to {
                    bail!("{from}.{t} is already {:?} to {}", mt.state, mt.to);
                }
            }
            let meta = table_meta(&mut src, &schema, t).await?;
            let target = target_of(&m.rt, to, t, &meta)?;
            let ddl: Option<(String, String)> = src
                .query_first(format!("SHOW CREATE TABLE {}.{}", qi(&schema), qi(t)))
                .await?;
            let (_, ddl) = ddl.ok_or_else(|| anyhow!("no definition of {schema}.{t}"))?;
            let body = ddl
                .strip_prefix("CREATE TABLE ")
                .ok_or_else(|| anyhow!("{schema}.{t} is not a plain table"))?;
            let mut conns = target_conns(&m, &target).await?;
            for (ps, s) in &target.places {
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                c.query_drop(format!("USE {}", qi(s))).await?;
                c.query_drop(format!("CREATE TABLE IF NOT EXISTS {body}"))
                    .await
                    .with_context(|| format!("creating {t} in {s}"))?;
                // Until the cutover only the copy writes there: a write that bypasses the
                // router (or reaches the target keyspace's table through it) is refused.
                install_fence(
                    c,
                    s,
                    std::slice::from_ref(&meta),
                    "a table being copied here",
                )
                .await?;
            }
            metas.push(meta);
        }
        install_journal(&mut src, &schema, &metas).await?;
        // A table started (again) is copied from its first row.
        m.clear_checkpoints(tables).await?;
        m.set_state(tables, Some(MoveState::Copying), to).await
    }
    .await;
    m.finish().await;
    r
}

/// `run`: see the module doc.
///
/// # Errors
/// Nothing copying, backend failures.
pub async fn movetables_run(topo: &Topo, from: &str) -> Result<RunReport> {
    movetables_run_with(topo, from, RunOptions::default()).await
}

/// How `run` copies.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Rows copied per second at most (`None`: as fast as the servers go).
    pub max_rows_per_sec: Option<u64>,
}

/// `run` with options: see the module doc.
///
/// # Errors
/// Nothing copying, backend failures.
pub async fn movetables_run_with(topo: &Topo, from: &str, o: RunOptions) -> Result<RunReport> {
    let mut m = Mover::locked(topo, from).await?;
    let r = run_copy(&m, &o).await;
    m.finish().await;
    r
}

async fn run_copy(m: &Mover, o: &RunOptions) -> Result<RunReport> {
    let tables = m.in_state(MoveState::Copying);
    if tables.is_empty() {
        bail!(
            "no table of {} is being copied (tessera movetables start first)",
            m.from
        );
    }
    let started = Instant::now();
    let mut report = RunReport::default();
    let tty = std::io::stderr().is_terminal();
    let (progress, _) = m.topo.get_movetables_progress(&m.from).await?;
    for (name, to) in &tables {
        // A checkpoint for another target is not this copy's.
        let mut cp = progress
            .tables
            .get(name)
            .filter(|c| &c.to == to)
            .cloned()
            .unwrap_or_else(|| CopyCheckpoint {
                to: to.clone(),
                ..Default::default()
            });
        if cp.done {
            eprintln!(
                "[backfill] {}.{name} was copied by an earlier run ({} rows): catching up and verifying",
                m.from, cp.rows_copied
            );
            report.resumed += cp.rows_copied;
            continue;
        }
        let t = m.meta(name).await?;
        let target = m.target(name, &t)?;
        let (mut src, schema) = m.source_conn().await?;
        let mut conns = target_conns(m, &target).await?;
        let total: Option<u64> = src
            .query_first(format!(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{}'",
                schema.replace('\'', "''"),
                name.replace('\'', "''")
            ))
            .await?;
        cp.rows_total = total.unwrap_or(0);
        let mut after: Option<Vec<Value>> = match &cp.after {
            Some(k) => Some(
                decode_key(k)
                    .with_context(|| format!("the copy checkpoint of {}.{name}", m.from))?,
            ),
            None => None,
        };
        if after.is_some() {
            eprintln!(
                "[backfill] {}.{name} resumed after {} rows",
                m.from, cp.rows_copied
            );
            report.resumed += cp.rows_copied;
        } else {
            cp.rows_copied = 0;
        }
        // Rows copied by this run, for its rate.
        let mut copied_now = 0u64;
        let mut last_note = Instant::now();
        let mut last_save = Instant::now();
        loop {
            let rows = key_chunk(
                &mut src,
                &schema,
                &t,
                &t.cols_sql(),
                after.as_deref(),
                CHUNK,
            )
            .await?;
            let got = rows.len();
            if let Some(last) = rows.last() {
                after = Some(t.key_of(last));
            }
            apply_rows(&mut conns, &target, &t, &[], rows, false).await?;
            copied_now += got as u64;
            cp.rows_copied += got as u64;
            // Rows written since this chunk was read are copied again, after it.
            report.journal += drain(&mut src, &schema, &mut conns, &target, &t).await?;
            let finished = got < CHUNK;
            // Only rows already written to the target are behind a checkpoint.
            if finished || last_save.elapsed() >= CHECKPOINT_EVERY {
                last_save = Instant::now();
                cp.after = after.as_deref().map(encode_key);
                cp.done = finished;
                cp.updated_ms = now_ms();
                m.save_checkpoint(name, &cp).await?;
            }
            if last_note.elapsed() >= Duration::from_secs(2) || finished {
                last_note = Instant::now();
                let shown_total = cp.rows_total.max(cp.rows_copied).max(1);
                let frac = (cp.rows_copied as f64 / shown_total as f64).min(1.0);
                let filled = (frac * 20.0) as usize;
                let line = format!(
                    "[backfill] {}.{name} [{}{}] {}/~{shown_total} rows, {:.0} rows/s",
                    m.from,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    cp.rows_copied,
                    copied_now as f64 / started.elapsed().as_secs_f64().max(0.001)
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
            if finished {
                break;
            }
            if let Some(rate) = o.max_rows_per_sec {
                let due = Duration::from_secs_f64((report.rows + copied_now) as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if tty {
            eprintln!();
        }
        report.rows += copied_now;
    }
    report.seconds = started.elapsed().as_secs_f64();
    // Verified after catching up; writes meanwhile can make a check differ: caught up and
    // checked again.
    for attempt in 0..5 {
        let mut diffs = Vec::new();
        for (name, _) in &tables {
            let t = m.meta(name).await?;
            let target = m.target(name, &t)?;
            let (mut src, schema) = m.source_conn().await?;
            let mut conns = target_conns(m, &target).await?;
            report.journal += drain(&mut src, &schema, &mut conns, &target, &t).await?;
            diffs.extend(verify(m, &t, &target).await?);
        }
        if diffs.is_empty() {
            report.verified = true;
            break;
        }
        if attempt == 4 {
            for d in diffs {
                eprintln!("differs: {d}");
            }
        }
    }
    Ok(report)
}

/// `cutover`: see the module doc.
///
/// # Errors
/// Nothing copied, a copy that does not verify (the tables stay served by the source),
/// backend failures.
pub async fn movetables_cutover(topo: &Topo, from: &str) -> Result<CutoverReport> {
    let mut m = Mover::locked(topo, from).await?;
    let r = cutover(&mut m).await;
    m.finish().await;
    r
}

async fn cutover(m: &mut Mover) -> Result<CutoverReport> {
    let tables = m.in_state(MoveState::Copying);
    let Some(to) = tables.first().map(|(_, to)| to.clone()) else {
        bail!("no table of {} is being copied", m.from);
    };
    let names: Vec<String> = tables.iter().map(|(t, _)| t.clone()).collect();
    let mut metas = Vec::new();
    for n in &names {
        metas.push(m.meta(n).await?);
    }
    // Catch up and verify every row before holding anything, so that the hold is short:
    // under it only the rows written since a table's verification (its journal's keys,
    // collected from then on) are compared, exactly. A table that does not verify while
    // it is written is verified whole under the hold.
    let mut touched: Vec<Option<BTreeMap<String, Vec<Value>>>> = vec![None; metas.len()];
    for (i, t) in metas.iter().enumerate() {
        let target = m.target(&t.name, t)?;
        for _ in 0..3 {
            let (mut src, schema) = m.source_conn().await?;
            let mut conns = target_conns(m, &target).await?;
            drain(&mut src, &schema, &mut conns, &target, t).await?;
            if verify(m, t, &target).await?.is_empty() {
                touched[i] = Some(BTreeMap::new());
                break;
            }
        }
    }
    let held = Instant::now();
    m.set_state(&names, Some(MoveState::Switching), &to).await?;
    // Routers see the hold within moments; a write already past it is stopped by the fence.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut src, schema) = m.source_conn().await?;
    install_fence(&mut src, &schema, &metas, "a table being moved").await?;
    let r = async {
        let mut diffs = Vec::new();
        for (t, touched) in metas.iter().zip(touched.iter_mut()) {
            let target = m.target(&t.name, t)?;
            let mut conns = target_conns(m, &target).await?;
            drain_into(&mut src, &schema, &mut conns, &target, t, touched.as_mut()).await?;
            match touched {
                Some(keys) => {
                    let keys: Vec<Vec<Value>> = std::mem::take(keys).into_values().collect();
                    diffs.extend(
                        compare_keys(&mut src, &schema, &mut conns, &target, t, &keys).await?,
                    );
                }
                None => diffs.extend(verify(m, t, &target).await?),
            }
        }
        if !diffs.is_empty() {
            bail!("the copy differs from the source: {}", diffs.join("; "));
        }
        // The target takes writes (its fence goes) and journals them from now on, for a
        // rollback.
        for t in &metas {
            let target = m.target(&t.name, t)?;
            let mut conns = target_conns(m, &target).await?;
            for (ps, s) in &target.places {
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                install_journal(c, s, std::slice::from_ref(t)).await?;
                remove_fence(c, s, std::slice::from_ref(t)).await?;
            }
        }
        Ok(())
    }
    .await;
    match r {
        Ok(()) => {
            m.set_state(&names, Some(MoveState::Moved), &to).await?;
            Ok(CutoverReport {
                stall_ms: held.elapsed().as_millis() as u64,
            })
        }
        Err(e) => {
            remove_fence(&mut src, &schema, &metas).await?;
            m.set_state(&names, Some(MoveState::Copying), &to).await?;
            Err(e.context("cutover abandoned; the source serves the tables again"))
        }
    }
}

/// `rollback`: see the module doc. Returns the rows copied back.
///
/// # Errors
/// Nothing cut over, backend failures (the tables are then still held: run it again).
pub async fn movetables_rollback(topo: &Topo, from: &str) -> Result<u64> {
    let mut m = Mover::locked(topo, from).await?;
    let r = rollback(&mut m).await;
    m.finish().await;
    r
}

async fn rollback(m: &mut Mover) -> Result<u64> {
    let mut tables = m.in_state(MoveState::Moved);
    tables.extend(m.in_state(MoveState::Switching));
    let Some(to) = tables.first().map(|(_, to)| to.clone()) else {
        bail!("no table of {} was cut over", m.from);
    };
    let names: Vec<String> = tables.iter().map(|(t, _)| t.clone()).collect();
    m.set_state(&names, Some(MoveState::Switching), &to).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut src, schema) = m.source_conn().await?;
    let mut copied = 0u64;
    let mut metas = Vec::new();
    for n in &names {
        let t = m.meta(n).await?;
        let target = m.target(n, &t)?;
        let mut conns = target_conns(m, &target).await?;
        for (ps, s) in &target.places {
            let c = conns
                .get_mut(ps)
                .ok_or_else(|| anyhow!("no connection to {ps}"))?;
            install_fence(c, s, std::slice::from_ref(&t), "a table moved back").await?;
        }
        // Every key the target journalled, then each row as it is now wherever it lives.
        loop {
            let mut keys: Vec<Vec<Value>> = Vec::new();
            let mut seen: Vec<(String, String, Vec<Value>)> = Vec::new();
            let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
            for (ps, s) in &target.places {
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                let got: Vec<Row> = c
                    .query(format!(
                        "SELECT `_seq`, {} FROM {}.{} ORDER BY `_seq` LIMIT {BATCH}",
                        pk.join(", "),
                        qi(s),
                        qi(&t.journal())
                    ))
                    .await?;
                let (seqs, got_keys) = journal_batch(got);
                for key in got_keys {
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                if !seqs.is_empty() {
                    seen.push((ps.clone(), s.clone(), seqs));
                }
            }
            if keys.is_empty() {
                break;
            }
            let mut rows = Vec::new();
            for (ps, s) in &target.places {
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                rows.extend(rows_of(c, s, &t, &keys).await?);
            }
            delete_keys(&mut src, &schema, &t, &keys).await?;
            tessera_shardmove::write_rows(&mut src, &schema, &t, &rows).await?;
            copied += keys.len() as u64;
            for (ps, s, seqs) in seen {
                let c = conns
                    .get_mut(&ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                delete_seqs(c, &s, &t, &seqs).await?;
            }
        }
        for (ps, s) in &target.places {
            let c = conns
                .get_mut(ps)
                .ok_or_else(|| anyhow!("no connection to {ps}"))?;
            // Copying again: the target stays fenced, as after `start`.
            remove_journal(c, s, std::slice::from_ref(&t)).await?;
        }
        metas.push(t);
    }
    remove_fence(&mut src, &schema, &metas).await?;
    // A later `run` copies them again from the first row.
    m.clear_checkpoints(&names).await?;
    m.set_state(&names, Some(MoveState::Copying), &to).await?;
    Ok(copied)
}

/// `complete`: see the module doc.
///
/// # Errors
/// Nothing cut over, backend failures.
pub async fn movetables_complete(topo: &Topo, from: &str) -> Result<()> {
    let mut m = Mover::locked(topo, from).await?;
    let r = async {
        let tables = m.in_state(MoveState::Moved);
        if tables.is_empty() {
            bail!("no table of {} was cut over", m.from);
        }
        let (mut src, schema) = m.source_conn().await?;
        for (name, _) in &tables {
            let t = m.meta(name).await?;
            let target = m.target(name, &t)?;
            let mut conns = target_conns(&m, &target).await?;
            for (ps, s) in &target.places {
                let c = conns
                    .get_mut(ps)
                    .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                remove_journal(c, s, std::slice::from_ref(&t)).await?;
            }
            remove_journal(&mut src, &schema, std::slice::from_ref(&t)).await?;
            remove_fence(&mut src, &schema, std::slice::from_ref(&t)).await?;
            src.query_drop(format!("DROP TABLE IF EXISTS {}.{}", qi(&schema), qi(name)))
                .await?;
        }
        let names: Vec<String> = tables.into_iter().map(|(t, _)| t).collect();
        m.clear_checkpoints(&names).await
    }
    .await;
    m.finish().await;
    r
}

impl MoveTablesCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            MoveTablesCmd::Start { topo, .. }
            | MoveTablesCmd::Run { topo, .. }
            | MoveTablesCmd::Cutover { topo, .. }
            | MoveTablesCmd::Rollback { topo, .. }
            | MoveTablesCmd::Complete { topo, .. } => Some(topo),
            MoveTablesCmd::Status { .. } => None,
        }
    }
}
