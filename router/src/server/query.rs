//! `COM_QUERY`: one text statement, planned (through the plan cache), run and recorded.

use super::shared::Shared;
use crate::error::SqlError;
use crate::planner;
use crate::session::Session;
use crate::sql::classify::VerbatimKind;
use crate::wire::PacketIo;

/// The metric series of a connection's last statement shape, so a run of statements with the
/// same route and keyspace does not look its series up every time.
#[derive(Default)]
pub(super) struct SeriesCache {
    pub(super) last: Option<(
        &'static str,
        String,
        prometheus::IntCounter,
        prometheus::Histogram,
    )>,
}

impl SeriesCache {
    /// Makes `(route, ks)` the series of the statement about to run; the keyspace's name is
    /// copied only when it changes.
    pub(super) fn select(&mut self, m: &crate::metrics::Metrics, route: &'static str, ks: &str) {
        if !matches!(&self.last, Some((r, k, _, _)) if *r == route && k == ks) {
            self.last = Some((
                route,
                ks.to_string(),
                m.queries.with_label_values(&[route, ks, "ok"]),
                m.latency.with_label_values(&[route]),
            ));
        }
    }

    /// The selected series: its route, keyspace, `ok` counter and latency histogram.
    pub(super) fn current(
        &self,
    ) -> Option<(
        &'static str,
        &str,
        &prometheus::IntCounter,
        &prometheus::Histogram,
    )> {
        self.last
            .as_ref()
            .map(|(r, k, c, h)| (*r, k.as_str(), c, h))
    }
}

/// Runs one statement and keeps its diagnostics for the next: the conditions its backend
/// reported (`SHOW WARNINGS`), or its error. Statements that read the diagnostics answer from
/// them without clearing them, as in MariaDB.
pub(super) async fn query(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    sql: &[u8],
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    let text = std::str::from_utf8(sql);
    if let Some(d) = text
        .ok()
        .and_then(Diagnostics::of)
        // Known only to a reserved backend connection: asked there.
        .filter(|d| *d != Diagnostics::FoundRows || session.last_found_rows.is_some())
    {
        // Boxed: a cold path kept out of every statement's future.
        return Box::pin(answer_diagnostics(
            shared,
            session,
            io,
            d,
            text.unwrap_or(""),
        ))
        .await;
    }
    session.start_statement(io);
    if let Some(s) = &session.slot {
        s.running(sql, session.keyspace.as_deref());
    }
    let r = statement(shared, session, io, sql, text, series).await;
    if let Some(s) = &session.slot {
        s.idle();
    }
    session.record_statement(&r, io);
    r
}

/// Statements that read the last statement's diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diagnostics {
    ShowWarnings,
    ShowErrors,
    CountWarnings,
    CountErrors,
    WarningCount,
    ErrorCount,
    /// `SELECT ROW_COUNT()`.
    RowCount,
    /// `SELECT FOUND_ROWS() [[AS] alias]`.
    FoundRows,
}

impl Diagnostics {
    /// Recognises `SHOW WARNINGS`, `SHOW ERRORS`, `SHOW COUNT(*) WARNINGS|ERRORS` and
    /// `SELECT @@warning_count|@@error_count` (with `session.`), alone.
    fn of(sql: &str) -> Option<Diagnostics> {
        // Cheap first: most statements are neither `SHOW …` nor `SELECT @@…`.
        let head = sql.trim_start().as_bytes();
        let starts = |w: &[u8]| {
            head.get(..w.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(w))
        };
        let row_count = || {
            sql.as_bytes()
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"ROW_COUNT"))
        };
        let found_rows = || {
            sql.as_bytes()
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"FOUND_ROWS"))
        };
        if !(starts(b"SHOW")
            || starts(b"SELECT") && (sql.contains("@@") || row_count() || found_rows()))
        {
            return None;
        }
        let end = crate::sql::rewrite::statement_end(sql);
        if !crate::sql::rewrite::comments(&sql[..end]).is_empty() {
            return None;
        }
        let words: Vec<String> = sql[..end]
            .split_ascii_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        Some(match w.as_slice() {
            ["SHOW", "WARNINGS"] => Diagnostics::ShowWarnings,
            ["SHOW", "ERRORS"] => Diagnostics::ShowErrors,
            ["SHOW", "COUNT(*)", "WARNINGS"] => Diagnostics::CountWarnings,
            ["SHOW", "COUNT(*)", "ERRORS"] => Diagnostics::CountErrors,
            ["SELECT", "@@WARNING_COUNT"] | ["SELECT", "@@SESSION.WARNING_COUNT"] => {
                Diagnostics::WarningCount
            }
            ["SELECT", "@@ERROR_COUNT"] | ["SELECT", "@@SESSION.ERROR_COUNT"] => {
                Diagnostics::ErrorCount
            }
            ["SELECT", "ROW_COUNT()"] => Diagnostics::RowCount,
            ["SELECT", "FOUND_ROWS()"] => Diagnostics::FoundRows,
            ["SELECT", "FOUND_ROWS()", "AS", a] | ["SELECT", "FOUND_ROWS()", a]
                if !is_clause_word(a) =>
            {
                Diagnostics::FoundRows
            }
            _ => return None,
        })
    }
}

