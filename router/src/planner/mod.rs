//! The planner: parses one statement (MySQL dialect) and decides where it runs.
//!
//! - [`plan`] is the entry point; [`Plan`] says what to do.
//! - Table names are qualified with the schema of each logical shard by editing the original
//!   text at the parser's token spans ([`rewrite`]), so literals reach MariaDB byte for byte.
//! - A shape the router cannot answer correctly is refused with error 1235 naming it.

pub mod cache;
mod crossjoin;
pub mod merge;
pub mod plan;

pub use plan::{
    Conflict, CrossJoin, Exec, KeyAt, KeyLiteral, Local, MoveRows, Plan, RouteKind, StmtKind,
    Targets,
};

use crate::error::SqlError;
use crate::sql::rewrite::{self, quote_ident, Edits, Offsets};
use crate::sql::LS_PLACEHOLDER;
use crate::topology::{KeyspaceRouting, RoutingTable, TableRouting};
use crate::vindex::{self, KeyValue};
use sqlparser::ast::Spanned;
use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, visit_relations, BinaryOperator, Expr,
    FunctionArguments, Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName,
    ObjectNamePart, ObjectType, Query, SetExpr, Statement, TableFactor, TableObject, UnaryOperator,
    Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use tessera_topo::{KeyType, VindexKind};

const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

/// Plans one SQL statement for a session whose current keyspace is `keyspace`.
///
/// # Errors
/// 1064 for SQL that does not parse, 1046/1049/1146 for unknown names, 1235 for shapes the
/// router does not support, 1105 for statements it cannot route.
pub fn plan(sql: &str, keyspace: Option<&str>, rt: &RoutingTable) -> Result<Plan, SqlError> {
    plan_session(sql, keyspace, 0, rt)
}

/// Plans one statement for a session whose `LAST_INSERT_ID()` is `last_insert_id`.
///
/// # Errors
/// As [`plan`].
pub fn plan_session(
    sql: &str,
    keyspace: Option<&str>,
    last_insert_id: u64,
    rt: &RoutingTable,
) -> Result<Plan, SqlError> {
    if sql.contains("__tessera_") {
        return Err(SqlError::router(
            "identifiers starting with __tessera_ are reserved by Tessera",
        ));
    }
    plan_internal(sql, keyspace, last_insert_id, rt)
}

/// Plans a statement the router wrote itself (it may use `__tessera_` names).
///
/// # Errors
/// Like [`plan_session`].
pub fn plan_internal(
    sql: &str,
    keyspace: Option<&str>,
    last_insert_id: u64,
    rt: &RoutingTable,
) -> Result<Plan, SqlError> {
    if let Some(s) = StandIn::find(sql) {
        let plan = plan_parsed(&s.stand_in_sql, keyspace, last_insert_id, rt)?;
        return s.restore_plan(plan);
    }
    plan_parsed(sql, keyspace, last_insert_id, rt)
}

fn plan_parsed(
    sql: &str,
    keyspace: Option<&str>,
    last_insert_id: u64,
    rt: &RoutingTable,
) -> Result<Plan, SqlError> {
    rewrite::check_executable_comments(sql).map_err(|c| {
        SqlError::unsupported(format!(
            "the executable comment {c}… (write it as /*!NNNNN … */ with a five-digit version, or without the comment)"
        ))
    })?;
    let stmt = parse_one(sql)?;
    refuse_last_statement_state(&stmt)?;
    let p = Planner {
        sql,
        offsets: Offsets::new(sql),
        session_ks: keyspace,
        rt,
        last_insert_id,
    };
    p.statement(stmt)
}

/// MariaDB syntax the parser does not know, planned with a stand-in of the same length in its
/// place (so that every offset holds) and put back into what the backends run:
/// `LOCK IN SHARE MODE` ending a `SELECT` (stand-in `FOR SHARE`) and `WITH ROLLUP` after a
/// `GROUP BY` (stand-in a comment; only on one logical shard, or a keyspace that is not
/// sharded, where MariaDB computes the super-aggregate rows over all the rows), and the
/// `ORDER BY` of an `UPDATE` (stand-in a comment; the planner still sees its `LIMIT`, which
/// keeps such an `UPDATE` to one logical shard).
struct StandIn {
    stand_in_sql: String,
    /// `(stand-in, original)`, in statement order.
    parts: Vec<(String, String)>,
    rollup: bool,
}

/// The comment that stands in for `WITH ROLLUP`.
const ROLLUP_STAND_IN: &str = "/*tsr_rlp*/";
/// The comment that stands in for an `UPDATE`'s `ORDER BY` clause.
const ORDER_STAND_IN: &str = "/*tsr_ob*/";

impl StandIn {
    fn find(sql: &str) -> Option<StandIn> {
        use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
        let has = |w: &[u8]| {
            sql.as_bytes()
                .windows(w.len())
                .any(|x| x.eq_ignore_ascii_case(w))
        };
        let update = sql
            .trim_start()
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("update"));
        let (share, rollup, order) = (has(b"share"), has(b"rollup"), update && has(b"order"));
        if !share && !rollup && !order || sql.contains("tsr_rlp") || sql.contains("tsr_ob") {
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
    fn restore(&self, text: &mut String) -> Result<(), SqlError> {
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

    fn restore_plan(&self, plan: Plan) -> Result<Plan, SqlError> {
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
        }
        Ok(Plan::Exec(e))
    }
}

/// Where to describe a statement being prepared: the SQL (tables qualified with the first
/// logical shard's schema, markers kept) and the keyspace whose first physical shard should
/// prepare it; `None` for statements without a result set that the router handles itself.
///
/// # Errors
/// The same errors as [`plan`] for names and syntax.
pub fn describe_target(
    sql: &str,
    keyspace: Option<&str>,
    rt: &RoutingTable,
) -> Result<Option<(String, Option<String>)>, SqlError> {
    if let Some(s) = StandIn::find(sql) {
        return match describe_target(&s.stand_in_sql, keyspace, rt)? {
            Some((mut text, ks)) => {
                s.restore(&mut text)?;
                Ok(Some((text, ks)))
            }
            None => Ok(None),
        };
    }
    let stmt = parse_one(sql)?;
    let p = Planner {
        sql,
        offsets: Offsets::new(sql),
        session_ks: keyspace,
        rt,
        last_insert_id: 0,
    };
    let ctes: HashSet<String> = match &stmt {
        Statement::Query(q) => q
            .with
            .as_ref()
            .map(|w| {
                w.cte_tables
                    .iter()
                    .map(|c| c.alias.name.value.clone())
                    .collect()
            })
            .unwrap_or_default(),
        _ => HashSet::new(),
    };
    match &stmt {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_) => {}
        _ => return Ok(None),
    }
    let r = p.resolve_skipping(&stmt, &ctes)?;
    let Some(ks) = r.ks else {
        return Ok(Some((sql.to_string(), None)));
    };
    let q = p.qualified(&r, Edits::default())?;
    Ok(Some((ks.fill(&q, 0).into_owned(), Some(ks.name.clone()))))
}

/// Parses exactly one statement.
fn parse_one(sql: &str) -> Result<Statement, SqlError> {
    let mut stmts = Parser::parse_sql(&MySqlDialect {}, sql).map_err(SqlError::parse)?;
    if stmts.len() > 1 {
        return Err(SqlError::unsupported("several statements in one query"));
    }
    stmts
        .pop()
        .ok_or_else(|| SqlError::new(1065, "42000", "Query was empty"))
}

