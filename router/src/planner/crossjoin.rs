//! Joins between sharded tables that are not joined on their shard keys: a nested loop with
//! batched lookups. The left table is read (routed by its own conditions); its distinct join
//! keys are sent in batches as `IN` lists to the right table (routed by them when the right
//! join column is its shard key); the router pairs the rows. Which right rows match which left
//! key is decided by MariaDB itself (each right row carries the positions of the keys it
//! equals), so collations and type conversions are MariaDB's.
//!
//! Shape: `SELECT a.x [AS n], b.y, … FROM t1 [AS] a [INNER | LEFT] JOIN t2 [AS] b ON a.c = b.d
//! [WHERE conditions on one table each]`, select items being qualified columns. Anything else
//! is refused with its name.

use super::ast::{column_ref, conjuncts, ident_parts};
use super::merge::MergePlanner;
use super::plan::{CrossJoin, Local, Plan};
use super::resolve::Planner;
use crate::error::SqlError;
use crate::sql::quote_ident;
use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, Query, Select, SelectItem, TableFactor,
};

fn refuse(what: &str) -> SqlError {
    SqlError::unsupported(format!(
        "cross-shard join with {what} (joins of sharded tables not on their shard keys take only qualified columns, one ON equality, and WHERE conditions on one table each)"
    ))
}

impl Planner<'_> {
    /// Plans a cross-shard join of two sharded tables of keyspace `ks`.
    pub(super) fn cross_join(
        &self,
        ks: &str,
        select: &Select,
        q: &Query,
    ) -> Result<Plan, SqlError> {
        if q.order_by.is_some() {
            return Err(refuse("ORDER BY"));
        }
        if q.limit_clause.is_some() {
            return Err(refuse("LIMIT"));
        }
        if select.distinct.is_some() {
            return Err(refuse("DISTINCT"));
        }
        if !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(v, _) if v.is_empty())
        {
            return Err(refuse("GROUP BY"));
        }
        if select.having.is_some() {
            return Err(refuse("HAVING"));
        }
        let [twj] = select.from.as_slice() else {
            return Err(refuse("several FROM items"));
        };
        let [join] = twj.joins.as_slice() else {
            return Err(refuse("more than two tables"));
        };
        let (left_outer, on) = match &join.join_operator {
            JoinOperator::Join(JoinConstraint::On(e))
            | JoinOperator::Inner(JoinConstraint::On(e)) => (false, e),
            JoinOperator::Left(JoinConstraint::On(e))
            | JoinOperator::LeftOuter(JoinConstraint::On(e)) => (true, e),
            _ => return Err(refuse("this kind of join (INNER or LEFT JOIN … ON)")),
        };
        let table = |f: &TableFactor| -> Result<(String, String), SqlError> {
            let TableFactor::Table { name, alias, .. } = f else {
                return Err(refuse("a derived table"));
            };
            let parts = ident_parts(name).ok_or_else(|| refuse("a computed table name"))?;
            let t = parts
                .last()
                .map(|i| i.value.clone())
                .ok_or_else(|| refuse("an empty table name"))?;
            let a = alias.as_ref().map_or(t.clone(), |a| a.name.value.clone());
            Ok((t, a))
        };
        let (lt, la) = table(&twj.relation)?;
        let (rt, ra) = table(&join.relation)?;
        if la.eq_ignore_ascii_case(&ra) {
            return Err(refuse("a table joined with itself under one name"));
        }
        // Which side a qualified column belongs to.
        let side = |e: &Expr| -> Option<bool> {
            let (q, _) = column_ref(e)?;
            let q = q?;
            if q.eq_ignore_ascii_case(&la) {
                Some(false)
            } else if q.eq_ignore_ascii_case(&ra) {
                Some(true)
            } else {
                None
            }
        };
        // Every column reference in `e` on one side (`Some(side)`), else `None`.
        let only_side = |e: &Expr| -> Result<bool, SqlError> {
            let mut found: Option<bool> = None;
            let mut bad = false;
            let _ = sqlparser::ast::visit_expressions(e, |x| {
                match x {
                    Expr::Identifier(_) => bad = true,
                    Expr::CompoundIdentifier(_) => match side(x) {
                        Some(s) if found.is_none_or(|f| f == s) => found = Some(s),
                        _ => bad = true,
                    },
                    Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => bad = true,
                    _ => {}
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            match (bad, found) {
                (false, Some(s)) => Ok(s),
                _ => Err(refuse(&format!(
                    "the condition {e} (it must use qualified columns of one table)"
                ))),
            }
        };
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = on
        else {
            return Err(refuse("an ON condition that is not one equality"));
        };
        let (lkey, rkey) = match (side(left), side(right)) {
            (Some(false), Some(true)) => (left.as_ref(), right.as_ref()),
            (Some(true), Some(false)) => (right.as_ref(), left.as_ref()),
            _ => return Err(refuse("an ON condition that is not one equality")),
        };
        // Conditions copied into each side's statement keep the qualifiers of tables in them.
        let quals = self.qualify_edits(&self.resolve(q)?)?;
        let mp = MergePlanner {
            sql: self.sql,
            offsets: &self.offsets,
            quals: &quals,
        };
        let mut lconds = Vec::new();
        let mut rconds = Vec::new();
        if let Some(w) = &select.selection {
            let mut cs = Vec::new();
            conjuncts(w, &mut cs);
            for c in cs {
                let text = format!("({})", mp.text(c)?);
                if only_side(c)? {
                    if left_outer {
                        return Err(refuse("WHERE conditions on the right table of a LEFT JOIN"));
                    }
                    rconds.push(text);
                } else {
                    lconds.push(text);
                }
            }
        }
        // Select items: qualified columns, each from one side.
        let mut litems = Vec::new();
        let mut ritems = Vec::new();
        let mut output = Vec::new();
        for item in &select.projection {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                _ => return Err(refuse("a * select item")),
            };
            let s = match e {
                Expr::CompoundIdentifier(p) if p.len() == 2 => side(e),
                _ => None,
            }
            .ok_or_else(|| refuse(&format!("the select item {e}")))?;
            let text = match alias {
                Some(a) => format!("{} AS {}", mp.text(e)?, quote_ident(&a.value)),
                None => mp.text(e)?,
            };
            if s {
                output.push((true, ritems.len()));
                ritems.push(text);
            } else {
                output.push((false, litems.len()));
                litems.push(text);
            }
        }
        let q_ks = quote_ident(ks);
        let lkey_pos = litems.len();
        litems.push(mp.text(lkey)?);
        let left_sql = format!(
            "SELECT {} FROM {q_ks}.{} AS {}{}",
            litems.join(", "),
            quote_ident(&lt),
            quote_ident(&la),
            if lconds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", lconds.join(" AND "))
            }
        );
        Ok(Plan::Local(Local::CrossJoin(Box::new(CrossJoin {
            keyspace: ks.to_string(),
            left_sql,
            left_key: lkey_pos,
            right_from: format!("{q_ks}.{} AS {}", quote_ident(&rt), quote_ident(&ra)),
            right_items: ritems,
            right_key: mp.text(rkey)?,
            right_where: rconds,
            output,
            left_outer,
        }))))
    }
}
