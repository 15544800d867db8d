//! A client's login: the handshake and the password check.

use super::shared::Shared;
use crate::error::SqlError;
use crate::session::Session;
use crate::wire::auth;
use crate::wire::constants::*;
use crate::wire::handshake;
use crate::wire::resultset;
use crate::wire::PacketIo;
use rand::Rng;
use std::net::SocketAddr;

pub(super) fn scramble() -> [u8; 20] {
    let mut s = [0u8; 20];
    let mut rng = rand::thread_rng();
    for b in &mut s {
        // Printable, never NUL or '$', as servers send.
        *b = rng.gen_range(0x21..0x7f);
        if *b == b'$' {
            *b = b'#';
        }
    }
    s
}

/// The largest first packet a client may send (a handshake response, with its attributes).
const MAX_FIRST_PACKET: usize = 64 * 1024;

/// Sends the greeting on a new connection and reads the client's first packet: its handshake
/// response, or an `SSLRequest`, after which the connection switches to TLS and the response
/// follows over it. Returns the connection's packet stream (its next sequence id 2), the
/// response when it came in the clear, and whether the connection is now TLS. `None` when the
/// client went away, sent something else, or failed its TLS handshake.
pub(super) async fn greet(
    mut stream: tokio::net::TcpStream,
    id: u32,
    shared: &Shared,
    scramble: &[u8; 20],
) -> Option<(PacketIo, Option<Vec<u8>>, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let greeting = handshake::greeting(
        &shared.cfg.server_version,
        id,
        scramble,
        &shared.cfg.auth_plugin,
        shared.tls.is_some(),
    );
    // Written and read on the socket itself: nothing may be buffered past the first packet
    // when TLS takes the socket over.
    let mut out = Vec::with_capacity(greeting.len() + 4);
    out.extend_from_slice(&(greeting.len() as u32).to_le_bytes()[..3]);
    out.push(0);
    out.extend_from_slice(&greeting);
    stream.write_all(&out).await.ok()?;
    let mut hdr = [0u8; 4];
    stream.read_exact(&mut hdr).await.ok()?;
    let len = usize::from(hdr[0]) | usize::from(hdr[1]) << 8 | usize::from(hdr[2]) << 16;
    if hdr[3] != 1 || len > MAX_FIRST_PACKET {
        return None;
    }
    let mut first = vec![0u8; len];
    stream.read_exact(&mut first).await.ok()?;
    if super::tls::is_ssl_request(&first) {
        let acceptor = shared.tls.as_ref()?;
        let tls = match acceptor.accept(stream).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(conn = id, error = %e, "TLS handshake failed");
                return None;
            }
        };
        let (r, w) = tokio::io::split(tls);
        let mut io = PacketIo::from_parts(Box::new(r), Box::new(w));
        io.seq = 2;
        return Some((io, None, true));
    }
    let mut io = PacketIo::new(stream);
    io.seq = 2;
    Some((io, Some(first), false))
}

