//! What the router answers or does itself: session statements, `DESCRIBE`, `VEXPLAIN`,
//! `COM_FIELD_LIST`, and the OK packet of a statement.

use super::core::Engine;

use super::results::{column_def, write_columns, write_end};
use crate::backend::error::from_backend;
use crate::error::{io_err, SqlError};
use crate::planner::{Local, Plan, StmtKind, Targets};
use crate::session::Session;
use crate::sql::quote_ident;
use crate::topology::Unqualify;
use crate::wire::resultset::{self, ColumnDef};
use crate::wire::PacketIo;
use mysql_async::prelude::Queryable;

impl Engine {
    pub(super) async fn ok(
        &self,
        session: &mut Session,
        io: &mut PacketIo,
        affected: u64,
        last_id: u64,
        warnings: u16,
        info: &str,
    ) -> Result<(), SqlError> {
        if session.defer_ok {
            session.deferred_ok = Some((affected, last_id, warnings, info.to_string()));
            return Ok(());
        }
        // An autocommit write to a moving logical shard is copied before it is acknowledged.
        if !session.copy_after.is_empty() {
            let lss = std::mem::take(&mut session.copy_after);
            Box::pin(self.moves.copy(&lss)).await;
        }
        io.rows = affected;
        io.warnings = warnings;
        io.result_set = false;
        let last_id = session.insert_id_override.unwrap_or(last_id);
        session.take_state_change();
        let mut status = session.status_flags();
        if !session.state_changes.is_empty() {
            status |= crate::wire::constants::SERVER_SESSION_STATE_CHANGED;
        }
        let p = resultset::ok(affected, last_id, status, warnings, info, false);
        let info = resultset::info_text(info);
        if !session.state_changes.is_empty() {
            let state = std::mem::take(&mut session.state_changes);
            return io
                .write_packet(&resultset::with_state(&p, info, &state))
                .await
                .map_err(io_err);
        }
        if info.is_empty() {
            return io.write_packet(&p).await.map_err(io_err);
        }
        io.write_packet(&resultset::with_info(&p, info))
            .await
            .map_err(io_err)
    }

