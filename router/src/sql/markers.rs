//! The `?` parameter markers of a statement to prepare.

use crate::error::SqlError;
use crate::sql::rewrite::Offsets;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Finds the `?` markers of `sql` (not those inside strings or comments).
///
/// # Errors
/// 1064 when the statement does not tokenize.
pub fn markers(sql: &str) -> Result<Vec<usize>, SqlError> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(SqlError::parse)?;
    let offsets = Offsets::new(sql);
    let mut out = Vec::new();
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            if p == "?" {
                let at = offsets
                    .byte(sql, t.span.start)
                    .ok_or_else(|| SqlError::router("cannot locate a parameter marker"))?;
                out.push(at);
            } else {
                return Err(SqlError::parse(format!("unexpected parameter marker {p}")));
            }
        }
    }
    Ok(out)
}
