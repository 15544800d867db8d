//! The result shadow: a sampled share of a keyspace's reads also runs against a second copy
//! of the data, and the answers are compared.
//!
//! Isolation: the client gets its answer first, from the primary; the router keeps a bounded
//! copy of it (4 MiB; larger results are skipped) and hands the comparison to a task. Shadow
//! reads use their own connection pools, a concurrency cap (more are skipped, counted) and a
//! timeout. Only autocommit reads outside transactions are shadowed (a transaction's reads
//! may see its own uncommitted writes, which the copy does not have); writes never are.

use crate::backend::Backends;
use crate::config::BackendConfig;
use crate::engine::merge::{kind_of, Dec, Kind};
use crate::engine::Engine;
use crate::session::Session;
use crate::sql::fingerprint;
use crate::topology::TopologyCache;
use crate::wire::codec::Cursor;
use crate::wire::packet::Capture;
use crate::wire::PacketIo;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_topo::ResultShadowSpec;
use tokio::sync::Semaphore;

/// The largest primary result copied for comparison.
pub const MAX_CAPTURE: usize = 4 << 20;
/// Differing rows kept per mismatch, per side.
const SAMPLE_ROWS: usize = 5;

/// A recorded difference, by fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub keyspace: String,
    pub fingerprint: String,
    pub count: u64,
    /// The last statement that differed, with its literal values (the bound parameters).
    pub statement: String,
    pub primary_rows: usize,
    pub shadow_rows: usize,
    /// What differed: `columns`, `rows`, or `error` (the shadow failed where the primary did not).
    pub kind: String,
    pub only_in_primary: Vec<Vec<Option<String>>>,
    pub only_in_shadow: Vec<Vec<Option<String>>>,
    pub detail: Option<String>,
}

/// The report served on `/shadow/results`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub compared: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub ignored: u64,
    pub skipped: BTreeMap<String, u64>,
    pub mismatches: Vec<Mismatch>,
}

/// One router's result shadow.
pub struct ResultShadow {
    engine: Arc<Engine>,
    metrics: Arc<crate::metrics::Metrics>,
    sem: Arc<Semaphore>,
    compared: AtomicU64,
    matched: AtomicU64,
    mismatched: AtomicU64,
    ignored: AtomicU64,
    skipped: Mutex<BTreeMap<String, u64>>,
    mismatches: Mutex<HashMap<(String, String), Mismatch>>,
}

