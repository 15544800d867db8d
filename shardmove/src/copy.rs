//! Copying rows of one logical-shard schema to another: table metadata, the journal and fence
//! triggers, chunked backfill, journal draining, and copying given keys.
//!
//! Every copy reads the source rows under a shared lock and keeps the lock until the target
//! write is done, so copies of one row land on the target in the order its versions committed
//! on the source; copying the *current* row is idempotent, so concurrent copiers (routers,
//! the backfill, repairs) converge. Copy connections set `@tessera_copy`, which the triggers
//! recognise: copies are neither journalled nor fenced.

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::collections::HashSet;

/// Prefix of every auxiliary object Tessera creates in a logical-shard schema.
pub const AUX_PREFIX: &str = "_tessera_";

/// Session settings of every copy connection: values read and written as stored, without
/// journalling or fencing.
pub const COPY_SESSION: &str = "SET SESSION time_zone = '+00:00', \
     sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0, \
     @tessera_copy = 1";

/// Most placeholders one statement may carry.
const MAX_PARAMS: usize = 60_000;

/// Quotes an identifier with backticks.
pub fn qi(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Returns the name of an auxiliary object for `table` (journal table, triggers), at most 64
/// characters and stable for the table.
pub fn aux_name(kind: &str, table: &str) -> String {
    let name = format!("{AUX_PREFIX}{kind}_{table}");
    if name.len() <= 64 {
        return name;
    }
    // FNV-1a keeps long names distinct and stable.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in table.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // Room for the prefix, the kind, two underscores and 16 hex digits.
    let mut cut = 64usize.saturating_sub(AUX_PREFIX.len() + kind.len() + 2 + 16);
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{AUX_PREFIX}{kind}_{}_{h:016x}", &table[..cut])
}

/// One table of a logical-shard schema, as the copier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    pub name: String,
    /// Stored (not generated) columns, in table order.
    pub columns: Vec<String>,
    /// Primary-key columns, in key order.
    pub pk: Vec<String>,
    /// Positions of the primary-key columns in `columns`.
    pub pk_pos: Vec<usize>,
}

impl TableMeta {
    /// The journal table's name.
    pub fn journal(&self) -> String {
        aux_name("j", &self.name)
    }

    fn cols_sql(&self) -> String {
        self.columns
            .iter()
            .map(|c| qi(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn pk_sql(&self) -> String {
        let v: Vec<String> = self.pk.iter().map(|c| qi(c)).collect();
        if v.len() == 1 {
            v[0].clone()
        } else {
            format!("({})", v.join(", "))
        }
    }

    fn tuple(&self) -> String {
        if self.pk.len() == 1 {
            "?".into()
        } else {
            format!("({})", vec!["?"; self.pk.len()].join(", "))
        }
    }

    /// `pk IN (?, …)` for `n` keys.
    fn pk_in(&self, n: usize) -> String {
        format!(
            "{} IN ({})",
            self.pk_sql(),
            vec![self.tuple(); n].join(", ")
        )
    }

    /// An order-independent digest of one row: the first 60 bits of the MD5 of its columns.
    fn row_hash_sql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| qi(c)).collect();
        let nulls: Vec<String> = cols.iter().map(|c| format!("ISNULL({c})")).collect();
        format!(
            "CAST(CONV(SUBSTRING(MD5(CONCAT_WS(CHAR(31), {}, CONCAT({}))), 1, 15), 16, 10) AS UNSIGNED)",
            cols.join(", "),
            nulls.join(", ")
        )
    }

    /// Rows per statement that stay under the placeholder limit.
    fn max_rows(&self) -> usize {
        (MAX_PARAMS / self.columns.len().max(1)).max(1)
    }

    /// The primary key of a row read with [`TableMeta::columns`].
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.pk_pos
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or(Value::NULL))
            .collect()
    }
}

/// A key as a comparable string (SQL literal form).
pub fn key_string(k: &[Value]) -> String {
    k.iter()
        .map(|v| v.as_sql(false))
        .collect::<Vec<_>>()
        .join(",")
}