/// Answers a diagnostics statement from the session.
async fn answer_diagnostics(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    d: Diagnostics,
    sql: &str,
) -> Result<(), SqlError> {
    use crate::wire::resultset::ColumnDef;
    let errors = session
        .conditions
        .as_ref()
        .map(|c| c.iter().filter(|x| x.0 == "Error").count());
    let one = |name: &str, v: u64| {
        (
            vec![ColumnDef::bigint(name)],
            vec![vec![Some(v.to_string().into_bytes())]],
        )
    };
    let (defs, rows) = match d {
        Diagnostics::ShowWarnings | Diagnostics::ShowErrors => {
            let Some(list) = &session.conditions else {
                return Err(SqlError::unsupported(
                    "SHOW WARNINGS after a statement whose warnings were not kept (several logical shards answered it)",
                ));
            };
            let rows = list
                .iter()
                .filter(|c| d == Diagnostics::ShowWarnings || c.0 == "Error")
                .map(|(l, c, m)| {
                    vec![
                        Some(l.clone().into_bytes()),
                        Some(c.to_string().into_bytes()),
                        Some(m.clone().into_bytes()),
                    ]
                })
                .collect();
            (
                vec![
                    ColumnDef::text("Level"),
                    ColumnDef::bigint("Code"),
                    ColumnDef::text("Message"),
                ],
                rows,
            )
        }
        Diagnostics::RowCount => {
            let v = session.row_count;
            (
                // Named as the client wrote it, as MariaDB names the column.
                vec![ColumnDef::bigint(sql_text_after_select(sql))],
                vec![vec![Some(v.to_string().into_bytes())]],
            )
        }
        Diagnostics::FoundRows => {
            let v = session.last_found_rows.unwrap_or(0);
            // A one-row result set: the next `FOUND_ROWS()` is 1, as in MariaDB.
            session.last_found_rows = Some(1);
            session.row_count = -1;
            let text = sql_text_after_select(sql);
            let name = match text.split_ascii_whitespace().collect::<Vec<_>>().as_slice() {
                [_, "AS" | "as" | "As" | "aS", alias] | [_, alias] if !is_clause_word(alias) => {
                    alias.trim_matches(|c| c == '`' || c == '"' || c == '\'')
                }
                _ => text,
            };
            (
                vec![ColumnDef::bigint(name)],
                vec![vec![Some(v.to_string().into_bytes())]],
            )
        }
        Diagnostics::CountWarnings => {
            one("@@session.warning_count", u64::from(session.warning_count))
        }
        Diagnostics::WarningCount => one("@@warning_count", u64::from(session.warning_count)),
        Diagnostics::CountErrors | Diagnostics::ErrorCount => {
            let Some(n) = errors else {
                return Err(SqlError::unsupported(
                    "@@error_count after a statement whose warnings were not kept (several logical shards answered it)",
                ));
            };
            let name = if d == Diagnostics::CountErrors {
                "@@session.error_count"
            } else {
                "@@error_count"
            };
            one(name, n as u64)
        }
    };
    // Each answers with a result set: the next ROW_COUNT() is -1, as in MariaDB.
    session.row_count = -1;
    shared.engine.local_result(session, io, defs, rows).await
}

/// A word that starts a clause, which cannot be an alias.
fn is_clause_word(w: &str) -> bool {
    [
        "FROM", "WHERE", "LIMIT", "INTO", "FOR", "UNION", "ORDER", "GROUP", "HAVING", "AS",
    ]
    .iter()
    .any(|c| c.eq_ignore_ascii_case(w))
}

/// The text of a `SELECT x` after its `SELECT`, as the client wrote it.
fn sql_text_after_select(sql: &str) -> &str {
    let end = crate::sql::rewrite::statement_end(sql);
    let text = sql[..end].trim();
    text.get(6..).map(str::trim_start).unwrap_or(text)
}

