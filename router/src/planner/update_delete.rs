//! `UPDATE` and `DELETE`: routed by the shard key in `WHERE`, or to every logical shard.

use super::ast::{column_ref, conjuncts};
use super::keys::{key_set, key_value, lit, Lit};
use super::plan::{KeyLiteral, Local, MoveRows, Plan, RouteKind, StmtKind};
use super::resolve::{Planner, TableRef};

use crate::error::SqlError;
use crate::sql::rewrite::Edits;
use crate::topology::TableRouting;
use crate::vindex::{self};
use sqlparser::ast::{Expr, Statement};
use std::collections::{BTreeSet, HashSet};

impl<'a> Planner<'a> {
    pub(super) fn update_delete(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        // A multi-table DELETE's unqualified targets are looked for in the current database,
        // even when they are aliases: without one, MariaDB answers 1046 first.
        if let Statement::Delete(d) = stmt {
            if d.tables.iter().any(|t| t.0.len() == 1) {
                self.keyspace_of(None)?;
            }
        }
        let r = self.resolve_write(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("writes to system schemas"));
        };
        let multi_delete =
            matches!(stmt, Statement::Delete(d) if !d.tables.is_empty() || d.using.is_some());
        if ks.sharded && multi_delete && r.sharded().next().is_some() {
            return self.co_located_write(stmt, &r, ks);
        }
        if !ks.sharded || r.sharded().next().is_none() {
            let sql = self.qualified(&r, Edits::default())?;
            let mut plan = self.exec_for(ks, &r, sql, StmtKind::Write, None, None, false);
            if let Plan::Exec(e) = &mut plan {
                e.default_db = deletes_by_alias(stmt, &r);
            }
            return Ok(plan);
        }
        // One sharded table written; other tables may only be reference tables read in
        // subqueries (each physical shard holds a whole copy of those).
        let one_target = match stmt {
            Statement::Update(u) => u.table.joins.is_empty() && u.from.is_none(),
            Statement::Delete(d) => {
                d.tables.is_empty()
                    && d.using.is_none()
                    && match &d.from {
                        sqlparser::ast::FromTable::WithFromKeyword(f)
                        | sqlparser::ast::FromTable::WithoutKeyword(f) => {
                            f.len() == 1 && f[0].joins.is_empty()
                        }
                    }
            }
            _ => false,
        };
        let others_reference = r.sharded().count() == 1
            && r.tables.iter().all(|t| {
                matches!(
                    t.routing,
                    TableRouting::Sharded { .. } | TableRouting::Reference
                )
            });
        if r.tables.len() > 1 && !one_target {
            return self.co_located_write(stmt, &r, ks);
        }
        if r.tables.len() > 1 && !(one_target && others_reference) {
            // One table written, the others read by subqueries: those are answered first.
            if one_target {
                if let Some(subqueries) = self.outer_subqueries()? {
                    return Ok(Plan::Local(Local::SubqueriesFirst(Box::new(
                        super::plan::SubqueriesFirst {
                            keyspace: ks.name.clone(),
                            sql: self.sql.to_string(),
                            subqueries,
                        },
                    ))));
                }
            }
            return Err(SqlError::unsupported(
                "multi-table UPDATE or DELETE on sharded tables",
            ));
        }
        self.check_subqueries(stmt, &[])?;
        let Some(TableRef {
            routing:
                TableRouting::Sharded {
                    shard_key,
                    vindex,
                    key_type,
                    lookups,
                    ..
                },
            name: table_name,
            ..
        }) = r.sharded().next()
        else {
            return Err(SqlError::router("no table to write"));
        };
        let mut move_to: Option<(u32, KeyLiteral)> = None;
        let mut lookup_sets: Vec<(usize, Option<KeyLiteral>)> = Vec::new();
        let (selection, has_order_or_limit) = match stmt {
            Statement::Update(u) => {
                for a in &u.assignments {
                    let col = a.target.to_string();
                    let col = col.rsplit('.').next().unwrap_or(&col).trim_matches('`');
                    if let Some(li) = lookups
                        .iter()
                        .position(|l| l.column.eq_ignore_ascii_case(col))
                    {
                        let null = matches!(
                            &a.value,
                            Expr::Value(x) if matches!(x.value, sqlparser::ast::Value::Null)
                        );
                        let value = match lit(&a.value) {
                            _ if null => None,
                            Some(l) => Some(KeyLiteral::from(l)),
                            None => {
                                return Err(SqlError::unsupported(format!(
                                    "UPDATE that sets {col}, a column with a lookup vindex, to an expression (a literal or NULL keeps its lookup)"
                                )))
                            }
                        };
                        lookup_sets.push((li, value));
                    }
                    if col.eq_ignore_ascii_case(shard_key) && !lookups.is_empty() {
                        return Err(SqlError::unsupported(format!(
                            "UPDATE of the shard key {shard_key} of a table with a lookup vindex (delete the row and insert it again)"
                        )));
                    }
                    if col.eq_ignore_ascii_case(shard_key) {
                        let l = lit(&a.value).ok_or_else(|| {
                            SqlError::unsupported(
                                "UPDATE that sets a row's shard key to an expression (a literal value moves the row)",
                            )
                        })?;
                        let kv = key_value(&l, *key_type, true).ok_or_else(|| {
                            SqlError::unsupported(format!(
                                "UPDATE that sets shard key {shard_key} to {} (not a value of its type)",
                                a.value
                            ))
                        })?;
                        let id = vindex::keyspace_id(*vindex, &kv)
                            .map_err(|e| SqlError::router(e.to_string()))?;
                        let new_ls = vindex::logical_shard(id, ks.logical_shards);
                        let value = match l {
                            Lit::Int(i) => KeyLiteral::Int(i),
                            Lit::Num(n) => KeyLiteral::Num(n),
                            Lit::Str(s) => KeyLiteral::Str(s),
                        };
                        move_to = Some((new_ls, value));
                    }
                }
                (u.selection.as_ref(), u.limit.is_some())
            }
            Statement::Delete(d) => (
                d.selection.as_ref(),
                d.limit.is_some() || !d.order_by.is_empty(),
            ),
            _ => (None, false),
        };
        let mut cs = Vec::new();
        if let Some(w) = selection {
            conjuncts(w, &mut cs);
        }
        let key_vindex = |e: &Expr| {
            column_ref(e)
                .is_some_and(|(_, c)| c.eq_ignore_ascii_case(shard_key))
                .then_some((*vindex, *key_type))
        };
        let _ = cs;
        let target: Option<BTreeSet<u32>> =
            selection.and_then(|w| key_set(w, &key_vindex, ks.logical_shards));
        let ls: Option<Vec<u32>> = target.map(|t| {
            if t.is_empty() {
                vec![0]
            } else {
                t.into_iter().collect()
            }
        });
        if has_order_or_limit && ls.as_ref().is_none_or(|l| l.len() > 1) {
            let (ordered, returning) = match stmt {
                Statement::Delete(d) => (!d.order_by.is_empty(), d.returning.is_some()),
                // An UPDATE's ORDER BY is planned through a stand-in comment.
                Statement::Update(u) => (
                    self.sql.contains(super::standin::ORDER_STAND_IN),
                    u.returning.is_some(),
                ),
                _ => (false, false),
            };
            if returning || !lookups.is_empty() || move_to.is_some() {
                return Err(SqlError::unsupported(
                    "LIMIT in an UPDATE or DELETE across logical shards with RETURNING, a lookup vindex or a shard key set",
                ));
            }
            if ordered {
                return self.ordered_write(stmt, &r, ks, ls, table_name);
            }
            return self.limited_write(stmt, &r, ks, ls);
        }
        let sql = self.qualified(&r, Edits::default())?;
        let mut plan = self.exec_for(ks, &r, sql, StmtKind::Write, ls, None, false);
        if let (Plan::Exec(e), Some(w)) = (&mut plan, selection) {
            if e.route == RouteKind::One {
                e.key_at = self.key_at(w, &key_vindex, ks.logical_shards);
            }
        }
        if !lookups.is_empty() {
            let route = super::lookup::route_by(lookups, selection, &[table_name.as_str()]);
            let write = match (stmt, &plan) {
                (Statement::Delete(d), Plan::Exec(e)) => {
                    if d.returning.is_some() {
                        return Err(SqlError::unsupported(
                            "DELETE … RETURNING on a table with a lookup vindex",
                        ));
                    }
                    let super::plan::Targets::Ls { template, .. } = &e.targets else {
                        return Err(SqlError::router("a DELETE without logical shards"));
                    };
                    let reader =
                        self.delete_reader(template, shard_key, lookups, *vindex, *key_type)?;
                    super::plan::LookupWrite::Delete(Box::new(reader))
                }
                (Statement::Update(_), Plan::Exec(e)) if !lookup_sets.is_empty() => {
                    let super::plan::Targets::Ls { template, .. } = &e.targets else {
                        return Err(SqlError::router("an UPDATE without logical shards"));
                    };
                    let reader = self.update_reader(
                        template,
                        shard_key,
                        lookups,
                        lookup_sets,
                        *vindex,
                        *key_type,
                    )?;
                    super::plan::LookupWrite::Update(Box::new(reader))
                }
                _ => super::plan::LookupWrite::None,
            };
            return Ok(self.with_lookups(plan, &ks.name, table_name, route, write));
        }
        if let Some((new_ls, value)) = move_to {
            if has_order_or_limit {
                return Err(SqlError::unsupported(
                    "ORDER BY or LIMIT in an UPDATE that changes the shard key",
                ));
            }
            let Plan::Exec(update) = plan else {
                return Err(SqlError::router("UPDATE without targets"));
            };
            let table = r
                .sharded()
                .next()
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Ok(Plan::Local(Local::MoveRows(Box::new(MoveRows {
                update: *update,
                table,
                column: shard_key.clone(),
                value,
                new_ls,
            }))));
        }
        Ok(plan)
    }
}

