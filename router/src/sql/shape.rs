//! A statement split at its literals: the key of the plan cache (literals as `?`) and where
//! each literal is, found by a direct byte scan for common statements and by the SQL
//! tokenizer for the rest.

use crate::sql::rewrite::Offsets;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A statement split at its literals.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    pub key: String,
    /// Byte ranges of the literals, in order.
    pub literals: Vec<(usize, usize)>,
}

/// Splits `sql` into its normalised key and literal ranges; `None` when it does not tokenise
/// (the planner reports the error).
///
/// The common statement is scanned by [`scan_shape`]; anything it does not take (comments,
/// hex and bit literals, introducers, exponents, non-ASCII outside strings) goes through the
/// parser's tokenizer, which gives the same answer more slowly.
pub fn shape(sql: &str) -> Option<Shape> {
    scan_shape(sql).or_else(|| tokenized_shape(sql))
}

/// A direct scan of `sql` for the shapes the tokenizer would find, for statements made of
/// ASCII words, quoted identifiers, quoted strings, plain decimal numbers, operators and
/// spaces; `None` for anything else, which [`tokenized_shape`] handles.
pub fn scan_shape(sql: &str) -> Option<Shape> {
    let b = sql.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    // What may stand right before or after a literal for the scan to take it.
    let sep = |c: Option<&u8>| {
        c.is_none_or(|c| {
            matches!(
                c,
                b' ' | b'\t'
                    | b'\n'
                    | b'\r'
                    | b','
                    | b'('
                    | b')'
                    | b'='
                    | b'<'
                    | b'>'
                    | b'!'
                    | b'+'
                    | b'-'
                    | b'*'
                    | b'/'
                    | b'%'
                    | b';'
            )
        })
    };
    let mut key = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' => {
                key.push(' ');
                i += 1;
            }
            b'\r' => {
                key.push(' ');
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            }
            b'\'' | b'"' => {
                let start = i;
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\\' => i += 2,
                        q if q == c => {
                            if b.get(i + 1) == Some(&c) {
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                if i > b.len() {
                    return None;
                }
                // A string right after a word or another string is an introducer
                // (`_utf8mb4'x'`, `N'x'`) or concatenation: left to the tokenizer.
                if !sep(start.checked_sub(1).and_then(|p| b.get(p))) || !sep(b.get(i)) {
                    return None;
                }
                key.push('?');
                literals.push((start, i));
            }
            b'`' => {
                let start = i;
                i += 1;
                loop {
                    if *b.get(i)? == b'`' {
                        if b.get(i + 1) == Some(&b'`') {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                key.push_str(sql.get(start..i)?);
            }
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // `1e5`, `0x1f`, `1abc` (an identifier in MySQL), `1.2.3`, `t.1`: the
                // tokenizer's.
                if !sep(start.checked_sub(1).and_then(|p| b.get(p))) || !sep(b.get(i)) {
                    return None;
                }
                key.push('?');
                literals.push((start, i));
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
            c if word(c) || c == b'@' => {
                let start = i;
                i += 1;
                while i < b.len() && (word(b[i]) || b[i] == b'@') {
                    i += 1;
                }
                if b.get(i)
                    .is_some_and(|&n| n >= 0x80 || n == b'\'' || n == b'"')
                {
                    return None;
                }
                key.push_str(&sql[start..i]);
            }
            // Comments (`--`, `#`, `/*`), non-ASCII and control characters: the tokenizer's.
            b'#' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            c if !(0x20..0x80).contains(&c) => return None,
            _ => {
                key.push(c as char);
                i += 1;
            }
        }
    }
    Some(Shape { key, literals })
}

/// [`shape`] by the parser's tokenizer.
pub fn tokenized_shape(sql: &str) -> Option<Shape> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    let starts: Vec<usize> = tokens
        .iter()
        .map(|t| offsets.byte(sql, t.span.start))
        .collect::<Option<Vec<_>>>()?;
    let mut key = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(sql.len());
        match &t.token {
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => {
                key.push('?');
                literals.push((start, end));
            }
            // Spaces and newlines do not matter; comments may (`/*! … */` runs).
            Token::Whitespace(
                sqlparser::tokenizer::Whitespace::Space
                | sqlparser::tokenizer::Whitespace::Newline
                | sqlparser::tokenizer::Whitespace::Tab,
            ) => key.push(' '),
            // Anything else as written (identifiers keep their case and quotes).
            _ => key.push_str(sql.get(start..end)?),
        }
    }
    Some(Shape { key, literals })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_put_literals_aside() {
        let s = shape("SELECT c FROM t WHERE id = 42 AND name = 'a''b'").expect("shape");
        assert_eq!(s.key, "SELECT c FROM t WHERE id = ? AND name = ?");
        assert_eq!(s.literals.len(), 2);
        let s2 = shape("SELECT c FROM t WHERE id = 7 AND name = 'zz'").expect("shape");
        assert_eq!(s.key, s2.key);
        assert_ne!(
            shape("SELECT c FROM t WHERE id = 7").map(|s| s.key),
            shape("SELECT c FROM u WHERE id = 7").map(|s| s.key)
        );
    }
}
