//! Reads: `SELECT` on one logical shard, several, or all of them (with the merge it needs).

use super::ast::{conjuncts, limit_number};
use super::keys::key_set;
use super::merge;
use super::plan::{KeyAt, Plan, RouteKind, StmtKind};
use super::resolve::{Planner, Resolved};

use crate::error::SqlError;
use crate::sql::rewrite::{quote_ident, Edits, Offsets};
use crate::topology::TableRouting;
use sqlparser::ast::Spanned;
use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, BinaryOperator, Expr, FunctionArguments, LimitClause,
    Query, SetExpr, Statement, TableFactor, Value,
};
use sqlparser::dialect::MySqlDialect;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use tessera_topo::{KeyType, VindexKind};

/// What [`Planner::semi_joins`] found: the subqueries each logical shard answers alone, and
/// how many sharded table occurrences they read.
#[derive(Default)]
struct SemiJoins {
    queries: Vec<Query>,
    occurrences: usize,
}

/// Returns the byte ranges of a plain `SELECT [modifiers] item, … [FROM …]` statement's
/// items as written, or `None` for any other statement.
pub(super) fn select_item_ranges(sql: &str) -> Option<Vec<(usize, usize)>> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    let mut it = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .peekable();
    match &it.next()?.token {
        Token::Word(w) if w.keyword == Keyword::SELECT => {}
        _ => return None,
    }
    while let Some(t) = it.peek() {
        let Token::Word(w) = &t.token else { break };
        let modifier = matches!(
            w.keyword,
            Keyword::ALL
                | Keyword::DISTINCT
                | Keyword::DISTINCTROW
                | Keyword::HIGH_PRIORITY
                | Keyword::STRAIGHT_JOIN
                | Keyword::SQL_SMALL_RESULT
                | Keyword::SQL_BIG_RESULT
                | Keyword::SQL_BUFFER_RESULT
                | Keyword::SQL_NO_CACHE
                | Keyword::SQL_CALC_FOUND_ROWS
        );
        if !modifier {
            break;
        }
        it.next();
    }
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<(usize, usize)> = None;
    for t in it {
        match &t.token {
            Token::Comma if depth == 0 => {
                items.push(current.take()?);
                continue;
            }
            Token::SemiColon => break,
            Token::Word(w)
                if depth == 0
                    && matches!(
                        w.keyword,
                        Keyword::FROM
                            | Keyword::INTO
                            | Keyword::WHERE
                            | Keyword::GROUP
                            | Keyword::HAVING
                            | Keyword::ORDER
                            | Keyword::LIMIT
                            | Keyword::UNION
                            | Keyword::FOR
                            | Keyword::LOCK
                            | Keyword::WINDOW
                    ) =>
            {
                break
            }
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.checked_sub(1)?,
            _ => {}
        }
        let (s, e) = offsets.range(sql, t.span)?;
        current = Some(match current {
            Some((cs, _)) => (cs, e),
            None => (s, e),
        });
    }
    items.push(current?);
    Some(items)
}

