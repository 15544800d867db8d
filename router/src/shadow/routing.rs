//! The routing shadow: every statement is planned a second time against the candidate
//! vschema and the outcome recorded by fingerprint. The client's statement only pays a
//! non-blocking `try_send`; a full queue drops the observation (counted), never the query.

use crate::planner::{self, Plan, RouteKind};
use crate::sql::fingerprint;
use crate::topology::TopologyCache;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Statements waiting to be shadow-planned; more are dropped.
const QUEUE: usize = 10_000;
/// Most fingerprints kept; new ones beyond are counted as `overflow`.
const MAX_FINGERPRINTS: usize = 20_000;

/// How a statement would run on the candidate layout.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: String,
    pub keyspace: String,
    /// `one`, `several`, `scatter`, `reference`, `any`, `local`, or `unsupported`.
    pub route: String,
    /// Whether the router would merge results (sort or aggregate) on the candidate.
    pub merged: bool,
    /// Why the candidate planner refused it.
    pub reason: Option<String>,
    pub count: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub example: String,
}

/// The report: entries by traffic, with totals.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub statements: u64,
    pub by_route: std::collections::BTreeMap<String, u64>,
    pub fingerprints: usize,
    pub dropped: u64,
    pub overflow: u64,
    pub entries: Vec<Entry>,
}

/// The routing shadow of one router.
pub struct RoutingShadow {
    tx: mpsc::Sender<(String, Option<String>)>,
    entries: Arc<Mutex<HashMap<(String, String), Entry>>>,
    dropped: AtomicU64,
    overflow: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RoutingShadow {
    /// Starts the shadow planner task; it ends when the shadow is dropped.
    pub fn start(cache: Arc<TopologyCache>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<(String, Option<String>)>(QUEUE);
        let entries: Arc<Mutex<HashMap<(String, String), Entry>>> = Arc::default();
        let overflow = Arc::new(AtomicU64::new(0));
        let (e2, o2) = (entries.clone(), overflow.clone());
        tokio::spawn(async move {
            while let Some((sql, ks)) = rx.recv().await {
                let table = cache.table();
                let Some(candidate) = table.candidate.clone() else {
                    continue;
                };
                let ks_name = ks.clone().unwrap_or_default();
                if ks
                    .as_deref()
                    .is_some_and(|k| candidate.keyspace(k).is_none())
                {
                    continue;
                }
                let (route, merged, reason) = match planner::plan(&sql, ks.as_deref(), &candidate) {
                    Ok(Plan::Exec(e)) => (route_name(e.route), e.merge.is_some(), None),
                    Ok(p) => (route_name(p.route()), false, None),
                    Err(e) => ("unsupported".to_string(), false, Some(e.message)),
                };
                let fp = fingerprint(&sql);
                let now = now_ms();
                let mut m = e2.lock().unwrap_or_else(|p| p.into_inner());
                let key = (ks_name.clone(), fp.clone());
                if !m.contains_key(&key) && m.len() >= MAX_FINGERPRINTS {
                    o2.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let e = m.entry(key).or_insert_with(|| Entry {
                    fingerprint: fp,
                    keyspace: ks_name,
                    route: route.clone(),
                    merged,
                    reason: reason.clone(),
                    count: 0,
                    first_seen_ms: now,
                    last_seen_ms: now,
                    example: sql.chars().take(1000).collect(),
                });
                e.count += 1;
                e.last_seen_ms = now;
                // The same shape can route differently by value (an IN list that happens to
                // hit one shard): keep the widest route seen.
                if rank(&route) > rank(&e.route) {
                    e.route = route;
                    e.reason = reason;
                    e.example = sql.chars().take(1000).collect();
                }
                e.merged |= merged;
            }
        });
        Arc::new(RoutingShadow {
            tx,
            entries,
            dropped: AtomicU64::new(0),
            overflow,
        })
    }

    /// Offers a statement to the shadow; never waits.
    pub fn observe(&self, sql: &str, keyspace: Option<&str>) {
        if self
            .tx
            .try_send((sql.to_string(), keyspace.map(str::to_string)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns the report, busiest fingerprints first.
    pub fn report(&self) -> Report {
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries: Vec<Entry> = m.values().cloned().collect();
        drop(m);
        entries.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        let mut by_route = std::collections::BTreeMap::new();
        let mut statements = 0;
        for e in &entries {
            *by_route.entry(e.route.clone()).or_insert(0) += e.count;
            statements += e.count;
        }
        Report {
            statements,
            by_route,
            fingerprints: entries.len(),
            dropped: self.dropped.load(Ordering::Relaxed),
            overflow: self.overflow.load(Ordering::Relaxed),
            entries,
        }
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn route_name(r: RouteKind) -> String {
    format!("{r:?}").to_ascii_lowercase()
}

fn rank(route: &str) -> u8 {
    match route {
        "local" | "any" => 0,
        "one" => 1,
        "reference" => 2,
        "several" => 3,
        "scatter" => 4,
        _ => 5,
    }
}
