//! What the status page and `tessera status` show: keyspaces and placement with measured
//! sizes, routers and their epochs, topology nodes, move jobs, the busiest query shapes, and
//! the query log.

use crate::backend::Backends;
use crate::config::QueryLogConfig;
use crate::topology::TopologyCache;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_topo::records::ls_schema;
use tessera_topo::Topo;

/// Most query shapes tracked; later new shapes are not tracked.
const MAX_SHAPES: usize = 2000;

/// Per query shape (fingerprint): how often, how fast, where it goes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShapeStats {
    pub fingerprint: String,
    pub route: String,
    pub count: u64,
    pub errors: u64,
    pub total_ms: f64,
    pub max_ms: f64,
    pub rows: u64,
}

/// One finished statement, as the stats and the query log see it.
pub struct Finished<'a> {
    /// The statement's normalised text (literals as `?`): the key its stats are kept under.
    pub fingerprint: &'a str,
    /// The statement as sent (its shown fingerprint, with lists folded, is made once per shape).
    pub sql: &'a str,
    pub route: &'a str,
    pub keyspace: &'a str,
    /// Logical shards it ran on (0 when not known).
    pub shards: usize,
    pub rows: u64,
    pub elapsed: Duration,
    pub error: Option<&'a str>,
}

/// The query log: lines go through a bounded channel to a writer thread, so a slow disk
/// never holds a query up; lines that do not fit are dropped and counted.
pub struct QueryLog {
    cfg: QueryLogConfig,
    tx: std::sync::mpsc::SyncSender<String>,
    pub dropped: prometheus::IntCounter,
    pub written: prometheus::IntCounter,
    seq: std::sync::atomic::AtomicU64,
}

