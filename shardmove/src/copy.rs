//! Copying rows of one logical-shard schema to another: table metadata, the journal and fence
//! triggers, chunked backfill, journal draining, and copying given keys.
//!
//! Copies of given keys (the routers' dual-write, the journal drain, repairs) read the source
//! rows under a shared lock and keep the lock until the target write is done, so copies of one
//! row land on the target in the order its versions committed on the source; copying the
//! *current* row is idempotent, so concurrent copiers converge. The backfill reads its chunks
//! without locks and settles each chunk afterwards (see [`Copier::settle_chunk`] for why that
//! keeps every update). Copy connections set `@tessera_copy`, which the triggers recognise:
//! copies are neither journalled nor fenced. Rows are written as text: multi-row `REPLACE`
//! statements of literals (see [`push_literal`]).

use crate::table::{key_string, qi, TableMeta, MAX_PARAMS};
use anyhow::Result;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Bytes of SQL text one multi-row `REPLACE` carries at most (a row longer than this goes
/// alone). Well under the smallest `max_allowed_packet` of supported servers (4 MiB).
pub const STMT_BYTES: usize = 1 << 21;

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
        write_rows(self.dst, self.dst_schema, t, rows).await
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

    /// Copies up to `limit` rows after `after` (primary-key order): [`read_chunk`],
    /// [`write_rows`], then [`Copier::settle_chunk`]. Returns the rows copied and the last
    /// key, `None` at the end of the table.
    ///
    /// # Errors
    /// Query failures.
    pub async fn copy_chunk(
        &mut self,
        t: &TableMeta,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<(u64, Option<Vec<Value>>)> {
        let chunk = read_chunk(self.src, self.src_schema, t, after, limit).await?;
        write_rows(self.dst, self.dst_schema, t, &chunk.rows).await?;
        self.settle_chunk(t, &chunk).await?;
        Ok((chunk.rows.len() as u64, chunk.next(t)))
    }

    /// Settles a chunk that [`read_chunk`] read without locks and that was then written to the
    /// target: reads the chunk's key range from the source again (a new consistent read, no
    /// locks) and copies again, the locking way ([`Copier::copy_keys`]), every key whose row
    /// is now different or gone. Returns the keys copied again.
    ///
    /// Why this loses no update, although the chunk's write may land after a newer copy of a
    /// row (a router's dual-write or the journal drain copied a change committed after the
    /// chunk's read, and then the chunk overwrote it with the older version): take a row of
    /// the chunk and the last change to it, committed at C (its final value, or its absence).
    /// - C before the chunk's read: the chunk wrote the final value.
    /// - C between the chunk's read and this re-read: the re-read sees the final value; if it
    ///   differs from what the chunk wrote, the row is copied again, under a lock, after the
    ///   chunk's write; if it equals it, the chunk wrote the final value.
    /// - C after this re-read, hence after the chunk's write: C's journal row is copied (by a
    ///   router or the drain) after C, under a lock, so after the chunk's write.
    ///
    /// In each case the last write of the row to the target carries its final value (locking
    /// copies among themselves land in commit order, as before). Rows inserted into the range
    /// after the read are not the chunk's: the journal carries them.
    ///
    /// # Errors
    /// Query failures.
    pub async fn settle_chunk(&mut self, t: &TableMeta, chunk: &Chunk) -> Result<u64> {
        let Some(last) = chunk.rows.last().map(|r| t.key_of(r)) else {
            return Ok(0);
        };
        let now = read_range(
            self.src,
            self.src_schema,
            t,
            chunk.after.as_deref(),
            Some(&last),
        )
        .await?;
        // Nothing changed (the common case): the same rows in the same order.
        if now == chunk.rows {
            return Ok(0);
        }
        let now: HashMap<String, Vec<Value>> = now
            .into_iter()
            .map(|r| (key_string(&t.key_of(&r)), r))
            .collect();
        let stale: Vec<Vec<Value>> = chunk
            .rows
            .iter()
            .filter(|r| now.get(&key_string(&t.key_of(r))) != Some(*r))
            .map(|r| t.key_of(r))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        self.copy_keys(t, &stale, true).await
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
    /// `None`). First the count and digest of the chunk on both sides at once, without locks
    /// (like `pt-table-checksum`); a chunk that matches is done. A chunk that differs is
    /// checked again with shared locks on the source rows held while it compares, diffed row
    /// by row, repaired by copying, and checked again.
    ///
    /// # Errors
    /// Query failures.
    pub async fn verify_chunk(
        &mut self,
        t: &TableMeta,
        lo: Option<&[Value]>,
        hi: Option<&[Value]>,
    ) -> Result<ChunkResult> {
        let (cond, params) = range_cond(t, lo, hi);
        let sum_sql = |schema: &str, lock: bool| digest_sql(t, schema, &cond, lock);
        let (s, d) = join2(
            self.src
                .exec_first::<(u64, String), _, _>(sum_sql(self.src_schema, false), params.clone()),
            self.dst
                .exec_first::<(u64, String), _, _>(sum_sql(self.dst_schema, false), params.clone()),
        )
        .await;
        let (s, d) = (s?, d?);
        if s == d {
            let rows = s.map(|x| x.0).unwrap_or(0);
            return Ok(ChunkResult {
                rows,
                matching: rows,
                clean_after_repair: true,
                ..Default::default()
            });
        }
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

/// Runs two futures at once (a source and a target query) and returns both outputs.
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(x) = a.as_mut().poll(cx) {
                ra = Some(x);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(x) = b.as_mut().poll(cx) {
                rb = Some(x);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
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

/// Rows of one backfill chunk, read without locks.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// The key the chunk starts after (`None`: the table's start).
    pub after: Option<Vec<Value>>,
    /// The rows, in primary-key order, read with [`TableMeta::columns`].
    pub rows: Vec<Vec<Value>>,
    /// Rows asked for: fewer rows than this means the table ended.
    pub limit: usize,
}

impl Chunk {
    /// The key the next chunk starts after; `None` when this chunk reached the table's end.
    pub fn next(&self, t: &TableMeta) -> Option<Vec<Value>> {
        if self.rows.len() < self.limit {
            None
        } else {
            self.rows.last().map(|r| t.key_of(r))
        }
    }
}

/// Reads up to `limit` rows of `t` after `after` in primary-key order: one consistent read
/// (MVCC, no locks, so writers never wait on it). Such rows may be older than a copy another
/// copier writes meanwhile: [`Copier::settle_chunk`] after the chunk's write makes that safe.
///
/// # Errors
/// Query failures.
pub async fn read_chunk(
    src: &mut Conn,
    schema: &str,
    t: &TableMeta,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Chunk> {
    let limit = limit.max(1);
    let (cond, params) = match after {
        Some(k) => (format!("WHERE {} > {}", t.pk_sql(), t.tuple()), k.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let rows: Vec<Row> = src
        .exec(
            format!(
                "SELECT {} FROM {}.{} {cond} ORDER BY {} LIMIT {limit}",
                t.cols_sql(),
                qi(schema),
                qi(&t.name),
                t.pk_order()
            ),
            params,
        )
        .await?;
    Ok(Chunk {
        after: after.map(<[Value]>::to_vec),
        rows: rows.into_iter().map(Row::unwrap).collect(),
        limit,
    })
}

/// Rows of `t` with keys after `lo` up to and including `hi`, in key order, without locks.
async fn read_range(
    src: &mut Conn,
    schema: &str,
    t: &TableMeta,
    lo: Option<&[Value]>,
    hi: Option<&[Value]>,
) -> Result<Vec<Vec<Value>>> {
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
    let rows: Vec<Row> = src
        .exec(
            format!(
                "SELECT {} FROM {}.{} {cond} ORDER BY {}",
                t.cols_sql(),
                qi(schema),
                qi(&t.name),
                t.pk_order()
            ),
            params,
        )
        .await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// Writes `rows` (read with [`TableMeta::columns`]) into `schema`.`t` on `dst` as multi-row
/// `REPLACE` statements of SQL literals, each up to [`STMT_BYTES`], over the text protocol:
/// no placeholders to bind, no statement to prepare per batch size.
///
/// # Errors
/// Query failures.
pub async fn write_rows(
    dst: &mut Conn,
    schema: &str,
    t: &TableMeta,
    rows: &[Vec<Value>],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let head = format!(
        "REPLACE INTO {}.{} ({}) VALUES ",
        qi(schema),
        qi(&t.name),
        t.cols_sql()
    );
    let mut sql = String::with_capacity(STMT_BYTES + 4096);
    for row in rows {
        if sql.is_empty() {
            sql.push_str(&head);
        } else {
            sql.push(',');
        }
        sql.push('(');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            push_literal(&mut sql, v);
        }
        sql.push(')');
        if sql.len() >= STMT_BYTES {
            dst.query_drop(std::mem::take(&mut sql)).await?;
            sql.reserve(STMT_BYTES + 4096);
        }
    }
    if !sql.is_empty() {
        dst.query_drop(sql).await?;
    }
    Ok(())
}

/// Appends `v` as an SQL literal that stores the same value: integers and dates as
/// `mysql_async` writes them, floating-point numbers in exponent form with the digits that
/// read back as the same double (a `FLOAT` widened exactly to a double first), strings that
/// are UTF-8 (the connection's character set) quoted with backslash escapes (copy sessions
/// set an `sql_mode` without `NO_BACKSLASH_ESCAPES`, [`COPY_SESSION`]), other bytes as a hex
/// literal (a binary string).
pub fn push_literal(out: &mut String, v: &Value) {
    match v {
        Value::NULL => out.push_str("NULL"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{:e}", f64::from(*f));
        }
        Value::Double(d) => {
            let _ = write!(out, "{d:e}");
        }
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                out.push('\'');
                let mut start = 0;
                for (i, c) in s.bytes().enumerate() {
                    let esc = match c {
                        0 => "\\0",
                        b'\n' => "\\n",
                        b'\r' => "\\r",
                        b'\\' => "\\\\",
                        b'\'' => "\\'",
                        b'"' => "\\\"",
                        0x1a => "\\Z",
                        _ => continue,
                    };
                    out.push_str(&s[start..i]);
                    out.push_str(esc);
                    start = i + 1;
                }
                out.push_str(&s[start..]);
                out.push('\'');
            }
            Err(_) => {
                out.push_str("X'");
                for x in b {
                    let _ = write!(out, "{x:02X}");
                }
                out.push('\'');
            }
        },
        Value::Date(..) | Value::Time(..) => out.push_str(&v.as_sql(false)),
    }
}

/// The count and digest of a chunk on one side, and where the chunk ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub rows: u64,
    /// `BIT_XOR` of the rows' digests, as the server prints it.
    pub digest: String,
    /// The chunk's last key; `None` when the chunk reached the table's end (its range is then
    /// open above).
    pub hi: Option<Vec<Value>>,
}

/// The count, digest and last key of the `n` rows after `lo`, in one pass (no locks): what a
/// verification compares the target's range with. Only for a single-column primary key (the
/// chunk's last key is its `MAX`); other tables take [`chunk_end`] first.
///
/// # Errors
/// Query failures; a table whose primary key has several columns.
pub async fn next_digest(
    conn: &mut Conn,
    schema: &str,
    t: &TableMeta,
    lo: Option<&[Value]>,
    n: usize,
) -> Result<Digest> {
    let [pk] = t.pk.as_slice() else {
        anyhow::bail!("next_digest needs a single-column primary key ({})", t.name);
    };
    let n = n.max(1);
    let (cond, params) = match lo {
        Some(k) => (format!("WHERE {} > {}", t.pk_sql(), t.tuple()), k.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let row: Option<(u64, String, Value)> = conn
        .exec_first(
            format!(
                "SELECT COUNT(*), CAST(COALESCE(BIT_XOR(`h`), 0) AS CHAR), MAX(`k`) FROM \
                 (SELECT {pk} AS `k`, {} AS `h` FROM {}.{} {cond} ORDER BY {pk} LIMIT {n}) AS `c`",
                t.row_hash_sql(),
                qi(schema),
                qi(&t.name),
                pk = qi(pk),
            ),
            params,
        )
        .await?;
    let (rows, digest, last) = row.unwrap_or((0, "0".into(), Value::NULL));
    Ok(Digest {
        rows,
        digest,
        hi: (rows as usize >= n).then(|| vec![last]),
    })
}

/// The count and digest of the rows after `lo` up to and including `hi` (open ends when
/// `None`), without locks.
///
/// # Errors
/// Query failures.
pub async fn range_digest(
    conn: &mut Conn,
    schema: &str,
    t: &TableMeta,
    lo: Option<&[Value]>,
    hi: Option<&[Value]>,
) -> Result<(u64, String)> {
    let (cond, params) = range_cond(t, lo, hi);
    let row: Option<(u64, String)> = conn
        .exec_first(digest_sql(t, schema, &cond, false), params)
        .await?;
    Ok(row.unwrap_or((0, "0".into())))
}

/// `WHERE` over the keys after `lo` up to and including `hi`, and its parameters.
fn range_cond(t: &TableMeta, lo: Option<&[Value]>, hi: Option<&[Value]>) -> (String, Vec<Value>) {
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
    if cond.is_empty() {
        (String::new(), params)
    } else {
        (format!("WHERE {}", cond.join(" AND ")), params)
    }
}

/// Count and digest of the rows of `schema`.`t` that `cond` selects.
fn digest_sql(t: &TableMeta, schema: &str, cond: &str, lock: bool) -> String {
    format!(
        "SELECT COUNT(*), CAST(COALESCE(BIT_XOR({}), 0) AS CHAR) FROM {}.{} {cond}{}",
        t.row_hash_sql(),
        qi(schema),
        qi(&t.name),
        if lock { " LOCK IN SHARE MODE" } else { "" }
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> String {
        let mut s = String::new();
        push_literal(&mut s, &v);
        s
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Value::NULL), "NULL");
        assert_eq!(lit(Value::Int(-5)), "-5");
        assert_eq!(lit(Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(lit(Value::Double(0.1)), "1e-1");
        assert_eq!(lit(Value::Double(-0.0)), "-0e0");
        assert_eq!(lit(Value::Double(1.5e300)), "1.5e300");
        // A FLOAT goes out as the double it widens to, exactly.
        let f = 0.1f32;
        assert_eq!(lit(Value::Float(f)).parse::<f64>().ok(), Some(f64::from(f)));
        assert_eq!(
            lit(Value::Bytes(b"a'b\\c\"d\n\r\0\x1a\xc3\xa9".to_vec())),
            "'a\\'b\\\\c\\\"d\\n\\r\\0\\Z\u{e9}'"
        );
        assert_eq!(lit(Value::Bytes(vec![0xff, 0x00, 0x27])), "X'FF0027'");
        assert_eq!(
            lit(Value::Date(2024, 2, 29, 23, 59, 58, 123456)),
            "'2024-02-29 23:59:58.123456'"
        );
        assert_eq!(lit(Value::Time(true, 1, 2, 3, 4, 5)), "'-026:03:04.000005'");
    }
}