    pub(super) async fn local(
        &self,
        session: &mut Session,
        l: Local,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        match l {
            Local::MoveRows(m) => self.move_rows(session, *m, io).await,
            Local::CrossJoin(j) => self.cross_join(session, *j, io).await,
            Local::Lookup(p) => Box::pin(self.lookup(session, *p, io)).await,
            Local::Gather(g) => Box::pin(self.gather(session, *g, io)).await,
            Local::InsertSelect(p) => Box::pin(self.insert_select(session, *p, io)).await,
            Local::SubqueriesFirst(p) => Box::pin(self.subqueries_first(session, *p, io)).await,
            Local::LimitedWrite(w) => Box::pin(self.limited_write(session, *w, io)).await,
            Local::OrderedWrite(w) => Box::pin(self.ordered_write(session, *w, io)).await,
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
                session.track_schema(&ks);
                session.keyspace = Some(ks);
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Nothing => self.ok(session, io, 0, 0, 0, "").await,
            Local::Begin(start) => {
                self.finish_txn(session, true).await?;
                session.explicit_txn = true;
                session.txn_start = start;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::Savepoint(op) => {
                Box::pin(self.savepoint(session, op)).await?;
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
                self.set_autocommit(session, on).await?;
                self.ok(session, io, 0, 0, 0, "").await
            }
            Local::SetAutocommitAnd(on, sql) => {
                let warnings = self.replay_set(session, sql).await?;
                self.set_autocommit(session, on).await?;
                self.ok(session, io, 0, 0, warnings, "").await
            }
            Local::Set(sql) => {
                let warnings = self.replay_set(session, sql).await?;
                self.ok(session, io, 0, 0, warnings, "").await
            }
            Local::ShowDatabases => {
                let rt = self.topo.table();
                let mut names: Vec<String> = rt
                    .keyspaces
                    .keys()
                    .filter(|k| session.grants.may_use(k))
                    .cloned()
                    .collect();
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
            d.encode(&mut p, io.extended_metadata);
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
        // A statement an unsharded keyspace runs as sent is described there as sent.
        let class = crate::sql::classify::classify(sql.as_bytes(), &session.lex);
        let verbatim = crate::planner::passthrough::verbatim(
            sql.as_bytes(),
            &class,
            session.keyspace.as_deref(),
            &session.reserved_ps,
            &rt,
            session.grants.admin,
        );
        let target = match verbatim {
            Some(Plan::Exec(e)) if matches!(e.targets, Targets::Verbatim { .. }) => {
                e.keyspace.map(|k| (sql.to_string(), Some(k), true))
            }
            _ => None,
        };
        let target = match target {
            Some(t) => Some(t),
            None => crate::planner::describe_target(sql, session.keyspace.as_deref(), &rt)?
                .map(|(s, k)| (s, k, false)),
        };
        let Some((backend_sql, ks, in_schema)) = target else {
            return Ok((Vec::new(), 0));
        };
        let k = ks.as_deref().and_then(|k| rt.keyspace(k));
        let mut lease = match k.and_then(|k| k.placement.first()) {
            Some(ps) => self.conn_outside_txn(session, &rt, ps).await?,
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
            if let (true, Some(k)) = (in_schema, k) {
                let use_db = format!("USE {}", crate::sql::quote_ident(&k.schema(0)));
                lease
                    .conn
                    .query_drop(use_db)
                    .await
                    .map_err(|e| from_backend(e, &ps, &addr, unq))?;
            }
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

    /// The error MariaDB gives `sql` as one statement (several statements from a client that
    /// did not ask for multi-statements: its syntax error), found by preparing it on a backend
    /// connection outside any transaction (preparing runs nothing); `None` when it prepares.
    pub async fn syntax_error(&self, session: &mut Session, sql: &[u8]) -> Option<SqlError> {
        let Ok(text) = std::str::from_utf8(sql) else {
            return Some(SqlError::new(
                1064,
                "42000",
                "You have an error in your SQL syntax: several statements in one query from a client that did not enable multi-statements",
            ));
        };
        let rt = self.topo.table();
        let mut lease = match self.any_conn(session, &rt).await {
            Ok(l) => l,
            Err(e) => return Some(e),
        };
        let r = lease.conn.prep(text).await;
        let out = match r {
            Ok(stmt) => {
                let _ = lease.conn.close(stmt).await;
                None
            }
            Err(e) => Some(from_backend(e, &lease.ps.clone(), "", Unqualify(None))),
        };
        self.give_back(session, lease).await;
        out
    }

    /// Runs `sql` on a pooled connection to `ps`, outside the session's transaction (DDL of
    /// a schema: `CREATE`/`DROP DATABASE`); its affected rows and warnings, whose texts are
    /// kept for `SHOW WARNINGS`.
    ///
    /// # Errors
    /// The backend's.
    pub async fn run_on_shard(
        &self,
        session: &mut Session,
        rt: &crate::topology::RoutingTable,
        ps: &str,
        sql: &[u8],
    ) -> Result<(u64, u16), SqlError> {
        let pool = self.backends.pool_for(rt, ps, session.grants.admin)?;
        let map = |e| from_backend(e, ps, &pool.addr, Unqualify(None));
        // With the session's settings (`collation_server` decides a new schema's default).
        let sets = session.backend_sets();
        let mut conn = pool.get_backend(&sets).await?;
        let dirty = matches!(conn, crate::backend::Conn::Lib(_)) && !sets.is_empty();
        let res = conn.query_iter(sql).await.map_err(map)?;
        let (affected, warnings) = (res.affected_rows(), res.warnings());
        res.drop_result().await.map_err(map)?;
        if warnings > 0 {
            session.conditions = super::single::conditions(&mut conn, Unqualify(None)).await;
        }
        crate::backend::release(conn, dirty).await;
        Ok((affected, warnings))
    }

    /// Answers OK with `affected` rows and `warnings`.
    ///
    /// # Errors
    /// Writing to the client.
    pub async fn answer_ok(
        &self,
        session: &mut Session,
        io: &mut PacketIo,
        affected: u64,
        warnings: u16,
    ) -> Result<(), SqlError> {
        self.ok(session, io, affected, 0, warnings, "").await
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
        // A read routed by a lookup vindex shows where the lookup sends it.
        let (plan, by) = match plan {
            Plan::Local(crate::planner::Local::Lookup(p)) if p.route.is_some() => {
                let by = p
                    .route
                    .as_ref()
                    .map(|(l, _)| format!(" (by lookup {}.{})", l.keyspace, l.table));
                let e = self
                    .routed(session, &p.keyspace, p.exec, p.route.as_ref())
                    .await?;
                (Plan::Exec(Box::new(e)), by)
            }
            plan => (plan, None),
        };
        match plan {
            // MariaDB answers over the gathered rows, on logical shard 0's server.
            Plan::Local(crate::planner::Local::Gather(g)) => {
                let k = rt.keyspace(&g.keyspace);
                rows.push(vec![
                    txt(&format!(
                        "gather ({} from every logical shard)",
                        g.tables
                            .iter()
                            .map(|t| match g.filters.iter().find(|f| f.table == *t) {
                                Some(f) => match &f.ls {
                                    Some(ls) => {
                                        format!("{t} where {} (logical shards {ls:?} only)", f.cond)
                                    }
                                    None => format!("{t} where {}", f.cond),
                                },
                                None => t.clone(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    k.map(|k| k.reference_schema().into_bytes()),
                    k.and_then(|k| k.placement.first().map(|p| p.clone().into_bytes())),
                    txt(&g.sql),
                ]);
            }
            // The select's rows are read, then written as inserts routed by shard key.
            Plan::Local(crate::planner::Local::InsertSelect(p)) => {
                rows.push(vec![
                    txt("insert-select (the select's rows read through the router, then inserted in batches routed by shard key)"),
                    None,
                    None,
                    txt(&format!("{}/* rows of: */ {} {}", p.head, p.select, p.tail)),
                ]);
            }
            Plan::Local(l) => rows.push(vec![txt("local"), None, None, txt(&format!("{l:?}"))]),
            Plan::Exec(e) => {
                let route = format!("{}{}", e.route.as_str(), by.unwrap_or_default());
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
                    (Targets::Verbatim { sql, .. }, Some(k)) => {
                        let ps = k.placement.first().cloned().unwrap_or_default();
                        rows.push(vec![
                            txt("verbatim"),
                            txt(&k.schema(0)),
                            txt(&ps),
                            Some(sql.clone()),
                        ]);
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
}

impl Engine {
    /// Rolls the session's transaction back to savepoint `name` and releases it (the undo of
    /// a statement the router guarded with it); failures are left for the transaction's end.
    pub(super) async fn undo_to(&self, session: &mut Session, name: &str) {
        use crate::planner::SavepointOp;
        let _ = self
            .savepoint(session, SavepointOp::RollbackTo(name.into()))
            .await;
        let _ = self
            .savepoint(session, SavepointOp::Release(name.into()))
            .await;
    }

    /// Runs a savepoint statement on every backend connection the transaction holds, and
    /// keeps the session's list of savepoints as MariaDB keeps its own: `ROLLBACK TO x` keeps
    /// `x` and forgets later ones, `RELEASE x` forgets `x` and later ones, setting an existing
    /// name moves it to the end. Outside a transaction `SAVEPOINT` does nothing, and naming an
    /// unknown savepoint is error 1305, as in MariaDB.
    pub(super) async fn savepoint(
        &self,
        session: &mut Session,
        op: crate::planner::SavepointOp,
    ) -> Result<(), SqlError> {
        use crate::planner::SavepointOp;
        let (sql, name) = match &op {
            SavepointOp::Set(n) => (format!("SAVEPOINT {}", quote_ident(n)), n),
            SavepointOp::RollbackTo(n) => (format!("ROLLBACK TO SAVEPOINT {}", quote_ident(n)), n),
            SavepointOp::Release(n) => (format!("RELEASE SAVEPOINT {}", quote_ident(n)), n),
        };
        let known = session
            .savepoints
            .iter()
            .position(|s| s.eq_ignore_ascii_case(name));
        let setting = matches!(op, SavepointOp::Set(_));
        if !session.in_transaction() && setting {
            return Ok(());
        }
        if !setting && (known.is_none() || !session.in_transaction()) {
            return Err(SqlError::new(
                1305,
                "42000",
                format!("SAVEPOINT {name} does not exist"),
            ));
        }
        for (ps, conn) in session.txn_conns.iter_mut() {
            conn.query_drop(sql.as_str()).await.map_err(|e| {
                crate::backend::error::from_backend(e, ps, "", crate::topology::Unqualify(None))
            })?;
        }
        match (op, known) {
            (SavepointOp::Set(n), k) => {
                if let Some(i) = k {
                    session.savepoints.remove(i);
                }
                session.savepoints.push(n);
            }
            (SavepointOp::RollbackTo(_), Some(i)) => session.savepoints.truncate(i + 1),
            (SavepointOp::Release(_), Some(i)) => session.savepoints.truncate(i),
            _ => {}
        }
        Ok(())
    }
}

impl Engine {
    /// Turns the session's autocommit on or off; turning it on commits the open transaction,
    /// as MariaDB does.
    async fn set_autocommit(&self, session: &mut Session, on: bool) -> Result<(), SqlError> {
        if on && !session.autocommit {
            self.finish_txn(session, true).await?;
        }
        session.autocommit = on;
        session.mark_state_changed();
        session.track_variable("autocommit", if on { b"ON" } else { b"OFF" });
        Ok(())
    }

    /// Checks a `SET` on a backend (so that a bad one fails now, not on a later statement),
    /// applies it to the connections an open transaction holds, and keeps it to replay on
    /// every backend connection the session uses. Returns its warnings count (their texts
    /// kept for `SHOW WARNINGS`).
    async fn replay_set(&self, session: &mut Session, sql: String) -> Result<u16, SqlError> {
        let rt = self.topo.table();
        let shape = SetShape::of(sql.as_bytes(), &session.lex);
        // The kept `SET`s this one overwrites go first, so that a connection it runs on does
        // not replay them (a `SET NAMES DEFAULT COLLATE x` means another thing once the global
        // character set changed); they come back if it fails.
        let dropped = supersede(&mut session.sets, &shape, &session.lex);
        let mut lease = match self.any_conn(session, &rt).await {
            Ok(l) => l,
            Err(e) => {
                restore(&mut session.sets, dropped);
                return Err(e);
            }
        };
        let mut r = lease.conn.query_drop(sql.as_str()).await;
        // Its warnings (a deprecated value), read before anything else runs there.
        let warnings = if r.is_ok() {
            lease.conn.get_warnings()
        } else {
            0
        };
        if warnings > 0 {
            session.conditions = super::single::conditions(&mut lease.conn, Unqualify(None)).await;
        }
        let lower = sql.to_ascii_lowercase();
        if r.is_ok()
            && ["sql_mode", "names", "character"]
                .iter()
                .any(|w| lower.contains(w))
        {
            // What the mode and character set are now, whatever the expression: drivers
            // escape by the mode's flag, and the router lexes by both.
            match lease
                .conn
                .query_first::<(String, String)>("SELECT @@sql_mode, @@character_set_client")
                .await
            {
                Ok(Some((mode, charset))) => {
                    session.lex.no_backslash_escapes = mode.contains("NO_BACKSLASH_ESCAPES");
                    session.lex.ansi_quotes = mode.contains("ANSI_QUOTES");
                    session.lex.set_charset(&charset);
                }
                Ok(None) => {}
                Err(e) => r = Err(e),
            }
        }
        // `SET NAMES DEFAULT` is kept as the values it gave: replayed, it would read the
        // global character set as it is then.
        let mut resolved = None;
        if r.is_ok() && shape.names == Some(true) {
            if let Ok(Some((client, results, collation))) = lease
                .conn
                .query_first::<(String, Option<String>, String)>(
                    "SELECT @@character_set_client, @@character_set_results, @@collation_connection",
                )
                .await
            {
                let plain = |w: &str| {
                    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                };
                if plain(&client) && plain(&collation) && results.as_deref().is_none_or(plain) {
                    resolved = Some(format!(
                        "SET character_set_client = {client}, character_set_results = {}, collation_connection = {collation}",
                        results.as_deref().unwrap_or("NULL")
                    ));
                }
            }
        }
        // What a tracking client is told changed (`session_track_system_variables` itself
        // decides what is told from now on).
        if r.is_ok() && session.tracks_state() {
            let names = shape.assigned();
            // The session's list, read once (a new session starts with the global one), and
            // again when it changes.
            if session.tracked_variables.is_none()
                || names.iter().any(|n| n == "session_track_system_variables")
            {
                if let Ok(Some(list)) = lease
                    .conn
                    .query_first::<String>("SELECT @@session.session_track_system_variables")
                    .await
                {
                    session.tracked_variables = Some(
                        list.split(',')
                            .map(|v| v.trim().to_ascii_lowercase())
                            .filter(|v| !v.is_empty())
                            .collect(),
                    );
                }
            }
            if names.iter().any(|n| n == "session_track_state_change") {
                if let Ok(Some(on)) = lease
                    .conn
                    .query_first::<u8>("SELECT @@session.session_track_state_change")
                    .await
                {
                    session.track_state_change = on != 0;
                }
            }
            if names.iter().any(|n| n == "session_track_schema") {
                if let Ok(Some(on)) = lease
                    .conn
                    .query_first::<u8>("SELECT @@session.session_track_schema")
                    .await
                {
                    session.track_schema = on != 0;
                }
            }
            let tracked: Vec<&String> = names
                .iter()
                .filter(|n| session.tracks_variable(n))
                .collect();
            if !tracked.is_empty() {
                let list = tracked
                    .iter()
                    .map(|n| format!("'{}'", n.to_ascii_uppercase()))
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(rows) = lease
                    .conn
                    .query::<(String, Vec<u8>)>(format!(
                        "SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES \
                         WHERE VARIABLE_NAME IN ({list})"
                    ))
                    .await
                {
                    for n in tracked {
                        if let Some((_, v)) = rows.iter().find(|(name, _)| name == n) {
                            session.track_variable(n, v);
                        }
                    }
                }
            }
        }
        // Transaction state in OK packets is not something the router reports: a session that
        // asks for it is told so, rather than given nothing.
        if r.is_ok() && lower.contains("session_track_transaction_info") {
            let v = lease
                .conn
                .query_first::<String>("SELECT @@session.session_track_transaction_info")
                .await;
            if !matches!(&v, Ok(Some(v)) if v.eq_ignore_ascii_case("OFF")) {
                let _ = lease
                    .conn
                    .query_drop("SET SESSION session_track_transaction_info = OFF")
                    .await;
                lease.dirty = true;
                self.give_back(session, lease).await;
                restore(&mut session.sets, dropped);
                return Err(SqlError::unsupported(
                    "session_track_transaction_info (the router does not report transaction state in OK packets; leave it OFF)",
                ));
            }
        }
        // `sql_auto_is_null` on: `WHERE auto_col IS NULL` finds the row the connection last
        // inserted, so the session's statements must run where its inserts did.
        let mut auto_is_null = None;
        if r.is_ok() && lower.contains("sql_auto_is_null") {
            auto_is_null = Some(matches!(
                lease
                    .conn
                    .query_first::<u8>("SELECT @@session.sql_auto_is_null")
                    .await,
                Ok(Some(1))
            ));
        }
        // The session's idle timeout, which the router applies to the client's connection.
        if r.is_ok() && lower.contains("wait_timeout") {
            if let Ok(Some(secs)) = lease
                .conn
                .query_first::<f64>("SELECT @@session.wait_timeout")
                .await
            {
                session.wait_timeout = (secs.is_finite() && secs > 0.0)
                    .then(|| std::time::Duration::from_secs_f64(secs));
            }
        }
        // Variables it gives computed values are carried as their values
        // (`engine/uservars.rs`): user variables always, system variables unless the value
        // was a literal.
        let carry = |i: &crate::sql::classify::SetItem| match &i.target {
            Some(crate::sql::classify::Assigned::User(_)) => true,
            Some(crate::sql::classify::Assigned::System(_)) => !i.literal,
            None => false,
        };
        let vars: Vec<crate::sql::classify::Assigned> = shape
            .items
            .iter()
            .filter(|i| carry(i))
            .filter_map(|i| i.target.clone())
            .collect();
        let only_user = !shape.items.is_empty() && shape.items.iter().all(carry);
        let mut carried = Vec::new();
        if r.is_ok() && !vars.is_empty() {
            // A value that cannot be read back is replayed as the statement wrote it.
            if let Ok(c) = super::uservars::capture(&mut lease.conn, &vars).await {
                carried = c;
            }
        }
        // Nothing but variables, all carried: their values replace the statement.
        let replaced = only_user && carried.len() == vars.len();
        lease.dirty = true;
        // Held by the session: the `SET` ran there once already.
        let ran_on = (lease.pinned || lease.reserved).then(|| lease.ps.clone());
        self.give_back(session, lease).await;
        if r.is_err() {
            restore(&mut session.sets, dropped);
        }
        r.map_err(|e| from_backend(e, "any", "", Unqualify(None)))?;
        for (ps, c) in session
            .txn_conns
            .iter_mut()
            .chain(session.reserved.iter_mut())
        {
            if ran_on.as_ref() == Some(ps) {
                continue;
            }
            let own = (!replaced).then_some(sql.as_str());
            for s in own
                .into_iter()
                .chain(carried.iter().map(|(_, s)| s.as_str()))
            {
                c.query_drop(s)
                    .await
                    .map_err(|e| from_backend(e, "pinned", "", Unqualify(None)))?;
            }
        }
        if !replaced {
            session.sets.push(resolved.unwrap_or(sql));
        }
        super::uservars::keep(session, carried);
        session.mark_state_changed();
        if let Some(on) = auto_is_null {
            session.auto_is_null = on;
            if on {
                // On its keyspace's server: exact for an unsharded keyspace (a sharded one's
                // reads are refused while it is on).
                self.reserve_home(session, &rt).await?;
            }
        }
        Ok(warnings)
    }
}

/// A `SET` statement as the session's kept `SET`s are judged by: its items, and for `SET
/// NAMES …` / `SET CHARACTER SET …` whether it names `DEFAULT` (what it sets then depends on
/// globals, which may change before it is replayed).
struct SetShape {
    items: Vec<crate::sql::classify::SetItem>,
    names: Option<bool>,
}

impl SetShape {
    fn of(sql: &[u8], lex: &crate::sql::lex::Mode) -> SetShape {
        let toks = crate::sql::lex::significant(sql, lex);
        let word = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
        let names =
            (word(1, "NAMES") || word(1, "CHARSET") || (word(1, "CHARACTER") && word(2, "SET")))
                .then(|| toks.iter().any(|t| t.is_word(sql, "DEFAULT")));
        SetShape {
            items: crate::sql::classify::set_items(sql, lex).unwrap_or_default(),
            names,
        }
    }

    /// The session variables it assigns, when that is all it does: session system
    /// variables, and for `SET NAMES` and `SET CHARACTER SET` the character set variables.
    /// `None` for anything else (user variables, a transaction's characteristics, a global);
    /// with `literal`, also when a value is an expression (it may read what an earlier `SET`
    /// set).
    fn targets(&self, literal: bool) -> Option<Vec<String>> {
        use crate::sql::classify::Assigned;
        if self.items.len() == 1 && self.names.is_some() {
            return Some(CHARSET_VARIABLES.map(String::from).to_vec());
        }
        self.items
            .iter()
            .map(|i| match &i.target {
                // A flag set's value changes only the flags it names: it overwrites nothing
                // whole.
                Some(Assigned::System(n)) if MERGED.contains(&n.as_str()) => None,
                Some(Assigned::System(n)) if i.literal || !literal => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    /// The session system variables it assigns, in order (the character set variables for
    /// `SET NAMES` and `SET CHARACTER SET`; MariaDB reports one statement's changes in no
    /// fixed order).
    fn assigned(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.names.is_some() {
            names.extend(CHARSET_VARIABLES.map(String::from));
        }
        names.extend(self.items.iter().filter_map(|i| match &i.target {
            Some(crate::sql::classify::Assigned::System(n)) => Some(n.clone()),
            _ => None,
        }));
        names
    }
}

/// What `SET NAMES` and `SET CHARACTER SET` assign.
const CHARSET_VARIABLES: [&str; 4] = [
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

/// System variables whose assigned value is merged into the one they hold (flag sets).
const MERGED: &[&str] = &["optimizer_switch", "optimizer_trace"];

/// Removes from `sets` the earlier `SET`s whose every variable the new one (`shape`)
/// assigns a value that reads nothing, as long as what follows them reads no
/// variable and holds only ASCII (so that no statement between is read differently without
/// them); returns them with their places, newest first.
fn supersede(
    sets: &mut Vec<String>,
    shape: &SetShape,
    lex: &crate::sql::lex::Mode,
) -> Vec<(usize, String)> {
    let mut dropped = Vec::new();
    let Some(new) = shape.targets(true) else {
        return dropped;
    };
    let mut i = sets.len();
    while i > 0 {
        i -= 1;
        if !super::uservars::replays_alone(&sets[i + 1..]) {
            break;
        }
        let earlier = SetShape::of(sets[i].as_bytes(), lex);
        if earlier
            .targets(false)
            .is_some_and(|t| t.iter().all(|k| new.contains(k)))
        {
            dropped.push((i, sets.remove(i)));
        }
    }
    dropped
}

/// Puts back what [`supersede`] removed.
fn restore(sets: &mut Vec<String>, dropped: Vec<(usize, String)>) {
    for (i, s) in dropped.into_iter().rev() {
        sets.insert(i.min(sets.len()), s);
    }
}

/// Collations clients commonly name in their handshake, by id: `(character set, collation)`.
/// Others are looked up in a backend's `information_schema.COLLATIONS`.
const KNOWN_COLLATIONS: &[(u8, &str, &str)] = &[
    (8, "latin1", "latin1_swedish_ci"),
    (47, "latin1", "latin1_bin"),
    (48, "latin1", "latin1_general_ci"),
    (11, "ascii", "ascii_general_ci"),
    (33, "utf8mb3", "utf8mb3_general_ci"),
    (83, "utf8mb3", "utf8mb3_bin"),
    (45, "utf8mb4", "utf8mb4_general_ci"),
    (46, "utf8mb4", "utf8mb4_bin"),
    (224, "utf8mb4", "utf8mb4_unicode_ci"),
    (63, "binary", "binary"),
    (28, "gbk", "gbk_chinese_ci"),
    (13, "sjis", "sjis_japanese_ci"),
    (1, "big5", "big5_chinese_ci"),
];

impl Engine {
    /// The `SET NAMES` that gives a backend connection the character set and collation a
    /// client named in its handshake, or `None` when that is the backend connections' own
    /// (`utf8mb4_general_ci`) or a collation the servers do not know (which a server answers
    /// with its default, as the backends' is).
    pub async fn handshake_names(&self, collation_id: u8) -> Option<String> {
        if collation_id == crate::wire::constants::UTF8MB4_GENERAL_CI || collation_id == 0 {
            return None;
        }
        let names = self.collation_names(u16::from(collation_id)).await;
        names.map(|(cs, coll)| format!("SET NAMES {cs} COLLATE {coll}"))
    }

    /// The character set and collation of collation id `id`: known ones at once, others as a
    /// backend's `information_schema.COLLATIONS` names them (`None` when none answers).
    pub(super) async fn collation_names(&self, id: u16) -> Option<(String, String)> {
        if let Some(&(_, cs, coll)) = KNOWN_COLLATIONS.iter().find(|c| u16::from(c.0) == id) {
            return Some((cs.to_string(), coll.to_string()));
        }
        let rt = self.topo.table();
        for ps in rt.shard_names() {
            let Some(rec) = rt.shards.get(&ps) else {
                continue;
            };
            let Ok(mut c) = self.backends.pool(rec).get_conn().await else {
                continue;
            };
            return c
                .exec_first::<(String, String), _, _>(
                    "SELECT CHARACTER_SET_NAME, COLLATION_NAME \
                     FROM information_schema.COLLATIONS WHERE ID = ?",
                    (id,),
                )
                .await
                .ok()
                .flatten();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(sets: &[&str], new: &str) -> Vec<String> {
        let lex = crate::sql::lex::Mode::default();
        let mut v: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let dropped = supersede(&mut v, &SetShape::of(new.as_bytes(), &lex), &lex);
        let mut back = v.clone();
        restore(&mut back, dropped);
        assert_eq!(back, sets, "restore puts every one back in its place");
        v
    }

    #[test]
    fn sets_overwritten_whole_are_not_replayed() {
        // The same variables, literal values: the earlier ones go.
        assert_eq!(
            after(
                &[
                    "SET sql_mode = 'ANSI'",
                    "SET time_zone = '+01:00'",
                    "SET SESSION sql_mode = ''"
                ],
                "SET sql_mode = 'TRADITIONAL'"
            ),
            vec!["SET time_zone = '+01:00'"]
        );
        // `SET NAMES` overwrites the character set variables, and earlier `SET NAMES`.
        assert_eq!(
            after(
                &[
                    "SET NAMES latin1",
                    "SET collation_connection = 'utf8mb4_bin'",
                    "SET NAMES DEFAULT COLLATE utf8mb4_bin",
                    "SET wait_timeout = 10",
                ],
                "SET NAMES DEFAULT"
            ),
            vec!["SET wait_timeout = 10"]
        );
        // Partly overwritten: kept.
        assert_eq!(
            after(
                &["SET sql_mode = 'ANSI', time_zone = '+01:00'"],
                "SET sql_mode = ''"
            ),
            vec!["SET sql_mode = 'ANSI', time_zone = '+01:00'"]
        );
        // A value that reads a variable may read the earlier one: nothing goes.
        assert_eq!(
            after(
                &["SET sql_mode = 'ANSI'"],
                "SET sql_mode = CONCAT(@@sql_mode, ',X')"
            ),
            vec!["SET sql_mode = 'ANSI'"]
        );
        // Something after it reads a variable, or is not ASCII: kept.
        assert_eq!(
            after(
                &["SET sql_mode = 'ANSI'", "SET @a = @@sql_mode"],
                "SET sql_mode = ''"
            ),
            vec!["SET sql_mode = 'ANSI'", "SET @a = @@sql_mode"]
        );
        assert_eq!(
            after(
                &["SET NAMES sjis", "SET lc_messages = 'é'"],
                "SET NAMES utf8mb4"
            ),
            vec!["SET NAMES sjis", "SET lc_messages = 'é'"]
        );
        // A flag set keeps the flags a later value does not name.
        assert_eq!(
            after(
                &["SET optimizer_switch = 'mrr=on'"],
                "SET optimizer_switch = 'index_merge=off'"
            ),
            vec!["SET optimizer_switch = 'mrr=on'"]
        );
        // User variables and transaction characteristics are not overwritten this way.
        assert_eq!(
            after(
                &["SET @x = 1", "SET TRANSACTION READ ONLY"],
                "SET sql_mode = ''"
            ),
            vec!["SET @x = 1", "SET TRANSACTION READ ONLY"]
        );
    }
}
