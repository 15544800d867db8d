//! The router's own backend connection, for every statement a client's session runs: the
//! statement goes out as `COM_QUERY` (or `COM_STMT_EXECUTE`) and the answer's packets are
//! handed to the client as they arrive, without decoding rows into values and encoding them
//! again; paths that want values read it through [`super::conn`]. The control plane (moves,
//! verification, tools) uses `mysql_async`.
//!
//! A [`WirePool`] keeps idle connections per physical shard with no background task: a
//! connection is checked for a closed socket when it is taken (no round trip), dropped when it
//! was idle too long, and closed rather than reused after any I/O or protocol error, or when
//! its answer was not read to the end. Each connection remembers the session `SET`s replayed
//! on it, and a session is given one with the same `SET`s when there is one, so a client that
//! sets its session up once does not pay a replay and a reset per statement; a connection
//! with other `SET`s is reset (`COM_RESET_CONNECTION`) before they are replayed.

use crate::wire::auth;
use crate::wire::codec::Cursor;
use crate::wire::constants::*;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const MAX_PAYLOAD: usize = 0xff_ffff;

/// Largest answer packet accepted from a backend (MariaDB's `max_allowed_packet` ceiling).
const MAX_BACKEND_PACKET: usize = 1 << 30;

/// What the router asks of a backend connection: 4.1 protocol, multi-results (`CALL`), classic
/// EOF packets (the router writes each client's own end-of-result marker), no multi-statements,
/// `LOCAL INFILE` (a file the client sends, relayed), no `FOUND_ROWS` (affected rows are
/// changed rows, as with the pools).
const CLIENT_CAPS: u32 = CLIENT_LOCAL_FILES
    | CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

