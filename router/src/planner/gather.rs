//! Reads over sharded tables that the planner cannot split into per-shard statements and a
//! router-side merge (subqueries, set operations, CTEs, window functions, expressions over
//! aggregates, …) are answered by MariaDB itself: the rows of every sharded table the
//! statement reads are gathered from all logical shards into temporary tables of the same
//! definition on one connection, and the statement runs there as written (its tables
//! qualified with that schema). Its answer is MariaDB's by construction; the rows gathered
//! are bounded (`engine/gather.rs`).

use super::plan::{Gather, Local, Plan};
use super::resolve::Planner;
use super::statement::parse_one;

use crate::error::SqlError;
use crate::sql::rewrite::{quote_ident, Edits, Offsets};
use crate::sql::LS_PLACEHOLDER;
use crate::topology::{RoutingTable, TableRouting};
use sqlparser::ast::{SetExpr, Statement};
use std::collections::HashSet;

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
    let ctes: HashSet<String> = q
        .with
        .as_ref()
        .map(|w| {
            w.cte_tables
                .iter()
                .map(|c| c.alias.name.value.clone())
                .collect()
        })
        .unwrap_or_default();
    let p = Planner {
        sql,
        offsets: Offsets::new(sql),
        session_ks,
        rt,
        last_insert_id: 0,
    };
    let r = p.resolve_skipping(&stmt, &ctes)?;
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
    if let (Some(select), Some(ranges)) = (
        first_select(q.body.as_ref()),
        super::select::select_item_ranges(sql),
    ) {
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
    let sql = template.replace(LS_PLACEHOLDER, &quote_ident(&ks.reference_schema()));
    Ok(Gather {
        keyspace: ks.name.clone(),
        tables,
        sql,
    })
}