impl ResultShadow {
    /// Builds the shadow with its own pools (`pool_max` connections per physical shard).
    pub fn new(
        cache: Arc<TopologyCache>,
        pool_max: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        let backends = Arc::new(Backends::new(BackendConfig {
            pool_max,
            ..BackendConfig::default()
        }));
        Arc::new(ResultShadow {
            engine: Arc::new(Engine::new(cache, backends)),
            metrics,
            sem: Arc::new(Semaphore::new(64)),
            compared: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            mismatched: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            skipped: Mutex::new(BTreeMap::new()),
            mismatches: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a read that was not shadowed.
    pub fn skip(&self, why: &str) {
        self.metrics
            .shadow_results
            .with_label_values(&[format!("skipped_{why}").as_str()])
            .inc();
        *self
            .skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(why.to_string())
            .or_insert(0) += 1;
    }

    /// Decides whether to shadow this read; returns the capture to attach to the client's
    /// packet stream when so.
    pub fn start(&self, spec: &ResultShadowSpec, sql: &str) -> Option<Capture> {
        if spec.sample_rate < 1.0 && rand::random::<f64>() >= spec.sample_rate {
            return None;
        }
        if !spec.ignore.is_empty() && spec.ignore.iter().any(|f| *f == fingerprint(sql)) {
            self.ignored.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .shadow_results
                .with_label_values(&["ignored"])
                .inc();
            return None;
        }
        Some(Capture {
            max_bytes: MAX_CAPTURE,
            ..Capture::default()
        })
    }

    /// Compares the client's answer (`primary`) with the target's, on a task of its own.
    pub fn finish(self: &Arc<Self>, spec: ResultShadowSpec, sql: String, primary: Capture) {
        if primary.overflow {
            self.skip("result_too_large");
            return;
        }
        let in_flight = spec.max_concurrency.min(64);
        if 64 - self.sem.available_permits() >= in_flight {
            self.skip("busy");
            return;
        }
        let Ok(permit) = self.sem.clone().try_acquire_owned() else {
            self.skip("busy");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let run = this.shadow_read(&spec, &sql);
            match tokio::time::timeout(Duration::from_millis(spec.timeout_ms), run).await {
                Err(_) => this.skip("timeout"),
                Ok(shadow) => this.compare(&spec, &sql, &primary, shadow),
            }
        });
    }

    async fn shadow_read(&self, spec: &ResultShadowSpec, sql: &str) -> Result<Capture, String> {
        let mut session = Session::new(
            0,
            "shadow".into(),
            Some(spec.target.clone()),
            crate::wire::constants::CLIENT_DEPRECATE_EOF,
        );
        let rt = self.engine.topo.table();
        let plan = crate::planner::plan(sql, Some(&spec.target), &rt).map_err(|e| e.to_string())?;
        let mut io =
            PacketIo::from_parts(Box::new(tokio::io::empty()), Box::new(tokio::io::sink()));
        io.capture = Some(Capture {
            max_bytes: MAX_CAPTURE,
            ..Capture::default()
        });
        let r = self.engine.execute(&mut session, plan, &mut io).await;
        let _ = self.engine.finish_txn(&mut session, false).await;
        r.map_err(|e| e.to_string())?;
        io.capture.take().ok_or_else(|| "no result".to_string())
    }

    /// Compares one answer; `compared` moves only once the outcome is recorded, so a report
    /// that counts N comparisons holds all N outcomes.
    fn compare(
        &self,
        spec: &ResultShadowSpec,
        sql: &str,
        primary: &Capture,
        shadow: Result<Capture, String>,
    ) {
        self.compare_one(spec, sql, primary, shadow);
        self.compared.fetch_add(1, Ordering::SeqCst);
    }

    fn compare_one(
        &self,
        spec: &ResultShadowSpec,
        sql: &str,
        primary: &Capture,
        shadow: Result<Capture, String>,
    ) {
        let fp = fingerprint(sql);
        let mut m = Mismatch {
            keyspace: spec.keyspace.clone(),
            fingerprint: fp.clone(),
            count: 0,
            statement: sql.chars().take(2000).collect(),
            primary_rows: primary.rows.len(),
            shadow_rows: 0,
            kind: String::new(),
            only_in_primary: Vec::new(),
            only_in_shadow: Vec::new(),
            detail: None,
        };
        match shadow {
            Err(e) => {
                m.kind = "error".into();
                m.detail = Some(e);
            }
            Ok(s) if s.overflow => {
                self.skip("result_too_large");
                return;
            }
            Ok(s) => {
                m.shadow_rows = s.rows.len();
                let names = |c: &Capture| {
                    c.columns
                        .iter()
                        .map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase())
                        .collect::<Vec<_>>()
                };
                if names(primary) != names(&s) {
                    m.kind = "columns".into();
                    m.detail = Some(format!(
                        "primary {:?}, shadow {:?}",
                        names(primary),
                        names(&s)
                    ));
                } else {
                    let kinds: Vec<Kind> =
                        primary.columns.iter().map(|(_, t)| kind_of(*t)).collect();
                    let norm = |c: &Capture| -> Vec<Vec<Option<String>>> {
                        c.rows.iter().map(|r| normalize(r, &kinds)).collect()
                    };
                    let (mut a, mut b) = (norm(primary), norm(&s));
                    let ordered = is_ordered(sql);
                    if !ordered {
                        a.sort();
                        b.sort();
                    }
                    if a == b {
                        self.matched.fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .shadow_results
                            .with_label_values(&["match"])
                            .inc();
                        return;
                    }
                    m.kind = "rows".into();
                    if ordered && {
                        let (mut x, mut y) = (a.clone(), b.clone());
                        x.sort();
                        y.sort();
                        x == y
                    } {
                        m.detail = Some("same rows in another order".into());
                    }
                    let (mut x, mut y) = (a, b);
                    x.sort();
                    y.sort();
                    let (only_a, only_b) = diff(&x, &y);
                    m.only_in_primary = only_a.into_iter().take(SAMPLE_ROWS).collect();
                    m.only_in_shadow = only_b.into_iter().take(SAMPLE_ROWS).collect();
                }
            }
        }
        self.mismatched.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .shadow_results
            .with_label_values(&["mismatch"])
            .inc();
        tracing::warn!(fingerprint = %fp, kind = %m.kind, "result shadow mismatch");
        let mut all = self.mismatches.lock().unwrap_or_else(|p| p.into_inner());
        let key = (spec.keyspace.clone(), fp);
        let prev = all.get(&key).map_or(0, |x| x.count);
        m.count = prev + 1;
        all.insert(key, m);
    }

    /// Returns the report, most frequent mismatches first.
    pub fn report(&self) -> Report {
        // Read first: every comparison counted here has recorded its outcome already.
        let compared = self.compared.load(Ordering::SeqCst);
        let mut mismatches: Vec<Mismatch> = self
            .mismatches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        mismatches.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        Report {
            compared,
            matched: self.matched.load(Ordering::Relaxed),
            mismatched: self.mismatched.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            skipped: self
                .skipped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            mismatches,
        }
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        self.mismatches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for c in [
            &self.compared,
            &self.matched,
            &self.mismatched,
            &self.ignored,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Whether the statement's answer has a defined order (a top-level `ORDER BY`).
fn is_ordered(sql: &str) -> bool {
    use sqlparser::ast::Statement;
    match sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql) {
        Ok(v) => matches!(v.first(), Some(Statement::Query(q)) if q.order_by.is_some()),
        Err(_) => false,
    }
}

/// Decodes a text row into values normalised as MariaDB compares them: numbers by value,
/// strings without trailing spaces.
fn normalize(row: &[u8], kinds: &[Kind]) -> Vec<Option<String>> {
    let mut c = Cursor::new(row);
    let mut out = Vec::with_capacity(kinds.len());
    for k in kinds {
        let pos = row.len() - c.remaining();
        if row.get(pos) == Some(&0xfb) {
            let _ = c.u8();
            out.push(None);
            continue;
        }
        let Some(v) = c.lenenc_str() else { break };
        let s = String::from_utf8_lossy(v);
        out.push(Some(match k {
            Kind::Exact => Dec::parse(v).map_or_else(
                || s.to_string(),
                |d| {
                    let (mut m, mut scale) = (d.m, d.scale);
                    while scale > 0 && m % 10 == 0 {
                        m /= 10;
                        scale -= 1;
                    }
                    Dec { m, scale }.format()
                },
            ),
            Kind::Float => s
                .trim()
                .parse::<f64>()
                .map_or_else(|_| s.to_string(), |f| format!("{f:e}")),
            Kind::Str | Kind::Bytes => s.trim_end_matches(' ').to_string(),
            _ => s.to_string(),
        }));
    }
    out
}

/// Rows only in `a` and only in `b` (both sorted).
#[allow(clippy::type_complexity)]
fn diff(
    a: &[Vec<Option<String>>],
    b: &[Vec<Option<String>>],
) -> (Vec<Vec<Option<String>>>, Vec<Vec<Option<String>>>) {
    let (mut i, mut j) = (0, 0);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                oa.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                ob.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                oa.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                ob.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (oa, ob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_diffs() {
        let mut r = Vec::new();
        crate::wire::resultset::put_text_value(&mut r, Some(b"1.500"));
        crate::wire::resultset::put_text_value(&mut r, Some(b"ab  "));
        crate::wire::resultset::put_text_value(&mut r, None);
        let n = normalize(&r, &[Kind::Exact, Kind::Str, Kind::Str]);
        assert_eq!(
            n,
            vec![Some("1.5".to_string()), Some("ab".to_string()), None]
        );
        let a = vec![vec![Some("1".to_string())], vec![Some("2".to_string())]];
        let b = vec![vec![Some("2".to_string())], vec![Some("3".to_string())]];
        let (x, y) = diff(&a, &b);
        assert_eq!(x, vec![vec![Some("1".to_string())]]);
        assert_eq!(y, vec![vec![Some("3".to_string())]]);
        assert!(is_ordered("SELECT a FROM t ORDER BY a"));
        assert!(!is_ordered(
            "SELECT a FROM t WHERE b IN (SELECT c FROM u ORDER BY c)"
        ));
    }
}
