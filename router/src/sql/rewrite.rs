//! Text edits on the original SQL, located by the parser's token spans, so that everything
//! the planner does not touch (literals, comments, spacing) reaches the backend byte for byte.

use crate::error::SqlError;
use sqlparser::tokenizer::{Location, Span};

/// Why a set of edits cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteError {
    /// Two edits overlap, or one lies outside the text (a planner bug).
    Overlap,
    /// An edit would fall inside a comment, or touch an executable one.
    Comment,
}

impl From<RewriteError> for SqlError {
    fn from(e: RewriteError) -> Self {
        match e {
            RewriteError::Overlap => SqlError::router("cannot rewrite the statement"),
            RewriteError::Comment => SqlError::unsupported(
                "a comment at this place of a statement the router rewrites (move the comment before the statement or after its last clause)",
            ),
        }
    }
}

/// The schema placeholder in SQL templates, replaced by each logical shard's schema.
pub const LS_PLACEHOLDER: &str = "`__tessera_ls__`";

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

    /// Returns `sql` with every edit applied. An edit inside a comment, or touching an
    /// executable one (`/*! … */`, whose text MariaDB runs), is refused; text inserted right
    /// after a line comment that ends the statement without a newline gets one first, so that
    /// the comment cannot swallow it.
    ///
    /// # Errors
    /// [`RewriteError::Overlap`] if two edits overlap, [`RewriteError::Comment`] for an edit
    /// that would change what a comment holds.
    pub fn apply(mut self, sql: &str) -> Result<String, RewriteError> {
        self.edits.sort_by_key(|e| (e.0, e.1));
        let comments = if self.edits.is_empty() {
            Vec::new()
        } else {
            comments(sql)
        };
        let mut out = String::with_capacity(sql.len() + 32 * self.edits.len());
        let mut pos = 0;
        for (s, e, text) in &self.edits {
            if *s < pos || *e > sql.len() {
                return Err(RewriteError::Overlap);
            }
            let mut newline = false;
            for c in &comments {
                let inside = |p: usize| c.start < p && p < c.end;
                let at_edge = |p: usize| p == c.start || p == c.end;
                if inside(*s) || inside(*e) || (c.executable && (at_edge(*s) || at_edge(*e))) {
                    return Err(RewriteError::Comment);
                }
                if c.line && *s == c.end && !sql[..c.end].ends_with('\n') && !text.is_empty() {
                    newline = true;
                }
            }
            out.push_str(sql.get(pos..*s).ok_or(RewriteError::Overlap)?);
            if newline {
                out.push('\n');
            }
            out.push_str(text);
            pos = *e;
        }
        out.push_str(sql.get(pos..).ok_or(RewriteError::Overlap)?);
        Ok(out)
    }
}

/// A comment in a statement, as byte offsets (`end` past its last byte, a line comment's
/// newline included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    pub start: usize,
    pub end: usize,
    /// `-- ` or `#` to the end of the line.
    pub line: bool,
    /// `/*! … */` or `/*M! … */` with text in it: MariaDB runs that text.
    pub executable: bool,
}

/// What [`scan`] finds outside quoted strings and identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Comment(Comment),
    /// A `;` at this byte offset.
    Semicolon(usize),
}

/// Walks `sql` once with the [`lex`](super::lex) lexer (backslash escapes as in MariaDB's
/// default `sql_mode`) and reports each comment and each `;` outside quoted strings and
/// identifiers: an executable comment is reported whole, and a `;` inside one is not.
pub fn scan(sql: &str, on: impl FnMut(Mark)) {
    scan_bytes(sql.as_bytes(), &super::lex::Mode::default(), on)
}

