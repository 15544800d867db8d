//! Writes and DDL over several physical shards, run concurrently; a partial failure names the
//! shards that committed.

use super::core::{Engine, WriteResult};

use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::StmtKind;
use crate::session::Session;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::PacketIo;

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn multi_write(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: super::core::Work,
        mut dbs: std::collections::BTreeMap<String, Vec<String>>,
        kind: StmtKind,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
        copies: bool,
        split_insert: bool,
    ) -> Result<(), SqlError> {
        let in_txn = session.in_transaction() && kind == StmtKind::Write;
        let found_rows = session.found_rows();
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
            // The default database of each statement, where it needs one. (The connection
            // keeps it: every statement the router sends names its schemas, or sets one.)
            let uses = dbs.remove(&ps).unwrap_or_default();
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
                    for (i, s) in sqls.iter().enumerate() {
                        if let Some(db) = uses.get(i) {
                            let use_db = format!("USE {}", crate::sql::quote_ident(db));
                            lease.conn.query_drop(use_db).await.map_err(map)?;
                        }
                        let res = lease.conn.query_iter(s.as_slice()).await.map_err(map)?;
                        let info = res.info().into_owned();
                        r.affected +=
                            crate::session::affected_rows(res.affected_rows(), &info, found_rows);
                        if let Some(id) = res.last_insert_id() {
                            r.last_insert_id = id;
                        }
                        let warnings = res.warnings();
                        r.query_status |= res.status() & super::results::QUERY_STATUS;
                        r.warnings = r.warnings.saturating_add(warnings);
                        r.infos
                            .push((res.info().into_owned(), res.affected_rows(), warnings));
                        res.drop_result().await.map_err(map)?;
                        // Read after each statement: the next one clears them.
                        if warnings > 0 {
                            let c = super::single::conditions(&mut lease.conn, unq).await;
                            match (&mut r.conditions, c) {
                                (Some(all), Some(c)) => all.extend(c),
                                (None, Some(c)) if r.warnings == warnings => r.conditions = Some(c),
                                (all, _) => *all = None,
                            }
                        } else if r.conditions.is_none() && r.warnings == 0 {
                            r.conditions = Some(Vec::new());
                        }
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
        let mut infos: Vec<(String, u64, u16)> = Vec::new();
        let mut conditions: Option<Vec<(String, u16, String)>> = Some(Vec::new());
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
                            total.query_status |= w.query_status;
                            infos.extend(w.infos);
                            match (&mut conditions, w.conditions) {
                                (Some(all), Some(c)) => all.extend(c),
                                (all, _) => *all = None,
                            }
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
            // Copies of a reference table each say the same; logical shards' counts add up.
            let info = if copies {
                infos.first().map(|i| i.0.clone()).unwrap_or_default()
            } else {
                merged_insert_info(&infos, split_insert)
            };
            // DDL on every logical shard's copy of one table (or every copy of a reference
            // table) warns once per copy of the same thing: one server would warn once.
            if let Some(c) = conditions.as_mut() {
                if kind == StmtKind::Ddl || copies {
                    let mut seen = std::collections::HashSet::new();
                    c.retain(|x| seen.insert(x.clone()));
                    total.warnings = u16::try_from(c.len()).unwrap_or(u16::MAX);
                }
            }
            session.conditions = conditions;
            session.query_status |= total.query_status;
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
        if ok_shards.is_empty() || session.undone_on_error {
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

impl Engine {
    /// An `UPDATE` or `DELETE` with `LIMIT` over several logical shards (see
    /// [`crate::planner::Local::LimitedWrite`]): one logical shard after another, each with
    /// the rows still to go as its limit, until none are; all of it or nothing (a transaction
    /// of the router's own, or a savepoint in the client's). The OK sums the parts.
    pub(super) async fn limited_write(
        &self,
        session: &mut Session,
        w: crate::planner::LimitedWrite,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let own = self.statement_begin(session).await?;
        let r = self.limited_parts(session, &w, io).await;
        self.answer_parts(session, io, own, r).await
    }

    /// Ends a write split into parts (its transaction or savepoint: all of it or nothing) and
    /// answers with the parts summed.
    async fn answer_parts(
        &self,
        session: &mut Session,
        io: &mut PacketIo,
        own: bool,
        r: Result<Parts, SqlError>,
    ) -> Result<(), SqlError> {
        self.statement_end(session, own, r.is_ok()).await?;
        let p = r?;
        session.conditions = p.conditions;
        let info = crate::wire::resultset::merged_info(p.infos.iter().map(String::as_str));
        self.ok(session, io, p.affected, 0, p.warnings, &info).await
    }

    /// Runs one part of a write split over logical shards: `template` on logical shard `ls`
    /// of `keyspace`, as a plan of its own (so that moves and fences apply as to any write),
    /// its OK held back and added to `parts`. Returns its affected rows and info text.
    async fn write_part(
        &self,
        session: &mut Session,
        keyspace: &str,
        template: String,
        ls: u32,
        io: &mut PacketIo,
        parts: &mut Parts,
    ) -> Result<(u64, String), SqlError> {
        use crate::planner::{Exec, Plan, RouteKind, Targets};
        let plan = Plan::Exec(Box::new(Exec::plain(
            Some(keyspace.to_string()),
            StmtKind::Write,
            RouteKind::One,
            Targets::Ls {
                template,
                ls: vec![ls],
            },
        )));
        let outer = std::mem::replace(&mut session.defer_ok, true);
        let r = Box::pin(self.execute(session, plan, io)).await;
        session.defer_ok = outer;
        let done = session.deferred_ok.take();
        r?;
        let (a, _, wn, info) = done.unwrap_or_default();
        parts.affected += a;
        parts.warnings = parts.warnings.saturating_add(wn);
        match (&mut parts.conditions, session.conditions.take()) {
            (Some(all), Some(c)) => all.extend(c),
            (all, _) if wn > 0 => *all = None,
            _ => {}
        }
        if !info.is_empty() {
            parts.infos.push(info.clone());
        }
        Ok((a, info))
    }

    /// The parts of [`Engine::limited_write`], summed.
    async fn limited_parts(
        &self,
        session: &mut Session,
        w: &crate::planner::LimitedWrite,
        io: &mut PacketIo,
    ) -> Result<Parts, SqlError> {
        use crate::planner::LIMIT_PLACEHOLDER;
        let mut parts = Parts::default();
        let mut left = w.limit;
        for &ls in &w.ls {
            if left == 0 {
                break;
            }
            let template = w.template.replacen(LIMIT_PLACEHOLDER, &left.to_string(), 1);
            let (a, info) = self
                .write_part(session, &w.keyspace, template, ls, io, &mut parts)
                .await?;
            // An UPDATE's limit counts the rows it matched, changed or not.
            let found = if w.update {
                super::lookup::info_number(&info, "Rows matched:").unwrap_or(a)
            } else {
                a
            };
            left = left.saturating_sub(found);
        }
        Ok(parts)
    }
}

/// What the parts of a write split over logical shards add up to: affected rows, warnings,
/// info texts, and their conditions (`None` once a part's are unknown).
struct Parts {
    affected: u64,
    warnings: u16,
    infos: Vec<String>,
    conditions: Option<Vec<(String, u16, String)>>,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            affected: 0,
            warnings: 0,
            infos: Vec::new(),
            conditions: Some(Vec::new()),
        }
    }
}

impl Engine {
    /// An `UPDATE` or `DELETE` with `ORDER BY` and `LIMIT n` over several logical shards (see
    /// [`crate::planner::Local::OrderedWrite`]), all of it or nothing as
    /// [`Engine::limited_write`]:
    ///
    /// 1. each logical shard's first `n` rows in that order that match the condition are read
    ///    and locked (`… ORDER BY … LIMIT n FOR UPDATE`, so that they stay as read until the
    ///    write), and copied with their logical shard's number into a temporary table with
    ///    the table's columns on logical shard 0's server (nothing there commits: no `ALTER`);
    /// 2. MariaDB picks the first `n` of them all there, by the statement's own `ORDER BY`
    ///    (its collations, its expressions), and the primary keys of those are read;
    /// 3. the statement, without its `WHERE`, `ORDER BY` and `LIMIT`, runs on each logical shard
    ///    for its chosen rows (`WHERE (primary key) IN (…)`), each part a plan of its own.
    ///
    /// Which of rows that tie in the order are taken is not defined, as in MariaDB. At most
    /// `max_gather_rows` rows are read.
    pub(super) async fn ordered_write(
        &self,
        session: &mut Session,
        w: crate::planner::OrderedWrite,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let refuse = |what: &str| {
            SqlError::unsupported(format!(
                "ORDER BY in an UPDATE or DELETE across logical shards {what}"
            ))
        };
        let c = crate::sql::rewrite::write_clauses(w.template.as_bytes())
            .filter(|c| c.order.is_some() && c.limit == Some(w.limit))
            .ok_or_else(|| refuse("in this form"))?;
        if c.order_by_position {
            return Err(refuse("by a column number"));
        }
        let rt = self.topo.table();
        let ks = rt
            .keyspace(&w.keyspace)
            .ok_or_else(|| SqlError::unknown_database(&w.keyspace))?
            .clone();
        let keys =
            super::unique_keys::read_table(&self.backends, &rt, &w.keyspace, &w.table).await?;
        let pk = keys
            .iter()
            .find(|k| k.name == "PRIMARY")
            .map(|k| k.columns.clone())
            .ok_or_else(|| refuse("on a table without a primary key"))?;
        let own = self.statement_begin(session).await?;
        let r = self.ordered_parts(session, &rt, &ks, &w, &c, &pk, io).await;
        self.answer_parts(session, io, own, r).await
    }

    /// The steps of [`Engine::ordered_write`] inside its transaction or savepoint.
    #[allow(clippy::too_many_arguments)]
    async fn ordered_parts(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        w: &crate::planner::OrderedWrite,
        c: &crate::sql::rewrite::WriteClauses,
        pk: &[String],
        io: &mut PacketIo,
    ) -> Result<Parts, SqlError> {
        use crate::sql::{quote_ident, LS_PLACEHOLDER};
        let text = w.template.as_str();
        let piece = |(s, e): (usize, usize)| text.get(s..e).unwrap_or_default().trim();
        let table = piece(c.table);
        // The name the statement's clauses call the table by: its alias, or its name.
        let toks = crate::sql::lex::significant(table.as_bytes(), &Default::default());
        let called = match toks.as_slice() {
            [.., a, b]
                if !(a.kind == crate::sql::lex::Kind::Punct
                    && a.bytes(table.as_bytes()) == b".") =>
            {
                std::str::from_utf8(b.bytes(table.as_bytes()))
                    .unwrap_or_default()
                    .to_string()
            }
            _ => quote_ident(&w.table),
        };
        let condition = c
            .condition
            .map(|r| format!(" WHERE {}", piece(r)))
            .unwrap_or_default();
        let order = c.order.map(piece).unwrap_or_default();
        let limit = w.limit;
        let (ps0, schema0) = (
            ks.placement.first().cloned().ok_or_else(|| {
                SqlError::router(format!("keyspace {} has no placement", ks.name))
            })?,
            ks.schema(0),
        );
        let temp = format!(
            "{}.{}",
            quote_ident(&ks.reference_schema()),
            quote_ident(&w.table)
        );
        let unq = Unqualify(Some(ks));
        let max = self.max_gather_rows;
        let too_many = || {
            SqlError::unsupported(format!(
                "ORDER BY … LIMIT {limit} in an UPDATE or DELETE across logical shards: more than max_gather_rows ({max}) rows to choose from"
            ))
        };
        // 1. Each logical shard's first rows, locked, into the temporary table.
        let mut home = self.conn(session, rt, &ps0).await?;
        let addr0 = rt.shards.get(&ps0).map(|s| s.address()).unwrap_or_default();
        let map0 = |e: mysql_async::Error| from_backend(e, &ps0, &addr0, unq);
        let chosen: Result<Vec<(u32, String)>, SqlError> = async {
            // The table's columns (types and collations), after the logical shard's number;
            // made by CREATE … SELECT, as an ALTER TABLE would commit the transaction.
            home.conn
                .query_drop(format!(
                    "CREATE TEMPORARY TABLE {temp} (`__tessera_ls` INT UNSIGNED NOT NULL DEFAULT 0) SELECT * FROM {}.{} WHERE FALSE",
                    quote_ident(&schema0),
                    quote_ident(&w.table)
                ))
                .await
                .map_err(map0)?;
            let mut read = 0u64;
            for &ls in &w.ls {
                let ps = ks.placement.get(ls as usize).cloned().ok_or_else(|| {
                    SqlError::router(format!("logical shard {ls} has no placement"))
                })?;
                let from = table.replace(LS_PLACEHOLDER, &quote_ident(&ks.schema(ls)));
                let select = format!(
                    "SELECT {ls}, {called}.* FROM {from}{condition} ORDER BY {order} LIMIT {limit} FOR UPDATE"
                );
                if ps == ps0 {
                    let res = home
                        .conn
                        .query_iter(format!("INSERT INTO {temp} {select}"))
                        .await
                        .map_err(map0)?;
                    read += res.affected_rows();
                    res.drop_result().await.map_err(map0)?;
                } else {
                    let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
                    let mut other = self.conn(session, rt, &ps).await?;
                    let mut rows = super::insert_select::Rows::default();
                    let r = super::insert_select::read_rows(&mut other.conn, &select, max, &mut rows)
                        .await;
                    self.give_back(session, other).await;
                    r.map_err(|e| match e {
                        super::insert_select::Read::Backend(e) => from_backend(e, &ps, &addr, unq),
                        super::insert_select::Read::TooMany => too_many(),
                    })?;
                    read += rows.rows.len() as u64;
                    let values = self
                        .literals_of(rows, session.lex.no_backslash_escapes)
                        .await?;
                    for batch in values.chunks(500) {
                        home.conn
                            .query_drop(format!("INSERT INTO {temp} VALUES {}", batch.join(", ")))
                            .await
                            .map_err(map0)?;
                    }
                }
                if read > max {
                    return Err(too_many());
                }
            }
            // 2. The first of them all, by the statement's own order.
            let cols: Vec<String> = pk.iter().map(|c| quote_ident(c)).collect();
            let mut rows = super::insert_select::Rows::default();
            super::insert_select::read_rows(
                &mut home.conn,
                &format!(
                    "SELECT `__tessera_ls`, {} FROM {temp} AS {called} ORDER BY {order} LIMIT {limit}",
                    cols.join(", ")
                ),
                max,
                &mut rows,
            )
            .await
            .map_err(|e| match e {
                super::insert_select::Read::Backend(e) => map0(e),
                super::insert_select::Read::TooMany => too_many(),
            })?;
            let shards: Vec<u32> = rows
                .rows
                .iter()
                .map(|r| match r.first() {
                    Some(mysql_async::Value::Int(n)) => u32::try_from(*n).ok(),
                    Some(mysql_async::Value::UInt(n)) => u32::try_from(*n).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| SqlError::router("a chosen row without its logical shard"))?;
            let keys = self
                .literals_of(
                    super::insert_select::Rows {
                        rows: rows.rows.into_iter().map(|mut r| r.split_off(1)).collect(),
                        collations: rows.collations.split_off(1.min(rows.collations.len())),
                        decimal: rows.decimal.split_off(1.min(rows.decimal.len())),
                    },
                    session.lex.no_backslash_escapes,
                )
                .await?;
            Ok(shards.into_iter().zip(keys).collect())
        }
        .await;
        let dropped = home
            .conn
            .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {temp}"))
            .await
            .is_ok();
        if !dropped {
            home.dirty = true;
        }
        self.give_back(session, home).await;
        let chosen = chosen?;
        // 3. The write, on each logical shard for its chosen rows.
        let head = piece(c.head);
        let key = if pk.len() == 1 {
            quote_ident(&pk[0])
        } else {
            format!(
                "({})",
                pk.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut parts = Parts::default();
        let mut by_ls: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
        for (ls, k) in chosen {
            // A one-column key's literal without the row's parentheses.
            let k = if pk.len() == 1 {
                k.strip_prefix('(')
                    .and_then(|k| k.strip_suffix(')'))
                    .unwrap_or(&k)
                    .to_string()
            } else {
                k
            };
            by_ls.entry(ls).or_default().push(k);
        }
        if by_ls.is_empty() && w.update {
            parts
                .infos
                .push("Rows matched: 0  Changed: 0  Warnings: 0".to_string());
        }
        for (ls, keys) in by_ls {
            let template = format!("{head} WHERE {key} IN ({})", keys.join(", "));
            self.write_part(session, &w.keyspace, template, ls, io, &mut parts)
                .await?;
        }
        Ok(parts)
    }
}

/// The info text of one statement split over logical shards, as MariaDB writes it for the
/// whole: the parts' counts summed (`split_insert`: the parts are one multi-row `INSERT`'s
/// rows). A part of a split multi-row `INSERT` that got one row has
/// no info text of its own (MariaDB writes none for one row): it counts as `Records: 1`, a
/// duplicate when it did not insert exactly one row, and its warnings.
fn merged_insert_info(infos: &[(String, u64, u16)], split_insert: bool) -> String {
    let records = split_insert
        || infos
            .iter()
            .any(|(i, _, _)| crate::wire::resultset::info_text(i).starts_with("Records: "));
    let filled: Vec<String> = infos
        .iter()
        .map(|(i, affected, warnings)| match (records, i.is_empty()) {
            (true, true) => format!(
                "Records: 1  Duplicates: {}  Warnings: {warnings}",
                u64::from(*affected != 1)
            ),
            _ => i.clone(),
        })
        .collect();
    crate::wire::resultset::merged_info(filled.iter().map(String::as_str))
}
