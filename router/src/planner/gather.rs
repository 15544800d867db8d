//! Reads over sharded tables that the planner cannot split into per-shard statements and a
//! router-side merge (subqueries, set operations, CTEs, window functions, expressions over
//! aggregates, …) are answered by MariaDB itself: the rows of every sharded table the
//! statement reads are gathered from all logical shards into temporary tables of the same
//! definition on one connection, and the statement runs there as written (its tables
//! qualified with that schema). Its answer is MariaDB's by construction; the rows gathered
//! are bounded (`engine/gather.rs`).

use super::ast::parse_one;
use super::plan::{Gather, GatherFilter, Local, Plan};
use super::resolve::Planner;

use crate::error::SqlError;
use crate::sql::rewrite::{quote_ident, Edits, Offsets};
use crate::sql::LS_PLACEHOLDER;
use crate::topology::{RoutingTable, TableRouting};
use sqlparser::ast::{SetExpr, Statement};

/// The select whose items name a query's columns (the first of a set operation).
fn first_select(body: &SetExpr) -> Option<&sqlparser::ast::Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::SetOperation { left, .. } => first_select(left),
        SetExpr::Query(q) => first_select(q.body.as_ref()),
        _ => None,
    }
}

/// The gather plan for read `sql` over one sharded keyspace, or the reason there is none.
///
/// # Errors
/// 1235 for statements a gather does not answer: not a plain read, locking or `INTO`,
/// system schemas, no sharded table.
pub fn plan(sql: &str, session_ks: Option<&str>, rt: &RoutingTable) -> Result<Plan, SqlError> {
    Ok(Plan::Local(Local::Gather(Box::new(gather(
        sql, session_ks, rt, false,
    )?))))
}

/// The gather of read `sql` over a sharded keyspace whose tables may all be reference tables
/// (the rows an `INSERT … SELECT` reads: the select then runs on one server as it is).
///
/// # Errors
/// Like [`plan`].
pub fn source(sql: &str, session_ks: Option<&str>, rt: &RoutingTable) -> Result<Gather, SqlError> {
    gather(sql, session_ks, rt, true)
}

fn gather(
    sql: &str,
    session_ks: Option<&str>,
    rt: &RoutingTable,
    reference_only: bool,
) -> Result<Gather, SqlError> {
    // Syntax the parser does not know (`WITH ROLLUP`) is read as its stand-in and put back
    // into what MariaDB runs, which computes it over all the gathered rows.
    let standin = super::standin::StandIn::find(sql);
    let sql = standin.as_ref().map_or(sql, |s| s.stand_in_sql.as_str());
    let stmt = parse_one(sql)?;
    let Statement::Query(q) = &stmt else {
        return Err(SqlError::unsupported(
            "gathering rows for a statement that is not a read",
        ));
    };
    if !q.locks.is_empty() || q.for_clause.is_some() {
        return Err(SqlError::unsupported("gathering rows for a locking read"));
    }
    if let SetExpr::Select(s) = q.body.as_ref() {
        if s.into.is_some() {
            return Err(SqlError::unsupported("gathering rows for SELECT … INTO"));
        }
    }
    let p = Planner {
        sql,
        offsets: Offsets::new(sql),
        session_ks,
        rt,
        last_insert_id: 0,
    };
    let r = p.resolve_with_ctes(&stmt)?;
    let (Some(ks), false) = (r.ks, r.system) else {
        return Err(SqlError::unsupported("gathering rows outside one keyspace"));
    };
    let mut tables: Vec<String> = Vec::new();
    for t in &r.tables {
        if matches!(t.routing, TableRouting::Sharded { .. }) && !tables.contains(&t.name) {
            tables.push(t.name.clone());
        }
    }
    if !ks.sharded || tables.is_empty() && !reference_only {
        return Err(SqlError::unsupported(
            "gathering rows without sharded tables",
        ));
    }
    // Sharded tables are read from the temporary tables, made in the keyspace's reference
    // schema; reference tables are there already.
    // Select items whose text the qualification changes keep the client's column names.
    let mut edits = Edits::default();
    // The select list of the select that names the columns (after a `WITH` list, too).
    let first = first_select(q.body.as_ref());
    let ranges = first
        .and_then(|s| p.offsets.byte(sql, s.select_token.0.span.start))
        .and_then(|at| {
            super::select::select_item_ranges(&sql[at..]).map(|v| {
                v.into_iter()
                    .map(|(s, e)| (s + at, e + at))
                    .collect::<Vec<_>>()
            })
        });
    if let (Some(select), Some(ranges)) = (first, ranges) {
        if ranges.len() == select.projection.len() {
            let changed: Vec<usize> = r
                .tables
                .iter()
                .map(|t| t.qualify.0)
                .chain(r.column_quals.iter().map(|q| q.0))
                .collect();
            for (item, &(s, e)) in select.projection.iter().zip(&ranges) {
                let sqlparser::ast::SelectItem::UnnamedExpr(expr) = item else {
                    continue;
                };
                if matches!(
                    expr,
                    sqlparser::ast::Expr::Identifier(_)
                        | sqlparser::ast::Expr::CompoundIdentifier(_)
                ) {
                    continue;
                }
                let text = &sql[s..e];
                // MariaDB refuses aliases over 256 characters: such a name would change.
                if changed.iter().any(|&at| at >= s && at < e) {
                    // MariaDB names such an item by its text with executable comments blanked
                    // in its own way; not imitated.
                    if text.contains("/*!") || text.contains("/*M!") {
                        return Err(SqlError::unsupported(
                            "gathering rows for a select item that names a table and holds an executable comment",
                        ));
                    }
                    if text.chars().count() > 256 {
                        return Err(SqlError::unsupported(
                            "gathering rows for a select item over 256 characters that names a table",
                        ));
                    }
                    edits.insert(e, format!(" AS {}", quote_ident(text)));
                }
            }
        }
    }
    let mut template = p.qualified(&r, edits)?;
    if let Some(s) = &standin {
        s.restore(&mut template)?;
    }
    let filters = pushed_filters(sql, q, &r, &tables, &p.offsets, ks.logical_shards);
    let sql = template.replace(LS_PLACEHOLDER, &quote_ident(&ks.reference_schema()));
    Ok(Gather {
        keyspace: ks.name.clone(),
        tables,
        filters,
        sql,
    })
}