/// Refuses what reads the state a backend connection keeps of its last statement —
/// `ROW_COUNT()`, `FOUND_ROWS()`, `@@warning_count`, `@@error_count`: the router runs a
/// session's statements on pooled connections, so the connection answering need not be the
/// one that ran the session's last statement, and the answer would be another session's.
fn refuse_last_statement_state(stmt: &Statement) -> Result<(), SqlError> {
    let mut found: Option<&'static str> = None;
    let _ = visit_expressions(stmt, |e| {
        let what = match e {
            Expr::Function(f) => {
                let n = f.name.to_string();
                if n.eq_ignore_ascii_case("ROW_COUNT") {
                    Some("ROW_COUNT()")
                } else if n.eq_ignore_ascii_case("FOUND_ROWS") {
                    Some("FOUND_ROWS()")
                } else {
                    None
                }
            }
            Expr::Identifier(i) => last_statement_variable(&i.value),
            Expr::CompoundIdentifier(parts) => {
                let joined = parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                last_statement_variable(&joined)
            }
            _ => None,
        };
        match what {
            Some(w) => {
                found = Some(w);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    });
    match found {
        Some(w) => Err(SqlError::unsupported(format!(
            "{w}: it reads the last statement of a backend connection, and the router runs a \
             session's statements on pooled connections"
        ))),
        None => Ok(()),
    }
}

/// `@@warning_count` or `@@error_count` (also `@@session.` and `@@local.` ones).
fn last_statement_variable(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("@@")?;
    let n = n
        .strip_prefix("session.")
        .or_else(|| n.strip_prefix("local."))
        .unwrap_or(n);
    match n {
        "warning_count" => Some("@@warning_count"),
        "error_count" => Some("@@error_count"),
        _ => None,
    }
}

/// Splits a table name into its optional schema and the table.
fn split_name(name: &ObjectName) -> Result<(Option<&Ident>, &Ident), SqlError> {
    let parts = ident_parts(name).ok_or_else(|| SqlError::unsupported("computed table names"))?;
    match parts.as_slice() {
        [t] => Ok((None, *t)),
        [d, t] => Ok((Some(*d), *t)),
        _ => Err(SqlError::unsupported(
            "table names with more than two parts",
        )),
    }
}

struct Planner<'a> {
    sql: &'a str,
    offsets: Offsets,
    session_ks: Option<&'a str>,
    rt: &'a RoutingTable,
    last_insert_id: u64,
}

/// A table the statement names, resolved against the vschema.
#[derive(Debug, Clone)]
struct TableRef {
    name: String,
    routing: TableRouting,
    /// Byte range to replace with `schema.` (the qualifier, or an empty range before the name).
    qualify: (usize, usize),
}

/// Every table of a statement, all in one keyspace.
struct Resolved<'a> {
    ks: Option<&'a KeyspaceRouting>,
    system: bool,
    tables: Vec<TableRef>,
    /// `keyspace.table.column` references: the byte range of `keyspace` and the table.
    column_quals: Vec<(usize, usize, String)>,
}

impl Resolved<'_> {
    fn sharded(&self) -> impl Iterator<Item = &TableRef> {
        self.tables
            .iter()
            .filter(|t| matches!(t.routing, TableRouting::Sharded { .. }))
    }
}

fn ident_parts(name: &ObjectName) -> Option<Vec<&Ident>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

pub(crate) fn is_aggregate(name: &str) -> bool {
    matches!(
        name.to_ascii_uppercase().as_str(),
        "COUNT"
            | "SUM"
            | "MIN"
            | "MAX"
            | "AVG"
            | "GROUP_CONCAT"
            | "STD"
            | "STDDEV"
            | "STDDEV_POP"
            | "STDDEV_SAMP"
            | "VARIANCE"
            | "VAR_POP"
            | "VAR_SAMP"
            | "BIT_AND"
            | "BIT_OR"
            | "BIT_XOR"
            | "JSON_ARRAYAGG"
            | "JSON_OBJECTAGG"
    )
}

/// A plain literal as written.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Int(i128),
    /// A number with a fraction or exponent, as written.
    Num(String),
    Str(String),
}

/// Returns a plain literal, or `None` for anything else (NULL, expressions, parameters).
fn lit(e: &Expr) -> Option<Lit> {
    match e {
        Expr::Value(v) => lit_of_value(&v.value),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match lit(expr)? {
            Lit::Int(i) => Some(Lit::Int(-i)),
            Lit::Num(n) => Some(Lit::Num(format!("-{n}"))),
            Lit::Str(_) => None,
        },
        Expr::Nested(inner) => lit(inner),
        _ => None,
    }
}

/// A number or quoted string as a plain literal.
fn lit_of_value(v: &Value) -> Option<Lit> {
    match v {
        Value::Number(n, _) => Some(
            n.parse::<i128>()
                .map_or_else(|_| Lit::Num(n.clone()), Lit::Int),
        ),
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(Lit::Str(s.clone())),
        _ => None,
    }
}

/// The logical shard of one key value.
fn shard_of(v: VindexKind, kv: &KeyValue, count: u32) -> Option<u32> {
    vindex::keyspace_id(v, kv)
        .ok()
        .map(|id| vindex::logical_shard(id, count))
}

/// Converts a string to a number as MySQL does when comparing it with a number: leading
/// spaces skipped, the longest numeric prefix read (none: 0).
fn mysql_str_to_f64(s: &str) -> f64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r']);
    let b = t.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && b.get(digits_start) == Some(&b'.')) {
        return 0.0;
    }
    let mut num_end = end;
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        let ds = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > ds {
            num_end = e;
        }
    }
    t[..num_end].parse().unwrap_or(0.0)
}

/// An integral number MySQL would compare equal to a key, if there is exactly one.
fn exact_int(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i128)
}

/// Returns the shard-key value a literal stands for when compared with (or stored in) a key
/// column of `ty`, or `None` when no single value is meant (then the statement scatters).
fn key_value(l: &Lit, ty: KeyType, storing: bool) -> Option<KeyValue> {
    match (ty, l) {
        (KeyType::Integer, Lit::Int(i)) => Some(KeyValue::Int(*i)),
        (KeyType::Integer, Lit::Num(n)) => exact_int(n.parse::<f64>().ok()?).map(KeyValue::Int),
        // Stored into an integer column, an integer string is taken exactly (beyond 2^53 too).
        (KeyType::Integer, Lit::Str(s)) if storing && s.trim().parse::<i128>().is_ok() => {
            s.trim().parse::<i128>().ok().map(KeyValue::Int)
        }
        (KeyType::Integer, Lit::Str(s)) => exact_int(mysql_str_to_f64(s)).map(KeyValue::Int),
        // Trailing spaces do not count in PAD SPACE comparisons.
        (KeyType::String, Lit::Str(s)) => {
            Some(KeyValue::Bytes(s.trim_end_matches(' ').as_bytes().to_vec()))
        }
        // A number compared with a string column compares as a number: '042' = 42.
        (KeyType::String, Lit::Int(i)) if storing => {
            Some(KeyValue::Bytes(i.to_string().into_bytes()))
        }
        (KeyType::String, Lit::Num(n)) if storing => Some(KeyValue::Bytes(n.clone().into_bytes())),
        (KeyType::String, _) => None,
    }
}