/// Why a backend exchange failed.
#[derive(Debug)]
pub enum WireError {
    /// The server answered with an ERR packet; the connection stays usable.
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// The socket failed or closed.
    Io(io::Error),
    /// The server sent something this protocol does not allow.
    Protocol(String),
    /// The server wants an authentication method the router does not speak.
    Unsupported(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Server {
                code,
                state,
                message,
            } => write!(f, "ERROR {code} ({state}): {message}"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::Unsupported(m) => write!(f, "{m}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

fn protocol(m: impl Into<String>) -> WireError {
    WireError::Protocol(m.into())
}

/// Parses an ERR packet's payload.
pub fn parse_err(p: &[u8]) -> WireError {
    let mut c = Cursor::new(p);
    let _ = c.u8();
    let code = c.u16().unwrap_or(0);
    let mut state = String::from("HY000");
    if c.remaining() >= 6 && p.get(3) == Some(&b'#') {
        let _ = c.u8();
        if let Some(s) = c.take(5) {
            state = String::from_utf8_lossy(s).into_owned();
        }
    }
    WireError::Server {
        code,
        state,
        message: String::from_utf8_lossy(c.rest()).into_owned(),
    }
}

/// The fields of an OK packet the router uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OkInfo {
    pub affected: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    pub info: String,
}

/// Parses an OK packet's payload (header 0x00, or 0xfe at the end of a result set).
pub fn parse_ok(p: &[u8]) -> Result<OkInfo, WireError> {
    let mut c = Cursor::new(p);
    let _ = c.u8();
    let (Some(affected), Some(last_insert_id)) = (c.lenenc_int(), c.lenenc_int()) else {
        return Err(protocol("truncated OK packet"));
    };
    let status = c.u16().unwrap_or(0);
    let warnings = c.u16().unwrap_or(0);
    let info = String::from_utf8_lossy(c.rest()).into_owned();
    Ok(OkInfo {
        affected,
        last_insert_id,
        status,
        warnings,
        info,
    })
}

/// Whether `p` is a classic EOF packet (a row may also start with 0xfe, but is longer).
pub fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// `(warnings, status)` of a classic EOF packet.
pub fn parse_eof(p: &[u8]) -> (u16, u16) {
    let mut c = Cursor::new(p);
    let _ = c.u8();
    (c.u16().unwrap_or(0), c.u16().unwrap_or(0))
}

/// One backend connection.
pub struct WireConn {
    stream: BufReader<BackendStream>,
    /// The last packet read, when it did not come whole from the read buffer.
    buf: Vec<u8>,
    /// Bytes of the read buffer the last packet served from it takes (consumed before the
    /// next read).
    consumed: usize,
    out: Vec<u8>,
    seq: u8,
    /// The server's connection id.
    pub id: u32,
    /// When it was last returned to its pool ([`coarse_secs`]).
    idle_since: u64,
    /// The session `SET`s replayed on this connection since login (or the last reset).
    pub state: Vec<String>,
    /// Statements prepared on this connection: text → (statement id, parameters).
    statements: crate::FastMap<String, (u32, u16)>,
    /// The default database set with `COM_INIT_DB` (`None`: none set, or not known).
    db: Option<String>,
    /// Whether the server writes MariaDB's extended type information in column definitions
    /// (`MARIADB_CLIENT_EXTENDED_METADATA`, asked for whenever the server offers it).
    pub extended: bool,
}

/// Most server-side prepared statements kept per connection (the server's
/// `max_prepared_stmt_count` is shared by all its connections).
const MAX_STATEMENTS: usize = 64;

impl WireConn {
    /// Connects and logs in: `mysql_native_password`, `caching_sha2_password` (its fast path,
    /// or full authentication: over TLS the password, in the clear the password encrypted with
    /// the server's RSA public key, which it is asked for), or MariaDB's `client_ed25519`.
    ///
    /// # Errors
    /// Connect and login failures; [`WireError::Unsupported`] when the server asks for an
    /// authentication method the router does not speak.
    pub async fn connect(
        host: &str,
        port: u16,
        user: &str,
        password: &[u8],
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Self, WireError> {
        let s = TcpStream::connect((host, port)).await?;
        s.set_nodelay(true)?;
        let mut c = WireConn {
            stream: BufReader::with_capacity(16 * 1024, BackendStream::Plain(s)),
            buf: Vec::with_capacity(256),
            consumed: 0,
            out: Vec::with_capacity(256),
            seq: 0,
            id: 0,
            idle_since: coarse_secs(),
            state: Vec::new(),
            statements: crate::FastMap::default(),
            db: None,
            extended: false,
        };
        c.seq = 0;
        let hs = c.read_packet().await?.to_vec();
        if hs.first() == Some(&0xff) {
            return Err(parse_err(&hs));
        }
        let mut r = Cursor::new(&hs);
        if r.u8() != Some(10) {
            return Err(protocol("not a protocol-10 handshake"));
        }
        r.cstr()
            .ok_or_else(|| protocol("handshake without a version"))?;
        c.id = r.u32().ok_or_else(|| protocol("short handshake"))?;
        let mut scramble = r
            .take(8)
            .ok_or_else(|| protocol("short handshake"))?
            .to_vec();
        let _ = r.u8();
        let caps_lo = r.u16().ok_or_else(|| protocol("short handshake"))?;
        let _charset = r.u8();
        let _status = r.u16();
        let caps_hi = r.u16().unwrap_or(0);
        let server_caps = u32::from(caps_lo) | u32::from(caps_hi) << 16;
        let auth_len = r.u8().unwrap_or(0);
        // A MariaDB server (bit 0 clear) offers its extended capabilities in the last four.
        let offered = match r.take(10) {
            Some(b) if server_caps & 1 == 0 => {
                u32::from_le_bytes([b[6], b[7], b[8], b[9]])
                    & crate::wire::constants::MARIADB_CLIENT_EXTENDED_METADATA
            }
            _ => 0,
        };
        c.extended = offered != 0;
        if server_caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = usize::from(auth_len).saturating_sub(8).max(13);
            let part = r.take(n).unwrap_or_else(|| r.rest());
            let part = part.strip_suffix(&[0]).unwrap_or(part);
            scramble.extend_from_slice(part);
        }
        let plugin = if server_caps & CLIENT_PLUGIN_AUTH != 0 {
            String::from_utf8_lossy(r.cstr().unwrap_or_default()).into_owned()
        } else {
            auth::NATIVE.to_string()
        };
        if server_caps & CLIENT_PROTOCOL_41 == 0 {
            return Err(protocol("server does not speak the 4.1 protocol"));
        }
        let mut caps = CLIENT_CAPS & server_caps;
        if let Some(tls) = tls {
            if server_caps & CLIENT_SSL == 0 {
                return Err(WireError::Io(io::Error::other(format!(
                    "the server at {host}:{port} does not offer TLS, which its record asks for"
                ))));
            }
            caps |= CLIENT_SSL;
            // The SSL request: the handshake response's first 32 bytes, then TLS.
            c.write_packet(&response_head(caps, offered)).await?;
            let BackendStream::Plain(tcp) =
                std::mem::replace(c.stream.get_mut(), BackendStream::Closed)
            else {
                return Err(protocol("TLS asked for twice"));
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| WireError::Io(io::Error::other(format!("server name {host}: {e}"))))?;
            let tls_stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    WireError::Io(io::Error::other(format!(
                        "TLS with the server at {host}:{port}: {e}"
                    )))
                })?;
            *c.stream.get_mut() = BackendStream::Tls(Box::new(tls_stream));
        }
        let (plugin, token) = match plugin.as_str() {
            auth::CACHING_SHA2 => (auth::CACHING_SHA2, auth::sha2_token(password, &scramble)),
            // The greeting's data is the nonce when the ed25519 plugin made it (32 bytes):
            // signed at once, as MariaDB's client does. MariaDB itself always greets with
            // mysql_native_password and sends the nonce in a method switch; a greeting naming
            // client_ed25519 with a shorter scramble gets an empty answer, and the switch.
            auth::ED25519 if scramble.len() == 32 => (
                auth::ED25519,
                auth::ed25519_response(password, &scramble).to_vec(),
            ),
            auth::ED25519 => (auth::ED25519, Vec::new()),
            // Anything else starts with a native token; the server may switch plugins.
            _ => (auth::NATIVE, auth::native_token(password, &scramble)),
        };
        let mut p = response_head(caps, offered);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            crate::wire::codec::put_lenenc_str(&mut p, &token);
        } else {
            p.push(token.len() as u8);
            p.extend_from_slice(&token);
        }
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        c.write_packet(&p).await?;
        c.finish_login(password, plugin, scramble, &format!("{host}:{port}"))
            .await?;
        Ok(c)
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream.get_ref(), BackendStream::Tls(_))
    }

    /// Reads the answers to a login until OK, answering method switches and
    /// `caching_sha2_password`'s requests. `plugin` is the method the handshake response
    /// answered, `scramble` the greeting's; `addr` (`host:port`) is for messages.
    async fn finish_login(
        &mut self,
        password: &[u8],
        mut plugin: &'static str,
        mut scramble: Vec<u8>,
        addr: &str,
    ) -> Result<(), WireError> {
        loop {
            let p = self.read_packet().await?.to_vec();
            match p.first() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(parse_err(&p)),
                Some(0xfe) => {
                    // Authentication method switch: plugin name, then its data.
                    let mut r = Cursor::new(&p[1..]);
                    let name = String::from_utf8_lossy(r.cstr().unwrap_or_default()).into_owned();
                    let data = r.rest();
                    let token = match name.as_str() {
                        auth::NATIVE | auth::CACHING_SHA2 => {
                            // A scramble, sent with a NUL after it.
                            let data = data.strip_suffix(&[0]).unwrap_or(data);
                            scramble = data.to_vec();
                            if name == auth::NATIVE {
                                plugin = auth::NATIVE;
                                auth::native_token(password, data)
                            } else {
                                plugin = auth::CACHING_SHA2;
                                auth::sha2_token(password, data)
                            }
                        }
                        auth::ED25519 => {
                            // A 32-byte nonce, as it is (a NUL after it tolerated).
                            let nonce = match data.len() {
                                33 if data.last() == Some(&0) => &data[..32],
                                _ => data,
                            };
                            if nonce.len() != 32 {
                                return Err(protocol(format!(
                                    "the server at {addr} sent a {}-byte nonce for client_ed25519 (32 expected)",
                                    nonce.len()
                                )));
                            }
                            plugin = auth::ED25519;
                            scramble = nonce.to_vec();
                            auth::ed25519_response(password, nonce).to_vec()
                        }
                        other => {
                            return Err(WireError::Unsupported(format!(
                                "the server at {addr} asks for authentication method {other:?}, which the router's own connections do not speak (they speak {}, {} and {})",
                                auth::NATIVE,
                                auth::CACHING_SHA2,
                                auth::ED25519
                            )))
                        }
                    };
                    self.write_packet(&token).await?;
                }
                // caching_sha2_password: 3 = fast path done (OK follows), 4 = full
                // authentication wanted.
                Some(0x01) if plugin == auth::CACHING_SHA2 && p.get(1) == Some(&3) => {}
                Some(0x01) if plugin == auth::CACHING_SHA2 && p.get(1) == Some(&4) => {
                    if self.is_tls() {
                        // Over TLS: the password itself.
                        let mut pw = password.to_vec();
                        pw.push(0);
                        self.write_packet(&pw).await?;
                    } else {
                        // In the clear: ask for the server's RSA public key (a packet of one
                        // byte, 2), which comes as "more data" (1, then the PEM text), and
                        // send the password encrypted with it.
                        self.write_packet(&[2]).await?;
                        let key = self.read_packet().await?.to_vec();
                        let pem = match key.split_first() {
                            Some((0x01, pem)) => pem,
                            Some((0xff, _)) => return Err(parse_err(&key)),
                            _ => {
                                return Err(protocol(format!(
                                    "the server at {addr} did not send its RSA public key for caching_sha2_password"
                                )))
                            }
                        };
                        let block =
                            auth::sha2_rsa_password(password, &scramble, pem).map_err(|e| {
                                protocol(format!(
                                    "caching_sha2_password with the server at {addr}: {e}"
                                ))
                            })?;
                        self.write_packet(&block).await?;
                    }
                }
                _ => {
                    return Err(protocol(format!(
                        "unexpected packet during login to {addr} ({plugin})"
                    )))
                }
            }
        }
    }

    /// Sends one command (sequence restarts at 0).
    ///
    /// # Errors
    /// Socket errors.
    pub async fn command(&mut self, cmd: u8, arg: &[u8]) -> io::Result<()> {
        self.command_with(cmd, |out| out.extend_from_slice(arg))
            .await
    }

    /// [`WireConn::command`] with the argument appended by `arg` straight into the output
    /// buffer (no buffer of its own).
    ///
    /// # Errors
    /// Socket errors.
    pub async fn command_with(
        &mut self,
        cmd: u8,
        arg: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.extend_from_slice(&[0, 0, 0, 0, cmd]);
        arg(&mut out);
        let total = out.len() - 4;
        self.seq = 0;
        if total >= MAX_PAYLOAD {
            let p = out[4..].to_vec();
            self.out = out;
            return self.write_packet(&p).await;
        }
        out[..3].copy_from_slice(&(total as u32).to_le_bytes()[..3]);
        self.seq = 1;
        let r = self.stream.get_mut().write_all(&out).await;
        self.out = out;
        r
    }

    /// Sends one packet of data in the middle of an exchange (a `LOAD DATA LOCAL` file's
    /// packets), its sequence id following the last one read.
    ///
    /// # Errors
    /// Socket errors.
    pub async fn write_data(&mut self, payload: &[u8]) -> io::Result<()> {
        self.settle();
        self.write_packet(payload).await
    }

    async fn write_packet(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
        let frame = |out: &mut Vec<u8>, c: &[u8], seq: &mut u8| {
            let n = c.len();
            out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, *seq]);
            out.extend_from_slice(c);
            *seq = seq.wrapping_add(1);
        };
        if payload.is_empty() {
            frame(&mut out, &[], &mut self.seq);
        }
        while let Some(c) = chunks.next() {
            frame(&mut out, c, &mut self.seq);
            if chunks.peek().is_none() && c.len() == MAX_PAYLOAD {
                frame(&mut out, &[], &mut self.seq);
            }
        }
        let r = self.stream.get_mut().write_all(&out).await;
        self.out = out;
        r
    }

    /// Reads one logical packet (joining 16 MiB continuations); returns its payload.
    ///
    /// # Errors
    /// Socket errors, a sequence id out of order, a packet over 1 GiB.
    pub async fn read_packet(&mut self) -> Result<&[u8], WireError> {
        self.settle();
        // A whole packet already in the read buffer (an answer's packets usually arrive
        // together) is served from there, without copying it.
        if self.stream.buffer().is_empty() {
            self.stream.fill_buf().await?;
        }
        if let Some(len) =
            crate::wire::codec::whole_packet(self.stream.buffer(), self.seq, MAX_PAYLOAD)
        {
            self.seq = self.seq.wrapping_add(1);
            self.consumed = 4 + len;
            return Ok(&self.stream.buffer()[4..4 + len]);
        }
        self.buf.clear();
        loop {
            let mut hdr = [0u8; 4];
            self.stream.read_exact(&mut hdr).await?;
            let len = usize::from(hdr[0]) | usize::from(hdr[1]) << 8 | usize::from(hdr[2]) << 16;
            if hdr[3] != self.seq {
                return Err(protocol(format!(
                    "packet out of order: sequence {} where {} was due",
                    hdr[3], self.seq
                )));
            }
            self.seq = self.seq.wrapping_add(1);
            if self.buf.len() + len > MAX_BACKEND_PACKET {
                return Err(protocol("answer packet larger than 1 GiB"));
            }
            let start = self.buf.len();
            self.buf.resize(start + len, 0);
            self.stream.read_exact(&mut self.buf[start..]).await?;
            if len < MAX_PAYLOAD {
                return Ok(&self.buf);
            }
        }
    }

    /// Runs a statement whose answer is not wanted (a session `SET`); result sets are read
    /// and dropped.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn query_drop(&mut self, sql: &str) -> Result<(), WireError> {
        self.command(COM_QUERY, sql.as_bytes()).await?;
        self.drain_results().await
    }

    /// Runs a statement that answers with one small text result set and returns its rows
    /// (`None` for NULL); an OK answer is no rows.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn text_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>, WireError> {
        self.command(COM_QUERY, sql.as_bytes()).await?;
        let p = self.read_packet().await?;
        let n = match p.first() {
            Some(0x00) => return Ok(Vec::new()),
            Some(0xff) => return Err(parse_err(p)),
            _ => Cursor::new(p)
                .lenenc_int()
                .ok_or_else(|| protocol("bad column count"))?,
        };
        for _ in 0..n {
            self.read_packet().await?;
        }
        if !is_eof(self.read_packet().await?) {
            return Err(protocol("no EOF after column definitions"));
        }
        let mut rows = Vec::new();
        loop {
            let p = self.read_packet().await?;
            if is_eof(p) {
                return Ok(rows);
            }
            if p.first() == Some(&0xff) {
                return Err(parse_err(p));
            }
            let mut c = Cursor::new(p);
            let mut row = Vec::new();
            for _ in 0..n {
                if c.remaining() > 0 && p.get(p.len() - c.remaining()) == Some(&0xfb) {
                    c.u8();
                    row.push(None);
                } else {
                    row.push(Some(
                        c.lenenc_str()
                            .ok_or_else(|| protocol("malformed row"))?
                            .to_vec(),
                    ));
                }
            }
            rows.push(row);
        }
    }

    /// Reads whole answers (OK, ERR or result sets) until one says no more results follow.
    ///
    /// # Errors
    /// The first ERR, or the connection's failure.
    pub async fn drain_results(&mut self) -> Result<(), WireError> {
        loop {
            let p = self.read_packet().await?;
            let status = match p.first() {
                Some(0x00) => parse_ok(p)?.status,
                Some(0xff) => return Err(parse_err(p)),
                Some(0xfb) => return Err(protocol("LOCAL INFILE request")),
                Some(_) => {
                    // Column count, definitions, EOF, rows, EOF.
                    loop {
                        let p = self.read_packet().await?;
                        if is_eof(p) {
                            break;
                        }
                        if p.first() == Some(&0xff) {
                            return Err(parse_err(p));
                        }
                    }
                    self.end_of_rows().await?.1
                }
                None => return Err(protocol("empty answer packet")),
            };
            if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                return Ok(());
            }
        }
    }

    /// Reads and drops what is left of a result set's rows, at most `max` packets: the end's
    /// status flags, or `None` when more were left (the connection is then not reusable).
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn skip_rows(&mut self, max: usize) -> Result<Option<u16>, WireError> {
        for _ in 0..max {
            let p = self.read_packet().await?;
            if is_eof(p) {
                return Ok(Some(parse_eof(p).1));
            }
            if p.first() == Some(&0xff) {
                return Err(parse_err(p));
            }
        }
        Ok(None)
    }

    /// Reads rows to their end and returns the final EOF's `(warnings, status)`.
    async fn end_of_rows(&mut self) -> Result<(u16, u16), WireError> {
        loop {
            let p = self.read_packet().await?;
            if is_eof(p) {
                return Ok(parse_eof(p));
            }
            if p.first() == Some(&0xff) {
                return Err(parse_err(p));
            }
        }
    }

    /// `COM_RESET_CONNECTION`: back to the login's session state.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn reset(&mut self) -> Result<(), WireError> {
        self.command(COM_RESET_CONNECTION, &[]).await?;
        self.drain_results().await?;
        self.state.clear();
        // The reset also closed the server-side prepared statements.
        self.statements.clear();
        self.db = None;
        Ok(())
    }

    /// Makes `db` the connection's default database (`COM_INIT_DB`), unless it is already.
    ///
    /// # Errors
    /// The server's error (an unknown database), or the connection's.
    pub async fn use_db(&mut self, db: &str) -> Result<(), WireError> {
        if self.db.as_deref() == Some(db) {
            return Ok(());
        }
        self.db = None;
        self.command(COM_INIT_DB, db.as_bytes()).await?;
        self.drain_results().await?;
        self.db = Some(db.to_string());
        Ok(())
    }

    /// The id and parameter count of `sql` prepared on this connection, preparing it first
    /// if needed (closing the others when [`MAX_STATEMENTS`] are kept).
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn prepared(&mut self, sql: &str) -> Result<(u32, u16), WireError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(*s);
        }
        if self.statements.len() >= MAX_STATEMENTS {
            let ids: Vec<u32> = self.statements.drain().map(|(_, (id, _))| id).collect();
            for id in ids {
                // COM_STMT_CLOSE has no answer.
                self.command(COM_STMT_CLOSE, &id.to_le_bytes()).await?;
            }
        }
        let (id, params, _) = self.prepare(sql.as_bytes(), false).await?;
        self.statements.insert(sql.to_string(), (id, params));
        Ok((id, params))
    }

    /// `COM_STMT_PREPARE` of `sql`: its id, parameter count and (`keep`) column definitions.
    async fn prepare(
        &mut self,
        sql: &[u8],
        keep: bool,
    ) -> Result<(u32, u16, Vec<Vec<u8>>), WireError> {
        self.command(COM_STMT_PREPARE, sql).await?;
        let p = self.read_packet().await?;
        match p.first() {
            Some(0x00) => {}
            Some(0xff) => return Err(parse_err(p)),
            _ => return Err(protocol("unexpected answer to COM_STMT_PREPARE")),
        }
        let mut c = Cursor::new(&p[1..]);
        let (Some(id), Some(cols), Some(params)) = (c.u32(), c.u16(), c.u16()) else {
            return Err(protocol("short COM_STMT_PREPARE answer"));
        };
        let mut defs = Vec::new();
        // Parameter and column definitions, each list ended by an EOF.
        for (n, columns) in [(params, false), (cols, true)] {
            if n == 0 {
                continue;
            }
            for _ in 0..n {
                let p = self.read_packet().await?;
                if keep && columns {
                    defs.push(p.to_vec());
                }
            }
            if !is_eof(self.read_packet().await?) {
                return Err(protocol("no EOF after prepared statement definitions"));
            }
        }
        Ok((id, params, defs))
    }

    /// `COM_STMT_PREPARE` of `sql`, not kept with the others: its id, parameter count and
    /// column definitions (close it with `COM_STMT_CLOSE`).
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn prepare_described(
        &mut self,
        sql: &[u8],
    ) -> Result<(u32, u16, Vec<Vec<u8>>), WireError> {
        self.prepare(sql, true).await
    }

    /// The column definitions of `sql` as the server describes them when it is prepared
    /// (nothing runs); the statement is closed again.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn describe(&mut self, sql: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
        let (id, _, defs) = self.prepare(sql, true).await?;
        // COM_STMT_CLOSE has no answer.
        self.command(COM_STMT_CLOSE, &id.to_le_bytes()).await?;
        Ok(defs)
    }

    /// Brings the session state to `sets`: nothing when it is there already, else a reset
    /// (when other `SET`s were replayed) and the replay. After an error the state is unknown
    /// and the connection must not be reused.
    ///
    /// # Errors
    /// The first failing `SET`'s error, or the connection's.
    pub async fn replay(&mut self, sets: &[String]) -> Result<(), WireError> {
        if self.state == sets {
            return Ok(());
        }
        if !self.state.is_empty() {
            self.reset().await?;
        }
        for s in sets {
            self.query_drop(s).await?;
        }
        self.state = sets.to_vec();
        Ok(())
    }

    /// Whether the server closed the socket (or sent something unasked) while it was idle.
    /// No system call unless the socket was reported readable.
    /// Consumes the packet [`WireConn::read_packet`] last served from the read buffer.
    fn settle(&mut self) {
        if self.consumed > 0 {
            self.stream.consume(self.consumed);
            self.consumed = 0;
        }
    }

    fn closed_while_idle(&mut self) -> bool {
        self.settle();
        if !self.stream.buffer().is_empty() {
            return true;
        }
        match self.stream.get_ref() {
            BackendStream::Plain(s) => {
                let mut b = [0u8; 1];
                !matches!(s.try_read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // Peeked under TLS (a byte there is a record: an alert, or the end).
            BackendStream::Tls(s) => {
                let mut b = [0u8; 1];
                let mut rb = ReadBuf::new(&mut b);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                !matches!(s.get_ref().0.poll_peek(&mut cx, &mut rb), Poll::Pending)
            }
            BackendStream::Closed => true,
        }
    }
}

/// The first 32 bytes of a handshake response (all of an SSL request): capabilities, largest
/// packet, character set, MariaDB's extended capabilities.
fn response_head(caps: u32, offered: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
    p.push(UTF8MB4_GENERAL_CI);
    p.extend_from_slice(&[0u8; 19]);
    p.extend_from_slice(&offered.to_le_bytes());
    p
}

/// A backend connection's socket: plaintext, or TLS.
pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between the two, while TLS starts.
    Closed,
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            BackendStream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            BackendStream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            BackendStream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            BackendStream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// The TLS client setup for a server whose certificate `ca_pem` (PEM) signed.
///
/// # Errors
/// A CA that does not parse.
pub fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    tessera_topo::tls::client_config(ca_pem, None, "the shard's tls_ca").map_err(|e| e.to_string())
}