/// Authenticates the client after [`greet`] (`first`: its handshake response if it came in
/// the clear; `secure`: the connection is TLS); returns its session, or `None` after sending
/// the error.
pub(super) async fn authenticate(
    io: &mut PacketIo,
    peer: SocketAddr,
    id: u32,
    shared: &Shared,
    scramble: [u8; 20],
    first: Option<Vec<u8>>,
    secure: bool,
) -> std::io::Result<Option<Session>> {
    let offered = shared.cfg.auth_plugin.as_str();
    let mut buf = Vec::new();
    match first {
        Some(b) => buf = b,
        None => io.read_packet(&mut buf).await?,
    }
    let Some(resp) = handshake::parse_response(&buf) else {
        let p = resultset::err(1043, "08S01", "Bad handshake");
        io.write_packet(&p).await?;
        io.flush().await?;
        return Ok(None);
    };
    let host = peer.ip().to_string();
    // An address that keeps failing waits before every answer.
    let wait = shared.failed_logins.delay(peer.ip());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    io.extended_metadata =
        resp.extended & crate::wire::constants::MARIADB_CLIENT_EXTENDED_METADATA != 0;
    let user = shared.cfg.users.iter().find(|u| u.name == resp.user);
    // Over the clear where TLS is required: refused as MariaDB refuses a `REQUIRE SSL` user.
    if !secure && (shared.cfg.require_secure_transport || user.is_some_and(|u| u.require_tls)) {
        shared.metrics.login_failures.inc();
        let e = SqlError::access_denied(&resp.user, &host);
        io.write_packet(&resultset::err(e.code, e.state, &e.message))
            .await?;
        io.flush().await?;
        return Ok(None);
    }
    let mut plugin = resp
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_string());
    let mut token = resp.auth_response.clone();
    let credential = user.map(|u| u.credential());
    // A user known only by its stored hash proves itself with mysql_native_password.
    let wanted = match credential {
        Some(crate::config::Credential::NativeHash(_)) => auth::NATIVE,
        _ => offered,
    };
    let known = plugin == auth::NATIVE || plugin == auth::CACHING_SHA2;
    if !known || (wanted == auth::NATIVE && plugin != auth::NATIVE) {
        // Ask the client to use the plugin wanted.
        io.write_packet(&handshake::auth_switch(wanted, &scramble))
            .await?;
        io.flush().await?;
        io.read_packet(&mut buf).await?;
        plugin = wanted.to_string();
        token = buf.clone();
    }
    let ok = credential.is_some_and(|c| c.check(&plugin, &scramble, &token));
    if !ok {
        shared.metrics.login_failures.inc();
        shared.failed_logins.failed(peer.ip());
        let e = SqlError::access_denied(&resp.user, &host);
        io.write_packet(&resultset::err(e.code, e.state, &e.message))
            .await?;
        io.flush().await?;
        tracing::info!(conn = id, %peer, user = %resp.user, "access denied");
        return Ok(None);
    }
    shared.failed_logins.succeeded(peer.ip());
    if plugin == auth::CACHING_SHA2 {
        // fast_auth_success
        io.write_packet(&[0x01, 0x03]).await?;
    }
    let grants = user.map(|u| u.grants()).unwrap_or_default();
    let keyspace = starting_keyspace(shared, &grants, resp.database.as_ref());
    if let Some(ks) = &resp.database {
        let e = if shared.engine.topo.table().keyspace(ks).is_none() {
            Some(database_refused(ks, &resp.user))
        } else if !grants.may_use(ks) {
            Some(crate::session::Grants::denied(&resp.user, ks))
        } else {
            None
        };
        if let Some(e) = e {
            io.write_packet(&resultset::err(e.code, e.state, &e.message))
                .await?;
            io.flush().await?;
            return Ok(None);
        }
    }
    let mut session = Session::new(
        id,
        resp.user.clone(),
        keyspace,
        resp.capabilities & SERVER_CAPABILITIES,
    );
    session.grants = grants;
    // The character set and collation of the handshake hold on every backend connection the
    // session uses, as if the client had said `SET NAMES`.
    session.handshake_collation = resp.charset;
    login_state(shared, &mut session).await;
    io.write_packet(&resultset::ok(0, 0, session.status_flags(), 0, "", false))
        .await?;
    io.flush().await?;
    Ok(Some(session))
}