impl<'a> Planner<'a> {
    pub(super) fn query(&self, stmt: &Statement, q: &Query) -> Result<Plan, SqlError> {
        let r = self.resolve_with_ctes(stmt)?;
        let Some(ks) = r.ks else {
            // No keyspace table: any physical shard answers; DATABASE() is the session's.
            let mut s = stmt.clone();
            let mut changed = false;
            let db = self.session_ks.map(str::to_string);
            let _ = visit_expressions_mut(&mut s, |e| {
                if let Expr::Function(f) = e {
                    let n = f.name.to_string().to_ascii_uppercase();
                    let no_args = match &f.args {
                        FunctionArguments::List(l) => l.args.is_empty(),
                        FunctionArguments::None => true,
                        FunctionArguments::Subquery(_) => false,
                    };
                    if n == "LAST_INSERT_ID" && no_args {
                        *e = Expr::value(Value::Number(self.last_insert_id.to_string(), false));
                        changed = true;
                    } else if (n == "DATABASE" || n == "SCHEMA") && no_args {
                        *e = Expr::value(match &db {
                            Some(d) => Value::SingleQuotedString(d.clone()),
                            None => Value::Null,
                        });
                        changed = true;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            if r.system {
                if let Some(plan) = self.sharded_metadata(&mut s) {
                    return Ok(plan);
                }
            }
            let sql = if changed {
                self.session_functions(q, db.as_deref())?
            } else {
                self.sql.to_string()
            };
            return Ok(self.any(sql, StmtKind::Read));
        };
        if !ks.sharded || r.sharded().next().is_none() {
            let mut edits = Edits::default();
            let aliased = match q.body.as_ref() {
                SetExpr::Select(select) => self.name_items(select, &r, &mut edits),
                _ => false,
            };
            let sql = self.qualified(&r, edits)?;
            let mut plan = self.exec_for(ks, &r, sql, StmtKind::Read, None, None, false);
            if let Plan::Exec(e) = &mut plan {
                e.aliased_items = aliased;
            }
            return Ok(plan);
        }
        if q.with.as_ref().is_some_and(|w| !w.cte_tables.is_empty()) {
            return Err(SqlError::unsupported("WITH clauses over sharded tables"));
        }
        let SetExpr::Select(select) = q.body.as_ref() else {
            self.check_subqueries(stmt, &[])?;
            return Err(SqlError::unsupported(
                "UNION and other set operations over sharded tables",
            ));
        };
        // Aliases: name or alias -> table name, for the sharded tables in FROM.
        let from = super::joins::from_joins(&select.from)?;
        // `EXISTS`/`IN` over co-located tables joined to this row by its shard key: each
        // logical shard answers them for its own rows.
        let semi = self.semi_joins(select, &r, &from)?;
        self.check_subqueries(stmt, &semi.queries)?;
        let (aliases, join_eqs) = (&from.aliases, &from.join_eqs);
        let mut where_conj: Vec<&Expr> = Vec::new();
        if let Some(w) = &select.selection {
            conjuncts(w, &mut where_conj);
        }
        let key_of = |e: &Expr| super::joins::shard_key_of(&r, aliases, e);
        // Every sharded table must be joined to the others on equal shard keys.
        if !super::joins::co_located(
            &r,
            &from,
            semi.occurrences,
            join_eqs.iter().chain(where_conj.iter()),
        ) {
            return self.cross_join(&ks.name, select, q);
        }
        // Shard-key values from the WHERE clause (AND narrows, OR of keyed terms widens).
        let key_vindex = |e: &Expr| key_of(e).map(|(_, v)| v);
        let mut target: Option<BTreeSet<u32>> = match &select.selection {
            Some(w) => key_set(w, &key_vindex, ks.logical_shards),
            None => None,
        };
        if let Some(t) = &target {
            if t.is_empty() {
                // Contradictory keys: no row can match; ask one shard so the columns are right.
                target = Some(BTreeSet::from([0]));
            }
        }
        let ls: Option<Vec<u32>> = target.map(|t| t.into_iter().collect());
        let single = ls.as_ref().is_some_and(|l| l.len() == 1);
        let mut edits = Edits::default();
        let mut limit = None;
        let mut merge = None;
        if !single {
            if let Some(lc) = &q.limit_clause {
                let (lim, off) = match lc {
                    LimitClause::LimitOffset {
                        limit,
                        offset,
                        limit_by,
                    } => {
                        if !limit_by.is_empty() {
                            return Err(SqlError::unsupported("LIMIT BY"));
                        }
                        (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                    }
                    LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
                };
                let count = match lim {
                    Some(e) => limit_number(e).ok_or_else(|| {
                        SqlError::unsupported("a LIMIT that is not a number, across shards")
                    })?,
                    None => u64::MAX,
                };
                let skip = match off {
                    Some(e) => limit_number(e).ok_or_else(|| {
                        SqlError::unsupported("an OFFSET that is not a number, across shards")
                    })?,
                    None => 0,
                };
                limit = Some((skip, count));
            }
            let quals = self.qualify_edits(&r)?;
            let mp = merge::MergePlanner {
                sql: self.sql,
                offsets: &self.offsets,
                quals: &quals,
            };
            merge = mp.plan(select, q, limit, &mut edits)?;
            let aggregate = matches!(
                merge.as_ref().map(|m| &m.mode),
                Some(merge::MergeMode::Aggregate { .. })
            );
            if let (Some(lc), Some((skip, count)), false) = (&q.limit_clause, limit, aggregate) {
                // Each shard returns up to offset + count rows; the router skips and cuts.
                let (lim, off) = match lc {
                    LimitClause::LimitOffset { limit, offset, .. } => {
                        (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                    }
                    LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
                };
                if let Some(e) = lim {
                    let (s, en) = self
                        .offsets
                        .range(self.sql, e.span())
                        .ok_or_else(|| SqlError::router("cannot locate LIMIT"))?;
                    edits.replace(s, en, count.saturating_add(skip).to_string());
                }
                if let Some(e) = off {
                    let (s, en) = self
                        .offsets
                        .range(self.sql, e.span())
                        .ok_or_else(|| SqlError::router("cannot locate OFFSET"))?;
                    edits.replace(s, en, "0");
                }
            }
        }
        // Select options that MariaDB allows only in a union's first select (`SQL_NO_CACHE`,
        // `SQL_CALC_FOUND_ROWS`, …) keep the per-shard selects apart.
        let options_first_only =
            crate::sql::lex::significant(self.sql.as_bytes(), &Default::default())
                .iter()
                .any(|t| {
                    [
                        "SQL_NO_CACHE",
                        "SQL_CACHE",
                        "SQL_CALC_FOUND_ROWS",
                        "HIGH_PRIORITY",
                        "SQL_BUFFER_RESULT",
                        "STRAIGHT_JOIN",
                    ]
                    .iter()
                    .any(|w| t.is_word(self.sql.as_bytes(), w))
                });
        let unionable = q.locks.is_empty()
            && select.into.is_none()
            && q.for_clause.is_none()
            && !options_first_only;
        let aliased = self.name_items(select, &r, &mut edits);
        let sql = self.qualified(&r, edits)?;
        let mut plan = self.exec_for(ks, &r, sql, StmtKind::Read, ls, limit, unionable);
        if let Plan::Exec(e) = &mut plan {
            e.aliased_items = aliased;
            if e.route != RouteKind::One {
                e.merge = merge;
            } else if let Some(w) = &select.selection {
                e.key_at = self.key_at(w, &key_vindex, ks.logical_shards);
            }
        }
        // One sharded table with lookup vindexes: routed by one when the WHERE pins it.
        if let (Some(t), 1) = (r.sharded().next(), r.sharded().count()) {
            if let TableRouting::Sharded { lookups, .. } = &t.routing {
                if !lookups.is_empty() {
                    let names: Vec<&str> = aliases
                        .iter()
                        .filter(|(_, n)| **n == t.name)
                        .map(|(a, _)| a.as_str())
                        .collect();
                    let route = super::lookup::route_by(lookups, select.selection.as_ref(), &names);
                    return Ok(self.with_lookups(
                        plan,
                        &ks.name,
                        &t.name,
                        route,
                        super::plan::LookupWrite::None,
                    ));
                }
            }
        }
        Ok(plan)
    }

    /// Keeps the client's column names when a select item's text changes in the rewrite: an
    /// expression over `keyspace.table.column` (MariaDB names such a column by its text as
    /// written, which would otherwise show a logical shard's schema) gets its original text
    /// as an explicit alias.
    /// Returns whether it added any.
    /// The statement with `DATABASE()`/`SCHEMA()` and `LAST_INSERT_ID()` (no arguments)
    /// written as the session's values, in place; a select item that held one is named as the
    /// client wrote it (`AS \`DATABASE()\``), as MariaDB names it. Nothing else of the text
    /// changes.
    fn session_functions(
        &self,
        q: &sqlparser::ast::Query,
        db: Option<&str>,
    ) -> Result<String, SqlError> {
        use crate::sql::lex::Kind;
        let b = self.sql.as_bytes();
        let toks = crate::sql::lex::significant(b, &Default::default());
        let punct = |i: usize, c: u8| {
            toks.get(i)
                .is_some_and(|t| t.kind == Kind::Punct && b[t.start] == c)
        };
        let mut edits = Edits::default();
        let mut replaced = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if !(punct(i + 1, b'(') && punct(i + 2, b')')) || punct(i.wrapping_sub(1), b'.') {
                continue;
            }
            let value = if t.is_word(b, "DATABASE") || t.is_word(b, "SCHEMA") {
                match db {
                    Some(d) => format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''")),
                    None => "NULL".to_string(),
                }
            } else if t.is_word(b, "LAST_INSERT_ID") {
                self.last_insert_id.to_string()
            } else {
                continue;
            };
            edits.replace(t.start, toks[i + 2].end, value);
            replaced.push(t.start);
        }
        if let SetExpr::Select(select) = q.body.as_ref() {
            if let Some(ranges) = select_item_ranges(self.sql) {
                if ranges.len() == select.projection.len() {
                    for (item, &(s, e)) in select.projection.iter().zip(&ranges) {
                        let text = &self.sql[s..e];
                        if matches!(item, sqlparser::ast::SelectItem::UnnamedExpr(_))
                            && replaced.iter().any(|&at| at >= s && at < e)
                            && text.chars().count() <= 256
                        {
                            edits.insert(e, format!(" AS {}", quote_ident(text)));
                        }
                    }
                }
            }
        }
        edits
            .apply(self.sql)
            .map_err(|e| SqlError::router(format!("rewriting the statement: {e:?}")))
    }

    pub(super) fn name_items(
        &self,
        select: &sqlparser::ast::Select,
        r: &Resolved<'_>,
        edits: &mut Edits,
    ) -> bool {
        let Some(ranges) = select_item_ranges(self.sql) else {
            return false;
        };
        if ranges.len() != select.projection.len() {
            return false;
        }
        let mut added = false;
        for (item, &(s, e)) in select.projection.iter().zip(&ranges) {
            let sqlparser::ast::SelectItem::UnnamedExpr(expr) = item else {
                continue;
            };
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                continue;
            }
            let text = &self.sql[s..e];
            // A `keyspace.table.column`, or a table in a subquery, that the rewrite qualifies.
            let renamed = r.column_quals.iter().any(|q| q.0 >= s && q.0 < e)
                || r.tables.iter().any(|t| t.qualify.0 >= s && t.qualify.0 < e);
            // MariaDB refuses aliases over 256 characters, and names an item holding an
            // executable comment in its own way; such names are left as they come.
            if renamed
                && text.chars().count() <= 256
                && !text.contains("/*!")
                && !text.contains("/*M!")
                && !edits.touches(s, e)
            {
                edits.insert(e, format!(" AS {}", quote_ident(text)));
                added = true;
            }
        }
        added
    }

    /// Returns the one `key = literal` term of `w` that decides its logical shard, when
    /// exactly one term decides it (with several, other values could intersect differently).
    pub(super) fn key_at(
        &self,
        w: &Expr,
        key: &dyn Fn(&Expr) -> Option<(VindexKind, KeyType)>,
        count: u32,
    ) -> Option<KeyAt> {
        let mut cs = Vec::new();
        conjuncts(w, &mut cs);
        let mut deciding = cs.iter().filter(|c| key_set(c, key, count).is_some());
        let only = deciding.next()?;
        if deciding.next().is_some() {
            return None;
        }
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = only
        else {
            return None;
        };
        // The same side key_set takes as the key.
        let ((vindex, key_type), other) = match (key(left), key(right)) {
            (Some(k), _) => (k, right),
            (None, Some(k)) => (k, left),
            (None, None) => return None,
        };
        let Expr::Value(v) = other.as_ref() else {
            return None;
        };
        if !matches!(
            v.value,
            Value::Number(..) | Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)
        ) {
            return None;
        }
        let (at, _) = self.offsets.range(self.sql, v.span)?;
        Some(KeyAt {
            at,
            vindex,
            key_type,
        })
    }

    /// The `WHERE` clause's `EXISTS (…)`, `NOT EXISTS (…)` and `key IN (SELECT key …)` over
    /// sharded tables that each logical shard answers alone: the subquery's sharded tables are
    /// joined among themselves on their shard keys, and to a sharded table of this `FROM` on
    /// its shard key (same vindex) — by a conjunct `inner.key = outer.key` of its `WHERE`, or
    /// as `outer.key IN (SELECT inner.key …)` — so every row it can see for a row of the outer
    /// query is on that row's logical shard. A correlated one (`inner.key = outer.key`) gives
    /// each outer row exactly the rows it gives on one server, so it is taken anywhere in the
    /// `WHERE` clause — scalar subqueries (`amount > (SELECT AVG(…) … WHERE …key = o.key)`)
    /// included. An `IN` joined by its key alone (not correlated) only in the clause's boolean
    /// structure (`AND`, `OR`, `NOT`) where it is not negated: a `NULL` among the subquery's
    /// keys, on another logical shard, makes `NOT IN` unknown everywhere, which one logical
    /// shard cannot see (where it is not negated, unknown and false both leave the row out).
    fn semi_joins(
        &self,
        select: &sqlparser::ast::Select,
        r: &Resolved<'_>,
        from: &super::joins::FromJoins<'_>,
    ) -> Result<SemiJoins, SqlError> {
        use super::joins::{co_located, factor_key, from_joins};
        let mut out = SemiJoins::default();
        let Some(w) = &select.selection else {
            return Ok(out);
        };
        // (subquery expression, the left side of an IN, whether it is an IN that is not
        // negated where it stands)
        type Found<'e> = Vec<(&'e Expr, Option<&'e Expr>, bool)>;
        let mut found: Found<'_> = Vec::new();
        fn walk<'e>(e: &'e Expr, positive: bool, out: &mut Found<'e>) {
            match e {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::And | BinaryOperator::Or,
                    right,
                } => {
                    walk(left, positive, out);
                    walk(right, positive, out);
                }
                Expr::UnaryOp {
                    op: sqlparser::ast::UnaryOperator::Not,
                    expr,
                } => walk(expr, !positive, out),
                Expr::Nested(expr) => walk(expr, positive, out),
                Expr::Exists { .. } => out.push((e, None, false)),
                Expr::InSubquery { expr, negated, .. } => {
                    out.push((e, Some(expr), positive && !negated))
                }
                _ => {}
            }
        }
        walk(w, true, &mut found);
        let mut candidates: Vec<(Query, Option<Expr>, bool)> = found
            .into_iter()
            .filter_map(|(e, left, positive_in)| match e {
                Expr::Exists { subquery, .. } | Expr::InSubquery { subquery, .. } => {
                    Some((subquery.as_ref().clone(), left.cloned(), positive_in))
                }
                _ => None,
            })
            .collect();
        // Every other subquery of the clause, wherever it stands: taken only when correlated
        // on the key.
        let mut elsewhere: Vec<Query> = Vec::new();
        let _ = visit_expressions(w, |e| {
            if let Expr::Subquery(q)
            | Expr::Exists { subquery: q, .. }
            | Expr::InSubquery { subquery: q, .. } = e
            {
                elsewhere.push(q.as_ref().clone());
            }
            ControlFlow::<()>::Continue(())
        });
        for q in elsewhere {
            if !candidates.iter().any(|(c, _, _)| *c == q) {
                candidates.push((q, None, false));
            }
        }
        for (subquery, left, positive_in) in &candidates {
            let (left, positive_in) = (left.as_ref(), *positive_in);
            if subquery.with.is_some() {
                continue;
            }
            let SetExpr::Select(inner) = subquery.body.as_ref() else {
                continue;
            };
            let rs = self.resolve(subquery)?;
            let n = rs.sharded().count();
            if n == 0 {
                continue;
            }
            let inner_from = from_joins(&inner.from)?;
            let mut inner_conj: Vec<&Expr> = Vec::new();
            if let Some(iw) = &inner.selection {
                conjuncts(iw, &mut inner_conj);
            }
            // Its own tables on one logical shard (nothing of it in a deeper subquery).
            if !co_located(
                &rs,
                &inner_from,
                0,
                inner_from.join_eqs.iter().chain(inner_conj.iter()),
            ) {
                continue;
            }
            // A name of this FROM that the subquery's own tables do not shadow.
            let shadowed = |name: &str| inner_from.factors.iter().any(|(c, _)| c == name);
            let outer_key = |x: &Expr, qualified: bool| {
                factor_key(r, from, x, qualified).filter(|(called, _)| !shadowed(called))
            };
            let inner_key = |x: &Expr| factor_key(&rs, &inner_from, x, false);
            let mut linked =
                inner_conj.iter().any(|c| match c {
                    Expr::BinaryOp {
                        left: a,
                        op: BinaryOperator::Eq,
                        right: b,
                    } => [(a, b), (b, a)].iter().any(|(i, o)| {
                        match (inner_key(i), outer_key(o, true)) {
                            (Some((_, vi)), Some((_, vo))) => vi == vo,
                            _ => false,
                        }
                    }),
                    _ => false,
                });
            // (Joined by its key alone, the subquery's rows are not one outer row's: a
            // grouping, a filter on groups or a limit would see one logical shard's rows.)
            let plain = matches!(&inner.group_by, sqlparser::ast::GroupByExpr::Expressions(g, _) if g.is_empty())
                && inner.having.is_none()
                && subquery.limit_clause.is_none();
            if let (false, true, true, Some(left), [item]) = (
                linked,
                positive_in,
                plain,
                left,
                inner.projection.as_slice(),
            ) {
                let item = match item {
                    sqlparser::ast::SelectItem::UnnamedExpr(x)
                    | sqlparser::ast::SelectItem::ExprWithAlias { expr: x, .. } => Some(x),
                    _ => None,
                };
                if let (Some((_, vo)), Some((_, vi))) =
                    (outer_key(left, false), item.and_then(inner_key))
                {
                    linked = vo == vi;
                }
            }
            if linked {
                out.occurrences += n;
                out.queries.push(subquery.clone());
            }
        }
        Ok(out)
    }

    /// Refuses subqueries that read sharded tables (they would see one shard's rows only),
    /// apart from `answered`, which each logical shard answers alone ([`Planner::semi_joins`]).
    pub(super) fn check_subqueries(
        &self,
        stmt: &Statement,
        answered: &[Query],
    ) -> Result<(), SqlError> {
        let mut subs: Vec<Query> = Vec::new();
        let _ = visit_expressions(stmt, |e| {
            match e {
                Expr::Subquery(q)
                | Expr::Exists { subquery: q, .. }
                | Expr::InSubquery { subquery: q, .. } => subs.push((**q).clone()),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        if let Statement::Query(q) = stmt {
            if let SetExpr::Select(s) = q.body.as_ref() {
                for twj in &s.from {
                    let mut fs = vec![&twj.relation];
                    fs.extend(twj.joins.iter().map(|j| &j.relation));
                    for f in fs {
                        if let TableFactor::Derived { subquery, .. } = f {
                            subs.push((**subquery).clone());
                        }
                    }
                }
            }
        }
        for q in &subs {
            if answered.contains(q) {
                continue;
            }
            let r = self.resolve(q)?;
            if r.sharded().next().is_some() {
                return Err(SqlError::unsupported("subqueries that read sharded tables"));
            }
        }
        Ok(())
    }
}

impl Planner<'_> {
    /// A question about system schemas (`information_schema`) that names a sharded keyspace in
    /// a string (`TABLE_SCHEMA = 'demo'`, or `DATABASE()` in a session of it): asked of one of
    /// its physical schemas instead — its reference schema when a string names one of its
    /// reference tables, else logical shard 0's (every logical shard holds the same tables) —
    /// on the physical shard that holds it; values naming physical schemas in the answer are
    /// mapped back to the keyspace's name. `None` when the statement names no sharded keyspace.
    fn sharded_metadata(&self, s: &mut Statement) -> Option<Plan> {
        let mut strings: Vec<String> = Vec::new();
        let _ = visit_expressions(&*s, |e| {
            if let Expr::Value(v) = e {
                if let Value::SingleQuotedString(x) = &v.value {
                    strings.push(x.clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let Some(ks) = strings
            .iter()
            .find_map(|x| self.rt.keyspace(x).filter(|k| k.sharded))
        else {
            // About an unsharded keyspace: asked of its physical shard, as written.
            let ks = strings
                .iter()
                .find_map(|x| self.rt.keyspace(x).filter(|k| !k.sharded))?;
            return Some(Plan::Exec(Box::new(super::plan::Exec::plain(
                Some(ks.name.clone()),
                StmtKind::Read,
                RouteKind::One,
                super::plan::Targets::Verbatim {
                    sql: self.sql.as_bytes().to_vec(),
                    reserve: false,
                },
            ))));
        };
        let reference = strings.iter().any(|x| {
            matches!(
                ks.tables.get(x),
                Some(crate::topology::TableRouting::Reference)
            )
        });
        let physical = if reference {
            ks.reference_schema()
        } else {
            ks.schema(0)
        };
        let _ = visit_expressions_mut(s, |e| {
            if let Expr::Value(v) = e {
                if let Value::SingleQuotedString(x) = &mut v.value {
                    if *x == ks.name {
                        *x = physical.clone();
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let sql = s.to_string();
        let mut e = super::plan::Exec::plain(
            Some(ks.name.clone()),
            StmtKind::Read,
            if reference {
                RouteKind::Reference
            } else {
                RouteKind::One
            },
            if reference {
                super::plan::Targets::Reference { sql }
            } else {
                super::plan::Targets::Ls {
                    template: sql,
                    ls: vec![0],
                }
            },
        );
        e.metadata = true;
        Some(Plan::Exec(Box::new(e)))
    }
}
