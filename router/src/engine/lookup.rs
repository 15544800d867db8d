//! Lookup vindexes: a table in an unsharded keyspace maps each value of a sharded table's
//! secondary column to the keyspace id of the row that holds it, so that statements by that
//! column go to the logical shards holding it, and (for a unique lookup) a value is unique
//! across every logical shard.
//!
//! # Consistency without two-phase commit
//!
//! The order of writes makes every row's entry exist whenever the row does; an entry without
//! a row (an orphan) is allowed, and harmless: it only sends a read to a logical shard that
//! answers nothing, and a unique insert that meets it checks the row and takes the entry
//! over.
//!
//! - **Inserts** write their entries first, on a connection of the session's own to the
//!   lookup table's physical shard, in a transaction that stays open (holding the entries'
//!   row locks) until the client's transaction commits; it commits just before the client's
//!   other connections (an autocommit statement runs in a transaction of its own for this).
//!   A router that dies before that commit leaves neither; one that dies between the two
//!   commits leaves orphans only.
//! - A unique entry that exists already is locked (`FOR UPDATE`); the row it names is looked
//!   for with a locking read in the client's transaction (which waits for a concurrent writer
//!   of that row to finish). Found: 1062, as MariaDB answers (or, for `INSERT IGNORE`, the
//!   row is skipped; for `ON DUPLICATE KEY UPDATE`, the row goes to the logical shard of the
//!   existing one, which MariaDB updates; for `REPLACE`, the existing row is deleted). Not
//!   found: an orphan, taken over. An entry taken over keeps the keyspace id it named in
//!   `previous_keyspace_id` until the transaction has committed (reads go to both): the row
//!   that held the value may be one this transaction deleted, whose deletion commits after the
//!   entry, so a router that dies between the commits leaves that row found through the
//!   entry. After the commit the previous keyspace id is cleared once no row holds the value
//!   there (a locking read).
//! - **Deletes** read the values of the rows they delete, and remove their entries after the
//!   client's transaction commits, each under a lock on the entry and only when a locking
//!   read finds no row holding the value in that logical shard any more (an insert that
//!   relies on the entry holds its lock, or its row is there). A router that dies first
//!   leaves orphans.

use super::core::Engine;

use crate::backend::error::from_backend;
use crate::backend::Backends;
use crate::error::SqlError;
use crate::planner::plan::{
    InsertAction, LookupDelete, LookupInsert, LookupPlan, LookupUpdate, LookupWrite,
};
use crate::planner::{Exec, KeyLiteral, Plan, RouteKind, SavepointOp, StmtKind, Targets};
use crate::session::Session;
use crate::sql::quote_ident;
use crate::topology::{KeyspaceRouting, Lookup, RoutingTable, TableRouting, Unqualify};
use crate::vindex::{self, KeyValue};
use crate::wire::PacketIo;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use std::collections::{BTreeSet, HashMap};
use tessera_topo::{KeyType, VindexKind};

pub use crate::session::LookupEntry;

/// A literal as a statement parameter (compared with the column as the literal would be).
pub fn value_of(l: &KeyLiteral) -> Value {
    match l {
        KeyLiteral::Int(i) => match i64::try_from(*i) {
            Ok(v) => Value::Int(v),
            Err(_) => match u64::try_from(*i) {
                Ok(u) => Value::UInt(u),
                Err(_) => Value::Bytes(i.to_string().into_bytes()),
            },
        },
        KeyLiteral::Num(n) => Value::Bytes(n.clone().into_bytes()),
        KeyLiteral::Str(s) => Value::Bytes(s.clone().into_bytes()),
    }
}

/// The keyspace id of a row whose shard key reads back as `v` (`None` for NULL or a value
/// the vindex cannot map).
pub fn ksid_of(vindex: VindexKind, ty: KeyType, v: &Value) -> Option<u64> {
    let kv = match (ty, v) {
        (_, Value::NULL) => return None,
        (KeyType::Integer, Value::Int(i)) => KeyValue::Int(i128::from(*i)),
        (KeyType::Integer, Value::UInt(u)) => KeyValue::Int(i128::from(*u)),
        (KeyType::Integer, Value::Bytes(b)) => {
            KeyValue::Int(std::str::from_utf8(b).ok()?.trim().parse().ok()?)
        }
        (KeyType::String, Value::Bytes(b)) => {
            let mut b = b.as_slice();
            while let [rest @ .., b' '] = b {
                b = rest;
            }
            KeyValue::Bytes(b.to_vec())
        }
        (KeyType::String, Value::Int(i)) => KeyValue::Bytes(i.to_string().into_bytes()),
        (KeyType::String, Value::UInt(u)) => KeyValue::Bytes(u.to_string().into_bytes()),
        _ => return None,
    };
    vindex::keyspace_id(vindex, &kv).ok()
}

/// The text MariaDB shows for a value in a duplicate-entry error.
fn shown(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        // Lookup values come from the statement's text, which is UTF-8; anything else is
        // shown in hex rather than altered.
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => b.iter().map(|c| format!("{c:02X}")).collect(),
        },
        other => other.as_sql(false),
    }
}

/// Where a lookup's table lives: one place in an unsharded keyspace, or one per logical shard
/// of a keyspace sharded by the looked-up column (whose moves carry the entries along).
#[derive(Debug, Clone)]
pub struct LookupTable {
    /// Per logical shard of the lookup keyspace: its physical shard and the table, qualified.
    pub places: Vec<(String, String)>,
    /// For a sharded lookup keyspace: how a value maps to its logical shard.
    by: Option<(VindexKind, KeyType)>,
}

impl LookupTable {
    /// Finds `l`'s table in the routing table.
    ///
    /// # Errors
    /// 1105 when its keyspace does not exist, has no placement, or (sharded) does not declare
    /// the table as sharded by the looked-up column.
    pub fn of(rt: &RoutingTable, l: &Lookup) -> Result<LookupTable, SqlError> {
        let ks = rt.keyspace(&l.keyspace).ok_or_else(|| {
            SqlError::router(format!(
                "the lookup table {}.{} of column {}: keyspace {} does not exist (apply its vschema)",
                l.keyspace, l.table, l.column, l.keyspace
            ))
        })?;
        let by = if ks.sharded {
            match ks.table(&l.table) {
                Some(TableRouting::Sharded {
                    shard_key,
                    vindex,
                    key_type,
                    ..
                }) if shard_key.eq_ignore_ascii_case(&l.column) => Some((vindex, key_type)),
                _ => {
                    return Err(SqlError::router(format!(
                        "the lookup table {}.{}: keyspace {} is sharded but does not declare the table sharded by {}",
                        l.keyspace, l.table, l.keyspace, l.column
                    )))
                }
            }
        } else {
            None
        };
        if ks.placement.is_empty() {
            return Err(SqlError::router(format!(
                "keyspace {} has no placement",
                l.keyspace
            )));
        }
        let places = ks
            .placement
            .iter()
            .enumerate()
            .map(|(ls, ps)| (ps.clone(), qualified(&ks.schema(ls as u32), &l.table)))
            .collect();
        Ok(LookupTable { places, by })
    }

