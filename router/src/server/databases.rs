//! `CREATE DATABASE` and `DROP DATABASE`: an unsharded keyspace made or dropped in the
//! topology, its schema created or dropped (as the client wrote the statement, options
//! included) on the physical shard its placement picks.
//!
//! A user may do this unless its config says `create_keyspaces: false`. The server's own
//! schemas and the names of logical shards' schemas are refused; a sharded keyspace is not
//! dropped this way. `CREATE OR REPLACE DATABASE` is refused.

use super::shared::Shared;
use crate::error::SqlError;
use crate::session::Session;
use crate::sql::lex::Token;
use crate::wire::PacketIo;

/// What the statement asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DatabaseStatement {
    pub(super) create: bool,
    pub(super) name: String,
    /// `IF NOT EXISTS` of a create, `IF EXISTS` of a drop.
    pub(super) if_clause: bool,
}

impl DatabaseStatement {
    /// Reads `CREATE|DROP DATABASE|SCHEMA [IF [NOT] EXISTS] name …` from its significant
    /// tokens; `None` for other statements.
    pub(super) fn of(sql: &[u8], toks: &[Token]) -> Option<Result<DatabaseStatement, SqlError>> {
        let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
        let create = is(0, "CREATE");
        if !create && !is(0, "DROP") {
            return None;
        }
        if create && is(1, "OR") && is(2, "REPLACE") && (is(3, "DATABASE") || is(3, "SCHEMA")) {
            return Some(Err(SqlError::unsupported("CREATE OR REPLACE DATABASE")));
        }
        if !(is(1, "DATABASE") || is(1, "SCHEMA")) {
            return None;
        }
        let mut i = 2;
        let if_clause = match create {
            true if is(2, "IF") && is(3, "NOT") && is(4, "EXISTS") => {
                i = 5;
                true
            }
            false if is(2, "IF") && is(3, "EXISTS") => {
                i = 4;
                true
            }
            _ => false,
        };
        let name = toks
            .get(i)
            .and_then(|t| t.ident(sql))
            .and_then(|n| String::from_utf8(n).ok());
        let Some(name) = name else {
            return Some(Err(SqlError::new(
                1064,
                "42000",
                "You have an error in your SQL syntax: a database name (in UTF-8) was expected",
            )));
        };
        Some(Ok(DatabaseStatement {
            create,
            name,
            if_clause,
        }))
    }
}

