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

/// Authenticates the client; returns its session, or `None` after sending the error.
pub(super) async fn authenticate(
    io: &mut PacketIo,
    peer: SocketAddr,
    id: u32,
    shared: &Shared,
) -> std::io::Result<Option<Session>> {
    let scramble = scramble();
    let offered = shared.cfg.auth_plugin.as_str();
    io.write_packet(&handshake::greeting(
        &shared.cfg.server_version,
        id,
        &scramble,
        offered,
    ))
    .await?;
    io.flush().await?;
    let mut buf = Vec::new();
    io.read_packet(&mut buf).await?;
    let Some(resp) = handshake::parse_response(&buf) else {
        let p = resultset::err(1043, "08S01", "Bad handshake");
        io.write_packet(&p).await?;
        io.flush().await?;
        return Ok(None);
    };
    let host = peer.ip().to_string();
    let user = shared.cfg.users.iter().find(|u| u.name == resp.user);
    let mut plugin = resp
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_string());
    let mut token = resp.auth_response.clone();
    if plugin != auth::NATIVE && plugin != auth::CACHING_SHA2 {
        // Ask the client to use the plugin we offered.
        io.write_packet(&handshake::auth_switch(offered, &scramble))
            .await?;
        io.flush().await?;
        io.read_packet(&mut buf).await?;
        plugin = offered.to_string();
        token = buf.clone();
    }
    let password = user.map(|u| u.resolve_password()).unwrap_or_default();
    let ok = user.is_some() && auth::check(&plugin, password.as_bytes(), &scramble, &token);
    if !ok {
        let e = SqlError::access_denied(&resp.user, &host);
        io.write_packet(&resultset::err(e.code, e.state, &e.message))
            .await?;
        io.flush().await?;
        tracing::info!(conn = id, %peer, user = %resp.user, "access denied");
        return Ok(None);
    }
    if plugin == auth::CACHING_SHA2 {
        // fast_auth_success
        io.write_packet(&[0x01, 0x03]).await?;
    }
    let keyspace = resp
        .database
        .clone()
        .or_else(|| shared.cfg.default_keyspace.clone());
    if let Some(ks) = &resp.database {
        if shared.engine.topo.table().keyspace(ks).is_none() {
            let e = SqlError::unknown_database(ks);
            io.write_packet(&resultset::err(e.code, e.state, &e.message))
                .await?;
            io.flush().await?;
            return Ok(None);
        }
    }
    let session = Session::new(
        id,
        resp.user.clone(),
        keyspace,
        resp.capabilities & SERVER_CAPABILITIES,
    );
    io.write_packet(&resultset::ok(0, 0, session.status_flags(), 0, "", false))
        .await?;
    io.flush().await?;
    Ok(Some(session))
}