impl Planner<'_> {
    /// The outermost `(SELECT …)` / `(WITH …)` subqueries of the statement, with how each is
    /// used; `None` when it has none.
    fn outer_subqueries(&self) -> Result<Option<Vec<super::plan::Subquery>>, SqlError> {
        use super::plan::{Subquery, SubqueryKind};
        use crate::sql::lex::Kind;
        let sql = self.sql.as_bytes();
        let toks = crate::sql::lex::significant(sql, &Default::default());
        let punct = |i: usize, c: u8| {
            toks.get(i)
                .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == c)
        };
        let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            if !(punct(i, b'(') && (is(i + 1, "SELECT") || is(i + 1, "WITH"))) {
                i += 1;
                continue;
            }
            let mut depth = 0usize;
            let mut close = None;
            for (j, _) in toks.iter().enumerate().skip(i) {
                if punct(j, b'(') {
                    depth += 1;
                } else if punct(j, b')') {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
            }
            let Some(close) = close else {
                return Err(SqlError::router("unbalanced parentheses around a subquery"));
            };
            let before = i.checked_sub(1);
            let kind = match before {
                Some(b) if is(b, "IN") => SubqueryKind::In,
                Some(b) if is(b, "EXISTS") => SubqueryKind::Exists,
                Some(b) if is(b, "ANY") || is(b, "SOME") || is(b, "ALL") => {
                    SubqueryKind::Quantified
                }
                _ => SubqueryKind::Scalar,
            };
            let start = match (kind, before) {
                (SubqueryKind::Exists, Some(b)) => toks[b].start,
                _ => toks[i].start,
            };
            out.push(Subquery {
                start,
                end: toks[close].end,
                kind,
            });
            i = close + 1;
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

impl<'a> Planner<'a> {
    /// Resolves the tables of an `UPDATE` or `DELETE`. The tables a multi-table `DELETE`
    /// deletes from (`DELETE t1, t2 FROM …`, `DELETE FROM t1, t2 USING …`) are no relations
    /// of their own: each names an alias or a table of the statement's relations, and those
    /// named by table are qualified like them ([`super::resolve::Resolved::targets`]).
    fn resolve_write(&self, stmt: &Statement) -> Result<super::resolve::Resolved<'a>, SqlError> {
        use sqlparser::ast::{FromTable, TableFactor};
        let Statement::Delete(d) = stmt else {
            return self.resolve(stmt);
        };
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
        let (targets, relations): (
            Vec<&sqlparser::ast::ObjectName>,
            &[sqlparser::ast::TableWithJoins],
        ) =
            match &d.using {
                Some(using) => {
                    let mut names = Vec::new();
                    for t in from {
                        match &t.relation {
                            TableFactor::Table {
                                name, alias: None, ..
                            } if t.joins.is_empty() => names.push(name),
                            _ => return Err(SqlError::parse(
                                "the tables of DELETE FROM … USING must be table names or aliases",
                            )),
                        }
                    }
                    (names, using)
                }
                None if !d.tables.is_empty() => (d.tables.iter().collect(), from),
                None => return self.resolve(stmt),
            };
        let mut aliases = HashSet::new();
        for twj in relations {
            for f in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
                if let TableFactor::Table { alias: Some(a), .. } = f {
                    aliases.insert(a.name.value.clone());
                }
            }
        }
        // The statement without its target list (the `USING` form lists them after `FROM`).
        let mut rest = d.clone();
        rest.tables.clear();
        if d.using.is_some() {
            rest.from = FromTable::WithFromKeyword(Vec::new());
        }
        let mut r = self.resolve(&Statement::Delete(rest))?;
        let by_table: Vec<&sqlparser::ast::ObjectName> = targets
            .into_iter()
            .filter(|n| {
                !(n.0.len() == 1
                    && super::resolve::split_name(n).is_ok_and(|(_, t)| aliases.contains(&t.value)))
            })
            .collect();
        if !by_table.is_empty() {
            let t = self.resolve_names(&by_table)?;
            r.ks = super::resolve::one_keyspace(r.ks, t.ks)?;
            r.targets = t.tables;
        }
        Ok(r)
    }
}