    fn at(&self, ksid: Option<u64>) -> Option<&(String, String)> {
        match (self.by, ksid) {
            (None, _) => self.places.first(),
            (Some(_), Some(k)) => self
                .places
                .get(vindex::logical_shard(k, self.places.len() as u32) as usize),
            (Some(_), None) => None,
        }
    }

    /// The place of a value read from a row (`None`: it has no keyspace id).
    pub fn for_value(&self, v: &Value) -> Option<&(String, String)> {
        self.at(self.by.and_then(|(vi, ty)| ksid_of(vi, ty, v)))
    }

    /// The place of a literal compared with (or, `storing`, stored in) the column; `None` when
    /// it names no single value of the column's type (a read then asks every place).
    pub fn for_literal(&self, l: &KeyLiteral, storing: bool) -> Option<&(String, String)> {
        self.at(self.by.and_then(|(vi, ty)| {
            crate::planner::literal_key(l, ty, storing)
                .and_then(|kv| vindex::keyspace_id(vi, &kv).ok())
        }))
    }
}

fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The column of a lookup table that keeps, while an entry taken over from another row is
/// not settled, the keyspace id the entry named before (see the module doc).
pub const PREVIOUS: &str = "`previous_keyspace_id`";

/// Creates `l`'s lookup table when it does not exist: the looked-up column typed as in
/// `keyspace.table` (logical shard 0's schema), `keyspace_id` and [`PREVIOUS`]; the primary
/// key is the column (unique lookups) or the column and the keyspace id. A table without
/// [`PREVIOUS`] gets it.
///
/// # Errors
/// 1146 when the sharded table does not exist yet; backend failures.
pub async fn ensure_table(
    backends: &Backends,
    rt: &RoutingTable,
    keyspace: &str,
    table: &str,
    l: &Lookup,
) -> Result<(), SqlError> {
    let ks = rt
        .keyspace(keyspace)
        .ok_or_else(|| SqlError::unknown_database(keyspace))?;
    let (pool, mut conn) = super::unique_keys::shard0_conn(backends, rt, ks).await?;
    let err = |e: mysql_async::Error| SqlError::shard(&pool.name, &pool.addr, e);
    let col: Option<(String, Option<String>, Option<String>)> = conn
        .exec_first(
            "SELECT COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (ks.schema(0), table, &l.column),
        )
        .await
        .map_err(err)?;
    drop(conn);
    let Some((ty, charset, collation)) = col else {
        return Err(SqlError::new(
            1146,
            "42S02",
            format!(
                "Table '{keyspace}.{table}' has no column {} yet: its lookup table cannot be made",
                l.column
            ),
        ));
    };
    let mut def = ty;
    if let (Some(cs), Some(co)) = (charset, collation) {
        def.push_str(&format!(" CHARACTER SET {cs} COLLATE {co}"));
    }
    let key = if l.unique {
        quote_ident(&l.column)
    } else {
        format!("{}, `keyspace_id`", quote_ident(&l.column))
    };
    for (ps, lt) in LookupTable::of(rt, l)?.places {
        let pool = backends.pool_of(rt, &ps)?;
        let mut conn = pool.get_conn().await?;
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS {lt} ({} {def} NOT NULL, `keyspace_id` BIGINT UNSIGNED NOT NULL, \
                 {PREVIOUS} BIGINT UNSIGNED NULL, PRIMARY KEY ({key}))",
                quote_ident(&l.column),
            ),
            // A table made before entries kept their previous keyspace id.
            format!("ALTER TABLE {lt} ADD COLUMN IF NOT EXISTS {PREVIOUS} BIGINT UNSIGNED NULL"),
        ] {
            conn.query_drop(sql)
                .await
                .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
        }
    }
    Ok(())
}

/// Whether `keyspace.table` holds any row on any logical shard (false when it does not exist).
///
/// # Errors
/// Backend failures.
pub async fn table_has_rows(
    backends: &Backends,
    rt: &RoutingTable,
    keyspace: &str,
    table: &str,
) -> Result<bool, SqlError> {
    let Some(ks) = rt.keyspace(keyspace) else {
        return Ok(false);
    };
    for ls in 0..ks.logical_shards {
        let Some(ps) = ks.placement.get(ls as usize) else {
            continue;
        };
        let pool = backends.pool_of(rt, ps)?;
        let mut conn = pool.get_conn().await?;
        let r: Result<Option<u8>, _> = conn
            .query_first(format!(
                "SELECT 1 FROM {} LIMIT 1",
                qualified(&ks.schema(ls), table)
            ))
            .await;
        match r {
            Ok(Some(_)) => return Ok(true),
            Ok(None) => {}
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(false),
            Err(e) => return Err(SqlError::shard(&pool.name, &pool.addr, e)),
        }
    }
    Ok(false)
}

/// A backend failure on `l`'s lookup table; a table made before entries kept their previous
/// keyspace id is named, with the command that brings it up to date.
fn lookup_error(e: mysql_async::Error, ps: &str, addr: &str, l: &Lookup) -> SqlError {
    if is_code(&e, 1054) {
        return SqlError::router(format!(
            "the lookup table {}.{} has no {PREVIOUS} column (it was made by an older version): \
             `tessera vindex backfill <keyspace>.<table> {}` adds it",
            l.keyspace, l.table, l.column
        ));
    }
    from_backend(e, ps, addr, Unqualify(None))
}

fn is_code(e: &mysql_async::Error, code: u16) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == code)
}

