//! A client session: what a connection carries from one statement to the next.

pub mod prepared;
pub mod registry;

use crate::backend::Conn;
use crate::wire::constants::{
    SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS, SERVER_STATUS_IN_TRANS_READONLY,
};
use std::collections::BTreeMap;

/// One client connection's state.
pub struct Session {
    pub connection_id: u32,
    pub user: String,
    /// What the user may reach and do (from its config).
    pub grants: Grants,
    /// The current keyspace (`USE`).
    pub keyspace: Option<String>,
    /// The client's capability flags.
    pub client_caps: u32,
    pub autocommit: bool,
    /// Inside `BEGIN … COMMIT`.
    pub explicit_txn: bool,
    /// How the open (or next) transaction starts on each backend connection it pins.
    pub txn_start: crate::planner::TxnStart,
    /// Savepoints of the open transaction, oldest first: set on every pinned connection, and
    /// on a connection pinned later right after its `START TRANSACTION` (it had done nothing
    /// before them).
    pub savepoints: Vec<String>,
    /// Backend connections pinned by the open transaction, one per physical shard.
    pub txn_conns: BTreeMap<String, Conn>,
    /// Backend connections the session holds for its life, one per physical shard where it
    /// made connection-local state (temporary tables, table locks, SQL-level prepared
    /// statements, named locks, user variables assigned by a statement): every statement of
    /// the session for that shard runs on it. Out of this map while a transaction pins it.
    pub reserved: BTreeMap<String, Conn>,
    /// The physical shards where the session holds a reserved connection.
    pub reserved_ps: std::collections::BTreeSet<String>,
    /// The physical shards where the session's reserved connection holds `LOCK TABLES` of a
    /// sharded keyspace.
    pub locked_ps: std::collections::BTreeSet<String>,
    /// The session's entry in the router's process list (`SHOW PROCESSLIST`, `KILL`).
    pub slot: Option<std::sync::Arc<registry::Slot>>,
    /// Logical shards `(keyspace, ls)` written by the open transaction: their writes are
    /// copied to a move's other side after commit, and cutover does not hold them.
    pub txn_ls: std::collections::BTreeSet<(String, u32)>,
    /// Physical shards the open transaction has pinned.
    pub txn_ps: std::collections::BTreeSet<String>,
    /// Pinned connections whose lock waits are bounded (the transaction spans shards).
    pub txn_short_waits: std::collections::BTreeSet<String>,
    /// Logical shards an autocommit write is changing: copied before its OK.
    pub copy_after: Vec<(String, u32)>,
    /// `SET` statements replayed on each backend connection the session uses.
    pub sets: Vec<String>,
    /// `LAST_INSERT_ID()` of the last single-shard insert.
    pub last_insert_id: u64,
    /// The first sequence id of the insert being answered, for its OK packet.
    pub insert_id_override: Option<u64>,
    /// Lookup-vindex entries the open transaction wrote: per physical shard of a lookup
    /// table, a connection with a transaction of its own, committed just before the
    /// transaction's other connections (see `engine/lookup.rs`).
    pub lookup_pre: std::collections::HashMap<String, mysql_async::Conn>,
    /// Lookup entries of rows the open transaction deleted (or took over), settled after it
    /// commits.
    pub lookup_post: Vec<LookupEntry>,
    /// The system variables whose changes are reported to a tracking client, as its
    /// `session_track_system_variables` names them (`None`: MariaDB's default list).
    pub tracked_variables: Option<Vec<String>>,
    /// `session_track_schema`.
    pub track_schema: bool,
    /// `session_track_state_change` (off unless the session turns it on).
    pub track_state_change: bool,
    /// The running statement changed the session's state: its OK packet says so
    /// (`SESSION_TRACK_STATE_CHANGE`) when the session tracks that.
    pub state_changed: bool,
    /// Session state changes for the next OK packet, encoded (`SESSION_TRACK_*` entries).
    pub state_changes: Vec<u8>,
    /// While set, the OK packet of the statement running is kept in `deferred_ok` (affected
    /// rows, last insert id, warnings, info) instead of being written.
    pub defer_ok: bool,
    pub deferred_ok: Option<(u64, u64, u16, String)>,
    /// While set, a write that fails on some physical shards is undone whole by the router
    /// (a savepoint or its own transaction): its error is the backend's, not a report of
    /// what was applied.
    pub undone_on_error: bool,
    /// The session took the global read lock (`FLUSH TABLES WITH READ LOCK`, an admin's) on
    /// its reserved connection and has not unlocked it: what the router would run on other
    /// connections of that server would wait for it forever.
    pub global_read_lock: bool,
    /// The session's own status counters (`SHOW SESSION STATUS`): statements received, and
    /// per `Com_*` variable the router counts.
    pub questions: u64,
    pub com: std::collections::BTreeMap<&'static str, u64>,
    /// The collation id of the client's handshake (its `SET NAMES` leads `sets` when it is not
    /// the backends' own).
    pub handshake_collation: u8,
    /// How the session's statements lex: the client's character set, and whether `sql_mode`
    /// holds `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` (read back from a backend after each
    /// `SET` that may change them). OK and EOF packets carry the NO_BACKSLASH_ESCAPES flag, as
    /// drivers escape by it.
    pub lex: crate::sql::lex::Mode,
    /// The conditions (level, code, message) of the last statement, for `SHOW WARNINGS`;
    /// `None` when they were not kept (a statement answered by several physical shards).
    pub conditions: Option<Vec<(String, u16, String)>>,
    /// The conditions of a statement that failed on a backend, read from it (the error among
    /// them), for [`Session::record_statement`].
    pub error_conditions: Option<Vec<(String, u16, String)>>,
    /// The number of conditions of the last statement (`@@warning_count`).
    pub warning_count: u16,
    /// `ROW_COUNT()` after the last statement: its affected rows, -1 after a result set or
    /// an error.
    pub row_count: i64,
    /// `FOUND_ROWS()` as of the last result set: its row count, or the total a
    /// `SQL_CALC_FOUND_ROWS` read found; `None` when only the backend connection that ran such
    /// a read knows it (the session's reserved one: the question goes there).
    pub last_found_rows: Option<u64>,
    /// The running statement names no table: with autocommit off it opens no transaction
    /// (no connection is pinned for it), as on one server.
    pub opens_no_txn: bool,
    /// What the backend said of the running statement's plan in its status flags
    /// (`SERVER_QUERY_NO_INDEX_USED`, `SERVER_QUERY_NO_GOOD_INDEX_USED`), passed on.
    pub query_status: u16,
    /// The session's own `wait_timeout`, once it sets one: the router closes the client
    /// connection after that long idle, as the server would.
    pub wait_timeout: Option<std::time::Duration>,
    /// The session set `sql_auto_is_null` on: `WHERE auto_col IS NULL` reads the row its
    /// backend connection last inserted (its statements run on a reserved connection; reads
    /// in a sharded keyspace are refused while it is on).
    pub auto_is_null: bool,
    /// The running statement asks `information_schema` of an unsharded keyspace's server:
    /// rows naming a schema the session may not see (another keyspace's physical schemas, the
    /// server's own, keyspaces outside the user's list) are left out of its answer.
    pub schema_filter: bool,
    /// What the running statement's result set makes `FOUND_ROWS()`, when it is not its row
    /// count (a `SQL_CALC_FOUND_ROWS` read): set by the path that ran it.
    pub calc_found: Option<Option<u64>>,
    /// Whether a `COM_QUERY` may hold several statements (`CLIENT_MULTI_STATEMENTS` at login,
    /// then `COM_SET_OPTION`).
    pub multi_statements: bool,
    /// A batch's statement is being answered and more follow: end packets say so.
    pub more_results: bool,
    /// Prepared statements, by id.
    pub prepared: std::collections::HashMap<u32, crate::session::prepared::Prepared>,
    pub next_stmt_id: u32,
}

