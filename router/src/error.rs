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

    /// 1205: a statement on a table that `tessera movetables` is switching over, after
    /// [`SWITCH_HOLD`] of waiting.
    pub fn switching(keyspace: &str, table: &str, to: &str) -> Self {
        Self::new(
            1205,
            "HY000",
            format!(
                "Lock wait timeout exceeded; try restarting transaction (table {keyspace}.{table} {SWITCHING} {to})"
            ),
        )
    }

    /// Whether this is [`SqlError::switching`].
    pub fn is_switching(&self) -> bool {
        self.code == 1205 && self.message.contains(SWITCHING)
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

/// How long a statement on a table being switched over by `tessera movetables` waits.
pub const SWITCH_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

const SWITCHING: &str = "is switching over to keyspace";

/// A failure writing to or reading from the client's connection.
pub fn io_err(e: std::io::Error) -> SqlError {
    SqlError::router(format!("client connection: {e}"))
}

/// The error for text that is not valid UTF-8. The router reads statements as UTF-8 (the
/// `utf8mb4` connection character set) and refuses other bytes rather than changing them:
/// binary values go in hex literals (`X'80FF'`) or as prepared-statement parameters.
pub fn not_utf8(what: &str, body: &[u8], e: std::str::Utf8Error) -> SqlError {
    let at = e.valid_up_to();
    let bad: String = body[at..]
        .iter()
        .take(4)
        .map(|b| format!("{b:02X}"))
        .collect();
    SqlError::unsupported(format!(
        "a {what} whose bytes are not valid UTF-8 (0x{bad} at byte {at}); send text as utf8mb4, \
         and binary values as hex literals (X'…') or prepared-statement parameters"
    ))
}
