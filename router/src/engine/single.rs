//! One statement on one physical shard: on the router's own connections outside a
//! transaction (answers passed on as the server sent them), on the pinned one inside.

use super::core::{Engine, Lease};

use super::results::{self, column_def, write_columns, write_row, ResultWriter, QUERY_STATUS};
use crate::backend::error::from_backend;
use crate::error::{io_err, SqlError};
use crate::planner::{Exec, StmtKind, Targets};
use crate::session::Session;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::resultset::ColumnDef;
use crate::wire::PacketIo;

/// What a statement for one physical shard is sent as.
pub(super) enum WireStatement<'a> {
    /// `COM_QUERY`, with the default database it needs (`None`: its names are qualified);
    /// `remap`: values naming physical schemas in its answer are mapped back to the keyspace
    /// (a metadata question about a sharded keyspace).
    Text {
        sql: &'a [u8],
        db: Option<&'a str>,
        remap: bool,
    },
    /// `COM_STMT_EXECUTE` of `sql`, prepared on the connection that runs it, with the
    /// client's parameters.
    Prepared {
        sql: &'a str,
        types: &'a [(u8, bool)],
        params: &'a crate::session::prepared::Params<'a>,
        /// Parameters the client sent with `COM_STMT_SEND_LONG_DATA`, sent on the same way
        /// before the execute (whose values leave them out, as the client's did).
        long_data: Option<&'a std::collections::HashMap<u16, Vec<u8>>>,
    },
}

/// The size of each `COM_STMT_SEND_LONG_DATA` piece sent to a backend.
const LONG_DATA_PIECE: usize = 1 << 20;