impl Session {
    pub fn new(
        connection_id: u32,
        user: String,
        keyspace: Option<String>,
        client_caps: u32,
    ) -> Self {
        Session {
            grants: Grants::default(),
            connection_id,
            user,
            keyspace,
            client_caps,
            autocommit: true,
            explicit_txn: false,
            txn_start: Default::default(),
            savepoints: Vec::new(),
            txn_conns: BTreeMap::new(),
            reserved: BTreeMap::new(),
            reserved_ps: Default::default(),
            locked_ps: Default::default(),
            slot: None,
            txn_ls: Default::default(),
            copy_after: Vec::new(),
            txn_ps: Default::default(),
            txn_short_waits: Default::default(),
            sets: Vec::new(),
            last_insert_id: 0,
            insert_id_override: None,
            lookup_pre: std::collections::HashMap::new(),
            lookup_post: Vec::new(),
            error_conditions: None,
            tracked_variables: None,
            track_schema: true,
            state_changes: Vec::new(),
            track_state_change: false,
            state_changed: false,
            defer_ok: false,
            deferred_ok: None,
            undone_on_error: false,
            global_read_lock: false,
            questions: 0,
            com: std::collections::BTreeMap::new(),
            multi_statements: client_caps & crate::wire::constants::CLIENT_MULTI_STATEMENTS != 0,
            more_results: false,
            handshake_collation: 0,
            lex: crate::sql::lex::Mode::default(),
            conditions: Some(Vec::new()),
            warning_count: 0,
            row_count: -1,
            last_found_rows: Some(0),
            opens_no_txn: false,
            query_status: 0,
            wait_timeout: None,
            auto_is_null: false,
            schema_filter: false,
            calc_found: None,
            prepared: std::collections::HashMap::new(),
            next_stmt_id: 1,
        }
    }

