//! The planner's entry points: one statement's text in, its [`super::Plan`] out. Parses the
//! statement and dispatches it by kind to the file that plans that kind.

use super::ast::{ident_parts, parse_one};
use super::plan::{Exec, Local, Plan, RouteKind, SavepointOp, StmtKind, Targets};
use super::resolve::Planner;
use super::standin::StandIn;

use crate::error::SqlError;
use crate::sql::rewrite::{self, Edits, Offsets};
use crate::topology::RoutingTable;
use sqlparser::ast::{visit_expressions, Expr, Statement};
use std::ops::ControlFlow;

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
    // What MariaDB runs: executable comments the server runs are read as plain text (unwrapped
    // in place, so spans stay those of the statement).
    if let Some(u) = crate::sql::lex::unwrap_executable(sql.as_bytes(), &Default::default()) {
        if let Ok(u) = String::from_utf8(u) {
            return plan_internal(&u, keyspace, last_insert_id, rt);
        }
    }
    if let Some(s) = StandIn::find(sql) {
        let plan = plan_parsed(&s.stand_in_sql, keyspace, last_insert_id, rt)?;
        return s.restore_plan(plan);
    }
    plan_parsed(sql, keyspace, last_insert_id, rt)
}

pub(super) fn plan_parsed(
    sql: &str,
    keyspace: Option<&str>,
    last_insert_id: u64,
    rt: &RoutingTable,
) -> Result<Plan, SqlError> {
    // A guard: the entry points unwrap the executable comments the server runs, so the parser
    // never sees one it would read otherwise than MariaDB.
    rewrite::check_executable_comments(sql).map_err(|c| {
        SqlError::unsupported(format!(
            "the executable comment {c}… (write it as /*!NNNNN … */ with a five-digit version, or without the comment)"
        ))
    })?;
    if crate::sql::rewrite::statement_end(sql) == 0 {
        return if crate::sql::rewrite::comments(sql).is_empty() {
            Err(SqlError::new(1065, "42000", "Query was empty"))
        } else {
            Ok(Plan::Local(Local::Nothing))
        };
    }
    if let Some(t) = super::local::transaction_start(sql) {
        return Ok(Plan::Local(Local::Begin(t)));
    }
    // Many rows of literals into a sharded table (a dump's): the rows are not parsed.
    if sql.len() >= super::insert::FAST_INSERT_BYTES {
        if let Some(p) = super::insert::fast_insert(sql, keyspace, last_insert_id, rt) {
            return p;
        }
    }
    // Parsed up to its last token: a `--` that ends the text is a comment to MariaDB (the
    // parser would take it for two minus signs); spans stay those of `sql`.
    let stmt = match parse_one(&sql[..crate::sql::rewrite::statement_end(sql)]) {
        Ok(s) => s,
        Err(e) => {
            if let Some(joined) = super::update_delete::comma_update(sql) {
                return plan_parsed(&joined, keyspace, last_insert_id, rt);
            }
            return match do_unparsed(sql) {
                Some(p) => p,
                None => set_unparsed(sql).ok_or(e),
            };
        }
    };
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

/// `DO expr, …`, which the SQL parser does not read: without tables it runs on any physical
/// shard as written (or the session's own connection there, for named locks), with them it is
/// refused — its subqueries would run on one physical shard without the keyspace.
fn do_unparsed(sql: &str) -> Option<Result<Plan, SqlError>> {
    let b = sql.as_bytes();
    let toks = crate::sql::lex::significant(b, &Default::default());
    if !toks.first()?.is_word(b, "DO") {
        return None;
    }
    if toks
        .iter()
        .any(|t| t.is_word(b, "SELECT") || t.is_word(b, "FROM"))
    {
        return Some(Err(SqlError::unsupported(
            "DO with a subquery outside an unsharded keyspace",
        )));
    }
    Some(Ok(Plan::Exec(Box::new(super::plan::Exec::plain(
        None,
        super::plan::StmtKind::Read,
        super::plan::RouteKind::Any,
        super::plan::Targets::Any {
            sql: sql.trim().trim_end_matches(';').to_string(),
        },
    )))))
}

/// A session `SET` the SQL parser does not read (`SET @a := 1`, `SET CHARACTER SET x`, `SET
/// NAMES DEFAULT`, …): replayed as written, like any `SET`, unless it touches what the router
/// keeps itself (`autocommit`, `sql_select_limit`, transaction characteristics) or is `SET
/// STATEMENT` (which the router does not carry). The scope check (no `GLOBAL`) ran before.
fn set_unparsed(sql: &str) -> Option<Plan> {
    let b = sql.as_bytes();
    let toks = crate::sql::lex::significant(b, &Default::default());
    if !toks.first()?.is_word(b, "SET") || toks.get(1).is_some_and(|t| t.is_word(b, "STATEMENT")) {
        return None;
    }
    let kept = ["AUTOCOMMIT", "SQL_SELECT_LIMIT", "TRANSACTION"];
    let names = |t: &crate::sql::lex::Token| {
        let n = t.bytes(b);
        let n = n.strip_prefix(b"@@").unwrap_or(n);
        kept.iter().any(|w| n.eq_ignore_ascii_case(w.as_bytes()))
    };
    if toks.iter().any(names) {
        return None;
    }
    Some(Plan::Local(Local::Set(
        sql.trim().trim_end_matches(';').to_string(),
    )))
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
    // As in planning: the text MariaDB runs, executable comments unwrapped in place.
    if let Some(u) = crate::sql::lex::unwrap_executable(sql.as_bytes(), &Default::default()) {
        if let Ok(u) = String::from_utf8(u) {
            return describe_target(&u, keyspace, rt);
        }
    }
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
    match &stmt {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_) => {}
        _ => return Ok(None),
    }
    let r = p.resolve_with_ctes(&stmt)?;
    let Some(ks) = r.ks else {
        return Ok(Some((sql.to_string(), None)));
    };
    let q = p.qualified(&r, Edits::default())?;
    Ok(Some((ks.fill(&q, 0).into_owned(), Some(ks.name.clone()))))
}

