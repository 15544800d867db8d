//! The router's sessions as one database shows its connections: `SHOW [FULL] PROCESSLIST`,
//! `KILL [CONNECTION | QUERY] id` and `COM_PROCESS_KILL`, on the router's own connection ids
//! (those `CONNECTION_ID()` returns). A user sees and kills only its own sessions; an admin user, every session.

use super::shared::Shared;
use crate::error::SqlError;
use crate::session::Session;
use crate::sql::lex::{Kind, Token};
use crate::wire::PacketIo;

/// A `KILL` statement the router carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kill {
    pub(super) id: u32,
    /// `KILL QUERY`: the statement only, not the session.
    pub(super) query_only: bool,
}

/// What a `SHOW PROCESSLIST` or `KILL` statement asks, read from its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProcessStatement {
    Show { full: bool },
    Kill(Kill),
}

impl ProcessStatement {
    /// Recognises `SHOW [FULL] PROCESSLIST` and `KILL [HARD | SOFT] [CONNECTION | QUERY] id`;
    /// `Err` for another `KILL` form (by user, by query id).
    pub(super) fn of(sql: &[u8], toks: &[Token]) -> Option<Result<ProcessStatement, SqlError>> {
        let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
        let end = toks
            .iter()
            .rposition(|t| t.kind != Kind::Semicolon)
            .map_or(0, |i| i + 1);
        if is(0, "SHOW") {
            let full = is(1, "FULL");
            let at = if full { 2 } else { 1 };
            return (is(at, "PROCESSLIST") && end == at + 1)
                .then_some(Ok(ProcessStatement::Show { full }));
        }
        if !is(0, "KILL") {
            return None;
        }
        let mut i = 1;
        if is(i, "HARD") || is(i, "SOFT") {
            i += 1;
        }
        let query_only = is(i, "QUERY");
        if query_only || is(i, "CONNECTION") {
            i += 1;
        }
        let id = toks
            .get(i)
            .filter(|t| t.kind == Kind::Number && i + 1 == end)
            .and_then(|t| std::str::from_utf8(t.bytes(sql)).ok()?.parse::<u32>().ok());
        Some(match id {
            Some(id) => Ok(ProcessStatement::Kill(Kill { id, query_only })),
            None => Err(SqlError::unsupported(
                "this form of KILL (the router kills its own sessions by their connection id: KILL [CONNECTION | QUERY] id)",
            )),
        })
    }
}

/// Runs a process-list statement.
pub(super) async fn run(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    stmt: ProcessStatement,
) -> Result<(), SqlError> {
    match stmt {
        ProcessStatement::Show { full } => show(shared, session, io, full).await,
        ProcessStatement::Kill(k) => {
            kill(shared, session, k).await?;
            super::shared::ok(io, session).await
        }
    }
}

/// `SHOW [FULL] PROCESSLIST`: the user's own sessions, with MariaDB's columns.
async fn show(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    full: bool,
) -> Result<(), SqlError> {
    use crate::wire::resultset::ColumnDef;
    let defs = vec![
        ColumnDef::bigint("Id"),
        ColumnDef::text("User"),
        ColumnDef::text("Host"),
        ColumnDef::text("db"),
        ColumnDef::text("Command"),
        ColumnDef::bigint("Time"),
        ColumnDef::text("State"),
        ColumnDef::text("Info"),
        ColumnDef::text("Progress"),
    ];
    let rows = shared
        .engine
        .sessions
        .list()
        .into_iter()
        .filter(|p| session.grants.admin || p.user == session.user)
        .map(|p| {
            // The statement's bytes as sent; without FULL its first 100 characters (of a
            // UTF-8 text; of bytes otherwise).
            let info = p.info.map(|mut i| {
                if !full {
                    let cut = match std::str::from_utf8(&i) {
                        Ok(t) => t.char_indices().nth(100).map_or(t.len(), |(at, _)| at),
                        Err(_) => i.len().min(100),
                    };
                    i.truncate(cut);
                }
                i
            });
            let command = p.command;
            let state = if command == "Query" { "executing" } else { "" };
            vec![
                Some(p.id.to_string().into_bytes()),
                Some(p.user.into_bytes()),
                Some(p.host.into_bytes()),
                p.keyspace.map(String::into_bytes),
                Some(command.as_bytes().to_vec()),
                Some(p.seconds.to_string().into_bytes()),
                Some(state.as_bytes().to_vec()),
                info,
                Some(b"0.000".to_vec()),
            ]
        })
        .collect();
    session.row_count = -1;
    shared.engine.local_result(session, io, defs, rows).await
}

/// `KILL [CONNECTION | QUERY] id`, and `COM_PROCESS_KILL`: the statement the session runs is
/// interrupted on its backend connection (the session gets MariaDB's 1317 "Query execution
/// was interrupted"), and for a connection kill the session ends after it.
///
/// # Errors
/// 1094 for an unknown id, 1095 for another user's session.
pub(super) async fn kill(shared: &Shared, session: &Session, k: Kill) -> Result<(), SqlError> {
    let Some(slot) = shared.engine.sessions.get(k.id) else {
        return Err(SqlError::new(
            1094,
            "HY000",
            format!("Unknown thread id: {}", k.id),
        ));
    };
    if slot.user != session.user && !session.grants.admin {
        return Err(SqlError::new(
            1095,
            "HY000",
            format!("You are not owner of thread {}", k.id),
        ));
    }
    if k.id == session.connection_id {
        if k.query_only {
            return Ok(());
        }
        slot.kill();
        return Err(SqlError::new(1927, "70100", "Connection was killed"));
    }
    // The statement may not have reached its backend yet (a `KILL QUERY` that arrives first
    // does nothing there): asked again while that same statement runs, for up to a second.
    let statement = slot.started();
    for _ in 0..20 {
        if statement.is_none() || slot.started() != statement {
            break;
        }
        if let Some((ps, backend_id)) = slot.backend() {
            shared.engine.kill_backend_query(&ps, backend_id).await?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !k.query_only {
        slot.kill();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> Option<Result<ProcessStatement, SqlError>> {
        let toks = crate::sql::lex::significant(sql.as_bytes(), &Default::default());
        ProcessStatement::of(sql.as_bytes(), &toks)
    }

    #[test]
    fn process_statements_are_read_from_tokens() {
        assert_eq!(
            of("show full processlist;").map(|r| r.ok()),
            Some(Some(ProcessStatement::Show { full: true }))
        );
        assert_eq!(
            of("KILL QUERY 12").map(|r| r.ok()),
            Some(Some(ProcessStatement::Kill(Kill {
                id: 12,
                query_only: true
            })))
        );
        assert_eq!(
            of("kill hard connection 7").map(|r| r.ok()),
            Some(Some(ProcessStatement::Kill(Kill {
                id: 7,
                query_only: false
            })))
        );
        assert!(matches!(of("KILL USER bob"), Some(Err(_))));
        assert!(of("SELECT 1").is_none());
        assert!(of("SHOW PROCESSLIST x").is_none());
    }
}