impl QueryLog {
    /// Opens (appends to) the log file and starts its writer.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(cfg: QueryLogConfig) -> std::io::Result<Arc<Self>> {
        if !(0.0..=1.0).contains(&cfg.sample_rate) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "query_log.sample_rate: must be between 0.0 and 1.0",
            ));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(10_000);
        let written = prometheus::IntCounter::new(
            "tessera_router_query_log_lines_total",
            "Query log lines written",
        )
        .expect("valid metric");
        let w = written.clone();
        std::thread::Builder::new()
            .name("query-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.write_all(b"\n");
                    w.inc();
                    // Flush when nothing else is waiting.
                    if let Ok(next) = rx.try_recv() {
                        let _ = out.write_all(next.as_bytes());
                        let _ = out.write_all(b"\n");
                        w.inc();
                    }
                    let _ = out.flush();
                }
            })?;
        Ok(Arc::new(QueryLog {
            cfg,
            tx,
            dropped: prometheus::IntCounter::new(
                "tessera_router_query_log_dropped_total",
                "Query log lines dropped because the writer fell behind",
            )
            .expect("valid metric"),
            written,
            seq: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Logs `f` (shown as `fingerprint`) if it is sampled or slow.
    pub fn record(&self, f: &Finished<'_>, fingerprint: &str) {
        let ms = f.elapsed.as_secs_f64() * 1000.0;
        let slow = self.cfg.slow_ms.is_some_and(|s| ms >= s as f64);
        let sampled = if self.cfg.sample_rate >= 1.0 {
            true
        } else if self.cfg.sample_rate <= 0.0 {
            false
        } else {
            // Evenly spread: every 1/rate-th statement.
            let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let every = (1.0 / self.cfg.sample_rate).round().max(1.0) as u64;
            n.is_multiple_of(every)
        };
        if !slow && !sampled {
            return;
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let line = serde_json::json!({
            "ts_ms": ts,
            "fingerprint": fingerprint,
            "keyspace": f.keyspace,
            "route": f.route,
            "shards": f.shards,
            "rows": f.rows,
            "duration_ms": (ms * 1000.0).round() / 1000.0,
            "slow": slow,
            "error": f.error,
        })
        .to_string();
        if self.tx.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

/// Measured `(rows, bytes)` of each logical shard of a keyspace (`None`: not measured).
type Sizes = Vec<Option<(u64, u64)>>;

/// The router's overview state.
pub struct Overview {
    topo: Topo,
    cache: Arc<TopologyCache>,
    backends: Arc<Backends>,
    shapes: Mutex<crate::FastMap<String, ShapeStats>>,
    /// Measured `(rows, bytes)` per keyspace and logical shard.
    sizes: Mutex<HashMap<String, Sizes>>,
    /// Routers, jobs and topology nodes, read at most once a second.
    slow: tokio::sync::Mutex<Option<(Instant, serde_json::Value)>>,
    pub log: Option<Arc<QueryLog>>,
}

impl Overview {
    pub fn new(
        topo: Topo,
        cache: Arc<TopologyCache>,
        backends: Arc<Backends>,
        log: Option<Arc<QueryLog>>,
    ) -> Arc<Self> {
        Arc::new(Overview {
            topo,
            cache,
            backends,
            shapes: Mutex::default(),
            sizes: Mutex::default(),
            slow: tokio::sync::Mutex::new(None),
            log,
        })
    }

    /// Records a finished statement.
    pub fn record(&self, f: &Finished<'_>) {
        let ms = f.elapsed.as_secs_f64() * 1000.0;
        let shown = {
            let mut shapes = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
            let n = shapes.len();
            let s = match shapes.get_mut(f.fingerprint) {
                Some(s) => Some(s),
                None if n < MAX_SHAPES => {
                    let s = shapes.entry(f.fingerprint.to_string()).or_default();
                    s.fingerprint = crate::sql::fingerprint(f.sql);
                    Some(s)
                }
                None => None,
            };
            s.and_then(|s| {
                if s.route != f.route {
                    s.route = f.route.to_string();
                }
                s.count += 1;
                s.errors += u64::from(f.error.is_some());
                s.total_ms += ms;
                s.max_ms = s.max_ms.max(ms);
                s.rows += f.rows;
                // The shown fingerprint is needed only for the query log.
                self.log.as_ref().map(|_| s.fingerprint.clone())
            })
        };
        if let Some(l) = &self.log {
            let shown = shown.unwrap_or_else(|| crate::sql::fingerprint(f.sql));
            l.record(f, &shown);
        }
    }

    /// The busiest shapes, by count.
    pub fn top(&self, n: usize) -> Vec<ShapeStats> {
        let shapes = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<ShapeStats> = shapes.values().cloned().collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.count));
        v.truncate(n);
        v
    }

    /// Measures logical-shard sizes every `every` until `stop` fires.
    pub async fn measure_loop(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            self.measure().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn measure(&self) {
        let rt = self.cache.table();
        let mut out: HashMap<String, Sizes> = HashMap::new();
        for ks in rt.keyspaces.values() {
            let mut sizes = vec![None; ks.placement.len()];
            for ps in ks.physical_shards() {
                let Some(rec) = rt.shards.get(&ps) else {
                    continue;
                };
                let Ok(mut c) = self.backends.pool(rec).get_conn().await else {
                    continue;
                };
                let rows: Result<Vec<(String, u64, u64)>, _> = c
                    .exec(
                        "SELECT TABLE_SCHEMA, CAST(COALESCE(SUM(TABLE_ROWS), 0) AS UNSIGNED), \
                         CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) \
                         FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE ? \
                         AND TABLE_NAME NOT LIKE '\\_tessera\\_%' GROUP BY TABLE_SCHEMA",
                        (format!("{}%", ks.name),),
                    )
                    .await;
                if let Ok(rows) = rows {
                    let by: HashMap<String, (u64, u64)> =
                        rows.into_iter().map(|(s, r, b)| (s, (r, b))).collect();
                    for (ls, p) in ks.placement.iter().enumerate() {
                        if *p == ps {
                            let schema = ls_schema(&ks.name, ks.sharded, ls as u32);
                            sizes[ls] = Some(by.get(&schema).copied().unwrap_or((0, 0)));
                        }
                    }
                }
            }
            out.insert(ks.name.clone(), sizes);
        }
        *self.sizes.lock().unwrap_or_else(|p| p.into_inner()) = out;
    }

    /// Routers, jobs, movetables and topology nodes (cached for a second; errors reported in
    /// place).
    async fn cluster(&self) -> serde_json::Value {
        let mut slow = self.slow.lock().await;
        if let Some((at, v)) = slow.as_ref() {
            if at.elapsed() < Duration::from_secs(1) {
                return v.clone();
            }
        }
        let t = Duration::from_secs(2);
        let routers = match tokio::time::timeout(t, self.topo.routers()).await {
            Ok(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
            Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            Err(_) => serde_json::json!({ "error": "topology did not answer in 2 s" }),
        };
        let jobs = match tokio::time::timeout(t, self.topo.jobs()).await {
            Ok(Ok(j)) => serde_json::to_value(j).unwrap_or_default(),
            Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            Err(_) => serde_json::json!({ "error": "topology did not answer in 2 s" }),
        };
        // Tables `tessera movetables` moves: state from the vschemas, copy progress from
        // its checkpoints (the journal backlog is `tessera movetables status`'s: counting it
        // here would scan each source journal every second).
        let movetables = match tokio::time::timeout(t, self.topo.movetables_jobs()).await {
            Ok(Ok(j)) => serde_json::to_value(j).unwrap_or_default(),
            Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            Err(_) => serde_json::json!({ "error": "topology did not answer in 2 s" }),
        };
        let nodes: Vec<serde_json::Value> = self
            .topo
            .store()
            .nodes()
            .await
            .into_iter()
            .map(|(ep, r)| match r {
                Ok(v) => serde_json::json!({ "endpoint": ep, "status": v }),
                Err(e) => serde_json::json!({ "endpoint": ep, "error": e }),
            })
            .collect();
        let v = serde_json::json!({
            "routers": routers,
            "jobs": jobs,
            "movetables": movetables,
            "topo_nodes": nodes,
        });
        *slow = Some((Instant::now(), v.clone()));
        v
    }

    /// Move jobs as Prometheus text: phase, rows copied and total per table, journal
    /// backlog, rows the last verification found different, and the last cutover's stall.
    pub async fn job_metrics(&self) -> String {
        let c = self.cluster().await;
        let Some(jobs) = c["jobs"].as_array() else {
            return String::new();
        };
        let esc = |v: &serde_json::Value| {
            v.as_str()
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        };
        let mut out = String::new();
        let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, v) in rows {
                out.push_str(&format!("{name}{{{labels}}} {v}\n"));
            }
        };
        let id = |j: &serde_json::Value| {
            format!(
                "job=\"{}\",keyspace=\"{}\"",
                esc(&j["id"]),
                esc(&j["keyspace"])
            )
        };
        family(
            "tessera_job_phase",
            "Move jobs: 1 for the phase each job is in",
            jobs.iter()
                .map(|j| (format!("{},phase=\"{}\"", id(j), esc(&j["phase"])), 1.0))
                .collect(),
        );
        let per_table = |field: &str| -> Vec<(String, f64)> {
            jobs.iter()
                .flat_map(|j| {
                    j["tables"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(move |(t, p)| {
                            (
                                format!(
                                    "{},table=\"{}\"",
                                    id(j),
                                    esc(&serde_json::Value::String(t.clone()))
                                ),
                                p[field].as_f64().unwrap_or(0.0),
                            )
                        })
                })
                .collect()
        };
        family(
            "tessera_job_rows_copied",
            "Rows a job's backfill copied, by table",
            per_table("rows_copied"),
        );
        family(
            "tessera_job_rows_total",
            "Rows a job's backfill has to copy, by table",
            per_table("rows_total"),
        );
        family(
            "tessera_job_journal_backlog",
            "Journal rows waiting to be copied, when last measured",
            jobs.iter()
                .map(|j| (id(j), j["journal_backlog"].as_f64().unwrap_or(0.0)))
                .collect(),
        );
        family(
            "tessera_job_verify_differences",
            "Rows the last verification found mismatched, missing or extra on the target",
            jobs.iter()
                .filter(|j| j["verify"].is_object())
                .map(|j| {
                    let n: f64 = j["verify"]["tables"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(_, c)| {
                            c["mismatched"].as_f64().unwrap_or(0.0)
                                + c["missing_on_target"].as_f64().unwrap_or(0.0)
                                + c["extra_on_target"].as_f64().unwrap_or(0.0)
                        })
                        .sum();
                    (id(j), n)
                })
                .collect(),
        );
        family(
            "tessera_job_cutover_stall_seconds",
            "The write stall of a job's last cutover or rollback",
            jobs.iter()
                .filter_map(|j| j["stall_ms"].as_f64().map(|ms| (id(j), ms / 1000.0)))
                .collect(),
        );
        out
    }

    /// Everything the status page shows, as JSON.
    pub async fn snapshot(
        &self,
        me: serde_json::Value,
        shadow: serde_json::Value,
    ) -> serde_json::Value {
        let rt = self.cache.table();
        let sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut keyspaces: Vec<serde_json::Value> = rt
            .keyspaces
            .values()
            .map(|ks| {
                let s = sizes.get(&ks.name);
                let shards: Vec<serde_json::Value> = ks
                    .placement
                    .iter()
                    .enumerate()
                    .map(|(ls, ps)| {
                        let (st, peer) = ks.move_state(ls as u32);
                        let size = s.and_then(|v| v.get(ls).copied().flatten());
                        serde_json::json!({
                            "ls": ls,
                            "ps": ps,
                            "state": st,
                            "peer": peer,
                            "rows": size.map(|x| x.0),
                            "bytes": size.map(|x| x.1),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": ks.name,
                    "sharded": ks.sharded,
                    "epoch": ks.epoch,
                    "logical_shards": shards,
                })
            })
            .collect();
        keyspaces.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let mut shards: Vec<String> = rt.shards.keys().cloned().collect();
        shards.sort();
        let cluster = self.cluster().await;
        serde_json::json!({
            "router": me,
            "physical_shards": shards,
            "keyspaces": keyspaces,
            "routers": cluster["routers"],
            "jobs": cluster["jobs"],
            "movetables": cluster["movetables"],
            "topo_nodes": cluster["topo_nodes"],
            "top_queries": self.top(15),
            "shadow": shadow,
        })
    }
}