/// [`scan`] of bytes, lexed as `mode` says.
pub fn scan_bytes(sql: &[u8], mode: &super::lex::Mode, mut on: impl FnMut(Mark)) {
    use super::lex::{Kind, Lexer};
    let mut exec_start = None;
    for t in Lexer::new(sql, *mode) {
        let comment = |line, executable| {
            Mark::Comment(Comment {
                start: t.start,
                end: t.end,
                line,
                executable,
            })
        };
        match t.kind {
            Kind::LineComment => on(comment(true, false)),
            Kind::BlockComment => {
                // A versioned comment the server version skips still holds text to run on
                // another server: reported as executable, so nothing is spliced into it.
                let body = &sql[t.start + 2..t.end.saturating_sub(2).max(t.start + 2)];
                let rest = body.strip_prefix(b"M!").or_else(|| body.strip_prefix(b"!"));
                let executable = rest.is_some_and(|r| {
                    r.iter()
                        .skip_while(|c| c.is_ascii_digit())
                        .any(|c| !c.is_ascii_whitespace())
                });
                on(comment(false, executable));
            }
            Kind::Unterminated if sql[t.start..].starts_with(b"/*") => {
                on(comment(false, false));
            }
            Kind::ExecOpen => exec_start = Some(t.start),
            Kind::ExecClose => {
                if let Some(start) = exec_start.take() {
                    on(Mark::Comment(Comment {
                        start,
                        end: t.end,
                        line: false,
                        executable: true,
                    }));
                }
            }
            Kind::Semicolon if exec_start.is_none() => on(Mark::Semicolon(t.start)),
            _ => {}
        }
    }
}

/// Returns the comments of `sql` (see [`scan`]).
pub fn comments(sql: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    scan(sql, |m| {
        if let Mark::Comment(c) = m {
            out.push(c);
        }
    });
    out
}

/// Refuses executable comments the SQL parser reads differently from MariaDB: `/*M! … */`
/// (the parser takes it for a plain comment, MariaDB runs it) and `/*!` with a version that
/// is not five digits (MariaDB takes five, the parser all of them). Either way the plan would
/// be made for another statement than the one MariaDB runs.
///
/// # Errors
/// The comment's text, shortened, when it is one of those.
pub fn check_executable_comments(sql: &str) -> Result<(), String> {
    if !sql.contains("/*") {
        return Ok(());
    }
    // Only comments the server runs: one whose version is newer than the server's is a plain
    // comment to both.
    for t in super::lex::Lexer::new(sql.as_bytes(), super::lex::Mode::default()) {
        if t.kind != super::lex::Kind::ExecOpen {
            continue;
        }
        let open = &sql[t.start..t.end];
        let (mariadb_only, rest) = match open.strip_prefix("/*M!") {
            Some(r) => (true, r),
            None => (false, open.strip_prefix("/*!").unwrap_or(open)),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count()
            + sql[t.end..].bytes().take_while(u8::is_ascii_digit).count();
        if mariadb_only || !(digits == 0 || digits == 5) {
            let short: String = sql[t.start..].chars().take(40).collect();
            return Err(short);
        }
    }
    Ok(())
}

/// Returns the byte offset just past the statement's last token that is not a comment,
/// whitespace or `;`: where a clause added at the end of the statement goes.
pub fn statement_end(sql: &str) -> usize {
    skip_back(sql, &comments(sql), sql.len(), true)
}

/// Moves `end` back over whitespace and comments that MariaDB does not run (and `;` if
/// `semicolons`).
fn skip_back(sql: &str, comments: &[Comment], mut end: usize, semicolons: bool) -> usize {
    loop {
        let before =
            sql[..end].trim_end_matches(|c: char| c.is_whitespace() || semicolons && c == ';');
        let mut e = before.len();
        if let Some(c) = comments
            .iter()
            .find(|c| c.start < e && e <= c.end && !c.executable)
        {
            e = c.start;
        }
        if e == end {
            return end;
        }
        end = e;
    }
}

/// Returns where keywords `words` start when they stand, in order, just before `at`, with
/// only whitespace and comments MariaDB does not run around them; `None` otherwise.
pub fn keywords_before(
    sql: &str,
    comments: &[Comment],
    at: usize,
    words: &[&str],
) -> Option<usize> {
    let mut end = at;
    for w in words.iter().rev() {
        end = skip_back(sql, comments, end, false);
        let start = end.checked_sub(w.len())?;
        if !sql.get(start..end)?.eq_ignore_ascii_case(w) {
            return None;
        }
        let bounded = sql[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '`'));
        if !bounded {
            return None;
        }
        end = start;
    }
    Some(end)
}

