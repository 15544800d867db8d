//! What the router must know of a statement before deciding whether to plan it, read from
//! its tokens alone (no parse): its kind, whether it may go to an unsharded keyspace byte for
//! byte ([`Classified::verbatim`]), the names that may be schemas, and whether it reaches past
//! the session's keyspaces into the physical shard ([`Reach`]: refused for every statement,
//! whatever path it would take).

use super::lex::{Kind, Mode, Token};

/// Something a statement does that acts on a whole physical shard or outside the session's
/// keyspaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A statement that needs a server-wide privilege (`SET GLOBAL`, `GRANT`, `LOAD_FILE`, …):
    /// what it is, and the privilege MariaDB would ask for.
    Privilege {
        what: String,
        privilege: &'static str,
    },
    /// A system schema named (`mysql`, `performance_schema`, `sys`).
    Schema(String),
}

/// How a statement that may run verbatim changes things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerbatimKind {
    Read,
    Write,
    Ddl,
}

/// A statement's classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// `Some` when the statement may run on an unsharded keyspace's schema as the client sent
    /// it: it holds no session or transaction control, no connection-local state (user
    /// variables assigned, temporary tables, named locks, `LAST_INSERT_ID()`), and nothing the
    /// router answers itself.
    pub verbatim: Option<VerbatimKind>,
    /// `Some` when the statement makes or reads state that lives on one backend connection
    /// (temporary tables, table locks, SQL-level prepared statements, `HANDLER`, named locks,
    /// user variables assigned, `SQL_CALC_FOUND_ROWS` and `FOUND_ROWS()`): it may run verbatim
    /// on a connection the session holds for its life (a reserved one).
    pub local_state: Option<LocalState>,
    /// A `SHOW` of what the server offers, the same for every schema and session (`SHOW
    /// PLUGINS`, `SHOW ENGINES`, `SHOW PRIVILEGES`, `SHOW AUTHORS`, `SHOW CONTRIBUTORS`): any
    /// physical shard answers it, as sent.
    pub server_info: bool,
    /// For `SHOW PROCEDURE|FUNCTION|PACKAGE [BODY] STATUS`, which lists every schema of the
    /// server: where a filter on the `Db` column goes.
    pub routine_status: Option<DbFilter>,
    /// Names that may be schemas: each `x` of `x.y` and `x.y.z`, and the names `SHOW … FROM|IN`
    /// and `USE` take.
    pub qualifiers: Vec<Vec<u8>>,
    /// What reaches past the session's keyspaces, if anything.
    pub reach: Option<Reach>,
    /// For a statement that reaches past the keyspaces (`reach`), how it runs verbatim for an
    /// admin user: its kind, and whether it makes connection-local state (`FLUSH TABLES WITH
    /// READ LOCK`, user variables assigned, `PREPARE`) that a reserved connection keeps.
    /// `None` for what no user may run through the router (`SHUTDOWN`, statements about the
    /// backend connection, and statements without a reach).
    pub admin: Option<LocalState>,
    /// The statement holds `SQL_CALC_FOUND_ROWS`.
    pub calc_found_rows: bool,
    /// The statement names `FROM` (a statement without it reads no table).
    pub from: bool,
}

/// A statement about connection-local state: see [`Classified::local_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalState {
    pub kind: VerbatimKind,
    /// It makes such state (a session that has no reserved connection gets one for it);
    /// otherwise it only reads or ends it.
    pub reserves: bool,
}

/// Where a `Db = '…'` condition goes in a `SHOW … STATUS` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFilter {
    /// No filter: a `WHERE` goes at this byte offset (after `STATUS`).
    None(usize),
    /// `LIKE pattern`, whose `LIKE` starts here: it becomes `WHERE Db = … AND Name LIKE pattern`.
    Like(usize),
    /// `WHERE expr`: `expr` spans these bytes, and becomes `Db = … AND (expr)`.
    Where(usize, usize),
}

/// Schemas of the server itself, never reachable through the router.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "performance_schema", "sys"];

/// Words that, leading a statement, act on the whole server.
const SERVER_VERBS: &[(&str, &str)] = &[
    ("SHUTDOWN", "SHUTDOWN"),
    ("GRANT", "GRANT OPTION"),
    ("REVOKE", "GRANT OPTION"),
    ("KILL", "CONNECTION ADMIN"),
    ("FLUSH", "RELOAD"),
    ("RESET", "RELOAD"),
    ("PURGE", "BINLOG ADMIN"),
    ("INSTALL", "INSERT on mysql.plugin"),
    ("UNINSTALL", "DELETE on mysql.plugin"),
    ("BINLOG", "BINLOG REPLAY"),
    ("CHANGE", "REPLICATION SLAVE ADMIN"),
    ("CACHE", "SUPER"),
];

/// Objects that `CREATE`/`ALTER`/`DROP`/`RENAME` of which act on the whole server.
const SERVER_OBJECTS: &[&str] = &["USER", "ROLE", "SERVER", "TABLESPACE", "LOGFILE"];

/// Objects of a keyspace's schema whose DDL may run verbatim.
const SCHEMA_OBJECTS: &[&str] = &[
    "TABLE",
    "TABLES",
    "VIEW",
    "INDEX",
    "PROCEDURE",
    "FUNCTION",
    "TRIGGER",
    "EVENT",
    "SEQUENCE",
    "PACKAGE",
];

/// `SHOW` forms answered from the current schema alone.
const SHOW_VERBATIM: &[&str] = &[
    "TABLES",
    "TABLE",
    "COLUMNS",
    "FIELDS",
    "INDEX",
    "INDEXES",
    "KEYS",
    "CREATE",
    "TRIGGERS",
    "EVENTS",
    "PROCEDURE",
    "FUNCTION",
    "PACKAGE",
];