impl Engine {
    pub(super) async fn lookup(
        &self,
        session: &mut Session,
        p: LookupPlan,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let LookupPlan {
            exec,
            keyspace,
            table,
            route,
            write,
        } = p;
        if let Some(c) = &exec.conflict {
            let rt = self.topo.table();
            Box::pin(self.unique_keys.check(&self.backends, &rt, &keyspace, c)).await?;
        }
        let exec = self
            .routed(session, &keyspace, exec, route.as_ref())
            .await?;
        match write {
            LookupWrite::None => {
                Box::pin(self.execute(session, Plan::Exec(Box::new(exec)), io)).await
            }
            LookupWrite::Insert(i) => {
                let own = self.own_txn(session);
                let r = self.lookup_insert(session, &keyspace, &table, *i).await;
                self.finish_lookup_write(session, own, r, io).await
            }
            LookupWrite::Delete(d) => {
                let own = self.own_txn(session);
                let r = self
                    .lookup_delete(session, &keyspace, &table, exec, *d)
                    .await;
                self.finish_lookup_write(session, own, r, io).await
            }
            LookupWrite::Update(u) => {
                let own = self.own_txn(session);
                let r = self
                    .lookup_update(session, &keyspace, &table, exec, *u)
                    .await;
                self.finish_lookup_write(session, own, r, io).await
            }
        }
    }

    /// `exec` with its logical shards narrowed to those the lookup table maps `route`'s
    /// values to.
    pub(super) async fn routed(
        &self,
        session: &mut Session,
        keyspace: &str,
        mut exec: Exec,
        route: Option<&(Lookup, Vec<KeyLiteral>)>,
    ) -> Result<Exec, SqlError> {
        let Some((l, values)) = route else {
            return Ok(exec);
        };
        let ls = self.lookup_route(session, keyspace, l, values).await?;
        if let Targets::Ls { ls: targets, .. } = &mut exec.targets {
            // Never wider than what the statement picked by itself.
            let picked: BTreeSet<u32> = targets.iter().copied().collect();
            let mut narrowed: Vec<u32> = ls.into_iter().filter(|l| picked.contains(l)).collect();
            if narrowed.is_empty() {
                // No row holds the values: one logical shard answers (nothing), with the
                // statement's own columns.
                narrowed.push(targets.first().copied().unwrap_or(0));
            }
            exec.route = if narrowed.len() == 1 {
                RouteKind::One
            } else {
                RouteKind::Several
            };
            *targets = narrowed;
        }
        Ok(exec)
    }

    /// Opens a transaction of the router's own for an autocommit statement; returns whether
    /// it did.
    fn own_txn(&self, session: &mut Session) -> bool {
        let own = !session.in_transaction();
        if own {
            session.explicit_txn = true;
        }
        own
    }

    /// Runs what a lookup write planned (`r`: the statement, and rows the router deleted or
    /// skipped itself), commits the router's own transaction, and answers with the OK.
    async fn finish_lookup_write(
        &self,
        session: &mut Session,
        own: bool,
        r: Result<Planned, SqlError>,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let r = match r {
            Ok(p) => self.run_deferred(session, p, own, io).await,
            Err(e) => Err(e),
        };
        match r {
            Ok((affected, last, warnings, info)) => {
                if own {
                    self.finish_txn(session, true).await?;
                }
                self.ok(session, io, affected, last, warnings, &info).await
            }
            Err(e) => {
                if own {
                    let _ = self.finish_txn(session, false).await;
                }
                Err(e)
            }
        }
    }

    async fn run_deferred(
        &self,
        session: &mut Session,
        p: Planned,
        own: bool,
        io: &mut PacketIo,
    ) -> Result<(u64, u64, u16, String), SqlError> {
        let (mut affected, mut last, mut warnings, mut info) = (0, 0, 0, String::new());
        // An update of lookup columns must change exactly the rows it read: in the client's
        // own transaction it is undone by a savepoint when it did not.
        let guard = p.matched.is_some() && !own;
        if guard {
            self.savepoint(session, SavepointOp::Set(GUARD.into()))
                .await?;
        }
        if let Some(exec) = p.exec {
            session.defer_ok = true;
            let r = Box::pin(self.execute(session, Plan::Exec(Box::new(exec)), io)).await;
            session.defer_ok = false;
            let d = session.deferred_ok.take();
            if let Err(e) = r {
                if guard {
                    self.undo_guarded(session).await;
                }
                return Err(e);
            }
            if let Some(d) = d {
                (affected, last, warnings, info) = d;
            }
        }
        if let Some(read) = p.matched {
            let matched = info_number(&info, "Rows matched:");
            if let Some(m) = matched.filter(|m| *m != read) {
                if guard {
                    self.undo_guarded(session).await;
                }
                return Err(SqlError::new(
                    1213,
                    "40001",
                    format!(
                        "Deadlock found when trying to get lock; try restarting transaction (the rows an UPDATE of a lookup column matched changed while it ran: {read} read, {m} matched; the statement was undone)"
                    ),
                ));
            }
            if guard {
                self.savepoint(session, SavepointOp::Release(GUARD.into()))
                    .await?;
            }
        }
        if p.skipped > 0 {
            warnings = warnings.saturating_add(p.skipped as u16);
            info = counted(&info, p.rows, p.skipped);
        }
        Ok((affected + p.deleted, last, warnings, info))
    }

    /// The routing table now, and keyspace `keyspace` in it.
    fn routing_of(
        &self,
        keyspace: &str,
    ) -> Result<(std::sync::Arc<RoutingTable>, KeyspaceRouting), SqlError> {
        let rt = self.topo.table();
        let ks = rt
            .keyspace(keyspace)
            .ok_or_else(|| SqlError::unknown_database(keyspace))?
            .clone();
        Ok((rt, ks))
    }