    /// Whether statements run inside a transaction (explicit, or autocommit off).
    pub fn in_transaction(&self) -> bool {
        self.explicit_txn || !self.autocommit
    }

    /// The status flags for OK and EOF packets.
    pub fn status_flags(&self) -> u16 {
        let mut s = 0;
        if self.autocommit {
            s |= SERVER_STATUS_AUTOCOMMIT;
        }
        // `txn_ps` (every pinned connection's shard, `txn_conns` only ever holds those): a
        // statement that pins a connection answers while that connection is still out of the
        // session, and its answer already says "in a transaction" (autocommit off), as the
        // server's would.
        if self.explicit_txn || !self.txn_ps.is_empty() {
            s |= SERVER_STATUS_IN_TRANS;
            if self.txn_start.read_only {
                s |= SERVER_STATUS_IN_TRANS_READONLY;
            }
        }
        if self.lex.no_backslash_escapes {
            s |= crate::wire::constants::SERVER_STATUS_NO_BACKSLASH_ESCAPES;
        }
        if self.more_results {
            s |= crate::wire::constants::SERVER_MORE_RESULTS_EXISTS;
        }
        s | self.query_status
    }

    /// The `SET`s a backend connection outside the session's transaction replays: the
    /// session's, and, with autocommit off, `autocommit = 0` (so `SELECT @@autocommit` reads
    /// what the session has).
    pub fn backend_sets(&self) -> std::borrow::Cow<'_, [String]> {
        if self.autocommit {
            return std::borrow::Cow::Borrowed(&self.sets);
        }
        let mut v = self.sets.clone();
        v.push("SET autocommit = 0".to_string());
        std::borrow::Cow::Owned(v)
    }

    /// Whether the client asked for matched rather than changed rows in affected-row counts
    /// (`CLIENT_FOUND_ROWS`).
    pub fn found_rows(&self) -> bool {
        self.client_caps & crate::wire::constants::CLIENT_FOUND_ROWS != 0
    }

    /// Starts a statement's diagnostics: none known until it has answered.
    pub fn start_statement(&mut self, io: &mut crate::wire::PacketIo) {
        self.conditions = None;
        self.calc_found = None;
        self.opens_no_txn = false;
        self.query_status = 0;
        self.schema_filter = false;
        io.warnings = 0;
    }

    /// Keeps a statement's diagnostics for the next one (`SHOW WARNINGS`, `@@warning_count`,
    /// `ROW_COUNT()`): its error, or the warning count and affected rows of its answer in
    /// `io`. Warning texts a path read from its backend stay; with warnings and no texts,
    /// `conditions` stays unknown.
    pub fn record_statement(
        &mut self,
        r: &Result<(), crate::error::SqlError>,
        io: &crate::wire::PacketIo,
    ) {
        let from_backend = self.error_conditions.take();
        // (A change its answer did not report is not carried to the next statement's.)
        self.state_changed = false;
        match r {
            Ok(()) => {
                self.warning_count = io.warnings;
                if io.warnings == 0 {
                    self.conditions = Some(Vec::new());
                }
                self.row_count = if io.result_set {
                    -1
                } else {
                    i64::try_from(io.rows).unwrap_or(i64::MAX)
                };
                if io.result_set {
                    self.last_found_rows = self.calc_found.take().unwrap_or(Some(io.rows));
                }
            }
            Err(e) => {
                match from_backend.filter(|c| c.iter().any(|x| x.1 == e.code)) {
                    Some(c) => {
                        self.warning_count = u16::try_from(c.len()).unwrap_or(u16::MAX);
                        self.conditions = Some(c);
                    }
                    None => {
                        self.warning_count = 1;
                        self.conditions = Some(vec![("Error".into(), e.code, e.message.clone())]);
                    }
                }
                self.row_count = -1;
            }
        }
    }

    /// Whether the client asked for session state changes in OK packets
    /// (`CLIENT_SESSION_TRACK`).
    pub fn tracks_state(&self) -> bool {
        self.client_caps & crate::wire::constants::CLIENT_SESSION_TRACK != 0
    }

    /// Whether a change of system variable `name` (lower-case) is reported to the client:
    /// it asked for session state, and `session_track_system_variables` names it (or `*`).
    pub fn tracks_variable(&self, name: &str) -> bool {
        self.tracks_state()
            && match &self.tracked_variables {
                Some(list) => list.iter().any(|v| v == "*" || v == name),
                None => DEFAULT_TRACKED.contains(&name),
            }
    }

    /// Reports, in the next OK packet, system variable `name` now holding `value`.
    pub fn track_variable(&mut self, name: &str, value: &[u8]) {
        if !self.tracks_variable(name) {
            return;
        }
        let mut data = Vec::with_capacity(name.len() + value.len() + 4);
        crate::wire::codec::put_lenenc_str(&mut data, name.as_bytes());
        crate::wire::codec::put_lenenc_str(&mut data, value);
        self.track(SESSION_TRACK_SYSTEM_VARIABLES, &data);
    }

    /// Reports, in the next OK packet, the session's default database now being `db`
    /// (`session_track_schema`, on unless the session turned it off).
    pub fn track_schema(&mut self, db: &str) {
        self.mark_state_changed();
        if !self.tracks_state() || !self.track_schema {
            return;
        }
        let mut data = Vec::with_capacity(db.len() + 1);
        crate::wire::codec::put_lenenc_str(&mut data, db.as_bytes());
        self.track(SESSION_TRACK_SCHEMA, &data);
    }

    /// Notes that the running statement changed the session's state (a variable, the default
    /// database, a user variable, a temporary table, a prepared statement, a lock), for a
    /// session that tracks that (`session_track_state_change`).
    pub fn mark_state_changed(&mut self) {
        if self.tracks_state() && self.track_state_change {
            self.state_changed = true;
        }
    }

    /// Adds the state-change entry to the next OK packet's session state, if the running
    /// statement changed the state; after the system-variable and schema entries, as MariaDB
    /// orders them.
    pub fn take_state_change(&mut self) {
        if std::mem::take(&mut self.state_changed) {
            // The entry's data is the byte `1` itself, as MariaDB writes it (not a
            // length-encoded string).
            self.track(SESSION_TRACK_STATE_CHANGE, b"1");
        }
    }

    fn track(&mut self, kind: u8, data: &[u8]) {
        self.state_changes.push(kind);
        crate::wire::codec::put_lenenc_int(&mut self.state_changes, data.len() as u64);
        self.state_changes.extend_from_slice(data);
    }

    /// Whether the client wants OK instead of EOF packets.
    pub fn deprecate_eof(&self) -> bool {
        self.client_caps & crate::wire::constants::CLIENT_DEPRECATE_EOF != 0
    }
}