/// `COM_CHANGE_USER`: checks the new user's password (always through an auth switch with a
/// fresh scramble, so no earlier one is reused), then gives the connection a new session as
/// a new login would: the open transaction rolled back, `SET`s, user variables and prepared
/// statements gone. Returns `false` after sending the error when the check fails; the caller
/// then closes the connection (it has no user any more).
///
/// # Errors
/// I/O errors on the client's connection.
pub(super) async fn change_user(
    io: &mut PacketIo,
    peer: SocketAddr,
    shared: &Shared,
    session: &mut Session,
    body: &[u8],
) -> std::io::Result<bool> {
    let id = session.connection_id;
    let refuse = |code: u16, state: &'static str, msg: String| (code, state, msg);
    let failed = match handshake::parse_change_user(body, session.client_caps) {
        None => Some(refuse(1043, "08S01", "Bad handshake".into())),
        Some(req) => {
            let scramble = scramble();
            let user = shared.cfg.users.iter().find(|u| u.name == req.user);
            let credential = user.map(|u| u.credential());
            let plugin = match credential {
                Some(crate::config::Credential::NativeHash(_)) => auth::NATIVE,
                _ => shared.cfg.auth_plugin.as_str(),
            };
            io.write_packet(&handshake::auth_switch(plugin, &scramble))
                .await?;
            io.flush().await?;
            let mut token = Vec::new();
            io.read_packet(&mut token).await?;
            let ok = credential.is_some_and(|c| c.check(plugin, &scramble, &token));
            if !ok {
                shared.metrics.login_failures.inc();
                shared.failed_logins.failed(peer.ip());
                tracing::info!(conn = id, %peer, user = %req.user, "access denied on change user");
                let e = SqlError::access_denied(&req.user, &peer.ip().to_string());
                Some(refuse(e.code, e.state, e.message))
            } else if let Some(ks) = req
                .database
                .as_ref()
                .filter(|ks| shared.engine.topo.table().keyspace(ks).is_none())
            {
                let e = database_refused(ks, &req.user);
                Some(refuse(e.code, e.state, e.message))
            } else if let Some(ks) = req
                .database
                .as_ref()
                .filter(|ks| user.is_some_and(|u| !u.grants().may_use(ks)))
            {
                let e = crate::session::Grants::denied(&req.user, ks);
                Some(refuse(e.code, e.state, e.message))
            } else {
                // The old session's transaction ends unfinished, as on a new login.
                let _ = shared.engine.finish_txn(session, false).await;
                shared.engine.release_reserved(session).await;
                let grants = user.map(|u| u.grants()).unwrap_or_default();
                let keyspace = starting_keyspace(shared, &grants, req.database.as_ref());
                let collation = session.handshake_collation;
                *session = Session::new(id, req.user.clone(), keyspace, session.client_caps);
                session.grants = grants;
                session.handshake_collation = collation;
                login_state(shared, session).await;
                if plugin == auth::CACHING_SHA2 {
                    // fast_auth_success
                    io.write_packet(&[0x01, 0x03]).await?;
                }
                None
            }
        }
    };
    match failed {
        None => {
            io.write_packet(&resultset::ok(0, 0, session.status_flags(), 0, "", false))
                .await?;
            io.flush().await?;
            Ok(true)
        }
        Some((code, state, msg)) => {
            io.write_packet(&resultset::err(code, state, &msg)).await?;
            io.flush().await?;
            Ok(false)
        }
    }
}

/// What a login sets in a session besides its user and database, as MariaDB sets it: the
/// handshake's character set and collation (as if the client had said `SET NAMES`; the
/// router's lexer reads by it) and the modes of its capability flags. A new session, a
/// `COM_CHANGE_USER` and a `COM_RESET_CONNECTION` start from it.
pub(super) async fn login_state(shared: &Shared, session: &mut Session) {
    session.lex.set_charset("utf8mb4");
    if let Some(names) = shared
        .engine
        .handshake_names(session.handshake_collation)
        .await
    {
        session.lex.set_charset(names_charset(&names));
        session.sets.push(names);
    }
    capability_modes(session);
}

/// What a client's capability flags set in its session, as MariaDB sets it at login:
/// `CLIENT_IGNORE_SPACE` adds `IGNORE_SPACE` to `sql_mode`.
fn capability_modes(session: &mut Session) {
    if session.client_caps & crate::wire::constants::CLIENT_IGNORE_SPACE != 0 {
        session.sets.push(
            "SET sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'IGNORE_SPACE')".to_string(),
        );
    }
}

/// The keyspace a new session starts in: the one its login names, else the router's default
/// where the user may use it.
fn starting_keyspace(
    shared: &Shared,
    grants: &crate::session::Grants,
    requested: Option<&String>,
) -> Option<String> {
    requested.cloned().or_else(|| {
        shared
            .cfg
            .default_keyspace
            .clone()
            .filter(|k| grants.may_use(k))
    })
}

/// The character set a `SET NAMES cs COLLATE …` names.
fn names_charset(names: &str) -> &str {
    names.split_whitespace().nth(2).unwrap_or_default()
}

/// The error for a login naming a database that is not a keyspace: 1044 for the server's own
/// schemas (the router's clients reach only their keyspaces), 1049 otherwise.
fn database_refused(db: &str, user: &str) -> SqlError {
    if crate::sql::classify::SYSTEM_SCHEMAS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(db))
    {
        return SqlError::new(
            1044,
            "42000",
            format!(
                "Access denied for user '{user}' to database '{db}' (the router's clients reach only their keyspaces)"
            ),
        );
    }
    SqlError::unknown_database(db)
}