/// `SHOW` forms the router answers, plans or refuses itself (`SHOW DATABASES`, `SHOW STATUS`,
/// `SHOW PROCESSLIST`, server statements, …): never sent as written.
const SHOW_HANDLED: &[&str] = &[
    "DATABASES",
    "SCHEMAS",
    "PROCESSLIST",
    "WARNINGS",
    "ERRORS",
    "COUNT",
    "VARIABLES",
    "STATUS",
    "SESSION",
    "GLOBAL",
    "LOCAL",
    "COLLATION",
    "CHARACTER",
    "CHARSET",
    "GRANTS",
    "PLUGINS",
    "ENGINES",
    "ENGINE",
    "PRIVILEGES",
    "AUTHORS",
    "CONTRIBUTORS",
    "STORAGE",
    "OPEN",
    "MASTER",
    "BINARY",
    "BINLOG",
    "SLAVE",
    "SLAVES",
    "REPLICA",
    "REPLICAS",
    "RELAYLOG",
    "ALL",
    "USER_STATISTICS",
    "CLIENT_STATISTICS",
    "INDEX_STATISTICS",
    "TABLE_STATISTICS",
    "EXPLAIN",
    "ANALYZE",
    "WSREP_MEMBERSHIP",
    "WSREP_STATUS",
    "USER",
];

/// Functions whose answer is the backend connection's, not the client session's.
const CONNECTION_FUNCTIONS: &[&str] = &["LAST_INSERT_ID", "ROW_COUNT", "CONNECTION_ID"];

/// Functions of named locks and of the last select's row count: state of one backend
/// connection, kept on a reserved one.
const LOCAL_FUNCTIONS: &[(&str, bool)] = &[
    ("GET_LOCK", true),
    ("RELEASE_LOCK", false),
    ("RELEASE_ALL_LOCKS", false),
    ("IS_USED_LOCK", false),
    ("IS_FREE_LOCK", false),
    ("FOUND_ROWS", false),
];

/// Classifies `sql`, lexed as `mode` says.
pub fn classify(sql: &[u8], mode: &Mode) -> Classified {
    classify_tokens(sql, &super::lex::significant(sql, mode), mode)
}