/// `sql` with each `CONNECTION_ID()` replaced by `id` (the router's own connection id, which
/// the process list and `KILL` know), or `None` when it has none. A select item that is just
/// the call keeps its column name with an alias of the client's text.
pub fn connection_id(sql: &[u8], mode: &super::lex::Mode, id: u32) -> Option<Vec<u8>> {
    use super::lex::Kind;
    let toks = super::lex::significant(sql, mode);
    let punct = |i: usize, c: u8| {
        toks.get(i)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == c)
    };
    let mut out = Vec::with_capacity(sql.len());
    let mut from = 0;
    for (i, t) in toks.iter().enumerate() {
        if !(t.is_word(sql, "CONNECTION_ID") && punct(i + 1, b'(') && punct(i + 2, b')')) {
            continue;
        }
        let end = toks[i + 2].end;
        let item_start = i > 0 && (toks[i - 1].is_word(sql, "SELECT") || punct(i - 1, b','));
        let item_end = toks.get(i + 3).is_none_or(|n| {
            n.kind == Kind::Semicolon
                || n.is_word(sql, "FROM")
                || n.kind == Kind::Punct && sql[n.start] == b','
        });
        out.extend_from_slice(&sql[from..t.start]);
        out.extend_from_slice(id.to_string().as_bytes());
        if item_start && item_end {
            out.extend_from_slice(b" AS `");
            out.extend_from_slice(&sql[t.start..end]);
            out.push(b'`');
        }
        from = end;
    }
    if from == 0 {
        return None;
    }
    out.extend_from_slice(&sql[from..]);
    Some(out)
}

/// The table of an `INSERT`/`REPLACE … VALUES` that has no column list, and the byte offset
/// just past its name (where a column list goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertWithoutColumns {
    pub schema: Option<Vec<u8>>,
    pub table: Vec<u8>,
    pub at: usize,
}

/// The clauses of a single-table `UPDATE` or `DELETE`, as byte ranges of its text (see
/// [`write_clauses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteClauses {
    /// The statement up to its `WHERE`, `ORDER BY` or `LIMIT`: `DELETE … FROM t`,
    /// `UPDATE … t SET …`.
    pub head: (usize, usize),
    /// The table as written, with its alias: after `FROM` (`DELETE`) or `UPDATE` and its
    /// modifiers, up to `SET`, `WHERE`, `ORDER BY` or `LIMIT`.
    pub table: (usize, usize),
    /// The condition after `WHERE`.
    pub condition: Option<(usize, usize)>,
    /// The items after `ORDER BY`.
    pub order: Option<(usize, usize)>,
    /// Each `ORDER BY` item is a number (a column position).
    pub order_by_position: bool,
    /// The `LIMIT` count.
    pub limit: Option<u64>,
}

