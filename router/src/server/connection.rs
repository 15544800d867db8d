//! One client connection's command loop.

use super::login::{authenticate, change_user};
use super::prepare::{execute, field_list, prepare};
use super::query::{query, SeriesCache};
use super::shared::ok;
use super::shared::Shared;
use crate::error::SqlError;
use crate::planner;
use crate::wire::constants::*;
use crate::wire::resultset;
use crate::wire::PacketIo;
use futures_util::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long closing a connection may wait to flush what is left for a client that does not
/// read.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    id: u32,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scramble = super::login::scramble();
    // Greeting, TLS handshake and login together must end within `handshake_timeout_ms`, as
    // MariaDB's `connect_timeout` bounds them; a client that does not finish in time is
    // closed and counted.
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(shared.cfg.handshake_timeout_ms);
    let greeted = tokio::time::timeout_at(
        deadline,
        super::login::greet(stream, id, &shared, &scramble),
    )
    .await;
    let (mut io, first, secure) = match greeted {
        Ok(Some(g)) => g,
        Ok(None) => return,
        Err(_) => {
            // The stream is dropped with the greeting's future: the socket is closed.
            shared.metrics.handshake_timeouts.inc();
            tracing::debug!(conn = id, %peer, "handshake not finished in time; closing");
            return;
        }
    };
    let login = tokio::time::timeout_at(
        deadline,
        authenticate(&mut io, peer, id, &shared, scramble, first, secure),
    )
    .await;
    let mut session = match login {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => {
            close(&mut io).await;
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.handshake_timeouts.inc();
            tracing::debug!(conn = id, %peer, "login not finished in time; closing");
            close(&mut io).await;
            return;
        }
    };
    let mut buf = Vec::with_capacity(1024);
    // One shutdown future for the connection's life, not a new waiter per statement.
    let stop = shutdown.changed();
    tokio::pin!(stop);
    // The session's place in the process list (`SHOW PROCESSLIST`, `KILL`).
    let host = peer.to_string();
    let mut entry = shared.engine.sessions.enter(id, &session.user, &host);
    session.slot = Some(entry.slot.clone());
    // One kill watch for the session's life (renewed with the session on a change of user),
    // not a new waiter per statement.
    let mut killed = Box::pin(kill_watch(entry.slot.clone()));
    let mut series = SeriesCache::default();
    // A session that set no `wait_timeout` of its own is closed after the router's (its
    // `interactive_timeout` for a client that says it is interactive, as MariaDB does).
    let interactive = session.client_caps & crate::wire::constants::CLIENT_INTERACTIVE != 0;
    let default_idle = std::time::Duration::from_secs(if interactive {
        shared.cfg.interactive_timeout_s
    } else {
        shared.cfg.wait_timeout_s
    });
    let mut idle = IdleTimer::new();
    loop {
        io.seq = 0;
        let read = match next_packet(
            &mut io,
            &mut buf,
            &mut stop,
            &mut killed,
            &mut idle,
            session.wait_timeout.unwrap_or(default_idle),
        )
        .await
        {
            Next::Packet(r) => r,
            Next::Closed => break,
            Next::Idle => {
                shared.metrics.idle_timeouts.inc();
                tracing::debug!(conn = id, %peer, "idle longer than wait_timeout; closing");
                break;
            }
        };
        if let Err(e) = read {
            if e.kind() == std::io::ErrorKind::InvalidData {
                tracing::info!(conn = id, %peer, error = %e, "malformed packet; closing the connection");
            }
            break;
        }
        let Some((&cmd, body)) = buf.split_first() else {
            break;
        };
        let r = match cmd {
            COM_QUIT => break,
            COM_CHANGE_USER => {
                match change_user(&mut io, peer, &shared, &mut session, body).await {
                    Ok(true) => {
                        // A new session, under the new user.
                        drop(entry);
                        entry = shared.engine.sessions.enter(id, &session.user, &host);
                        session.slot = Some(entry.slot.clone());
                        killed = Box::pin(kill_watch(entry.slot.clone()));
                        continue;
                    }
                    Ok(false) | Err(_) => break,
                }
            }
            COM_STMT_CLOSE => {
                if let Some(id) = body.get(..4) {
                    session
                        .prepared
                        .remove(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                }
                // COM_STMT_CLOSE has no response.
                continue;
            }
            COM_STMT_SEND_LONG_DATA => {
                if body.len() >= 6 {
                    let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let param = u16::from_le_bytes([body[4], body[5]]);
                    if let Some(p) = session.prepared.get_mut(&id) {
                        p.long_data
                            .entry(param)
                            .or_default()
                            .extend_from_slice(&body[6..]);
                    }
                }
                // COM_STMT_SEND_LONG_DATA has no response.
                continue;
            }
            _ => {
                let run = command(cmd, body, id, &shared, &mut session, &mut io, &mut series);
                match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(r) => r,
                    Err(panic) => {
                        // A bug, not the client's fault: say so, count it, and close the
                        // connection (its state may be half-changed).
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let fingerprint = match cmd {
                            COM_QUERY => std::str::from_utf8(body)
                                .map(crate::sql::fingerprint)
                                .unwrap_or_else(|_| "(not UTF-8)".to_string()),
                            other => format!("command {other:#04x}"),
                        };
                        tracing::error!(conn = id, %peer, %fingerprint, panic = %what, "a command panicked; closing the connection");
                        shared.metrics.panics.inc();
                        let p = resultset::err(
                            1105,
                            "HY000",
                            "internal error in the router (logged); the connection is closed",
                        );
                        let _ = io.write_packet(&p).await;
                        let _ = io.flush().await;
                        break;
                    }
                }
            }
        };
        if let Err(e) = r {
            shared
                .metrics
                .errors
                .with_label_values(&[e.code.to_string().as_str()])
                .inc();
            let p = resultset::err(e.code, e.state, &e.message);
            if io.write_packet(&p).await.is_err() {
                break;
            }
        }
        if io.flush().await.is_err() || entry.slot.is_killed() {
            break;
        }
    }
    // Whatever the session left open is rolled back, and what it reserved given back reset.
    let _ = shared.engine.finish_txn(&mut session, false).await;
    shared.engine.release_reserved(&mut session).await;
    close(&mut io).await;
}