/// Whole seconds since the first call, from a clock thread that ticks once a second: an idle
/// connection's age needs no finer clock, and reading an atomic keeps two clock reads off
/// every statement.
fn coarse_secs() -> u64 {
    use std::sync::atomic::AtomicU64;
    use std::sync::Once;
    static NOW: AtomicU64 = AtomicU64::new(0);
    static TICKER: Once = Once::new();
    TICKER.call_once(|| {
        let start = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("tessera-clock".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                NOW.store(start.elapsed().as_secs(), Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            tracing::warn!("no clock thread ({e}): idle backend connections are kept until closed");
        }
    });
    NOW.load(Ordering::Relaxed)
}

/// One physical shard's pool of [`WireConn`]s.
pub struct WirePool {
    host: String,
    port: u16,
    user: String,
    password: Vec<u8>,
    idle: Mutex<Vec<WireConn>>,
    permits: Arc<Semaphore>,
    /// Seconds an idle connection is kept for reuse.
    idle_ttl: u64,
    /// Set when the server asks for an authentication method the router does not speak:
    /// statements then take the `mysql_async` path.
    unsupported: AtomicBool,
    /// TLS to the server, when its record has a CA.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A connection taken from a [`WirePool`]; give it back with [`WirePool::put`].
pub struct WireLease {
    pub conn: WireConn,
    _permit: OwnedSemaphorePermit,
    /// Its last exchange was read to the end: it may be reused.
    pub clean: bool,
}

impl WirePool {
    pub fn new(
        host: &str,
        port: u16,
        user: &str,
        password: Option<String>,
        max: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        WirePool {
            host: host.to_string(),
            port,
            user: user.to_string(),
            password: password.unwrap_or_default().into_bytes(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
            idle_ttl: 60,
            unsupported: AtomicBool::new(false),
            tls,
        }
    }

    /// Makes the pool refuse to serve (statements take the `mysql_async` path).
    pub fn disable(&self) {
        self.unsupported.store(true, Ordering::Relaxed);
    }

    /// Whether this pool can serve (its server accepted the router's login methods).
    pub fn usable(&self) -> bool {
        !self.unsupported.load(Ordering::Relaxed)
    }

    /// Idle connections now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Takes an idle connection (the most recently used one whose session `SET`s are `sets`,
    /// else the most recently used) or opens one, waiting at most `timeout` for a free slot
    /// and for the connect. The caller brings its state to `sets` ([`WireConn::replay`]).
    ///
    /// # Errors
    /// Timeouts, connect and login failures.
    pub async fn get(&self, timeout: Duration, sets: &[String]) -> Result<WireLease, WireError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                match tokio::time::timeout(timeout, self.permits.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(WireError::Io(io::Error::other("pool closed"))),
                    Err(_) => {
                        return Err(WireError::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "timed out waiting for a free backend connection",
                        )))
                    }
                }
            }
        };
        loop {
            let c = self.idle.lock().ok().and_then(|mut v| {
                let i = v.iter().rposition(|c| c.state == sets);
                match i {
                    Some(i) => Some(v.swap_remove(i)),
                    None => v.pop(),
                }
            });
            let Some(mut c) = c else { break };
            let idle = coarse_secs().saturating_sub(c.idle_since);
            if idle < self.idle_ttl && !c.closed_while_idle() {
                return Ok(WireLease {
                    conn: c,
                    _permit: permit,
                    clean: false,
                });
            }
        }
        let connect = WireConn::connect(
            &self.host,
            self.port,
            &self.user,
            &self.password,
            self.tls.as_ref(),
        );
        // Boxed: the connect is rare, and would otherwise size every statement's future.
        let conn = match Box::pin(tokio::time::timeout(timeout, connect)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                if matches!(e, WireError::Unsupported(_)) {
                    self.unsupported.store(true, Ordering::Relaxed);
                }
                return Err(e);
            }
            Err(_) => {
                return Err(WireError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out",
                )))
            }
        };
        Ok(WireLease {
            conn,
            _permit: permit,
            clean: false,
        })
    }

    /// Returns a connection, with its session state; closed instead when its last exchange
    /// was not read to the end.
    pub fn put(&self, mut lease: WireLease) {
        if !lease.clean {
            return;
        }
        lease.conn.idle_since = coarse_secs();
        // A huge row or statement does not keep its buffer while idle.
        if lease.conn.buf.capacity() > 1 << 20 {
            lease.conn.buf = Vec::new();
        }
        if lease.conn.out.capacity() > 1 << 20 {
            lease.conn.out = Vec::new();
        }
        if let Ok(mut v) = self.idle.lock() {
            v.push(lease.conn);
        }
    }

    /// Closes the idle connections.
    pub fn clear(&self) {
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::handshake;
    use tokio::net::TcpListener;

    /// The server side of a scripted login: packets framed by hand, sequence ids checked.
    struct FakeServer {
        s: TcpStream,
        seq: u8,
    }

    impl FakeServer {
        /// Listens on a loopback port; the client connects to the port returned, and `script`
        /// runs with the accepted connection (its result is the join handle's).
        async fn start<F, Fut>(script: F) -> (u16, tokio::task::JoinHandle<Fut::Output>)
        where
            F: FnOnce(FakeServer) -> Fut + Send + 'static,
            Fut: std::future::Future + Send + 'static,
            Fut::Output: Send + 'static,
        {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = l.local_addr().expect("addr").port();
            let task = tokio::spawn(async move {
                let (s, _) = l.accept().await.expect("accept");
                script(FakeServer { s, seq: 0 }).await
            });
            (port, task)
        }

        async fn send(&mut self, payload: &[u8]) {
            let n = payload.len();
            let mut p = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq];
            p.extend_from_slice(payload);
            self.seq = self.seq.wrapping_add(1);
            self.s.write_all(&p).await.expect("send");
        }

        async fn recv(&mut self) -> Vec<u8> {
            let mut h = [0u8; 4];
            self.s.read_exact(&mut h).await.expect("header");
            assert_eq!(h[3], self.seq, "the client's sequence id");
            self.seq = self.seq.wrapping_add(1);
            let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            let mut p = vec![0u8; n];
            self.s.read_exact(&mut p).await.expect("payload");
            p
        }

        /// Sends the greeting and returns the client's handshake response.
        async fn greet(&mut self, greeting: &[u8]) -> handshake::HandshakeResponse {
            self.send(greeting).await;
            handshake::parse_response(&self.recv().await).expect("handshake response")
        }

        async fn ok(&mut self) {
            self.send(&crate::wire::resultset::ok(0, 0, 2, 0, "", false))
                .await;
        }
    }

    const SCRAMBLE: &[u8; 20] = b"0123456789abcdefghij";

    fn greeting(plugin: &str) -> Vec<u8> {
        handshake::greeting("8.0.40-fake", 7, SCRAMBLE, plugin, false)
    }

    /// A greeting whose auth data is 32 bytes (as one made by the ed25519 plugin would be).
    fn greeting32(data: &[u8; 32], plugin: &str) -> Vec<u8> {
        let caps = SERVER_CAPABILITIES;
        let mut p = vec![10];
        p.extend_from_slice(b"11.4.0-fake\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&data[..8]);
        p.push(0);
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(UTF8MB4_GENERAL_CI);
        p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(33);
        p.extend_from_slice(&[0u8; 10]);
        p.extend_from_slice(&data[8..]);
        p.push(0);
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p
    }

    fn switch(plugin: &str, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0xfe];
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p.extend_from_slice(data);
        p
    }

    async fn login(port: u16, password: &[u8]) -> Result<WireConn, WireError> {
        let c = WireConn::connect("127.0.0.1", port, "u", password, None);
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("the login ends")
    }

    /// A MariaDB-style ed25519 login: greeting for mysql_native_password, the client's native
    /// token, a switch to client_ed25519 with a 32-byte nonce (no NUL after it; this one ends
    /// in a zero byte, which must not be taken for one), the signature back.
    #[tokio::test]
    async fn ed25519_method_switch_is_answered_with_the_signature() {
        let mut nonce = [0x5au8; 32];
        nonce[0] = 0xfe;
        nonce[31] = 0;
        let (port, server) = FakeServer::start(move |mut s| async move {
            let r = s.greet(&greeting(auth::NATIVE)).await;
            assert_eq!(r.auth_plugin.as_deref(), Some(auth::NATIVE));
            assert_eq!(r.auth_response, auth::native_token(b"pw", SCRAMBLE));
            s.send(&switch(auth::ED25519, &nonce)).await;
            let sig = s.recv().await;
            s.ok().await;
            sig
        })
        .await;
        login(port, b"pw").await.expect("login");
        let sig = server.await.expect("server");
        assert_eq!(sig, auth::ed25519_response(b"pw", &nonce).to_vec());
    }

    /// A greeting that names client_ed25519 itself: with a 32-byte nonce it is signed in the
    /// handshake response; with a 20-byte scramble the response is empty and the nonce comes
    /// in a switch.
    #[tokio::test]
    async fn ed25519_named_in_the_greeting() {
        let nonce = [0x21u8; 32];
        let (port, server) = FakeServer::start(move |mut s| async move {
            let r = s.greet(&greeting32(&nonce, auth::ED25519)).await;
            s.ok().await;
            r
        })
        .await;
        login(port, b"pw").await.expect("login");
        let r = server.await.expect("server");
        assert_eq!(r.auth_plugin.as_deref(), Some(auth::ED25519));
        assert_eq!(
            r.auth_response,
            auth::ed25519_response(b"pw", &nonce).to_vec()
        );

        let (port, server) = FakeServer::start(move |mut s| async move {
            let r = s.greet(&greeting(auth::ED25519)).await;
            assert_eq!(r.auth_plugin.as_deref(), Some(auth::ED25519));
            assert!(r.auth_response.is_empty(), "{:?}", r.auth_response);
            s.send(&switch(auth::ED25519, &nonce)).await;
            let sig = s.recv().await;
            s.ok().await;
            sig
        })
        .await;
        login(port, b"pw").await.expect("login");
        let sig = server.await.expect("server");
        assert_eq!(sig, auth::ed25519_response(b"pw", &nonce).to_vec());
    }

    /// What this checks: the client side of caching_sha2_password's full authentication in
    /// the clear, as MySQL documents it, against a scripted server — the fast-path token, then
    /// on "full authentication" (1, 4) a request for the public key (one byte, 2), and after
    /// the key (1, PEM) one packet that the private key decrypts (OpenSSL here) to the password
    /// and a NUL XORed with the greeting's scramble; packet sequence ids as the server counts
    /// them. Not checked: that a real MySQL 8 server accepts it (none to test against here).
    #[tokio::test]
    async fn caching_sha2_full_authentication_in_the_clear_uses_the_servers_rsa_key() {
        let keys = Arc::new(auth::test_rsa::Keys::new(2048));
        // The password and a NUL, XORed with the greeting's scramble, as OpenSSL decrypts it.
        assert_eq!(
            rsa_exchange(keys.clone(), None, b"s3cret").await,
            b"s3cret\0".to_vec()
        );
        // After a switch to caching_sha2_password (and a PKCS#1 key), its scramble is the one
        // mixed in.
        assert_eq!(
            rsa_exchange(keys.clone(), Some(*b"ABCDEFGHIJKLMNOPQRST"), b"pw").await,
            b"pw\0".to_vec()
        );

        // A key that is no key: an error naming the server, no panic.
        let (port, server) = FakeServer::start(|mut s| async move {
            s.greet(&greeting(auth::CACHING_SHA2)).await;
            s.send(&[0x01, 0x04]).await;
            s.recv().await;
            s.send(b"\x01-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .await;
        })
        .await;
        let e = login(port, b"pw").await.err().expect("refused");
        server.await.expect("server");
        let m = e.to_string();
        assert!(matches!(e, WireError::Protocol(_)), "{m}");
        assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
    }

    /// A login whose server wants `caching_sha2_password`'s full authentication in the clear
    /// (greeting with it, or switching to it with scramble `switch_to`, then sending a PKCS#1
    /// key), and what the password block it got decrypts to, XORed back with the scramble.
    async fn rsa_exchange(
        keys: Arc<auth::test_rsa::Keys>,
        switch_to: Option<[u8; 20]>,
        password: &'static [u8],
    ) -> Vec<u8> {
        let k = keys.clone();
        let (port, server) = FakeServer::start(move |mut s| async move {
            let pem = match switch_to {
                None => {
                    let r = s.greet(&greeting(auth::CACHING_SHA2)).await;
                    assert_eq!(r.auth_plugin.as_deref(), Some(auth::CACHING_SHA2));
                    assert_eq!(r.auth_response, auth::sha2_token(password, SCRAMBLE));
                    k.spki()
                }
                Some(other) => {
                    s.greet(&greeting(auth::NATIVE)).await;
                    let mut sw = switch(auth::CACHING_SHA2, &other);
                    sw.push(0);
                    s.send(&sw).await;
                    assert_eq!(s.recv().await, auth::sha2_token(password, &other));
                    k.pkcs1()
                }
            };
            s.send(&[0x01, 0x04]).await;
            assert_eq!(s.recv().await, vec![0x02], "the public key request");
            let mut key = vec![0x01];
            key.extend_from_slice(&pem);
            s.send(&key).await;
            let block = s.recv().await;
            s.ok().await;
            block
        })
        .await;
        login(port, password).await.expect("login");
        let block = server.await.expect("server");
        let scramble = switch_to.map_or(SCRAMBLE.to_vec(), |o| o.to_vec());
        keys.decrypt(&block)
            .iter()
            .zip(scramble.iter().cycle())
            .map(|(b, s)| b ^ s)
            .collect()
    }

    /// A method the router does not speak: an error naming it and the server.
    #[tokio::test]
    async fn other_methods_are_named_in_the_error() {
        let (port, server) = FakeServer::start(|mut s| async move {
            s.greet(&greeting(auth::NATIVE)).await;
            s.send(&switch("dialog", b"Password: \0")).await;
        })
        .await;
        let e = login(port, b"pw").await.err().expect("refused");
        server.await.expect("server");
        match e {
            WireError::Unsupported(m) => {
                assert!(m.contains("\"dialog\""), "{m}");
                assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
                assert!(!m.contains("single-shard"), "{m}");
            }
            other => panic!("{other}"),
        }
        // A short ed25519 nonce is a protocol error, not a signature of the wrong thing.
        let (port, server) = FakeServer::start(|mut s| async move {
            s.greet(&greeting(auth::NATIVE)).await;
            s.send(&switch(auth::ED25519, &[1u8; 20])).await;
        })
        .await;
        let e = login(port, b"pw").await.err().expect("refused");
        server.await.expect("server");
        assert!(matches!(e, WireError::Protocol(_)), "{e}");
    }

    #[test]
    fn ok_err_and_eof_packets_parse() {
        let ok = crate::wire::resultset::ok(300, 70000, 0x0022, 3, "", false);
        assert_eq!(
            parse_ok(&ok).ok(),
            Some(OkInfo {
                affected: 300,
                last_insert_id: 70000,
                status: 0x0022,
                warnings: 3,
                info: String::new(),
            })
        );
        assert!(parse_ok(&[0x00, 0xfc]).is_err(), "truncated");
        let err = crate::wire::resultset::err(1146, "42S02", "Table 'x.y' doesn't exist");
        match parse_err(&err) {
            WireError::Server {
                code,
                state,
                message,
            } => {
                assert_eq!((code, state.as_str()), (1146, "42S02"));
                assert_eq!(message, "Table 'x.y' doesn't exist");
            }
            other => panic!("{other:?}"),
        }
        // Pre-4.1 ERR without a SQLSTATE marker.
        match parse_err(&[0xff, 0x10, 0x04, b'b', b'a', b'd']) {
            WireError::Server { code, message, .. } => {
                assert_eq!((code, message.as_str()), (1040, "bad"));
            }
            other => panic!("{other:?}"),
        }
        let eof = crate::wire::resultset::eof(0x0008, 2);
        assert!(is_eof(&eof));
        assert_eq!(parse_eof(&eof), (2, 0x0008));
        // A row whose first value is 2^24 bytes long also starts with 0xfe.
        let mut row = vec![0xfe, 0, 0, 0, 1, 0, 0, 0, 0];
        row.extend_from_slice(b"x");
        assert!(!is_eof(&row));
        assert!(!is_eof(&[]));
    }
}
