//! The plan cache: one plan per normalised statement (literals as parameters).
//!
//! A statement is tokenised and its literals (numbers and strings) replaced by `?`; the result,
//! with the session's keyspace, is the key. On a miss the statement is planned as usual, and the
//! plan is kept only if it can be re-bound exactly:
//!
//! - it runs one statement template (no split `INSERT`, no router-side merge or `LIMIT`, which
//!   carry literal values of their own);
//! - its targets do not depend on literal values (an unsharded keyspace, reference tables, or
//!   no table), or it runs on one logical shard of a sharded keyspace chosen by exactly one
//!   `key = literal` term: a hit routes that literal's new value through the vindex, and a
//!   value that names no single shard is planned in full (other sharded statements, whose
//!   shards come from several values, are planned every time);
//! - the template's literals are the statement's literals, the same texts in the same order
//!   (so the rewrite kept every literal byte for byte and added none).
//!
//! A hit writes the new literals into the template between the kept pieces. Shapes that
//! cannot be re-bound are remembered as such, so they are not analysed again. The cache is
//! emptied whenever the routing table changes, and when it reaches its size bound.

use super::plan::{Exec, KeyAt, Plan, RouteKind, Targets};
use crate::error::SqlError;
use crate::sql::shape::{shape, Shape};
use crate::topology::RoutingTable;
use crate::FastMap;
use std::sync::{Arc, Mutex};

/// Most shapes kept.
const MAX_ENTRIES: usize = 10_000;

/// A plan ready to be re-bound: the template cut at its literals.
#[derive(Clone)]
struct Bindable {
    exec: Exec,
    pieces: Vec<String>,
    /// For a sharded single-shard plan: which literal picks the logical shard, and how.
    key: Option<KeyLiteralAt>,
}

#[derive(Clone, Copy)]
struct KeyLiteralAt {
    /// Index among the statement's literals.
    index: usize,
    at: KeyAt,
    logical_shards: u32,
}

#[derive(Default)]
struct Inner {
    /// The routing table the entries were planned with (by address).
    table: usize,
    /// By keyspace (`""` for none), then shape: looked up without building a key.
    map: FastMap<String, FastMap<String, Option<Arc<Bindable>>>>,
    entries: usize,
}

/// Plans by normalised statement, shared by a router's connections.
pub struct PlanCache {
    inner: Mutex<Inner>,
    /// Lookups by result: `hit`, `miss`.
    pub lookups: prometheus::IntCounterVec,
    hits: prometheus::IntCounter,
    misses: prometheus::IntCounter,
}

impl Default for PlanCache {
    fn default() -> Self {
        let lookups = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "tessera_router_plan_cache_total",
                "Plan cache lookups by result (hit, miss)",
            ),
            &["result"],
        )
        .expect("valid metric");
        PlanCache {
            inner: Mutex::default(),
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
            lookups,
        }
    }
}

impl PlanCache {
    /// Registers the lookup counter.
    pub fn register(&self, r: &prometheus::Registry) {
        let _ = r.register(Box::new(self.lookups.clone()));
    }

    fn count(&self, hit: bool) {
        if hit {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
    }

    /// Plans `sql` like [`super::plan_session`], from the cache when its shape is known.
    ///
    /// # Errors
    /// Like [`super::plan_session`].
    pub fn plan(
        &self,
        sql: &str,
        keyspace: Option<&str>,
        last_insert_id: u64,
        rt: &Arc<RoutingTable>,
    ) -> Result<Plan, SqlError> {
        self.plan_keyed(sql, keyspace, last_insert_id, rt).0
    }

    /// Like [`PlanCache::plan`], also returning the statement's normalised text (its
    /// fingerprint: literals as `?`), when it tokenises.
    pub fn plan_keyed(
        &self,
        sql: &str,
        keyspace: Option<&str>,
        last_insert_id: u64,
        rt: &Arc<RoutingTable>,
    ) -> (Result<Plan, SqlError>, Option<String>) {
        let Some(shape) = shape(sql) else {
            return (super::plan_session(sql, keyspace, last_insert_id, rt), None);
        };
        let r = self.plan_shape(sql, &shape, keyspace, last_insert_id, rt);
        (r, Some(shape.key))
    }

    fn plan_shape(
        &self,
        sql: &str,
        shape: &Shape,
        keyspace: Option<&str>,
        last_insert_id: u64,
        rt: &Arc<RoutingTable>,
    ) -> Result<Plan, SqlError> {
        let table = Arc::as_ptr(rt) as usize;
        let ks = keyspace.unwrap_or("");
        let cached = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.table != table {
                inner.map.clear();
                inner.entries = 0;
                inner.table = table;
            }
            inner
                .map
                .get(ks)
                .and_then(|m| m.get(shape.key.as_str()))
                .cloned()
        };
        match cached {
            Some(Some(b)) if b.pieces.len() == shape.literals.len() + 1 => {
                // The logical shard the key literal names, for a sharded single-shard plan.
                let mut key = None;
                if let Some(k) = b.key {
                    let ls = shape.literals.get(k.index).and_then(|&(s, e)| {
                        super::keys::literal_ls(
                            &sql[s..e],
                            k.at.vindex,
                            k.at.key_type,
                            k.logical_shards,
                        )
                    });
                    match (ls, shape.literals.get(k.index)) {
                        (Some(ls), Some(&(at, _))) => key = Some((ls, at)),
                        // This value does not name one shard (e.g. '1.5' for an integer key):
                        // plan it in full.
                        _ => {
                            self.count(false);
                            return super::plan_session(sql, keyspace, last_insert_id, rt);
                        }
                    }
                }
                self.count(true);
                let mut template = String::with_capacity(sql.len() + 32);
                for (i, piece) in b.pieces.iter().enumerate() {
                    template.push_str(piece);
                    if let Some(&(s, e)) = shape.literals.get(i) {
                        template.push_str(&sql[s..e]);
                    }
                }
                return Ok(Plan::Exec(Box::new(bound(&b.exec, template, key))));
            }
            Some(_) => {
                self.count(false);
                return super::plan_session(sql, keyspace, last_insert_id, rt);
            }
            None => {}
        }
        self.count(false);
        let plan = super::plan_session(sql, keyspace, last_insert_id, rt)?;
        let entry = bindable(&plan, sql, &shape.literals, rt).map(Arc::new);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.table == table {
            if inner.entries >= MAX_ENTRIES {
                inner.map.clear();
                inner.entries = 0;
            }
            let m = inner.map.entry(ks.to_string()).or_default();
            if m.insert(shape.key.clone(), entry).is_none() {
                inner.entries += 1;
            }
        }
        Ok(plan)
    }
}