/// Flushes what is left and shuts the connection down, waiting at most [`CLOSE_TIMEOUT`] for
/// a client that does not read; the socket is closed when `io` is dropped in any case.
async fn close(io: &mut PacketIo) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
}

/// What ends the wait for a client's next command.
enum Next {
    /// A packet was read (or the read failed).
    Packet(std::io::Result<()>),
    /// The router shuts down, or the session was killed.
    Closed,
    /// The session stayed idle longer than its `wait_timeout`.
    Idle,
}

/// The idle timer of a session: one timer for the session's life. It is moved earlier when a
/// wait would end before it, and later only when it fires early, so that a busy session
/// touches the timer about once per idle period, not once per statement.
struct IdleTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimer {
    fn new() -> Self {
        // Beyond any `wait_timeout` (MariaDB's largest is a year) until the first wait.
        let far = std::time::Duration::from_secs(2 * 366 * 24 * 3600);
        IdleTimer {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now() + far)),
        }
    }
}

/// Waits for the client's next packet into `buf`, or for the end of the session: shutdown,
/// `KILL`, or `idle` without a command (the client then sees 2006 / 2013, as when MariaDB
/// closes an idle session). The read itself is never abandoned half-way except to close.
async fn next_packet(
    io: &mut PacketIo,
    buf: &mut Vec<u8>,
    stop: &mut std::pin::Pin<&mut impl std::future::Future>,
    killed: &mut std::pin::Pin<Box<impl std::future::Future>>,
    timer: &mut IdleTimer,
    idle: std::time::Duration,
) -> Next {
    let due = tokio::time::Instant::now() + idle;
    if timer.sleep.deadline() > due {
        timer.sleep.as_mut().reset(due);
    }
    let read = io.read_packet(buf);
    tokio::pin!(read);
    loop {
        // `biased`: the read first, without drawing a random number per statement.
        tokio::select! {
            biased;
            r = &mut read => return Next::Packet(r),
            _ = stop.as_mut() => return Next::Closed,
            _ = killed.as_mut() => return Next::Closed,
            _ = timer.sleep.as_mut() => {
                if tokio::time::Instant::now() >= due {
                    return Next::Idle;
                }
                // Armed by an earlier wait: moved on to this one's deadline.
                timer.sleep.as_mut().reset(due);
            }
        }
    }
}