/// Reads a single-table `UPDATE [LOW_PRIORITY] [IGNORE] t SET … [WHERE …] [ORDER BY …]
/// [LIMIT n]` or `DELETE [LOW_PRIORITY] [QUICK] [IGNORE] FROM t [WHERE …] [ORDER BY …]
/// [LIMIT n]` (clauses at the top level only); `None` for another shape (a `LIMIT` that is
/// not a plain count, anything after it but `;`).
pub fn write_clauses(sql: &[u8]) -> Option<WriteClauses> {
    use super::lex::Kind;
    let toks = super::lex::significant(sql, &Default::default());
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let update = is(0, "UPDATE");
    if !update && !is(0, "DELETE") {
        return None;
    }
    let mut i = 1;
    while ["LOW_PRIORITY", "QUICK", "IGNORE"].iter().any(|w| is(i, w)) {
        i += 1;
    }
    if !update {
        if !is(i, "FROM") {
            return None;
        }
        i += 1;
    }
    let table_start = toks.get(i)?.start;
    // The top-level clause keywords, in order.
    let mut depth = 0i32;
    let (mut set, mut whr, mut order, mut limit) = (None, None, None, None);
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t.bytes(sql) {
            b"(" if t.kind == Kind::Punct => depth += 1,
            b")" if t.kind == Kind::Punct => depth -= 1,
            _ if depth != 0 => {}
            _ if update && set.is_none() && t.is_word(sql, "SET") => set = Some(j),
            _ if whr.is_none() && order.is_none() && limit.is_none() && t.is_word(sql, "WHERE") => {
                whr = Some(j)
            }
            _ if order.is_none()
                && limit.is_none()
                && t.is_word(sql, "ORDER")
                && is(j + 1, "BY") =>
            {
                order = Some(j)
            }
            _ if limit.is_none() && t.is_word(sql, "LIMIT") => limit = Some(j),
            _ => {}
        }
    }
    if update && set.is_none() {
        return None;
    }
    let end_of_text = toks
        .iter()
        .rev()
        .find(|t| t.kind != Kind::Semicolon)
        .map_or(sql.len(), |t| t.end);
    let start_of = |j: Option<usize>| j.and_then(|j| toks.get(j)).map(|t| t.start);
    let head_end = start_of(whr)
        .or(start_of(order))
        .or(start_of(limit))
        .unwrap_or(end_of_text);
    let table_end = start_of(set).unwrap_or(head_end);
    let clause = |from: Option<usize>, skip: usize, until: &[Option<usize>]| {
        let j = from?;
        let s = toks.get(j + skip)?.start;
        let e = until
            .iter()
            .find_map(|u| start_of(*u))
            .unwrap_or(end_of_text);
        (s <= e).then_some((s, e))
    };
    let condition = clause(whr, 1, &[order, limit]);
    let order_range = clause(order, 2, &[limit]);
    let count = match limit {
        Some(j) => {
            let c = toks.get(j + 1)?;
            let rest_ok = toks[j + 2..].iter().all(|t| t.kind == Kind::Semicolon);
            if c.kind != Kind::Number || !rest_ok {
                return None;
            }
            Some(
                std::str::from_utf8(c.bytes(sql))
                    .ok()?
                    .parse::<u64>()
                    .ok()?,
            )
        }
        None => None,
    };
    // `ORDER BY 2, x`: an item that is a number alone (with its direction).
    let order_by_position = order.is_some_and(|j| {
        let until = limit.unwrap_or(toks.len());
        let items = &toks[j + 2..until];
        let mut depth = 0i32;
        items
            .split(|t| {
                match t.bytes(sql) {
                    b"(" if t.kind == Kind::Punct => depth += 1,
                    b")" if t.kind == Kind::Punct => depth -= 1,
                    _ => {}
                }
                depth == 0 && t.kind == Kind::Punct && t.bytes(sql) == b","
            })
            .any(|item| {
                let item: Vec<&super::lex::Token> = item
                    .iter()
                    .filter(|t| !t.is_word(sql, "ASC") && !t.is_word(sql, "DESC"))
                    .collect();
                matches!(item.as_slice(), [t] if t.kind == Kind::Number)
            })
    });
    Some(WriteClauses {
        head: (0, head_end),
        table: (table_start, table_end),
        condition,
        order: order_range,
        order_by_position,
        limit: count,
    })
}

