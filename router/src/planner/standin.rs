//! MariaDB syntax the SQL parser does not know, planned with a stand-in of the same length.

use super::plan::{Plan, RouteKind, Targets};

use crate::error::SqlError;
use crate::sql::rewrite::Offsets;
use sqlparser::dialect::MySqlDialect;

/// MariaDB syntax the parser does not know, planned with a stand-in of the same length in its
/// place (so that every offset holds) and put back into what the backends run:
/// `LOCK IN SHARE MODE` ending a `SELECT` (stand-in `FOR SHARE`) and `WITH ROLLUP` after a
/// `GROUP BY` (stand-in a comment; only on one logical shard, or a keyspace that is not
/// sharded, where MariaDB computes the super-aggregate rows over all the rows), and the
/// `ORDER BY` of an `UPDATE` (stand-in a comment; the planner still sees its `LIMIT`), and
/// the modifiers `LOW_PRIORITY`, `IGNORE` of an `UPDATE` and `LOW_PRIORITY`, `QUICK`, `IGNORE`
/// of a `DELETE` (stand-ins comments; the parser would read `UPDATE IGNORE t` as table `IGNORE`
/// and `DELETE IGNORE FROM t` as a multi-table `DELETE` of a table `IGNORE`).
pub(super) struct StandIn {
    pub(super) stand_in_sql: String,
    /// `(stand-in, original)`, in statement order.
    pub(super) parts: Vec<(String, String)>,
    pub(super) rollup: bool,
}

/// The comment that stands in for `WITH ROLLUP`.
pub(super) const ROLLUP_STAND_IN: &str = "/*tsr_rlp*/";

/// The comment that stands in for an `UPDATE`'s `ORDER BY` clause.
pub(super) const ORDER_STAND_IN: &str = "/*tsr_ob*/";

/// The comments that stand in for the modifiers of `UPDATE` and `DELETE` (each no longer than
/// its word).
const MODIFIER_STAND_INS: &[(&str, &str)] = &[
    ("LOW_PRIORITY", "/*tsr_lowp*/"),
    ("IGNORE", "/*ti*/"),
    ("QUICK", "/*q*/"),
];

