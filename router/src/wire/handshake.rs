//! The connection phase: the server's greeting and the client's handshake response.

use super::codec::Cursor;
use super::constants::*;

/// The parsed `HandshakeResponse41`.
#[derive(Debug, Clone)]
pub struct HandshakeResponse {
    pub capabilities: u32,
    pub charset: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
    /// MariaDB's extended capabilities the client asked for (0 from a MySQL client).
    pub extended: u32,
}

/// Builds the `HandshakeV10` greeting.
pub fn greeting(
    server_version: &str,
    connection_id: u32,
    scramble: &[u8; 20],
    plugin: &str,
    tls: bool,
) -> Vec<u8> {
    let caps = SERVER_CAPABILITIES | if tls { CLIENT_SSL } else { 0 };
    let mut p = Vec::with_capacity(128);
    p.push(10);
    p.extend_from_slice(server_version.as_bytes());
    p.push(0);
    p.extend_from_slice(&connection_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(UTF8MB4_GENERAL_CI);
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21); // length of the auth data, with its NUL
    p.extend_from_slice(&[0u8; 6]);
    p.extend_from_slice(&MARIADB_CLIENT_EXTENDED_METADATA.to_le_bytes());
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// Parses the client's handshake response.
///
/// Returns `None` for a malformed packet (names that are not UTF-8 included) or a client
/// without `CLIENT_PROTOCOL_41`.
pub fn parse_response(payload: &[u8]) -> Option<HandshakeResponse> {
    let mut c = Cursor::new(payload);
    let capabilities = c.u32()?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return None;
    }
    let _max_packet = c.u32()?;
    let charset = c.u8()?;
    let filler = c.take(23)?;
    // A MariaDB client (bit 0 clear) puts its extended capabilities in the last four bytes.
    let extended = if capabilities & 1 == 0 {
        u32::from_le_bytes([filler[19], filler[20], filler[21], filler[22]])
            & MARIADB_CLIENT_EXTENDED_METADATA
    } else {
        0
    };
    let user = String::from_utf8(c.cstr()?.to_vec()).ok()?;
    let auth_response = if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        c.lenenc_str()?.to_vec()
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let n = usize::from(c.u8()?);
        c.take(n)?.to_vec()
    } else {
        c.cstr()?.to_vec()
    };
    let database = if capabilities & CLIENT_CONNECT_WITH_DB != 0 && c.remaining() > 0 {
        let d = String::from_utf8(c.cstr()?.to_vec()).ok()?;
        (!d.is_empty()).then_some(d)
    } else {
        None
    };
    let auth_plugin = if capabilities & CLIENT_PLUGIN_AUTH != 0 && c.remaining() > 0 {
        Some(String::from_utf8(c.cstr()?.to_vec()).ok()?)
    } else {
        None
    };
    Some(HandshakeResponse {
        capabilities,
        charset,
        user,
        auth_response,
        database,
        auth_plugin,
        extended,
    })
}

/// The fields of a `COM_CHANGE_USER` the router uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
}

/// Parses a `COM_CHANGE_USER` body (after the command byte), for a client with capabilities
/// `caps`. Returns `None` for a malformed packet (names that are not UTF-8 included).
pub fn parse_change_user(body: &[u8], caps: u32) -> Option<ChangeUser> {
    let mut c = Cursor::new(body);
    let user = String::from_utf8(c.cstr()?.to_vec()).ok()?;
    let auth_response = if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = usize::from(c.u8()?);
        c.take(n)?.to_vec()
    } else {
        c.cstr()?.to_vec()
    };
    let db = c.cstr()?;
    let database = if db.is_empty() {
        None
    } else {
        Some(String::from_utf8(db.to_vec()).ok()?)
    };
    // The character set (two bytes) follows when the client sends more.
    if c.remaining() >= 2 {
        c.u16()?;
    }
    let auth_plugin = if caps & CLIENT_PLUGIN_AUTH != 0 && c.remaining() > 0 {
        Some(String::from_utf8(c.cstr()?.to_vec()).ok()?)
    } else {
        None
    };
    Some(ChangeUser {
        user,
        auth_response,
        database,
        auth_plugin,
    })
}

/// Builds an `AuthSwitchRequest` to `plugin` with `scramble`.
pub fn auth_switch(plugin: &str, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.push(0xfe);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p.extend_from_slice(scramble);
    p.push(0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_responses_are_rejected() {
        assert!(parse_response(&[]).is_none());
        assert!(parse_response(&[0xff, 0xff, 0xff, 0xff, 0, 0]).is_none());
        assert!(parse_response(&[0, 0, 0, 0, 0, 0, 0, 0, 8]).is_none());
    }

    #[test]
    fn parses_a_response() {
        let caps = CLIENT_PROTOCOL_41
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_WITH_DB;
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 45]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"app\0");
        p.extend_from_slice(&[2, 9, 9]);
        p.extend_from_slice(b"demo\0mysql_native_password\0");
        let r = parse_response(&p).expect("parses");
        assert_eq!(r.user, "app");
        assert_eq!(r.auth_response, vec![9, 9]);
        assert_eq!(r.database.as_deref(), Some("demo"));
        assert_eq!(r.auth_plugin.as_deref(), Some("mysql_native_password"));
    }
}