/// [`classify`] of a statement already lexed into its significant tokens.
pub fn classify_tokens(sql: &[u8], toks: &[Token], mode: &Mode) -> Classified {
    let word = |i: usize| upper_word(toks, sql, i);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let punct = |i: usize, c: u8| {
        toks.get(i)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == c)
    };

    // Names before a `.`: schema candidates.
    let mut qualifiers = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if matches!(t.kind, Kind::Word | Kind::QuotedIdent)
            && punct(i + 1, b'.')
            && toks
                .get(i + 2)
                .is_some_and(|n| matches!(n.kind, Kind::Word | Kind::QuotedIdent) || punct(i + 2, b'*'))
            // `@@session.x` and `t.col` after a `.` are not qualifiers of their own.
            && !(i > 0 && punct(i - 1, b'.'))
        {
            if let Some(q) = t.ident(sql) {
                qualifiers.push(q);
            }
        }
    }

    // The statement proper: past `SET STATEMENT … FOR`.
    let mut s = 0;
    if is(0, "SET") && is(1, "STATEMENT") {
        if let Some(f) = (2..toks.len()).find(|&i| is(i, "FOR")) {
            s = f + 1;
        }
    }
    let verb = word(s).unwrap_or_default();
    let privilege = |what: &str, privilege: &'static str| {
        Some(Reach::Privilege {
            what: what.to_string(),
            privilege,
        })
    };
    // The object of CREATE / ALTER / DROP / RENAME, past its options.
    let ddl_object = ddl_object(s, toks, sql);
    let mut reach = statement_reach(s, toks, sql);
    // A stored program's body: each statement in it is checked as one.
    let program = is(s, "BEGIN") && is(s + 1, "NOT")
        || matches!(
            verb.as_str(),
            "IF" | "CASE" | "LOOP" | "WHILE" | "REPEAT" | "FOR"
        )
        || verb == "CREATE"
            && ddl_object.as_ref().is_some_and(|(_, o)| {
                matches!(
                    o.as_str(),
                    "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT" | "PACKAGE"
                )
            });
    if program && reach.is_none() {
        for i in s + 1..toks.len() {
            let starts = toks[i - 1].kind == Kind::Semicolon
                || punct(i - 1, b':')
                || punct(i - 1, b')')
                || [
                    "BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT", "ATOMIC", "ROW",
                ]
                .iter()
                .any(|w| is(i - 1, w));
            if starts {
                if let Some(r) = statement_reach(i, toks, sql) {
                    reach = Some(r);
                    break;
                }
            }
        }
    }
    let mut assigns_variable = false;
    let mut calc_found_rows = false;
    let mut from = false;
    let mut connection_state = false;
    // Connection-local state made (`Some(true)`) or read (`Some(false)`).
    let mut local: Option<bool> = None;
    let mut local_is = |makes: bool| local = Some(local.unwrap_or(false) || makes);
    for (i, t) in toks.iter().enumerate() {
        if t.is_word(sql, "LOAD_FILE") && punct(i + 1, b'(') {
            reach = privilege("LOAD_FILE()", "FILE");
        }
        if t.is_word(sql, "INTO") {
            if is(i + 1, "OUTFILE") || is(i + 1, "DUMPFILE") {
                reach = privilege("SELECT … INTO OUTFILE", "FILE");
            }
            if toks.get(i + 1).is_some_and(|n| n.kind == Kind::UserVar) {
                assigns_variable = true;
            }
        }
        if t.is_word(sql, "SONAME") {
            reach = privilege(
                "a function from a shared library (SONAME)",
                "INSERT on mysql.func",
            );
        }
        if t.kind == Kind::UserVar && punct(i + 1, b':') && punct(i + 2, b'=') {
            assigns_variable = true;
        }
        if t.kind == Kind::Word && punct(i + 1, b'(') {
            let w = t.bytes(sql);
            if CONNECTION_FUNCTIONS
                .iter()
                .any(|f| w.eq_ignore_ascii_case(f.as_bytes()))
            {
                connection_state = true;
            }
            if let Some((_, makes)) = LOCAL_FUNCTIONS
                .iter()
                .find(|(f, _)| w.eq_ignore_ascii_case(f.as_bytes()))
            {
                local_is(*makes);
            }
        }
        if t.is_word(sql, "SQL_CALC_FOUND_ROWS") {
            calc_found_rows = true;
            local_is(true);
        }
        if t.is_word(sql, "FROM") {
            from = true;
        }
    }
    if assigns_variable {
        local_is(true);
    }
    // A stored program's definition runs none of its body now: what the body reads or makes
    // of a connection's state is the server's business when it is called.
    let definition = verb == "CREATE"
        && ddl_object.as_ref().is_some_and(|(_, o)| {
            matches!(
                o.as_str(),
                "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT" | "PACKAGE"
            )
        });
    if definition {
        connection_state = false;
    }
    // Statements about connection-local state, with the kind they run as.
    let mut local_kind = None;
    match verb.as_str() {
        "CREATE" | "DROP" if ddl_object.as_ref().is_some_and(|(_, o)| o == "TEMPORARY") => {
            local_is(verb == "CREATE");
            local_kind = Some(VerbatimKind::Write);
        }
        // Both commit an open transaction, as DDL does.
        "LOCK" if is(s + 1, "TABLE") || is(s + 1, "TABLES") => {
            local_is(true);
            local_kind = Some(VerbatimKind::Ddl);
        }
        "UNLOCK" if is(s + 1, "TABLE") || is(s + 1, "TABLES") => {
            local_is(false);
            local_kind = Some(VerbatimKind::Ddl);
        }
        "PREPARE" | "HANDLER" => {
            local_is(true);
            local_kind = Some(VerbatimKind::Write);
        }
        // A procedure may leave any of it behind (user variables, session variables,
        // temporary tables, named locks): the session keeps the connection it ran on.
        "CALL" => {
            local_is(true);
            local_kind = Some(VerbatimKind::Write);
        }
        "EXECUTE" | "DEALLOCATE" => {
            local_is(is(s + 1, "IMMEDIATE"));
            local_kind = Some(VerbatimKind::Write);
        }
        "DROP" if is(s + 1, "PREPARE") => {
            local_is(false);
            local_kind = Some(VerbatimKind::Write);
        }
        _ => {}
    }
    // Dynamic SQL: its text is checked like any statement's, so it must be a literal.
    for (i, t) in toks.iter().enumerate() {
        let text_at = if t.is_word(sql, "PREPARE") && is(i + 2, "FROM") {
            Some(i + 3)
        } else if t.is_word(sql, "EXECUTE") && is(i + 1, "IMMEDIATE") {
            Some(i + 2)
        } else {
            None
        };
        let Some(at) = text_at else { continue };
        match toks.get(at) {
            Some(lit) if lit.kind == Kind::String => {
                let inner = unquote(lit.bytes(sql), mode);
                let c = classify(&inner, mode);
                if c.reach.is_some() {
                    reach = c.reach;
                }
                qualifiers.extend(c.qualifiers);
            }
            _ => {
                reach = privilege(
                    "dynamic SQL from an expression (the router checks the text of PREPARE and EXECUTE IMMEDIATE only when it is a string literal)",
                    "SUPER",
                );
            }
        }
    }
    // `USE x`, and `SHOW … FROM|IN x`: schema names.
    if verb == "USE" {
        if let Some(n) = toks.get(s + 1).and_then(|t| t.ident(sql)) {
            qualifiers.push(n);
        }
    }
    if verb == "SHOW" {
        for i in s + 1..toks.len() {
            if (is(i, "FROM") || is(i, "IN")) && !punct(i + 2, b'.') {
                if let Some(n) = toks.get(i + 1).and_then(|t| t.ident(sql)) {
                    qualifiers.push(n);
                }
            }
        }
    }
    // The physical shard's connections, not the router's sessions.
    for (i, t) in toks.iter().enumerate() {
        if t.ident_is(sql, "information_schema")
            && punct(i + 1, b'.')
            && toks
                .get(i + 2)
                .is_some_and(|n| n.ident_is(sql, "processlist"))
        {
            reach = privilege(
                "information_schema.PROCESSLIST of a physical shard (SHOW PROCESSLIST lists the router's sessions)",
                "PROCESS",
            );
        }
    }
    if reach.is_none() {
        if let Some(q) = qualifiers.iter().find(|q| {
            SYSTEM_SCHEMAS
                .iter()
                .any(|s| q.eq_ignore_ascii_case(s.as_bytes()))
        }) {
            // `q` is one of the system schemas' (ASCII) names, in any case.
            reach = Some(Reach::Schema(
                String::from_utf8(q.to_ascii_lowercase()).unwrap_or_default(),
            ));
        }
    }

    let plain = verbatim_kind(
        &verb,
        s,
        toks,
        sql,
        ddl_object.as_ref().map(|(_, o)| o.as_str()),
    );
    // How an admin runs what reaches past the keyspaces: as its kind says, or as the
    // server-wide statement it is (those that commit implicitly, as DDL).
    let admin = match (&reach, verb.as_str()) {
        (None, _) | (_, "SHUTDOWN" | "USE") => None,
        _ if connection_state => None,
        (Some(_), _) => {
            let read_lock = verb == "FLUSH"
                && toks
                    .iter()
                    .skip(s + 1)
                    .any(|t| t.is_word(sql, "LOCK") || t.is_word(sql, "EXPORT"));
            let kind = local_kind.or(plain).unwrap_or(match verb.as_str() {
                "SET" | "KILL" | "LOAD" | "CACHE" | "BINLOG" | "DO" => VerbatimKind::Write,
                "SHOW" => VerbatimKind::Read,
                _ => VerbatimKind::Ddl,
            });
            Some(LocalState {
                kind,
                reserves: read_lock || local.filter(|_| !definition).unwrap_or(false),
            })
        }
    };
    let (verbatim, local_state) = if reach.is_some() || connection_state {
        (None, None)
    } else {
        match local.filter(|_| !definition) {
            Some(reserves) => (
                None,
                local_kind
                    .or(plain)
                    .map(|kind| LocalState { kind, reserves }),
            ),
            None => (plain, None),
        }
    };
    let routine_status = if verb == "SHOW" && verbatim.is_some() {
        routine_status(s, toks, sql)
    } else {
        None
    };
    let server_info = verb == "SHOW"
        && reach.is_none()
        && [
            "PLUGINS",
            "ENGINES",
            "STORAGE",
            "PRIVILEGES",
            "AUTHORS",
            "CONTRIBUTORS",
        ]
        .iter()
        .any(|w| is(s + 1, w));
    Classified {
        verbatim,
        local_state,
        server_info,
        routine_status,
        qualifiers,
        reach,
        admin,
        calc_found_rows,
        from,
    }
}

