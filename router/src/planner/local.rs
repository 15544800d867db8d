//! Session statements the router answers or replays itself (`SET`).

use super::plan::{Local, Plan};
use super::resolve::Planner;

use crate::error::SqlError;
use sqlparser::ast::{Expr, ObjectName, Value};

impl<'a> Planner<'a> {
    pub(super) fn set(&self, set: &sqlparser::ast::Set) -> Result<Plan, SqlError> {
        use sqlparser::ast::Set;
        let is_autocommit = |n: &ObjectName| {
            n.0.last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("autocommit"))
        };
        let truthy = |e: &Expr| -> Option<bool> {
            match e {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => Some(n != "0"),
                    Value::Boolean(b) => Some(*b),
                    Value::SingleQuotedString(s) => match s.to_ascii_uppercase().as_str() {
                        "ON" | "1" | "TRUE" => Some(true),
                        "OFF" | "0" | "FALSE" => Some(false),
                        _ => None,
                    },
                    _ => None,
                },
                Expr::Identifier(i) => match i.value.to_ascii_uppercase().as_str() {
                    "ON" | "TRUE" => Some(true),
                    "OFF" | "FALSE" => Some(false),
                    _ => None,
                },
                _ => None,
            }
        };
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } if is_autocommit(variable) => {
                let v = values.first().and_then(truthy).ok_or_else(|| {
                    SqlError::new(
                        1231,
                        "42000",
                        "Variable 'autocommit' can't be set to this value",
                    )
                })?;
                Ok(Plan::Local(Local::SetAutocommit(v)))
            }
            Set::MultipleAssignments { assignments }
                if assignments.iter().any(|a| is_autocommit(&a.name)) =>
            {
                Err(SqlError::unsupported(
                    "setting autocommit together with other variables",
                ))
            }
            Set::SingleAssignment { variable, .. }
                if variable
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("sql_select_limit")) =>
            {
                // Replayed per shard it would cap each shard, not the result.
                Err(SqlError::unsupported("SET sql_select_limit"))
            }
            _ => Ok(Plan::Local(Local::Set(self.sql.to_string()))),
        }
    }
}
