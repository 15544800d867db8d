//! Fingerprints: a statement with its literals replaced by `?` (and `IN` lists folded), so
//! that one query shape is one entry whatever its values (the query overview, the routing
//! shadow, the query log).

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Keywords followed by a parenthesised list rather than being a call.
const STRUCTURAL: &[&str] = &[
    "IN", "VALUES", "AS", "ON", "USING", "FROM", "JOIN", "WHERE", "AND", "OR", "NOT", "EXISTS",
    "SELECT", "INTO", "TABLE", "BY", "HAVING", "WHEN", "THEN", "ELSE", "SET", "UNION", "ALL",
    "ANY", "SOME", "KEY", "INDEX", "IF", "VALUE", "LIMIT", "WITH", "CASE", "RETURN", "DISTINCT",
];

/// Returns the fingerprint of `sql`: literals become `?`, runs of `?, ?, …` become `?+`,
/// whitespace and comments collapse, unquoted words are upper-cased. SQL that does not tokenize is
/// its own fingerprint, whitespace-collapsed.
pub fn fingerprint(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, sql).tokenize() else {
        return sql.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    let mut parts: Vec<String> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let p = match t {
            Token::Whitespace(_) => continue,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::HexStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::Placeholder(_) => "?".to_string(),
            // Keywords and identifiers alike: case does not make a different shape.
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        };
        // `- ?` after an operator or `(` is a negative literal.
        if p == "?" && parts.last().is_some_and(|l| l == "-") {
            let before = parts.len().checked_sub(2).and_then(|i| parts.get(i));
            if before.is_none_or(|b| {
                b == "("
                    || b == ","
                    || b == "="
                    || b == "<"
                    || b == ">"
                    || b.chars().all(|c| c.is_ascii_uppercase())
            }) {
                parts.pop();
            }
        }
        // Fold `?, ?, ?` into `?+`.
        if p == "?"
            && parts.len() >= 2
            && parts[parts.len() - 1] == ","
            && (parts[parts.len() - 2] == "?" || parts[parts.len() - 2] == "?+")
        {
            parts.pop();
            if let Some(last) = parts.last_mut() {
                *last = "?+".to_string();
            }
            continue;
        }
        parts.push(p);
    }
    let mut out = String::with_capacity(sql.len());
    for (i, p) in parts.iter().enumerate() {
        let prev = if i > 0 { parts[i - 1].as_str() } else { "" };
        // A call's parenthesis sticks to its name; a clause's (`IN (`, `VALUES (`) does not.
        let call = p == "("
            && prev
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '`')
            && !STRUCTURAL.contains(&prev);
        let glue = i > 0
            && !call
            && !matches!(p.as_str(), "," | ")" | "." | ";")
            && !matches!(prev, "(" | ".");
        if glue {
            out.push(' ');
        }
        out.push_str(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn literals_fold() {
        assert_eq!(
            fingerprint("select a, b from t where id = 42 and name='x' -- c"),
            "SELECT A, B FROM T WHERE ID = ? AND NAME = ?"
        );
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN (1,2,3)"),
            fingerprint("SELECT * FROM t WHERE id IN (7, 8)")
        );
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE x = -5"),
            fingerprint("SELECT * FROM t WHERE x = 5")
        );
        assert_ne!(
            fingerprint("SELECT a FROM t"),
            fingerprint("SELECT b FROM t")
        );
        assert_eq!(
            fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')"),
            "INSERT INTO T(A, B) VALUES (?+), (?+)"
        );
    }
}
