//! Backend errors as the client sees them: a server's error passes through with its number
//! and SQLSTATE (logical-shard schema names mapped back to the keyspace), anything else is
//! reported as the physical shard being unavailable.

use crate::error::SqlError;
use crate::topology::Unqualify;

/// Turns a backend error into a client error: server errors pass through with their number
/// (logical-shard schema names mapped back to the keyspace by `unqualify`), anything else is
/// reported as the shard being unavailable.
pub fn from_backend(
    e: mysql_async::Error,
    shard: &str,
    addr: &str,
    unqualify: Unqualify<'_>,
) -> SqlError {
    match e {
        mysql_async::Error::Server(s) => server_error(s.code, &s.state, &s.message, unqualify),
        other => SqlError::shard(shard, addr, other),
    }
}

/// The same for the router's own backend connections ([`super::wire`]).
pub fn from_wire(
    e: super::wire::WireError,
    shard: &str,
    addr: &str,
    unqualify: Unqualify<'_>,
) -> SqlError {
    match e {
        super::wire::WireError::Server {
            code,
            state,
            message,
        } => server_error(code, &state, &message, unqualify),
        other => SqlError::shard(shard, addr, other),
    }
}

/// A server's ERR as the client sees it.
fn server_error(code: u16, state: &str, message: &str, unqualify: Unqualify<'_>) -> SqlError {
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
