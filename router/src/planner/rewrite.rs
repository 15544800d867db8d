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
    /// Per line: its first byte, and the index of its first character in `chars` (`None`
    /// for an all-ASCII line, where a column is a byte count).
    lines: Vec<(usize, Option<(usize, usize)>)>,
    /// Byte offsets of the characters of non-ASCII lines, in order.
    chars: Vec<usize>,
    sql_len: usize,
}

impl Offsets {
    pub fn new(sql: &str) -> Self {
        let mut lines = Vec::new();
        let mut chars = Vec::new();
        let mut start = 0;
        for line in sql.split_inclusive('\n') {
            if line.is_ascii() {
                lines.push((start, None));
            } else {
                let first = chars.len();
                chars.extend(line.char_indices().map(|(i, _)| start + i));
                chars.push(start + line.len());
                lines.push((start, Some((first, chars.len() - first))));
            }
            start += line.len();
        }
        if lines.is_empty() || sql.ends_with('\n') {
            lines.push((sql.len(), None));
        }
        Offsets {
            lines,
            chars,
            sql_len: sql.len(),
        }
    }

    /// Returns the byte offset of `loc` in `sql`, or `None` for an unknown location. Constant
    /// time: long one-line statements (multi-row `INSERT`s) stay linear to plan.
    pub fn byte(&self, _sql: &str, loc: Location) -> Option<usize> {
        if loc.line == 0 || loc.column == 0 {
            return None;
        }
        let line = usize::try_from(loc.line - 1).ok()?;
        let col = usize::try_from(loc.column - 1).ok()?;
        let &(start, first_char) = self.lines.get(line)?;
        let end = self.lines.get(line + 1).map_or(self.sql_len, |l| l.0);
        match first_char {
            None => {
                let at = start + col;
                // The column just past the last character is the line's end.
                (at <= end).then_some(at)
            }
            Some((first, count)) => {
                if col < count {
                    self.chars.get(first + col).copied()
                } else {
                    None
                }
            }
        }
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

    /// Whether an edit already changes bytes within `start..end` or inserts inside it.
    pub fn touches(&self, start: usize, end: usize) -> bool {
        self.edits
            .iter()
            .any(|&(s, e, _)| s < end && (e > start || (s == e && s > start)))
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

#[cfg(test)]
mod offset_tests {
    use super::Offsets;
    use sqlparser::tokenizer::Location;

    fn slow(sql: &str, line: u64, col: u64) -> Option<usize> {
        let start: usize = sql
            .split_inclusive('\n')
            .take((line - 1) as usize)
            .map(str::len)
            .sum();
        let rest = &sql[start..];
        let line_text = rest.split_inclusive('\n').next().unwrap_or("");
        let mut it = line_text.char_indices().map(|(i, _)| start + i);
        it.nth((col - 1) as usize).or_else(|| {
            (line_text.chars().count() == (col - 1) as usize).then_some(start + line_text.len())
        })
    }

    #[test]
    fn byte_offsets_match_a_character_walk() {
        for sql in [
            "SELECT 1",
            "SELECT 'é', x\nFROM t WHERE a = 'ß'\n  AND b = 2",
            "INSERT INTO t VALUES ('日本'), ('x')\n",
            "",
        ] {
            let o = Offsets::new(sql);
            let lines = sql.split_inclusive('\n').count().max(1) as u64;
            for line in 1..=lines {
                for col in 1..=40u64 {
                    let want = slow(sql, line, col);
                    let got = o.byte(sql, Location { line, column: col });
                    if let Some(w) = want {
                        assert_eq!(got, Some(w), "{sql:?} {line}:{col}");
                    }
                }
            }
        }
    }
}