/// The filter place of `SHOW PROCEDURE|FUNCTION|PACKAGE [BODY] STATUS …` starting at token `s`.
fn routine_status(s: usize, toks: &[Token], sql: &[u8]) -> Option<DbFilter> {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !(is(s + 1, "PROCEDURE") || is(s + 1, "FUNCTION") || is(s + 1, "PACKAGE")) {
        return None;
    }
    let status = if is(s + 2, "STATUS") {
        s + 2
    } else if is(s + 2, "BODY") && is(s + 3, "STATUS") {
        s + 3
    } else {
        return None;
    };
    let last = toks
        .iter()
        .rev()
        .find(|t| t.kind != Kind::Semicolon)
        .map_or(0, |t| t.end);
    Some(match toks.get(status + 1) {
        None => DbFilter::None(toks[status].end),
        Some(t) if t.kind == Kind::Semicolon => DbFilter::None(toks[status].end),
        Some(t) if t.is_word(sql, "LIKE") => DbFilter::Like(t.start),
        Some(t) if t.is_word(sql, "WHERE") => DbFilter::Where(toks.get(status + 2)?.start, last),
        Some(_) => return None,
    })
}

/// `FLUSH [LOCAL | NO_WRITE_TO_BINLOG] TABLE[S] t [, t …]`: named tables only (not the whole
/// server's, nor `WITH READ LOCK` / `FOR EXPORT`, which lock).
fn flushes_named_tables(s: usize, toks: &[Token], sql: &[u8]) -> bool {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !is(s, "FLUSH") {
        return false;
    }
    let mut i = s + 1;
    if is(i, "LOCAL") || is(i, "NO_WRITE_TO_BINLOG") {
        i += 1;
    }
    if !(is(i, "TABLE") || is(i, "TABLES")) {
        return false;
    }
    let rest = &toks[(i + 1).min(toks.len())..];
    !rest.is_empty()
        && rest.iter().all(|t| {
            matches!(t.kind, Kind::Word | Kind::QuotedIdent | Kind::Semicolon)
                || t.kind == Kind::Punct && matches!(sql[t.start], b',' | b'.')
        })
        && !rest
            .iter()
            .any(|t| t.is_word(sql, "WITH") || t.is_word(sql, "FOR"))
}

/// Token `i` upper-cased, when it is a word.
fn upper_word(toks: &[Token], sql: &[u8], i: usize) -> Option<String> {
    toks.get(i)?.upper_word(sql)
}

/// The object of a `CREATE` / `ALTER` / `DROP` / `RENAME` at token `s`, past its options.
fn ddl_object(s: usize, toks: &[Token], sql: &[u8]) -> Option<(usize, String)> {
    let verb = toks.get(s)?;
    if !["CREATE", "ALTER", "DROP", "RENAME"]
        .iter()
        .any(|w| verb.is_word(sql, w))
    {
        return None;
    }
    (s + 1..toks.len().min(s + 16)).find_map(|i| {
        let w = toks.get(i)?.upper_word(sql)?;
        (SCHEMA_OBJECTS.contains(&w.as_str())
            || SERVER_OBJECTS.contains(&w.as_str())
            || matches!(w.as_str(), "DATABASE" | "SCHEMA" | "TEMPORARY"))
        .then_some((i, w))
    })
}

/// What the statement starting at token `s` reaches past the session's keyspaces by its kind
/// (server-wide statements, `SET GLOBAL`, user management, server files), if anything.
fn statement_reach(s: usize, toks: &[Token], sql: &[u8]) -> Option<Reach> {
    let word = |i: usize| upper_word(toks, sql, i);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let verb = word(s).unwrap_or_default();
    let mut reach = None;
    let privilege = |what: &str, privilege: &'static str| {
        Some(Reach::Privilege {
            what: what.to_string(),
            privilege,
        })
    };
    if let Some((w, p)) = SERVER_VERBS
        .iter()
        .find(|(w, _)| *w == verb)
        .filter(|_| !flushes_named_tables(s, toks, sql))
    {
        reach = privilege(w, p);
    }
    // The object of CREATE / ALTER / DROP / RENAME, past its options.
    let object = || -> Option<(usize, String)> {
        (s + 1..toks.len().min(s + 16)).find_map(|i| {
            let w = word(i)?;
            (SCHEMA_OBJECTS.contains(&w.as_str())
                || SERVER_OBJECTS.contains(&w.as_str())
                || matches!(w.as_str(), "DATABASE" | "SCHEMA" | "TEMPORARY"))
            .then_some((i, w))
        })
    };
    let ddl = matches!(verb.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME");
    let ddl_object = if ddl { object() } else { None };
    if let Some((_, o)) = &ddl_object {
        if SERVER_OBJECTS.contains(&o.as_str()) {
            reach = privilege(&format!("{verb} {o}"), "CREATE USER");
        }
    }
    if verb == "SET" {
        // Only what an item assigns: `SET @v = @@GLOBAL.x` reads a global, as any user may.
        let global = !global_targets(sql, toks, s + 1).is_empty();
        if global {
            reach = privilege("SET GLOBAL", "SUPER");
        } else if ["PASSWORD", "ROLE", "DEFAULT"].iter().any(|w| is(s + 1, w)) {
            reach = privilege(
                &format!("SET {}", word(s + 1).unwrap_or_default()),
                "CREATE USER",
            );
        }
    }
    if (verb == "START" || verb == "STOP")
        && ["SLAVE", "REPLICA", "ALL"].iter().any(|w| is(s + 1, w))
    {
        reach = privilege(&format!("{verb} REPLICA"), "REPLICATION SLAVE ADMIN");
    }
    if verb == "LOAD" {
        let local = is(s + 2, "LOCAL") || is(s + 3, "LOCAL");
        if is(s + 1, "INDEX") {
            reach = privilege("LOAD INDEX", "SUPER");
        } else if !local {
            reach = privilege("LOAD DATA INFILE of a file on the database server", "FILE");
        }
    }
    // What the whole server does: its engines' internals, open tables of every schema,
    // replication.
    if verb == "SHOW"
        && [
            "ENGINE",
            "OPEN",
            "MASTER",
            "BINARY",
            "BINLOG",
            "SLAVE",
            "REPLICA",
            "RELAYLOG",
            "USER_STATISTICS",
            "CLIENT_STATISTICS",
            "INDEX_STATISTICS",
            "TABLE_STATISTICS",
            "EXPLAIN",
            "ANALYZE",
        ]
        .iter()
        .any(|w| is(s + 1, w))
        || verb == "SHOW" && is(s + 1, "ALL") && (is(s + 2, "SLAVES") || is(s + 2, "REPLICAS"))
    {
        reach = privilege(
            &format!("SHOW {} of a whole server", word(s + 1).unwrap_or_default()),
            "PROCESS",
        );
    }
    if verb == "SHOW" && is(s + 1, "GRANTS") {
        reach = privilege(
            "SHOW GRANTS of the router's backend account",
            "GRANT OPTION",
        );
    }
    reach
}

