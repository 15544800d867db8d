//! Reads answered by MariaDB over gathered rows (`planner/gather.rs`): on one connection to
//! the physical shard of logical shard 0, a temporary table like each sharded table the
//! statement reads is made in the keyspace's reference schema and filled with the table's rows
//! from every logical shard (on that server by `INSERT … SELECT`, from the others in batches
//! of rows, never more than `max_gather_rows` in all); the statement then runs there, and the
//! temporary tables are dropped. Inside a transaction the rows are read on its connections.

use super::core::{Engine, Lease};
use super::single::WireStatement;

use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::plan::Gather;
use crate::session::Session;
use crate::sql::quote_ident;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::PacketIo;
use mysql_async::{Row, Value};

/// A value read in the binary protocol as a literal that stores exactly it, whatever the
/// connection's character set and `sql_mode`: strings (and decimals, bits, geometries) as
/// binary strings of their bytes (`CAST(X'…' AS BINARY)`: a string, never a number),
/// floating-point numbers in their shortest exact form.
pub(super) fn literal(v: &Value, no_backslash_escapes: bool) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Double(d) => format!("{d:?}"),
        Value::Bytes(b) => {
            let mut out = String::with_capacity(b.len() * 2 + 24);
            out.push_str("CAST(X'");
            push_hex(&mut out, b);
            out.push_str("' AS BINARY)");
            out
        }
        other => other.as_sql(no_backslash_escapes),
    }
}

/// Appends `b` as hexadecimal digits (the inside of an `X'…'` literal).
pub(super) fn push_hex(out: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2);
    for &x in b {
        out.push(char::from(DIGITS[usize::from(x >> 4)]));
        out.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
}

/// Keyspace `name` in `rt`, and the physical shard of its logical shard 0 (where gathered
/// rows and loaded files go).
///
/// # Errors
/// 1049 for an unknown keyspace; 1105 for one without placement.
pub(super) fn home_of(
    rt: &RoutingTable,
    name: &str,
) -> Result<(KeyspaceRouting, String), SqlError> {
    let ks = rt
        .keyspace(name)
        .ok_or_else(|| SqlError::unknown_database(name))?
        .clone();
    let ps0 = ks
        .placement
        .first()
        .cloned()
        .ok_or_else(|| SqlError::router(format!("keyspace {} has no placement", ks.name)))?;
    Ok((ks, ps0))
}

/// `sql`, a read, as the router runs it to copy rows: in the columns' own bytes
/// (`character_set_results = binary`) and whole, whatever the session's `sql_select_limit`.
pub(super) fn binary_read(sql: &str) -> String {
    format!(
        "SET STATEMENT character_set_results = binary, \
         sql_select_limit = 18446744073709551615 FOR {sql}"
    )
}

/// Rows written per `INSERT` into a temporary table.
const BATCH: usize = 500;

impl Engine {
    pub(super) async fn gather(
        &self,
        session: &mut Session,
        g: Gather,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let rt = self.topo.table();
        let (ks, ps0) = home_of(&rt, &g.keyspace)?;
        let mut lease = self.conn(session, &rt, &ps0).await?;
        let r = self.gather_on(session, &rt, &ks, &g, &mut lease, io).await;
        // The temporary tables go with the statement.
        self.drop_gathered(&ks, &g.tables, &mut lease).await;
        self.give_back(session, lease).await;
        r
    }

    async fn gather_on(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        g: &Gather,
        lease: &mut Lease,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        self.fill_gathered(session, rt, ks, g, lease).await?;
        let stmt = WireStatement::Text {
            sql: g.sql.as_bytes(),
            db: None,
            remap: false,
        };
        let unq = Unqualify(Some(ks));
        self.single(session, lease, &stmt, io, unq, rt).await
    }