/// Plans and runs one statement: first what its tokens say (the scope it must stay in, and
/// whether it goes to an unsharded keyspace as sent), then, for the rest, the planner.
async fn statement(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    bytes: &[u8],
    text: Result<&str, std::str::Utf8Error>,
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    // One lexing of the statement serves every check below.
    let mut toks = crate::sql::lex::significant(bytes, &session.lex);
    let first = |w: &str| toks.first().is_some_and(|t| t.is_word(bytes, w));
    super::status::count(session, bytes, &toks);
    // `COMMIT|ROLLBACK [WORK] [AND [NO] CHAIN] [[NO] RELEASE]`.
    if first("COMMIT") || first("ROLLBACK") {
        if let Some((chain, release)) = end_options(bytes, &toks) {
            let start = session.txn_start.clone();
            shared.engine.finish_txn(session, first("COMMIT")).await?;
            if chain {
                session.explicit_txn = true;
                session.txn_start = start;
            }
            super::shared::ok(io, session).await?;
            if release {
                if let Some(s) = &session.slot {
                    s.kill();
                }
            }
            return Ok(());
        }
    }
    // The session's own counters.
    if first("SHOW") && super::status::is_session_status(bytes, &toks) {
        return Box::pin(super::status::run(shared, session, io, bytes)).await;
    }
    // The router's own sessions: `SHOW PROCESSLIST`, `KILL id`.
    if first("KILL") || first("SHOW") {
        if let Some(p) = super::processes::ProcessStatement::of(bytes, &toks) {
            return Box::pin(super::processes::run(shared, session, io, p?)).await;
        }
    }
    let mut rt = shared.engine.topo.table();
    if first("LOCK") || first("UNLOCK") {
        if let Some(r) = Box::pin(sharded_locks(shared, session, io, &rt, bytes)).await {
            return r;
        }
    }
    // `CONNECTION_ID()` is the router's connection id, as the process list shows it.
    let substituted;
    let (bytes, text) = if toks.iter().any(|t| t.is_word(bytes, "CONNECTION_ID")) {
        match crate::sql::rewrite::connection_id(bytes, &session.lex, session.connection_id) {
            Some(b) => {
                substituted = b;
                toks = crate::sql::lex::significant(&substituted, &session.lex);
                (substituted.as_slice(), std::str::from_utf8(&substituted))
            }
            None => (bytes, text),
        }
    } else {
        (bytes, text)
    };
    let class = crate::sql::classify::classify_tokens(bytes, &toks, &session.lex);
    // `CREATE`/`DROP DATABASE`: an unsharded keyspace made or dropped.
    if toks
        .first()
        .is_some_and(|t| t.is_word(bytes, "CREATE") || t.is_word(bytes, "DROP"))
    {
        if let Some(d) = super::databases::DatabaseStatement::of(bytes, &toks) {
            return Box::pin(super::databases::run(shared, session, io, bytes, d?)).await;
        }
    }
    let calc = class.calc_found_rows;
    // A `SELECT` or `SHOW` that reads no table (`SELECT @@autocommit`) opens no transaction
    // when autocommit is off, as on one server.
    // (A function may be a stored one that writes, which must join the session's
    // transaction: a statement calling one is not such a read.)
    session.opens_no_txn = !class.from
        && toks
            .first()
            .is_some_and(|t| t.is_word(bytes, "SELECT") || t.is_word(bytes, "SHOW"))
        && !toks
            .iter()
            .any(|t| t.kind == crate::sql::lex::Kind::Punct && bytes[t.start] == b'(');
    // Connection-local state a statement makes that the planned path must keep on one
    // connection: named locks, and user variables assigned other than by `SET` (whose
    // values are carried like a `SET`'s).
    // A statement that makes connection-local state (a user variable, a temporary table, a
    // prepared statement, a named lock) changes the session's state.
    if class.local_state.is_some_and(|l| l.reserves) {
        session.mark_state_changed();
    }
    let (local_vars, named_locks) = match class.local_state {
        Some(_) if !toks.first().is_some_and(|t| t.is_word(bytes, "SET")) => (
            crate::sql::classify::assigned_user_variables(bytes, &session.lex).0,
            toks.windows(2).any(|w| {
                w[1].kind == crate::sql::lex::Kind::Punct
                    && bytes[w[1].start] == b'('
                    && NAMED_LOCK_FUNCTIONS.iter().any(|f| w[0].is_word(bytes, f))
            }),
        ),
        _ => (Vec::new(), false),
    };
    planner::passthrough::check_scope(&class, &session.user, session.grants.admin, &rt)?;
    // `LOAD DATA LOCAL INFILE` into a sharded table: loaded by MariaDB, then routed.
    if toks.first().is_some_and(|t| t.is_word(bytes, "LOAD")) {
        if let Some(l) = load_into_sharded(bytes, &toks, session, &rt) {
            if !session.grants.may_use(&l.keyspace) {
                return Err(crate::session::Grants::denied(&session.user, &l.keyspace));
            }
            if session.grants.read_only {
                return Err(crate::session::Grants::read_only_refusal(&session.user));
            }
            return Box::pin(shared.engine.load_sharded(session, l, io)).await;
        }
    }
    // What an admin runs on a whole server opens no transaction (nor does a `SET GLOBAL` on
    // one server).
    let admin_statement = session.grants.admin && class.reach.is_some() && class.admin.is_some();
    let leads = |w: &str| toks.first().is_some_and(|t| t.is_word(bytes, w));
    let read_lock = admin_statement && leads("FLUSH") && class.admin.is_some_and(|a| a.reserves);
    let unlock = leads("UNLOCK");
    let set_global = admin_statement
        && matches!(&class.reach, Some(crate::sql::classify::Reach::Privilege { what, .. }) if what == "SET GLOBAL");
    if admin_statement && class.admin.is_some_and(|a| a.kind != VerbatimKind::Read) {
        session.opens_no_txn = true;
        // A session's own variables set beside a global one would be set on one backend
        // connection only, not carried: refused rather than lost.
        let items = crate::sql::classify::set_items(bytes, &session.lex).unwrap_or_default();
        if items.iter().any(|i| i.target.is_some()) {
            return Err(SqlError::new(
                1235,
                "42000",
                "This version of Tessera doesn't yet support 'SET of global and session or user variables in one statement' (set them in separate statements)",
            ));
        }
    }
    // One `run` for both paths (one copy of its future in this one's).
    // Whether a read refused by the planner or the merge may be answered over gathered rows.
    let mut may_gather = false;
    let lossy;
    let carried;
    let with_columns;
    let unwrapped;
    #[allow(clippy::type_complexity)]
    let (plan, shown, fingerprint, started, home): (
        planner::Plan,
        &str,
        String,
        std::time::Instant,
        Option<String>,
    ) = match planner::passthrough::verbatim(
        bytes,
        &class,
        session.keyspace.as_deref(),
        &session.reserved_ps,
        &rt,
        session.grants.admin,
    )
    .or_else(|| planner::passthrough::server_info(bytes, &class))
    .or_else(|| planner::passthrough::show_create_database(bytes, &toks, &rt))
    .or_else(|| planner::passthrough::keys_toggle(bytes, &toks, session.keyspace.as_deref(), &rt))
    {
        Some(plan) => {
            let started = std::time::Instant::now();
            // Every keyspace a statement sent as written names must be the user's.
            if let Some(k) = class
                .qualifiers
                .iter()
                .filter_map(|q| std::str::from_utf8(q).ok())
                .find(|q| rt.keyspace(q).is_some() && !session.grants.may_use(q))
            {
                return Err(crate::session::Grants::denied(&session.user, k));
            }
            session.schema_filter = matches!(
                &plan,
                planner::Plan::Exec(e) if matches!(e.targets, planner::Targets::Verbatim { .. })
            ) && class
                .qualifiers
                .iter()
                .any(|q| q.eq_ignore_ascii_case(b"information_schema"));
            // Only the backend connection that runs it knows what such a read found.
            if calc {
                session.calc_found = Some(None);
            }
            // For the query log, statistics and shadows only (which take text): what is
            // sent is `bytes`, in the plan.
            lossy = String::from_utf8_lossy(bytes);
            let shown = lossy.trim();
            // The plan cache's normalised text (a direct scan for common statements), as
            // for planned statements.
            let fingerprint = crate::sql::shape::shape(shown)
                .map(|s| s.key)
                .unwrap_or_else(|| crate::sql::fingerprint(shown));
            (plan, shown, fingerprint, started, None)
        }
        None if admin_statement => return Err(admin_needs_unsharded(session)),
        None => {
            // `INSERT … VALUES` without a column list into a sharded or reference table
            // (what dumps write): the table's columns, in order, spliced in so that the
            // shard key can be found.
            let inserts = toks
                .first()
                .is_some_and(|t| t.is_word(bytes, "INSERT") || t.is_word(bytes, "REPLACE"));
            let added = if inserts {
                Box::pin(add_column_list(shared, session, &rt, bytes)).await?
            } else {
                None
            };
            let (bytes, text) = match added {
                Some(b) => {
                    with_columns = b;
                    (with_columns.as_slice(), std::str::from_utf8(&with_columns))
                }
                None => (bytes, text),
            };
            // The planner reads the text MariaDB runs: executable comments the server runs
            // unwrapped in place (the same offsets, so what is spliced lands where it
            // would have).
            let (bytes, text) = match crate::sql::lex::unwrap_executable(bytes, &session.lex) {
                Some(u) => {
                    unwrapped = u;
                    (unwrapped.as_slice(), std::str::from_utf8(&unwrapped))
                }
                None => (bytes, text),
            };
            // String literals the parser would misread (not UTF-8, another character set,
            // a backslash under NO_BACKSLASH_ESCAPES) are read as stand-ins and put back as
            // the client's bytes in what is sent.
            carried = crate::sql::carry::carry(bytes, &session.lex)?;
            let sql = match &carried {
                Some(c) => c.text.as_str(),
                None => text.map_err(|e| crate::error::not_utf8("statement", bytes, e))?,
            };
            // Without its trailing `;` (never one inside a trailing comment: the text is
            // scanned only when it ends in `;` and may hold a comment).
            let trimmed = if sql.trim_end().ends_with(';') && sql.contains(['#', '-', '/']) {
                let end = crate::sql::rewrite::statement_end(sql);
                if sql[end..].contains(';') {
                    sql[..end].trim()
                } else {
                    sql.trim()
                }
            } else {
                sql.trim().trim_end_matches(';').trim_end()
            };
            // `SET STATEMENT vars FOR s`: `s` is planned, and every statement sent for it
            // starts with `SET STATEMENT vars FOR`.
            let (trimmed, statement_prefix) =
                match crate::sql::rewrite::set_statement_body(trimmed.as_bytes(), &session.lex) {
                    Some(at) => {
                        let (prefix, body) = trimmed.split_at(at);
                        check_statement_prefix(prefix)?;
                        (body, Some(prefix.to_string()))
                    }
                    None => (trimmed, None),
                };
            // Compared as bytes: the text may hold a multi-byte character across byte 9.
            if let Some(inner) = trimmed
                .as_bytes()
                .get(..9)
                .filter(|p| p.eq_ignore_ascii_case(b"VEXPLAIN "))
                .and_then(|_| trimmed.get(9..))
            {
                let inner = inner.trim_start();
                let ks = session.keyspace.as_deref();
                // As the statement would run: a read refused by the planner may be gathered.
                let plan = match planner::plan(inner, ks, &rt) {
                    Err(e) if e.code == 1235 => {
                        planner::gather::plan(inner, ks, &rt).map_err(|_| e)?
                    }
                    r => r?,
                };
                return shared.engine.vexplain(session, plan, io).await;
            }
            let started = std::time::Instant::now();
            let (mut planned, mut fingerprint) = shared.plans.plan_keyed(
                trimmed,
                session.keyspace.as_deref(),
                session.last_insert_id,
                &rt,
            );
            // A table `tessera movetables` is switching over: the statement waits for the
            // switch (bounded), then runs where the table is served.
            while matches!(&planned, Err(e) if e.is_switching())
                && started.elapsed() < crate::error::SWITCH_HOLD
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                rt = shared.engine.topo.table();
                (planned, fingerprint) = shared.plans.plan_keyed(
                    trimmed,
                    session.keyspace.as_deref(),
                    session.last_insert_id,
                    &rt,
                );
            }
            let fingerprint = fingerprint.unwrap_or_else(|| "(does not tokenise)".to_string());
            // A read the planner cannot split over the logical shards is answered by MariaDB
            // over its sharded tables' gathered rows, when nothing else rules it out.
            // (Not with `sql_auto_is_null` on: a gathered read's pushed-down `IS NULL` would
            // be each logical shard connection's own last insert.)
            may_gather = !calc
                && !session.auto_is_null
                && local_vars.is_empty()
                && !named_locks
                && statement_prefix.is_none()
                && carried.as_ref().is_none_or(|c| c.held.is_empty());
            let planned = match planned {
                Err(e) if e.code == 1235 && may_gather => {
                    planner::gather::plan(trimmed, session.keyspace.as_deref(), &rt).map_err(|_| e)
                }
                // What the router cannot parse in an unsharded keyspace is the server's to
                // run or refuse (with its own message), unless it may change the session.
                Err(e) if e.code == 1064 => {
                    match unparsed_verbatim(bytes, &class, session.keyspace.as_deref(), &rt) {
                        Some(p) => Ok(p),
                        // A statement MariaDB refuses as well gets MariaDB's own message.
                        None => Err(shared
                            .engine
                            .syntax_error(session, bytes)
                            .await
                            .filter(|m| m.code == 1064)
                            .unwrap_or(e)),
                    }
                }
                other => other,
            };
            let plan = match planned {
                Ok(p) => p,
                Err(e) => {
                    shared.overview.record(&crate::overview::Finished {
                        fingerprint: &fingerprint,
                        sql: trimmed,
                        route: "none",
                        keyspace: session.keyspace.as_deref().unwrap_or(""),
                        shards: 0,
                        rows: 0,
                        elapsed: started.elapsed(),
                        error: Some(&e.message),
                    });
                    let ks = session.keyspace.clone().unwrap_or_default();
                    shared
                        .metrics
                        .queries
                        .with_label_values(&["none", ks.as_str(), "error"])
                        .inc();
                    if rt.candidate.is_some() {
                        shared.shadow.observe(trimmed, session.keyspace.as_deref());
                    }
                    return Err(e);
                }
            };
            let plan = match plan {
                planner::Plan::Exec(mut e) if calc && e.kind == planner::StmtKind::Read => {
                    e.found_rows = true;
                    planner::Plan::Exec(e)
                }
                plan => plan,
            };
            // An `information_schema` question any physical shard answers (no keyspace named in
            // it) shows only the schemas the session may see.
            if let planner::Plan::Exec(e) = &plan {
                session.schema_filter = matches!(e.targets, planner::Targets::Any { .. })
                    && !e.metadata
                    && class
                        .qualifiers
                        .iter()
                        .any(|q| q.eq_ignore_ascii_case(b"information_schema"));
            }
            let plan = match (plan, statement_prefix) {
                (planner::Plan::Exec(mut e), Some(p)) => {
                    e.statement_prefix = Some(p);
                    planner::Plan::Exec(e)
                }
                (planner::Plan::Local(_), Some(_)) => {
                    return Err(SqlError::unsupported(
                        "SET STATEMENT … FOR a statement the router answers itself",
                    ));
                }
                (plan, None) => plan,
            };
            let plan = match (plan, carried.as_ref().map(|c| &c.held)) {
                (planner::Plan::Exec(mut e), Some(held)) => {
                    e.held = Some(std::sync::Arc::new(held.clone()));
                    planner::Plan::Exec(e)
                }
                (planner::Plan::Local(_), Some(held)) if !held.is_empty() => {
                    return Err(SqlError::unsupported(
                            "a string literal that is not UTF-8 text, or holds a backslash under NO_BACKSLASH_ESCAPES, in a statement the router answers itself",
                        ));
                }
                (plan, _) => plan,
            };
            // Named locks and user variables from a statement without tables live on the
            // session's reserved connection at home; with tables they would be left on
            // pooled connections of the logical shards: refused.
            let home = match &plan {
                _ if !named_locks && local_vars.is_empty() => None,
                planner::Plan::Exec(e) if matches!(e.targets, planner::Targets::Any { .. }) => {
                    Some(shared.engine.reserve_home(session, &rt).await?)
                }
                planner::Plan::Exec(_) => {
                    return Err(SqlError::unsupported(
                            "assigning user variables (other than by SET) or taking named locks in a statement over a sharded keyspace's tables (do it in a statement without tables)",
                        ));
                }
                planner::Plan::Local(_) => None,
            };
            (plan, trimmed, fingerprint, started, home)
        }
    };
    // The session keeps its own values of what a SET GLOBAL changes, as on one server.
    // (Only an admin's `SET GLOBAL` looks up its server: nothing on other statements' path.)
    let home_ps = session
        .keyspace
        .as_deref()
        .filter(|_| set_global)
        .and_then(|k| rt.keyspace(k))
        .and_then(|k| k.placement.first().cloned());
    let kept_sets = match &home_ps {
        Some(ps) => {
            let before = session.sets.clone();
            let mut names = crate::sql::classify::global_targets(bytes, &toks, 1);
            names.retain(|n| !n.is_empty());
            shared.engine.keep_session_values(session, ps, &names).await;
            Some(before)
        }
        _ => None,
    };
    let r = run(
        shared,
        session,
        io,
        plan,
        shown,
        &fingerprint,
        started,
        &rt,
        series,
        may_gather,
    )
    .await;
    if let (Some(before), Err(_)) = (kept_sets, &r) {
        session.sets = before;
    }
    if r.is_ok() {
        // New backend connections take the server's new globals.
        if let Some(ps) = &home_ps {
            shared.engine.backends.renew(ps);
        }
        if read_lock {
            session.global_read_lock = true;
        } else if unlock {
            session.global_read_lock = false;
        }
    }
    match home {
        Some(ps) if r.is_ok() && !local_vars.is_empty() => {
            shared
                .engine
                .carry_user_variables(session, &ps, &local_vars)
                .await
        }
        _ => r,
    }
}