/// The system variables the items of a `SET` (its tokens from `from` on, to the end of the
/// statement) assign with global scope (`GLOBAL x`, `PERSIST x`, `@@global.x`, …),
/// lower-cased; an empty name for one that is not a plain word.
pub fn global_targets(sql: &[u8], toks: &[Token], from: usize) -> Vec<String> {
    let punct = |i: usize, c: u8| {
        toks.get(i)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == c)
    };
    let word = |i: usize| {
        toks.get(i)
            .filter(|t| t.kind == Kind::Word)
            .and_then(|t| std::str::from_utf8(t.bytes(sql)).ok())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    const SCOPES: &[&[u8]] = &[b"GLOBAL", b"PERSIST", b"PERSIST_ONLY"];
    let mut out = Vec::new();
    let (mut depth, mut item_start) = (0usize, true);
    for (i, t) in toks
        .iter()
        .enumerate()
        .skip(from)
        .take_while(|(_, t)| t.kind != Kind::Semicolon)
    {
        if t.kind == Kind::Punct {
            match sql[t.start] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    item_start = true;
                    continue;
                }
                _ => {}
            }
        }
        if !std::mem::take(&mut item_start) {
            continue;
        }
        let b = t.bytes(sql);
        if t.kind == Kind::Word
            && SCOPES.iter().any(|g| b.eq_ignore_ascii_case(g))
            && !punct(i + 1, b'.')
        {
            out.push(word(i + 1));
        } else if t.kind == Kind::SysVar && SCOPES.iter().any(|g| b[2..].eq_ignore_ascii_case(g)) {
            out.push(if punct(i + 1, b'.') {
                word(i + 2)
            } else {
                String::new()
            });
        }
    }
    out
}

/// The name of a user variable token (`@v`, `@'v'`, `` @`v` ``, `@"v"`), lower-cased (MariaDB
/// compares them so).
pub fn user_variable_name(t: &Token, sql: &[u8], mode: &Mode) -> Vec<u8> {
    let b = &t.bytes(sql)[1..];
    let name = match b.first() {
        Some(b'\'' | b'"' | b'`') => unquote(b, mode),
        _ => b.to_vec(),
    };
    name.to_ascii_lowercase()
}

/// The user variables a statement assigns: `SET @v = …` items, `@v := …` anywhere,
/// `INTO @v, @w`; and, for a `SET`, whether it sets nothing else.
pub fn assigned_user_variables(sql: &[u8], mode: &Mode) -> (Vec<Vec<u8>>, bool) {
    let toks = super::lex::significant(sql, mode);
    let punct = |i: usize, c: u8| {
        toks.get(i)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == c)
    };
    let mut names: Vec<Vec<u8>> = Vec::new();
    let add = |names: &mut Vec<Vec<u8>>, n: Vec<u8>| {
        if !names.contains(&n) {
            names.push(n);
        }
    };
    let set = toks.first().is_some_and(|t| t.is_word(sql, "SET"));
    let mut only_user = set;
    let mut depth = 0usize;
    let mut item_start = set;
    let mut into = false;
    for (i, t) in toks.iter().enumerate().skip(usize::from(set)) {
        if t.kind == Kind::Punct {
            match sql[t.start] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    item_start = set;
                    continue;
                }
                _ => {}
            }
        }
        if item_start {
            item_start = false;
            if t.kind == Kind::UserVar && (punct(i + 1, b'=') || punct(i + 1, b':')) {
                add(&mut names, user_variable_name(t, sql, mode));
                continue;
            }
            only_user = false;
        }
        if t.kind == Kind::UserVar && punct(i + 1, b':') && punct(i + 2, b'=') {
            add(&mut names, user_variable_name(t, sql, mode));
        }
        if t.is_word(sql, "INTO") {
            into = toks.get(i + 1).is_some_and(|n| n.kind == Kind::UserVar);
        } else if into {
            match t.kind {
                Kind::UserVar => add(&mut names, user_variable_name(t, sql, mode)),
                Kind::Punct if sql[t.start] == b',' => {}
                _ => into = false,
            }
        }
    }
    let only_user = only_user && !names.is_empty();
    (names, only_user)
}

/// A variable a `SET` assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigned {
    /// A user variable, its name lower-cased.
    User(Vec<u8>),
    /// A session system variable (`x`, `SESSION x`, `LOCAL x`, `@@x`, `@@session.x`), its
    /// name lower-cased.
    System(String),
}

/// One item of a `SET` list: what it assigns (`None`: something else, `NAMES`, `CHARACTER
/// SET`, `TRANSACTION`, a global variable, …) and whether its value is a plain literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetItem {
    pub target: Option<Assigned>,
    pub literal: bool,
}

