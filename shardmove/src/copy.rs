//! Copying rows of one logical-shard schema to another: table metadata, the journal and fence
//! triggers, chunked backfill, journal draining, and copying given keys.
//!
//! Every copy reads the source rows under a shared lock and keeps the lock until the target
//! write is done, so copies of one row land on the target in the order its versions committed
//! on the source; copying the *current* row is idempotent, so concurrent copiers (routers,
//! the backfill, repairs) converge. Copy connections set `@tessera_copy`, which the triggers
//! recognise: copies are neither journalled nor fenced.

use crate::table::{key_string, qi, TableMeta, MAX_PARAMS};
use anyhow::Result;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::collections::HashSet;

/// Session settings of every copy connection: values read and written as stored, without
/// journalling or fencing.
pub const COPY_SESSION: &str = "SET SESSION time_zone = '+00:00', \
     sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0, \
     @tessera_copy = 1";

/// Where a copy reads and writes.
pub struct Copier<'a> {
    pub src: &'a mut Conn,
    pub dst: &'a mut Conn,
    pub src_schema: &'a str,
    pub dst_schema: &'a str,
}

impl Copier<'_> {
    /// Copies the current source rows of `keys` to the target (replacing present rows,
    /// deleting vanished ones) while holding shared locks on them. Inside a source
    /// transaction the caller opened (`own_txn == false`) the locks stay with it.
    ///
    /// # Errors
    /// Query failures; the source transaction is rolled back when this opened it.
    pub async fn copy_keys(
        &mut self,
        t: &TableMeta,
        keys: &[Vec<Value>],
        own_txn: bool,
    ) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let per = (MAX_PARAMS / t.pk.len().max(1)).clamp(1, 1000);
        let mut copied = 0;
        for batch in keys.chunks(per) {
            if own_txn {
                self.src.query_drop("START TRANSACTION").await?;
            }
            let r = self.copy_batch(t, batch).await;
            if own_txn {
                match &r {
                    Ok(_) => self.src.query_drop("COMMIT").await?,
                    Err(_) => {
                        let _ = self.src.query_drop("ROLLBACK").await;
                    }
                }
            }
            copied += r?;
        }
        Ok(copied)
    }

    async fn copy_batch(&mut self, t: &TableMeta, keys: &[Vec<Value>]) -> Result<u64> {
        let params: Vec<Value> = keys.iter().flatten().cloned().collect();
        let rows: Vec<Row> = self
            .src
            .exec(
                format!(
                    "SELECT {} FROM {}.{} WHERE {} LOCK IN SHARE MODE",
                    t.cols_sql(),
                    qi(self.src_schema),
                    qi(&t.name),
                    t.pk_in(keys.len())
                ),
                params.clone(),
            )
            .await?;
        // Delete every key first, then write the rows present: a key whose case or accents
        // changed (same row under the collation) ends up as the source has it.
        self.dst
            .exec_drop(
                format!(
                    "DELETE FROM {}.{} WHERE {}",
                    qi(self.dst_schema),
                    qi(&t.name),
                    t.pk_in(keys.len())
                ),
                params,
            )
            .await?;
        let rows: Vec<Vec<Value>> = rows.into_iter().map(Row::unwrap).collect();
        self.replace_rows(t, &rows).await?;
        Ok(rows.len() as u64)
    }

    async fn replace_rows(&mut self, t: &TableMeta, rows: &[Vec<Value>]) -> Result<()> {
        for batch in rows.chunks(t.max_rows()) {
            if batch.is_empty() {
                continue;
            }
            let one = format!("({})", vec!["?"; t.columns.len()].join(", "));
            let params: Vec<Value> = batch.iter().flatten().cloned().collect();
            self.dst
                .exec_drop(
                    format!(
                        "REPLACE INTO {}.{} ({}) VALUES {}",
                        qi(self.dst_schema),
                        qi(&t.name),
                        t.cols_sql(),
                        vec![one; batch.len()].join(", ")
                    ),
                    params,
                )
                .await?;
        }
        Ok(())
    }

    /// Replaces the target's rows of `t` with every source row, in one pass (for small
    /// reference tables; the caller keeps the source from changing meanwhile).
    ///
    /// # Errors
    /// Query failures.
    pub async fn copy_whole(&mut self, t: &TableMeta) -> Result<u64> {
        let rows: Vec<Row> = self
            .src
            .exec(
                format!(
                    "SELECT {} FROM {}.{}",
                    t.cols_sql(),
                    qi(self.src_schema),
                    qi(&t.name)
                ),
                (),
            )
            .await?;
        let rows: Vec<Vec<Value>> = rows.into_iter().map(Row::unwrap).collect();
        self.dst
            .query_drop(format!(
                "DELETE FROM {}.{}",
                qi(self.dst_schema),
                qi(&t.name)
            ))
            .await?;
        self.replace_rows(t, &rows).await?;
        Ok(rows.len() as u64)
    }

    /// Copies up to `limit` rows after `after` (primary-key order) under shared locks.
    /// Returns the rows copied and the last key, `None` at the end of the table.
    ///
    /// # Errors
    /// Query failures.
    pub async fn copy_chunk(
        &mut self,
        t: &TableMeta,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<(u64, Option<Vec<Value>>)> {
        let (cond, params) = match after {
            Some(k) => (format!("WHERE {} > {}", t.pk_sql(), t.tuple()), k.to_vec()),
            None => (String::new(), Vec::new()),
        };
        self.src.query_drop("START TRANSACTION").await?;
        let run = async {
            let rows: Vec<Row> = self
                .src
                .exec(
                    format!(
                        "SELECT {} FROM {}.{} {cond} ORDER BY {} LIMIT {limit} LOCK IN SHARE MODE",
                        t.cols_sql(),
                        qi(self.src_schema),
                        qi(&t.name),
                        t.pk.iter().map(|c| qi(c)).collect::<Vec<_>>().join(", ")
                    ),
                    params,
                )
                .await?;
            let rows: Vec<Vec<Value>> = rows.into_iter().map(Row::unwrap).collect();
            self.replace_rows(t, &rows).await?;
            let last = if rows.len() < limit {
                None
            } else {
                rows.last().map(|r| t.key_of(r))
            };
            Ok::<_, anyhow::Error>((rows.len() as u64, last))
        };
        let r = run.await;
        match &r {
            Ok(_) => self.src.query_drop("COMMIT").await?,
            Err(_) => {
                let _ = self.src.query_drop("ROLLBACK").await;
            }
        }
        r
    }

    /// Copies the keys waiting in the source journal of `t` (up to `batch`), then removes those
    /// journal rows. Returns how many journal rows were consumed.
    ///
    /// # Errors
    /// Query failures.
    pub async fn drain_once(&mut self, t: &TableMeta, batch: usize) -> Result<usize> {
        let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
        let rows: Vec<Row> = self
            .src
            .exec(
                format!(
                    "SELECT `_seq`, {} FROM {}.{} ORDER BY `_seq` LIMIT {batch}",
                    pk.join(", "),
                    qi(self.src_schema),
                    qi(&t.journal())
                ),
                (),
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for r in rows {
            let mut v = r.unwrap();
            let seq = v.remove(0);
            seqs.push(seq);
            if seen.insert(key_string(&v)) {
                keys.push(v);
            }
        }
        self.copy_keys(t, &keys, true).await?;
        for batch in seqs.chunks(10_000) {
            self.src
                .exec_drop(
                    format!(
                        "DELETE FROM {}.{} WHERE `_seq` IN ({})",
                        qi(self.src_schema),
                        qi(&t.journal()),
                        vec!["?"; batch.len()].join(", ")
                    ),
                    batch.to_vec(),
                )
                .await?;
        }
        Ok(seqs.len())
    }

    /// Drains every table's journal until it is empty (or `max_rounds` batches were taken).
    /// Returns the journal rows consumed.
    ///
    /// # Errors
    /// Query failures.
    pub async fn drain_all(&mut self, tables: &[TableMeta], max_rounds: usize) -> Result<usize> {
        let mut n = 0;
        for t in tables {
            for _ in 0..max_rounds {
                let got = self.drain_once(t, 2000).await?;
                n += got;
                if got == 0 {
                    break;
                }
            }
        }
        Ok(n)
    }

    /// Verifies one chunk of `t`: keys after `lo` up to and including `hi` (open ends when
    /// `None`). Holds shared locks on the source rows while it compares, diffs mismatching
    /// chunks row by row, repairs them by copying, and checks again.
    ///
    /// # Errors
    /// Query failures.
    pub async fn verify_chunk(
        &mut self,
        t: &TableMeta,
        lo: Option<&[Value]>,
        hi: Option<&[Value]>,
    ) -> Result<ChunkResult> {
        let mut cond = Vec::new();
        let mut params = Vec::new();
        if let Some(k) = lo {
            cond.push(format!("{} > {}", t.pk_sql(), t.tuple()));
            params.extend(k.iter().cloned());
        }
        if let Some(k) = hi {
            cond.push(format!("{} <= {}", t.pk_sql(), t.tuple()));
            params.extend(k.iter().cloned());
        }
        let cond = if cond.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", cond.join(" AND "))
        };
        let sum_sql = |schema: &str, lock: bool| {
            format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM({}), 0) AS CHAR) FROM {}.{} {cond}{}",
                t.row_hash_sql(),
                qi(schema),
                qi(&t.name),
                if lock { " LOCK IN SHARE MODE" } else { "" }
            )
        };
        self.src.query_drop("START TRANSACTION").await?;
        let run = async {
            let s: Option<(u64, String)> = self
                .src
                .exec_first(sum_sql(self.src_schema, true), params.clone())
                .await?;
            let d: Option<(u64, String)> = self
                .dst
                .exec_first(sum_sql(self.dst_schema, false), params.clone())
                .await?;
            let mut res = ChunkResult {
                rows: s.as_ref().map(|x| x.0).unwrap_or(0),
                ..Default::default()
            };
            if s == d {
                res.matching = res.rows;
                res.clean_after_repair = true;
                return Ok(res);
            }
            // Row by row.
            let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
            let diff_sql = |schema: &str| {
                format!(
                    "SELECT {}, {} FROM {}.{} {cond}",
                    pk.join(", "),
                    t.row_hash_sql(),
                    qi(schema),
                    qi(&t.name)
                )
            };
            let read = |rows: Vec<Row>| {
                rows.into_iter()
                    .map(|r| {
                        let mut v = r.unwrap();
                        let h = v.pop().unwrap_or(Value::NULL);
                        (key_string(&v), (v, h))
                    })
                    .collect::<std::collections::HashMap<_, _>>()
            };
            let srows = read(
                self.src
                    .exec(diff_sql(self.src_schema), params.clone())
                    .await?,
            );
            let drows = read(
                self.dst
                    .exec(diff_sql(self.dst_schema), params.clone())
                    .await?,
            );
            let mut repair = Vec::new();
            for (k, (key, h)) in &srows {
                match drows.get(k) {
                    Some((_, h2)) if h2 == h => res.matching += 1,
                    Some(_) => {
                        res.mismatched += 1;
                        repair.push(key.clone());
                    }
                    None => {
                        res.missing_on_target += 1;
                        repair.push(key.clone());
                    }
                }
            }
            for (k, (key, _)) in &drows {
                if !srows.contains_key(k) {
                    res.extra_on_target += 1;
                    repair.push(key.clone());
                }
            }
            res.repaired = self.copy_keys(t, &repair, false).await?;
            let d2: Option<(u64, String)> = self
                .dst
                .exec_first(sum_sql(self.dst_schema, false), params.clone())
                .await?;
            res.clean_after_repair = s == d2;
            Ok::<_, anyhow::Error>(res)
        };
        let r = run.await;
        let _ = self.src.query_drop("COMMIT").await;
        r
    }
}