    /// The logical shards that hold `values` of `l` (of a table of `keyspace`).
    async fn lookup_route(
        &self,
        session: &mut Session,
        keyspace: &str,
        l: &Lookup,
        values: &[KeyLiteral],
    ) -> Result<Vec<u32>, SqlError> {
        let rt = self.topo.table();
        let count = rt
            .keyspace(keyspace)
            .ok_or_else(|| SqlError::unknown_database(keyspace))?
            .logical_shards;
        let table = LookupTable::of(&rt, l)?;
        // Values per place of the lookup table (a value that names no place: every place).
        let mut by_place: Vec<(&(String, String), Vec<Value>)> = Vec::new();
        for v in values {
            let wanted: Vec<&(String, String)> = match table.for_literal(v, false) {
                Some(p) => vec![p],
                None => table.places.iter().collect(),
            };
            for p in wanted {
                match by_place.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, vs)) => vs.push(value_of(v)),
                    None => by_place.push((p, vec![value_of(v)])),
                }
            }
        }
        let mut ids: Vec<u64> = Vec::new();
        for ((ps, lt), params) in by_place {
            let sql = format!(
                "SELECT `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {} IN ({})",
                quote_ident(&l.column),
                vec!["?"; params.len()].join(", ")
            );
            let pool = self.backends.pool_of(&rt, ps)?;
            // The session's own uncommitted entries are read where they are.
            let r: Result<Vec<(u64, Option<u64>)>, mysql_async::Error> =
                match session.lookup_pre.remove(ps) {
                    Some(mut c) => {
                        let r = c.exec(&sql, params).await;
                        session.lookup_pre.insert(ps.clone(), c);
                        r
                    }
                    None => {
                        let mut c = pool.get_conn().await?;
                        c.exec(&sql, params).await
                    }
                };
            match r {
                Ok(found) => {
                    for (k, previous) in found {
                        ids.push(k);
                        ids.extend(previous);
                    }
                }
                // No lookup table yet: no entry, so no row.
                Err(e) if is_code(&e, 1146) => {}
                Err(e) => return Err(lookup_error(e, ps, &pool.addr, l)),
            }
        }
        let set: BTreeSet<u32> = ids
            .into_iter()
            .map(|k| vindex::logical_shard(k, count))
            .collect();
        Ok(set.into_iter().collect())
    }

    /// The session's lookup-write connection to `ps` (a transaction in `READ COMMITTED`).
    async fn lookup_conn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<Conn, SqlError> {
        if let Some(c) = session.lookup_pre.remove(ps) {
            return Ok(c);
        }
        let pool = self.backends.pool_of(rt, ps)?;
        let mut c = pool.get_conn().await?;
        for s in [
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "START TRANSACTION",
        ] {
            c.query_drop(s)
                .await
                .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
        }
        Ok(c)
    }

    /// Whether a row of `ks.table` in logical shard `ls` holds `value` in `column`: a
    /// locking read in the session's transaction (it waits for a concurrent writer).
    #[allow(clippy::too_many_arguments)]
    async fn row_holds(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        table: &str,
        ls: u32,
        column: &str,
        value: &Value,
    ) -> Result<bool, SqlError> {
        let ps = ps_of(ks, ls)?;
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        let mut lease = self.conn(session, rt, &ps).await?;
        let r: Result<Option<u8>, _> = lease
            .conn
            .exec_first(
                format!(
                    "SELECT 1 FROM {} WHERE {} = ? LIMIT 1 FOR UPDATE",
                    qualified(&ks.schema(ls), table),
                    quote_ident(column)
                ),
                vec![value.clone()],
            )
            .await;
        self.give_back(session, lease).await;
        r.map(|x| x.is_some())
            .map_err(|e| from_backend(e, &ps, &addr, Unqualify(Some(ks))))
    }

    /// Reads the rows of `ks.table` in logical shard `ls` that hold `value` in `column`
    /// (locked, in the session's transaction) and queues their lookup entries for removal
    /// after the commit (each only if no row holds it then); with `delete`, deletes them.
    /// Returns how many it deleted.
    #[allow(clippy::too_many_arguments)]
    async fn take_rows(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        table: &str,
        ls: u32,
        column: &str,
        value: &Value,
        delete: bool,
    ) -> Result<u64, SqlError> {
        let Some(TableRouting::Sharded {
            shard_key,
            vindex,
            key_type,
            lookups,
            ..
        }) = ks.table(table)
        else {
            return Ok(0);
        };
        let ps = ps_of(ks, ls)?;
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        let t = qualified(&ks.schema(ls), table);
        let mut cols = vec![quote_ident(&shard_key)];
        cols.extend(lookups.iter().map(|l| quote_ident(&l.column)));
        let mut lease = self.conn(session, rt, &ps).await?;
        let r = async {
            let rows: Vec<mysql_async::Row> = lease
                .conn
                .exec(
                    format!(
                        "SELECT {} FROM {t} WHERE {} = ? FOR UPDATE",
                        cols.join(", "),
                        quote_ident(column)
                    ),
                    vec![value.clone()],
                )
                .await?;
            let mut n = 0;
            if delete && !rows.is_empty() {
                let res = lease
                    .conn
                    .exec_iter(
                        format!("DELETE FROM {t} WHERE {} = ?", quote_ident(column)),
                        vec![value.clone()],
                    )
                    .await?;
                n = res.affected_rows();
                res.drop_result().await?;
            }
            Ok::<_, mysql_async::Error>((rows, n))
        }
        .await;
        self.give_back(session, lease).await;
        let (rows, n) = r.map_err(|e| from_backend(e, &ps, &addr, Unqualify(Some(ks))))?;
        for row in rows {
            let vals = row.unwrap();
            queue_entries(session, ks, table, &lookups, vindex, key_type, &vals);
        }
        Ok(n)
    }

    /// Writes the lookup entries of an insert's rows (resolving conflicts on unique ones as
    /// the module doc says), and returns the insert to run.
    async fn lookup_insert(
        &self,
        session: &mut Session,
        keyspace: &str,
        table: &str,
        mut i: LookupInsert,
    ) -> Result<Planned, SqlError> {
        let (rt, ks) = self.routing_of(keyspace)?;
        let mut skip = vec![false; i.rows.len()];
        let mut out = Planned {
            rows: i.rows.len() as u64,
            ..Planned::default()
        };
        for (li, l) in i.lookups.iter().enumerate() {
            let places = LookupTable::of(&rt, l)?;
            // Values of this statement already written: value -> (keyspace id, logical shard).
            let mut seen: HashMap<Vec<u8>, (u64, u32)> = HashMap::new();
            for (ri, row) in i.rows.iter_mut().enumerate() {
                if skip[ri] {
                    continue;
                }
                let Some(v) = row.values.get(li).cloned().flatten() else {
                    continue;
                };
                let value = value_of(&v);
                let vkey = value.as_sql(false).into_bytes();
                if l.unique {
                    if let Some(&(k, kls)) = seen.get(&vkey) {
                        if k != row.ksid && l.serves() {
                            match i.action {
                                InsertAction::Insert => {
                                    return Err(self.duplicate(&rt, keyspace, table, l, &value).await)
                                }
                                InsertAction::Ignore => {
                                    skip[ri] = true;
                                    out.skipped += 1;
                                }
                                InsertAction::Upsert => row.ls = kls,
                                InsertAction::Replace => {
                                    return Err(SqlError::unsupported(format!(
                                        "REPLACE of two rows with the same {} on different logical shards in one statement",
                                        l.column
                                    )))
                                }
                            }
                        }
                        continue;
                    }
                }
                let at = Entry {
                    ks: &ks,
                    table,
                    l,
                    places: &places,
                    literal: &v,
                    ksid: row.ksid,
                };
                let claim = self.claim(session, &rt, &at).await?;
                if i.action == InsertAction::Replace && l.serves() && claim == Claim::Same {
                    // MariaDB replaces the row itself: its other values' entries go after.
                    self.take_rows(session, &rt, &ks, table, row.ls, &l.column, &value, false)
                        .await?;
                }
                // The keyspace id the entry holds now.
                let entry = match claim {
                    Claim::Same | Claim::Written => row.ksid,
                    Claim::Unchecked(k) => k,
                    Claim::Held(k) => {
                        let kls = vindex::logical_shard(k, ks.logical_shards);
                        match i.action {
                            InsertAction::Insert => {
                                return Err(self.duplicate(&rt, keyspace, table, l, &value).await)
                            }
                            InsertAction::Ignore => {
                                skip[ri] = true;
                                out.skipped += 1;
                                continue;
                            }
                            InsertAction::Upsert => {
                                row.ls = kls;
                                k
                            }
                            InsertAction::Replace => {
                                out.deleted += self
                                    .take_rows(
                                        session, &rt, &ks, table, kls, &l.column, &value, true,
                                    )
                                    .await?;
                                self.retarget(session, &rt, &at, k).await?;
                                row.ksid
                            }
                        }
                    }
                };
                if l.unique {
                    seen.insert(vkey, (entry, row.ls));
                }
            }
        }
        if matches!(i.action, InsertAction::Upsert | InsertAction::Ignore) {
            // A row MariaDB updates or skips instead leaves the entries written for it:
            // removed after the commit unless a row holds them.
            for row in &i.rows {
                for (l, v) in i.lookups.iter().zip(&row.values) {
                    if let Some(v) = v {
                        session.lookup_post.push(LookupEntry {
                            lookup: l.clone(),
                            keyspace: keyspace.to_string(),
                            table: table.to_string(),
                            value: value_of(v),
                            ksid: row.ksid,
                        });
                    }
                }
            }
        }
        // The rows left, per logical shard.
        let mut per_ls: Vec<(u32, String)> = Vec::new();
        for (row, skipped) in i.rows.iter().zip(&skip) {
            if *skipped {
                continue;
            }
            match per_ls.iter_mut().find(|(l, _)| *l == row.ls) {
                Some((_, s)) => {
                    s.push_str(", ");
                    s.push_str(&row.text);
                }
                None => per_ls.push((row.ls, format!("{}{}", i.head, row.text))),
            }
        }
        for (_, s) in &mut per_ls {
            s.push_str(&i.tail);
        }
        out.exec = match per_ls.len() {
            0 => None,
            1 => {
                let (ls, template) = per_ls.remove(0);
                Some(Exec::plain(
                    Some(keyspace.to_string()),
                    StmtKind::Write,
                    RouteKind::One,
                    Targets::Ls {
                        template,
                        ls: vec![ls],
                    },
                ))
            }
            _ => Some(Exec::plain(
                Some(keyspace.to_string()),
                StmtKind::Write,
                RouteKind::Several,
                Targets::PerLs(per_ls),
            )),
        };
        Ok(out)
    }

    /// Points the existing unique entry of `at`'s value at its keyspace id, keeping
    /// `previous` (the keyspace id of a row this transaction may have deleted) until the
    /// transaction has committed and no row holds the value there (the session's lookup
    /// transaction holds the entry's lock).
    async fn retarget(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        at: &Entry<'_>,
        previous: u64,
    ) -> Result<(), SqlError> {
        let (ps, lt) = at.place()?;
        let value = value_of(at.literal);
        let previous = (previous != at.ksid).then_some(previous);
        let mut conn = self.lookup_conn(session, rt, &ps).await?;
        let r = conn
            .exec_drop(
                format!(
                    "UPDATE {lt} SET `keyspace_id` = ?, {PREVIOUS} = ? WHERE {} = ?",
                    quote_ident(&at.l.column)
                ),
                (at.ksid, previous, value.clone()),
            )
            .await;
        session.lookup_pre.insert(ps.to_string(), conn);
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        r.map_err(|e| lookup_error(e, &ps, &addr, at.l))?;
        if let Some(previous) = previous {
            let settle = LookupEntry {
                lookup: at.l.clone(),
                keyspace: at.ks.name.clone(),
                table: at.table.to_string(),
                value,
                ksid: previous,
            };
            let queued = session.lookup_post.iter().any(|e| {
                e.ksid == settle.ksid
                    && e.value == settle.value
                    && e.lookup.keyspace == settle.lookup.keyspace
                    && e.lookup.table == settle.lookup.table
            });
            if !queued {
                session.lookup_post.push(settle);
            }
        }
        Ok(())
    }

    /// Whether a committed row of `ks.table` in the logical shard of `ksid` holds `value`
    /// (a plain read outside the session's transaction, which may have deleted that row).
    #[allow(clippy::too_many_arguments)]
    async fn committed_holds(
        &self,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        table: &str,
        ksid: u64,
        column: &str,
        value: &Value,
    ) -> Result<bool, SqlError> {
        let ls = vindex::logical_shard(ksid, ks.logical_shards);
        let pool = self.backends.pool_of(rt, &ps_of(ks, ls)?)?;
        let mut c = pool.get_conn().await?;
        let r: Option<u8> = c
            .exec_first(
                format!(
                    "SELECT 1 FROM {} WHERE {} = ? LIMIT 1",
                    qualified(&ks.schema(ls), table),
                    quote_ident(column)
                ),
                vec![value.clone()],
            )
            .await
            .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
        Ok(r.is_some())
    }

    /// Writes the entry of `at` in the session's lookup transaction. A unique entry that
    /// exists already is locked, and the rows it names (its keyspace id, and a previous one
    /// not settled yet) looked for (locking reads in the session's transaction): none, and
    /// the entry is taken over.
    async fn claim(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        at: &Entry<'_>,
    ) -> Result<Claim, SqlError> {
        let l = at.l;
        let (ps, lt) = at.place()?;
        let col = quote_ident(&l.column);
        let value = value_of(at.literal);
        let insert = if l.unique {
            format!("INSERT INTO {lt} ({col}, `keyspace_id`) VALUES (?, ?)")
        } else {
            format!(
                "INSERT INTO {lt} ({col}, `keyspace_id`) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE `keyspace_id` = `keyspace_id`"
            )
        };
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        let map = |e: mysql_async::Error| from_backend(e, &ps, &addr, Unqualify(None));
        let mut created = false;
        let mut conn = self.lookup_conn(session, rt, &ps).await?;
        let r = loop {
            match conn.exec_drop(&insert, (value.clone(), at.ksid)).await {
                Ok(()) => break Ok(None),
                Err(e) if is_code(&e, 1146) && !created => {
                    created = true;
                    if let Err(e) = ensure_table(&self.backends, rt, &at.ks.name, at.table, l).await
                    {
                        break Err(e);
                    }
                }
                Err(e) if is_code(&e, 1062) && l.unique => {
                    let existing: Result<Option<(u64, Option<u64>)>, _> = conn
                        .exec_first(
                            format!(
                                "SELECT `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {col} = ? FOR UPDATE"
                            ),
                            vec![value.clone()],
                        )
                        .await;
                    match existing {
                        // Removed meanwhile: write it again.
                        Ok(None) => {}
                        Ok(Some(k)) => break Ok(Some(k)),
                        Err(e) => break Err(lookup_error(e, &ps, &addr, l)),
                    }
                }
                Err(e) => break Err(map(e)),
            }
        };
        session.lookup_pre.insert(ps.clone(), conn);
        let (k, previous) = match r? {
            None => return Ok(Claim::Written),
            Some((k, _)) if k == at.ksid => return Ok(Claim::Same),
            Some(k) => k,
        };
        // A write-only lookup does not decide yet: the existing entry stays (its backfill's
        // verification reports values held twice).
        if !l.serves() {
            return Ok(Claim::Unchecked(k));
        }
        let previous = previous.filter(|&p| p != k);
        for named in std::iter::once(k).chain(previous) {
            let ls = vindex::logical_shard(named, at.ks.logical_shards);
            if self
                .row_holds(session, rt, at.ks, at.table, ls, &l.column, &value)
                .await?
            {
                return Ok(Claim::Held(named));
            }
        }
        // No row holds it, maybe because this transaction deleted that row, whose deletion
        // commits after the entry: the entry keeps naming it until then. Of two it named, the
        // one whose row this transaction deleted is the one with a committed row.
        let keep = match previous {
            Some(p)
                if self
                    .committed_holds(rt, at.ks, at.table, p, &l.column, &value)
                    .await? =>
            {
                p
            }
            _ => k,
        };
        self.retarget(session, rt, at, keep).await?;
        Ok(Claim::Written)
    }

    /// MariaDB's duplicate-entry error for `value` of `l`'s column, naming the unique key
    /// that holds the column.
    async fn duplicate(
        &self,
        rt: &RoutingTable,
        keyspace: &str,
        table: &str,
        l: &Lookup,
        value: &Value,
    ) -> SqlError {
        let keys = super::unique_keys::read_table(&self.backends, rt, keyspace, table)
            .await
            .unwrap_or_default();
        let name = keys
            .iter()
            .find(|k| k.columns.len() == 1 && k.contains(&l.column))
            .or_else(|| keys.iter().find(|k| k.contains(&l.column)))
            .map_or_else(|| l.column.clone(), |k| k.name.clone());
        SqlError::new(
            1062,
            "23000",
            format!("Duplicate entry '{}' for key '{name}'", shown(value)),
        )
    }

    /// Reads the lookup values of the rows a delete will remove, queues their entries for
    /// removal after the commit, and returns the delete to run.
    async fn lookup_delete(
        &self,
        session: &mut Session,
        keyspace: &str,
        table: &str,
        exec: Exec,
        d: LookupDelete,
    ) -> Result<Planned, SqlError> {
        let (rt, ks) = self.routing_of(keyspace)?;
        for vals in self
            .read_targets(session, &rt, &ks, &exec, &d.select)
            .await?
        {
            queue_entries(session, &ks, table, &d.lookups, d.vindex, d.key_type, &vals);
        }
        Ok(Planned {
            exec: Some(exec),
            ..Planned::default()
        })
    }

    /// Runs `select` (with the logical-shard placeholder) on every logical shard `exec`
    /// targets, in the session's transaction; returns every row.
    async fn read_targets(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ks: &KeyspaceRouting,
        exec: &Exec,
        select: &str,
    ) -> Result<Vec<Vec<Value>>, SqlError> {
        let Targets::Ls { ls: lss, .. } = &exec.targets else {
            return Err(SqlError::router("a write without logical shards"));
        };
        let mut out = Vec::new();
        for &ls in lss {
            let ps = ps_of(ks, ls)?;
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let mut lease = self.conn(session, rt, &ps).await?;
            let r: Result<Vec<mysql_async::Row>, _> = lease.conn.query(ks.fill(select, ls)).await;
            self.give_back(session, lease).await;
            let rows = r.map_err(|e| from_backend(e, &ps, &addr, Unqualify(Some(ks))))?;
            out.extend(rows.into_iter().map(mysql_async::Row::unwrap));
        }
        Ok(out)
    }

    /// Rolls the session's transaction back to the guard savepoint of an update of lookup
    /// columns, and releases it.
    async fn undo_guarded(&self, session: &mut Session) {
        self.undo_to(session, GUARD).await;
    }

    /// Reads (and locks) the rows an update of lookup columns changes, writes their new
    /// values' entries, queues their old ones for removal after the commit, and returns the
    /// update to run (which must match as many rows as were read).
    async fn lookup_update(
        &self,
        session: &mut Session,
        keyspace: &str,
        table: &str,
        exec: Exec,
        u: LookupUpdate,
    ) -> Result<Planned, SqlError> {
        let (rt, ks) = self.routing_of(keyspace)?;
        let mut read = 0u64;
        // (lookup, new value, keyspace id of the row)
        let mut claims: Vec<(usize, KeyLiteral, u64)> = Vec::new();
        for vals in self
            .read_targets(session, &rt, &ks, &exec, &u.select)
            .await?
        {
            read += 1;
            let Some(ksid) = vals.first().and_then(|k| ksid_of(u.vindex, u.key_type, k)) else {
                continue;
            };
            for (li, new) in &u.sets {
                let (Some(l), Some(old)) = (u.lookups.get(*li), vals.get(li + 1)) else {
                    continue;
                };
                if *old != Value::NULL {
                    session.lookup_post.push(LookupEntry {
                        lookup: l.clone(),
                        keyspace: keyspace.to_string(),
                        table: table.to_string(),
                        value: old.clone(),
                        ksid,
                    });
                }
                if let Some(new) = new {
                    claims.push((*li, new.clone(), ksid));
                }
            }
        }
        for (li, l) in u.lookups.iter().enumerate() {
            let mut ids = claims.iter().filter(|c| c.0 == li).map(|c| c.2);
            let first = ids.next();
            if l.unique && l.serves() && ids.any(|k| Some(k) != first) {
                // One value for rows of two keyspace ids: a duplicate, as MariaDB finds it.
                let v = claims
                    .iter()
                    .find(|c| c.0 == li)
                    .map(|c| value_of(&c.1))
                    .unwrap_or(Value::NULL);
                return Err(self.duplicate(&rt, keyspace, table, l, &v).await);
            }
            let places = LookupTable::of(&rt, l)?;
            let mut done: Vec<u64> = Vec::new();
            for (_, new, ksid) in claims.iter().filter(|c| c.0 == li) {
                if done.contains(ksid) {
                    continue;
                }
                done.push(*ksid);
                let at = Entry {
                    ks: &ks,
                    table,
                    l,
                    places: &places,
                    literal: new,
                    ksid: *ksid,
                };
                if let Claim::Held(_) = self.claim(session, &rt, &at).await? {
                    return Err(self
                        .duplicate(&rt, keyspace, table, l, &value_of(new))
                        .await);
                }
            }
        }
        Ok(Planned {
            exec: Some(exec),
            matched: Some(read),
            ..Planned::default()
        })
    }

    /// Removes the entries of rows a committed transaction deleted (see the module doc);
    /// an entry that cannot be removed now stays, an orphan.
    pub(super) async fn lookup_cleanup(&self, entries: Vec<LookupEntry>) {
        for e in entries {
            if let Err(err) = self.cleanup_one(&e).await {
                tracing::warn!(
                    lookup = %format!("{}.{}", e.lookup.keyspace, e.lookup.table),
                    error = %err.message,
                    "a lookup entry of a deleted row stays (an orphan)"
                );
            }
        }
    }

    /// Settles the entry of `e`'s value for keyspace id `e.ksid` after a commit, under the
    /// entry's lock: when no row with that keyspace id holds the value any more, an entry
    /// naming it goes (or goes back to a previous keyspace id whose row holds the value), and
    /// a previous keyspace id naming it is cleared.
    async fn cleanup_one(&self, e: &LookupEntry) -> Result<(), SqlError> {
        let rt = self.topo.table();
        let (ps, lt) = LookupTable::of(&rt, &e.lookup)?
            .for_value(&e.value)
            .cloned()
            .ok_or_else(|| SqlError::router("a lookup value without a place"))?;
        let col = quote_ident(&e.lookup.column);
        let pool = self.backends.pool_of(&rt, &ps)?;
        let mut c = pool.get_conn().await?;
        let err = |x: mysql_async::Error| lookup_error(x, &pool.name, &pool.addr, &e.lookup);
        c.query_drop("START TRANSACTION").await.map_err(err)?;
        // A unique entry is locked whatever it names (it may name the keyspace id as its
        // previous one); a plain lookup's entry for this keyspace id is its own row.
        let held: Option<(u64, Option<u64>)> = if e.lookup.unique {
            c.exec_first(
                format!("SELECT `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {col} = ? FOR UPDATE"),
                vec![e.value.clone()],
            )
            .await
        } else {
            c.exec_first(
                format!(
                    "SELECT `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {col} = ? AND `keyspace_id` = ? FOR UPDATE"
                ),
                (e.value.clone(), e.ksid),
            )
            .await
        }
        .map_err(err)?;
        // What names `e.ksid`: the entry itself, or its previous keyspace id.
        let (k, previous, named) = match held {
            Some((k, previous)) if k == e.ksid => (k, previous, true),
            Some((k, Some(p))) if p == e.ksid => (k, Some(p), false),
            _ => return c.query_drop("COMMIT").await.map_err(err),
        };
        if !self.row_live(&rt, e, e.ksid).await? {
            let (sql, params): (String, mysql_async::Params) = match previous {
                Some(_) if !named => (
                    format!("UPDATE {lt} SET {PREVIOUS} = NULL WHERE {col} = ? AND `keyspace_id` = ?"),
                    (e.value.clone(), k).into(),
                ),
                Some(p) if self.row_live(&rt, e, p).await? => (
                    format!(
                        "UPDATE {lt} SET `keyspace_id` = ?, {PREVIOUS} = NULL WHERE {col} = ? AND `keyspace_id` = ?"
                    ),
                    (p, e.value.clone(), k).into(),
                ),
                _ => (
                    format!("DELETE FROM {lt} WHERE {col} = ? AND `keyspace_id` = ?"),
                    (e.value.clone(), k).into(),
                ),
            };
            c.exec_drop(sql, params).await.map_err(err)?;
        }
        c.query_drop("COMMIT").await.map_err(err)
    }

    /// Whether a row of `e`'s table with keyspace id `ksid` holds `e`'s value (a locking read
    /// in the logical shard of `ksid`, which waits for a writer of such a row to finish).
    async fn row_live(
        &self,
        rt: &RoutingTable,
        e: &LookupEntry,
        ksid: u64,
    ) -> Result<bool, SqlError> {
        let ks = rt
            .keyspace(&e.keyspace)
            .ok_or_else(|| SqlError::unknown_database(&e.keyspace))?;
        let Some(TableRouting::Sharded {
            shard_key,
            vindex,
            key_type,
            ..
        }) = ks.table(&e.table)
        else {
            // The table is not sharded any more: nothing to tell, so the entry is kept.
            return Ok(true);
        };
        let ls = vindex::logical_shard(ksid, ks.logical_shards);
        let pool = self.backends.pool_of(rt, &ps_of(ks, ls)?)?;
        let mut c = pool.get_conn().await?;
        // The rows of that logical shard holding the value; the entry is theirs if one of
        // them has the keyspace id (too many to tell: kept).
        const MANY: usize = 1000;
        let keys: Vec<Value> = c
            .exec(
                format!(
                    "SELECT DISTINCT {} FROM {} WHERE {} = ? LIMIT {MANY} LOCK IN SHARE MODE",
                    quote_ident(&shard_key),
                    qualified(&ks.schema(ls), &e.table),
                    quote_ident(&e.lookup.column)
                ),
                vec![e.value.clone()],
            )
            .await
            .map_err(|x| SqlError::shard(&pool.name, &pool.addr, x))?;
        Ok(keys.len() >= MANY
            || keys
                .iter()
                .any(|k| ksid_of(vindex, key_type, k) == Some(ksid)))
    }

    /// Commits (or rolls back) the session's lookup writes, before its transaction's other
    /// connections; returns the first failure.
    pub(super) async fn finish_lookup_pre(
        &self,
        session: &mut Session,
        commit: bool,
    ) -> Option<(String, String)> {
        let mut failed = None;
        for (ps, mut c) in std::mem::take(&mut session.lookup_pre) {
            let sql = if commit && failed.is_none() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            match c.query_drop(sql).await {
                Ok(()) => crate::backend::release_lib(c, true).await,
                Err(e) => {
                    failed.get_or_insert((ps, e.to_string()));
                }
            }
        }
        failed
    }
}

