//! Errors that reach clients, each with its MySQL error number and SQLSTATE.

use std::fmt;

/// An error as the client sees it: `ERROR code (state): message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub code: u16,
    pub state: &'static str,
    pub message: String,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, self.state, self.message)
    }
}

impl std::error::Error for SqlError {}

impl SqlError {
    pub fn new(code: u16, state: &'static str, message: impl Into<String>) -> Self {
        SqlError {
            code,
            state,
            message: message.into(),
        }
    }

    /// 1064: the statement does not parse.
    pub fn parse(message: impl fmt::Display) -> Self {
        Self::new(
            1064,
            "42000",
            format!("You have an error in your SQL syntax: {message}"),
        )
    }

    /// 1045: wrong user or password.
    pub fn access_denied(user: &str, host: &str) -> Self {
        Self::new(
            1045,
            "28000",
            format!("Access denied for user '{user}'@'{host}' (using password: YES)"),
        )
    }

    /// 1046: no keyspace chosen.
    pub fn no_database() -> Self {
        Self::new(1046, "3D000", "No database selected")
    }

    /// 1049: unknown keyspace.
    pub fn unknown_database(name: &str) -> Self {
        Self::new(1049, "42000", format!("Unknown database '{name}'"))
    }

    /// 1146: unknown table.
    pub fn unknown_table(keyspace: &str, table: &str) -> Self {
        Self::new(
            1146,
            "42S02",
            format!("Table '{keyspace}.{table}' doesn't exist"),
        )
    }

    /// 1235: a statement shape the router does not support; the message names it.
    pub fn unsupported(what: impl fmt::Display) -> Self {
        Self::new(
            1235,
            "42000",
            format!("Tessera does not support {what} yet"),
        )
    }

    /// 1047: an unknown protocol command.
    pub fn unknown_command(cmd: u8) -> Self {
        Self::new(1047, "08S01", format!("Unknown command 0x{cmd:02x}"))
    }

    /// 1105: a router-side failure.
    pub fn router(message: impl Into<String>) -> Self {
        Self::new(1105, "HY000", message)
    }

    /// 1105: a physical shard could not serve; names the shard.
    pub fn shard(shard: &str, addr: &str, message: impl fmt::Display) -> Self {
        Self::new(
            1105,
            "HY000",
            format!("physical shard {shard} ({addr}) unavailable: {message}"),
        )
    }
}

/// Turns a backend error into a client error: server errors pass through with their number
/// (logical-shard schema names mapped back to the keyspace by `unqualify`), anything else is
/// reported as the shard being unavailable.
pub fn from_backend(
    e: mysql_async::Error,
    shard: &str,
    addr: &str,
    unqualify: crate::engine::Unqualify<'_>,
) -> SqlError {
    match e {
        mysql_async::Error::Server(s) => server_error(s.code, &s.state, &s.message, unqualify),
        other => SqlError::shard(shard, addr, other),
    }
}

/// The same for the router's own backend connections ([`crate::backend::wire`]).
pub fn from_wire(
    e: crate::backend::wire::WireError,
    shard: &str,
    addr: &str,
    unqualify: crate::engine::Unqualify<'_>,
) -> SqlError {
    match e {
        crate::backend::wire::WireError::Server {
            code,
            state,
            message,
        } => server_error(code, &state, &message, unqualify),
        other => SqlError::shard(shard, addr, other),
    }
}

/// A server's ERR as the client sees it.
fn server_error(
    code: u16,
    state: &str,
    message: &str,
    unqualify: crate::engine::Unqualify<'_>,
) -> SqlError {
    SqlError {
        code,
        state: leak_state(state),
        message: unqualify.apply(message).into_owned(),
    }
}

/// SQLSTATEs are five ASCII characters from a small set; map the common ones to statics.
fn leak_state(s: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "HY000", "42000", "42S01", "42S02", "42S22", "23000", "22001", "22003", "22007", "22012",
        "21S01", "40001", "XA000", "25000", "3D000", "08S01", "28000", "01000", "22004", "HY001",
        "42S21", "21000", "22023", "70100", "24000", "0A000", "40000", "23001",
    ];
    KNOWN.iter().find(|k| **k == s).copied().unwrap_or("HY000")
}