/// Refuses what reads the state a backend connection keeps of its last statement —
/// `ROW_COUNT()`, `FOUND_ROWS()`, `@@warning_count`, `@@error_count`: the router runs a
/// session's statements on pooled connections, so the connection answering need not be the
/// one that ran the session's last statement, and the answer would be another session's.
pub(super) fn refuse_last_statement_state(stmt: &Statement) -> Result<(), SqlError> {
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
pub(super) fn last_statement_variable(name: &str) -> Option<&'static str> {
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

impl<'a> Planner<'a> {
    pub(super) fn statement(&self, stmt: Statement) -> Result<Plan, SqlError> {
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
            Statement::StartTransaction {
                modes, modifier, ..
            } => {
                if !modes.is_empty() || modifier.is_some() {
                    // The plain text form was not recognised (comments, other options).
                    return Err(SqlError::unsupported(
                        "START TRANSACTION with these options or comments (write START TRANSACTION READ ONLY, READ WRITE or WITH CONSISTENT SNAPSHOT without comments)",
                    ));
                }
                Ok(Plan::Local(Local::Begin(Default::default())))
            }
            Statement::Savepoint { name } => Ok(Plan::Local(Local::Savepoint(SavepointOp::Set(
                name.value.clone(),
            )))),
            Statement::ReleaseSavepoint { name } => Ok(Plan::Local(Local::Savepoint(
                SavepointOp::Release(name.value.clone()),
            ))),
            Statement::Rollback {
                savepoint: Some(name),
                chain: false,
                ..
            } => Ok(Plan::Local(Local::Savepoint(SavepointOp::RollbackTo(
                name.value.clone(),
            )))),
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
                    Targets::Reference { .. } | Targets::Verbatim { .. } => {}
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
            | Statement::ShowCharset(_) => Ok(Plan::Exec(Box::new(Exec::plain(
                None,
                StmtKind::Read,
                RouteKind::Any,
                Targets::Any {
                    sql: self.sql.to_string(),
                },
            )))),
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
}