/// The physical shard of logical shard `ls` of `ks`.
fn ps_of(ks: &KeyspaceRouting, ls: u32) -> Result<String, SqlError> {
    ks.placement
        .get(ls as usize)
        .cloned()
        .ok_or_else(|| SqlError::router(format!("logical shard {ls} has no placement")))
}

/// Queues for removal after the commit the lookup entries of a row read as `vals` (its
/// shard key, then each of `lookups`' columns).
fn queue_entries(
    session: &mut Session,
    ks: &KeyspaceRouting,
    table: &str,
    lookups: &[Lookup],
    vindex: VindexKind,
    key_type: KeyType,
    vals: &[Value],
) {
    let Some(ksid) = vals.first().and_then(|k| ksid_of(vindex, key_type, k)) else {
        return;
    };
    for (l, v) in lookups.iter().zip(vals.iter().skip(1)) {
        if *v != Value::NULL {
            session.lookup_post.push(LookupEntry {
                lookup: l.clone(),
                keyspace: ks.name.clone(),
                table: table.to_string(),
                value: v.clone(),
                ksid,
            });
        }
    }
}

/// One entry to write: `literal` of lookup `l` (of `ks.table`), for the row with keyspace id
/// `ksid`.
struct Entry<'a> {
    ks: &'a KeyspaceRouting,
    table: &'a str,
    l: &'a Lookup,
    places: &'a LookupTable,
    literal: &'a KeyLiteral,
    ksid: u64,
}