    /// Makes a temporary table like each of `tables` in the keyspace's reference schema on
    /// `lease`'s connection (logical shard 0's server), filled with the table's rows from
    /// every logical shard. The caller drops them ([`Engine::drop_gathered`]).
    ///
    /// # Errors
    /// Backend failures; 1235 past `max_gather_rows`.
    pub(super) async fn fill_gathered(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        g: &Gather,
        lease: &mut Lease,
    ) -> Result<(), SqlError> {
        let tables = &g.tables;
        let unq = Unqualify(Some(ks));
        let addr0 = rt
            .shards
            .get(&lease.ps)
            .map(|s| s.address())
            .unwrap_or_default();
        let ps0 = lease.ps.clone();
        let map0 = |e: mysql_async::Error| from_backend(e, &ps0, &addr0, unq);
        let refs = quote_ident(&ks.reference_schema());
        let mut gathered = 0u64;
        let limit = self.max_gather_rows;
        let too_many = || {
            SqlError::unsupported(format!(
                "this read across logical shards: MariaDB would answer it over the rows of its sharded tables, but they are more than max_gather_rows ({limit})"
            ))
        };
        for t in tables {
            let temp = format!("{refs}.{}", quote_ident(t));
            // The rows the statement's own conditions on this table keep (it applies them
            // again over the gathered rows).
            let pushed = g.filters.iter().find(|f| f.table == *t);
            let filter = pushed
                .map(|f| format!(" AS {} WHERE {}", quote_ident(&f.known_as), f.cond))
                .unwrap_or_default();
            let all: Vec<u32>;
            let lss: &[u32] = match pushed.and_then(|f| f.ls.as_deref()) {
                Some(l) => l,
                None => {
                    all = (0..ks.logical_shards).collect();
                    &all
                }
            };
            lease
                .conn
                .query_drop(format!(
                    "CREATE TEMPORARY TABLE {temp} LIKE {}.{}",
                    quote_ident(&ks.schema(0)),
                    quote_ident(t)
                ))
                .await
                .map_err(map0)?;
            for &ls in lss {
                let ps = ks.placement.get(ls as usize).cloned().ok_or_else(|| {
                    SqlError::router(format!("logical shard {ls} has no placement"))
                })?;
                let src = format!("{}.{}", quote_ident(&ks.schema(ls)), quote_ident(t));
                if ps == lease.ps {
                    // The same server: copied there.
                    let res = lease
                        .conn
                        .query_iter(format!("INSERT INTO {temp} SELECT * FROM {src}{filter}"))
                        .await
                        .map_err(map0)?;
                    gathered += res.affected_rows();
                    res.drop_result().await.map_err(map0)?;
                    if gathered > limit {
                        return Err(too_many());
                    }
                    continue;
                }
                let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
                let map = |e: mysql_async::Error| from_backend(e, &ps, &addr, unq);
                let nbe = session.lex.no_backslash_escapes;
                let mut other = self.conn(session, rt, &ps).await?;
                let r = async {
                    // Read in the binary protocol (numbers exactly as stored) and in the
                    // columns' own bytes, whatever the session's settings.
                    let mut res = other
                        .conn
                        .exec_iter(binary_read(&format!("SELECT * FROM {src}{filter}")), ())
                        .await
                        .map_err(map)?;
                    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
                    loop {
                        let row: Option<Row> = res.next().await.map_err(map)?;
                        let done = row.is_none();
                        if let Some(row) = row {
                            gathered += 1;
                            if gathered > limit {
                                return Err(too_many());
                            }
                            let vals: Vec<String> =
                                row.unwrap().iter().map(|v| literal(v, nbe)).collect();
                            batch.push(format!("({})", vals.join(", ")));
                        }
                        if !batch.is_empty() && (done || batch.len() == BATCH) {
                            lease
                                .conn
                                .query_drop(format!(
                                    "INSERT INTO {temp} VALUES {}",
                                    std::mem::take(&mut batch).join(", ")
                                ))
                                .await
                                .map_err(map0)?;
                        }
                        if done {
                            return Ok(());
                        }
                    }
                }
                .await;
                self.give_back(session, other).await;
                r?;
            }
        }
        Ok(())
    }

    /// Drops the temporary tables [`Engine::fill_gathered`] made; a connection left with one
    /// is not reused.
    pub(super) async fn drop_gathered(
        &self,
        ks: &KeyspaceRouting,
        tables: &[String],
        lease: &mut Lease,
    ) {
        let refs = quote_ident(&ks.reference_schema());
        let mut dropped = true;
        for t in tables {
            dropped &= lease
                .conn
                .query_drop(format!(
                    "DROP TEMPORARY TABLE IF EXISTS {refs}.{}",
                    quote_ident(t)
                ))
                .await
                .is_ok();
        }
        if !dropped {
            lease.dirty = true;
        }
    }
}