/// Refuses `SET STATEMENT` variables that would change how the router itself must read or
/// limit the statement: `sql_mode` with `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES` (the router
/// lexes by the session's mode), `sql_select_limit` (it would cap each logical shard, not the
/// result).
fn check_statement_prefix(prefix: &str) -> Result<(), SqlError> {
    let upper = prefix.to_ascii_uppercase();
    if upper.contains("SQL_SELECT_LIMIT")
        || upper.contains("NO_BACKSLASH_ESCAPES")
        || upper.contains("ANSI")
    {
        return Err(SqlError::unsupported(
            "SET STATEMENT of sql_select_limit, or of an sql_mode with ANSI_QUOTES, ANSI or NO_BACKSLASH_ESCAPES, outside an unsharded keyspace",
        ));
    }
    Ok(())
}

/// Functions of named locks: state of the backend connection that takes them.
const NAMED_LOCK_FUNCTIONS: &[&str] = &[
    "GET_LOCK",
    "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS",
    "IS_USED_LOCK",
    "IS_FREE_LOCK",
];

/// `LOCK TABLES` and `UNLOCK TABLES` in a session of a sharded keyspace (see
/// [`crate::engine::Engine::lock_tables`]); `None` for other statements and sessions.
async fn sharded_locks(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    rt: &crate::topology::RoutingTable,
    bytes: &[u8],
) -> Option<Result<(), SqlError>> {
    let toks = crate::sql::lex::significant(bytes, &session.lex);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(bytes, w));
    if is(0, "UNLOCK") && (is(1, "TABLES") || is(1, "TABLE")) && !session.locked_ps.is_empty() {
        let r = shared.engine.unlock_tables(session).await;
        return Some(match r {
            Ok(()) => super::shared::ok(io, session).await,
            Err(e) => Err(e),
        });
    }
    let items = crate::sql::rewrite::lock_tables(bytes, &session.lex)?;
    let mut ks: Option<String> = None;
    let mut list = Vec::new();
    for it in &items {
        let k = match &it.schema {
            Some(s) => s.clone(),
            None => session.keyspace.clone()?,
        };
        if !rt.keyspace(&k).is_some_and(|k| k.sharded) {
            return None;
        }
        if ks.as_ref().is_some_and(|prev| *prev != k) {
            return Some(Err(SqlError::unsupported(
                "LOCK TABLES over several keyspaces",
            )));
        }
        if it.alias {
            return Some(Err(SqlError::unsupported(
                "LOCK TABLES with an alias on a sharded keyspace",
            )));
        }
        ks = Some(k);
        list.push((it.table.clone(), it.mode.clone()));
    }
    let ks = ks?;
    let r = shared.engine.lock_tables(session, &ks, &list).await;
    Some(match r {
        Ok(()) => super::shared::ok(io, session).await,
        Err(e) => Err(e),
    })
}