impl Entry<'_> {
    fn place(&self) -> Result<(String, String), SqlError> {
        self.places
            .for_literal(self.literal, true)
            .cloned()
            .ok_or_else(|| {
                SqlError::unsupported(format!(
                    "a value of {} that is not one of its type, for its sharded lookup table {}.{}",
                    self.l.column, self.l.keyspace, self.l.table
                ))
            })
    }
}

/// What [`Engine::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// The entry is new, or was taken over from a row that no longer holds the value.
    Written,
    /// The entry existed for this keyspace id already.
    Same,
    /// A live row with this keyspace id holds the value (a unique lookup's duplicate).
    Held(u64),
    /// A write-only lookup's entry names this keyspace id; left alone.
    Unchecked(u64),
}

/// The savepoint that guards an update of lookup columns inside a client's transaction.
const GUARD: &str = "tessera_lookup_update";

/// The number after `name` in an OK packet's info text.
pub(super) fn info_number(info: &str, name: &str) -> Option<u64> {
    let at = info.find(name)? + name.len();
    info[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What a lookup write leaves to run, and what the router did itself.
#[derive(Default)]
struct Planned {
    /// For an update of lookup columns: the rows it read, which it must match.
    matched: Option<u64>,
    exec: Option<Exec>,
    /// Rows in the client's statement.
    rows: u64,
    /// Rows skipped (`INSERT IGNORE` of a value held elsewhere): a warning each.
    skipped: u64,
    /// Rows deleted elsewhere (`REPLACE` of a value held on another logical shard).
    deleted: u64,
}

/// A multi-row insert's info text with `skipped` more duplicates (and warnings) counted, as
/// MariaDB counts rows an `INSERT IGNORE` skips.
fn counted(info: &str, rows: u64, skipped: u64) -> String {
    let num = |name: &str| info_number(info, name);
    if rows < 2 {
        return info.to_string();
    }
    let dups = num("Duplicates:").unwrap_or(0) + skipped;
    let warns = num("Warnings:").unwrap_or(0) + skipped;
    format!("Records: {rows}  Duplicates: {dups}  Warnings: {warns}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_keys_map_as_literals_do() {
        let lit = vindex::keyspace_id(VindexKind::Xxhash, &KeyValue::Int(42)).ok();
        assert_eq!(
            ksid_of(VindexKind::Xxhash, KeyType::Integer, &Value::Int(42)),
            lit
        );
        assert_eq!(
            ksid_of(VindexKind::Xxhash, KeyType::Integer, &Value::UInt(42)),
            lit
        );
        assert_eq!(
            ksid_of(
                VindexKind::Xxhash,
                KeyType::Integer,
                &Value::Bytes(b"42".to_vec())
            ),
            lit
        );
        let s = vindex::keyspace_id(VindexKind::Xxhash, &KeyValue::Bytes(b"ab".to_vec())).ok();
        assert_eq!(
            ksid_of(
                VindexKind::Xxhash,
                KeyType::String,
                &Value::Bytes(b"ab  ".to_vec())
            ),
            s
        );
        assert_eq!(
            ksid_of(VindexKind::Xxhash, KeyType::String, &Value::NULL),
            None
        );
    }

    #[test]
    fn skipped_rows_count_as_duplicates() {
        assert_eq!(
            counted("Records: 3  Duplicates: 0  Warnings: 0", 3, 1),
            "Records: 3  Duplicates: 1  Warnings: 1"
        );
        assert_eq!(counted("", 1, 1), "");
    }
}
