//! `INSERT … SELECT` with a sharded table on either side (`planner/insert.rs`).
//!
//! The select's rows are read first, all of them, as MariaDB reads them before it writes
//! (an `INSERT INTO t SELECT … FROM t` never reads its own new rows): straight from each
//! logical shard when the planner splits the select into per-shard selects whose rows need no
//! merge, otherwise answered by MariaDB over gathered rows (`engine/gather.rs`). They are read
//! in the binary protocol with `character_set_results = binary`, so every value is the
//! column's own bytes, and written back as literals of the column's own character set. Then
//! they are written as multi-row `INSERT`s of the statement's own head and tail, each planned
//! like any insert (split by shard key, sequences, lookup vindexes, unique-key checks), all in
//! one transaction: the client's (undone to a savepoint when the statement fails, as InnoDB
//! undoes a failed statement), or one of the router's own for an autocommit statement. At
//! most `max_gather_rows` rows are read; past that the statement is refused before it writes.

use super::core::Engine;
use super::gather::literal;

use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::plan::{InsertSelect, SubqueriesFirst, SubqueryKind, Targets};
use crate::planner::{Plan, SavepointOp};
use crate::session::Session;
use crate::sql::{quote_ident, LS_PLACEHOLDER};
use crate::topology::{RoutingTable, Unqualify};
use crate::wire::PacketIo;
use mysql_async::consts::ColumnType;
use mysql_async::Value;
use std::collections::HashMap;

/// Rows per `INSERT` written.
const BATCH: usize = 500;

/// The savepoint that makes an `INSERT … SELECT` or a `LOAD DATA` into a sharded table in a
/// client's transaction all or nothing.
const GUARD: &str = "__tessera_statement";

/// The rows read, and each column's collation id and whether it is a decimal.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) rows: Vec<Vec<Value>>,
    pub(super) collations: Vec<u16>,
    pub(super) decimal: Vec<bool>,
}

impl Engine {
    pub(super) async fn insert_select(
        &self,
        session: &mut Session,
        p: InsertSelect,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let read = self.select_rows(session, &p.select).await?;
        let literals = self
            .literals_of(read, session.lex.no_backslash_escapes)
            .await?;
        let own = self.statement_begin(session).await?;
        let r = self.write_rows(session, &p, literals, io).await;
        self.statement_end(session, own, r.is_ok()).await?;
        let (affected, last, warnings, records, duplicates) = r?;
        let info = format!("Records: {records}  Duplicates: {duplicates}  Warnings: {warnings}");
        self.ok(session, io, affected, last, warnings, &info).await
    }

    /// Makes the writes that follow one statement, all or nothing: in a transaction of the
    /// router's own under autocommit (returns `true`), else in the client's, guarded by a
    /// savepoint.
    pub(super) async fn statement_begin(&self, session: &mut Session) -> Result<bool, SqlError> {
        let own = !session.in_transaction();
        if own {
            session.explicit_txn = true;
        } else {
            self.savepoint(session, SavepointOp::Set(GUARD.into()))
                .await?;
        }
        session.undone_on_error = true;
        Ok(own)
    }

    /// Ends what [`Engine::statement_begin`] began: committed or released when `ok`, else
    /// rolled back (to the savepoint).
    pub(super) async fn statement_end(
        &self,
        session: &mut Session,
        own: bool,
        ok: bool,
    ) -> Result<(), SqlError> {
        session.undone_on_error = false;
        match (ok, own) {
            (true, true) => self.finish_txn(session, true).await,
            (true, false) => {
                self.savepoint(session, SavepointOp::Release(GUARD.into()))
                    .await
            }
            (false, true) => {
                let _ = self.finish_txn(session, false).await;
                Ok(())
            }
            (false, false) => {
                if session.in_transaction() {
                    self.undo_to(session, GUARD).await;
                }
                Ok(())
            }
        }
    }