/// `bytes` with the column list of an `INSERT … VALUES` that has none, when its table is a
/// sharded keyspace's (sharded or reference); `None` otherwise.
async fn add_column_list(
    shared: &Shared,
    session: &Session,
    rt: &crate::topology::RoutingTable,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, SqlError> {
    let Some(t) = crate::sql::rewrite::insert_without_columns(bytes, &session.lex) else {
        return Ok(None);
    };
    let ks = match &t.schema {
        Some(s) => std::str::from_utf8(s).ok(),
        None => session.keyspace.as_deref(),
    };
    let (Some(ks), Ok(table)) = (
        ks.and_then(|k| rt.keyspace(k)),
        std::str::from_utf8(&t.table),
    ) else {
        return Ok(None);
    };
    if !ks.sharded || ks.table(table).is_none() {
        return Ok(None);
    }
    let cols = shared
        .engine
        .columns
        .columns(&shared.engine.backends, rt, &ks.name, table)
        .await?;
    let list: Vec<String> = cols.iter().map(|c| crate::sql::quote_ident(c)).collect();
    let mut out = Vec::with_capacity(bytes.len() + 16 * cols.len());
    out.extend_from_slice(&bytes[..t.at]);
    out.extend_from_slice(format!(" ({})", list.join(", ")).as_bytes());
    out.extend_from_slice(&bytes[t.at..]);
    Ok(Some(out))
}

/// Runs a planned statement and records it: `trimmed` is its text as logs and shadows show it.
#[allow(clippy::too_many_arguments)]
async fn run(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    plan: planner::Plan,
    trimmed: &str,
    fingerprint: &str,
    started: std::time::Instant,
    rt: &std::sync::Arc<crate::topology::RoutingTable>,
    series: &mut SeriesCache,
    may_gather: bool,
) -> Result<(), SqlError> {
    let route = plan.route().as_str();
    let ks = match &plan {
        planner::Plan::Exec(e) => e.keyspace.as_deref(),
        planner::Plan::Local(_) => None,
    }
    .or(session.keyspace.as_deref())
    .unwrap_or_default();
    tracing::debug!(route = %route, keyspace = %ks, "planned");
    series.select(&shared.metrics, route, ks);
    // The result shadow: autocommit reads of a keyspace that has one, sampled.
    let spec = match &plan {
        planner::Plan::Exec(e)
            if e.kind == planner::StmtKind::Read
                && !session.in_transaction()
                && session.txn_conns.is_empty() =>
        {
            e.keyspace
                .as_ref()
                .and_then(|k| rt.result_shadows.get(k))
                .cloned()
        }
        _ => None,
    };
    if let Some(spec) = &spec {
        io.capture = shared.results.start(spec, trimmed);
    }
    let shards = match &plan {
        planner::Plan::Exec(e) => match &e.targets {
            planner::Targets::Ls { ls, .. } => ls.len(),
            planner::Targets::PerLs(v) => v.len(),
            _ => 1,
        },
        planner::Plan::Local(_) => 0,
    };
    io.rows = 0;
    let seq = io.seq;
    let split_read = matches!(&plan, planner::Plan::Exec(e) if e.kind == planner::StmtKind::Read);
    let mut r = shared
        .engine
        .execute_planned(session, plan, io, Some(rt))
        .await;
    // A read the merge refused before answering anything (sums of floating-point numbers,
    // …): answered over gathered rows instead.
    if matches!(&r, Err(e) if e.code == 1235) && may_gather && split_read && io.seq == seq {
        if let Ok(p) = planner::gather::plan(trimmed, session.keyspace.as_deref(), rt) {
            r = Box::pin(shared.engine.execute_planned(session, p, io, Some(rt))).await;
        }
    }
    if let Some(c) = io.capture.take() {
        if let (Ok(()), Some(spec)) = (&r, spec) {
            shared.results.finish(spec, trimmed.to_string(), c);
        }
    }
    if rt.candidate.is_some() {
        shared.shadow.observe(trimmed, session.keyspace.as_deref());
    }
    finished(
        shared,
        io,
        fingerprint,
        trimmed,
        shards,
        started,
        &r,
        series,
    );
    r
}

/// Records a statement that ran (its route and keyspace are `series`' selected ones): the
/// shape statistics (and query log), the query counter and the latency histogram.
#[allow(clippy::too_many_arguments)]
pub(super) fn finished(
    shared: &Shared,
    io: &PacketIo,
    fingerprint: &str,
    sql: &str,
    shards: usize,
    started: std::time::Instant,
    r: &Result<(), SqlError>,
    series: &SeriesCache,
) {
    let elapsed = started.elapsed();
    let Some((route, ks, ok, latency)) = series.current() else {
        return;
    };
    shared.overview.record(&crate::overview::Finished {
        fingerprint,
        sql,
        route,
        keyspace: ks,
        shards,
        rows: io.rows,
        elapsed,
        error: r.as_ref().err().map(|e| e.message.as_str()),
    });
    if r.is_ok() {
        ok.inc();
    } else {
        shared
            .metrics
            .queries
            .with_label_values(&[route, ks, "error"])
            .inc();
    }
    latency.observe(elapsed.as_secs_f64());
}

/// The refusal of an admin's statement on a whole server outside an unsharded keyspace: it
/// runs on the physical shard that holds the session's current unsharded keyspace, and a
/// sharded keyspace (or none) names no one server.
fn admin_needs_unsharded(session: &Session) -> SqlError {
    SqlError::new(
        1227,
        "42000",
        format!(
            "Access denied; a statement on a whole database server runs, for an admin user, on the physical shard that holds the session's current unsharded keyspace (USE one first; the current keyspace is {})",
            session
                .keyspace
                .as_deref()
                .map_or_else(|| "none".to_string(), |k| format!("'{k}'"))
        ),
    )
}

/// `LOAD DATA … LOCAL INFILE 'f' [REPLACE | IGNORE] INTO TABLE [ks.]t …` where `t` is a sharded
/// table: the load, its table name qualified with the keyspace's reference schema (where
/// `engine/load.rs` makes a temporary table of that name). `None` for anything else.
fn load_into_sharded(
    sql: &[u8],
    toks: &[crate::sql::lex::Token],
    session: &Session,
    rt: &crate::topology::RoutingTable,
) -> Option<crate::engine::load::LoadSharded> {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let infile = toks.iter().position(|t| t.is_word(sql, "INFILE"))?;
    if !is(1, "DATA") || !infile.checked_sub(1).is_some_and(|i| is(i, "LOCAL")) {
        return None;
    }
    let into = (infile..toks.len()).find(|&i| is(i, "INTO") && is(i + 1, "TABLE"))?;
    let replace = (infile..into).any(|i| is(i, "REPLACE"));
    let first = toks.get(into + 2)?;
    let dotted = toks
        .get(into + 3)
        .is_some_and(|t| t.kind == crate::sql::lex::Kind::Punct && sql[t.start] == b'.');
    let (ks, table, end) = if dotted {
        let name = toks.get(into + 4)?;
        (
            String::from_utf8(first.ident(sql)?).ok()?,
            String::from_utf8(name.ident(sql)?).ok()?,
            name.end,
        )
    } else {
        (
            session.keyspace.clone()?,
            String::from_utf8(first.ident(sql)?).ok()?,
            first.end,
        )
    };
    let k = rt.keyspace(&ks).filter(|k| k.sharded)?;
    if !matches!(
        k.table(&table),
        Some(crate::topology::TableRouting::Sharded { .. })
    ) {
        return None;
    }
    let mut temp_sql = sql[..first.start].to_vec();
    temp_sql.extend_from_slice(
        format!(
            "{}.{}",
            crate::sql::quote_ident(&k.reference_schema()),
            crate::sql::quote_ident(&table)
        )
        .as_bytes(),
    );
    temp_sql.extend_from_slice(&sql[end..]);
    Some(crate::engine::load::LoadSharded {
        keyspace: k.name.clone(),
        table,
        temp_sql,
        replace,
    })
}

/// For `COMMIT|ROLLBACK [WORK] [AND [NO] CHAIN] [[NO] RELEASE]` with at least one of the
/// clauses: whether it chains a new transaction and whether it ends the session. `None` for
/// other statements (a plain `COMMIT`, `ROLLBACK TO …`).
fn end_options(sql: &[u8], toks: &[crate::sql::lex::Token]) -> Option<(bool, bool)> {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let mut i = 1;
    if is(i, "WORK") {
        i += 1;
    }
    let (mut chain, mut release, mut any) = (false, false, false);
    if is(i, "AND") {
        any = true;
        if is(i + 1, "NO") && is(i + 2, "CHAIN") {
            i += 3;
        } else if is(i + 1, "CHAIN") {
            chain = true;
            i += 2;
        } else {
            return None;
        }
    }
    if is(i, "NO") && is(i + 1, "RELEASE") {
        any = true;
        i += 2;
    } else if is(i, "RELEASE") {
        any = true;
        release = true;
        i += 1;
    }
    let rest = toks
        .get(i..)
        .is_some_and(|r| r.iter().all(|t| t.kind == crate::sql::lex::Kind::Semicolon));
    (any && rest && !(chain && release)).then_some((chain, release))
}

/// A statement the router's parser rejected, in an unsharded keyspace: sent as written when it
/// reaches nothing past the keyspace and cannot make or end session or transaction state
/// (which would be lost on a pooled connection), so that the server runs it or refuses it
/// with its own message.
fn unparsed_verbatim(
    sql: &[u8],
    class: &crate::sql::classify::Classified,
    keyspace: Option<&str>,
    rt: &crate::topology::RoutingTable,
) -> Option<planner::Plan> {
    const SESSION_WORDS: &[&str] = &[
        "SET",
        "USE",
        "BEGIN",
        "START",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "LOCK",
        "UNLOCK",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "XA",
        "HANDLER",
        "GET",
        "CREATE",
        "ALTER",
        "DROP",
        "RENAME",
        "KILL",
        "SHOW",
        "FLUSH",
        "LOAD",
        "CALL",
    ];
    let ks = rt.keyspace(keyspace?).filter(|k| !k.sharded)?;
    if class.reach.is_some() || class.local_state.is_some() || !class.qualifiers.is_empty() {
        return None;
    }
    let toks = crate::sql::lex::significant(sql, &Default::default());
    if toks
        .first()
        .is_none_or(|t| SESSION_WORDS.iter().any(|w| t.is_word(sql, w)))
        || toks
            .iter()
            .any(|t| t.is_word(sql, "CONNECTION_ID") || t.is_word(sql, "LAST_INSERT_ID"))
    {
        return None;
    }
    Some(planner::Plan::Exec(Box::new(planner::Exec::plain(
        Some(ks.name.clone()),
        planner::StmtKind::Read,
        planner::RouteKind::One,
        planner::Targets::Verbatim {
            sql: sql.to_vec(),
            reserve: false,
        },
    ))))
}
