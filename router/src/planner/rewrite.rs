//! Text edits on the original SQL, located by the parser's token spans, so that everything
//! the planner does not touch (literals, comments, spacing) reaches the backend byte for byte.

use sqlparser::tokenizer::{Location, Span};

/// A set of replacements of byte ranges of one SQL string.
#[derive(Debug, Default)]
pub struct Edits {
    edits: Vec<(usize, usize, String)>,
}

/// Maps parser locations (1-based line and character column) to byte offsets.
pub struct Offsets {
    line_starts: Vec<usize>,
    sql_len: usize,
}

impl Offsets {
    pub fn new(sql: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in sql.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        Offsets {
            line_starts,
            sql_len: sql.len(),
        }
    }

    /// Returns the byte offset of `loc` in `sql`, or `None` for an unknown location.
    pub fn byte(&self, sql: &str, loc: Location) -> Option<usize> {
        if loc.line == 0 || loc.column == 0 {
            return None;
        }
        let start = *self.line_starts.get(usize::try_from(loc.line - 1).ok()?)?;
        let col = usize::try_from(loc.column - 1).ok()?;
        let line = sql.get(start..)?;
        let mut off = start;
        for (n, (i, _)) in line.char_indices().enumerate() {
            if n == col {
                return Some(start + i);
            }
            off = start + i;
        }
        // The column just past the last character of the text.
        let end = line.len() + start;
        if line.chars().count() == col {
            return Some(end.min(self.sql_len));
        }
        let _ = off;
        None
    }

    /// Returns the byte range of `span`.
    pub fn range(&self, sql: &str, span: Span) -> Option<(usize, usize)> {
        let s = self.byte(sql, span.start)?;
        let e = self.byte(sql, span.end)?;
        (s <= e).then_some((s, e))
    }
}

impl Edits {
    /// Replaces `start..end` with `text`.
    pub fn replace(&mut self, start: usize, end: usize, text: impl Into<String>) {
        self.edits.push((start, end, text.into()));
    }

    /// Inserts `text` at `at`.
    pub fn insert(&mut self, at: usize, text: impl Into<String>) {
        self.edits.push((at, at, text.into()));
    }

    /// Returns `sql` with every edit applied, or `None` if two edits overlap.
    pub fn apply(mut self, sql: &str) -> Option<String> {
        self.edits.sort_by_key(|e| (e.0, e.1));
        let mut out = String::with_capacity(sql.len() + 32 * self.edits.len());
        let mut pos = 0;
        for (s, e, text) in &self.edits {
            if *s < pos || *e > sql.len() {
                return None;
            }
            out.push_str(sql.get(pos..*s)?);
            out.push_str(text);
            pos = *e;
        }
        out.push_str(sql.get(pos..)?);
        Some(out)
    }
}

/// Quotes an identifier with backticks.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters() {
        let sql = "SELECT 'é'\nFROM t";
        let o = Offsets::new(sql);
        assert_eq!(o.byte(sql, Location::new(2, 6)), Some(sql.len() - 1));
        assert_eq!(o.byte(sql, Location::new(1, 10)), Some(10));
        assert_eq!(o.byte(sql, Location::new(0, 0)), None);
    }

    #[test]
    fn edits_apply_in_order() {
        let mut e = Edits::default();
        e.insert(5, "b.");
        e.replace(0, 1, "X");
        assert_eq!(e.apply("a c  d").as_deref(), Some("X c  b.d"));
    }
}