impl Planner<'_> {
    /// A multi-table `UPDATE` or `DELETE` (joins) whose sharded tables are all joined on
    /// their shard keys (the others reference tables): every logical shard runs it over its
    /// own rows, as one server would over all of them.
    fn co_located_write(
        &self,
        stmt: &Statement,
        r: &super::resolve::Resolved<'_>,
        ks: &crate::topology::KeyspaceRouting,
    ) -> Result<Plan, SqlError> {
        use sqlparser::ast::{FromTable, UpdateTableFromKind};
        let refuse = |why: &str| {
            Err(SqlError::unsupported(format!(
                "multi-table UPDATE or DELETE on sharded tables {why}"
            )))
        };
        let (from, selection): (Vec<&sqlparser::ast::TableWithJoins>, Option<&Expr>) = match stmt {
            Statement::Update(u) => {
                let mut f = vec![&u.table];
                if let Some(UpdateTableFromKind::BeforeSet(t) | UpdateTableFromKind::AfterSet(t)) =
                    &u.from
                {
                    f.extend(t.iter());
                }
                if u.limit.is_some() {
                    return refuse("with LIMIT");
                }
                (f, u.selection.as_ref())
            }
            Statement::Delete(d) => {
                // The relations: after `USING` when there is one (`FROM` lists the tables
                // deleted from), else after `FROM`.
                let f: Vec<&sqlparser::ast::TableWithJoins> = match (&d.using, &d.from) {
                    (Some(u), _) => u.iter().collect(),
                    (None, FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t)) => {
                        t.iter().collect()
                    }
                };
                if d.limit.is_some() || !d.order_by.is_empty() {
                    return refuse("with ORDER BY or LIMIT");
                }
                (f, d.selection.as_ref())
            }
            _ => return Err(SqlError::router("not an UPDATE or DELETE")),
        };
        if r.tables.iter().any(|t| {
            !matches!(
                t.routing,
                TableRouting::Sharded { .. } | TableRouting::Reference
            )
        }) {
            return refuse("joined with unsharded tables");
        }
        if r.sharded().any(
            |t| matches!(&t.routing, TableRouting::Sharded { lookups, .. } if !lookups.is_empty()),
        ) {
            return refuse("with a lookup vindex");
        }
        let from: Vec<sqlparser::ast::TableWithJoins> = from.into_iter().cloned().collect();
        let joins = super::joins::from_joins(&from)?;
        let mut where_conj: Vec<&Expr> = Vec::new();
        if let Some(w) = selection {
            conjuncts(w, &mut where_conj);
        }
        // (A table written joined with itself is not planned per logical shard.)
        let names: std::collections::BTreeSet<&str> =
            r.sharded().map(|t| t.name.as_str()).collect();
        if r.sharded().count() > names.len()
            || !super::joins::co_located(
                r,
                &joins,
                0,
                joins.join_eqs.iter().chain(where_conj.iter()),
            )
        {
            return refuse("not joined on their shard keys");
        }
        // A shard key set in place would leave its row on the wrong logical shard.
        if let Statement::Update(u) = stmt {
            for a in &u.assignments {
                let col = a.target.to_string();
                let col = col.rsplit('.').next().unwrap_or(&col).trim_matches('`');
                if r.sharded().any(|t| {
                    matches!(&t.routing, TableRouting::Sharded { shard_key, .. } if shard_key.eq_ignore_ascii_case(col))
                }) {
                    return refuse("setting a shard key");
                }
            }
        }
        self.check_subqueries(stmt, &[])?;
        let key_vindex =
            |e: &Expr| super::joins::shard_key_of(r, &joins.aliases, e).map(|(_, v)| v);
        let ls: Option<Vec<u32>> = selection
            .and_then(|w| key_set(w, &key_vindex, ks.logical_shards))
            .map(|t| {
                if t.is_empty() {
                    vec![0]
                } else {
                    t.into_iter().collect()
                }
            });
        let edits = Edits::default();
        let sql = self.qualified(r, edits)?;
        let mut plan = self.exec_for(ks, r, sql, StmtKind::Write, ls, None, false);
        if let Plan::Exec(e) = &mut plan {
            e.default_db = deletes_by_alias(stmt, r);
        }
        Ok(plan)
    }
}

