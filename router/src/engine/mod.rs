//! The executor: runs a [`Plan`] on backend connections and streams the answer to the
//! client.
//!
//! - One target: the backend's rows are re-framed and written as they arrive; memory stays
//!   flat whatever the result size. Outside a transaction this runs on the router's own
//!   backend connections ([`crate::backend::wire`]), which hand row packets on undecoded.
//! - Several targets: one task per physical shard (its logical shards' selects joined with
//!   `UNION ALL` into one round trip where the shape allows), rows interleaved as they come,
//!   `LIMIT`/`OFFSET` applied in the router.
//! - Writes over several physical shards run concurrently; a partial failure is reported with
//!   the shards that committed.

mod crossjoin;
pub mod merge;
mod moverows;
mod results;

use crate::backend::error::from_backend;
use crate::backend::Backends;
use crate::error::{io_err, SqlError};
use crate::mysql::resultset::{self, ColumnDef};
use crate::mysql::PacketIo;
use crate::planner::{Exec, Local, Plan, StmtKind, Targets};
use crate::session::Session;
use crate::sql::quote_ident;
use crate::topology::{KeyspaceRouting, RoutingTable, TopologyCache, Unqualify};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use results::{write_columns, write_end, write_row, ResultWriter};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use results::column_def;

/// Rows buffered per physical shard while a scatter read streams.
const SCATTER_CHANNEL: usize = 256;

/// Runs plans. Shared by every connection of a router.
pub struct Engine {
    pub topo: Arc<TopologyCache>,
    pub backends: Arc<Backends>,
    /// Blocks of ids taken from sequences: `(keyspace, table) -> [next, end)`.
    pub sequences: tokio::sync::Mutex<std::collections::HashMap<(String, String), (u64, u64)>>,
    /// Dual-writes of moving logical shards.
    moves: crate::moves::Moves,
    /// Bound on each lock wait of a transaction spanning physical shards (s; 0: none).
    multi_shard_lock_wait_s: u64,
    /// Unique keys of sharded tables, for writes that resolve conflicts on them.
    unique_keys: crate::unique_keys::UniqueKeyCache,
}

