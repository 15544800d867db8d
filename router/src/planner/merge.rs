//! Planning of reads that need merging in the router: `ORDER BY` (streaming merge-sort of
//! per-shard sorted results), aggregates with or without `GROUP BY`, `HAVING`, `DISTINCT`.
//!
//! The per-shard statement is the client's statement with edits: `AVG(x)` becomes `SUM(x)`
//! with a hidden `COUNT(x)`; `HAVING` and per-shard `LIMIT` are removed when groups are merged;
//! hidden columns are appended for sort and group keys, each with its collation weight
//! ([`weight_sql`]) so that strings compare exactly as the column's collation does (trailing
//! spaces ignored under PAD SPACE collations, significant under NO PAD ones); binary strings
//! compare by their bytes. Hidden columns come last and are
//! cut off before rows reach the client.

use crate::error::SqlError;
use crate::sql::rewrite::{comments, keywords_before, statement_end, Edits, Offsets};
use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, LimitClause, OrderByKind, Query, Select, SelectItem, Spanned, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The SQL of a sort or group key's weight: `WEIGHT_STRING` of the value, with trailing
/// spaces removed first unless the value's collation is NO PAD (or binary), where they count.
pub fn weight_sql(expr: &str) -> String {
    format!(
        "IF(COLLATION({expr}) LIKE '%nopad%' OR COLLATION({expr}) = 'binary', WEIGHT_STRING({expr}), WEIGHT_STRING(RTRIM({expr})))"
    )
}

/// A column of the per-shard result: a select item (by position) or a hidden column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Item(usize),
    Hidden(usize),
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub col: Col,
    /// Its `WEIGHT_STRING`, used when the column is a string.
    pub weight: Option<Col>,
    pub desc: bool,
}

/// How one output column of an aggregate query is merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agg {
    /// A group key or a value constant within its group: the first value seen.
    Any,
    Count,
    Sum,
    Min {
        weight: Col,
    },
    Max {
        weight: Col,
    },
    /// `AVG(x)`, sent as `SUM(x)` with `COUNT(x)` hidden in `count`.
    Avg {
        count: Col,
    },
    /// `COUNT(DISTINCT x)`: each shard also groups by `x` (so its item is 1 per distinct
    /// non-NULL value, 0 for NULL) and sends `x` (`value`) with its collation weight
    /// (`weight`); the router counts the distinct values per group.
    CountDistinct {
        value: Col,
        weight: Col,
    },
}

/// A `HAVING` condition the router evaluates on merged groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HavingCond {
    pub col: Col,
    pub op: BinaryOperator,
    pub value: String,
}

/// What the router does with the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeMode {
    /// Per-shard results are sorted; merge them as they stream.
    Sorted { keys: Vec<SortKey> },
    /// Fold every row into groups, filter, sort, cut.
    Aggregate {
        /// Group keys (empty: one group, as for `SELECT COUNT(*) FROM t`).
        group: Vec<SortKey>,
        /// How each visible column merges (by select item).
        aggs: Vec<Agg>,
        having: Vec<HavingCond>,
        /// Order of the output; when empty, groups come out sorted by their keys, as
        /// MariaDB's `GROUP BY` does.
        order: Vec<SortKey>,
        /// Without `GROUP BY` but with shards grouping (for `COUNT(DISTINCT)`), no row may
        /// arrive: the router then answers the one row of empty aggregates (0 or NULL).
        empty_row: bool,
    },
}

/// The merge part of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSpec {
    /// Select items the client sees (wildcards only in `Sorted` mode, where it is unknown and
    /// `None`).
    pub visible: Option<usize>,
    /// Trailing hidden columns.
    pub hidden: usize,
    pub mode: MergeMode,
    /// Rows to skip and keep, after merging.
    pub limit: Option<(u64, u64)>,
    /// Aliases of hidden sort columns, for the per-physical-shard `UNION ALL … ORDER BY`.
    pub union_order: Vec<(String, bool)>,
    /// Client-visible names for items the rewrite renamed (item index, name).
    pub names: Vec<(usize, String)>,
}