    /// Every row of the select, read before anything is written.
    async fn select_rows(&self, session: &mut Session, select: &str) -> Result<Rows, SqlError> {
        let rt = self.topo.table();
        let limit = self.max_gather_rows;
        let plan = crate::planner::plan_session(
            select,
            session.keyspace.as_deref(),
            session.last_insert_id,
            &rt,
        );
        // Per-shard selects whose rows together are the answer, as they are.
        let direct: Option<(String, Vec<(String, String)>)> = match &plan {
            Ok(Plan::Exec(e))
                if e.merge.is_none()
                    && e.limit.is_none()
                    && !e.found_rows
                    && e.held.is_none()
                    && e.statement_prefix.is_none() =>
            {
                let ks = e.keyspace.as_deref().and_then(|k| rt.keyspace(k));
                match (&e.targets, ks) {
                    (Targets::Ls { template, ls }, Some(k)) if k.sharded => ls
                        .iter()
                        .map(|&l| {
                            let ps = k.placement.get(l as usize).cloned()?;
                            let sql = template.replace(LS_PLACEHOLDER, &quote_ident(&k.schema(l)));
                            Some((ps, sql))
                        })
                        .collect::<Option<Vec<_>>>()
                        .map(|v| (k.name.clone(), v)),
                    (Targets::Reference { sql }, Some(k)) => k
                        .placement
                        .first()
                        .map(|ps| (k.name.clone(), vec![(ps.clone(), sql.clone())])),
                    // No table: the session's home server answers it.
                    (Targets::Any { sql }, _) => super::txn::home_shard(session, &rt)
                        .map(|ps| (String::new(), vec![(ps, sql.clone())])),
                    _ => None,
                }
            }
            _ => None,
        };
        let mut out = Rows::default();
        if let Some((ks, statements)) = direct {
            let k = rt.keyspace(&ks).cloned();
            for (ps, sql) in statements {
                let mut lease = self.conn(session, &rt, &ps).await?;
                let r = read_rows(&mut lease.conn, &sql, limit, &mut out).await;
                self.give_back(session, lease).await;
                let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
                r.map_err(|e| match e {
                    Read::Backend(e) => from_backend(e, &ps, &addr, Unqualify(k.as_ref())),
                    Read::TooMany => too_many(limit),
                })?;
            }
            return Ok(out);
        }
        // Anything else: MariaDB answers the select over the gathered rows.
        let g = crate::planner::gather::source(select, session.keyspace.as_deref(), &rt)?;
        let (ks, ps0) = super::gather::home_of(&rt, &g.keyspace)?;
        let mut lease = self.conn(session, &rt, &ps0).await?;
        let r = async {
            self.fill_gathered(session, &rt, &ks, &g, &mut lease)
                .await?;
            let addr = rt.shards.get(&ps0).map(|s| s.address()).unwrap_or_default();
            read_rows(&mut lease.conn, &g.sql, limit, &mut out)
                .await
                .map_err(|e| match e {
                    Read::Backend(e) => from_backend(e, &ps0, &addr, Unqualify(Some(&ks))),
                    Read::TooMany => too_many(limit),
                })
        }
        .await;
        self.drop_gathered(&ks, &g.tables, &mut lease).await;
        self.give_back(session, lease).await;
        r?;
        Ok(out)
    }

