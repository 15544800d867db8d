//! Statements on sharded tables with lookup vindexes: which values of a lookup column a
//! `WHERE` pins (the engine asks the lookup table where they live), and the plans that keep
//! the lookup tables in step with the rows.

use super::ast::column_ref;
use super::keys::lit;
use super::plan::{
    KeyLiteral, Local, LookupDelete, LookupPlan, LookupUpdate, LookupWrite, Plan, RouteKind,
};
use super::resolve::Planner;

use crate::error::SqlError;
use crate::topology::Lookup;
use sqlparser::ast::{BinaryOperator, Expr};

/// Values of a column that rows matching `e` must hold: `col = literal`, `col IN
/// (literals)`, `AND` (either side's), `OR` (both sides'). `None` when `e` does not pin it.
pub(super) fn pinned_values(e: &Expr, is_col: &dyn Fn(&Expr) -> bool) -> Option<Vec<KeyLiteral>> {
    match e {
        Expr::Nested(inner) => pinned_values(inner, is_col),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let other = if is_col(left) {
                right
            } else if is_col(right) {
                left
            } else {
                return None;
            };
            Some(vec![lit(other)?.into()])
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if is_col(expr) => list
            .iter()
            .map(|x| lit(x).map(KeyLiteral::from))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty()),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => match (pinned_values(left, is_col), pinned_values(right, is_col)) {
            (Some(a), Some(b)) => Some(if a.len() <= b.len() { a } else { b }),
            (a, b) => a.or(b),
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut a = pinned_values(left, is_col)?;
            a.extend(pinned_values(right, is_col)?);
            Some(a)
        }
        _ => None,
    }
}

/// The first serving lookup whose column `selection` pins, with the values. `names`: the
/// qualifiers that name the table (its name, its alias).
pub(super) fn route_by(
    lookups: &[Lookup],
    selection: Option<&Expr>,
    names: &[&str],
) -> Option<(Lookup, Vec<KeyLiteral>)> {
    let w = selection?;
    lookups.iter().filter(|l| l.serves()).find_map(|l| {
        let is_col = |e: &Expr| {
            column_ref(e).is_some_and(|(q, c)| {
                c.eq_ignore_ascii_case(&l.column)
                    && q.is_none_or(|q| names.iter().any(|n| n.eq_ignore_ascii_case(&q)))
            })
        };
        pinned_values(w, &is_col).map(|v| (l.clone(), v))
    })
}

impl<'a> Planner<'a> {
    /// `plan` (a statement on `table` of `keyspace`, which has lookups) routed by a lookup
    /// when the shard key did not pick one logical shard, and with `write` to keep them.
    pub(super) fn with_lookups(
        &self,
        plan: Plan,
        keyspace: &str,
        table: &str,
        route: Option<(Lookup, Vec<KeyLiteral>)>,
        write: LookupWrite,
    ) -> Plan {
        let Plan::Exec(exec) = plan else {
            return plan;
        };
        let route = route.filter(|_| exec.route != RouteKind::One);
        if route.is_none() && write == LookupWrite::None {
            return Plan::Exec(exec);
        }
        Plan::Local(Local::Lookup(Box::new(LookupPlan {
            exec: *exec,
            keyspace: keyspace.to_string(),
            table: table.to_string(),
            route,
            write,
        })))
    }

    /// The select that reads, per logical shard, the shard key and lookup columns of the rows
    /// a `DELETE` (planned as `template`) removes: its text from `FROM` on, after a select
    /// list of those columns.
    pub(super) fn delete_reader(
        &self,
        template: &str,
        shard_key: &str,
        lookups: &[Lookup],
        vindex: tessera_topo::VindexKind,
        key_type: tessera_topo::KeyType,
    ) -> Result<LookupDelete, SqlError> {
        let b = template.as_bytes();
        let toks = crate::sql::lex::significant(b, &Default::default());
        let from = toks
            .iter()
            .position(|t| t.is_word(b, "FROM"))
            .filter(|_| toks.first().is_some_and(|t| t.is_word(b, "DELETE")))
            .ok_or_else(|| SqlError::router("cannot locate FROM in the DELETE"))?;
        let (start, end) = (toks[0].start, toks[from].end);
        let mut cols = vec![crate::sql::quote_ident(shard_key)];
        cols.extend(lookups.iter().map(|l| crate::sql::quote_ident(&l.column)));
        let select = format!(
            "{}SELECT {} FROM{}",
            &template[..start],
            cols.join(", "),
            &template[end..]
        );
        Ok(LookupDelete {
            select,
            lookups: lookups.to_vec(),
            vindex,
            key_type,
        })
    }
}