/// Functions a pushed condition may call: deterministic ones whose answer depends on their
/// arguments only (so the shard and the statement evaluate them alike).
const PUSHABLE_FUNCTIONS: &[&str] = &[
    "ABS",
    "CEIL",
    "CEILING",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "COALESCE",
    "CONCAT",
    "CONCAT_WS",
    "DATE",
    "DAY",
    "DAYOFMONTH",
    "FLOOR",
    "HOUR",
    "IF",
    "IFNULL",
    "INSTR",
    "LCASE",
    "LEFT",
    "LENGTH",
    "LOCATE",
    "LOWER",
    "LTRIM",
    "MINUTE",
    "MOD",
    "MONTH",
    "NULLIF",
    "REPLACE",
    "RIGHT",
    "ROUND",
    "RTRIM",
    "SECOND",
    "SUBSTR",
    "SUBSTRING",
    "TRIM",
    "TRUNCATE",
    "UCASE",
    "UPPER",
    "YEAR",
];

/// Whether `e` is made only of column references, literals, operators and
/// [`PUSHABLE_FUNCTIONS`] (no subquery, variable, aggregate or function that reads the
/// session, the clock or chance), and of which column qualifiers (`None` for an unqualified
/// column) it names.
fn pushable(e: &sqlparser::ast::Expr, quals: &mut Vec<Option<String>>) -> bool {
    use sqlparser::ast::{Expr, FunctionArguments};
    use std::ops::ControlFlow;
    let mut ok = true;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        let fine = match x {
            Expr::Identifier(i) => {
                quals.push(None);
                !i.value.starts_with('@')
            }
            Expr::CompoundIdentifier(parts) => {
                quals.push((parts.len() == 2).then(|| parts[0].value.clone()));
                parts.len() == 2 && !parts[0].value.starts_with('@')
            }
            Expr::Value(_)
            | Expr::BinaryOp { .. }
            | Expr::UnaryOp { .. }
            | Expr::Nested(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::InList { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::Cast { .. }
            | Expr::Case { .. } => true,
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                PUSHABLE_FUNCTIONS.contains(&name.as_str())
                    && f.over.is_none()
                    && f.filter.is_none()
                    && f.within_group.is_empty()
                    && matches!(&f.args, FunctionArguments::List(l) if l.clauses.is_empty())
            }
            _ => false,
        };
        if fine {
            ControlFlow::Continue(())
        } else {
            ok = false;
            ControlFlow::Break(())
        }
    });
    ok
}

/// The end of the text `start..end` of an expression once the closing parentheses its span may
/// leave out (`x IN (1, 2)` ends before its `)`) are taken in.
fn balanced_end(sql: &str, toks: &[crate::sql::lex::Token], start: usize, end: usize) -> usize {
    use crate::sql::lex::Kind;
    let bytes = sql.as_bytes();
    let paren = |t: &crate::sql::lex::Token, c: u8| t.kind == Kind::Punct && bytes[t.start] == c;
    let mut depth = 0i64;
    let mut last = end;
    for t in toks.iter().filter(|t| t.start >= start) {
        // Past the span, only closing parentheses still open in it are taken.
        if t.start >= end && !(depth > 0 && paren(t, b')')) {
            break;
        }
        if paren(t, b'(') {
            depth += 1;
        } else if paren(t, b')') {
            depth -= 1;
        }
        last = last.max(t.end);
    }
    last
}

