//! `tessera vindex backfill|verify`: fill a lookup vindex's table from the rows a table held
//! before the lookup was declared, verify it, and start routing by it.

use super::flags::TopoFlags;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::Instant;
use tessera_router::backend::Backends;
use tessera_router::engine::lookup::{ensure_table, ksid_of, LookupTable, PREVIOUS};
use tessera_router::sql::quote_ident;
use tessera_router::topology::{KeyspaceRouting, Lookup, RoutingTable, TableRouting};
use tessera_router::vindex;
use tessera_topo::{KeyType, Topo, VindexKind};

/// A physical shard and a qualified lookup table there.
type Place = (String, String);
/// A value and the keyspace id of the row holding it.
type Entry = (Value, u64);

/// Rows read (and entries written) per statement.
const CHUNK: usize = 2000;

#[derive(Subcommand, Debug)]
pub enum VindexCmd {
    /// Fill a write-only lookup vindex from the table's rows, verify every entry, then route
    /// by it (its `write_only` flag is cleared in the vschema).
    Backfill {
        /// `keyspace.table`
        table: String,
        /// The looked-up column.
        column: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Check a lookup vindex against the table's rows: entries missing (rows a lookup would
    /// not find), values held on two logical shards, orphan entries. Changes nothing.
    Verify {
        /// `keyspace.table`
        table: String,
        column: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

pub async fn run(c: VindexCmd) -> Result<()> {
    let (table, column, topo, verify_only) = match c {
        VindexCmd::Backfill {
            table,
            column,
            topo,
        } => (table, column, topo, false),
        VindexCmd::Verify {
            table,
            column,
            topo,
        } => (table, column, topo, true),
    };
    let (ks, t) = table
        .split_once('.')
        .ok_or_else(|| anyhow!("{table:?} must be keyspace.table"))?;
    let r = vindex_backfill(&topo.topo()?, ks, t, &column, verify_only).await?;
    println!(
        "{ks}.{t}.{column}: {} rows, {} entries written, {} repaired, {} missing, {} orphan entries{}",
        r.rows,
        r.written,
        r.repaired,
        r.missing,
        r.orphans,
        if r.serving {
            "; verified: the router now routes by it"
        } else {
            ""
        }
    );
    if verify_only && r.missing > 0 {
        bail!(
            "{} rows have no entry: a read by {column} would miss them",
            r.missing
        );
    }
    Ok(())
}

/// What a backfill or verification found.
#[derive(Debug, Default, Clone)]
pub struct BackfillReport {
    /// Rows of the table holding a value (not NULL).
    pub rows: u64,
    /// Entries the backfill wrote.
    pub written: u64,
    /// Entries the verification found missing or wrong and put right.
    pub repaired: u64,
    /// Entries still missing (a verification that changes nothing).
    pub missing: u64,
    /// Entries no row holds (harmless: they only widen a read).
    pub orphans: u64,
    /// Whether the lookup serves (routes and enforces uniqueness) now.
    pub serving: bool,
}

/// Fills (unless `verify_only`) and verifies the lookup of `keyspace.table.column`; a
/// backfill that verifies clean makes the lookup serve.
///
/// # Errors
/// An unknown table or lookup, values held by rows on two logical shards (a unique lookup
/// cannot hold them; it stays write-only), backend and topology failures.
pub async fn vindex_backfill(
    topo: &Topo,
    keyspace: &str,
    table: &str,
    column: &str,
    verify_only: bool,
) -> Result<BackfillReport> {
    let (rec, _) = topo
        .get_keyspace(keyspace)
        .await?
        .ok_or_else(|| anyhow!("no keyspace {keyspace}"))?;
    let snap = topo.snapshot().await?;
    let rt = RoutingTable::from_snapshot(&snap);
    let ks = rt
        .keyspace(keyspace)
        .ok_or_else(|| anyhow!("no keyspace {keyspace}"))?;
    let Some(TableRouting::Sharded {
        shard_key,
        vindex,
        key_type,
        lookups,
        ..
    }) = ks.table(table)
    else {
        bail!("{keyspace}.{table} is not a sharded table of the vschema");
    };
    let l = lookups
        .iter()
        .find(|l| l.column.eq_ignore_ascii_case(column))
        .cloned()
        .ok_or_else(|| anyhow!("{keyspace}.{table} has no lookup vindex on {column}"))?;
    let backends = Backends::new(Default::default());
    let job = Backfill {
        rt: &rt,
        ks,
        table,
        shard_key: &shard_key,
        vindex,
        key_type,
        l: &l,
        backends: &backends,
        verify_only,
    };
    let r = job.run().await;
    backends.disconnect_all().await;
    let mut report = r?;
    if !verify_only {
        let mut v = rec.vschema.clone();
        if let Some(spec) = v
            .tables
            .get_mut(table)
            .and_then(|t| t.lookups.iter_mut().find(|x| x.column == l.column))
        {
            if spec.write_only {
                spec.write_only = false;
                topo.apply_vschema(&v)
                    .await
                    .context("making the lookup serve")?;
            }
        }
        report.serving = true;
    } else {
        report.serving = l.serves();
    }
    Ok(report)
}

struct Backfill<'a> {
    rt: &'a RoutingTable,
    ks: &'a KeyspaceRouting,
    table: &'a str,
    shard_key: &'a str,
    vindex: VindexKind,
    key_type: KeyType,
    l: &'a Lookup,
    backends: &'a Backends,
    verify_only: bool,
}

impl Backfill<'_> {
    async fn conn(&self, ps: &str) -> Result<Conn> {
        let pool = self
            .backends
            .pool_for(self.rt, ps, true)
            .map_err(|e| anyhow!(e.message))?;
        pool.get_conn().await.map_err(|e| anyhow!(e.message))
    }

    async fn run(&self) -> Result<BackfillReport> {
        if !self.verify_only {
            ensure_table(self.backends, self.rt, &self.ks.name, self.table, self.l)
                .await
                .map_err(|e| anyhow!("making the lookup table: {}", e.message))?;
        }
        let table = LookupTable::of(self.rt, self.l).map_err(|e| anyhow!(e.message))?;
        // One connection per physical shard of the lookup table.
        let mut lconns: HashMap<String, Conn> = HashMap::new();
        for (ps, _) in &table.places {
            if !lconns.contains_key(ps) {
                lconns.insert(ps.clone(), self.conn(ps).await?);
            }
        }
        let mut report = BackfillReport::default();
        let mut duplicates = Vec::new();
        // Distinct (value, keyspace id) pairs the rows hold, as digests, for the orphan count.
        let mut pairs: HashSet<u64> = HashSet::new();
        let tty = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut last_note = Instant::now();
        let n = self.ks.logical_shards;
        for ls in 0..n {
            let ps = self
                .ks
                .placement
                .get(ls as usize)
                .ok_or_else(|| anyhow!("logical shard {ls} has no placement"))?;
            let schema = self.ks.schema(ls);
            let mut conn = self.conn(ps).await?;
            let pk: Vec<String> = conn
                .exec(
                    "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                     AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                    (&schema, self.table),
                )
                .await?;
            if pk.is_empty() {
                bail!(
                    "{}.{} has no primary key (the backfill reads it in key order)",
                    self.ks.name,
                    self.table
                );
            }
            let pk_cols: Vec<String> = pk.iter().map(|c| quote_ident(c)).collect();
            let pk_list = if pk.len() == 1 {
                pk_cols[0].clone()
            } else {
                format!("({})", pk_cols.join(", "))
            };
            let tuple = if pk.len() == 1 {
                "?".to_string()
            } else {
                format!("({})", vec!["?"; pk.len()].join(", "))
            };
            let mut after: Option<Vec<Value>> = None;
            loop {
                let cond = match after {
                    Some(_) => format!("WHERE {pk_list} > {tuple}"),
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT {}, {}, {} FROM {}.{} {cond} ORDER BY {} LIMIT {CHUNK}",
                    pk_cols.join(", "),
                    quote_ident(self.shard_key),
                    quote_ident(&self.l.column),
                    quote_ident(&schema),
                    quote_ident(self.table),
                    pk_cols.join(", ")
                );
                let rows: Vec<mysql_async::Row> =
                    conn.exec(sql, after.clone().unwrap_or_default()).await?;
                let got = rows.len();
                let mut entries: Vec<(Value, u64)> = Vec::with_capacity(got);
                for row in rows {
                    let vals = row.unwrap();
                    after = Some(vals[..pk.len()].to_vec());
                    let (Some(key), Some(value)) = (vals.get(pk.len()), vals.get(pk.len() + 1))
                    else {
                        continue;
                    };
                    if *value == Value::NULL {
                        continue;
                    }
                    let ksid = ksid_of(self.vindex, self.key_type, key)
                        .ok_or_else(|| anyhow!("a row's shard key {key:?} has no keyspace id"))?;
                    entries.push((value.clone(), ksid));
                }
                report.rows += entries.len() as u64;
                for (v, k) in &entries {
                    pairs.insert(digest(v, *k));
                }
                // The entries per place of the lookup table.
                let mut groups: Vec<(&Place, Vec<Entry>)> = Vec::new();
                for (v, k) in entries {
                    let place = table.for_value(&v).ok_or_else(|| {
                        anyhow!("the value {v:?} has no place in the lookup table")
                    })?;
                    match groups.iter_mut().find(|(p, _)| *p == place) {
                        Some((_, g)) => g.push((v, k)),
                        None => groups.push((place, vec![(v, k)])),
                    }
                }
                for ((ps, lt), group) in groups {
                    let lconn = lconns
                        .get_mut(ps)
                        .ok_or_else(|| anyhow!("no connection to {ps}"))?;
                    if !self.verify_only {
                        report.written += self.write(lconn, lt, &group).await?;
                    }
                    self.check(lconn, lt, &group, &mut report, &mut duplicates)
                        .await?;
                }
                if got < CHUNK {
                    break;
                }
            }
            if last_note.elapsed().as_secs() >= 2 || ls + 1 == n {
                last_note = Instant::now();
                let filled = ((ls + 1) as usize * 20) / n as usize;
                let line = format!(
                    "[{}] {}.{}.{} [{}{}] {}/{} logical shards, {} rows, {:.0} rows/s",
                    if self.verify_only {
                        "verify"
                    } else {
                        "backfill"
                    },
                    self.ks.name,
                    self.table,
                    self.l.column,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    ls + 1,
                    n,
                    report.rows,
                    report.rows as f64 / started.elapsed().as_secs_f64().max(0.001)
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        }
        if tty {
            eprintln!();
        }
        let mut total = 0u64;
        for (ps, lt) in &table.places {
            let lconn = lconns
                .get_mut(ps)
                .ok_or_else(|| anyhow!("no connection to {ps}"))?;
            let n: Option<u64> = lconn
                .query_first(format!("SELECT COUNT(*) FROM {lt}"))
                .await
                .or_else(|e| match &e {
                    mysql_async::Error::Server(s) if s.code == 1146 => Ok(Some(0)),
                    _ => Err(e),
                })?;
            total += n.unwrap_or(0);
        }
        report.orphans = total.saturating_sub(pairs.len() as u64);
        if !duplicates.is_empty() {
            duplicates.sort();
            duplicates.dedup();
            bail!(
                "{} values of {} are held by rows on two logical shards (e.g. {}): a unique lookup \
                 cannot hold them; it stays write-only until they are made unique",
                duplicates.len(),
                self.l.column,
                duplicates.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if !self.verify_only && report.missing > 0 {
            bail!(
                "{} entries are still missing after the backfill",
                report.missing
            );
        }
        Ok(report)
    }

    /// Writes `entries` (existing ones are kept); returns how many were new.
    async fn write(&self, c: &mut Conn, lt: &str, entries: &[(Value, u64)]) -> Result<u64> {
        let col = quote_ident(&self.l.column);
        let params: Vec<Value> = entries
            .iter()
            .flat_map(|(v, k)| [v.clone(), Value::UInt(*k)])
            .collect();
        let sql = format!(
            "INSERT INTO {lt} ({col}, `keyspace_id`) VALUES {} \
             ON DUPLICATE KEY UPDATE `keyspace_id` = `keyspace_id`",
            vec!["(?, ?)"; entries.len()].join(", ")
        );
        let r = c.exec_iter(sql, params).await?;
        let n = r.affected_rows();
        r.drop_result().await?;
        Ok(n)
    }

    /// Checks that every one of `entries` is in the lookup table; a missing or wrong entry is
    /// put right (unless verifying only), a value held on two logical shards noted.
    async fn check(
        &self,
        c: &mut Conn,
        lt: &str,
        entries: &[(Value, u64)],
        report: &mut BackfillReport,
        duplicates: &mut Vec<String>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let col = quote_ident(&self.l.column);
        let values: Vec<Value> = entries.iter().map(|(v, _)| v.clone()).collect();
        let found: Vec<(Value, u64, Option<u64>)> = match c
            .exec(
                format!(
                    "SELECT {col}, `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {col} IN ({})",
                    vec!["?"; values.len()].join(", ")
                ),
                values,
            )
            .await
        {
            Ok(f) => f,
            Err(mysql_async::Error::Server(s)) if s.code == 1146 => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut have: HashMap<String, Vec<u64>> = HashMap::new();
        for (v, k, previous) in found {
            // A previous keyspace id (an entry taken over, not settled yet) is held too.
            let ks = have.entry(v.as_sql(false)).or_default();
            ks.push(k);
            ks.extend(previous);
        }
        for (v, k) in entries {
            let ks = have.get(&v.as_sql(false));
            if ks.is_some_and(|ks| ks.contains(k)) {
                continue;
            }
            // Not there as written (a collation may match it under another spelling): ask.
            let held: Vec<(u64, Option<u64>)> = c
                .exec(
                    format!("SELECT `keyspace_id`, {PREVIOUS} FROM {lt} WHERE {col} = ?"),
                    vec![v.clone()],
                )
                .await
                .or_else(|e| match &e {
                    mysql_async::Error::Server(s) if s.code == 1146 => Ok(Vec::new()),
                    _ => Err(e),
                })?;
            if held.iter().any(|&(h, p)| h == *k || p == Some(*k)) {
                continue;
            }
            let held: Vec<u64> = held.into_iter().map(|(h, _)| h).collect();
            if self.l.unique {
                if let Some(&other) = held.first() {
                    // Held for another row: a duplicate if that row still holds it.
                    if self.row_holds(other, v).await? {
                        duplicates.push(v.as_sql(false));
                        continue;
                    }
                    if self.verify_only {
                        report.missing += 1;
                    } else {
                        c.exec_drop(
                            format!(
                                "UPDATE {lt} SET `keyspace_id` = ?, {PREVIOUS} = NULL WHERE {col} = ? AND `keyspace_id` = ?"
                            ),
                            (*k, v.clone(), other),
                        )
                        .await?;
                        report.repaired += 1;
                    }
                    continue;
                }
            }
            if self.verify_only {
                report.missing += 1;
            } else {
                let n = self.write(c, lt, &[(v.clone(), *k)]).await?;
                report.repaired += n;
                if n == 0 {
                    report.missing += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether the row with keyspace id `ksid` (in its logical shard) holds `value`.
    async fn row_holds(&self, ksid: u64, value: &Value) -> Result<bool> {
        let ls = vindex::logical_shard(ksid, self.ks.logical_shards);
        let ps = self
            .ks
            .placement
            .get(ls as usize)
            .ok_or_else(|| anyhow!("logical shard {ls} has no placement"))?;
        let mut c = self.conn(ps).await?;
        let r: Option<u8> = c
            .exec_first(
                format!(
                    "SELECT 1 FROM {}.{} WHERE {} = ? LIMIT 1 LOCK IN SHARE MODE",
                    quote_ident(&self.ks.schema(ls)),
                    quote_ident(self.table),
                    quote_ident(&self.l.column)
                ),
                vec![value.clone()],
            )
            .await?;
        Ok(r.is_some())
    }
}

fn digest(v: &Value, k: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.as_sql(false).hash(&mut h);
    k.hash(&mut h);
    h.finish()
}

impl VindexCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            VindexCmd::Backfill { topo, .. } => Some(topo),
            VindexCmd::Verify { .. } => None,
        }
    }
}