/// The system variables MariaDB reports changes of by default
/// (`session_track_system_variables`).
const DEFAULT_TRACKED: &[&str] = &[
    "autocommit",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "time_zone",
];

/// Session state change kinds (`SESSION_TRACK_*`).
const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
const SESSION_TRACK_SCHEMA: u8 = 1;
const SESSION_TRACK_STATE_CHANGE: u8 = 2;

/// The affected-row count to report for a backend's OK: the backend's own (changed rows),
/// or, for a client that asked for `CLIENT_FOUND_ROWS`, the matched rows of an `UPDATE`, which
/// the backend names in its info text (`Rows matched: 3  Changed: 1  Warnings: 0`). Backend
/// connections are opened without the flag, so one pool serves both kinds of client.
pub fn affected_rows(changed: u64, info: &str, found_rows: bool) -> u64 {
    if !found_rows {
        return changed;
    }
    // The text may come with its length byte in front (MariaDB sends it length-encoded).
    const MATCHED: &str = "Rows matched: ";
    info.find(MATCHED)
        .filter(|&at| at <= 1)
        .map(|at| &info[at + MATCHED.len()..])
        .and_then(|r| {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            r[..digits].parse().ok()
        })
        .unwrap_or(changed)
}

pub use crate::config::Grants;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_rows_reports_matched_rows_of_updates() {
        let info = "Rows matched: 3  Changed: 1  Warnings: 0";
        assert_eq!(affected_rows(1, info, true), 3);
        assert_eq!(affected_rows(1, info, false), 1);
        assert_eq!(
            affected_rows(2, "Records: 2  Duplicates: 0  Warnings: 0", true),
            2
        );
        assert_eq!(affected_rows(0, "", true), 0);
        assert_eq!(
            affected_rows(0, "\u{29}Rows matched: 1  Changed: 0  Warnings: 0", true),
            1
        );
    }

    #[test]
    fn in_transaction_status_from_the_first_pinning_statement() {
        let mut s = Session::new(1, "u".into(), None, 0);
        assert_eq!(s.status_flags(), SERVER_STATUS_AUTOCOMMIT);
        s.autocommit = false;
        // `SET autocommit = 0` itself opens nothing.
        assert_eq!(s.status_flags(), 0);
        // The first statement after it pins a connection: its answer is in a transaction.
        s.txn_ps.insert("ps0".into());
        assert_eq!(s.status_flags(), SERVER_STATUS_IN_TRANS);
        s.txn_ps.clear();
        s.explicit_txn = true;
        s.autocommit = true;
        assert_eq!(
            s.status_flags(),
            SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_IN_TRANS
        );
        s.txn_start.read_only = true;
        assert_eq!(
            s.status_flags(),
            SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_IN_TRANS | SERVER_STATUS_IN_TRANS_READONLY
        );
    }
}

/// One entry of a lookup table (see `engine/lookup.rs`): `value` of `lookup`'s column lives in
/// the row with keyspace id `ksid` of `keyspace.table`.
#[derive(Debug, Clone)]
pub struct LookupEntry {
    pub lookup: crate::topology::Lookup,
    pub keyspace: String,
    pub table: String,
    pub value: mysql_async::Value,
    pub ksid: u64,
}
