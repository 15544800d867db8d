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
use super::rewrite::Offsets;
use crate::error::SqlError;
use crate::topology::RoutingTable;
use crate::FastMap;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::sync::{Arc, Mutex};

/// Most shapes kept.
const MAX_ENTRIES: usize = 10_000;

/// A statement split at its literals.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    pub key: String,
    /// Byte ranges of the literals, in order.
    pub literals: Vec<(usize, usize)>,
}

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
                        super::literal_ls(&sql[s..e], k.at.vindex, k.at.key_type, k.logical_shards)
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
        Targets::PerLs(_) => None,
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

/// Splits `sql` into its normalised key and literal ranges; `None` when it does not tokenise
/// (the planner reports the error).
///
/// The common statement is scanned by [`scan_shape`]; anything it does not take (comments,
/// hex and bit literals, introducers, exponents, non-ASCII outside strings) goes through the
/// parser's tokenizer, which gives the same answer more slowly.
pub fn shape(sql: &str) -> Option<Shape> {
    scan_shape(sql).or_else(|| tokenized_shape(sql))
}

/// A direct scan of `sql` for the shapes the tokenizer would find, for statements made of
/// ASCII words, quoted identifiers, quoted strings, plain decimal numbers, operators and
/// spaces; `None` for anything else, which [`tokenized_shape`] handles.
pub fn scan_shape(sql: &str) -> Option<Shape> {
    let b = sql.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    // What may stand right before or after a literal for the scan to take it.
    let sep = |c: Option<&u8>| {
        c.is_none_or(|c| {
            matches!(
                c,
                b' ' | b'\t'
                    | b'\n'
                    | b'\r'
                    | b','
                    | b'('
                    | b')'
                    | b'='
                    | b'<'
                    | b'>'
                    | b'!'
                    | b'+'
                    | b'-'
                    | b'*'
                    | b'/'
                    | b'%'
                    | b';'
            )
        })
    };
    let mut key = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' => {
                key.push(' ');
                i += 1;
            }
            b'\r' => {
                key.push(' ');
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            }
            b'\'' | b'"' => {
                let start = i;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\\' => i += 2,
                        q if q == c => {
                            if b.get(i + 1) == Some(&c) {
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                if i > b.len() {
                    return None;
                }
                // A string right after a word or another string is an introducer
                // (`_utf8mb4'x'`, `N'x'`) or concatenation: left to the tokenizer.
                if !sep(start.checked_sub(1).and_then(|p| b.get(p))) || !sep(b.get(i)) {
                    return None;
                }
                key.push('?');
                literals.push((start, i));
            }
            b'`' => {
                let start = i;
                i += 1;
                loop {
                    if *b.get(i)? == b'`' {
                        if b.get(i + 1) == Some(&b'`') {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                key.push_str(sql.get(start..i)?);
            }
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // `1e5`, `0x1f`, `1abc` (an identifier in MySQL), `1.2.3`, `t.1`: the
                // tokenizer's.
                if !sep(start.checked_sub(1).and_then(|p| b.get(p))) || !sep(b.get(i)) {
                    return None;
                }
                key.push('?');
                literals.push((start, i));
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
            c if word(c) || c == b'@' => {
                let start = i;
                i += 1;
                while i < b.len() && (word(b[i]) || b[i] == b'@') {
                    i += 1;
                }
                if b.get(i)
                    .is_some_and(|&n| n >= 0x80 || n == b'\'' || n == b'"')
                {
                    return None;
                }
                key.push_str(&sql[start..i]);
            }
            // Comments (`--`, `#`, `/*`), non-ASCII and control characters: the tokenizer's.
            b'#' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            c if !(0x20..0x80).contains(&c) => return None,
            _ => {
                key.push(c as char);
                i += 1;
            }
        }
    }
    Some(Shape { key, literals })
}

/// [`shape`] by the parser's tokenizer.
pub fn tokenized_shape(sql: &str) -> Option<Shape> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    let starts: Vec<usize> = tokens
        .iter()
        .map(|t| offsets.byte(sql, t.span.start))
        .collect::<Option<Vec<_>>>()?;
    let mut key = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(sql.len());
        match &t.token {
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => {
                key.push('?');
                literals.push((start, end));
            }
            // Spaces and newlines do not matter; comments may (`/*! … */` runs).
            Token::Whitespace(
                sqlparser::tokenizer::Whitespace::Space
                | sqlparser::tokenizer::Whitespace::Newline
                | sqlparser::tokenizer::Whitespace::Tab,
            ) => key.push(' '),
            // Anything else as written (identifiers keep their case and quotes).
            _ => key.push_str(sql.get(start..end)?),
        }
    }
    Some(Shape { key, literals })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_put_literals_aside() {
        let s = shape("SELECT c FROM t WHERE id = 42 AND name = 'a''b'").expect("shape");
        assert_eq!(s.key, "SELECT c FROM t WHERE id = ? AND name = ?");
        assert_eq!(s.literals.len(), 2);
        let s2 = shape("SELECT c FROM t WHERE id = 7 AND name = 'zz'").expect("shape");
        assert_eq!(s.key, s2.key);
        assert_ne!(
            shape("SELECT c FROM t WHERE id = 7").map(|s| s.key),
            shape("SELECT c FROM u WHERE id = 7").map(|s| s.key)
        );
    }
}