    /// An `UPDATE` or `DELETE` with subqueries over other sharded tables: each subquery is
    /// answered (all of it, before the statement runs, as MariaDB materialises a subquery over
    /// the table it writes), its rows written into the statement as values, and the statement
    /// planned and run again.
    pub(super) async fn subqueries_first(
        &self,
        session: &mut Session,
        p: SubqueriesFirst,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let mut sql = String::with_capacity(p.sql.len() + 64);
        let mut at = 0;
        for q in &p.subqueries {
            let inner = match q.kind {
                SubqueryKind::Exists => {
                    let open = p.sql[q.start..q.end]
                        .find('(')
                        .map(|i| q.start + i)
                        .ok_or_else(|| SqlError::router("EXISTS without a subquery"))?;
                    &p.sql[open + 1..q.end - 1]
                }
                _ => &p.sql[q.start + 1..q.end - 1],
            };
            let read = self.select_rows(session, inner).await?;
            let n = read.rows.len();
            if q.kind == SubqueryKind::Quantified && read.collations.len() != 1 {
                return Err(SqlError::unsupported(
                    "ANY, SOME or ALL over a subquery of several columns that reads sharded tables in an UPDATE or DELETE",
                ));
            }
            let rows = self
                .literals_of(read, session.lex.no_backslash_escapes)
                .await?;
            let values = match q.kind {
                SubqueryKind::Exists => if n > 0 { "TRUE" } else { "FALSE" }.to_string(),
                // An empty list is no SQL: an empty subquery stands for it.
                SubqueryKind::In if rows.is_empty() => "(SELECT 1 FROM DUAL WHERE FALSE)".into(),
                SubqueryKind::In => format!("({})", rows.join(", ")),
                // The same comparison with each value, NULLs included: a table value
                // constructor of them.
                SubqueryKind::Quantified if rows.is_empty() => {
                    "(SELECT 1 FROM DUAL WHERE FALSE)".into()
                }
                SubqueryKind::Quantified => format!(
                    "(SELECT * FROM (VALUES ({})) AS tsr_values)",
                    rows.join("), (")
                ),
                SubqueryKind::Scalar => match rows.as_slice() {
                    [] => "(NULL)".into(),
                    [one] => one.clone(),
                    _ => {
                        return Err(SqlError::new(
                            1242,
                            "21000",
                            "Subquery returns more than 1 row",
                        ))
                    }
                },
            };
            sql.push_str(&p.sql[at..q.start]);
            sql.push_str(&values);
            at = q.end;
        }
        sql.push_str(&p.sql[at..]);
        let rt = self.topo.table();
        let plan = crate::planner::plan_session(
            &sql,
            session.keyspace.as_deref(),
            session.last_insert_id,
            &rt,
        )?;
        if matches!(plan, Plan::Local(crate::planner::Local::SubqueriesFirst(_))) {
            return Err(SqlError::router(
                "a statement still has subqueries after they were answered",
            ));
        }
        Box::pin(self.execute(session, plan, io)).await
    }

    /// The character set of each collation id among `collations` (the binary one aside).
    ///
    /// # Errors
    /// 1105 for an id no server names.
    pub(super) async fn charsets_of(
        &self,
        collations: &[u16],
    ) -> Result<HashMap<u16, String>, SqlError> {
        let mut charsets = HashMap::new();
        for &c in collations {
            if c != crate::wire::constants::BINARY_CHARSET && !charsets.contains_key(&c) {
                let (cs, _) = self.collation_names(c).await.ok_or_else(|| {
                    SqlError::router(format!(
                        "no server names collation {c} of a column whose rows are copied"
                    ))
                })?;
                charsets.insert(c, cs);
            }
        }
        Ok(charsets)
    }

    /// [`literals`] of every row read.
    pub(super) async fn literals_of(
        &self,
        read: Rows,
        no_backslash_escapes: bool,
    ) -> Result<Vec<String>, SqlError> {
        let charsets = self.charsets_of(&read.collations).await?;
        Ok(literals(
            read.rows,
            &read.collations,
            &read.decimal,
            &charsets,
            no_backslash_escapes,
        ))
    }