impl StandIn {
    pub(super) fn find(sql: &str) -> Option<StandIn> {
        use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
        // Each place its first letter (either case) is at, compared there.
        let has = |w: &[u8]| {
            let b = sql.as_bytes();
            memchr::memchr2_iter(w[0].to_ascii_lowercase(), w[0].to_ascii_uppercase(), b).any(|i| {
                b.get(i..i + w.len())
                    .is_some_and(|x| x.eq_ignore_ascii_case(w))
            })
        };
        let head = |w: &str| {
            sql.trim_start()
                .get(..w.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(w))
        };
        let update = head("update");
        let (share, rollup, order) = (has(b"share"), has(b"rollup"), update && has(b"order"));
        let modifiers =
            (update || head("delete")) && (has(b"ignore") || has(b"low_priority") || has(b"quick"));
        if !share && !rollup && !order && !modifiers
            || [ROLLUP_STAND_IN, ORDER_STAND_IN]
                .iter()
                .chain(MODIFIER_STAND_INS.iter().map(|(_, s)| s))
                .any(|s| sql.contains(s))
        {
            return None;
        }
        let tokens = Tokenizer::new(&MySqlDialect {}, sql)
            .tokenize_with_location()
            .ok()?;
        let words: Vec<&TokenWithSpan> = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        let is = |t: &TokenWithSpan, w: &str| matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
        let offsets = Offsets::new(sql);
        // Byte ranges to replace, with their stand-in words.
        let mut found: Vec<(usize, usize, &str)> = Vec::new();
        for (i, pair) in words.windows(2).enumerate() {
            if is(pair[0], "WITH") && is(pair[1], "ROLLUP") {
                let s = offsets.byte(sql, words[i].span.start)?;
                let e = offsets.byte(sql, words[i + 1].span.end)?;
                found.push((s, e, ROLLUP_STAND_IN));
            }
        }
        let rollup = !found.is_empty();
        // UPDATE … ORDER BY …: the clause up to LIMIT (or the end), outside parentheses.
        if words.first().is_some_and(|w| is(w, "UPDATE")) {
            let mut depth = 0usize;
            let mut clause: Option<(usize, usize)> = None;
            for (i, w) in words.iter().enumerate() {
                let top = depth == 0;
                match &w.token {
                    Token::LParen => depth += 1,
                    Token::RParen => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if !top {
                    // Inside parentheses (the closing one included): part of the clause.
                } else if clause.is_none() {
                    if is(w, "ORDER") && words.get(i + 1).is_some_and(|n| is(n, "BY")) {
                        clause = Some((i, i + 1));
                    }
                    continue;
                } else if is(w, "LIMIT") || w.token == Token::SemiColon {
                    break;
                }
                if let Some((s, e)) = clause {
                    clause = Some((s, e.max(i)));
                }
            }
            if let Some((first, last)) = clause {
                let s = offsets.byte(sql, words[first].span.start)?;
                let e = offsets.byte(sql, words[last].span.end)?;
                found.push((s, e, ORDER_STAND_IN));
            }
        }
        // The modifiers after `UPDATE` (`LOW_PRIORITY`, `IGNORE`) and `DELETE` (`LOW_PRIORITY`,
        // `QUICK`, `IGNORE`), which the parser does not know there.
        if let Some(verb) = words.first().filter(|w| is(w, "UPDATE") || is(w, "DELETE")) {
            let known: &[&str] = if is(verb, "UPDATE") {
                &["LOW_PRIORITY", "IGNORE"]
            } else {
                &["LOW_PRIORITY", "QUICK", "IGNORE"]
            };
            for w in words.iter().skip(1) {
                let Some((_, stand_in)) = MODIFIER_STAND_INS
                    .iter()
                    .find(|(m, _)| known.contains(m) && is(w, m))
                else {
                    break;
                };
                let s = offsets.byte(sql, w.span.start)?;
                let e = offsets.byte(sql, w.span.end)?;
                found.push((s, e, stand_in));
            }
        }
        let mut end = words.len();
        while end > 0 && words[end - 1].token == Token::SemiColon {
            end -= 1;
        }
        if let Some(tail) = end.checked_sub(4).and_then(|s| words.get(s..end)) {
            if is(tail[0], "LOCK")
                && is(tail[1], "IN")
                && is(tail[2], "SHARE")
                && is(tail[3], "MODE")
            {
                let s = offsets.byte(sql, tail[0].span.start)?;
                let e = offsets.byte(sql, tail[3].span.end)?;
                found.push((s, e, "FOR SHARE"));
            }
        }
        if found.is_empty() {
            return None;
        }
        found.sort_by_key(|f| f.0);
        let mut stand_in_sql = String::with_capacity(sql.len());
        let mut parts = Vec::with_capacity(found.len());
        let mut at = 0;
        for (s, e, word) in found {
            let original = sql.get(s..e)?.to_string();
            if word.len() > original.len() || s < at {
                return None;
            }
            let stand_in = format!("{word:<width$}", width = original.len());
            stand_in_sql.push_str(sql.get(at..s)?);
            stand_in_sql.push_str(&stand_in);
            parts.push((stand_in, original));
            at = e;
        }
        stand_in_sql.push_str(sql.get(at..)?);
        Some(StandIn {
            stand_in_sql,
            parts,
            rollup,
        })
    }

    /// Puts the original words back into `text` (last first, each at its stand-in's last
    /// place, so equal stand-ins land in order).
    pub(super) fn restore(&self, text: &mut String) -> Result<(), SqlError> {
        let mut limit = text.len();
        for (stand_in, original) in self.parts.iter().rev() {
            let at = text[..limit].rfind(stand_in.as_str()).ok_or_else(|| {
                SqlError::router("cannot put back LOCK IN SHARE MODE, WITH ROLLUP or ORDER BY")
            })?;
            text.replace_range(at..at + stand_in.len(), original);
            limit = at;
        }
        Ok(())
    }

    pub(super) fn restore_plan(&self, plan: Plan) -> Result<Plan, SqlError> {
        // An `UPDATE`/`DELETE … LIMIT` over several logical shards: its template whole.
        match plan {
            Plan::Local(super::plan::Local::OrderedWrite(mut w)) => {
                self.restore(&mut w.template)?;
                return Ok(Plan::Local(super::plan::Local::OrderedWrite(w)));
            }
            Plan::Local(super::plan::Local::LimitedWrite(mut w)) => {
                self.restore(&mut w.template)?;
                return Ok(Plan::Local(super::plan::Local::LimitedWrite(w)));
            }
            _ => {}
        }
        let Plan::Exec(mut e) = plan else {
            return Err(SqlError::unsupported(
                "LOCK IN SHARE MODE, WITH ROLLUP or UPDATE ... ORDER BY in a statement the router runs itself (a cross-shard join, an UPDATE that moves rows)",
            ));
        };
        if self.rollup
            && (e.merge.is_some()
                || e.limit.is_some()
                || !matches!(
                    e.route,
                    RouteKind::One | RouteKind::Reference | RouteKind::Any
                ))
        {
            return Err(SqlError::unsupported(
                "GROUP BY ... WITH ROLLUP across logical shards",
            ));
        }
        match &mut e.targets {
            Targets::Ls { template, .. } => self.restore(template)?,
            Targets::PerLs(v) => {
                for (_, s) in v {
                    self.restore(s)?;
                }
            }
            Targets::Reference { sql } | Targets::Any { sql } => self.restore(sql)?,
            Targets::Verbatim { .. } => {}
        }
        Ok(Plan::Exec(e))
    }
}
