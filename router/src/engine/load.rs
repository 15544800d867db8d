//! `LOAD DATA LOCAL INFILE` into a sharded table.
//!
//! MariaDB reads the file, not the router: on a connection to logical shard 0's server a
//! temporary table like the target is made in the keyspace's reference schema, and the
//! client's statement — its options, column list and `SET` clause as written, only the table
//! name changed — loads the file the client sends into it (duplicates within the file are
//! resolved there as `REPLACE`/`IGNORE` say). Its rows are then streamed back and written
//! into the table as multi-row inserts routed by shard key (`INSERT IGNORE`, or `REPLACE`),
//! in one transaction (see `engine/insert_select.rs`), and the temporary table is dropped.
//! Memory holds one batch of rows.

use super::core::Engine;
use super::insert_select::literals;

use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::plan::InsertSelect;
use crate::session::Session;
use crate::sql::quote_ident;
use crate::topology::Unqualify;
use crate::wire::PacketIo;
use mysql_async::consts::ColumnFlags;

/// Rows written per insert.
const BATCH: usize = 500;

/// A `LOAD DATA LOCAL INFILE` into a sharded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSharded {
    pub keyspace: String,
    pub table: String,
    /// The client's statement with the table qualified with the keyspace's reference schema
    /// (where the temporary table is).
    pub temp_sql: Vec<u8>,
    /// `REPLACE` (else `IGNORE`: a `LOCAL` load skips duplicates, as MariaDB's does).
    pub replace: bool,
}

impl Engine {
    /// Runs `l`: see the module doc.
    ///
    /// # Errors
    /// Backend failures, the load's own errors, 1235 for a table with an auto-increment
    /// column the file does not fill.
    pub async fn load_sharded(
        &self,
        session: &mut Session,
        l: LoadSharded,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let rt = self.topo.table();
        let (ks, ps0) = super::gather::home_of(&rt, &l.keyspace)?;
        let addr = rt.shards.get(&ps0).map(|s| s.address()).unwrap_or_default();
        let map = |e: mysql_async::Error| from_backend(e, &ps0, &addr, Unqualify(Some(&ks)));
        let temp = format!(
            "{}.{}",
            quote_ident(&ks.reference_schema()),
            quote_ident(&l.table)
        );
        let mut lease = self.side_conn(session, &rt, &ps0).await?;
        let r = async {
            lease
                .conn
                .query_drop(format!(
                    "CREATE TEMPORARY TABLE {temp} LIKE {}.{}",
                    quote_ident(&ks.schema(0)),
                    quote_ident(&l.table)
                ))
                .await
                .map_err(map)?;
            let toks = crate::sql::lex::significant(&l.temp_sql, &session.lex);
            let (_, _, load_warnings, load_info) =
                super::single::load_local(session, &mut lease, &l.temp_sql, &toks, io, &map)
                    .await?;
            let number = |name: &str| super::lookup::info_number(&load_info, name).unwrap_or(0);
            let (records, file_deleted, file_skipped) =
                (number("Records:"), number("Deleted:"), number("Skipped:"));
            // The rows as loaded, in the columns' own bytes.
            let mut res = lease
                .conn
                .exec_iter(
                    super::gather::binary_read(&format!("SELECT * FROM {temp}")),
                    (),
                )
                .await
                .map_err(map)?;
            let cols = res.columns().unwrap_or_default();
            // An auto-increment column the file did not fill got the temporary table's own
            // numbers, which are not the table's.
            if let Some(c) = cols
                .iter()
                .find(|c| c.flags().contains(ColumnFlags::AUTO_INCREMENT_FLAG))
            {
                let name = c.name_str();
                let has_list = toks.iter().any(|t| {
                    t.kind == crate::sql::lex::Kind::Punct && l.temp_sql[t.start] == b'('
                });
                let named = toks.iter().any(|t| {
                    t.ident(&l.temp_sql)
                        .is_some_and(|i| i.eq_ignore_ascii_case(name.as_bytes()))
                });
                if has_list && !named {
                    res.drop_result().await.map_err(map)?;
                    return Err(SqlError::unsupported(format!(
                        "LOAD DATA into sharded table {} without a value for its auto-increment column {name}",
                        l.table
                    )));
                }
            }
            let names: Vec<String> = cols.iter().map(|c| quote_ident(&c.name_str())).collect();
            let (collations, decimal) = super::insert_select::column_kinds(&cols);
            let charsets = self.charsets_of(&collations).await?;
            let p = InsertSelect {
                keyspace: ks.name.clone(),
                head: format!(
                    "{} INTO {}.{} ({})",
                    if l.replace { "REPLACE" } else { "INSERT IGNORE" },
                    quote_ident(&ks.name),
                    quote_ident(&l.table),
                    names.join(", ")
                ),
                select: String::new(),
                tail: String::new(),
            };
            let own = self.statement_begin(session).await?;
            let written = async {
                let (mut affected, mut warnings, mut rows) = (0u64, 0u16, 0u64);
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let row = res.next().await.map_err(map)?;
                    let done = row.is_none();
                    if let Some(row) = row {
                        batch.push(row.unwrap());
                    }
                    if !batch.is_empty() && (done || batch.len() == BATCH) {
                        rows += batch.len() as u64;
                        let literals = literals(
                            std::mem::take(&mut batch),
                            &collations,
                            &decimal,
                            &charsets,
                            session.lex.no_backslash_escapes,
                        );
                        let (a, _, w, _, _) = self.write_rows(session, &p, literals, io).await?;
                        affected += a;
                        warnings = warnings.saturating_add(w);
                    }
                    if done {
                        return Ok::<_, SqlError>((affected, warnings, rows));
                    }
                }
            }
            .await;
            if written.is_err() {
                lease.dirty = true;
            }
            self.statement_end(session, own, written.is_ok()).await?;
            let (affected, warnings, rows) = written?;
            // Rows the file held twice were settled in the temporary table; rows already in
            // the table, here.
            let (affected, deleted, skipped) = if l.replace {
                // Each row the file replaced was written and deleted once more than the
                // temporary table's rows show.
                let replaced = affected.saturating_sub(rows);
                (
                    affected + 2 * file_deleted,
                    file_deleted + replaced,
                    file_skipped,
                )
            } else {
                (affected, file_deleted, file_skipped + rows.saturating_sub(affected))
            };
            let warnings = warnings.saturating_add(load_warnings);
            Ok((
                affected,
                warnings,
                format!(
                    "Records: {records}  Deleted: {deleted}  Skipped: {skipped}  Warnings: {warnings}"
                ),
            ))
        }
        .await;
        if lease
            .conn
            .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {temp}"))
            .await
            .is_err()
        {
            lease.dirty = true;
        }
        self.give_back(session, lease).await;
        let (affected, warnings, info) = r?;
        self.ok(session, io, affected, 0, warnings, &info).await
    }
}