/// One verified chunk.
#[derive(Debug, Default, Clone)]
pub struct ChunkResult {
    pub rows: u64,
    pub matching: u64,
    pub mismatched: u64,
    pub missing_on_target: u64,
    pub extra_on_target: u64,
    pub repaired: u64,
    /// Whether the chunk matched after repair (true when it matched at once).
    pub clean_after_repair: bool,
}

impl ChunkResult {
    /// Whether the chunk matched without repair.
    pub fn matched(&self) -> bool {
        self.mismatched == 0 && self.missing_on_target == 0 && self.extra_on_target == 0
    }
}

/// The key that ends the chunk of `n` rows after `lo` on the source, or `None` when fewer
/// than `n` rows remain.
///
/// # Errors
/// Query failures.
pub async fn chunk_end(
    conn: &mut Conn,
    schema: &str,
    t: &TableMeta,
    lo: Option<&[Value]>,
    n: usize,
) -> Result<Option<Vec<Value>>> {
    let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
    let (cond, params) = match lo {
        Some(k) => (format!("WHERE {} > {}", t.pk_sql(), t.tuple()), k.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let row: Option<Row> = conn
        .exec_first(
            format!(
                "SELECT {} FROM {}.{} {cond} ORDER BY {} LIMIT 1 OFFSET {}",
                pk.join(", "),
                qi(schema),
                qi(&t.name),
                pk.join(", "),
                n.saturating_sub(1)
            ),
            params,
        )
        .await?;
    Ok(row.map(Row::unwrap))
}