impl Engine {
    pub fn new(topo: Arc<TopologyCache>, backends: Arc<Backends>) -> Self {
        Engine {
            moves: crate::moves::Moves::new(topo.clone(), backends.clone()),
            multi_shard_lock_wait_s: 2,
            unique_keys: Default::default(),
            topo,
            backends,
            sequences: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Sets how long a write waits for a cutover before it fails with a retriable error, and
    /// how many writes may wait at once.
    pub fn set_cutover_hold(&mut self, hold: std::time::Duration, max_held: usize) {
        self.moves.set_hold(hold, max_held);
    }

    /// Takes `n` consecutive ids from a sequence, refilling the cached block when it runs out:
    /// one short transaction on the sequence's keyspace moves `next_id` on by `max(n, cache)`.
    ///
    /// # Errors
    /// 1105 when the sequence is missing or its physical shard is down.
    pub async fn take_ids(&self, keyspace: &str, table: &str, n: u64) -> Result<u64, SqlError> {
        let mut cache = self.sequences.lock().await;
        let entry = cache
            .entry((keyspace.to_string(), table.to_string()))
            .or_insert((0, 0));
        if entry.1.saturating_sub(entry.0) >= n {
            let first = entry.0;
            entry.0 += n;
            return Ok(first);
        }
        let rt = self.topo.table();
        let ks = rt.keyspace(keyspace).ok_or_else(|| {
            SqlError::router(format!("sequence keyspace {keyspace} does not exist"))
        })?;
        let ps = ks
            .placement
            .first()
            .ok_or_else(|| SqlError::router("sequence keyspace without placement"))?;
        let rec = rt
            .shards
            .get(ps)
            .ok_or_else(|| SqlError::router(format!("physical shard {ps} is not registered")))?;
        let pool = self.backends.pool(rec);
        let mut conn = pool.get_conn().await?;
        let name = format!("{}.{}", quote_ident(&ks.schema(0)), quote_ident(table));
        let map = |e: mysql_async::Error| {
            SqlError::shard(
                &pool.name,
                &pool.addr,
                format!("sequence {keyspace}.{table}: {e}"),
            )
        };
        conn.query_drop("START TRANSACTION").await.map_err(map)?;
        let row: Option<(u64, u64)> = conn
            .query_first(format!(
                "SELECT next_id, cache FROM {name} WHERE id = 0 FOR UPDATE"
            ))
            .await
            .map_err(map)?;
        let Some((next, cache_size)) = row else {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(SqlError::router(format!(
                "sequence {keyspace}.{table} has no row with id = 0; create it with INSERT INTO {keyspace}.{table} (id, next_id, cache) VALUES (0, 1, 1000)"
            )));
        };
        let take = n.max(cache_size).max(1);
        conn.query_drop(format!(
            "UPDATE {name} SET next_id = next_id + {take} WHERE id = 0"
        ))
        .await
        .map_err(map)?;
        conn.query_drop("COMMIT").await.map_err(map)?;
        *entry = (next + n, next + take);
        Ok(next)
    }
}

/// A backend connection borrowed for one statement.
struct Lease {
    ps: String,
    conn: Conn,
    /// Pinned by the session's transaction: goes back to the session, not the pool.
    pinned: bool,
    /// Session `SET`s were replayed on it: reset before it returns to the pool.
    dirty: bool,
}

/// What a write did.
#[derive(Default)]
struct WriteResult {
    affected: u64,
    last_insert_id: u64,
    warnings: u16,
    info: String,
}

impl Engine {
    /// Executes `plan` for `session`, writing the whole response (result set or OK) to `io`.
    ///
    /// # Errors
    /// A [`SqlError`] to send as an ERR packet (valid before or in place of a row).
    pub async fn execute(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        self.execute_planned(session, plan, io, None).await
    }

    /// [`Engine::execute`] for a plan made with routing table `planned_with`: a read runs
    /// with that same table (writes take the newest, after waiting out a cutover).
    ///
    /// # Errors
    /// Like [`Engine::execute`].
    pub async fn execute_planned(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
        planned_with: Option<&Arc<RoutingTable>>,
    ) -> Result<(), SqlError> {
        match plan {
            // Boxed, like the other paths off the single-shard one below: a statement's
            // future is as large as its largest branch, and it is moved on every call.
            Plan::Local(l) => Box::pin(self.local(session, l, io)).await,
            Plan::Exec(e) => {
                if let (Some(c), Some(ks)) = (&e.conflict, &e.keyspace) {
                    let rt = self.topo.table();
                    Box::pin(self.unique_keys.check(&self.backends, &rt, ks, c)).await?;
                }
                // Writes to a logical shard being cut over wait here for the flip.
                let written = self.moves.guard(session, &e).await?;
                if !written.is_empty() {
                    if session.in_transaction() {
                        session.txn_ls.extend(written);
                    } else {
                        session.copy_after = written;
                    }
                }
                let fresh;
                let rt = match planned_with {
                    Some(rt) if e.kind == StmtKind::Read => rt,
                    _ => {
                        fresh = self.topo.table();
                        &fresh
                    }
                };
                let ddl_in = (e.kind == StmtKind::Ddl)
                    .then(|| e.keyspace.clone())
                    .flatten();
                let r = self.exec(session, rt, *e, io).await;
                session.copy_after.clear();
                if let Some(ks) = ddl_in {
                    self.unique_keys.forget_keyspace(&ks);
                }
                r
            }
        }
    }

    async fn ok(
        &self,
        session: &mut Session,
        io: &mut PacketIo,
        affected: u64,
        last_id: u64,
        warnings: u16,
        info: &str,
    ) -> Result<(), SqlError> {
        // An autocommit write to a moving logical shard is copied before it is acknowledged.
        if !session.copy_after.is_empty() {
            let lss = std::mem::take(&mut session.copy_after);
            Box::pin(self.moves.copy(&lss)).await;
        }
        io.rows = affected;
        let last_id = session.insert_id_override.unwrap_or(last_id);
        let p = resultset::ok(
            affected,
            last_id,
            session.status_flags(),
            warnings,
            info,
            false,
        );
        io.write_packet(&p).await.map_err(io_err)
    }

    async fn local(
        &self,
        session: &mut Session,
        l: Local,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        match l {
            Local::MoveRows(m) => self.move_rows(session, *m, io).await,
            Local::CrossJoin(j) => self.cross_join(session, *j, io).await,
            Local::Sequence(s) => {
                let n = s.row_ends.len() as u64;
                let first = self.take_ids(&s.keyspace, &s.table, n).await?;
                let ids: Vec<u64> = (first..first + n).collect();
                let sql = s.with_ids(&ids)?;
                let rt = self.topo.table();
                let plan = crate::planner::plan_session(
                    &sql,
                    session.keyspace.as_deref(),
                    session.last_insert_id,
                    &rt,
                )?;
                if matches!(plan, Plan::Local(_)) {
                    return Err(SqlError::router(
                        "the INSERT still needs ids after they were written in",
                    ));
                }
                session.insert_id_override = Some(first);
                let r = Box::pin(self.execute(session, plan, io)).await;
                session.insert_id_override = None;
                if r.is_ok() {
                    session.last_insert_id = first;
                }
                r
            }
            Local::Use(ks) => {
                let rt = self.topo.table();
                if rt.keyspace(&ks).is_none() {
                    return Err(SqlError::unknown_database(&ks));
                }
                session.keyspace = Some(ks);
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Begin => {
                self.finish_txn(session, true).await?;
                session.explicit_txn = true;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Commit => {
                self.finish_txn(session, true).await?;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Rollback => {
                self.finish_txn(session, false).await?;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::SetAutocommit(on) => {
                if on && !session.autocommit {
                    // Turning autocommit on commits the open transaction, as MySQL does.
                    self.finish_txn(session, true).await?;
                }
                session.autocommit = on;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Set(sql) => {
                // Check it on a backend first so a bad SET fails now, not on a later query.
                let rt = self.topo.table();
                let mut lease = self.any_conn(session, &rt).await?;
                let r = lease.conn.query_drop(sql.as_str()).await;
                lease.dirty = true;
                self.give_back(session, lease).await;
                r.map_err(|e| from_backend(e, "any", "", Unqualify(None)))?;
                // Pinned connections of an open transaction get it at once.
                for c in session.txn_conns.values_mut() {
                    c.query_drop(sql.as_str())
                        .await
                        .map_err(|e| from_backend(e, "pinned", "", Unqualify(None)))?;
                }
                session.sets.push(sql);
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::ShowDatabases => {
                let rt = self.topo.table();
                let mut names: Vec<String> = rt.keyspaces.keys().cloned().collect();
                names.push("information_schema".into());
                names.sort();
                let rows: Vec<Vec<Option<Vec<u8>>>> = names
                    .into_iter()
                    .map(|n| vec![Some(n.into_bytes())])
                    .collect();
                self.local_result(session, io, vec![ColumnDef::text("Database")], rows)
                    .await
            }
            Local::ShowTables { keyspace, full } => {
                let rt = self.topo.table();
                let ks = rt
                    .keyspace(&keyspace)
                    .ok_or_else(|| SqlError::unknown_database(&keyspace))?;
                let mut schemas = vec![ks.schema(0)];
                if ks.sharded {
                    schemas.push(ks.reference_schema());
                }
                let list = schemas
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                let sql = format!(
                    "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema IN ({list}) ORDER BY table_name"
                );
                let ps = ks
                    .placement
                    .first()
                    .cloned()
                    .ok_or_else(|| SqlError::router("keyspace without placement"))?;
                let mut lease = self.conn(session, &rt, &ps).await?;
                let r: Result<Vec<(String, String)>, _> = lease.conn.query(sql).await;
                self.give_back(session, lease).await;
                let pool_addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
                let names = r.map_err(|e| from_backend(e, &ps, &pool_addr, Unqualify(None)))?;
                let mut cols = vec![ColumnDef::text(&format!("Tables_in_{keyspace}"))];
                if full {
                    cols.push(ColumnDef::text("Table_type"));
                }
                let rows = names
                    .into_iter()
                    .map(|(n, t)| {
                        let mut r = vec![Some(n.into_bytes())];
                        if full {
                            r.push(Some(t.into_bytes()));
                        }
                        r
                    })
                    .collect();
                self.local_result(session, io, cols, rows).await
            }
        }
    }

    /// Answers COM_FIELD_LIST from a `SELECT * … LIMIT 0` plan: the column definitions of
    /// the table on its first logical shard, then the end marker.
    ///
    /// # Errors
    /// Backend and planning errors.
    pub async fn field_list(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let Plan::Exec(e) = plan else {
            return Err(SqlError::router("not a table"));
        };
        let rt = self.topo.table();
        let ks = e
            .keyspace
            .as_deref()
            .and_then(|k| rt.keyspace(k))
            .ok_or_else(SqlError::no_database)?;
        let (ps, sql) = match &e.targets {
            Targets::Ls { template, ls } => {
                let l = ls.first().copied().unwrap_or(0);
                let ps = ks
                    .placement
                    .get(l as usize)
                    .cloned()
                    .ok_or_else(|| SqlError::router("no placement"))?;
                (ps, ks.fill(template, l).into_owned())
            }
            Targets::Reference { sql } => (
                ks.physical_shards()
                    .into_iter()
                    .next()
                    .ok_or_else(|| SqlError::router("no placement"))?,
                sql.clone(),
            ),
            _ => return Err(SqlError::router("not a table")),
        };
        let mut lease = self.conn(session, &rt, &ps).await?;
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        let unq = Unqualify(Some(ks));
        let r = async {
            let res = lease
                .conn
                .query_iter(sql.as_str())
                .await
                .map_err(|e| from_backend(e, &ps, &addr, unq))?;
            let defs: Vec<ColumnDef> = res
                .columns()
                .map(|c| c.iter().map(|c| column_def(c, unq)).collect())
                .unwrap_or_default();
            res.drop_result()
                .await
                .map_err(|e| from_backend(e, &ps, &addr, unq))?;
            Ok::<_, SqlError>(defs)
        }
        .await;
        self.give_back(session, lease).await;
        let mut p = Vec::new();
        for d in r? {
            p.clear();
            d.encode(&mut p);
            // COM_FIELD_LIST definitions carry a (here empty) default value.
            p.push(0xfb);
            io.write_packet(&p).await.map_err(io_err)?;
        }
        write_end(io, session).await
    }

    /// Describes a statement being prepared: its result columns and parameter count, as the
    /// first logical shard's MariaDB prepares it.
    ///
    /// # Errors
    /// The backend's error (e.g. a syntax or unknown-column error) for the statement.
    pub async fn describe(
        &self,
        session: &mut Session,
        sql: &str,
    ) -> Result<(Vec<ColumnDef>, u16), SqlError> {
        let rt = self.topo.table();
        let Some((backend_sql, ks)) =
            crate::planner::describe_target(sql, session.keyspace.as_deref(), &rt)?
        else {
            return Ok((Vec::new(), 0));
        };
        let k = ks.as_deref().and_then(|k| rt.keyspace(k));
        let mut lease = match k.and_then(|k| k.placement.first()) {
            Some(ps) => self.conn(session, &rt, ps).await?,
            None => self.any_conn(session, &rt).await?,
        };
        let addr = rt
            .shards
            .get(&lease.ps)
            .map(|s| s.address())
            .unwrap_or_default();
        let ps = lease.ps.clone();
        let unq = Unqualify(k);
        let r = async {
            let stmt = lease
                .conn
                .prep(backend_sql.as_str())
                .await
                .map_err(|e| from_backend(e, &ps, &addr, unq))?;
            let defs: Vec<ColumnDef> = stmt.columns().iter().map(|c| column_def(c, unq)).collect();
            let n = stmt.num_params();
            lease
                .conn
                .close(stmt)
                .await
                .map_err(|e| from_backend(e, &ps, &addr, unq))?;
            Ok::<_, SqlError>((defs, n))
        }
        .await;
        self.give_back(session, lease).await;
        r
    }

    /// Answers `VEXPLAIN <statement>`: where the statement would run — one row per
    /// logical shard (or physical shard, for reference tables) with the SQL sent there.
    ///
    /// # Errors
    /// Planning errors of the statement.
    pub async fn vexplain(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let rt = self.topo.table();
        let cols = vec![
            ColumnDef::text("route"),
            ColumnDef::text("logical_shard"),
            ColumnDef::text("physical_shard"),
            ColumnDef::text("query"),
        ];
        let mut rows: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
        let txt = |s: &str| Some(s.as_bytes().to_vec());
        match plan {
            Plan::Local(l) => rows.push(vec![txt("local"), None, None, txt(&format!("{l:?}"))]),
            Plan::Exec(e) => {
                let route = e.route.as_str().to_string();
                let route = match &e.merge {
                    Some(m) => format!(
                        "{route} (merged in the router: {})",
                        match m.mode {
                            crate::planner::merge::MergeMode::Sorted { .. } => "merge-sort",
                            crate::planner::merge::MergeMode::Aggregate { .. } => "aggregate",
                        }
                    ),
                    None => route,
                };
                let ks = e.keyspace.as_deref().and_then(|k| rt.keyspace(k));
                match (&e.targets, ks) {
                    (Targets::Ls { template, ls }, Some(k)) => {
                        for l in ls {
                            let ps = k.placement.get(*l as usize).cloned().unwrap_or_default();
                            let schema = k.schema(*l);
                            rows.push(vec![
                                txt(&route),
                                txt(&schema),
                                txt(&ps),
                                txt(&k.fill(template, *l)),
                            ]);
                        }
                    }
                    (Targets::PerLs(v), Some(k)) => {
                        for (l, sql) in v {
                            let ps = k.placement.get(*l as usize).cloned().unwrap_or_default();
                            let schema = k.schema(*l);
                            rows.push(vec![
                                txt(&route),
                                txt(&schema),
                                txt(&ps),
                                txt(&k.fill(sql, *l)),
                            ]);
                        }
                    }
                    (Targets::Reference { sql }, Some(k)) => {
                        let pss = if e.kind == StmtKind::Read {
                            k.physical_shards().into_iter().take(1).collect()
                        } else {
                            k.physical_shards()
                        };
                        for ps in pss {
                            rows.push(vec![
                                txt(&route),
                                txt(&k.reference_schema()),
                                txt(&ps),
                                txt(sql),
                            ]);
                        }
                    }
                    (Targets::Any { sql }, _) => {
                        rows.push(vec![txt(&route), None, txt("any"), txt(sql)])
                    }
                    _ => return Err(SqlError::router("plan without a keyspace")),
                }
            }
        }
        self.local_result(session, io, cols, rows).await
    }

    /// Writes a result set made by the router.
    pub async fn local_result(
        &self,
        session: &Session,
        io: &mut PacketIo,
        cols: Vec<ColumnDef>,
        rows: Vec<Vec<Option<Vec<u8>>>>,
    ) -> Result<(), SqlError> {
        write_columns(io, session, &cols).await?;
        let mut buf = Vec::new();
        for r in rows {
            buf.clear();
            for v in &r {
                resultset::put_text_value(&mut buf, v.as_deref());
            }
            io.write_row(&buf).await.map_err(io_err)?;
        }
        write_end(io, session).await
    }

    /// Commits (or rolls back) the session's transaction on every pinned connection.
    ///
    /// # Errors
    /// 1105 naming which shards committed when a commit fails part way.
    pub async fn finish_txn(&self, session: &mut Session, commit: bool) -> Result<(), SqlError> {
        session.explicit_txn = false;
        let conns = std::mem::take(&mut session.txn_conns);
        let written = std::mem::take(&mut session.txn_ls);
        session.txn_ps.clear();
        let short_waits = std::mem::take(&mut session.txn_short_waits);
        let mut done = Vec::new();
        let mut failed: Option<(String, String)> = None;
        for (ps, mut c) in conns {
            let sql = if commit && failed.is_none() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            match c.query_drop(sql).await {
                Ok(()) => {
                    if sql == "COMMIT" {
                        done.push(ps.clone());
                    }
                    let dirty = !session.sets.is_empty() || short_waits.contains(&ps);
                    crate::backend::release(c, dirty).await;
                }
                Err(e) => {
                    if failed.is_none() {
                        failed = Some((ps.clone(), e.to_string()));
                    }
                }
            }
        }
        if commit && !done.is_empty() {
            // Committed writes to moving logical shards are copied before the commit is
            // acknowledged.
            let lss: Vec<(String, u32)> = written.into_iter().collect();
            self.moves.copy(&lss).await;
        }
        match failed {
            None => Ok(()),
            Some((ps, e)) if commit => Err(SqlError::router(format!(
                "transaction commit failed on physical shard {ps}: {e}; committed on: [{}]; the rest rolled back",
                done.join(", ")
            ))),
            Some((ps, e)) => Err(SqlError::router(format!("rollback failed on physical shard {ps}: {e}"))),
        }
    }

    /// Borrows a connection to `ps` for `session`: the pinned one inside a transaction
    /// (starting the transaction on first use), else one from the pool with the session's
    /// `SET`s replayed.
    async fn conn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<Lease, SqlError> {
        if session.in_transaction() {
            if let Some(mut c) = session.txn_conns.remove(ps) {
                self.bound_lock_waits(session, ps, &mut c).await?;
                return Ok(Lease {
                    ps: ps.to_string(),
                    conn: c,
                    pinned: true,
                    dirty: false,
                });
            }
        }
        let rec = rt
            .shards
            .get(ps)
            .ok_or_else(|| SqlError::router(format!("physical shard {ps} is not registered")))?;
        let pool = self.backends.pool(rec);
        let mut conn = pool.get_conn().await?;
        let dirty = !session.sets.is_empty();
        for s in &session.sets {
            conn.query_drop(s.as_str())
                .await
                .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
        }
        let pinned = session.in_transaction();
        if pinned {
            conn.query_drop("START TRANSACTION")
                .await
                .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
            session.txn_ps.insert(ps.to_string());
            self.bound_lock_waits(session, ps, &mut conn).await?;
        }
        Ok(Lease {
            ps: ps.to_string(),
            conn,
            pinned,
            dirty,
        })
    }

    /// In a transaction that spans several physical shards, bounds each lock wait on `ps` to
    /// `multi_shard_lock_wait_s`: two such transactions can wait for each other across two
    /// servers, a deadlock neither server sees, which would otherwise last the servers' full
    /// `innodb_lock_wait_timeout`. The waiting statement gets 1205 (retriable), as the
    /// statement a single server picks in a deadlock gets 1213.
    async fn bound_lock_waits(
        &self,
        session: &mut Session,
        ps: &str,
        conn: &mut Conn,
    ) -> Result<(), SqlError> {
        if self.multi_shard_lock_wait_s == 0
            || session.txn_ps.len() < 2
            || session.txn_short_waits.contains(ps)
        {
            return Ok(());
        }
        conn.query_drop(format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            self.multi_shard_lock_wait_s
        ))
        .await
        .map_err(|e| SqlError::shard(ps, "", e))?;
        session.txn_short_waits.insert(ps.to_string());
        Ok(())
    }

    /// The counters of the router's part in moves.
    pub fn move_metrics(&self) -> &crate::moves::MoveMetrics {
        &self.moves.metrics
    }

    /// Sets the bound on lock waits of transactions spanning physical shards (0: none).
    pub fn set_multi_shard_lock_wait(&mut self, seconds: u64) {
        self.multi_shard_lock_wait_s = seconds;
    }

    /// Any reachable physical shard (a pinned one first).
    async fn any_conn(&self, session: &mut Session, rt: &RoutingTable) -> Result<Lease, SqlError> {
        if let Some(ps) = session.txn_conns.keys().next().cloned() {
            return self.conn(session, rt, &ps).await;
        }
        let mut last = SqlError::router("no physical shard is registered");
        for ps in &rt.shard_names() {
            match self.conn(session, rt, ps).await {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn give_back(&self, session: &mut Session, lease: Lease) {
        if lease.pinned {
            session.txn_conns.insert(lease.ps, lease.conn);
        } else {
            crate::backend::release(lease.conn, lease.dirty).await;
        }
    }

    async fn exec(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        e: Exec,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let ks: Option<&KeyspaceRouting> = match &e.keyspace {
            Some(k) => Some(
                rt.keyspace(k)
                    .ok_or_else(|| SqlError::unknown_database(k))?,
            ),
            None => None,
        };
        // DDL commits implicitly in MySQL; do the same for the session's transaction.
        if e.kind == StmtKind::Ddl && (session.explicit_txn || !session.txn_conns.is_empty()) {
            Box::pin(self.finish_txn(session, true)).await?;
        }
        let unq = Unqualify(ks);
        // Plans one physical shard answers: straight there.
        if let Some(t) = single_target(session, rt, &e, ks)? {
            let text = WireStatement::Text(&t.sql);
            // One shard (a logical shard's): straight to it, one future level fewer.
            if let [ps] = t.shards.as_ref() {
                let r = self.run_single(session, rt, ps, &text, io, unq).await?;
                return answered(r).map(|_| ());
            }
            return Box::pin(self.one_of(session, rt, &t.shards, &text, io, unq, t.none))
                .await
                .map(|_| ());
        }
        // Work out (physical shard, statements) pairs.
        let mut work: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match (&e.targets, ks) {
            (Targets::Reference { sql }, Some(k)) => {
                for ps in k.physical_shards() {
                    work.entry(ps).or_default().push(sql.clone());
                }
            }
            (Targets::Ls { template, ls }, Some(k)) => {
                for l in ls {
                    let ps = k.placement.get(*l as usize).ok_or_else(|| {
                        SqlError::router(format!("logical shard {l} has no placement"))
                    })?;
                    work.entry(ps.clone())
                        .or_default()
                        .push(k.fill(template, *l).into_owned());
                }
            }
            (Targets::PerLs(v), Some(k)) => {
                for (l, sql) in v {
                    let ps = k.placement.get(*l as usize).ok_or_else(|| {
                        SqlError::router(format!("logical shard {l} has no placement"))
                    })?;
                    work.entry(ps.clone())
                        .or_default()
                        .push(k.fill(sql, *l).into_owned());
                }
            }
            _ => return Err(SqlError::router("plan without a keyspace")),
        }
        if let (StmtKind::Read, Some(spec)) = (e.kind, e.merge.as_ref()) {
            return Box::pin(self.merged_read(session, rt, work, spec, io, ks)).await;
        }
        if work.len() == 1 && work.values().all(|v| v.len() == 1) && e.limit.is_none() {
            let (ps, mut sqls) = work
                .into_iter()
                .next()
                .ok_or_else(|| SqlError::router("no target"))?;
            let sql = sqls.pop().unwrap_or_default();
            let text = WireStatement::Text(&sql);
            return self
                .run_single(session, rt, &ps, &text, io, unq)
                .await?
                .unwrap_or(Ok(()));
        }
        match e.kind {
            StmtKind::Read => {
                Box::pin(self.scatter_read(session, rt, work, e.unionable, e.limit, io, ks)).await
            }
            StmtKind::Write | StmtKind::Ddl => {
                let copies = matches!(e.targets, Targets::Reference { .. });
                Box::pin(self.multi_write(session, rt, work, e.kind, io, ks, copies)).await
            }
        }
    }

    /// Runs `stmt` on the first of `shards` that can be reached and streams its answer;
    /// `none` when there are no shards. `Ok(false)`: a prepared statement that cannot run
    /// server-side here (see [`Engine::run_single`]).
    #[allow(clippy::too_many_arguments)]
    async fn one_of(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        shards: &[String],
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        none: &'static str,
    ) -> Result<bool, SqlError> {
        let mut last = None;
        for ps in shards {
            match self.run_single(session, rt, ps, stmt, io, unq).await {
                Ok(r) => return answered(r),
                Err(unreachable) => last = Some(unreachable),
            }
        }
        Err(last.unwrap_or_else(|| SqlError::router(none)))
    }

    /// Runs one statement on physical shard `ps` and streams its answer: outside a
    /// transaction on one of the router's own connections (unless the shard's server wants a
    /// login those do not speak), inside one on the session's pinned connection. The outer
    /// error means no connection could be had (nothing was sent); the inner one is the
    /// statement's. `None` only for a prepared statement that cannot run server-side here
    /// (in a transaction, or no own connection): the caller binds literals instead.
    async fn run_single(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
    ) -> Result<Option<Result<(), SqlError>>, SqlError> {
        if !session.in_transaction() {
            let rec = rt.shards.get(ps).ok_or_else(|| {
                SqlError::router(format!("physical shard {ps} is not registered"))
            })?;
            let pool = self.backends.pool(rec);
            if let Some(mut lease) = pool.get_wire(&session.sets).await? {
                let r = self
                    .wire_exchange(session, &pool, &mut lease, stmt, io, unq)
                    .await;
                // The answer leaves before the connection goes back and the statement is
                // recorded: that work is off the client's wait.
                let r = match r {
                    Ok(()) => io.flush().await.map_err(io_err),
                    err => err,
                };
                pool.wire.put(lease);
                return Ok(Some(r));
            }
        }
        let WireStatement::Text(sql) = stmt else {
            return Ok(None);
        };
        let mut lease = self.conn(session, rt, ps).await?;
        let r = Box::pin(self.single(session, &mut lease, sql, io, unq, rt)).await;
        Box::pin(self.give_back(session, lease)).await;
        Ok(Some(r))
    }

    /// Sends `stmt` on one of the router's own connections (after bringing its session
    /// `SET`s to the session's) and writes the answer: column definitions read (their schema
    /// mapped back to the keyspace), rows passed on as the server sent them, the end of the
    /// result and OK packets with the session's own status.
    async fn wire_exchange(
        &self,
        session: &mut Session,
        pool: &crate::backend::ShardPool,
        lease: &mut crate::backend::wire::WireLease,
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
    ) -> Result<(), SqlError> {
        use crate::backend::wire::WireError;
        use crate::mysql::constants::{COM_QUERY, COM_STMT_EXECUTE};
        let map = |e: WireError| crate::backend::error::from_wire(e, &pool.name, &pool.addr, unq);
        let c = &mut lease.conn;
        c.replay(&session.sets).await.map_err(map)?;
        let binary = match stmt {
            WireStatement::Text(sql) => {
                c.command(COM_QUERY, sql.as_bytes())
                    .await
                    .map_err(|e| map(e.into()))?;
                false
            }
            WireStatement::Prepared { sql, types, params } => {
                let (id, n) = c.prepared(sql).await.map_err(map)?;
                if usize::from(n) != types.len() {
                    return Err(SqlError::router(format!(
                        "parameter count mismatch: the statement has {} markers, the backend counts {n}",
                        types.len()
                    )));
                }
                // Always with types: the connection may not be the one that saw them first.
                c.command_with(COM_STMT_EXECUTE, |body| {
                    body.extend_from_slice(&id.to_le_bytes());
                    body.push(0);
                    body.extend_from_slice(&1u32.to_le_bytes());
                    if !types.is_empty() {
                        body.extend_from_slice(params.nulls);
                        body.push(1);
                        for (t, unsigned) in *types {
                            body.push(*t);
                            body.push(if *unsigned { 0x80 } else { 0 });
                        }
                        body.extend_from_slice(params.values);
                    }
                })
                .await
                .map_err(|e| map(e.into()))?;
                true
            }
        };
        self.wire_answer(session, pool, lease, io, unq, binary)
            .await
    }

    /// Executes a prepared read whose plan `e` names one target (see [`crate::prepared`]) as
    /// a server-side prepared statement there; binary rows are passed on as they come.
    /// `Ok(false)`: not possible here (in a transaction, a plan of several targets, or the
    /// shard's server wants a login the router's own connections do not speak); the caller
    /// binds the parameters as literals instead.
    ///
    /// # Errors
    /// The backend's errors, mapped as for any statement.
    pub async fn execute_prepared(
        &self,
        session: &mut Session,
        e: &Exec,
        types: &[(u8, bool)],
        params: &crate::prepared::Params<'_>,
        io: &mut PacketIo,
        rt: &RoutingTable,
    ) -> Result<bool, SqlError> {
        if session.in_transaction() {
            return Ok(false);
        }
        let ks = match &e.keyspace {
            Some(k) => Some(
                rt.keyspace(k)
                    .ok_or_else(|| SqlError::unknown_database(k))?,
            ),
            None => None,
        };
        let Some(t) = single_target(session, rt, e, ks)? else {
            return Ok(false);
        };
        let unq = Unqualify(ks);
        let stmt = WireStatement::Prepared {
            sql: &t.sql,
            types,
            params,
        };
        if let [ps] = t.shards.as_ref() {
            return answered(self.run_single(session, rt, ps, &stmt, io, unq).await?);
        }
        Box::pin(self.one_of(session, rt, &t.shards, &stmt, io, unq, t.none)).await
    }

    /// Reads the answer to a statement sent on `lease` and writes it to the client: rows
    /// passed on as the server sent them (`binary`: already in the binary protocol), column
    /// definitions with their schema mapped back to the keyspace, the end of the result and
    /// OK packets with the session's own status.
    async fn wire_answer(
        &self,
        session: &mut Session,
        pool: &crate::backend::ShardPool,
        lease: &mut crate::backend::wire::WireLease,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        binary: bool,
    ) -> Result<(), SqlError> {
        use crate::backend::wire::{self, WireError};
        use crate::mysql::constants::SERVER_MORE_RESULTS_EXISTS;
        let map = |e: WireError| crate::backend::error::from_wire(e, &pool.name, &pool.addr, unq);
        let c = &mut lease.conn;
        let p = c.read_packet().await.map_err(map)?;
        match p.first() {
            Some(0x00) => {
                let ok = wire::parse_ok(p).map_err(map)?;
                if ok.status & SERVER_MORE_RESULTS_EXISTS != 0 {
                    c.drain_results().await.map_err(map)?;
                }
                lease.clean = true;
                if ok.last_insert_id != 0 {
                    session.last_insert_id = ok.last_insert_id;
                }
                self.ok(
                    session,
                    io,
                    ok.affected,
                    ok.last_insert_id,
                    ok.warnings,
                    &ok.info,
                )
                .await
            }
            Some(0xff) => {
                let e = wire::parse_err(p);
                lease.clean = true;
                Err(map(e))
            }
            Some(0xfb) | None => Err(map(WireError::Protocol(
                "unexpected answer to a query".into(),
            ))),
            Some(_) => {
                let n = crate::mysql::codec::Cursor::new(p)
                    .lenenc_int()
                    .ok_or_else(|| map(WireError::Protocol("bad column count".into())))?;
                let malformed = || map(WireError::Protocol("malformed column definition".into()));
                // Column definitions pass as the server sent them (schema names mapped back
                // to the keyspace), unless the router needs them: binary rows made from text
                // ones (not when the server answers an execute in binary itself), or a result
                // shadow's copy.
                let passed = (binary || !io.binary_mode) && io.capture.is_none();
                let mut defs = Vec::new();
                if passed {
                    io.write_packet(p).await.map_err(io_err)?;
                }
                for _ in 0..n {
                    let p = c.read_packet().await.map_err(map)?;
                    let p = if unq.keeps_all() {
                        std::borrow::Cow::Borrowed(p)
                    } else {
                        ColumnDef::remap_schema(p, |m| unq.apply(m)).ok_or_else(malformed)?
                    };
                    if passed {
                        io.write_packet(&p).await.map_err(io_err)?;
                    } else {
                        defs.push(ColumnDef::decode(&p).ok_or_else(malformed)?);
                    }
                }
                if !wire::is_eof(c.read_packet().await.map_err(map)?) {
                    return Err(map(WireError::Protocol(
                        "no EOF after column definitions".into(),
                    )));
                }
                if passed {
                    results::end_columns(io, session).await?;
                } else {
                    write_columns(io, session, &defs).await?;
                }
                loop {
                    let p = c.read_packet().await.map_err(map)?;
                    if wire::is_eof(p) {
                        let (warnings, status) = wire::parse_eof(p);
                        if status & SERVER_MORE_RESULTS_EXISTS != 0 {
                            c.drain_results().await.map_err(map)?;
                        }
                        lease.clean = true;
                        return results::write_end_warned(io, session, warnings).await;
                    }
                    if p.first() == Some(&0xff) {
                        let e = wire::parse_err(p);
                        lease.clean = true;
                        return Err(map(e));
                    }
                    if binary {
                        io.write_binary_row(p).await.map_err(io_err)?;
                    } else {
                        io.write_row(p).await.map_err(io_err)?;
                    }
                }
            }
        }
    }

    /// Runs one statement on one connection and streams its answer.
    async fn single(
        &self,
        session: &mut Session,
        lease: &mut Lease,
        sql: &str,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        rt: &RoutingTable,
    ) -> Result<(), SqlError> {
        let ps = lease.ps.as_str();
        // The address is formatted only for an error.
        let map = |e: mysql_async::Error| {
            let addr = rt.shards.get(ps).map(|s| s.address()).unwrap_or_default();
            from_backend(e, ps, &addr, unq)
        };
        let mut res = lease.conn.query_iter(sql).await.map_err(map)?;
        let cols = res.columns();
        match cols {
            Some(cols) if !cols.is_empty() => {
                let defs: Vec<ColumnDef> = cols.iter().map(|c| column_def(c, unq)).collect();
                write_columns(io, session, &defs).await?;
                let mut w = ResultWriter::default();
                while let Some(row) = res.next().await.map_err(map)? {
                    write_row(io, &mut w, row).await?;
                }
                let warnings = res.warnings();
                drop(res);
                results::write_end_warned(io, session, warnings).await
            }
            _ => {
                let affected = res.affected_rows();
                let last = res.last_insert_id().unwrap_or(0);
                let warnings = res.warnings();
                let info = res.info().into_owned();
                // Drain anything further (there should be nothing).
                res.drop_result().await.map_err(map)?;
                if last != 0 {
                    session.last_insert_id = last;
                }
                self.ok(session, io, affected, last, warnings, &info).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn scatter_read(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: BTreeMap<String, Vec<String>>,
        unionable: bool,
        limit: Option<(u64, u64)>,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
    ) -> Result<(), SqlError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<results::Msg>(SCATTER_CHANNEL);
        let mut tasks = Vec::new();
        for (ps, sqls) in work {
            let lease = self.conn(session, rt, &ps).await;
            let lease = match lease {
                Ok(l) => l,
                Err(err) => {
                    // Give back what was taken before failing.
                    drop(tx);
                    for t in tasks {
                        if let Ok(l) = t.await {
                            self.give_back(session, l).await;
                        }
                    }
                    return Err(err);
                }
            };
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let kscopy = ks.cloned();
            // The first logical shard's select runs alone, the rest as one `UNION ALL`: the
            // client's column types come from a plain select (a union widens some, such as
            // TEXT to MEDIUMTEXT and ENUM to VARCHAR).
            let stmts: Vec<String> = if unionable && sqls.len() > 2 {
                let mut it = sqls.into_iter();
                let first = it.next().unwrap_or_default();
                let rest = it.map(|s| format!("(\n{s}\n)")).collect::<Vec<_>>();
                vec![first, rest.join(" UNION ALL ")]
            } else {
                sqls
            };
            tasks.push(spawn_stream(lease, stmts, tx.clone(), ps, addr, kscopy));
        }
        drop(tx);
        let (skip, take) = limit.unwrap_or((0, u64::MAX));
        let mut seen: u64 = 0;
        let mut sent: u64 = 0;
        let mut header = false;
        let mut outcome: Result<(), SqlError> = Ok(());
        while let Some(msg) = rx.recv().await {
            match msg {
                results::Msg::Columns(defs) => {
                    if !header {
                        if let Err(e) = write_columns(io, session, &defs).await {
                            outcome = Err(e);
                            break;
                        }
                        header = true;
                    }
                }
                results::Msg::Row(bytes) => {
                    seen += 1;
                    if seen <= skip {
                        continue;
                    }
                    if sent >= take {
                        break;
                    }
                    if let Err(e) = io.write_row(&bytes).await.map_err(io_err) {
                        outcome = Err(e);
                        break;
                    }
                    sent += 1;
                    if sent >= take {
                        break;
                    }
                }
                results::Msg::Error(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        self.join_leases(session, tasks).await;
        outcome?;
        if !header {
            return Err(SqlError::router("no shard returned a result set"));
        }
        write_end(io, session).await
    }

    /// Reads from every physical shard on its own stream, then merge-sorts or aggregates.
    async fn merged_read(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: BTreeMap<String, Vec<String>>,
        spec: &crate::planner::merge::MergeSpec,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
    ) -> Result<(), SqlError> {
        use crate::planner::merge::MergeMode;
        let mut streams = Vec::new();
        let mut tasks = Vec::new();
        let mut failed = None;
        // `UNION ALL` loses column types (ENUM reads as VARCHAR, TEXT as MEDIUMTEXT): the
        // first logical shard's statement is prepared, not run, for its exact metadata.
        let mut probe: Option<Vec<ColumnDef>> = None;
        for (ps, sqls) in work {
            let mut lease = match self.conn(session, rt, &ps).await {
                Ok(l) => l,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            };
            if probe.is_none() {
                if let Some(first) = sqls.first() {
                    let unq = Unqualify(ks);
                    if let Ok(stmt) = lease.conn.prep(first.as_str()).await {
                        probe = Some(stmt.columns().iter().map(|c| column_def(c, unq)).collect());
                        let _ = lease.conn.close(stmt).await;
                    }
                }
            }
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let kscopy = ks.cloned();
            let stmt = if sqls.len() == 1 {
                sqls.into_iter().next().unwrap_or_default()
            } else {
                let mut u = sqls
                    .iter()
                    .map(|s| format!("(\n{s}\n)"))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                if !spec.union_order.is_empty() {
                    let keys: Vec<String> = spec
                        .union_order
                        .iter()
                        .map(|(c, d)| format!("{c}{}", if *d { " DESC" } else { "" }))
                        .collect();
                    u.push_str(&format!(" ORDER BY {}", keys.join(", ")));
                    if let Some((skip, take)) = spec.limit {
                        u.push_str(&format!(" LIMIT {}", skip.saturating_add(take)));
                    }
                }
                u
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<results::Msg>(SCATTER_CHANNEL);
            streams.push(rx);
            tasks.push(spawn_stream(lease, vec![stmt], tx, ps, addr, kscopy));
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => match &spec.mode {
                MergeMode::Sorted { keys } => {
                    self.merge_sorted(session, &mut streams, spec, keys, io, probe)
                        .await
                }
                MergeMode::Aggregate { .. } => {
                    self.merge_aggregate(session, &mut streams, spec, io, probe)
                        .await
                }
            },
        };
        drop(streams);
        self.join_leases(session, tasks).await;
        outcome?;
        write_end(io, session).await
    }

    /// Waits for shard tasks and gives their connections back.
    async fn join_leases(&self, session: &mut Session, tasks: Vec<tokio::task::JoinHandle<Lease>>) {
        for t in tasks {
            match t.await {
                Ok(l) => self.give_back(session, l).await,
                Err(e) => tracing::warn!(error = %e, "shard task failed"),
            }
        }
    }

    /// Takes the next message of one stream: `Ok(None)` at its end.
    async fn next_row(
        rx: &mut tokio::sync::mpsc::Receiver<results::Msg>,
        defs: &mut Option<Vec<ColumnDef>>,
    ) -> Result<Option<Vec<u8>>, SqlError> {
        loop {
            match rx.recv().await {
                None => return Ok(None),
                Some(results::Msg::Columns(d)) => {
                    if defs.is_none() {
                        *defs = Some(d);
                    }
                }
                Some(results::Msg::Row(r)) => return Ok(Some(r)),
                Some(results::Msg::Error(e)) => return Err(e),
            }
        }
    }

    async fn merge_sorted(
        &self,
        session: &Session,
        streams: &mut [tokio::sync::mpsc::Receiver<results::Msg>],
        spec: &crate::planner::merge::MergeSpec,
        keys: &[crate::planner::merge::SortKey],
        io: &mut PacketIo,
        probe: Option<Vec<ColumnDef>>,
    ) -> Result<(), SqlError> {
        let mut defs: Option<Vec<ColumnDef>> = None;
        type Head = Option<(Vec<u8>, merge::Spans)>;
        let mut heads: Vec<Head> = Vec::with_capacity(streams.len());
        let mut raw = Vec::with_capacity(streams.len());
        for rx in streams.iter_mut() {
            raw.push(Self::next_row(rx, &mut defs).await?);
        }
        let defs = defs.ok_or_else(|| SqlError::router("no shard returned a result set"))?;
        let defs = match probe {
            Some(p) if p.len() == defs.len() => p,
            _ => defs,
        };
        let layout = merge::Layout::new(&defs, spec)?;
        merge::check_keys(&defs, &layout, spec)?;
        let visible = layout.visible();
        let split = |r: Vec<u8>| -> Result<(Vec<u8>, merge::Spans), SqlError> {
            let c = merge::split_row(&r, layout.total)
                .ok_or_else(|| SqlError::router("malformed row from a shard"))?;
            Ok((r, c))
        };
        for r in raw {
            heads.push(match r {
                Some(r) => Some(split(r)?),
                None => None,
            });
        }
        write_columns(io, session, &defs[..visible]).await?;
        let (skip, take) = spec.limit.unwrap_or((0, u64::MAX));
        let (mut seen, mut sent) = (0u64, 0u64);
        while sent < take {
            let mut best: Option<usize> = None;
            for (i, h) in heads.iter().enumerate() {
                let Some((r, c)) = h else { continue };
                best = match best {
                    None => Some(i),
                    Some(b) => {
                        let (br, bc) = heads[b]
                            .as_ref()
                            .map(|(r, c)| (r.as_slice(), c.as_slice()))
                            .unwrap_or((&[], &[]));
                        if merge::cmp_rows(&layout, keys, r, c, br, bc) == std::cmp::Ordering::Less
                        {
                            Some(i)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            let Some(b) = best else { break };
            if let Some((r, c)) = heads[b].take() {
                seen += 1;
                if seen > skip {
                    let n = merge::prefix_len(&c, &r, visible);
                    io.write_row(&r[..n]).await.map_err(io_err)?;
                    sent += 1;
                }
            }
            let mut none = None;
            heads[b] = match Self::next_row(&mut streams[b], &mut none).await? {
                Some(r) => Some(split(r)?),
                None => None,
            };
        }
        Ok(())
    }

    async fn merge_aggregate(
        &self,
        session: &Session,
        streams: &mut [tokio::sync::mpsc::Receiver<results::Msg>],
        spec: &crate::planner::merge::MergeSpec,
        io: &mut PacketIo,
        probe: Option<Vec<ColumnDef>>,
    ) -> Result<(), SqlError> {
        let mut defs: Option<Vec<ColumnDef>> = None;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut agg: Option<merge::Aggregator<'_>> = None;
        for rx in streams.iter_mut() {
            while let Some(r) = Self::next_row(rx, &mut defs).await? {
                match agg.as_mut() {
                    Some(a) => a.add(r)?,
                    None => pending.push(r),
                }
                if agg.is_none() {
                    if let Some(d) = &defs {
                        let d = match &probe {
                            Some(p) if p.len() == d.len() => p.clone(),
                            _ => d.clone(),
                        };
                        let mut a = merge::Aggregator::new(spec, d)?;
                        for p in pending.drain(..) {
                            a.add(p)?;
                        }
                        agg = Some(a);
                    }
                }
            }
        }
        let agg = match agg {
            Some(a) => a,
            None => merge::Aggregator::new(
                spec,
                match probe {
                    Some(p) => p,
                    None => {
                        defs.ok_or_else(|| SqlError::router("no shard returned a result set"))?
                    }
                },
            )?,
        };
        let cols = agg.columns();
        let rows = agg.finish()?;
        write_columns(io, session, &cols).await?;
        for r in rows {
            io.write_row(&r).await.map_err(io_err)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn multi_write(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: BTreeMap<String, Vec<String>>,
        kind: StmtKind,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
        copies: bool,
    ) -> Result<(), SqlError> {
        let in_txn = session.in_transaction() && kind == StmtKind::Write;
        let mut tasks = Vec::new();
        let mut leases_failed = None;
        for (ps, sqls) in work {
            let lease = if kind == StmtKind::Ddl {
                // DDL never runs on pinned connections.
                let was = (session.explicit_txn, session.autocommit);
                session.explicit_txn = false;
                session.autocommit = true;
                let l = self.conn(session, rt, &ps).await;
                (session.explicit_txn, session.autocommit) = was;
                l
            } else {
                self.conn(session, rt, &ps).await
            };
            let mut lease = match lease {
                Ok(l) => l,
                Err(err) => {
                    leases_failed = Some((ps.clone(), err));
                    continue;
                }
            };
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let kscopy = ks.cloned();
            // Several statements on one physical shard commit together.
            let wrap = !in_txn && kind == StmtKind::Write && sqls.len() > 1;
            tasks.push(tokio::spawn(async move {
                let unq = Unqualify(kscopy.as_ref());
                let mut r = WriteResult::default();
                let map = |e: mysql_async::Error| from_backend(e, &ps, &addr, unq);
                let run = async {
                    if wrap {
                        lease
                            .conn
                            .query_drop("START TRANSACTION")
                            .await
                            .map_err(map)?;
                    }
                    for s in &sqls {
                        let res = lease.conn.query_iter(s.as_str()).await.map_err(map)?;
                        r.affected += res.affected_rows();
                        if let Some(id) = res.last_insert_id() {
                            r.last_insert_id = id;
                        }
                        r.warnings = r.warnings.saturating_add(res.warnings());
                        r.info = res.info().into_owned();
                        res.drop_result().await.map_err(map)?;
                    }
                    if wrap {
                        lease.conn.query_drop("COMMIT").await.map_err(map)?;
                    }
                    Ok::<(), SqlError>(())
                };
                let out = run.await;
                if out.is_err() && wrap {
                    let _ = lease.conn.query_drop("ROLLBACK").await;
                }
                (lease, out.map(|()| r))
            }));
        }
        let mut total = WriteResult::default();
        let mut ok_shards = Vec::new();
        let mut failures: Vec<(String, SqlError)> = Vec::new();
        if let Some(f) = leases_failed {
            failures.push(f);
        }
        for t in tasks {
            match t.await {
                Ok((lease, r)) => {
                    let ps = lease.ps.clone();
                    self.give_back(session, lease).await;
                    match r {
                        Ok(w) => {
                            // Copies of a reference table each change the same rows: count once.
                            total.affected = if copies {
                                total.affected.max(w.affected)
                            } else {
                                total.affected + w.affected
                            };
                            total.last_insert_id = total.last_insert_id.max(w.last_insert_id);
                            total.warnings = total.warnings.saturating_add(w.warnings);
                            total.info = w.info;
                            ok_shards.push(ps);
                        }
                        Err(e) => failures.push((ps, e)),
                    }
                }
                Err(e) => failures.push((
                    "?".into(),
                    SqlError::router(format!("write task failed: {e}")),
                )),
            }
        }
        if failures.is_empty() {
            let info = if kind == StmtKind::Write && ok_shards.len() > 1 {
                String::new()
            } else {
                total.info
            };
            return self
                .ok(
                    session,
                    io,
                    total.affected,
                    total.last_insert_id,
                    total.warnings,
                    &info,
                )
                .await;
        }
        let (ps, first) = failures.remove(0);
        if ok_shards.is_empty() {
            return Err(first);
        }
        let verb = if in_txn {
            "applied (uncommitted, in this transaction)"
        } else {
            "committed"
        };
        Err(SqlError::router(format!(
            "statement partially applied: {verb} on physical shards [{}]; failed on {ps}: {}",
            ok_shards.join(", "),
            first.message
        )))
    }
}

/// What a statement for one physical shard is sent as.
enum WireStatement<'a> {
    /// `COM_QUERY`.
    Text(&'a str),
    /// `COM_STMT_EXECUTE` of `sql`, prepared on the connection that runs it, with the
    /// client's parameters.
    Prepared {
        sql: &'a str,
        types: &'a [(u8, bool)],
        params: &'a crate::prepared::Params<'a>,
    },
}

/// Where a plan that one physical shard answers runs: see [`single_target`].
struct SingleTarget<'e, 'r> {
    shards: std::borrow::Cow<'r, [String]>,
    sql: std::borrow::Cow<'e, str>,
    /// The error when none of `shards` can be had because there are none.
    none: &'static str,
}

/// What [`Engine::run_single`]'s answer on a reachable shard means to its caller: the
/// statement's result (`true`: it ran), or `false` for a prepared statement that cannot run
/// server-side there.
fn answered(r: Option<Result<(), SqlError>>) -> Result<bool, SqlError> {
    match r {
        Some(r) => r.map(|()| true),
        None => Ok(false),
    }
}

/// For a plan that one physical shard answers — one logical shard with nothing for the
/// router to merge or limit, no table (the pinned shard in a transaction, else any), a read of
/// reference tables (any copy) — the shards that may answer it in the order to try them, its
/// statement, and the error to give when there are none.
fn single_target<'e, 'r>(
    session: &Session,
    rt: &'r RoutingTable,
    e: &'e Exec,
    ks: Option<&'r KeyspaceRouting>,
) -> Result<Option<SingleTarget<'e, 'r>>, SqlError> {
    use std::borrow::Cow;
    Ok(match (&e.targets, ks) {
        (Targets::Ls { template, ls }, Some(k)) => match (ls.as_slice(), &e.merge, &e.limit) {
            ([l], None, None) => {
                let ps = k.placement.get(*l as usize).ok_or_else(|| {
                    SqlError::router(format!("logical shard {l} has no placement"))
                })?;
                Some(SingleTarget {
                    shards: Cow::Borrowed(std::slice::from_ref(ps)),
                    sql: k.fill(template, *l),
                    none: "logical shard has no placement",
                })
            }
            _ => None,
        },
        (Targets::Any { sql }, _) => {
            let shards = match session.txn_conns.keys().next() {
                Some(ps) => vec![ps.clone()],
                None => rt.shard_names(),
            };
            Some(SingleTarget {
                shards: Cow::Owned(shards),
                sql: Cow::Borrowed(sql.as_str()),
                none: "no physical shard is registered",
            })
        }
        (Targets::Reference { sql }, Some(k)) if e.kind == StmtKind::Read => Some(SingleTarget {
            shards: Cow::Owned(k.physical_shards()),
            sql: Cow::Borrowed(sql.as_str()),
            none: "keyspace has no physical shards",
        }),
        _ => None,
    })
}

/// Streams `stmts` from one physical shard into `tx` on a task that owns the connection and
/// hands it back when done.
fn spawn_stream(
    mut lease: Lease,
    stmts: Vec<String>,
    tx: tokio::sync::mpsc::Sender<results::Msg>,
    ps: String,
    addr: String,
    ks: Option<KeyspaceRouting>,
) -> tokio::task::JoinHandle<Lease> {
    tokio::spawn(async move {
        let unq = Unqualify(ks.as_ref());
        let r = results::stream_statements(&mut lease.conn, &stmts, &tx, &ps, &addr, unq).await;
        if let Err(e) = r {
            let _ = tx.send(results::Msg::Error(e)).await;
        }
        lease
    })
}