fn template_of(e: &Exec) -> Option<&str> {
    match &e.targets {
        Targets::Ls { template, .. } => Some(template),
        Targets::Reference { sql } | Targets::Any { sql } => Some(sql),
        Targets::PerLs(_) | Targets::Verbatim { .. } => None,
    }
}

/// The plan `e` for a statement of its shape whose template is `template` (and, for a sharded
/// single-shard plan, whose key literal at byte `at` names logical shard `ls`: `key`), built
/// without copying `e`'s own template.
fn bound(e: &Exec, template: String, key: Option<(u32, usize)>) -> Exec {
    let targets = match &e.targets {
        Targets::Ls { ls, .. } => Targets::Ls {
            template,
            ls: match key {
                Some((l, _)) => vec![l],
                None => ls.clone(),
            },
        },
        Targets::Reference { .. } => Targets::Reference { sql: template },
        Targets::Any { .. } => Targets::Any { sql: template },
        Targets::PerLs(v) => Targets::PerLs(v.clone()),
        Targets::Verbatim { sql, reserve } => Targets::Verbatim {
            sql: sql.clone(),
            reserve: *reserve,
        },
    };
    let mut key_at = e.key_at;
    if let (Some(a), Some((_, at))) = (key_at.as_mut(), key) {
        a.at = at;
    }
    Exec {
        keyspace: e.keyspace.clone(),
        kind: e.kind,
        route: e.route,
        targets,
        limit: e.limit,
        unionable: e.unionable,
        merge: e.merge.clone(),
        key_at,
        aliased_items: e.aliased_items,
        conflict: e.conflict.clone(),
        metadata: e.metadata,
        held: None,
        found_rows: false,
        statement_prefix: None,
        default_db: e.default_db,
    }
}

/// Whether (and how) `plan` can serve every statement of its shape.
fn bindable(
    plan: &Plan,
    sql: &str,
    literals: &[(usize, usize)],
    rt: &RoutingTable,
) -> Option<Bindable> {
    let Plan::Exec(e) = plan else { return None };
    if e.merge.is_some() || e.limit.is_some() || e.aliased_items {
        return None;
    }
    // Targets that do not depend on literal values, or one logical shard picked by one
    // `key = literal` term. A sharded scatter is left out: another value of the same shape
    // may name one logical shard.
    let key = match (&e.route, &e.keyspace) {
        (RouteKind::Reference | RouteKind::Any, _) => None,
        (RouteKind::One, Some(k)) => {
            let ks = rt.keyspace(k)?;
            if ks.sharded {
                let at = e.key_at?;
                Some(KeyLiteralAt {
                    index: literals.iter().position(|&(s, _)| s == at.at)?,
                    at,
                    logical_shards: ks.logical_shards,
                })
            } else {
                None
            }
        }
        _ => return None,
    };
    let template = template_of(e)?;
    let t_shape = shape(template)?;
    if t_shape.literals.len() != literals.len() {
        return None;
    }
    let same = t_shape
        .literals
        .iter()
        .zip(literals)
        .all(|(&(a, b), &(c, d))| template[a..b] == sql[c..d]);
    if !same {
        return None;
    }
    let mut pieces = Vec::with_capacity(literals.len() + 1);
    let mut at = 0;
    for &(s, e) in &t_shape.literals {
        pieces.push(template[at..s].to_string());
        at = e;
    }
    pieces.push(template[at..].to_string());
    Some(Bindable {
        // The template lives on in `pieces`.
        exec: bound(e, String::new(), None),
        pieces,
        key,
    })
}