/// Lists the base tables of `schema` (leaving out Tessera's own) with columns and primary
/// keys.
///
/// # Errors
/// Query failures; a table without a primary key (moves copy tables in key order).
pub async fn load_tables(conn: &mut Conn, schema: &str) -> Result<Vec<TableMeta>> {
    let names: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (schema,),
        )
        .await?;
    let mut out = Vec::new();
    for name in names {
        if name.starts_with(AUX_PREFIX) {
            continue;
        }
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION",
                (schema, &name),
            )
            .await?;
        let pk: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE \
                 TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                (schema, &name),
            )
            .await?;
        if pk.is_empty() {
            bail!("table {schema}.{name} has no primary key; moves copy tables in primary-key order, so every table of a moved schema needs one");
        }
        let pk_pos = pk
            .iter()
            .map(|c| {
                columns
                    .iter()
                    .position(|x| x == c)
                    .ok_or_else(|| anyhow!("{schema}.{name}: primary-key column {c} is generated; such keys cannot be copied"))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(TableMeta {
            name,
            columns,
            pk,
            pk_pos,
        });
    }
    Ok(out)
}

/// Creates `dst_schema` on the target with the definitions of `tables` from `src_schema`
/// (idempotent: tables that exist are left as they are).
///
/// # Errors
/// Query failures.
pub async fn create_schema_like(
    src: &mut Conn,
    dst: &mut Conn,
    src_schema: &str,
    dst_schema: &str,
    tables: &[TableMeta],
) -> Result<()> {
    dst.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", qi(dst_schema)))
        .await?;
    for t in tables {
        let row: Option<(String, String)> = src
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                qi(src_schema),
                qi(&t.name)
            ))
            .await?;
        let (_, ddl) = row.ok_or_else(|| anyhow!("no definition for {src_schema}.{}", t.name))?;
        let ddl = ddl.replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1);
        dst.query_drop(format!("USE {}", qi(dst_schema))).await?;
        dst.query_drop(ddl)
            .await
            .with_context(|| format!("creating {dst_schema}.{}", t.name))?;
    }
    Ok(())
}

/// Installs the journal on `schema`: per table, a journal table with the primary-key columns
/// (same types) and triggers that record the key of every inserted, updated (old and new key)
/// and deleted row inside the writer's transaction. Idempotent.
///
/// # Errors
/// Query failures (for example a metadata lock that `lock_wait_timeout` gave up on).
pub async fn install_journal(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    conn.query_drop(format!("USE {}", qi(schema))).await?;
    for t in tables {
        let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (`_seq` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY) \
             SELECT {} FROM {} LIMIT 0",
            qi(&t.journal()),
            pk.join(", "),
            qi(&t.name)
        ))
        .await?;
        let ins = |side: &str| {
            format!(
                "INSERT INTO {} ({}) VALUES ({})",
                qi(&t.journal()),
                pk.join(", "),
                pk.iter()
                    .map(|c| format!("{side}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for (kind, event, body) in [
            ("ji", "INSERT", format!("{};", ins("NEW"))),
            ("jd", "DELETE", format!("{};", ins("OLD"))),
            ("ju", "UPDATE", format!("{}; {};", ins("OLD"), ins("NEW"))),
        ] {
            conn.query_drop(format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER {event} ON {} FOR EACH ROW \
                 IF @tessera_copy IS NULL THEN {body} END IF",
                qi(&aux_name(kind, &t.name)),
                qi(&t.name)
            ))
            .await
            .with_context(|| format!("journal trigger on {schema}.{}", t.name))?;
        }
    }
    Ok(())
}

/// Removes the journal triggers and journal tables from `schema`.
///
/// # Errors
/// Query failures.
pub async fn remove_journal(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    for t in tables {
        for kind in ["ji", "jd", "ju"] {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                qi(schema),
                qi(&aux_name(kind, &t.name))
            ))
            .await?;
        }
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {}.{}",
            qi(schema),
            qi(&t.journal())
        ))
        .await?;
    }
    Ok(())
}

/// Fences `schema`: triggers reject every write that is not a copy, with error 1205 (a
/// retriable error: the client retries and the router sends the retry where the logical shard
/// now lives). Idempotent.
///
/// # Errors
/// Query failures.
pub async fn install_fence(
    conn: &mut Conn,
    schema: &str,
    tables: &[TableMeta],
    what: &str,
) -> Result<()> {
    conn.query_drop(format!("USE {}", qi(schema))).await?;
    let msg =
        format!("tessera: {what} is fenced (logical shard moving or moved); retry the transaction")
            .replace('\'', "");
    for t in tables {
        for (kind, event) in [("fi", "INSERT"), ("fu", "UPDATE"), ("fd", "DELETE")] {
            conn.query_drop(format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE {event} ON {} FOR EACH ROW \
                 IF @tessera_copy IS NULL THEN SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1205, \
                 MESSAGE_TEXT = '{msg}'; END IF",
                qi(&aux_name(kind, &t.name)),
                qi(&t.name)
            ))
            .await
            .with_context(|| format!("fencing {schema}.{}", t.name))?;
        }
    }
    Ok(())
}