impl Engine {
    /// Runs `stmt` on the first of `shards` that can be reached and streams its answer;
    /// `none` when there are no shards. `Ok(false)`: a prepared statement that cannot run
    /// server-side here (see [`Engine::run_single`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn one_of(
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
    pub(super) async fn run_single(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
    ) -> Result<Option<Result<(), SqlError>>, SqlError> {
        if super::scatter::own_conn_serves(session, ps) {
            let pool = self.backends.pool_for(rt, ps, session.grants.admin)?;
            if let Some(mut lease) = pool.get_wire(&session.backend_sets()).await? {
                if let Some(s) = &session.slot {
                    s.on_backend(Some((ps, lease.conn.id)));
                }
                // Its session state brought to the session's first.
                let r = match lease.conn.replay(&session.backend_sets()).await {
                    Ok(()) => {
                        self.wire_exchange(session, &pool, &mut lease, stmt, io, unq)
                            .await
                    }
                    Err(e) => Err(crate::backend::error::from_wire(
                        e, &pool.name, &pool.addr, unq,
                    )),
                };
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
        if !matches!(stmt, WireStatement::Text { .. }) && !session.in_transaction() {
            return Ok(None);
        }
        let mut lease = self.conn(session, rt, ps).await?;
        if lease.conn.own().is_none() && !matches!(stmt, WireStatement::Text { .. }) {
            self.give_back(session, lease).await;
            return Ok(None);
        }
        if let Some(s) = &session.slot {
            s.on_backend(Some((ps, lease.conn.id())));
        }
        let r = Box::pin(self.single(session, &mut lease, stmt, io, unq, rt)).await;
        Box::pin(self.give_back(session, lease)).await;
        Ok(Some(r))
    }

    /// Sends `stmt` on one of the router's own connections (whose session state is the
    /// session's: replayed on a pooled one, the session's own on one it holds) and writes the
    /// answer: column definitions read (their schema
    /// mapped back to the keyspace), rows passed on as the server sent them, the end of the
    /// result and OK packets with the session's own status.
    pub(super) async fn wire_exchange(
        &self,
        session: &mut Session,
        pool: &crate::backend::ShardPool,
        lease: &mut crate::backend::wire::WireLease,
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
    ) -> Result<(), SqlError> {
        use crate::backend::wire::WireError;
        use crate::wire::constants::{COM_QUERY, COM_STMT_EXECUTE};
        let map = |e: WireError| crate::backend::error::from_wire(e, &pool.name, &pool.addr, unq);
        let c = &mut lease.conn;
        let mut remap = false;
        let binary = match stmt {
            WireStatement::Text { sql, db, remap: r } => {
                remap = *r;
                if let Some(db) = db {
                    c.use_db(db).await.map_err(map)?;
                }
                c.command(COM_QUERY, sql).await.map_err(|e| map(e.into()))?;
                false
            }
            WireStatement::Prepared {
                sql,
                types,
                params,
                long_data,
            } => {
                let (id, n) = c.prepared(sql).await.map_err(map)?;
                if usize::from(n) != types.len() {
                    return Err(SqlError::router(format!(
                        "parameter count mismatch: the statement has {} markers, the backend counts {n}",
                        types.len()
                    )));
                }
                // Long data in pieces well under any `max_allowed_packet` (the server joins
                // them; it answers none).
                for (param, data) in long_data.iter().flat_map(|m| m.iter()) {
                    for piece in data.chunks(LONG_DATA_PIECE) {
                        c.command_with(crate::wire::constants::COM_STMT_SEND_LONG_DATA, |body| {
                            body.extend_from_slice(&id.to_le_bytes());
                            body.extend_from_slice(&param.to_le_bytes());
                            body.extend_from_slice(piece);
                        })
                        .await
                        .map_err(|e| map(e.into()))?;
                    }
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
        self.wire_answer(session, pool, lease, io, unq, (binary, remap))
            .await
    }

    /// Executes a prepared statement whose plan `e` names one target (see
    /// [`crate::session::prepared`]) as a server-side prepared statement there, `long_data`
    /// sent on as long data; binary rows are passed on as they come. A read, or a write with
    /// long data too large to bind into its text (writes wait for a cutover and are copied
    /// to a moving logical shard's target as any write). `Ok(false)`: not possible here (in a
    /// transaction, a plan of several targets, a write that needs a unique-key check, or the
    /// shard's server wants a login the router's own connections do not speak); the caller
    /// binds the parameters as literals instead.
    ///
    /// # Errors
    /// The backend's errors, mapped as for any statement.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute_prepared(
        &self,
        session: &mut Session,
        e: &Exec,
        types: &[(u8, bool)],
        params: &crate::session::prepared::Params<'_>,
        long_data: Option<&std::collections::HashMap<u16, Vec<u8>>>,
        io: &mut PacketIo,
        rt: &RoutingTable,
    ) -> Result<bool, SqlError> {
        self.check_auto_is_null(session, e)?;
        let in_txn = session.in_transaction();
        // (DDL commits a transaction first: the literal path does that.)
        if in_txn && e.kind == crate::planner::StmtKind::Ddl {
            return Ok(false);
        }
        if let Some(k) = e.keyspace.as_deref().filter(|k| !session.grants.may_use(k)) {
            return Err(crate::session::Grants::denied(&session.user, k));
        }
        let write = e.kind != crate::planner::StmtKind::Read;
        if write {
            if session.grants.read_only {
                return Err(crate::session::Grants::read_only_refusal(&session.user));
            }
            if e.conflict.is_some() || e.statement_prefix.is_some() || e.held.is_some() {
                return Ok(false);
            }
        }
        let r: Result<bool, SqlError> = async {
            if write {
                // As any write: one to a logical shard being cut over waits for the flip, and one
                // to a moving logical shard is copied before it is acknowledged (or, in a
                // transaction, when it commits).
                let written = self.moves.guard(session, e).await?;
                if in_txn {
                    session.txn_ls.extend(written);
                } else {
                    session.copy_after = written;
                }
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
            if t.raw.is_some() {
                return Ok(false);
            }
            let unq = Unqualify(ks);
            let stmt = WireStatement::Prepared {
                sql: &t.sql,
                types,
                params,
                long_data,
            };
            if let [ps] = t.shards.as_ref() {
                return answered(self.run_single(session, rt, ps, &stmt, io, unq).await?);
            }
            Box::pin(self.one_of(session, rt, &t.shards, &stmt, io, unq, t.none)).await
        }
        .await;
        session.copy_after.clear();
        self.after_lost(session, r).await
    }

    /// Reads the answer to a statement sent on `lease` and writes it to the client: rows
    /// passed on as the server sent them (`binary`: already in the binary protocol), column
    /// definitions with their schema mapped back to the keyspace, the end of the result and
    /// OK packets with the session's own status.
    pub(super) async fn wire_answer(
        &self,
        session: &mut Session,
        pool: &crate::backend::ShardPool,
        lease: &mut crate::backend::wire::WireLease,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        (binary, remap): (bool, bool),
    ) -> Result<(), SqlError> {
        // A `CALL` answers with several results: each but the last says more follow, as the
        // server's did (the client's own status otherwise).
        let outer_more = session.more_results;
        let r = self
            .wire_results(session, pool, lease, io, unq, (binary, remap), outer_more)
            .await;
        session.more_results = outer_more;
        r
    }

    /// [`Engine::wire_answer`]'s results, in order.
    #[allow(clippy::too_many_arguments)]
    async fn wire_results(
        &self,
        session: &mut Session,
        pool: &crate::backend::ShardPool,
        lease: &mut crate::backend::wire::WireLease,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        (binary, remap): (bool, bool),
        outer_more: bool,
    ) -> Result<(), SqlError> {
        use crate::backend::wire::{self, WireError};
        use crate::wire::constants::SERVER_MORE_RESULTS_EXISTS;
        let map = |e: WireError| crate::backend::error::from_wire(e, &pool.name, &pool.addr, unq);
        'results: loop {
            let c = &mut lease.conn;
            let p = c.read_packet().await.map_err(map)?;
            let more = match p.first() {
                Some(0x00) => {
                    let ok = wire::parse_ok(p).map_err(map)?;
                    session.query_status = ok.status & QUERY_STATUS;
                    let more = ok.status & SERVER_MORE_RESULTS_EXISTS != 0;
                    lease.clean = !more;
                    session.more_results = outer_more || more;
                    if ok.last_insert_id != 0 {
                        session.last_insert_id = ok.last_insert_id;
                    }
                    if ok.warnings > 0 {
                        session.conditions = Box::pin(wire_conditions(c, unq)).await;
                    }
                    let affected =
                        crate::session::affected_rows(ok.affected, &ok.info, session.found_rows());
                    if let Err(e) = self
                        .ok(
                            session,
                            io,
                            affected,
                            ok.last_insert_id,
                            ok.warnings,
                            &ok.info,
                        )
                        .await
                    {
                        break Err(e);
                    }
                    more
                }
                Some(0xff) => {
                    let e = wire::parse_err(p);
                    // The statement's conditions besides the error, as `SHOW WARNINGS` after
                    // it lists them (read from the connection that ran it, before it is
                    // given back).
                    session.error_conditions = Box::pin(wire_conditions(c, unq)).await;
                    // (Not reused unless that was read to its end.)
                    lease.clean = session.error_conditions.is_some();
                    break Err(map(e));
                }
                Some(0xfb) => {
                    // `LOAD DATA LOCAL INFILE`: the server asks for the client's file.
                    let request = p.to_vec();
                    if let Err(e) = Box::pin(relay_local_infile(session, c, io, &request)).await {
                        break Err(match e {
                            InfileError::Client(e) => io_err(e),
                            InfileError::Backend(e) => map(e),
                            InfileError::Refused(e) => e,
                        });
                    }
                    continue 'results;
                }
                None => {
                    break Err(map(WireError::Protocol(
                        "unexpected answer to a query".into(),
                    )))
                }
                Some(_) => {
                    let n = crate::wire::codec::Cursor::new(p)
                        .lenenc_int()
                        .ok_or_else(|| map(WireError::Protocol("bad column count".into())))?;
                    let malformed =
                        || map(WireError::Protocol("malformed column definition".into()));
                    // Column definitions pass as the server sent them (schema names mapped back
                    // to the keyspace), unless the router needs them: binary rows made from text
                    // ones (not when the server answers an execute in binary itself), or a result
                    // shadow's copy.
                    let passed = (binary || !io.binary_mode) && io.capture.is_none();
                    let mut defs = Vec::new();
                    if passed {
                        io.write_packet(p).await.map_err(io_err)?;
                    }
                    let extended = c.extended;
                    // Columns naming schemas, when rows about schemas the session may not see
                    // are to be left out.
                    let mut schema_cols: Vec<usize> = Vec::new();
                    let filter_rt = session.schema_filter.then(|| self.topo.table());
                    for i in 0..n {
                        let p = c.read_packet().await.map_err(map)?;
                        let p = if unq.keeps_all() {
                            std::borrow::Cow::Borrowed(p)
                        } else {
                            ColumnDef::remap_schema(p, |m| unq.apply(m)).ok_or_else(malformed)?
                        };
                        if filter_rt.is_some() {
                            if let Some(d) = ColumnDef::decode(&p, extended) {
                                if names_schema(&d.schema, &d.org_name) {
                                    schema_cols.push(i as usize);
                                }
                            }
                        }
                        if passed {
                            let p = ColumnDef::convert_extended(&p, extended, io.extended_metadata)
                                .ok_or_else(malformed)?;
                            io.write_packet(&p).await.map_err(io_err)?;
                        } else {
                            defs.push(ColumnDef::decode(&p, extended).ok_or_else(malformed)?);
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
                            session.query_status = status & QUERY_STATUS;
                            let more = status & SERVER_MORE_RESULTS_EXISTS != 0;
                            lease.clean = !more;
                            if warnings > 0 && !more {
                                session.conditions = Box::pin(wire_conditions(c, unq)).await;
                            }
                            session.more_results = outer_more || more;
                            if let Err(e) = results::write_end_warned(io, session, warnings).await {
                                break 'results Err(e);
                            }
                            break more;
                        }
                        if p.first() == Some(&0xff) {
                            let e = wire::parse_err(p);
                            lease.clean = true;
                            return Err(map(e));
                        }
                        if let (false, Some(rt)) = (schema_cols.is_empty() || binary, &filter_rt) {
                            if !text_row_visible(p, &schema_cols, |s| {
                                schema_visible(session, rt, s)
                            }) {
                                continue;
                            }
                        }
                        if binary {
                            io.write_binary_row(p).await.map_err(io_err)?;
                        } else if remap {
                            let row = remap_text_row(p, unq)
                                .ok_or_else(|| map(WireError::Protocol("malformed row".into())))?;
                            io.write_row(&row).await.map_err(io_err)?;
                        } else {
                            io.write_row(p).await.map_err(io_err)?;
                        }
                    }
                }
            };
            session.more_results = outer_more;
            if !more {
                break Ok(());
            }
        }
    }

    /// Runs one statement on one connection and streams its answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn single(
        &self,
        session: &mut Session,
        lease: &mut Lease,
        stmt: &WireStatement<'_>,
        io: &mut PacketIo,
        unq: crate::topology::Unqualify<'_>,
        rt: &RoutingTable,
    ) -> Result<(), SqlError> {
        if let Some(own) = lease.conn.own() {
            // The router's own connection (a transaction's, a reserved one, or one taken for
            // this statement with the session's settings): the answer is passed on as the
            // server sent it.
            let pool = self
                .backends
                .pool_for(rt, &lease.ps, session.grants.admin)?;
            own.start()
                .await
                .map_err(|e| crate::backend::error::from_backend(e, &pool.name, &pool.addr, unq))?;
            let r = self
                .wire_exchange(session, &pool, &mut own.lease, stmt, io, unq)
                .await;
            return match r {
                Ok(()) => io.flush().await.map_err(io_err),
                err => err,
            };
        }
        let WireStatement::Text { sql, db, remap } = *stmt else {
            return Err(SqlError::router(
                "a prepared statement on a pinned connection",
            ));
        };
        let ps_name = lease.ps.clone();
        let ps = ps_name.as_str();
        // The address is formatted only for an error.
        let map = |e: mysql_async::Error| {
            let addr = rt.shards.get(ps).map(|s| s.address()).unwrap_or_default();
            from_backend(e, ps, &addr, unq)
        };
        if let Some(db) = db {
            // The pinned connection's default database is not tracked: set each time.
            let use_db = format!("USE {}", crate::sql::quote_ident(db));
            lease.conn.query_drop(use_db).await.map_err(map)?;
        }
        // Every result of a `CALL`: each but the last says more follow. The `CALL`'s own final
        // OK (its status) is read by the driver with the last result set; it is written after
        // it, as the server sent it.
        let outer_more = session.more_results;
        // Only statements sent as the client's bytes (with a default database) can be `CALL`
        // or `LOAD DATA LOCAL`: the planner plans neither. Planned ones are not lexed again.
        let toks = match db {
            Some(_) => crate::sql::lex::significant(sql, &session.lex),
            None => Vec::new(),
        };
        let call = toks.first().is_some_and(|t| t.is_word(sql, "CALL"));
        if toks.first().is_some_and(|t| t.is_word(sql, "LOAD"))
            && toks.iter().take(4).any(|t| t.is_word(sql, "LOCAL"))
        {
            return Box::pin(self.load_local_pinned(session, lease, sql, &toks, io, &map)).await;
        }
        let r = async {
            let mut res = lease.conn.query_iter(sql).await.map_err(map)?;
            loop {
                let cols = res.columns().filter(|c| !c.is_empty());
                let Some(cols) = cols else {
                    let last = res.last_insert_id().unwrap_or(0);
                    let warnings = res.warnings();
                    let info = res.info().into_owned();
                    let affected = crate::session::affected_rows(
                        res.affected_rows(),
                        &info,
                        session.found_rows(),
                    );
                    if last != 0 {
                        session.last_insert_id = last;
                    }
                    if !res.is_empty() {
                        session.more_results = true;
                        self.ok(session, io, affected, last, warnings, &info)
                            .await?;
                        session.more_results = outer_more;
                        continue;
                    }
                    // Drain anything further (there should be nothing).
                    res.drop_result().await.map_err(map)?;
                    if warnings > 0 {
                        session.conditions = Box::pin(conditions(&mut lease.conn, unq)).await;
                    }
                    return self.ok(session, io, affected, last, warnings, &info).await;
                };
                let defs: Vec<ColumnDef> = cols.iter().map(|c| column_def(c, unq)).collect();
                write_columns(io, session, &defs).await?;
                let filter_rt = session.schema_filter.then(|| self.topo.table());
                let schema_cols: Vec<usize> = match &filter_rt {
                    Some(_) => defs
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| names_schema(&d.schema, &d.org_name))
                        .map(|(i, _)| i)
                        .collect(),
                    None => Vec::new(),
                };
                let mut w = ResultWriter::default();
                while let Some(mut row) = res.next().await.map_err(map)? {
                    if let Some(rt) = &filter_rt {
                        let hidden = schema_cols.iter().any(|&i| match row.as_ref(i) {
                            Some(mysql_async::Value::Bytes(b)) => std::str::from_utf8(b)
                                .map_or(true, |s| !schema_visible(session, rt, s)),
                            _ => false,
                        });
                        if hidden {
                            continue;
                        }
                    }
                    if remap {
                        remap_row(&mut row, unq);
                    }
                    write_row(io, &mut w, row).await?;
                }
                let warnings = res.warnings();
                if !res.is_empty() {
                    session.more_results = true;
                    results::write_end_warned(io, session, warnings).await?;
                    session.more_results = outer_more;
                    continue;
                }
                if call {
                    session.more_results = true;
                    results::write_end_warned(io, session, 0).await?;
                    session.more_results = outer_more;
                    let info = res.info().into_owned();
                    let affected = crate::session::affected_rows(
                        res.affected_rows(),
                        &info,
                        session.found_rows(),
                    );
                    drop(res);
                    if warnings > 0 {
                        session.conditions = Box::pin(conditions(&mut lease.conn, unq)).await;
                    }
                    return self.ok(session, io, affected, 0, warnings, &info).await;
                }
                drop(res);
                if warnings > 0 {
                    session.conditions = Box::pin(conditions(&mut lease.conn, unq)).await;
                }
                return results::write_end_warned(io, session, warnings).await;
            }
        }
        .await;
        session.more_results = outer_more;
        r
    }
}

impl Engine {
    /// `LOAD DATA LOCAL INFILE` on a transaction's or a reserved `mysql_async` connection: the
    /// router asks the client for the file itself (as the server would), and feeds the packets
    /// it sends to the connection's file handler as they come, while the statement runs.
    async fn load_local_pinned(
        &self,
        session: &mut Session,
        lease: &mut Lease,
        sql: &[u8],
        toks: &[crate::sql::lex::Token],
        io: &mut PacketIo,
        map: &(dyn Fn(mysql_async::Error) -> SqlError + Sync),
    ) -> Result<(), SqlError> {
        let (affected, last, warnings, info) =
            load_local(session, lease, sql, toks, io, map).await?;
        if warnings > 0 {
            session.conditions = Box::pin(conditions(&mut lease.conn, Unqualify(None))).await;
        }
        let affected = crate::session::affected_rows(affected, &info, session.found_rows());
        self.ok(session, io, affected, last, warnings, &info).await
    }
}

/// Runs `LOAD DATA LOCAL INFILE` statement `sql` on `lease`'s `mysql_async` connection: asks
/// the client for the file and feeds the packets it sends to the connection as they come;
/// returns the statement's affected rows, last insert id, warnings and info.
pub(super) async fn load_local(
    session: &Session,
    lease: &mut Lease,
    sql: &[u8],
    toks: &[crate::sql::lex::Token],
    io: &mut PacketIo,
    map: &(dyn Fn(mysql_async::Error) -> SqlError + Sync),
) -> Result<(u64, u64, u16, String), SqlError> {
    {
        use crate::wire::constants::CLIENT_LOCAL_FILES;
        use futures_util::StreamExt;
        if session.client_caps & CLIENT_LOCAL_FILES == 0 {
            return Err(SqlError::new(
                1148,
                "42000",
                "The used command is not allowed with this MariaDB version (the client did not enable LOCAL INFILE)",
            ));
        }
        let conn = match &mut lease.conn {
            crate::backend::Conn::Own(own) => {
                return Box::pin(load_local_own(session, own, sql, io, map)).await
            }
            crate::backend::Conn::Lib(c) => c,
        };
        let name = toks
            .iter()
            .position(|t| t.is_word(sql, "INFILE"))
            .and_then(|i| toks.get(i + 1))
            .filter(|t| t.kind == crate::sql::lex::Kind::String)
            .map(|t| crate::sql::classify::unquote(t.bytes(sql), &session.lex))
            .ok_or_else(|| SqlError::parse("LOAD DATA LOCAL INFILE needs a file name"))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        conn.set_infile_handler(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            Ok(stream.boxed())
        });
        let run = async {
            use mysql_async::prelude::Queryable;
            let r = conn.query_drop(sql).await;
            if r.is_err() {
                // The file is not wanted: the handler (and its channel) goes, so the client's
                // packets are read and dropped.
                conn.set_infile_handler(async {
                    Err(mysql_async::Error::Other("no file wanted".into()))
                });
            }
            r.map(|()| {
                (
                    conn.affected_rows(),
                    conn.last_insert_id().unwrap_or(0),
                    conn.get_warnings(),
                    conn.info().into_owned(),
                )
            })
        };
        let pump = async {
            let mut request = vec![0xfb];
            request.extend_from_slice(&name);
            io.write_packet(&request).await?;
            io.flush().await?;
            let mut buf = Vec::new();
            let mut tx = Some(tx);
            loop {
                io.read_packet(&mut buf).await?;
                if buf.is_empty() {
                    return Ok::<(), std::io::Error>(());
                }
                if let Some(t) = &tx {
                    if t.send(Ok(bytes::Bytes::copy_from_slice(&buf)))
                        .await
                        .is_err()
                    {
                        tx = None;
                    }
                }
            }
        };
        let (ran, pumped) = tokio::join!(run, pump);
        pumped.map_err(io_err)?;
        ran.map_err(map)
    }
}

/// [`load_local`] on one of the router's own connections: the server's request for the file
/// is relayed to the client, and the file's packets to the server.
async fn load_local_own(
    session: &Session,
    own: &mut crate::backend::conn::OwnConn,
    sql: &[u8],
    io: &mut PacketIo,
    map: &(dyn Fn(mysql_async::Error) -> SqlError + Sync),
) -> Result<(u64, u64, u16, String), SqlError> {
    use crate::backend::conn::lib_error;
    use crate::backend::wire::{self, WireError};
    let wmap = |e: WireError| map(lib_error(e));
    own.start().await.map_err(map)?;
    let c = own.wire();
    c.command(crate::wire::constants::COM_QUERY, sql)
        .await
        .map_err(|e| wmap(e.into()))?;
    loop {
        let p = c.read_packet().await.map_err(wmap)?;
        match p.first() {
            Some(0xfb) => {
                let request = p.to_vec();
                if let Err(e) = relay_local_infile(session, c, io, &request).await {
                    return Err(match e {
                        InfileError::Client(e) => io_err(e),
                        InfileError::Backend(e) => wmap(e),
                        InfileError::Refused(e) => {
                            own.lease.clean = true;
                            e
                        }
                    });
                }
            }
            Some(0x00) => {
                let ok = wire::parse_ok(p).map_err(wmap)?;
                if ok.status & crate::wire::constants::SERVER_MORE_RESULTS_EXISTS != 0 {
                    return Err(wmap(WireError::Protocol(
                        "more results after LOAD DATA".into(),
                    )));
                }
                let r = (ok.affected, ok.last_insert_id, ok.warnings, ok.info.clone());
                own.finished(ok);
                return Ok(r);
            }
            Some(0xff) => {
                let e = wire::parse_err(p);
                own.lease.clean = true;
                return Err(wmap(e));
            }
            _ => {
                return Err(wmap(WireError::Protocol(
                    "unexpected answer to LOAD DATA".into(),
                )))
            }
        }
    }
}

/// What [`Engine::run_single`]'s answer on a reachable shard means to its caller: the
/// statement's result (`true`: it ran), or `false` for a prepared statement that cannot run
/// server-side there.
pub(super) fn answered(r: Option<Result<(), SqlError>>) -> Result<bool, SqlError> {
    match r {
        Some(r) => r.map(|()| true),
        None => Ok(false),
    }
}

/// Where a plan that one physical shard answers runs: see [`single_target`].
pub(super) struct SingleTarget<'e, 'r> {
    pub(super) shards: std::borrow::Cow<'r, [String]>,
    pub(super) sql: std::borrow::Cow<'e, str>,
    /// For a verbatim statement: the client's bytes (sent instead of `sql`), and the
    /// keyspace's schema as the default database.
    pub(super) raw: Option<(&'e [u8], &'r str)>,
    /// The error when none of `shards` can be had because there are none.
    pub(super) none: &'static str,
    /// See [`WireStatement::Text`].
    pub(super) remap: bool,
    /// The default database `sql` needs ([`crate::planner::Exec::default_db`]).
    pub(super) db: Option<String>,
}

impl SingleTarget<'_, '_> {
    /// The statement to send.
    pub(super) fn statement(&self) -> WireStatement<'_> {
        match &self.raw {
            Some((sql, db)) => WireStatement::Text {
                sql,
                db: Some(db),
                remap: false,
            },
            None => WireStatement::Text {
                sql: self.sql.as_bytes(),
                db: self.db.as_deref(),
                remap: self.remap,
            },
        }
    }
}