/// Whether a multi-table `DELETE` names a table it deletes from by its alias (MariaDB then
/// wants a default database: [`super::plan::Exec::default_db`]).
fn deletes_by_alias(stmt: &Statement, r: &super::resolve::Resolved<'_>) -> bool {
    use sqlparser::ast::FromTable;
    let Statement::Delete(d) = stmt else {
        return false;
    };
    let named = match (&d.using, &d.from) {
        (Some(_), FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t)) => t.len(),
        (None, _) => d.tables.len(),
    };
    named > r.targets.len()
}

impl Planner<'_> {
    /// An `UPDATE` or `DELETE` with `ORDER BY` and a `LIMIT` (a plain count) over logical
    /// shards `ls` (all when `None`): [`Local::OrderedWrite`]. Refused without a `LIMIT`, or
    /// with an `ORDER BY` item that is a number (a position in a select list, which the
    /// statement has not).
    fn ordered_write(
        &self,
        stmt: &Statement,
        r: &super::resolve::Resolved<'_>,
        ks: &crate::topology::KeyspaceRouting,
        ls: Option<Vec<u32>>,
        table: &str,
    ) -> Result<Plan, SqlError> {
        let refuse = |what: &str| {
            SqlError::unsupported(format!(
                "ORDER BY in an UPDATE or DELETE across logical shards {what}"
            ))
        };
        let count = match stmt {
            Statement::Update(u) => u.limit.as_ref(),
            Statement::Delete(d) => d.limit.as_ref(),
            _ => None,
        };
        let limit = match count {
            Some(Expr::Value(v)) => match &v.value {
                sqlparser::ast::Value::Number(n, _) => n.parse::<u64>().ok(),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| refuse("without a LIMIT of a plain row count"))?;
        let template = self.qualified(r, Edits::default())?;
        Ok(Plan::Local(Local::OrderedWrite(Box::new(
            super::plan::OrderedWrite {
                keyspace: ks.name.clone(),
                table: table.to_string(),
                template,
                ls: ls.unwrap_or_else(|| (0..ks.logical_shards).collect()),
                limit,
                update: matches!(stmt, Statement::Update(_)),
            },
        ))))
    }

    /// An `UPDATE` or `DELETE` with a `LIMIT` (a plain count) over logical shards `ls` (all
    /// when `None`): [`Local::LimitedWrite`], its template the statement with the count left
    /// as [`super::plan::LIMIT_PLACEHOLDER`].
    fn limited_write(
        &self,
        stmt: &Statement,
        r: &super::resolve::Resolved<'_>,
        ks: &crate::topology::KeyspaceRouting,
        ls: Option<Vec<u32>>,
    ) -> Result<Plan, SqlError> {
        use crate::sql::lex::Kind;
        let refuse = || {
            SqlError::unsupported(
                "a LIMIT other than a plain row count in an UPDATE or DELETE across logical shards",
            )
        };
        let sql = self.sql.as_bytes();
        let toks = crate::sql::lex::significant(sql, &Default::default());
        // The last `LIMIT` outside parentheses, its count, and nothing after but a `;`.
        let mut depth = 0i32;
        let mut at = None;
        for (i, t) in toks.iter().enumerate() {
            match t.bytes(sql) {
                b"(" if t.kind == Kind::Punct => depth += 1,
                b")" if t.kind == Kind::Punct => depth -= 1,
                _ if depth == 0 && t.is_word(sql, "LIMIT") => at = Some(i),
                _ => {}
            }
        }
        let count = at.and_then(|i| toks.get(i + 1)).ok_or_else(refuse)?;
        let rest_ok = at
            .map(|i| &toks[i + 2..])
            .is_some_and(|rest| rest.iter().all(|t| t.kind == Kind::Semicolon));
        if count.kind != Kind::Number || !rest_ok {
            return Err(refuse());
        }
        let limit: u64 = std::str::from_utf8(count.bytes(sql))
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(refuse)?;
        let mut edits = Edits::default();
        edits.replace(
            count.start,
            count.end,
            super::plan::LIMIT_PLACEHOLDER.to_string(),
        );
        let template = self.qualified(r, edits)?;
        Ok(Plan::Local(Local::LimitedWrite(Box::new(
            super::plan::LimitedWrite {
                keyspace: ks.name.clone(),
                template,
                ls: ls.unwrap_or_else(|| (0..ks.logical_shards).collect()),
                limit,
                update: matches!(stmt, Statement::Update(_)),
            },
        ))))
    }
}