/// Finds `INSERT [LOW_PRIORITY | DELAYED | HIGH_PRIORITY] [IGNORE] [INTO] [schema.]table
/// VALUES|VALUE|SELECT|WITH …` (or `REPLACE …`) without a column list.
pub fn insert_without_columns(sql: &[u8], mode: &super::lex::Mode) -> Option<InsertWithoutColumns> {
    use super::lex::Kind;
    let toks = super::lex::significant(sql, mode);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !(is(0, "INSERT") || is(0, "REPLACE")) {
        return None;
    }
    let mut i = 1;
    for w in ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"] {
        if is(i, w) {
            i += 1;
        }
    }
    let first = toks.get(i).and_then(|t| t.ident(sql))?;
    let dotted = toks
        .get(i + 1)
        .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == b'.');
    let (schema, table, last) = if dotted {
        (
            Some(first),
            toks.get(i + 2).and_then(|t| t.ident(sql))?,
            i + 2,
        )
    } else {
        (None, first, i)
    };
    if !["VALUES", "VALUE", "SELECT", "WITH"]
        .iter()
        .any(|w| is(last + 1, w))
    {
        return None;
    }
    Some(InsertWithoutColumns {
        schema,
        table,
        at: toks[last].end,
    })
}

/// One table of a `LOCK TABLES` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockItem {
    pub schema: Option<String>,
    pub table: String,
    /// An alias, which the router does not carry to logical shards.
    pub alias: bool,
    /// The lock type as written (`READ LOCAL`, `WRITE`, …).
    pub mode: String,
}

/// The tables of `LOCK TABLE[S] t [[AS] a] lock_type, …`; `None` for another statement or a
/// list it cannot read (names that are not UTF-8 included: the router writes these names into
/// statements of its own, and never changes a client's bytes).
pub fn lock_tables(sql: &[u8], mode: &super::lex::Mode) -> Option<Vec<LockItem>> {
    use super::lex::Kind;
    let toks = super::lex::significant(sql, mode);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !(is(0, "LOCK") && (is(1, "TABLES") || is(1, "TABLE"))) {
        return None;
    }
    let mut items = Vec::new();
    let mut i = 2;
    loop {
        let name = |t: Option<&super::lex::Token>| String::from_utf8(t?.ident(sql)?).ok();
        let first = name(toks.get(i))?;
        let dotted = toks
            .get(i + 1)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == b'.');
        let (schema, table) = if dotted {
            i += 2;
            (Some(first), name(toks.get(i))?)
        } else {
            (None, first)
        };
        i += 1;
        let mut alias = false;
        if is(i, "AS") {
            i += 1;
        }
        if !(is(i, "READ") || is(i, "WRITE") || is(i, "LOW_PRIORITY")) {
            toks.get(i).and_then(|t| t.ident(sql))?;
            alias = true;
            i += 1;
        }
        let start = i;
        while i < toks.len()
            && !(toks[i].kind == Kind::Punct && sql[toks[i].start] == b',')
            && toks[i].kind != Kind::Semicolon
        {
            if toks[i].kind != Kind::Word {
                return None;
            }
            i += 1;
        }
        if start == i {
            return None;
        }
        // The lock type's words, each one MariaDB knows.
        let words: Option<Vec<String>> = toks[start..i]
            .iter()
            .map(|t| {
                t.upper_word(sql).filter(|w| {
                    ["READ", "LOCAL", "WRITE", "LOW_PRIORITY", "CONCURRENT"].contains(&w.as_str())
                })
            })
            .collect();
        let mode = words?.join(" ");
        items.push(LockItem {
            schema,
            table,
            alias,
            mode,
        });
        match toks.get(i) {
            Some(t) if t.kind == Kind::Punct => i += 1,
            _ => return Some(items),
        }
    }
}