/// Returns the logical shard that one literal token (a number or a quoted string) routes a
/// key of `ty` to, as the planner would for `key = literal`; `None` when it names no single
/// value or is not one such token.
pub(crate) fn literal_ls(text: &str, vindex: VindexKind, ty: KeyType, count: u32) -> Option<u32> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let l = if !text.is_empty() && text.len() < 30 && text.bytes().all(|b| b.is_ascii_digit()) {
        // A plain decimal integer, without tokenizing it.
        Lit::Int(text.parse().ok()?)
    } else {
        let tokens = Tokenizer::new(&MySqlDialect {}, text).tokenize().ok()?;
        let value = match tokens.as_slice() {
            [Token::Number(n, long)] => Value::Number(n.clone(), *long),
            [Token::SingleQuotedString(s)] => Value::SingleQuotedString(s.clone()),
            [Token::DoubleQuotedString(s)] => Value::DoubleQuotedString(s.clone()),
            _ => return None,
        };
        lit_of_value(&value)?
    };
    shard_of(vindex, &key_value(&l, ty, false)?, count)
}

/// Returns the byte ranges of a plain `SELECT [modifiers] item, … [FROM …]` statement's
/// items as written, or `None` for any other statement.
fn select_item_ranges(sql: &str) -> Option<Vec<(usize, usize)>> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    let mut it = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .peekable();
    match &it.next()?.token {
        Token::Word(w) if w.keyword == Keyword::SELECT => {}
        _ => return None,
    }
    while let Some(t) = it.peek() {
        let Token::Word(w) = &t.token else { break };
        let modifier = matches!(
            w.keyword,
            Keyword::ALL
                | Keyword::DISTINCT
                | Keyword::DISTINCTROW
                | Keyword::HIGH_PRIORITY
                | Keyword::STRAIGHT_JOIN
                | Keyword::SQL_SMALL_RESULT
                | Keyword::SQL_BIG_RESULT
                | Keyword::SQL_BUFFER_RESULT
                | Keyword::SQL_NO_CACHE
                | Keyword::SQL_CALC_FOUND_ROWS
        );
        if !modifier {
            break;
        }
        it.next();
    }
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<(usize, usize)> = None;
    for t in it {
        match &t.token {
            Token::Comma if depth == 0 => {
                items.push(current.take()?);
                continue;
            }
            Token::SemiColon => break,
            Token::Word(w)
                if depth == 0
                    && matches!(
                        w.keyword,
                        Keyword::FROM
                            | Keyword::INTO
                            | Keyword::WHERE
                            | Keyword::GROUP
                            | Keyword::HAVING
                            | Keyword::ORDER
                            | Keyword::LIMIT
                            | Keyword::UNION
                            | Keyword::FOR
                            | Keyword::LOCK
                            | Keyword::WINDOW
                    ) =>
            {
                break
            }
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.checked_sub(1)?,
            _ => {}
        }
        let (s, e) = offsets.range(sql, t.span)?;
        current = Some(match current {
            Some((cs, _)) => (cs, e),
            None => (s, e),
        });
    }
    items.push(current?);
    Some(items)
}

/// Returns a literal's value for routing a key of `ty`.
fn literal_for(e: &Expr, ty: KeyType) -> Option<KeyValue> {
    key_value(&lit(e)?, ty, false)
}

pub(crate) fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Returns the logical shards that rows matching `e` can live in, when the shard key decides
/// it: `key = literal`, `key IN (literals)`, `AND` (intersection of what its sides decide),
/// `OR` (union, when both sides decide). `None` when the shard key does not decide.
fn key_set(
    e: &Expr,
    key: &dyn Fn(&Expr) -> Option<(VindexKind, KeyType)>,
    count: u32,
) -> Option<BTreeSet<u32>> {
    let of = |v: VindexKind, vals: &[KeyValue]| -> Option<BTreeSet<u32>> {
        vals.iter().map(|x| shard_of(v, x, count)).collect()
    };
    match e {
        Expr::Nested(inner) => key_set(inner, key, count),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (k, other) = match (key(left), key(right)) {
                (Some(k), _) => (k, right),
                (None, Some(k)) => (k, left),
                (None, None) => return None,
            };
            of(k.0, &[literal_for(other, k.1)?])
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let (v, ty) = key(expr)?;
            let vals: Vec<KeyValue> = list
                .iter()
                .map(|x| literal_for(x, ty))
                .collect::<Option<Vec<_>>>()?;
            of(v, &vals)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => match (key_set(left, key, count), key_set(right, key, count)) {
            (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut a = key_set(left, key, count)?;
            a.extend(key_set(right, key, count)?);
            Some(a)
        }
        _ => None,
    }
}

/// A column reference: optional qualifier (table or alias) and column name.
fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Identifier(i) => Some((None, i.value.clone())),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let n = parts.len();
            Some((Some(parts[n - 2].value.clone()), parts[n - 1].value.clone()))
        }
        Expr::Nested(inner) => column_ref(inner),
        _ => None,
    }
}

fn limit_number(e: &Expr) -> Option<u64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