/// `UPDATE a, b SET …` (tables listed with commas), which the SQL parser does not read, as the
/// same statement with `CROSS JOIN` for each comma: MariaDB reads the two alike when the list
/// holds table names only (with or without aliases). `None` for any other statement, or a
/// list that also joins (`JOIN … ON`, parentheses), where a comma binds less tightly than a
/// join and the two would differ.
pub(super) fn comma_update(sql: &str) -> Option<String> {
    use crate::sql::lex::Kind;
    let b = sql.as_bytes();
    let toks = crate::sql::lex::significant(b, &Default::default());
    if !toks.first()?.is_word(b, "UPDATE") {
        return None;
    }
    let joins = [
        "JOIN",
        "ON",
        "USING",
        "STRAIGHT_JOIN",
        "NATURAL",
        "LEFT",
        "RIGHT",
        "INNER",
        "CROSS",
        "OUTER",
    ];
    let mut edits = Edits::default();
    let mut commas = 0;
    for t in &toks[1..] {
        if t.is_word(b, "SET") {
            break;
        }
        if joins.iter().any(|w| t.is_word(b, w)) || t.bytes(b) == b"(" {
            return None;
        }
        if t.kind == Kind::Punct && t.bytes(b) == b"," {
            let space = b.get(t.end).is_some_and(u8::is_ascii_whitespace);
            edits.replace(
                t.start,
                t.end,
                if space { " CROSS JOIN" } else { " CROSS JOIN " },
            );
            commas += 1;
        }
    }
    if commas == 0 {
        return None;
    }
    edits.apply(sql).ok()
}