/// The items of a `SET` statement; `None` for another statement.
pub fn set_items(sql: &[u8], mode: &Mode) -> Option<Vec<SetItem>> {
    let toks = super::lex::significant(sql, mode);
    if !toks.first()?.is_word(sql, "SET") {
        return None;
    }
    // Items at the top level, split at commas.
    let mut items: Vec<&[Token]> = Vec::new();
    let (mut depth, mut start) = (0usize, 1usize);
    for (i, t) in toks.iter().enumerate().skip(1) {
        if t.kind == Kind::Punct {
            match sql[t.start] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    items.push(&toks[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    items.push(&toks[start.min(toks.len())..]);
    let punct = |t: &Token, c: u8| t.kind == Kind::Punct && sql[t.start] == c;
    let plain_name = |t: &Token| {
        t.kind == Kind::Word
            && t.bytes(sql)
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    Some(
        items
            .into_iter()
            .map(|item| {
                // The target and where its value starts.
                let (target, at) = match item {
                    [v, ..] if v.kind == Kind::UserVar => {
                        (Some(Assigned::User(user_variable_name(v, sql, mode))), 1)
                    }
                    [s, dot, n, ..]
                        if s.kind == Kind::SysVar
                            && punct(dot, b'.')
                            && plain_name(n)
                            && (s.bytes(sql).eq_ignore_ascii_case(b"@@session")
                                || s.bytes(sql).eq_ignore_ascii_case(b"@@local")) =>
                    {
                        (Some(Assigned::System(lower(n.bytes(sql)))), 3)
                    }
                    [s, n, ..]
                        if (s.is_word(sql, "SESSION") || s.is_word(sql, "LOCAL"))
                            && plain_name(n) =>
                    {
                        (Some(Assigned::System(lower(n.bytes(sql)))), 2)
                    }
                    [s, ..]
                        if s.kind == Kind::SysVar
                            && s.bytes(sql).len() > 2
                            && s.bytes(sql)[2..]
                                .iter()
                                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
                            && !s.bytes(sql).eq_ignore_ascii_case(b"@@global") =>
                    {
                        (Some(Assigned::System(lower(&s.bytes(sql)[2..]))), 1)
                    }
                    [n, ..] if plain_name(n) => (Some(Assigned::System(lower(n.bytes(sql)))), 1),
                    _ => (None, 0),
                };
                // What the router does not read as a variable of its own name.
                let target = target.filter(|t| match t {
                    Assigned::System(n) => ![
                        "names",
                        "character",
                        "charset",
                        "transaction",
                        "password",
                        "role",
                        "default",
                        "statement",
                        "global",
                        "autocommit",
                    ]
                    .contains(&n.as_str()),
                    Assigned::User(_) => true,
                });
                let value = match item.get(at) {
                    Some(t) if punct(t, b'=') => &item[at + 1..],
                    Some(t) if punct(t, b':') => item.get(at + 2..).unwrap_or_default(),
                    _ => &[][..],
                };
                let value = match value {
                    [m, rest @ ..] if punct(m, b'-') => rest,
                    v => v,
                };
                let literal = matches!(value, [t] if matches!(t.kind, Kind::Number | Kind::String | Kind::Hex | Kind::Bits)
                    || ["ON", "OFF", "TRUE", "FALSE", "NULL", "DEFAULT"].iter().any(|w| t.is_word(sql, w)));
                SetItem {
                    target: if at == 0 { None } else { target },
                    literal,
                }
            })
            .collect(),
    )
}

/// A variable name (checked to be ASCII letters, digits and `_`), lower-cased.
fn lower(b: &[u8]) -> String {
    b.iter()
        .map(|c| char::from(c.to_ascii_lowercase()))
        .collect()
}

/// The text of a quoted string literal, its quotes and escapes undone.
pub fn unquote(lit: &[u8], mode: &Mode) -> Vec<u8> {
    let Some((&q, rest)) = lit.split_first() else {
        return Vec::new();
    };
    let body = rest.strip_suffix(&[q]).unwrap_or(rest);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        // A multi-byte character whole: its second byte may be `\\` or a quote.
        let n = mode.charset.char_len(body, i);
        if n > 1 {
            out.extend_from_slice(&body[i..i + n]);
            i += n;
        } else if c == b'\\' && !mode.no_backslash_escapes && i + 1 < body.len() {
            match body[i + 1] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(0x08),
                b'0' => out.push(0),
                b'Z' => out.push(0x1a),
                // Kept with their backslash, for `LIKE` patterns.
                b'%' | b'_' => out.extend_from_slice(&body[i..i + 2]),
                other => out.push(other),
            }
            i += 2;
        } else if c == q && body.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The kind of a statement that may run verbatim, from its leading word at `s`.
fn verbatim_kind(
    verb: &str,
    s: usize,
    toks: &[Token],
    sql: &[u8],
    ddl_object: Option<&str>,
) -> Option<VerbatimKind> {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    let any_word = |w: &str| toks.iter().any(|t| t.is_word(sql, w));
    Some(match verb {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => VerbatimKind::Read,
        "" if toks
            .get(s)
            .is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == b'(') =>
        {
            VerbatimKind::Read
        }
        "DESCRIBE" | "DESC" | "EXPLAIN" | "HELP" => {
            // EXPLAIN FOR CONNECTION names a backend connection.
            if any_word("CONNECTION") {
                return None;
            }
            VerbatimKind::Read
        }
        "SHOW" => {
            let mut i = s + 1;
            if is(i, "FULL") || is(i, "EXTENDED") {
                i += 1;
            }
            if is(i, "FULL") {
                i += 1;
            }
            let form = toks.get(i)?.upper_word(sql)?;
            if !SHOW_VERBATIM.contains(&form.as_str()) {
                // Forms the router answers or plans itself, or that reach past the keyspace
                // (checked as a reach), are not sent as written; any other `SHOW` of an
                // unsharded keyspace is the server's to answer (or refuse, as it refuses a
                // form it does not know).
                return (!SHOW_HANDLED.contains(&form.as_str())).then_some(VerbatimKind::Read);
            }
            if form == "TABLE" && !is(i + 1, "STATUS") {
                return None;
            }
            if matches!(form.as_str(), "PROCEDURE" | "FUNCTION" | "PACKAGE")
                && routine_status(s, toks, sql).is_none()
            {
                return None;
            }
            if form == "CREATE" {
                let o = toks.get(i + 1)?.upper_word(sql)?;
                if !SCHEMA_OBJECTS.contains(&o.as_str()) {
                    return None;
                }
            }
            VerbatimKind::Read
        }
        "INSERT" | "REPLACE" | "UPDATE" | "DELETE" | "CALL" | "DO" => VerbatimKind::Write,
        // The client's own file, relayed (a server file is refused as a reach).
        "LOAD" if is(s + 2, "LOCAL") || is(s + 3, "LOCAL") => VerbatimKind::Write,
        "CHECK" | "CHECKSUM" | "ANALYZE" | "OPTIMIZE" | "REPAIR" => {
            // `ANALYZE SELECT …` runs the select; the others take TABLE.
            if !(is(s + 1, "TABLE") || is(s + 1, "TABLES") || verb == "ANALYZE") {
                return None;
            }
            VerbatimKind::Write
        }
        "BEGIN" if is(s + 1, "NOT") => VerbatimKind::Write,
        // Compound statements outside a stored program.
        "IF" | "CASE" | "LOOP" | "WHILE" | "REPEAT" | "FOR" => VerbatimKind::Write,
        "FLUSH" if flushes_named_tables(s, toks, sql) => VerbatimKind::Write,
        "TRUNCATE" => VerbatimKind::Ddl,
        "CREATE" | "ALTER" | "DROP" | "RENAME" => {
            let o = ddl_object?;
            if !SCHEMA_OBJECTS.contains(&o) {
                return None;
            }
            VerbatimKind::Ddl
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sql: &str) -> Classified {
        classify(sql.as_bytes(), &Mode::default())
    }

    #[test]
    fn set_items_name_their_variables() {
        let m = Mode::default();
        let items = |sql: &str| set_items(sql.as_bytes(), &m).expect("a SET");
        let sys = |n: &str, literal| SetItem {
            target: Some(Assigned::System(n.into())),
            literal,
        };
        assert_eq!(
            items("SET sql_mode = CONCAT(@@sql_mode, ',X'), SESSION time_zone = '+00:00', @@session.timestamp = UNIX_TIMESTAMP(), @@max_statement_time = -1.5"),
            vec![sys("sql_mode", false), sys("time_zone", true), sys("timestamp", false), sys("max_statement_time", true)]
        );
        assert_eq!(
            items("SET @a := NOW(), NAMES utf8mb4, autocommit = 0"),
            vec![
                SetItem {
                    target: Some(Assigned::User(b"a".to_vec())),
                    literal: false
                },
                SetItem {
                    target: None,
                    literal: false
                },
                SetItem {
                    target: None,
                    literal: true
                },
            ]
        );
        assert!(set_items(b"SELECT 1", &m).is_none());
    }

    #[test]
    fn assigned_user_variables_are_named() {
        let m = Mode::default();
        let names = |sql: &str| {
            let (n, only) = assigned_user_variables(sql.as_bytes(), &m);
            let n: Vec<String> = n
                .into_iter()
                .map(|v| String::from_utf8(v).expect("utf8"))
                .collect();
            (n, only)
        };
        assert_eq!(
            names("SET @a = 1, @`B` := (SELECT 2)"),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            names("SET @a = 1, sql_mode = ''"),
            (vec!["a".into()], false)
        );
        assert_eq!(names("SET sql_mode = @m"), (vec![], false));
        assert_eq!(names("SELECT @x := 1, f(@y)"), (vec!["x".into()], false));
        assert_eq!(
            names("SELECT 1, 2 INTO @p, @q FROM t"),
            (vec!["p".into(), "q".into()], false)
        );
        assert_eq!(names("SET @'u v' = 1"), (vec!["u v".into()], true));
    }

    #[test]
    fn verbatim_kinds() {
        for (sql, k) in [
            ("SELECT 1", Some(VerbatimKind::Read)),
            ("(SELECT 1) UNION (SELECT 2)", Some(VerbatimKind::Read)),
            ("/*!40101 SELECT 1 */", Some(VerbatimKind::Read)),
            ("SHOW FULL TABLES", Some(VerbatimKind::Read)),
            ("SHOW TABLE STATUS LIKE 't%'", Some(VerbatimKind::Read)),
            ("SHOW CREATE TABLE t", Some(VerbatimKind::Read)),
            ("SHOW CREATE DATABASE d", None),
            ("SHOW PROCESSLIST", None),
            ("SHOW VARIABLES", None),
            (
                "CREATE OR REPLACE DEFINER=`a`@`%` VIEW v AS SELECT 1",
                Some(VerbatimKind::Ddl),
            ),
            ("CREATE TEMPORARY TABLE t (a int)", None),
            ("CREATE DATABASE d", None),
            (
                "CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); SELECT LAST_INSERT_ID(), GET_LOCK('x', 1); END",
                Some(VerbatimKind::Ddl),
            ),
            ("DROP TABLE IF EXISTS t", Some(VerbatimKind::Ddl)),
            ("CALL p(1)", None),
            (
                "SET STATEMENT max_statement_time=1 FOR SELECT 1",
                Some(VerbatimKind::Read),
            ),
            ("SET @a = 1", None),
            ("BEGIN", None),
            ("BEGIN NOT ATOMIC SELECT 1; END", Some(VerbatimKind::Write)),
            ("SELECT 1 INTO @x", None),
            ("SELECT @x := 1", None),
            ("SELECT LAST_INSERT_ID()", None),
            ("SELECT GET_LOCK('a', 1)", None),
            ("LOCK TABLES t WRITE", None),
            ("PREPARE s FROM 'SELECT 1'", None),
            ("EXPLAIN FOR CONNECTION 5", None),
            (
                "ANALYZE TABLE t PERSISTENT FOR ALL",
                Some(VerbatimKind::Write),
            ),
        ] {
            assert_eq!(c(sql).verbatim, k, "{sql}");
        }
    }

    #[test]
    fn reach_past_the_keyspace() {
        for sql in [
            "SET GLOBAL max_connections = 5",
            "SET @@global.read_only = 1",
            "set session x = 1, global y = 2",
            "SET STATEMENT x=1 FOR SET GLOBAL y=1",
            "SELECT LOAD_FILE('/etc/hostname')",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "SELECT user, authentication_string FROM mysql.user",
            "SELECT * FROM `performance_schema`.threads",
            "USE mysql",
            "SHOW TABLES FROM mysql",
            "GRANT ALL ON *.* TO x",
            "CREATE USER x",
            "DROP ROLE r",
            "SHUTDOWN",
            "KILL 5",
            "FLUSH PRIVILEGES",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "CREATE FUNCTION f RETURNS STRING SONAME 'x.so'",
            "SET PASSWORD = PASSWORD('x')",
            "/*!40101 SET GLOBAL x=1 */",
            "SHOW ENGINE InnoDB STATUS",
            "SHOW OPEN TABLES",
            "SHOW ALL SLAVES STATUS",
        ] {
            assert!(c(sql).reach.is_some(), "{sql}");
        }
        for sql in [
            "SET SESSION sql_mode = ''",
            "SET @@session.x = 1",
            "SELECT @@global.max_connections",
            "LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
            "SELECT 'mysql.user', `mysql`",
            "SELECT a.global FROM a",
            "SELECT * FROM t -- mysql.user",
            "SET @v = @@GLOBAL.max_connections",
            "SET @v = IF(@@global.x, 1, 2), @w = @@global.y",
        ] {
            assert_eq!(c(sql).reach, None, "{sql}");
        }
    }

    #[test]
    fn how_an_admin_runs_what_reaches_past_the_keyspace() {
        let a = |sql: &str| c(sql).admin.map(|l| (l.kind, l.reserves));
        assert_eq!(a("SELECT 1"), None, "no reach");
        assert_eq!(a("SHUTDOWN"), None);
        assert_eq!(a("USE mysql"), None);
        assert_eq!(
            a("SET GLOBAL max_connections = 5"),
            Some((VerbatimKind::Write, false))
        );
        assert_eq!(
            a("SELECT user FROM mysql.user"),
            Some((VerbatimKind::Read, false))
        );
        assert_eq!(
            a("SELECT user INTO @u FROM mysql.user LIMIT 1"),
            Some((VerbatimKind::Read, true))
        );
        assert_eq!(a("CREATE USER x"), Some((VerbatimKind::Ddl, false)));
        assert_eq!(a("FLUSH PRIVILEGES"), Some((VerbatimKind::Ddl, false)));
        assert_eq!(
            a("FLUSH TABLES WITH READ LOCK"),
            Some((VerbatimKind::Ddl, true))
        );
        assert_eq!(a("PREPARE s FROM @q"), Some((VerbatimKind::Write, true)));
        assert_eq!(a("SHOW GRANTS"), Some((VerbatimKind::Read, false)));
    }

    #[test]
    fn connection_local_state() {
        let l = |sql: &str| c(sql).local_state.map(|l| (l.kind, l.reserves));
        assert_eq!(l("SELECT 1"), None);
        assert_eq!(
            l("CREATE TEMPORARY TABLE t (a int)"),
            Some((VerbatimKind::Write, true))
        );
        assert_eq!(
            l("DROP TEMPORARY TABLE t"),
            Some((VerbatimKind::Write, false))
        );
        assert_eq!(l("LOCK TABLES t WRITE"), Some((VerbatimKind::Ddl, true)));
        assert_eq!(l("UNLOCK TABLES"), Some((VerbatimKind::Ddl, false)));
        assert_eq!(
            l("SELECT a INTO @x FROM t"),
            Some((VerbatimKind::Read, true))
        );
        assert_eq!(
            l("SELECT SQL_CALC_FOUND_ROWS a FROM t"),
            Some((VerbatimKind::Read, true))
        );
        assert_eq!(l("SELECT FOUND_ROWS()"), Some((VerbatimKind::Read, false)));
        assert_eq!(
            l("PREPARE s FROM 'SELECT 1'"),
            Some((VerbatimKind::Write, true))
        );
        assert_eq!(l("EXECUTE s"), Some((VerbatimKind::Write, false)));
        assert_eq!(l("HANDLER t OPEN"), Some((VerbatimKind::Write, true)));
        assert_eq!(l("CALL p(1)"), Some((VerbatimKind::Write, true)));
        // LAST_INSERT_ID() is the router's to answer.
        assert_eq!(c("SELECT LAST_INSERT_ID()").local_state, None);
        // Dynamic SQL is checked as a statement of its own, and only as a literal.
        assert!(c("PREPARE s FROM 'SELECT * FROM mysql.user'")
            .reach
            .is_some());
        assert!(c("PREPARE s FROM 'SET GLOBAL x = 1'").reach.is_some());
        assert!(c("EXECUTE IMMEDIATE @q").reach.is_some());
        assert!(
            c("CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END")
                .reach
                .is_some()
        );
        assert_eq!(c("PREPARE s FROM 'SELECT ''a'''").reach, None);
    }

    #[test]
    fn stored_program_bodies_are_checked() {
        for sql in [
            "CREATE PROCEDURE p() KILL 5",
            "CREATE PROCEDURE p() BEGIN SELECT 1; SET GLOBAL max_connections = 1; END",
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO FLUSH PRIVILEGES",
            "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN IF 1 THEN GRANT ALL ON *.* TO u; END IF; END",
            "BEGIN NOT ATOMIC DROP USER u; END",
        ] {
            assert!(c(sql).reach.is_some(), "{sql}");
        }
        assert_eq!(
            c("CREATE PROCEDURE p() BEGIN SET @x = 1; SET SESSION sql_mode = ''; SELECT 1; END")
                .reach,
            None
        );
    }

    #[test]
    fn qualifiers() {
        let q = c("SELECT a.b, `d`.`t`.c, x.* FROM d.t AS a JOIN e.u ON 1.5 > @@session.x");
        let names: Vec<String> = q
            .qualifiers
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(names, vec!["a", "d", "x", "d", "e"]);
        let q = c("SHOW COLUMNS FROM t FROM other");
        assert_eq!(q.qualifiers, vec![b"t".to_vec(), b"other".to_vec()]);
    }
}