impl<'a> Planner<'a> {
    /// The select that reads and locks, per logical shard, the shard key and lookup columns
    /// of the rows an `UPDATE` (planned as `template`) changes: its table, then its text from
    /// `WHERE` (or `ORDER BY`, `LIMIT`) on, with `FOR UPDATE` after the last clause.
    pub(super) fn update_reader(
        &self,
        template: &str,
        shard_key: &str,
        lookups: &[Lookup],
        sets: Vec<(usize, Option<KeyLiteral>)>,
        vindex: tessera_topo::VindexKind,
        key_type: tessera_topo::KeyType,
    ) -> Result<LookupUpdate, SqlError> {
        let b = template.as_bytes();
        let toks = crate::sql::lex::significant(b, &Default::default());
        let err = || SqlError::router("cannot locate the clauses of the UPDATE");
        if !toks.first().is_some_and(|t| t.is_word(b, "UPDATE")) {
            return Err(err());
        }
        let mut i = 1;
        while toks.get(i).is_some_and(|t| t.is_word(b, "LOW_PRIORITY")) {
            i += 1;
        }
        if toks.get(i).is_some_and(|t| t.is_word(b, "IGNORE")) {
            return Err(SqlError::unsupported(
                "UPDATE IGNORE of a column with a lookup vindex",
            ));
        }
        let table_at = toks.get(i).ok_or_else(err)?.start;
        // Top-level words only (not inside parentheses).
        let mut depth = 0i32;
        let mut set_at = None;
        let mut rest_at = None;
        for t in &toks[i..] {
            if t.kind == crate::sql::lex::Kind::Punct {
                match b[t.start] {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ => {}
                }
                continue;
            }
            if depth != 0 {
                continue;
            }
            if set_at.is_none() && t.is_word(b, "SET") {
                set_at = Some(t.start);
            } else if set_at.is_some()
                && ["WHERE", "ORDER", "LIMIT"].iter().any(|w| t.is_word(b, w))
            {
                rest_at = Some(t.start);
                break;
            }
        }
        let set_at = set_at.ok_or_else(err)?;
        let last = toks.last().ok_or_else(err)?.end;
        let mut cols = vec![crate::sql::quote_ident(shard_key)];
        cols.extend(lookups.iter().map(|l| crate::sql::quote_ident(&l.column)));
        let select = format!(
            "{}SELECT {} FROM {} {} FOR UPDATE{}",
            &template[..toks[0].start],
            cols.join(", "),
            template[table_at..set_at].trim_end(),
            rest_at.map_or("", |r| &template[r..last]),
            &template[last..]
        );
        Ok(LookupUpdate {
            select,
            sets,
            lookups: lookups.to_vec(),
            vindex,
            key_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::MySqlDialect;
    use sqlparser::parser::Parser;

    fn where_of(sql: &str) -> Expr {
        let stmts = Parser::parse_sql(&MySqlDialect {}, sql).expect("parses");
        match &stmts[0] {
            sqlparser::ast::Statement::Query(q) => match q.body.as_ref() {
                sqlparser::ast::SetExpr::Select(s) => s.selection.clone().expect("where"),
                _ => panic!("not a select"),
            },
            _ => panic!("not a query"),
        }
    }

    fn pinned(sql: &str) -> Option<usize> {
        let is_col = |e: &Expr| column_ref(e).is_some_and(|(_, c)| c == "b");
        pinned_values(&where_of(sql), &is_col).map(|v| v.len())
    }

    #[test]
    fn equalities_and_lists_pin_values() {
        assert_eq!(pinned("SELECT * FROM t WHERE b = 5"), Some(1));
        assert_eq!(pinned("SELECT * FROM t WHERE 5 = b AND c > 1"), Some(1));
        assert_eq!(pinned("SELECT * FROM t WHERE b IN (1, 2, 3)"), Some(3));
        assert_eq!(pinned("SELECT * FROM t WHERE b = 1 OR b = 2"), Some(2));
        assert_eq!(pinned("SELECT * FROM t WHERE b = 1 OR c = 2"), None);
        assert_eq!(pinned("SELECT * FROM t WHERE b NOT IN (1)"), None);
        assert_eq!(pinned("SELECT * FROM t WHERE b = c"), None);
        assert_eq!(pinned("SELECT * FROM t WHERE b > 1"), None);
    }
}