/// The conditions of a plain select's `WHERE` that can be applied to a gathered table's rows
/// as they are read, per table: conjuncts (top-level `AND` terms) of the statement's own
/// `WHERE` that name columns of that table only, by its alias (or by no qualifier when the
/// statement reads that one table), with nothing that could answer differently when evaluated
/// twice ([`pushable`]). Only for a table named once in the whole statement (not also in a
/// subquery, CTE or self-join: its temporary table serves every mention) whose rows cannot be
/// null-extended by an outer join: the statement's answer is then the same with or without
/// the rows such a condition rejects, since the statement applies it again.
fn pushed_filters(
    sql: &str,
    q: &sqlparser::ast::Query,
    r: &super::resolve::Resolved<'_>,
    tables: &[String],
    offsets: &Offsets,
    logical_shards: u32,
) -> Vec<GatherFilter> {
    use sqlparser::ast::{JoinOperator, Spanned, TableFactor};
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Vec::new();
    };
    let Some(selection) = &s.selection else {
        return Vec::new();
    };
    // The top-level tables a filter may apply to: (table, the name it is known by).
    let mut candidates: Vec<(String, String)> = Vec::new();
    let mut relations = 0;
    for twj in &s.from {
        relations += 1 + twj.joins.len();
        let inner_only = twj.joins.iter().all(|j| {
            matches!(
                j.join_operator,
                JoinOperator::Join(_)
                    | JoinOperator::Inner(_)
                    | JoinOperator::CrossJoin(_)
                    | JoinOperator::StraightJoin(_)
                    | JoinOperator::Left(_)
                    | JoinOperator::LeftOuter(_)
            )
        });
        if !inner_only {
            continue;
        }
        let mut factors = vec![&twj.relation];
        factors.extend(
            twj.joins
                .iter()
                .filter(|j| {
                    !matches!(
                        j.join_operator,
                        JoinOperator::Left(_) | JoinOperator::LeftOuter(_)
                    )
                })
                .map(|j| &j.relation),
        );
        for f in factors {
            if let TableFactor::Table { name, alias, .. } = f {
                let Some(table) = name.0.last().and_then(|p| p.as_ident()) else {
                    continue;
                };
                if !tables.contains(&table.value) {
                    continue;
                }
                let known_as = alias
                    .as_ref()
                    .map_or_else(|| table.value.clone(), |a| a.name.value.clone());
                candidates.push((table.value.clone(), known_as));
            }
        }
    }
    let mut conj = Vec::new();
    super::ast::conjuncts(selection, &mut conj);
    let toks = crate::sql::lex::significant(sql.as_bytes(), &Default::default());
    let mut out = Vec::new();
    for (table, known_as) in candidates {
        if r.tables.iter().filter(|t| t.name == table).count() != 1 {
            continue;
        }
        let mut conds: Vec<&str> = Vec::new();
        // The logical shards the conditions leave (by the shard key).
        let mut ls: Option<std::collections::BTreeSet<u32>> = None;
        let routing = r
            .tables
            .iter()
            .find(|t| t.name == table)
            .map(|t| &t.routing);
        let key = |e: &sqlparser::ast::Expr| match routing {
            Some(TableRouting::Sharded {
                shard_key,
                vindex,
                key_type,
                ..
            }) => super::ast::column_ref(e)
                .filter(|(q, col)| {
                    col.eq_ignore_ascii_case(shard_key)
                        && q.as_ref().map_or(relations == 1, |q| *q == known_as)
                })
                .map(|_| (*vindex, *key_type)),
            _ => None,
        };
        for c in &conj {
            let mut quals = Vec::new();
            if !pushable(c, &mut quals) || quals.is_empty() {
                continue;
            }
            let mine = quals.iter().all(|q| match q {
                Some(q) => *q == known_as,
                None => relations == 1,
            });
            if !mine {
                continue;
            }
            let Some((a, b)) = offsets.range(sql, c.span()) else {
                continue;
            };
            let text = &sql[a..balanced_end(sql, &toks, a, b)];
            // The text must be the condition itself (spans can leave out parentheses).
            let same = parse_one(&format!("SELECT 1 FROM t WHERE {text}"))
                .ok()
                .and_then(|st| match st {
                    Statement::Query(q2) => match *q2.body {
                        SetExpr::Select(s2) => s2.selection.map(|w| w.to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .is_some_and(|w| w == c.to_string());
            if same {
                conds.push(text);
                if let Some(set) = super::keys::key_set(c, &key, logical_shards) {
                    ls = Some(match ls {
                        Some(prev) => prev.intersection(&set).copied().collect(),
                        None => set,
                    });
                }
            }
        }
        if !conds.is_empty() {
            let cond = conds
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ");
            out.push(GatherFilter {
                table,
                known_as,
                cond,
                ls: ls.map(|s| s.into_iter().collect()),
            });
        }
    }
    out
}