/// For a plan that one physical shard answers — one logical shard with nothing for the
/// router to merge or limit, no table (the pinned shard in a transaction, else any), a read of
/// reference tables (any copy) — the shards that may answer it in the order to try them, its
/// statement, and the error to give when there are none.
pub(super) fn single_target<'e, 'r>(
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
                    raw: None,
                    none: "logical shard has no placement",
                    remap: e.metadata,
                    db: e.default_db.then(|| k.schema(*l)),
                })
            }
            _ => None,
        },
        (Targets::Any { sql }, _) => {
            // Where the session keeps its named locks and user variables, if it reserved a
            // connection there; else its transaction's shard; else any.
            let home =
                super::txn::home_shard(session, rt).filter(|h| session.reserved_ps.contains(h));
            let shards = match (home, session.txn_conns.keys().next()) {
                (Some(h), _) => vec![h],
                (None, Some(ps)) => vec![ps.clone()],
                (None, None) => rt.shard_names(),
            };
            Some(SingleTarget {
                shards: Cow::Owned(shards),
                sql: Cow::Borrowed(sql.as_str()),
                raw: None,
                none: "no physical shard is registered",
                remap: false,
                db: None,
            })
        }
        (Targets::Reference { sql }, Some(k)) if e.kind == StmtKind::Read => Some(SingleTarget {
            shards: Cow::Owned(k.physical_shards()),
            sql: Cow::Borrowed(sql.as_str()),
            raw: None,
            none: "keyspace has no physical shards",
            remap: e.metadata,
            db: None,
        }),
        (Targets::Verbatim { sql, .. }, Some(k)) if !k.sharded => {
            let ps = k
                .placement
                .first()
                .ok_or_else(|| SqlError::router("the keyspace has no placement"))?;
            Some(SingleTarget {
                shards: Cow::Borrowed(std::slice::from_ref(ps)),
                sql: Cow::Borrowed(""),
                // An unsharded keyspace's schema is its name.
                raw: Some((sql.as_slice(), k.name.as_str())),
                none: "the keyspace has no placement",
                remap: false,
                db: None,
            })
        }
        _ => None,
    })
}