/// Handles one command that has a response (all but `COM_QUIT`, `COM_STMT_CLOSE` and
/// `COM_STMT_SEND_LONG_DATA`).
async fn command(
    cmd: u8,
    body: &[u8],
    id: u32,
    shared: &Shared,
    session: &mut crate::session::Session,
    io: &mut PacketIo,
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    match cmd {
        COM_PING => ok(io, session).await,
        COM_PROCESS_KILL => match body.get(..4) {
            Some(b) => {
                let k = super::processes::Kill {
                    id: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    query_only: false,
                };
                super::processes::kill(shared, session, k).await?;
                ok(io, session).await
            }
            None => Err(SqlError::new(1047, "08S01", "Malformed COM_PROCESS_KILL")),
        },
        COM_QUERY if session.multi_statements => batch(shared, session, io, body, series).await,
        // Several statements from a client that did not ask for them: MariaDB's syntax error,
        // never several answers the client does not expect.
        COM_QUERY
            if body.contains(&b';')
                && crate::sql::split::split_bytes(body, &session.lex).len() > 1 =>
        {
            match Box::pin(shared.engine.syntax_error(session, body)).await {
                Some(e) => Err(e),
                None => query(shared, session, io, body, series).await,
            }
        }
        COM_QUERY => query(shared, session, io, body, series).await,
        COM_SET_OPTION => match body.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]])) {
            Some(0) | Some(1) => {
                session.multi_statements = body[0] == 0;
                crate::engine::write_end(io, session).await
            }
            _ => Err(SqlError::new(
                1047,
                "08S01",
                "Unknown COM_SET_OPTION option",
            )),
        },
        COM_INIT_DB => {
            let db = std::str::from_utf8(body)
                .map_err(|e| crate::error::not_utf8("database name", body, e))?
                .trim()
                .to_string();
            let plan = planner::Plan::Local(planner::Local::Use(db));
            shared.engine.execute(session, plan, io).await
        }
        COM_RESET_CONNECTION => {
            let r = shared.engine.finish_txn(session, false).await;
            shared.engine.release_reserved(session).await;
            session.sets.clear();
            session.lex.no_backslash_escapes = false;
            session.lex.ansi_quotes = false;
            // Back to what the login set: its character set, its capability modes.
            super::login::login_state(shared, session).await;
            session.wait_timeout = None;
            session.autocommit = true;
            session.last_insert_id = 0;
            session.questions = 0;
            session.com.clear();
            match r {
                Ok(()) => ok(io, session).await,
                Err(e) => Err(e),
            }
        }
        COM_FIELD_LIST => field_list(shared, session, io, body).await,
        COM_STATISTICS => {
            let s = format!("Uptime: 0  Threads: 1  Tessera router, connection {id}");
            io.write_packet(s.as_bytes())
                .await
                .map_err(crate::error::io_err)
        }
        COM_STMT_PREPARE => prepare(shared, session, io, body).await,
        COM_STMT_EXECUTE => {
            session.start_statement(io);
            let r = execute(shared, session, io, body, series).await;
            io.binary_mode = false;
            io.binary_columns = None;
            session.record_statement(&r, io);
            r
        }
        COM_STMT_RESET => {
            let id = body
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            match id.and_then(|id| session.prepared.get_mut(&id)) {
                Some(p) => {
                    p.long_data.clear();
                    ok(io, session).await
                }
                None => Err(SqlError::new(
                    1243,
                    "HY000",
                    "Unknown prepared statement handler given to mysqld_stmt_reset",
                )),
            }
        }
        COM_STMT_FETCH => Err(SqlError::unsupported(
            "server-side cursors (COM_STMT_FETCH)",
        )),
        other => Err(SqlError::unknown_command(other)),
    }
}

/// Runs a `COM_QUERY` that may hold several statements, in order, each planned on its own:
/// every answer but the last says more follow; an error ends the batch (the statements after
/// it do not run), as in MariaDB. A stored-program definition is one statement, its body's
/// `;` included.
async fn batch(
    shared: &Shared,
    session: &mut crate::session::Session,
    io: &mut PacketIo,
    sql: &[u8],
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    // Most statements hold no `;` at all: no scan for them.
    if !sql.contains(&b';') {
        return query(shared, session, io, sql, series).await;
    }
    // Boxed: a cold path kept out of every statement's future.
    Box::pin(batch_of_several(shared, session, io, sql, series)).await
}

/// [`batch`] for a text that holds a `;`.
async fn batch_of_several(
    shared: &Shared,
    session: &mut crate::session::Session,
    io: &mut PacketIo,
    sql: &[u8],
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    let parts = crate::sql::split::split_bytes(sql, &session.lex);
    if parts.len() <= 1 {
        return query(shared, session, io, sql, series).await;
    }
    let last = parts.len() - 1;
    for (i, &(s, e)) in parts.iter().enumerate() {
        session.more_results = i < last;
        let r = query(shared, session, io, sql[s..e].trim_ascii(), series).await;
        session.more_results = false;
        r?;
    }
    Ok(())
}

/// Resolves when `KILL CONNECTION` asks the session of `slot` to end.
async fn kill_watch(slot: std::sync::Arc<crate::session::registry::Slot>) {
    slot.killed().await
}