/// Removes the fence from `schema`.
///
/// # Errors
/// Query failures.
pub async fn remove_fence(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    for t in tables {
        for kind in ["fi", "fu", "fd"] {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                qi(schema),
                qi(&aux_name(kind, &t.name))
            ))
            .await?;
        }
    }
    Ok(())
}

/// Rows waiting in `schema`'s journal.
///
/// # Errors
/// Query failures.
pub async fn journal_backlog(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<u64> {
    let mut n = 0;
    for t in tables {
        let c: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {}.{}",
                qi(schema),
                qi(&t.journal())
            ))
            .await?;
        n += c.unwrap_or(0);
    }
    Ok(n)
}

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

/// Encodes a key for a checkpoint.
pub fn encode_key(k: &[Value]) -> String {
    let parts: Vec<String> = k
        .iter()
        .map(|v| match v {
            Value::NULL => "n".into(),
            Value::Int(i) => format!("i{i}"),
            Value::UInt(u) => format!("u{u}"),
            Value::Float(f) => format!("f{}", f.to_bits()),
            Value::Double(f) => format!("d{}", f.to_bits()),
            Value::Bytes(b) => format!("b{}", hex(b)),
            Value::Date(y, mo, d, h, mi, s, us) => format!("D{y},{mo},{d},{h},{mi},{s},{us}"),
            Value::Time(neg, d, h, mi, s, us) => {
                format!("T{},{d},{h},{mi},{s},{us}", u8::from(*neg))
            }
        })
        .collect();
    serde_json::to_string(&parts).unwrap_or_default()
}

/// Decodes a key written by [`encode_key`].
///
/// # Errors
/// A malformed checkpoint.
pub fn decode_key(s: &str) -> Result<Vec<Value>> {
    let parts: Vec<String> =
        serde_json::from_str(s).with_context(|| format!("bad checkpoint key {s:?}"))?;
    let bad = || anyhow!("bad checkpoint key {s:?}");
    parts
        .iter()
        .map(|p| {
            let (tag, rest) = p.split_at(p.len().min(1));
            let nums = |n: usize| -> Result<Vec<u64>> {
                let v: Vec<u64> = rest
                    .split(',')
                    .map(|x| x.parse::<u64>().map_err(|_| bad()))
                    .collect::<Result<_>>()?;
                if v.len() != n {
                    return Err(bad());
                }
                Ok(v)
            };
            Ok(match tag {
                "n" => Value::NULL,
                "i" => Value::Int(rest.parse().map_err(|_| bad())?),
                "u" => Value::UInt(rest.parse().map_err(|_| bad())?),
                "f" => Value::Float(f32::from_bits(rest.parse().map_err(|_| bad())?)),
                "d" => Value::Double(f64::from_bits(rest.parse().map_err(|_| bad())?)),
                "b" => Value::Bytes(unhex(rest).ok_or_else(bad)?),
                "D" => {
                    let v = nums(7)?;
                    Value::Date(
                        v[0] as u16,
                        v[1] as u8,
                        v[2] as u8,
                        v[3] as u8,
                        v[4] as u8,
                        v[5] as u8,
                        v[6] as u32,
                    )
                }
                "T" => {
                    let v = nums(6)?;
                    Value::Time(
                        v[0] != 0,
                        v[1] as u32,
                        v[2] as u8,
                        v[3] as u8,
                        v[4] as u8,
                        v[5] as u32,
                    )
                }
                _ => return Err(bad()),
            })
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip() {
        let k = vec![
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Bytes(b"a'b\x00".to_vec()),
            Value::Double(0.1),
            Value::Date(2024, 2, 29, 23, 59, 58, 123456),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::NULL,
        ];
        assert_eq!(decode_key(&encode_key(&k)).expect("decodes"), k);
        assert!(decode_key("[\"x1\"]").is_err());
        assert!(decode_key("nope").is_err());
    }

    #[test]
    fn aux_names_fit() {
        assert_eq!(aux_name("j", "orders"), "_tessera_j_orders");
        let long = "t".repeat(64);
        let n = aux_name("ju", &long);
        assert!(n.len() <= 64, "{n}");
        assert_ne!(n, aux_name("ju", &"t".repeat(63)));
    }
}