/// The conditions (`SHOW WARNINGS`) a statement left on the router's own connection `c`,
/// with logical-shard schema names mapped back; `None` when they cannot be read.
async fn wire_conditions(
    c: &mut crate::backend::wire::WireConn,
    unq: Unqualify<'_>,
) -> Option<Vec<(String, u16, String)>> {
    let rows = c.text_rows("SHOW WARNINGS").await.ok()?;
    rows.into_iter()
        .map(|r| match r.as_slice() {
            [Some(level), Some(code), Some(msg)] => Some((
                String::from_utf8(level.clone()).ok()?,
                std::str::from_utf8(code).ok()?.parse().ok()?,
                unq.apply(std::str::from_utf8(msg).ok()?).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// The same on a backend connection of any kind.
pub(super) async fn conditions(
    conn: &mut crate::backend::Conn,
    unq: Unqualify<'_>,
) -> Option<Vec<(String, u16, String)>> {
    let rows: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await.ok()?;
    Some(
        rows.into_iter()
            .map(|(l, c, m)| (l, c, unq.apply(&m).into_owned()))
            .collect(),
    )
}

/// Why relaying a `LOAD DATA LOCAL INFILE` file failed.
enum InfileError {
    Client(std::io::Error),
    Backend(crate::backend::wire::WireError),
    /// The client may not send files; the server was told there is none.
    Refused(SqlError),
}

/// Relays a backend's request for a local file (`request`, the `0xFB` packet) to the client,
/// and the file's packets the client sends back, up to its empty packet, to the backend; the
/// backend's answer follows. A client that did not offer `CLIENT_LOCAL_FILES` is not asked:
/// the backend gets no data, and the client error 1148, as MariaDB gives it.
async fn relay_local_infile(
    session: &Session,
    c: &mut crate::backend::wire::WireConn,
    io: &mut PacketIo,
    request: &[u8],
) -> Result<(), InfileError> {
    use crate::wire::constants::CLIENT_LOCAL_FILES;
    if session.client_caps & CLIENT_LOCAL_FILES == 0 {
        c.write_data(&[])
            .await
            .map_err(|e| InfileError::Backend(e.into()))?;
        c.drain_results().await.map_err(InfileError::Backend)?;
        return Err(InfileError::Refused(SqlError::new(
            1148,
            "42000",
            "The used command is not allowed with this MariaDB version (the client did not enable LOCAL INFILE)",
        )));
    }
    io.write_packet(request)
        .await
        .map_err(InfileError::Client)?;
    io.flush().await.map_err(InfileError::Client)?;
    let mut buf = Vec::new();
    loop {
        io.read_packet(&mut buf)
            .await
            .map_err(InfileError::Client)?;
        c.write_data(&buf)
            .await
            .map_err(|e| InfileError::Backend(e.into()))?;
        if buf.is_empty() {
            return Ok(());
        }
    }
}

/// A text-protocol row with each value that names a physical schema of the keyspace mapped
/// back to the keyspace's name; `None` for a malformed row.
fn remap_text_row(p: &[u8], unq: Unqualify<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(p.len());
    let mut c = crate::wire::codec::Cursor::new(p);
    while c.remaining() > 0 {
        if c.peek() == Some(0xfb) {
            c.u8();
            out.push(0xfb);
            continue;
        }
        let cell = c.lenenc_str()?;
        match std::str::from_utf8(cell) {
            Ok(text) => crate::wire::codec::put_lenenc_str(&mut out, unq.apply(text).as_bytes()),
            Err(_) => crate::wire::codec::put_lenenc_str(&mut out, cell),
        }
    }
    Some(out)
}

/// The same for a decoded row.
fn remap_row(row: &mut mysql_async::Row, unq: Unqualify<'_>) {
    for i in 0..row.len() {
        if let Some(mysql_async::Value::Bytes(b)) = row.as_ref(i) {
            if let Ok(text) = std::str::from_utf8(b) {
                if let std::borrow::Cow::Owned(mapped) = unq.apply(text) {
                    row.place(i, mysql_async::Value::Bytes(mapped.into_bytes()));
                }
            }
        }
    }
}

/// `information_schema` columns whose values name a schema.
const SCHEMA_COLUMNS: &[&str] = &[
    "SCHEMA_NAME",
    "TABLE_SCHEMA",
    "ROUTINE_SCHEMA",
    "TRIGGER_SCHEMA",
    "EVENT_OBJECT_SCHEMA",
    "EVENT_SCHEMA",
    "CONSTRAINT_SCHEMA",
    "INDEX_SCHEMA",
    "REFERENCED_TABLE_SCHEMA",
    "UNIQUE_CONSTRAINT_SCHEMA",
    "SPECIFIC_SCHEMA",
    "OBJECT_SCHEMA",
];

/// Whether a result column (its table's schema, its column's own name) names schemas.
fn names_schema(schema: &[u8], org_name: &[u8]) -> bool {
    schema.eq_ignore_ascii_case(b"information_schema")
        && SCHEMA_COLUMNS
            .iter()
            .any(|c| org_name.eq_ignore_ascii_case(c.as_bytes()))
}

/// Whether the session may see schema `name`: `information_schema`, or an unsharded keyspace
/// (whose schema is its name) the user may use.
fn schema_visible(session: &Session, rt: &RoutingTable, name: &str) -> bool {
    name.eq_ignore_ascii_case("information_schema")
        || rt
            .keyspace(name)
            .is_some_and(|k| !k.sharded && session.grants.may_use(name))
}

/// Whether a text row shows only visible schemas in columns `cols` (NULL is visible).
fn text_row_visible(p: &[u8], cols: &[usize], visible: impl Fn(&str) -> bool) -> bool {
    let mut c = crate::wire::codec::Cursor::new(p);
    let mut i = 0;
    while c.remaining() > 0 {
        if c.peek() == Some(0xfb) {
            c.u8();
            i += 1;
            continue;
        }
        let Some(cell) = c.lenenc_str() else {
            return true;
        };
        if cols.contains(&i) && !std::str::from_utf8(cell).is_ok_and(&visible) {
            return false;
        }
        i += 1;
    }
    true
}
