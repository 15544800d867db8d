//! Session statements the router answers or replays itself (`SET`).

use super::plan::{Local, Plan};
use super::resolve::Planner;

use crate::error::SqlError;
use sqlparser::ast::{Expr, ObjectName, Spanned, Value};

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
                    Value::Number(n, _) => match n.as_str() {
                        "0" => Some(false),
                        "1" => Some(true),
                        _ => None,
                    },
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
                // `SET autocommit = 1, sql_mode = …` (Connector/J's first statement):
                // autocommit is the router's to keep; the rest is replayed as a `SET` of its
                // own, cut from the client's text.
                let mut autocommit = None;
                let mut rest = Vec::new();
                let starts: Vec<usize> = assignments
                    .iter()
                    .map(|a| {
                        self.offsets
                            .range(self.sql, a.name.span())
                            .map(|(s, _)| s)
                            .ok_or_else(|| SqlError::unsupported("this SET statement"))
                    })
                    .collect::<Result<_, _>>()?;
                let end = crate::sql::rewrite::statement_end(self.sql);
                for (i, a) in assignments.iter().enumerate() {
                    if is_autocommit(&a.name) {
                        let v = truthy(&a.value).ok_or_else(|| {
                            SqlError::new(
                                1231,
                                "42000",
                                "Variable 'autocommit' can't be set to this value",
                            )
                        })?;
                        autocommit = Some(v);
                        continue;
                    }
                    if a.scope.is_some() {
                        return Err(SqlError::unsupported(
                            "setting autocommit together with variables of an explicit scope",
                        ));
                    }
                    // From this assignment's name to the next one's comma (spans of values
                    // can stop before a closing parenthesis, so they are not used).
                    let to = starts.get(i + 1).copied().unwrap_or(end);
                    let text = self
                        .sql
                        .get(starts[i]..to)
                        .ok_or_else(|| SqlError::unsupported("this SET statement"))?
                        .trim_end();
                    let text = if i + 1 < starts.len() {
                        text.strip_suffix(',').map(str::trim_end).ok_or_else(|| {
                            SqlError::unsupported(
                                "this SET statement (comments between assignments)",
                            )
                        })?
                    } else {
                        text
                    };
                    rest.push(text.to_string());
                }
                let Some(on) = autocommit else {
                    return Err(SqlError::unsupported("this SET statement"));
                };
                Ok(Plan::Local(Local::SetAutocommitAnd(
                    on,
                    format!("SET {}", rest.join(", ")),
                )))
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

/// Reads `BEGIN [WORK]` and `START TRANSACTION [option [, option …]]` (options `READ ONLY`,
/// `READ WRITE`, `WITH CONSISTENT SNAPSHOT`) from the text, so that the options reach every
/// backend connection the transaction opens as the client wrote them. `None` for anything else
/// (including these statements with comments, which the parser then reads).
pub(super) fn transaction_start(sql: &str) -> Option<crate::planner::TxnStart> {
    // Read by the lexer: comments are skipped, and the text of executable comments the server
    // runs counts (`START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */`, as dumps send).
    let b = sql.as_bytes();
    let toks = crate::sql::lex::significant(b, &Default::default());
    let mut words: Vec<String> = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            crate::sql::lex::Kind::Word => words.push(t.upper_word(b)?),
            crate::sql::lex::Kind::Punct if b[t.start] == b',' => words.push(",".into()),
            crate::sql::lex::Kind::Semicolon if i + 1 == toks.len() => {}
            _ => return None,
        }
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["BEGIN"] | ["BEGIN", "WORK"] | ["START", "TRANSACTION"] => {
            return Some(crate::planner::TxnStart::default())
        }
        ["START", "TRANSACTION", ..] => {}
        _ => return None,
    }
    let rest = w[2..].join(" ");
    let mut read_only = false;
    let mut options = Vec::new();
    for opt in rest.split(',').map(str::trim) {
        let canonical = opt.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
        match canonical.as_str() {
            "READ ONLY" => read_only = true,
            "READ WRITE" | "WITH CONSISTENT SNAPSHOT" => {}
            _ => return None,
        }
        options.push(canonical);
    }
    Some(crate::planner::TxnStart {
        sql: format!("START TRANSACTION {}", options.join(", ")),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::transaction_start;

    #[test]
    fn transaction_options_are_read_from_the_text() {
        let t = transaction_start("start transaction read only , with consistent snapshot;")
            .expect("read");
        assert_eq!(
            t.sql,
            "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT"
        );
        assert!(t.read_only);
        assert_eq!(
            transaction_start("BEGIN").map(|t| t.sql).as_deref(),
            Some("START TRANSACTION")
        );
        assert!(transaction_start("START TRANSACTION READ SOMETHING").is_none());
        assert!(
            transaction_start("START TRANSACTION /* c */ READ ONLY").is_some_and(|t| t.read_only)
        );
        assert_eq!(
            transaction_start("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */")
                .map(|t| t.sql)
                .as_deref(),
            Some("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        );
        assert!(transaction_start("START TRANSACTION /*M!999999 nonsense */").is_some());
        assert!(transaction_start("SELECT 1").is_none());
    }
}