/// Runs `d` (the statement `sql`) for `session`.
///
/// # Errors
/// 1044 for a user or name that may not; 1007/1008 as MariaDB gives them; 1102 for a name
/// that cannot be a keyspace's; the backend's errors; topology failures as 1105.
pub(super) async fn run(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    sql: &[u8],
    d: DatabaseStatement,
) -> Result<(), SqlError> {
    let denied = || {
        SqlError::new(
            1044,
            "42000",
            format!(
                "Access denied for user '{}' to database '{}'",
                session.user, d.name
            ),
        )
    };
    let may = shared
        .cfg
        .users
        .iter()
        .find(|u| u.name == session.user)
        .is_none_or(|u| u.create_keyspaces)
        && session.grants.may_use(&d.name);
    // Made on another connection, it would wait for the session's own global read lock.
    if session.global_read_lock && !session.reserved.is_empty() {
        return Err(SqlError::new(
            1223,
            "HY000",
            "Can't execute the query because you have a conflicting read lock",
        ));
    }
    if session.grants.read_only {
        return Err(crate::session::Grants::read_only_refusal(&session.user));
    }
    let system = crate::sql::classify::SYSTEM_SCHEMAS
        .iter()
        .chain(&["information_schema"])
        .any(|s| s.eq_ignore_ascii_case(&d.name));
    if !may || system {
        return Err(denied());
    }
    // As any DDL: the session's transaction commits first.
    shared.engine.finish_txn(session, true).await?;
    let rt = shared.engine.topo.table();
    let existing = rt.keyspace(&d.name).is_some();
    if d.create {
        if existing || crate::planner::passthrough::physical_schema_of(&d.name, &rt).is_some() {
            let msg = format!("Can't create database '{}'; database exists", d.name);
            if d.if_clause {
                return note(shared, session, io, 1007, msg).await;
            }
            return Err(SqlError::new(1007, "HY000", msg));
        }
        let v = tessera_topo::VSchema {
            keyspace: d.name.clone(),
            sharded: false,
            logical_shards: None,
            tables: Default::default(),
            moved_tables: Default::default(),
        };
        let placement = shared.topo.apply_vschema(&v).await.map_err(|e| match e {
            tessera_topo::TopoError::Invalid { message, .. } => SqlError::new(
                1102,
                "42000",
                format!("Incorrect database name '{}': {message}", d.name),
            ),
            other => SqlError::router(format!("creating keyspace {}: {other}", d.name)),
        })?;
        let ps = placement
            .shards
            .first()
            .map(|e| e.ps.clone())
            .ok_or_else(|| SqlError::router("the new keyspace has no placement"))?;
        let rt = shared.engine.topo.table();
        // Every physical shard's data account gets the new schema before it is made (as
        // `vschema apply` grants it).
        let mut granted = Ok(());
        for rec in rt.shards.values() {
            granted = crate::backend::grant_data_account(rec, &[(d.name.as_str(), false)]).await;
            if granted.is_err() {
                break;
            }
        }
        let made = match granted {
            Ok(()) => shared.engine.run_on_shard(session, &rt, &ps, sql).await,
            Err(e) => Err(SqlError::router(e)),
        };
        let (affected, warnings) = match made {
            Ok(r) => r,
            Err(e) => {
                // The schema could not be made: no keyspace either.
                if let Ok(Some((_, rev))) = shared.topo.get_keyspace(&d.name).await {
                    let _ = shared.topo.delete_unsharded_keyspace(&d.name, rev).await;
                }
                return Err(e);
            }
        };
        wait_for(shared, &d.name, true).await;
        return shared
            .engine
            .answer_ok(session, io, affected, warnings)
            .await;
    }
    let Some(ks) = rt.keyspace(&d.name) else {
        let msg = format!("Can't drop database '{}'; database doesn't exist", d.name);
        // `IF EXISTS`, or the session's `sql_if_exists`, which implies it.
        let if_exists = d.if_clause
            || shared
                .engine
                .text_rows_at_home(session, b"SELECT @@session.sql_if_exists")
                .await
                .ok()
                .and_then(|rows| rows.into_iter().next())
                .and_then(|r| r.into_iter().next().flatten())
                .is_some_and(|v| v == b"1");
        if if_exists {
            return note(shared, session, io, 1008, msg).await;
        }
        return Err(SqlError::new(1008, "HY000", msg));
    };
    if ks.sharded {
        return Err(SqlError::unsupported(
            "DROP DATABASE of a sharded keyspace (its logical shards' schemas stay; drop its tables first)",
        ));
    }
    let ps = ks
        .placement
        .first()
        .cloned()
        .ok_or_else(|| SqlError::router("the keyspace has no placement"))?;
    // The session's own connections there may hold the schema (temporary tables, locks).
    shared.engine.release_reserved(session).await;
    let (affected, warnings) = match shared.engine.run_on_shard(session, &rt, &ps, sql).await {
        Ok(r) => r,
        // The schema went behind the router's back: the keyspace goes all the same.
        Err(e) if e.code == 1008 => (0, 0),
        Err(e) => return Err(e),
    };
    let rev = shared
        .topo
        .get_keyspace(&d.name)
        .await
        .map_err(|e| SqlError::router(format!("dropping keyspace {}: {e}", d.name)))?
        .map(|(_, r)| r);
    if let Some(rev) = rev {
        shared
            .topo
            .delete_unsharded_keyspace(&d.name, rev)
            .await
            .map_err(|e| SqlError::router(format!("dropping keyspace {}: {e}", d.name)))?;
    }
    // The data accounts' grant on the schema goes with it (a failure here is logged: the
    // keyspace is gone, and a grant on a schema that is not there reaches nothing).
    for rec in rt.shards.values() {
        if let Err(e) = crate::backend::revoke_data_account(rec, &[(d.name.as_str(), false)]).await
        {
            tracing::warn!(keyspace = %d.name, shard = %rec.name, error = %e, "revoking the data account's grant");
        }
    }
    wait_for(shared, &d.name, false).await;
    if session.keyspace.as_deref() == Some(d.name.as_str()) {
        session.keyspace = None;
    }
    shared
        .engine
        .answer_ok(session, io, affected, warnings)
        .await
}

/// OK with one note (`IF [NOT] EXISTS` that found nothing to do), as MariaDB answers.
async fn note(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    code: u16,
    msg: String,
) -> Result<(), SqlError> {
    session.conditions = Some(vec![("Note".to_string(), code, msg)]);
    shared.engine.answer_ok(session, io, 0, 1).await
}

/// Waits (up to 5 s) for this router's routing table to show the keyspace made (`present`)
/// or gone, so that the session's next statement sees it.
async fn wait_for(shared: &Shared, name: &str, present: bool) {
    for _ in 0..250 {
        if shared.engine.topo.table().keyspace(name).is_some() == present {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> Option<Result<DatabaseStatement, SqlError>> {
        let toks = crate::sql::lex::significant(sql.as_bytes(), &Default::default());
        DatabaseStatement::of(sql.as_bytes(), &toks)
    }

    #[test]
    fn database_statements_are_read_from_tokens() {
        let d = |create, name: &str, if_clause| {
            Some(Ok(DatabaseStatement {
                create,
                name: name.into(),
                if_clause,
            }))
        };
        assert_eq!(of("CREATE DATABASE foo"), d(true, "foo", false));
        assert_eq!(
            of("create schema if not exists `my db` CHARACTER SET latin1"),
            d(true, "my db", true)
        );
        assert_eq!(of("DROP DATABASE IF EXISTS foo"), d(false, "foo", true));
        assert_eq!(of("drop /* x */ schema foo;"), d(false, "foo", false));
        assert!(of("CREATE OR REPLACE DATABASE foo").is_some_and(|r| r.is_err()));
        assert!(of("CREATE TABLE foo (a int)").is_none());
        assert!(of("DROP TABLE foo").is_none());
    }
}