/// Returns the aggregate function of a call, if it is one the router merges.
fn agg_name(e: &Expr) -> Option<(String, &sqlparser::ast::Function)> {
    if let Expr::Function(f) = e {
        let n = f.name.to_string().to_ascii_uppercase();
        if super::ast::is_aggregate(&n) {
            return Some((n, f));
        }
    }
    None
}

fn contains_aggregate(e: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let Expr::Function(f) = x {
            if super::ast::is_aggregate(&f.name.to_string()) || f.over.is_some() {
                found = true;
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

pub(super) struct MergePlanner<'a> {
    pub sql: &'a str,
    pub offsets: &'a Offsets,
    /// The statement's table qualifiers ([`super::resolve::Planner::qualify_edits`]): text
    /// copied from the statement into another place of it gets those within it.
    pub quals: &'a [(usize, usize, String)],
}

struct Builder {
    hidden: Vec<String>,
}

impl Builder {
    fn add(&mut self, text: String) -> Col {
        self.hidden.push(text);
        Col::Hidden(self.hidden.len() - 1)
    }
}

fn unsupported(what: &str) -> SqlError {
    SqlError::unsupported(format!("{what} across logical shards"))
}

impl MergePlanner<'_> {
    /// Returns the text of `e` for a rewritten statement: its exact source text, or, when the
    /// parser's span does not cover it (unary operators, some casts) and it holds no string
    /// literal, the parsed expression written out again. Either is checked by parsing it.
    pub(super) fn text(&self, e: &Expr) -> Result<String, SqlError> {
        if let Ok(t) = self.span_text(e) {
            return self.qualify(e, t);
        }
        // Written out again, it would lose the qualifiers of tables inside it.
        if let Some((s, end)) = self.offsets.range(self.sql, e.span()) {
            if self.quals.iter().any(|q| q.0 >= s && q.0 < end) {
                return Err(SqlError::unsupported(format!(
                    "the expression {e} across logical shards (the router cannot rewrite it exactly)"
                )));
            }
        }
        let mut strings = false;
        let _ = sqlparser::ast::visit_expressions(e, |x| {
            if let Expr::Value(v) = x {
                if !matches!(v.value, Value::Number(..) | Value::Null | Value::Boolean(_)) {
                    strings = true;
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let t = e.to_string();
        let same = !strings
            && Parser::new(&MySqlDialect {})
                .try_with_sql(&t)
                .and_then(|mut p| p.parse_expr())
                .is_ok_and(|back| back == *e);
        if same {
            Ok(t)
        } else {
            Err(SqlError::unsupported(format!(
                "the expression {e} across logical shards (the router cannot rewrite it exactly)"
            )))
        }
    }

    /// `text`, the source text of `e` (at its span's start), with the table qualifiers that
    /// fall inside it.
    fn qualify(&self, e: &Expr, text: String) -> Result<String, SqlError> {
        let err = || {
            SqlError::unsupported(
                "this expression across logical shards (it cannot be rewritten safely)",
            )
        };
        let (s0, _) = self.offsets.range(self.sql, e.span()).ok_or_else(err)?;
        let Some(s) = self.sql[s0..].find(&text).map(|i| s0 + i) else {
            return Err(err());
        };
        let end = s + text.len();
        let mut inside: Vec<&(usize, usize, String)> = self
            .quals
            .iter()
            .filter(|q| q.0 >= s && q.1 <= end)
            .collect();
        if inside.is_empty() {
            return Ok(text);
        }
        inside.sort_by_key(|q| q.0);
        let mut out = String::with_capacity(text.len() + 32 * inside.len());
        let mut at = s;
        for (a, b, rep) in inside {
            out.push_str(&self.sql[at..*a]);
            out.push_str(rep);
            at = *b;
        }
        out.push_str(&self.sql[at..end]);
        Ok(out)
    }

    /// Returns the exact source text of `e`, checked by parsing it again.
    fn span_text(&self, e: &Expr) -> Result<String, SqlError> {
        let err = || {
            SqlError::unsupported(
                "this expression across logical shards (it cannot be rewritten safely)",
            )
        };
        let (s, mut end) = self.offsets.range(self.sql, e.span()).ok_or_else(err)?;
        let b = self.sql.as_bytes();
        // Spans may stop before closing parentheses or before a call's argument list.
        let scan = |from: usize, to: usize, depth: &mut i32| {
            let mut quote: Option<u8> = None;
            for &c in &b[from..to] {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'\'' | b'"' | b'`') => quote = Some(c),
                    (None, b'(') => *depth += 1,
                    (None, b')') => *depth -= 1,
                    _ => {}
                }
            }
        };
        let mut depth = 0;
        scan(s, end, &mut depth);
        if depth == 0 && matches!(e, Expr::Function(_)) {
            let mut i = end;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == b'(' && !self.sql[s..end].contains('(') {
                end = i;
            }
        }
        if depth > 0 || (end < b.len() && b[end] == b'(') {
            let mut quote: Option<u8> = None;
            while end < b.len() {
                let c = b[end];
                end += 1;
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'\'' | b'"' | b'`') => quote = Some(c),
                    (None, b'(') => depth += 1,
                    (None, b')') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        let text = self.sql.get(s..end).ok_or_else(err)?.trim().to_string();
        let reparsed = Parser::new(&MySqlDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|_| err())?;
        if reparsed.to_string() != e.to_string() {
            return Err(err());
        }
        Ok(text)
    }

    /// Plans the merge of a multi-shard `SELECT`, returning the edits to the per-shard
    /// statement and the merge spec; `None` when no merging is needed.
    ///
    /// # Errors
    /// 1235 naming a shape the router cannot merge exactly.
    pub fn plan(
        &self,
        select: &Select,
        q: &Query,
        limit: Option<(u64, u64)>,
        edits: &mut Edits,
    ) -> Result<Option<MergeSpec>, SqlError> {
        let group_exprs: Vec<&Expr> = match &select.group_by {
            GroupByExpr::Expressions(v, mods) => {
                if !mods.is_empty() {
                    return Err(unsupported("GROUP BY modifiers (WITH ROLLUP)"));
                }
                v.iter().collect()
            }
            GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        };
        let order: Vec<&sqlparser::ast::OrderByExpr> = match &q.order_by {
            None => vec![],
            Some(ob) => match &ob.kind {
                OrderByKind::Expressions(v) => v.iter().collect(),
                OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
            },
        };
        let has_agg = select.projection.iter().any(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                contains_aggregate(e)
            }
            _ => false,
        });
        let distinct = match &select.distinct {
            None => false,
            Some(sqlparser::ast::Distinct::Distinct) => true,
            Some(_) => return Err(unsupported("DISTINCT ON")),
        };
        let aggregate = has_agg || !group_exprs.is_empty() || distinct || select.having.is_some();
        if !aggregate && order.is_empty() {
            return Ok(None);
        }
        if select.into.is_some() {
            return Err(unsupported("SELECT ... INTO"));
        }
        if !q.locks.is_empty() {
            return Err(unsupported("ORDER BY or aggregates with a locking clause"));
        }
        let has_wildcard = select.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        let items: Vec<(Option<&Expr>, Option<String>)> = select
            .projection
            .iter()
            .map(|i| match i {
                SelectItem::UnnamedExpr(e) => (Some(e), None),
                SelectItem::ExprWithAlias { expr, alias } => {
                    (Some(expr), Some(alias.value.clone()))
                }
                _ => (None, None),
            })
            .collect();
        let mut b = Builder { hidden: Vec::new() };
        let names = Vec::new();
        // Finds the select item an ORDER BY / GROUP BY expression names: by alias, by 1-based
        // position, or by identical text.
        let item_of = |e: &Expr| -> Option<usize> {
            if let Expr::Value(v) = e {
                if let Value::Number(n, _) = &v.value {
                    return n
                        .parse::<usize>()
                        .ok()
                        .and_then(|p| p.checked_sub(1))
                        .filter(|p| *p < items.len());
                }
            }
            if let Expr::Identifier(id) = e {
                if let Some(i) = items.iter().position(|(_, a)| {
                    a.as_ref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&id.value))
                }) {
                    return Some(i);
                }
            }
            let t = e.to_string();
            items
                .iter()
                .position(|(x, _)| x.is_some_and(|x| x.to_string() == t))
        };
        let mut union_order = Vec::new();
        let hidden_key = |b: &mut Builder,
                          text: &str,
                          union_order: &mut Vec<(String, bool)>,
                          desc: Option<bool>|
         -> (Col, Col) {
            let n = b.hidden.len();
            let v = b.add(format!("{text} AS `__tessera_h{n}`"));
            let w = b.add(format!("{} AS `__tessera_h{}`", weight_sql(text), n + 1));
            if let Some(d) = desc {
                union_order.push((format!("`__tessera_h{n}`"), d));
            }
            (v, w)
        };
        if !aggregate {
            // Streaming merge of sorted per-shard results.
            let mut keys = Vec::new();
            for o in &order {
                if o.options.nulls_first.is_some() {
                    return Err(unsupported("NULLS FIRST/LAST"));
                }
                let desc = o.options.asc == Some(false);
                if let Expr::Value(v) = &o.expr {
                    if matches!(v.value, Value::Number(..))
                        && (has_wildcard || item_of(&o.expr).is_none())
                    {
                        return Err(unsupported("ORDER BY a column position with SELECT *"));
                    }
                }
                let text = match item_of(&o.expr) {
                    Some(i) if !has_wildcard || items[..=i].iter().all(|(x, _)| x.is_some()) => {
                        match items[i].0 {
                            Some(e) => self.text(e)?,
                            None => self.text(&o.expr)?,
                        }
                    }
                    _ => self.text(&o.expr)?,
                };
                if contains_aggregate(&o.expr) {
                    return Err(unsupported("ORDER BY an aggregate"));
                }
                let (v, w) = hidden_key(&mut b, &text, &mut union_order, Some(desc));
                keys.push(SortKey {
                    col: v,
                    weight: Some(w),
                    desc,
                });
            }
            self.append_hidden(select, &b, edits)?;
            return Ok(Some(MergeSpec {
                visible: if has_wildcard {
                    None
                } else {
                    Some(items.len())
                },
                hidden: b.hidden.len(),
                mode: MergeMode::Sorted { keys },
                limit,
                union_order,
                names,
            }));
        }
        if has_wildcard {
            return Err(unsupported(
                "SELECT * with GROUP BY, DISTINCT or aggregates",
            ));
        }
        if distinct && (has_agg || !group_exprs.is_empty()) {
            return Err(unsupported("DISTINCT together with GROUP BY or aggregates"));
        }
        // Output columns.
        let mut aggs = Vec::with_capacity(items.len());
        // The argument of COUNT(DISTINCT …), which every shard also groups by.
        let mut count_distinct: Option<String> = None;
        for (e, _alias) in items.iter() {
            let Some(e) = e else {
                return Err(unsupported("this select item"));
            };
            match agg_name(e) {
                Some((name, f)) => {
                    if f.over.is_some() {
                        return Err(unsupported("window functions"));
                    }
                    let FunctionArguments::List(list) = &f.args else {
                        return Err(unsupported(&format!("{name} without arguments")));
                    };
                    let is_distinct =
                        matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
                    if is_distinct && name != "COUNT" {
                        return Err(unsupported(&format!("{name}(DISTINCT …)")));
                    }
                    if !list.clauses.is_empty() || f.filter.is_some() {
                        return Err(unsupported(&format!("{name} with clauses")));
                    }
                    let arg_text = match list.args.as_slice() {
                        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if name == "COUNT" => {
                            "*".to_string()
                        }
                        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => {
                            if contains_aggregate(a) {
                                return Err(unsupported("nested aggregates"));
                            }
                            self.text(a)?
                        }
                        _ => return Err(unsupported(&format!("{name} with these arguments"))),
                    };
                    let full = self.text(e)?;
                    if (name == "SUM" || name == "AVG")
                        && (arg_text.contains('/')
                            || arg_text.to_ascii_uppercase().contains(" DIV "))
                    {
                        // Each shard rounds its partial result of a division; the sum of
                        // rounded parts can differ from MariaDB's answer in the last digit.
                        return Err(unsupported(&format!("{name} of a division")));
                    }
                    match name.as_str() {
                        "COUNT" if is_distinct => {
                            if count_distinct.as_ref().is_some_and(|t| *t != arg_text) {
                                return Err(unsupported(
                                    "COUNT(DISTINCT …) of two different expressions",
                                ));
                            }
                            let value =
                                b.add(format!("{arg_text} AS `__tessera_h{}`", b.hidden.len()));
                            let weight = b.add(format!(
                                "{} AS `__tessera_h{}`",
                                weight_sql(&arg_text),
                                b.hidden.len()
                            ));
                            count_distinct = Some(arg_text.clone());
                            aggs.push(Agg::CountDistinct { value, weight });
                        }
                        "COUNT" => aggs.push(Agg::Count),
                        "SUM" => aggs.push(Agg::Sum),
                        "MIN" | "MAX" => {
                            let w = b.add(format!(
                                "{} AS `__tessera_h{}`",
                                weight_sql(&full),
                                b.hidden.len()
                            ));
                            aggs.push(if name == "MIN" {
                                Agg::Min { weight: w }
                            } else {
                                Agg::Max { weight: w }
                            });
                        }
                        "AVG" => {
                            let (s, en) = self
                                .offsets
                                .range(self.sql, e.span())
                                .ok_or_else(|| unsupported("AVG"))?;
                            let en = s + full.len().max(en - s);
                            edits.replace(s, en, format!("SUM({arg_text})"));
                            if _alias.is_none() {
                                // Keep the name MariaDB would give the AVG column.
                                edits.insert(en, format!(" AS `{}`", full.replace('`', "``")));
                            }
                            let c = b.add(format!(
                                "COUNT({arg_text}) AS `__tessera_h{}`",
                                b.hidden.len()
                            ));
                            aggs.push(Agg::Avg { count: c });
                        }
                        other => return Err(unsupported(&format!("aggregate {other}()"))),
                    }
                }
                None => {
                    if contains_aggregate(e) {
                        return Err(unsupported("expressions over aggregates"));
                    }
                    aggs.push(Agg::Any);
                }
            }
        }
        // Group keys: by select item where one matches, else hidden.
        let mut group = Vec::new();
        let key_exprs: Vec<&Expr> = if distinct {
            items.iter().filter_map(|(e, _)| *e).collect()
        } else {
            group_exprs.clone()
        };
        for g in key_exprs {
            if let (Expr::Identifier(id), false) = (g, distinct) {
                // In GROUP BY a table column wins over a select alias of the same name, and the
                // router cannot see the table's columns: only take an alias that names its own
                // column.
                let aliased = items.iter().find(|(_, a)| {
                    a.as_ref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&id.value))
                });
                if let Some((Some(x), _)) = aliased {
                    let same = matches!(x, Expr::Identifier(c) if c.value.eq_ignore_ascii_case(&id.value))
                        || matches!(x, Expr::CompoundIdentifier(p) if p.last().is_some_and(|c| c.value.eq_ignore_ascii_case(&id.value)));
                    if !same {
                        return Err(unsupported("GROUP BY a select alias (it may also name a column; group by the expression)"));
                    }
                }
            }
            let text = match item_of(g) {
                Some(i) => match items[i].0 {
                    Some(e) => self.text(e)?,
                    None => self.text(g)?,
                },
                None => self.text(g)?,
            };
            let col = match item_of(g) {
                Some(i) => Col::Item(i),
                None => b.add(format!("{text} AS `__tessera_h{}`", b.hidden.len())),
            };
            let w = b.add(format!(
                "{} AS `__tessera_h{}`",
                weight_sql(&text),
                b.hidden.len()
            ));
            group.push(SortKey {
                col,
                weight: Some(w),
                desc: false,
            });
        }
        // HAVING: conjuncts of `aggregate op literal` on merged groups.
        let mut having = Vec::new();
        if let Some(h) = &select.having {
            let mut cs = Vec::new();
            super::ast::conjuncts(h, &mut cs);
            for c in cs {
                let Expr::BinaryOp { left, op, right } = c else {
                    return Err(unsupported("this HAVING condition"));
                };
                if !matches!(
                    op,
                    BinaryOperator::Eq
                        | BinaryOperator::NotEq
                        | BinaryOperator::Lt
                        | BinaryOperator::LtEq
                        | BinaryOperator::Gt
                        | BinaryOperator::GtEq
                ) {
                    return Err(unsupported("this HAVING condition"));
                }
                let value = match right.as_ref() {
                    Expr::Value(v) => match &v.value {
                        Value::Number(n, _) => n.clone(),
                        _ => return Err(unsupported("HAVING with a non-numeric literal")),
                    },
                    Expr::UnaryOp {
                        op: sqlparser::ast::UnaryOperator::Minus,
                        expr,
                    } => match expr.as_ref() {
                        Expr::Value(v) => match &v.value {
                            Value::Number(n, _) => format!("-{n}"),
                            _ => return Err(unsupported("this HAVING condition")),
                        },
                        _ => return Err(unsupported("this HAVING condition")),
                    },
                    _ => {
                        return Err(unsupported(
                            "HAVING that compares with anything but a number",
                        ))
                    }
                };
                let col = match item_of(left) {
                    Some(i)
                        if matches!(
                            aggs[i],
                            Agg::Count
                                | Agg::CountDistinct { .. }
                                | Agg::Sum
                                | Agg::Min { .. }
                                | Agg::Max { .. }
                                | Agg::Avg { .. }
                        ) =>
                    {
                        Col::Item(i)
                    }
                    _ => {
                        return Err(unsupported(
                            "HAVING on anything but an aggregate of the select list",
                        ))
                    }
                };
                having.push(HavingCond {
                    col,
                    op: op.clone(),
                    value,
                });
            }
            // The per-shard statement must not filter partial groups.
            let (hs, he) = self
                .offsets
                .range(self.sql, h.span())
                .ok_or_else(|| unsupported("HAVING"))?;
            let text = self.text(h).unwrap_or_default();
            let he = he.max(hs + text.len());
            let cs = comments(self.sql);
            let kw = keywords_before(self.sql, &cs, hs, &["HAVING"])
                .ok_or_else(|| unsupported("HAVING"))?;
            edits.replace(kw, he, "");
        }
        // ORDER BY over merged groups: by output column.
        let mut order_keys = Vec::new();
        for o in &order {
            if o.options.nulls_first.is_some() {
                return Err(unsupported("NULLS FIRST/LAST"));
            }
            let desc = o.options.asc == Some(false);
            let Some(i) = item_of(&o.expr) else {
                return Err(unsupported(
                    "ORDER BY an expression that is not in the select list, with GROUP BY",
                ));
            };
            let weight = match aggs[i] {
                Agg::Min { weight } | Agg::Max { weight } => Some(weight),
                Agg::Any => {
                    let text = match items[i].0 {
                        Some(e) => self.text(e)?,
                        None => return Err(unsupported("ORDER BY")),
                    };
                    Some(b.add(format!(
                        "{} AS `__tessera_h{}`",
                        weight_sql(&text),
                        b.hidden.len()
                    )))
                }
                _ => None,
            };
            order_keys.push(SortKey {
                col: Col::Item(i),
                weight,
                desc,
            });
        }
        // Per-shard LIMIT would cut partial groups: remove it.
        if let Some(lc) = &q.limit_clause {
            let e = match lc {
                LimitClause::LimitOffset { limit, offset, .. } => {
                    limit.as_ref().or(offset.as_ref().map(|o| &o.value))
                }
                LimitClause::OffsetCommaLimit { offset, .. } => Some(offset),
            };
            if let Some(e) = e {
                let (s, _) = self
                    .offsets
                    .range(self.sql, e.span())
                    .ok_or_else(|| unsupported("LIMIT"))?;
                let cs = comments(self.sql);
                let start = keywords_before(self.sql, &cs, s, &["LIMIT"])
                    .ok_or_else(|| unsupported("this LIMIT form with GROUP BY"))?;
                // LIMIT is the statement's last clause here (no locking clause).
                edits.replace(start, self.sql.len(), "");
            }
        }
        let mut empty_row = false;
        if let Some(x) = &count_distinct {
            empty_row = group_exprs.is_empty();
            self.group_shards_by(x, &group_exprs, select, q, &aggs, edits)?;
        }
        self.append_hidden(select, &b, edits)?;
        Ok(Some(MergeSpec {
            visible: Some(items.len()),
            hidden: b.hidden.len(),
            mode: MergeMode::Aggregate {
                group,
                aggs,
                having,
                order: order_keys,
                empty_row,
            },
            limit,
            union_order: Vec::new(),
            names,
        }))
    }

    /// Makes every shard group by `x` too (for `COUNT(DISTINCT x)`): first in an existing
    /// `GROUP BY`, else a `GROUP BY x` before `HAVING`, `ORDER BY`, `LIMIT` or the end.
    fn group_shards_by(
        &self,
        x: &str,
        group_exprs: &[&Expr],
        select: &Select,
        q: &Query,
        aggs: &[Agg],
        edits: &mut Edits,
    ) -> Result<(), SqlError> {
        let shape = || unsupported("COUNT(DISTINCT …) in this statement");
        if let Some(first) = group_exprs.first() {
            let t = self.span_text(first).map_err(|_| shape())?;
            let (s, _) = self
                .offsets
                .range(self.sql, first.span())
                .ok_or_else(shape)?;
            if !self.sql[s..].starts_with(&t) {
                return Err(shape());
            }
            edits.insert(s, format!("{x}, "));
            return Ok(());
        }
        // One row of aggregates: with no row from any shard the router answers it, which it
        // can only do for aggregates.
        if aggs.iter().any(|a| matches!(a, Agg::Any)) || select.having.is_some() {
            return Err(unsupported(
                "COUNT(DISTINCT …) beside plain columns or HAVING, without GROUP BY",
            ));
        }
        // Where the clauses after WHERE start: the first keyword before their first
        // expression (a comment between the keywords, or one that holds a keyword, is refused
        // here or by the edits).
        let cs = comments(self.sql);
        let keyword_start = |e: &Expr, words: &[&str]| -> Option<usize> {
            let (at, _) = self.offsets.range(self.sql, e.span())?;
            keywords_before(self.sql, &cs, at, words)
        };
        let order_first = q.order_by.as_ref().and_then(|ob| match &ob.kind {
            OrderByKind::Expressions(v) => v.first().map(|o| &o.expr),
            OrderByKind::All(_) => None,
        });
        let limit_first = q.limit_clause.as_ref().and_then(|lc| match lc {
            LimitClause::LimitOffset { limit, offset, .. } => {
                limit.as_ref().or(offset.as_ref().map(|o| &o.value))
            }
            LimitClause::OffsetCommaLimit { offset, .. } => Some(offset),
        });
        // Just before the keyword of the next clause, or past the statement's last token
        // (never after a trailing comment, which could swallow it).
        let at = match (order_first, limit_first) {
            (Some(e), _) => keyword_start(e, &["ORDER", "BY"]).ok_or_else(shape)?,
            (None, Some(e)) => keyword_start(e, &["LIMIT"]).ok_or_else(shape)?,
            (None, None) => statement_end(self.sql),
        };
        let space = if self.sql[..at].ends_with(|c: char| c.is_ascii_whitespace()) {
            ""
        } else {
            " "
        };
        edits.insert(at, format!("{space}GROUP BY {x} "));
        Ok(())
    }

    /// Appends the hidden columns after the select list, just before its `FROM`.
    fn append_hidden(
        &self,
        select: &Select,
        b: &Builder,
        edits: &mut Edits,
    ) -> Result<(), SqlError> {
        if b.hidden.is_empty() {
            return Ok(());
        }
        let first = select
            .from
            .first()
            .ok_or_else(|| unsupported("a select without FROM"))?;
        let (start, _) = self
            .offsets
            .range(self.sql, first.relation.span())
            .ok_or_else(|| unsupported("this FROM clause"))?;
        let at = keywords_before(self.sql, &comments(self.sql), start, &["FROM"])
            .ok_or_else(|| unsupported("this FROM clause"))?;
        edits.insert(at, format!(", {} ", b.hidden.join(", ")));
        Ok(())
    }
}