    /// Writes `rows` in batches of multi-row inserts, each planned and run like a client's;
    /// returns the affected rows, the first generated id, warnings, records and duplicates.
    pub(super) async fn write_rows(
        &self,
        session: &mut Session,
        p: &InsertSelect,
        rows: Vec<String>,
        io: &mut PacketIo,
    ) -> Result<(u64, u64, u16, u64, u64), SqlError> {
        let (mut affected, mut first_id, mut warnings, mut records, mut duplicates) =
            (0u64, 0u64, 0u16, 0u64, 0u64);
        for batch in rows.chunks(BATCH) {
            let sql = format!(
                "{} VALUES {} {}",
                p.head.trim_end(),
                batch.join(", "),
                p.tail.trim_start()
            );
            let rt: std::sync::Arc<RoutingTable> = self.topo.table();
            let plan = crate::planner::plan_session(
                sql.trim_end(),
                session.keyspace.as_deref(),
                session.last_insert_id,
                &rt,
            )?;
            let outer = std::mem::replace(&mut session.defer_ok, true);
            let r = Box::pin(self.execute(session, plan, io)).await;
            session.defer_ok = outer;
            let done = session.deferred_ok.take();
            r?;
            let (a, last, w, info) = done.unwrap_or_default();
            affected += a;
            if first_id == 0 {
                first_id = last;
            }
            warnings = warnings.saturating_add(w);
            records += super::lookup::info_number(&info, "Records:").unwrap_or(batch.len() as u64);
            duplicates += super::lookup::info_number(&info, "Duplicates:").unwrap_or(0);
        }
        Ok((affected, first_id, warnings, records, duplicates))
    }
}

pub(super) enum Read {
    Backend(mysql_async::Error),
    TooMany,
}

impl From<mysql_async::Error> for Read {
    fn from(e: mysql_async::Error) -> Self {
        Read::Backend(e)
    }
}

fn too_many(limit: u64) -> SqlError {
    SqlError::unsupported(format!(
        "INSERT … SELECT of more than max_gather_rows ({limit}) rows across logical shards"
    ))
}

/// Each column's collation id, and whether it is a decimal (written back as a number).
pub(super) fn column_kinds(cols: &[mysql_async::Column]) -> (Vec<u16>, Vec<bool>) {
    cols.iter()
        .map(|c| {
            (
                c.character_set(),
                matches!(
                    c.column_type(),
                    ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL
                ),
            )
        })
        .unzip()
}

/// Each row as `(literal, …)`: strings in their column's own character set (`charsets`, from
/// [`Engine::charsets_of`]), decimals as numbers.
pub(super) fn literals(
    rows: Vec<Vec<Value>>,
    collations: &[u16],
    decimal: &[bool],
    charsets: &HashMap<u16, String>,
    no_backslash_escapes: bool,
) -> Vec<String> {
    rows.into_iter()
        .map(|row| {
            let vals: Vec<String> = row
                .iter()
                .zip(collations)
                .zip(decimal)
                .map(|((v, c), &decimal)| match (v, charsets.get(c)) {
                    // A decimal as the exact number it is, not a string.
                    (Value::Bytes(b), _)
                        if decimal
                            && !b.is_empty()
                            && b.iter()
                                .all(|x| x.is_ascii_digit() || matches!(x, b'-' | b'.')) =>
                    {
                        b.iter().map(|&x| char::from(x)).collect()
                    }
                    (Value::Bytes(b), Some(cs)) => {
                        let mut s = String::with_capacity(b.len() * 2 + cs.len() + 4);
                        s.push('_');
                        s.push_str(cs);
                        s.push_str(" X'");
                        super::gather::push_hex(&mut s, b);
                        s.push('\'');
                        s
                    }
                    (v, _) => literal(v, no_backslash_escapes),
                })
                .collect();
            format!("({})", vals.join(", "))
        })
        .collect()
}

/// Reads every row of `sql` on `conn` into `out`, in the columns' own bytes.
pub(super) async fn read_rows(
    conn: &mut crate::backend::Conn,
    sql: &str,
    limit: u64,
    out: &mut Rows,
) -> Result<(), Read> {
    let mut res = conn.exec_iter(super::gather::binary_read(sql), ()).await?;
    if out.collations.is_empty() {
        if let Some(cs) = res.columns() {
            (out.collations, out.decimal) = column_kinds(&cs);
        }
    }
    while let Some(row) = res.next().await? {
        if out.rows.len() as u64 >= limit {
            return Err(Read::TooMany);
        }
        out.rows.push(row.unwrap());
    }
    Ok(())
}