impl<'a> Planner<'a> {
    fn statement(&self, stmt: Statement) -> Result<Plan, SqlError> {
        match &stmt {
            Statement::Query(q) => self.query(&stmt, q),
            Statement::Insert(_) => self.insert(&stmt),
            Statement::Update(_) | Statement::Delete(_) => self.update_delete(&stmt),
            Statement::CreateTable(_)
            | Statement::AlterTable(_)
            | Statement::CreateIndex(_)
            | Statement::Truncate(_) => self.ddl(&stmt),
            Statement::Drop {
                object_type,
                names,
                table,
                ..
            } => self.drop(&stmt, *object_type, names, table.as_ref()),
            Statement::Use(u) => {
                use sqlparser::ast::Use;
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => n,
                    _ => return Err(SqlError::unsupported("this form of USE")),
                };
                let parts =
                    ident_parts(name).ok_or_else(|| SqlError::parse("bad database name"))?;
                let Some(last) = parts.last() else {
                    return Err(SqlError::parse("bad database name"));
                };
                Ok(Plan::Local(Local::Use(last.value.clone())))
            }
            Statement::StartTransaction { .. } => Ok(Plan::Local(Local::Begin)),
            Statement::Commit { chain: false, .. } => Ok(Plan::Local(Local::Commit)),
            Statement::Rollback {
                savepoint: None,
                chain: false,
                ..
            } => Ok(Plan::Local(Local::Rollback)),
            Statement::Set(set) => self.set(set),
            Statement::ShowDatabases { .. } | Statement::ShowSchemas { .. } => {
                Ok(Plan::Local(Local::ShowDatabases))
            }
            Statement::ShowTables {
                full, show_options, ..
            } => {
                let ks = match show_options
                    .show_in
                    .as_ref()
                    .and_then(|i| i.parent_name.as_ref())
                {
                    Some(n) => ident_parts(n)
                        .and_then(|p| p.last().map(|i| i.value.clone()))
                        .ok_or_else(|| SqlError::parse("bad database name"))?,
                    None => self
                        .session_ks
                        .ok_or_else(SqlError::no_database)?
                        .to_string(),
                };
                if show_options.filter_position.is_some() {
                    return Err(SqlError::unsupported("SHOW TABLES with LIKE or WHERE"));
                }
                if self.rt.keyspace(&ks).is_none() {
                    return Err(SqlError::unknown_database(&ks));
                }
                Ok(Plan::Local(Local::ShowTables {
                    keyspace: ks,
                    full: *full,
                }))
            }
            Statement::ShowCreate { obj_name, .. } => self.show_on_table(obj_name),
            Statement::ExplainTable { table_name, .. } => self.show_on_table(table_name),
            Statement::Explain {
                statement,
                analyze: false,
                ..
            } => {
                // MariaDB's EXPLAIN of the statement on the first logical shard it targets. The
                // inner statement's spans point into this text, so its rewrite keeps `EXPLAIN`.
                let inner = self.statement((**statement).clone())?;
                let Plan::Exec(mut e) = inner else {
                    return Err(SqlError::unsupported("EXPLAIN of this statement"));
                };
                match &mut e.targets {
                    Targets::Ls { ls, .. } => ls.truncate(1),
                    Targets::PerLs(_) => {
                        return Err(SqlError::unsupported(
                            "EXPLAIN of a multi-row INSERT over several shards",
                        ))
                    }
                    Targets::Reference { .. } => {}
                    Targets::Any { sql } => {
                        if !sql.trim_start().to_ascii_uppercase().starts_with("EXPLAIN") {
                            *sql = format!("EXPLAIN {sql}");
                        }
                    }
                }
                e.kind = StmtKind::Read;
                e.merge = None;
                e.limit = None;
                e.unionable = false;
                Ok(Plan::Exec(e))
            }
            Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_) => Ok(Plan::Exec(Box::new(Exec {
                keyspace: None,
                kind: StmtKind::Read,
                route: RouteKind::Any,
                targets: Targets::Any {
                    sql: self.sql.to_string(),
                },
                limit: None,
                unionable: false,
                merge: None,
                key_at: None,
                aliased_items: false,
                conflict: None,
            }))),
            Statement::ShowColumns { .. } => {
                let r = self.resolve(&stmt)?;
                self.read_first_shard(r)
            }
            Statement::CreateDatabase { .. } | Statement::CreateSchema { .. } => {
                Err(SqlError::unsupported(
                    "CREATE DATABASE (create keyspaces with `tessera vschema apply`)",
                ))
            }
            other => {
                let text = other.to_string();
                let head: String = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(SqlError::unsupported(format!("the statement {head}")))
            }
        }
    }

    fn set(&self, set: &sqlparser::ast::Set) -> Result<Plan, SqlError> {
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

    /// Resolves every relation of `stmt` to one keyspace.
    fn resolve<V: sqlparser::ast::Visit>(&self, node: &V) -> Result<Resolved<'a>, SqlError> {
        self.resolve_skipping(node, &HashSet::new())
    }

    fn resolve_skipping<V: sqlparser::ast::Visit>(
        &self,
        node: &V,
        ctes: &HashSet<String>,
    ) -> Result<Resolved<'a>, SqlError> {
        let mut names: Vec<ObjectName> = Vec::new();
        let _ = visit_relations(node, |n| {
            names.push(n.clone());
            ControlFlow::<()>::Continue(())
        });
        let mut ks: Option<&'a KeyspaceRouting> = None;
        let mut system = false;
        let mut tables = Vec::new();
        for name in names {
            let (db, table) = split_name(&name)?;
            if db.is_none() && ctes.contains(&table.value) {
                continue;
            }
            if let Some(d) = db {
                if SYSTEM_SCHEMAS.contains(&d.value.to_ascii_lowercase().as_str()) {
                    system = true;
                    continue;
                }
            }
            let k = self.keyspace_of(db)?;
            if let Some(prev) = ks {
                if prev.name != k.name {
                    return Err(SqlError::unsupported(format!(
                        "statements across keyspaces ({} and {})",
                        prev.name, k.name
                    )));
                }
            }
            ks = Some(k);
            let routing = k
                .table(&table.value)
                .ok_or_else(|| SqlError::unknown_table(&k.name, &table.value))?;
            let tspan = table.span;
            let start = match db {
                Some(d) => self.offsets.byte(self.sql, d.span.start),
                None => self.offsets.byte(self.sql, tspan.start),
            };
            let end = self.offsets.byte(self.sql, tspan.start);
            let (Some(start), Some(end)) = (start, end) else {
                return Err(SqlError::router(format!(
                    "cannot locate table {} in the statement",
                    table.value
                )));
            };
            tables.push(TableRef {
                name: table.value.clone(),
                routing,
                qualify: (start, end),
            });
        }
        if system && ks.is_some() {
            return Err(SqlError::unsupported(
                "joining system schemas with keyspace tables",
            ));
        }
        // Columns written `keyspace.table.column` name the keyspace, which is not a backend
        // schema: their first part is rewritten like the table's qualifier.
        let mut column_quals = Vec::new();
        if let Some(k) = ks {
            let _ = visit_expressions(node, |e| {
                if let Expr::CompoundIdentifier(parts) = e {
                    if parts.len() == 3 && parts[0].value == k.name {
                        if let (Some(s), Some(en)) = (
                            self.offsets.byte(self.sql, parts[0].span.start),
                            self.offsets.byte(self.sql, parts[1].span.start),
                        ) {
                            column_quals.push((s, en, parts[1].value.clone()));
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        Ok(Resolved {
            ks,
            system,
            tables,
            column_quals,
        })
    }

    /// Returns the keyspace a table name's schema part names (the session's when absent).
    fn keyspace_of(&self, db: Option<&Ident>) -> Result<&'a KeyspaceRouting, SqlError> {
        let ks_name = match db {
            Some(d) => d.value.as_str(),
            None => self.session_ks.ok_or_else(SqlError::no_database)?,
        };
        self.rt
            .keyspace(ks_name)
            .ok_or_else(|| SqlError::unknown_database(ks_name))
    }

    /// Qualifies every resolved table: sharded ones with the placeholder, reference ones with
    /// the reference schema, unsharded ones with the keyspace's schema.
    fn qualified(&self, r: &Resolved<'_>, extra: Edits) -> Result<String, SqlError> {
        let mut edits = extra;
        let Some(ks) = r.ks else {
            return Ok(edits.apply(self.sql)?);
        };
        let schema_of = |routing: &TableRouting| match routing {
            TableRouting::Sharded { .. } => LS_PLACEHOLDER.to_string(),
            TableRouting::Reference => quote_ident(&ks.reference_schema()),
            TableRouting::Unsharded => quote_ident(&ks.schema(0)),
        };
        for t in &r.tables {
            edits.replace(
                t.qualify.0,
                t.qualify.1,
                format!("{}.", schema_of(&t.routing)),
            );
        }
        for (s, e, table) in &r.column_quals {
            let routing = ks
                .table(table)
                .ok_or_else(|| SqlError::unknown_table(&ks.name, table))?;
            edits.replace(*s, *e, format!("{}.", schema_of(&routing)));
        }
        Ok(edits.apply(self.sql)?)
    }

    fn any(&self, sql: String, kind: StmtKind) -> Plan {
        Plan::Exec(Box::new(Exec {
            keyspace: None,
            kind,
            route: RouteKind::Any,
            targets: Targets::Any { sql },
            limit: None,
            unionable: false,
            merge: None,
            key_at: None,
            aliased_items: false,
            conflict: None,
        }))
    }

    /// Plans a statement that reads one table's metadata: the first logical shard holds it.
    fn read_first_shard(&self, r: Resolved<'a>) -> Result<Plan, SqlError> {
        let Some(ks) = r.ks else {
            return Ok(self.any(self.sql.to_string(), StmtKind::Read));
        };
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Read, Some(vec![0]), None, false))
    }

    fn show_on_table(&self, name: &ObjectName) -> Result<Plan, SqlError> {
        let r = self.resolve_names(&[name])?;
        self.read_first_shard(r)
    }

    /// Resolves bare table names (of DROP, SHOW CREATE, DESCRIBE) like relations.
    fn resolve_names(&self, list: &[&ObjectName]) -> Result<Resolved<'a>, SqlError> {
        let mut tables = Vec::new();
        let mut ks: Option<&'a KeyspaceRouting> = None;
        for name in list {
            let (db, t) = split_name(name)?;
            let k = self.keyspace_of(db)?;
            if ks.is_some_and(|p| p.name != k.name) {
                return Err(SqlError::unsupported("statements across keyspaces"));
            }
            ks = Some(k);
            let routing = k
                .table(&t.value)
                .ok_or_else(|| SqlError::unknown_table(&k.name, &t.value))?;
            let start = self.offsets.byte(self.sql, db.unwrap_or(t).span.start);
            let end = self.offsets.byte(self.sql, t.span.start);
            let (Some(start), Some(end)) = (start, end) else {
                return Err(SqlError::router("cannot locate the table"));
            };
            tables.push(TableRef {
                name: t.value.clone(),
                routing,
                qualify: (start, end),
            });
        }
        Ok(Resolved {
            ks,
            system: false,
            tables,
            column_quals: Vec::new(),
        })
    }

    /// Builds an [`Exec`] over `ls` (all logical shards when `None`).
    #[allow(clippy::too_many_arguments)]
    fn exec_for(
        &self,
        ks: &KeyspaceRouting,
        r: &Resolved<'_>,
        sql: String,
        kind: StmtKind,
        ls: Option<Vec<u32>>,
        limit: Option<(u64, u64)>,
        unionable: bool,
    ) -> Plan {
        let only_reference = r
            .tables
            .iter()
            .all(|t| matches!(t.routing, TableRouting::Reference));
        if ks.sharded && only_reference && !r.tables.is_empty() {
            return Plan::Exec(Box::new(Exec {
                keyspace: Some(ks.name.clone()),
                kind,
                route: RouteKind::Reference,
                targets: Targets::Reference { sql },
                limit: None,
                unionable: false,
                merge: None,
                key_at: None,
                aliased_items: false,
                conflict: None,
            }));
        }
        let ls = if ks.sharded {
            ls.unwrap_or_else(|| (0..ks.logical_shards).collect())
        } else {
            vec![0]
        };
        let route = match (ks.sharded, ls.len()) {
            (false, _) | (true, 1) => RouteKind::One,
            (true, n) if n as u32 == ks.logical_shards => RouteKind::Scatter,
            _ => RouteKind::Several,
        };
        Plan::Exec(Box::new(Exec {
            keyspace: Some(ks.name.clone()),
            kind,
            route,
            targets: Targets::Ls { template: sql, ls },
            limit: if route == RouteKind::One { None } else { limit },
            unionable: unionable && route != RouteKind::One,
            merge: None,
            key_at: None,
            aliased_items: false,
            conflict: None,
        }))
    }

    fn query(&self, stmt: &Statement, q: &Query) -> Result<Plan, SqlError> {
        let ctes: HashSet<String> = q
            .with
            .as_ref()
            .map(|w| {
                w.cte_tables
                    .iter()
                    .map(|c| c.alias.name.value.clone())
                    .collect()
            })
            .unwrap_or_default();
        let r = self.resolve_skipping(stmt, &ctes)?;
        let Some(ks) = r.ks else {
            // No keyspace table: any physical shard answers; DATABASE() is the session's.
            let mut s = stmt.clone();
            let mut changed = false;
            let db = self.session_ks.map(str::to_string);
            let _ = visit_expressions_mut(&mut s, |e| {
                if let Expr::Function(f) = e {
                    let n = f.name.to_string().to_ascii_uppercase();
                    let no_args = match &f.args {
                        FunctionArguments::List(l) => l.args.is_empty(),
                        FunctionArguments::None => true,
                        FunctionArguments::Subquery(_) => false,
                    };
                    if n == "LAST_INSERT_ID" && no_args {
                        *e = Expr::value(Value::Number(self.last_insert_id.to_string(), false));
                        changed = true;
                    } else if (n == "DATABASE" || n == "SCHEMA") && no_args {
                        *e = Expr::value(match &db {
                            Some(d) => Value::SingleQuotedString(d.clone()),
                            None => Value::Null,
                        });
                        changed = true;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            let sql = if changed {
                s.to_string()
            } else {
                self.sql.to_string()
            };
            let _ = r.system;
            return Ok(self.any(sql, StmtKind::Read));
        };
        if !ks.sharded || r.sharded().next().is_none() {
            let mut edits = Edits::default();
            let aliased = match q.body.as_ref() {
                SetExpr::Select(select) => self.name_items(select, &r, &mut edits),
                _ => false,
            };
            let sql = self.qualified(&r, edits)?;
            let mut plan = self.exec_for(ks, &r, sql, StmtKind::Read, None, None, false);
            if let Plan::Exec(e) = &mut plan {
                e.aliased_items = aliased;
            }
            return Ok(plan);
        }
        if !ctes.is_empty() {
            return Err(SqlError::unsupported("WITH clauses over sharded tables"));
        }
        self.check_subqueries(stmt)?;
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Err(SqlError::unsupported(
                "UNION and other set operations over sharded tables",
            ));
        };
        // Aliases: name or alias -> table name, for the sharded tables in FROM.
        let mut aliases: HashMap<String, String> = HashMap::new();
        let mut join_eqs: Vec<&Expr> = Vec::new();
        for twj in &select.from {
            let mut factors = vec![&twj.relation];
            for j in &twj.joins {
                factors.push(&j.relation);
                let constraint = match &j.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::StraightJoin(c) => Some(c),
                    _ => None,
                };
                match constraint {
                    Some(JoinConstraint::On(e)) => conjuncts(e, &mut join_eqs),
                    Some(JoinConstraint::Using(_)) => {
                        return Err(SqlError::unsupported(
                            "JOIN ... USING over sharded tables (write the ON condition)",
                        ))
                    }
                    _ => {}
                }
            }
            for f in factors {
                if let TableFactor::Table { name, alias, .. } = f {
                    if let Some(t) =
                        ident_parts(name).and_then(|p| p.last().map(|i| i.value.clone()))
                    {
                        aliases.insert(t.clone(), t.clone());
                        if let Some(a) = alias {
                            aliases.insert(a.name.value.clone(), t);
                        }
                    }
                }
            }
        }
        let mut where_conj: Vec<&Expr> = Vec::new();
        if let Some(w) = &select.selection {
            conjuncts(w, &mut where_conj);
        }
        let key_of = |e: &Expr| -> Option<(String, (VindexKind, KeyType))> {
            let (qual, col) = column_ref(e)?;
            let candidates: Vec<&TableRef> = r
                .sharded()
                .filter(|t| match &qual {
                    Some(q) => aliases.get(q).is_some_and(|n| *n == t.name),
                    None => true,
                })
                .filter(|t| matches!(&t.routing, TableRouting::Sharded { shard_key, .. } if shard_key.eq_ignore_ascii_case(&col)))
                .collect();
            let names: BTreeSet<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
            if names.len() != 1 {
                return None;
            }
            match &candidates[0].routing {
                TableRouting::Sharded {
                    vindex, key_type, ..
                } => Some((candidates[0].name.clone(), (*vindex, *key_type))),
                _ => None,
            }
        };
        // Every sharded table must be joined to the others on equal shard keys.
        let sharded_names: BTreeSet<String> = r.sharded().map(|t| t.name.clone()).collect();
        if sharded_names.len() > 1 || r.sharded().count() > 1 {
            let mut uf: HashMap<String, String> = sharded_names
                .iter()
                .map(|n| (n.clone(), n.clone()))
                .collect();
            fn find(uf: &HashMap<String, String>, x: &str) -> String {
                let mut cur = x.to_string();
                while let Some(p) = uf.get(&cur) {
                    if *p == cur {
                        break;
                    }
                    cur = p.clone();
                }
                cur
            }
            for e in join_eqs.iter().chain(where_conj.iter()) {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = e
                {
                    if let (Some((a, va)), Some((b, vb))) = (key_of(left), key_of(right)) {
                        if va == vb {
                            let (ra, rb) = (find(&uf, &a), find(&uf, &b));
                            uf.insert(ra, rb);
                        }
                    }
                }
            }
            let roots: BTreeSet<String> = sharded_names.iter().map(|n| find(&uf, n)).collect();
            if roots.len() > 1 || r.sharded().count() > sharded_names.len() {
                return self.cross_join(&ks.name, select, q);
            }
        }
        // Shard-key values from the WHERE clause (AND narrows, OR of keyed terms widens).
        let key_vindex = |e: &Expr| key_of(e).map(|(_, v)| v);
        let mut target: Option<BTreeSet<u32>> = match &select.selection {
            Some(w) => key_set(w, &key_vindex, ks.logical_shards),
            None => None,
        };
        if let Some(t) = &target {
            if t.is_empty() {
                // Contradictory keys: no row can match; ask one shard so the columns are right.
                target = Some(BTreeSet::from([0]));
            }
        }
        let ls: Option<Vec<u32>> = target.map(|t| t.into_iter().collect());
        let single = ls.as_ref().is_some_and(|l| l.len() == 1);
        let mut edits = Edits::default();
        let mut limit = None;
        let mut merge = None;
        if !single {
            if let Some(lc) = &q.limit_clause {
                let (lim, off) = match lc {
                    LimitClause::LimitOffset {
                        limit,
                        offset,
                        limit_by,
                    } => {
                        if !limit_by.is_empty() {
                            return Err(SqlError::unsupported("LIMIT BY"));
                        }
                        (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                    }
                    LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
                };
                let count = match lim {
                    Some(e) => limit_number(e).ok_or_else(|| {
                        SqlError::unsupported("a LIMIT that is not a number, across shards")
                    })?,
                    None => u64::MAX,
                };
                let skip = match off {
                    Some(e) => limit_number(e).ok_or_else(|| {
                        SqlError::unsupported("an OFFSET that is not a number, across shards")
                    })?,
                    None => 0,
                };
                limit = Some((skip, count));
            }
            let mp = merge::MergePlanner {
                sql: self.sql,
                offsets: &self.offsets,
            };
            merge = mp.plan(select, q, limit, &mut edits)?;
            let aggregate = matches!(
                merge.as_ref().map(|m| &m.mode),
                Some(merge::MergeMode::Aggregate { .. })
            );
            if let (Some(lc), Some((skip, count)), false) = (&q.limit_clause, limit, aggregate) {
                // Each shard returns up to offset + count rows; the router skips and cuts.
                let (lim, off) = match lc {
                    LimitClause::LimitOffset { limit, offset, .. } => {
                        (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                    }
                    LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
                };
                if let Some(e) = lim {
                    let (s, en) = self
                        .offsets
                        .range(self.sql, e.span())
                        .ok_or_else(|| SqlError::router("cannot locate LIMIT"))?;
                    edits.replace(s, en, count.saturating_add(skip).to_string());
                }
                if let Some(e) = off {
                    let (s, en) = self
                        .offsets
                        .range(self.sql, e.span())
                        .ok_or_else(|| SqlError::router("cannot locate OFFSET"))?;
                    edits.replace(s, en, "0");
                }
            }
        }
        let unionable = q.locks.is_empty() && select.into.is_none() && q.for_clause.is_none();
        let aliased = self.name_items(select, &r, &mut edits);
        let sql = self.qualified(&r, edits)?;
        let mut plan = self.exec_for(ks, &r, sql, StmtKind::Read, ls, limit, unionable);
        if let Plan::Exec(e) = &mut plan {
            e.aliased_items = aliased;
            if e.route != RouteKind::One {
                e.merge = merge;
            } else if let Some(w) = &select.selection {
                e.key_at = self.key_at(w, &key_vindex, ks.logical_shards);
            }
        }
        Ok(plan)
    }

    /// Keeps the client's column names when a select item's text changes in the rewrite: an
    /// expression over `keyspace.table.column` (MariaDB names such a column by its text as
    /// written, which would otherwise show a logical shard's schema) gets its original text
    /// as an explicit alias.
    /// Returns whether it added any.
    fn name_items(
        &self,
        select: &sqlparser::ast::Select,
        r: &Resolved<'_>,
        edits: &mut Edits,
    ) -> bool {
        if r.column_quals.is_empty() {
            return false;
        }
        let Some(ranges) = select_item_ranges(self.sql) else {
            return false;
        };
        if ranges.len() != select.projection.len() {
            return false;
        }
        let mut added = false;
        for (item, &(s, e)) in select.projection.iter().zip(&ranges) {
            let sqlparser::ast::SelectItem::UnnamedExpr(expr) = item else {
                continue;
            };
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                continue;
            }
            let text = &self.sql[s..e];
            let renamed = r.column_quals.iter().any(|q| q.0 >= s && q.0 < e);
            // MariaDB refuses aliases over 256 characters; such names are left as they come.
            if renamed && text.chars().count() <= 256 && !edits.touches(s, e) {
                edits.insert(e, format!(" AS {}", quote_ident(text)));
                added = true;
            }
        }
        added
    }

    /// Returns the one `key = literal` term of `w` that decides its logical shard, when
    /// exactly one term decides it (with several, other values could intersect differently).
    fn key_at(
        &self,
        w: &Expr,
        key: &dyn Fn(&Expr) -> Option<(VindexKind, KeyType)>,
        count: u32,
    ) -> Option<KeyAt> {
        let mut cs = Vec::new();
        conjuncts(w, &mut cs);
        let mut deciding = cs.iter().filter(|c| key_set(c, key, count).is_some());
        let only = deciding.next()?;
        if deciding.next().is_some() {
            return None;
        }
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = only
        else {
            return None;
        };
        // The same side key_set takes as the key.
        let ((vindex, key_type), other) = match (key(left), key(right)) {
            (Some(k), _) => (k, right),
            (None, Some(k)) => (k, left),
            (None, None) => return None,
        };
        let Expr::Value(v) = other.as_ref() else {
            return None;
        };
        if !matches!(
            v.value,
            Value::Number(..) | Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)
        ) {
            return None;
        }
        let (at, _) = self.offsets.range(self.sql, v.span)?;
        Some(KeyAt {
            at,
            vindex,
            key_type,
        })
    }

    /// Refuses subqueries that read sharded tables: they would see one shard's rows only.
    fn check_subqueries(&self, stmt: &Statement) -> Result<(), SqlError> {
        let mut subs: Vec<Query> = Vec::new();
        let _ = visit_expressions(stmt, |e| {
            match e {
                Expr::Subquery(q)
                | Expr::Exists { subquery: q, .. }
                | Expr::InSubquery { subquery: q, .. } => subs.push((**q).clone()),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        if let Statement::Query(q) = stmt {
            if let SetExpr::Select(s) = q.body.as_ref() {
                for twj in &s.from {
                    let mut fs = vec![&twj.relation];
                    fs.extend(twj.joins.iter().map(|j| &j.relation));
                    for f in fs {
                        if let TableFactor::Derived { subquery, .. } = f {
                            subs.push((**subquery).clone());
                        }
                    }
                }
            }
        }
        for q in &subs {
            let r = self.resolve(q)?;
            if r.sharded().next().is_some() {
                return Err(SqlError::unsupported("subqueries that read sharded tables"));
            }
        }
        Ok(())
    }

    fn insert(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        let Statement::Insert(ins) = stmt else {
            return Err(SqlError::router("not an INSERT"));
        };
        let r = self.resolve(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("writes to system schemas"));
        };
        let TableObject::TableName(_) = &ins.table else {
            return Err(SqlError::unsupported("INSERT INTO a table function"));
        };
        let Some(target) = r.tables.first().cloned() else {
            return Err(SqlError::router("INSERT without a table"));
        };
        if r.sharded().count() > 0 && r.tables.len() > 1 {
            return Err(SqlError::unsupported(
                "INSERT ... SELECT with sharded tables",
            ));
        }
        let TableRouting::Sharded {
            shard_key,
            vindex,
            key_type,
            auto_increment,
        } = &target.routing
        else {
            let sql = self.qualified(&r, Edits::default())?;
            return Ok(self.exec_for(ks, &r, sql, StmtKind::Write, None, None, false));
        };
        if !ins.assignments.is_empty() {
            return Err(SqlError::unsupported(
                "INSERT ... SET on a sharded table (use VALUES)",
            ));
        }
        if let Some((col, seq_ks, seq_table)) = auto_increment {
            if !ins
                .columns
                .iter()
                .any(|c| c.value.eq_ignore_ascii_case(col))
            {
                // Ids come from the sequence: the engine takes a block, writes them into the
                // statement, and plans it again.
                let Some(last) = ins.columns.last() else {
                    return Err(SqlError::router(format!(
                        "INSERT into {} needs a column list",
                        target.name
                    )));
                };
                let col_at = self
                    .offsets
                    .range(self.sql, last.span)
                    .map(|(_, e)| e)
                    .ok_or_else(|| SqlError::router("cannot locate the column list"))?;
                let Some(source) = &ins.source else {
                    return Err(SqlError::unsupported(
                        "INSERT without VALUES on a sharded table",
                    ));
                };
                let SetExpr::Values(values) = source.body.as_ref() else {
                    return Err(SqlError::unsupported(
                        "INSERT ... SELECT into a sharded table",
                    ));
                };
                let mut row_ends = Vec::with_capacity(values.rows.len());
                for row in &values.rows {
                    let (_, b) = self.row_range(row)?;
                    row_ends.push(b - 1);
                }
                return Ok(Plan::Local(Local::Sequence(Box::new(
                    plan::SequenceInsert {
                        column: col.to_string(),
                        keyspace: seq_ks.to_string(),
                        table: seq_table.clone(),
                        column_at: col_at,
                        row_ends,
                        sql: self.sql.to_string(),
                    },
                ))));
            }
        }
        let Some(idx) = ins
            .columns
            .iter()
            .position(|c| c.value.eq_ignore_ascii_case(shard_key))
        else {
            return Err(SqlError::unsupported(format!(
                "INSERT into sharded table {} without its shard key column {} in the column list",
                target.name, shard_key
            )));
        };
        if let Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(assigns)) = &ins.on {
            for a in assigns {
                if a.target
                    .to_string()
                    .trim_matches('`')
                    .eq_ignore_ascii_case(shard_key)
                {
                    return Err(SqlError::unsupported(
                        "ON DUPLICATE KEY UPDATE of the shard key",
                    ));
                }
            }
        }
        let Some(source) = &ins.source else {
            return Err(SqlError::unsupported(
                "INSERT without VALUES on a sharded table",
            ));
        };
        let SetExpr::Values(values) = source.body.as_ref() else {
            return Err(SqlError::unsupported(
                "INSERT ... SELECT into a sharded table",
            ));
        };
        let mut per_ls: Vec<(u32, Vec<usize>)> = Vec::new();
        let mut row_ranges = Vec::with_capacity(values.rows.len());
        for (i, row) in values.rows.iter().enumerate() {
            let Some(v) = row.get(idx) else {
                return Err(SqlError::new(
                    1136,
                    "21S01",
                    format!("Column count doesn't match value count at row {}", i + 1),
                ));
            };
            let val = lit(v)
                .and_then(|l| key_value(&l, *key_type, true))
                .ok_or_else(|| {
                    SqlError::router(format!(
                        "the shard key {shard_key} of row {} must be a literal value, got {v}",
                        i + 1
                    ))
                })?;
            let id = vindex::keyspace_id(*vindex, &val)
                .map_err(|e| SqlError::router(format!("row {}: {e}", i + 1)))?;
            let ls = vindex::logical_shard(id, ks.logical_shards);
            match per_ls.iter_mut().find(|(l, _)| *l == ls) {
                Some((_, rows)) => rows.push(i),
                None => per_ls.push((ls, vec![i])),
            }
            row_ranges.push(self.row_range(row)?);
        }
        let conflict = if ins.replace_into {
            Some("REPLACE")
        } else if ins.ignore {
            Some("INSERT IGNORE")
        } else if matches!(
            ins.on,
            Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(_))
        ) {
            Some("INSERT … ON DUPLICATE KEY UPDATE")
        } else {
            None
        }
        .map(|action| {
            Box::new(plan::Conflict {
                table: target.name.to_string(),
                shard_key: shard_key.to_string(),
                action,
            })
        });
        let sql = self.qualified(&r, Edits::default())?;
        if per_ls.len() == 1 {
            let ls = per_ls.iter().map(|(l, _)| *l).collect();
            let mut plan = self.exec_for(ks, &r, sql, StmtKind::Write, Some(ls), None, false);
            if let Plan::Exec(e) = &mut plan {
                e.conflict = conflict;
            }
            return Ok(plan);
        }
        // Split: the text before the first row and after the last stays; the rows are picked.
        let (Some(first), Some(last)) = (row_ranges.first(), row_ranges.last()) else {
            return Err(SqlError::router("INSERT without rows"));
        };
        let head = &self.sql[..first.0];
        let tail = &self.sql[last.1..];
        let head_q = {
            let mut e = Edits::default();
            let t = &target;
            e.replace(t.qualify.0, t.qualify.1, format!("{LS_PLACEHOLDER}."));
            e.apply(head)?
        };
        let mut out = Vec::with_capacity(per_ls.len());
        for (ls, rows) in per_ls {
            let mut s = String::with_capacity(self.sql.len());
            s.push_str(&head_q);
            for (n, i) in rows.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                let (a, b) = row_ranges[*i];
                s.push_str(&self.sql[a..b]);
            }
            s.push_str(tail);
            out.push((ls, s));
        }
        let _ = sql;
        Ok(Plan::Exec(Box::new(Exec {
            keyspace: Some(ks.name.clone()),
            kind: StmtKind::Write,
            route: RouteKind::Several,
            targets: Targets::PerLs(out),
            limit: None,
            unionable: false,
            merge: None,
            key_at: None,
            aliased_items: false,
            conflict,
        })))
    }

    /// Returns the byte range of one `VALUES` row, parentheses included.
    fn row_range(&self, row: &[Expr]) -> Result<(usize, usize), SqlError> {
        let err = || SqlError::router("cannot locate a row of the INSERT");
        let first = row.first().ok_or_else(err)?;
        let last = row.last().ok_or_else(err)?;
        let (s, _) = self.offsets.range(self.sql, first.span()).ok_or_else(err)?;
        let (_, e) = self.offsets.range(self.sql, last.span()).ok_or_else(err)?;
        let bytes = self.sql.as_bytes();
        let mut a = s;
        while a > 0
            && (bytes[a - 1].is_ascii_whitespace() || bytes[a - 1] == b'-' || bytes[a - 1] == b'+')
        {
            a -= 1;
        }
        if a == 0 || bytes[a - 1] != b'(' {
            return Err(err());
        }
        a -= 1;
        let mut b = e;
        // A closing quote of a string literal may sit just past the span's end.
        while b < bytes.len()
            && (bytes[b].is_ascii_whitespace() || bytes[b] == b'\'' || bytes[b] == b'"')
            && bytes[b] != b')'
        {
            b += 1;
        }
        if b >= bytes.len() || bytes[b] != b')' {
            return Err(err());
        }
        Ok((a, b + 1))
    }

    fn update_delete(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        let r = self.resolve(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("writes to system schemas"));
        };
        if !ks.sharded || r.sharded().next().is_none() {
            let sql = self.qualified(&r, Edits::default())?;
            return Ok(self.exec_for(ks, &r, sql, StmtKind::Write, None, None, false));
        }
        // One sharded table written; other tables may only be reference tables read in
        // subqueries (each physical shard holds a whole copy of those).
        let one_target = match stmt {
            Statement::Update(u) => u.table.joins.is_empty() && u.from.is_none(),
            Statement::Delete(d) => {
                d.tables.is_empty()
                    && d.using.is_none()
                    && match &d.from {
                        sqlparser::ast::FromTable::WithFromKeyword(f)
                        | sqlparser::ast::FromTable::WithoutKeyword(f) => {
                            f.len() == 1 && f[0].joins.is_empty()
                        }
                    }
            }
            _ => false,
        };
        let others_reference = r.sharded().count() == 1
            && r.tables.iter().all(|t| {
                matches!(
                    t.routing,
                    TableRouting::Sharded { .. } | TableRouting::Reference
                )
            });
        if r.tables.len() > 1 && !(one_target && others_reference) {
            return Err(SqlError::unsupported(
                "multi-table UPDATE or DELETE on sharded tables",
            ));
        }
        self.check_subqueries(stmt)?;
        let Some(TableRef {
            routing:
                TableRouting::Sharded {
                    shard_key,
                    vindex,
                    key_type,
                    ..
                },
            ..
        }) = r.sharded().next()
        else {
            return Err(SqlError::router("no table to write"));
        };
        let mut move_to: Option<(u32, KeyLiteral)> = None;
        let (selection, has_order_or_limit) = match stmt {
            Statement::Update(u) => {
                for a in &u.assignments {
                    let col = a.target.to_string();
                    let col = col.rsplit('.').next().unwrap_or(&col).trim_matches('`');
                    if col.eq_ignore_ascii_case(shard_key) {
                        let l = lit(&a.value).ok_or_else(|| {
                            SqlError::unsupported(
                                "UPDATE that sets a row's shard key to an expression (a literal value moves the row)",
                            )
                        })?;
                        let kv = key_value(&l, *key_type, true).ok_or_else(|| {
                            SqlError::unsupported(format!(
                                "UPDATE that sets shard key {shard_key} to {} (not a value of its type)",
                                a.value
                            ))
                        })?;
                        let id = vindex::keyspace_id(*vindex, &kv)
                            .map_err(|e| SqlError::router(e.to_string()))?;
                        let new_ls = vindex::logical_shard(id, ks.logical_shards);
                        let value = match l {
                            Lit::Int(i) => KeyLiteral::Int(i),
                            Lit::Num(n) => KeyLiteral::Num(n),
                            Lit::Str(s) => KeyLiteral::Str(s),
                        };
                        move_to = Some((new_ls, value));
                    }
                }
                (u.selection.as_ref(), u.limit.is_some())
            }
            Statement::Delete(d) => (
                d.selection.as_ref(),
                d.limit.is_some() || !d.order_by.is_empty(),
            ),
            _ => (None, false),
        };
        let mut cs = Vec::new();
        if let Some(w) = selection {
            conjuncts(w, &mut cs);
        }
        let key_vindex = |e: &Expr| {
            column_ref(e)
                .is_some_and(|(_, c)| c.eq_ignore_ascii_case(shard_key))
                .then_some((*vindex, *key_type))
        };
        let _ = cs;
        let target: Option<BTreeSet<u32>> =
            selection.and_then(|w| key_set(w, &key_vindex, ks.logical_shards));
        let ls: Option<Vec<u32>> = target.map(|t| {
            if t.is_empty() {
                vec![0]
            } else {
                t.into_iter().collect()
            }
        });
        if has_order_or_limit && ls.as_ref().is_none_or(|l| l.len() > 1) {
            return Err(SqlError::unsupported(
                "ORDER BY or LIMIT in an UPDATE or DELETE across logical shards",
            ));
        }
        let sql = self.qualified(&r, Edits::default())?;
        let mut plan = self.exec_for(ks, &r, sql, StmtKind::Write, ls, None, false);
        if let (Plan::Exec(e), Some(w)) = (&mut plan, selection) {
            if e.route == RouteKind::One {
                e.key_at = self.key_at(w, &key_vindex, ks.logical_shards);
            }
        }
        if let Some((new_ls, value)) = move_to {
            if has_order_or_limit {
                return Err(SqlError::unsupported(
                    "ORDER BY or LIMIT in an UPDATE that changes the shard key",
                ));
            }
            let Plan::Exec(update) = plan else {
                return Err(SqlError::router("UPDATE without targets"));
            };
            let table = r
                .sharded()
                .next()
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Ok(Plan::Local(Local::MoveRows(Box::new(MoveRows {
                update: *update,
                table,
                column: shard_key.clone(),
                value,
                new_ls,
            }))));
        }
        Ok(plan)
    }

    fn ddl(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        if let Statement::CreateTable(c) = stmt {
            if c.query.is_some() || c.like.is_some() || c.clone.is_some() {
                return Err(SqlError::unsupported("CREATE TABLE ... AS SELECT or LIKE"));
            }
        }
        if let Statement::AlterTable(a) = stmt {
            let text = a.to_string().to_ascii_uppercase();
            if text.contains(" RENAME ") {
                return Err(SqlError::unsupported("renaming tables through the router"));
            }
        }
        let r = self.resolve(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("DDL on system schemas"));
        };
        let kinds: BTreeSet<&str> = r
            .tables
            .iter()
            .map(|t| match t.routing {
                TableRouting::Sharded { .. } => "sharded",
                TableRouting::Reference => "reference",
                TableRouting::Unsharded => "unsharded",
            })
            .collect();
        if kinds.len() > 1 {
            return Err(SqlError::unsupported(
                "one DDL statement over both sharded and reference tables",
            ));
        }
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Ddl, None, None, false))
    }

    fn drop(
        &self,
        stmt: &Statement,
        object_type: ObjectType,
        names: &[ObjectName],
        table: Option<&ObjectName>,
    ) -> Result<Plan, SqlError> {
        let list: Vec<&ObjectName> = match object_type {
            ObjectType::Table => names.iter().collect(),
            ObjectType::Index => table.into_iter().collect(),
            ObjectType::Database | ObjectType::Schema => {
                return Err(SqlError::unsupported("DROP DATABASE through the router"))
            }
            _ => return Err(SqlError::unsupported(format!("DROP {object_type}"))),
        };
        if list.is_empty() {
            return Err(SqlError::unsupported("DROP INDEX without ON table"));
        }
        let _ = stmt;
        let r = self.resolve_names(&list)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::router("no table to drop"));
        };
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Ddl, None, None, false))
    }
}

#[cfg(test)]
mod tests;
