//! `SHOW [SESSION | LOCAL] STATUS`: the session's own counters where the router keeps them.
//!
//! The router counts, per client session, the statements it receives (`Questions`) and the
//! `Com_*` variables of the common statement kinds ([`COUNTED`]); `Threads_connected` is the
//! router's client sessions. Every other variable is the backend connection's that answers
//! the statement (a pooled connection's, not the session's: documented in
//! docs/sql-support.md). The statement, its `LIKE` or `WHERE` included, runs on a backend as
//! sent; the router replaces the values it keeps.

use super::shared::Shared;
use crate::error::SqlError;
use crate::session::Session;
use crate::sql::lex::Token;
use crate::wire::PacketIo;

/// The statements counted, by leading word, and their `Com_*` variable.
pub(super) const COUNTED: &[(&str, &str)] = &[
    ("SELECT", "Com_select"),
    ("INSERT", "Com_insert"),
    ("UPDATE", "Com_update"),
    ("DELETE", "Com_delete"),
    ("REPLACE", "Com_replace"),
    ("SET", "Com_set_option"),
    ("BEGIN", "Com_begin"),
    ("COMMIT", "Com_commit"),
    ("ROLLBACK", "Com_rollback"),
];

/// Counts a statement the session received (its significant tokens `toks`).
pub(super) fn count(session: &mut Session, sql: &[u8], toks: &[Token]) {
    session.questions += 1;
    let Some(first) = toks.first() else { return };
    let start =
        first.is_word(sql, "START") && toks.get(1).is_some_and(|t| t.is_word(sql, "TRANSACTION"));
    let name = if start {
        Some("Com_begin")
    } else {
        COUNTED
            .iter()
            .find(|(w, _)| first.is_word(sql, w))
            .map(|(_, v)| *v)
    };
    if let Some(v) = name {
        *session.com.entry(v).or_default() += 1;
    }
}

/// Whether `toks` are `SHOW [SESSION | LOCAL] STATUS …` (not `GLOBAL`).
pub(super) fn is_session_status(sql: &[u8], toks: &[Token]) -> bool {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    is(0, "SHOW") && (is(1, "STATUS") || (is(1, "SESSION") || is(1, "LOCAL")) && is(2, "STATUS"))
}

/// Answers `sql`, a [`is_session_status`] statement.
pub(super) async fn run(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    sql: &[u8],
) -> Result<(), SqlError> {
    use crate::wire::resultset::ColumnDef;
    let rows = shared.engine.text_rows_at_home(session, sql).await?;
    let threads = shared.engine.sessions.list().len() as u64;
    let mine = |name: &str| -> Option<u64> {
        if name.eq_ignore_ascii_case("Questions") {
            return Some(session.questions);
        }
        if name.eq_ignore_ascii_case("Threads_connected") {
            return Some(threads);
        }
        COUNTED
            .iter()
            .find(|(_, v)| v.eq_ignore_ascii_case(name))
            .map(|(_, v)| session.com.get(v).copied().unwrap_or(0))
    };
    let rows = rows
        .into_iter()
        .map(|mut r| {
            let own = r
                .first()
                .and_then(|n| n.as_deref())
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(mine);
            if let (Some(v), Some(cell)) = (own, r.get_mut(1)) {
                *cell = Some(v.to_string().into_bytes());
            }
            r
        })
        .collect();
    let defs = vec![ColumnDef::text("Variable_name"), ColumnDef::text("Value")];
    session.row_count = -1;
    shared.engine.local_result(session, io, defs, rows).await
}
