//! Backend errors as the client sees them: a server's error passes through with its number
//! and SQLSTATE (logical-shard schema names mapped back to the keyspace); a backend connection
//! that died under the statement (closed, reset, killed, timed out, server going down) is
//! 2013, which drivers know to retry; anything else is reported as the physical shard being
//! unavailable.

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
        mysql_async::Error::Server(s) if CONNECTION_ENDED.contains(&s.code) => {
            lost(shard, addr, &s.message)
        }
        mysql_async::Error::Server(s) => server_error(s.code, &s.state, &s.message, unqualify),
        mysql_async::Error::Io(io) => lost(shard, addr, &io),
        other => SqlError::shard(shard, addr, other),
    }
}

/// Server errors that end the connection they arrive on: killed (1927), closed for inactivity
/// (4031), server shutting down (1053).
const CONNECTION_ENDED: &[u16] = &[1927, 4031, 1053];

/// 2013: the backend connection of the statement was lost.
pub fn lost(shard: &str, addr: &str, why: &dyn std::fmt::Display) -> SqlError {
    SqlError::new(
        2013,
        "HY000",
        format!("Lost connection to physical shard {shard} ({addr}) during query: {why}"),
    )
}

/// The same for the router's own backend connections ([`super::wire`]).
pub fn from_wire(
    e: super::wire::WireError,
    shard: &str,
    addr: &str,
    unqualify: Unqualify<'_>,
) -> SqlError {
    match e {
        super::wire::WireError::Server { code, message, .. }
            if CONNECTION_ENDED.contains(&code) =>
        {
            lost(shard, addr, &message)
        }
        super::wire::WireError::Server {
            code,
            state,
            message,
        } => server_error(code, &state, &message, unqualify),
        super::wire::WireError::Io(io) => lost(shard, addr, &io),
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
    if let Some(k) = KNOWN.iter().find(|k| **k == s) {
        return k;
    }
    intern_state(s)
}

/// Most SQLSTATEs kept besides the common ones (those of `SIGNAL SQLSTATE '45000'` and the
/// like); beyond it a new one is reported as HY000, so that a client cannot grow the table
/// without bound.
const MAX_INTERNED_STATES: usize = 1024;

/// A SQLSTATE not in the common set, kept for the process's life.
fn intern_state(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static STATES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let valid = s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return "HY000";
    }
    let Ok(mut set) = STATES.get_or_init(Default::default).lock() else {
        return "HY000";
    };
    if let Some(k) = set.get(s) {
        return k;
    }
    if set.len() >= MAX_INTERNED_STATES {
        return "HY000";
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlstates_pass_through() {
        assert_eq!(super::leak_state("42S02"), "42S02");
        assert_eq!(super::leak_state("45000"), "45000");
        assert_eq!(
            super::leak_state("45000").as_ptr(),
            super::leak_state("45000").as_ptr()
        );
        assert_eq!(super::leak_state("bad"), "HY000");
    }
}