/// For `SET STATEMENT var = value [, …] FOR statement`: the byte offset where `statement`
/// starts (after the `FOR` at the top level).
pub fn set_statement_body(sql: &[u8], mode: &super::lex::Mode) -> Option<usize> {
    use super::lex::Kind;
    let toks = super::lex::significant(sql, mode);
    if !(toks.first()?.is_word(sql, "SET") && toks.get(1)?.is_word(sql, "STATEMENT")) {
        return None;
    }
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(2) {
        if t.kind == Kind::Punct {
            match sql[t.start] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if depth == 0 && t.is_word(sql, "FOR") {
            return Some(toks.get(i + 1)?.start);
        }
    }
    None
}

/// Quotes an identifier with backticks.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_clauses_of_updates_and_deletes() {
        let sql = "UPDATE LOW_PRIORITY `s`.t AS a SET a.v = (SELECT 1 ORDER BY 1 LIMIT 1), w = 2 WHERE a.x IN (1, 2) ORDER BY LENGTH(a.n), 2 DESC LIMIT 5;";
        let c = write_clauses(sql.as_bytes()).expect("clauses");
        let at = |r: (usize, usize)| &sql[r.0..r.1];
        assert_eq!(
            at(c.head).trim(),
            "UPDATE LOW_PRIORITY `s`.t AS a SET a.v = (SELECT 1 ORDER BY 1 LIMIT 1), w = 2"
        );
        assert_eq!(at(c.table).trim(), "`s`.t AS a");
        assert_eq!(at(c.condition.expect("where")).trim(), "a.x IN (1, 2)");
        assert_eq!(at(c.order.expect("order")).trim(), "LENGTH(a.n), 2 DESC");
        assert!(c.order_by_position);
        assert_eq!(c.limit, Some(5));
        let sql = "DELETE QUICK FROM t ORDER BY x LIMIT 3";
        let c = write_clauses(sql.as_bytes()).expect("clauses");
        assert_eq!(&sql[c.head.0..c.head.1].trim(), &"DELETE QUICK FROM t");
        assert_eq!(c.condition, None);
        assert!(!c.order_by_position);
        assert_eq!(c.limit, Some(3));
        // Not a plain count, or something after it: no clauses.
        assert!(write_clauses(b"DELETE FROM t ORDER BY x LIMIT ?").is_none());
        assert!(write_clauses(b"DELETE FROM t ORDER BY x LIMIT 3 RETURNING x").is_none());
        assert!(write_clauses(b"DELETE t FROM t").is_none());
    }

    #[test]
    fn inserts_without_a_column_list_are_found() {
        let m = crate::sql::lex::Mode::default();
        let f = |sql: &str| insert_without_columns(sql.as_bytes(), &m);
        let t = f("INSERT INTO `customer` VALUES (1,'a'),(2,'b')").expect("found");
        assert_eq!((t.table.as_slice(), t.at), (&b"customer"[..], 22));
        let t = f("replace low_priority demo.t value (1)").expect("found");
        assert_eq!(t.schema.as_deref(), Some(&b"demo"[..]));
        assert!(f("INSERT INTO t (a) VALUES (1)").is_none());
        assert!(f("INSERT INTO t SET a = 1").is_none());
        assert!(f("SELECT 1").is_none());
    }

    #[test]
    fn lock_lists_are_read() {
        let m = crate::sql::lex::Mode::default();
        let l = lock_tables(
            b"LOCK TABLES `t` READ /*!32311 LOCAL */, demo.u AS x WRITE;",
            &m,
        )
        .expect("read");
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].table.as_str(), l[0].mode.as_str(), l[0].alias),
            ("t", "READ LOCAL", false)
        );
        assert_eq!(
            (l[1].schema.as_deref(), l[1].mode.as_str(), l[1].alias),
            (Some("demo"), "WRITE", true)
        );
        assert!(lock_tables(b"LOCK TABLES t READ NONSENSE", &m).is_none());
        assert!(lock_tables(b"LOCK TABLES `t\xff` WRITE", &m).is_none());
        assert!(lock_tables(b"LOCK TABLES", &m).is_none());
        assert!(lock_tables(b"SELECT 1", &m).is_none());
    }

    #[test]
    fn connection_id_is_the_routers() {
        let m = crate::sql::lex::Mode::default();
        let r = |sql: &str| {
            connection_id(sql.as_bytes(), &m, 42).map(|v| String::from_utf8(v).unwrap_or_default())
        };
        assert_eq!(
            r("SELECT CONNECTION_ID()").as_deref(),
            Some("SELECT 42 AS `CONNECTION_ID()`")
        );
        assert_eq!(
            r("select connection_id() , 1 from t where a = CONNECTION_ID ( )").as_deref(),
            Some("select 42 AS `connection_id()` , 1 from t where a = 42")
        );
        assert_eq!(r("SELECT 'CONNECTION_ID()'"), None);
    }

    #[test]
    fn offsets_count_characters() {
        let sql = "SELECT 'é'\nFROM t";
        let o = Offsets::new(sql);
        assert_eq!(o.byte(sql, Location::new(2, 6)), Some(sql.len() - 1));
        assert_eq!(o.byte(sql, Location::new(1, 10)), Some(10));
        assert_eq!(o.byte(sql, Location::new(0, 0)), None);
    }

    #[test]
    fn comments_are_found_outside_quotes() {
        let sql = "SELECT '--x', `#y`, \"/*z*/\" -- one\n# two\n/* three */ /*!40101 four*/--x";
        let cs = comments(sql);
        let texts: Vec<&str> = cs.iter().map(|c| &sql[c.start..c.end]).collect();
        assert_eq!(
            texts,
            vec!["-- one\n", "# two\n", "/* three */", "/*!40101 four*/"]
        );
        assert!(cs[3].executable && !cs[2].executable && cs[0].line);
        assert!(!comments("SELECT 1 /*!40101 */")[0].executable);
        assert_eq!(comments("SELECT 'it\\'s -- no'").len(), 0);
    }

    #[test]
    fn edits_never_land_in_comments() {
        let sql = "SELECT a FROM t -- tail";
        let mut e = Edits::default();
        e.insert(sql.len(), " GROUP BY a");
        assert_eq!(
            e.apply(sql).as_deref(),
            Ok("SELECT a FROM t -- tail\n GROUP BY a")
        );
        let sql = "SELECT a FROM t -- tail\nORDER BY a";
        let mut e = Edits::default();
        e.insert(sql.find('\n').unwrap_or(0), " GROUP BY a");
        assert_eq!(e.apply(sql), Err(RewriteError::Comment));
        let sql = "SELECT a FROM /*!40101 t */";
        let mut e = Edits::default();
        e.insert(14, "x.");
        assert_eq!(e.apply(sql), Err(RewriteError::Comment));
    }

    #[test]
    fn keywords_are_found_across_comments() {
        let sql = "SELECT a FROM -- x\n /* y */ t ORDER # z\n BY a";
        let cs = comments(sql);
        let t = sql.find(" t ").map(|i| i + 1).unwrap_or(0);
        assert_eq!(keywords_before(sql, &cs, t, &["FROM"]), sql.find("FROM"));
        let a = sql.rfind('a').unwrap_or(0);
        assert_eq!(
            keywords_before(sql, &cs, a, &["ORDER", "BY"]),
            sql.find("ORDER")
        );
        assert_eq!(keywords_before("SELECT xfrom t", &[], 13, &["FROM"]), None);
        let sql = "SELECT a /*!40101 FROM */ t";
        assert_eq!(keywords_before(sql, &comments(sql), 26, &["FROM"]), None);
    }

    #[test]
    fn statement_end_skips_trailing_comments() {
        assert_eq!(statement_end("SELECT 1 -- x"), 8);
        assert_eq!(statement_end("SELECT 1 /* a */ # b\n ;  "), 8);
        assert_eq!(statement_end("SELECT 1"), 8);
        assert_eq!(statement_end("SELECT 1 /*!40101 x */"), 22);
    }

    #[test]
    fn executable_comments_the_parser_misreads_are_refused() {
        assert!(check_executable_comments("SELECT 1 /*!40101 , 2 */").is_ok());
        assert!(check_executable_comments("SELECT 1 /*M!100100 , 2 */").is_err());
        assert!(check_executable_comments("SELECT 1 /*!100100 , 2 */").is_err());
        assert!(check_executable_comments("SELECT 1 /*M!100100 */").is_ok());
    }

    #[test]
    fn edits_apply_in_order() {
        let mut e = Edits::default();
        e.insert(5, "b.");
        e.replace(0, 1, "X");
        assert_eq!(e.apply("a c  d").as_deref(), Ok("X c  b.d"));
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
