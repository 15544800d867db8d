//! Result-set framing: column definitions from backend metadata, rows re-framed from the
//! backend's text protocol, and the end-of-result marker each client expects.

use crate::backend::error::from_backend;
use crate::backend::Conn;
use crate::error::io_err;
use crate::error::SqlError;
use crate::session::Session;
use crate::wire::resultset::{self, ColumnDef};
use crate::wire::PacketIo;
use mysql_async::{Column, Row, Value};

/// The status flags that describe how the backend ran a statement (no index, no good index).
pub(super) const QUERY_STATUS: u16 = 0x10 | 0x20;

/// What a scatter task sends to the connection.
pub enum Msg {
    Columns(Vec<ColumnDef>),
    Row(Vec<u8>),
    Error(SqlError),
}

/// Reusable buffer for encoding rows.
#[derive(Default)]
pub struct ResultWriter {
    buf: Vec<u8>,
}

/// Builds the client's column definition from a backend column, with logical-shard schema
/// names mapped back to the keyspace.
pub fn column_def(c: &Column, unq: crate::topology::Unqualify<'_>) -> ColumnDef {
    let schema = String::from_utf8_lossy(c.schema_ref());
    ColumnDef {
        schema: unq.apply(&schema).into_owned().into_bytes(),
        table: c.table_ref().to_vec(),
        org_table: c.org_table_ref().to_vec(),
        name: c.name_ref().to_vec(),
        org_name: c.org_name_ref().to_vec(),
        charset: c.character_set(),
        length: c.column_length(),
        column_type: c.column_type() as u8,
        flags: c.flags().bits(),
        decimals: c.decimals(),
        // `mysql_async` neither asks for nor keeps MariaDB's extended type information.
        extended: Vec::new(),
    }
}

/// Encodes a text-protocol row.
pub fn encode_row(buf: &mut Vec<u8>, row: Row) {
    buf.clear();
    for v in row.unwrap() {
        match v {
            Value::NULL => buf.push(0xfb),
            Value::Bytes(b) => resultset::put_text_value(buf, Some(&b)),
            other => {
                // Text results hold bytes; anything else is formatted as MySQL would print it.
                let s = other.as_sql(true);
                let s = s.trim_matches('\'');
                resultset::put_text_value(buf, Some(s.as_bytes()));
            }
        }
    }
}

/// Writes the column count, definitions and (without `CLIENT_DEPRECATE_EOF`) an EOF.
pub async fn write_columns(
    io: &mut PacketIo,
    session: &Session,
    defs: &[ColumnDef],
) -> Result<(), SqlError> {
    if io.binary_mode {
        io.binary_columns = Some(
            defs.iter()
                .map(|d| (d.column_type, d.flags & 0x20 != 0))
                .collect(),
        );
    }
    if let Some(c) = io.capture.as_mut() {
        c.columns = defs
            .iter()
            .map(|d| (d.name.clone(), d.column_type))
            .collect();
        c.rows.clear();
        c.bytes = 0;
    }
    let mut p = Vec::with_capacity(128);
    crate::wire::codec::put_lenenc_int(&mut p, defs.len() as u64);
    io.write_packet(&p).await.map_err(io_err)?;
    for d in defs {
        p.clear();
        d.encode(&mut p, io.extended_metadata);
        io.write_packet(&p).await.map_err(io_err)?;
    }
    end_columns(io, session).await
}

/// Ends the column definitions: an EOF packet, unless the client dropped them.
pub async fn end_columns(io: &mut PacketIo, session: &Session) -> Result<(), SqlError> {
    if !session.deprecate_eof() {
        io.write_packet(&resultset::eof(session.status_flags(), 0))
            .await
            .map_err(io_err)?;
    }
    Ok(())
}

/// Writes one row.
pub async fn write_row(io: &mut PacketIo, w: &mut ResultWriter, row: Row) -> Result<(), SqlError> {
    encode_row(&mut w.buf, row);
    io.write_row(&w.buf).await.map_err(io_err)
}

/// Writes the end of a result set: EOF, or OK with the EOF header.
pub async fn write_end(io: &mut PacketIo, session: &Session) -> Result<(), SqlError> {
    write_end_warned(io, session, 0).await
}

/// [`write_end`] for a result set whose statement raised `warnings` warnings.
pub async fn write_end_warned(
    io: &mut PacketIo,
    session: &Session,
    warnings: u16,
) -> Result<(), SqlError> {
    io.warnings = warnings;
    io.result_set = true;
    let p = if session.deprecate_eof() {
        resultset::ok(0, 0, session.status_flags(), warnings, "", true)
    } else {
        resultset::eof(session.status_flags(), warnings)
    };
    io.write_packet(&p).await.map_err(io_err)
}

/// Runs `stmts` on `conn` in order, sending the first result's columns and every row.
///
/// # Errors
/// Backend errors, mapped with the shard's name.
pub async fn stream_statements(
    conn: &mut Conn,
    stmts: &[Vec<u8>],
    tx: &tokio::sync::mpsc::Sender<Msg>,
    ps: &str,
    addr: &str,
    unq: crate::topology::Unqualify<'_>,
    found: Option<&std::sync::atomic::AtomicU64>,
) -> Result<(), SqlError> {
    let map = |e: mysql_async::Error| from_backend(e, ps, addr, unq);
    let mut sent_cols = false;
    let mut buf = Vec::new();
    for s in stmts {
        let mut res = conn.query_iter(s.as_slice()).await.map_err(map)?;
        if !sent_cols {
            if let Some(cols) = res.columns() {
                let defs = cols.iter().map(|c| column_def(c, unq)).collect();
                if tx.send(Msg::Columns(defs)).await.is_err() {
                    return Ok(());
                }
                sent_cols = true;
            }
        }
        while let Some(row) = res.next().await.map_err(map)? {
            encode_row(&mut buf, row);
            if tx.send(Msg::Row(std::mem::take(&mut buf))).await.is_err() {
                return Ok(());
            }
        }
        if let Some(f) = found {
            let n: Option<u64> = conn.query_first("SELECT FOUND_ROWS()").await.map_err(map)?;
            f.fetch_add(n.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}

/// A column definition as a backend's own connection sent it, its schema mapped back to the
/// keyspace (`None`: malformed).
pub fn wire_column_def(
    p: &[u8],
    extended: bool,
    unq: crate::topology::Unqualify<'_>,
) -> Option<ColumnDef> {
    if unq.keeps_all() {
        return ColumnDef::decode(p, extended);
    }
    ColumnDef::decode(&ColumnDef::remap_schema(p, |m| unq.apply(m))?, extended)
}

/// [`stream_statements`] on one of the router's own connections: rows go on as the server
/// sent them, column definitions keep MariaDB's extended type information, and the
/// results' status bits about index use are gathered in `status`. The lease is
/// left not clean (closed, not reused) when the receiver went away before the end.
///
/// # Errors
/// The server's error, or the connection's.
pub async fn stream_wire(
    lease: &mut crate::backend::wire::WireLease,
    stmts: &[Vec<u8>],
    tx: &tokio::sync::mpsc::Sender<Msg>,
    unq: crate::topology::Unqualify<'_>,
    found: Option<&std::sync::atomic::AtomicU64>,
    status: &std::sync::atomic::AtomicU16,
) -> Result<(), crate::backend::wire::WireError> {
    use crate::backend::wire::{is_eof, parse_eof, parse_err, parse_ok, WireError};
    use crate::wire::constants::{COM_QUERY, SERVER_MORE_RESULTS_EXISTS};
    let protocol = |m: &str| WireError::Protocol(m.to_string());
    let mut sent_cols = false;
    for s in stmts {
        lease.clean = false;
        let c = &mut lease.conn;
        c.command(COM_QUERY, s).await?;
        loop {
            let p = c.read_packet().await?;
            let status = match p.first() {
                Some(0x00) => parse_ok(p)?.status,
                Some(0xff) => {
                    let e = parse_err(p);
                    lease.clean = true;
                    return Err(e);
                }
                Some(0xfb) | None => return Err(protocol("unexpected answer to a read")),
                Some(_) => {
                    let n = crate::wire::codec::Cursor::new(p)
                        .lenenc_int()
                        .ok_or_else(|| protocol("bad column count"))?;
                    let extended = c.extended;
                    let mut defs = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(4096));
                    for _ in 0..n {
                        let p = c.read_packet().await?;
                        defs.push(
                            wire_column_def(p, extended, unq)
                                .ok_or_else(|| protocol("malformed column definition"))?,
                        );
                    }
                    if !is_eof(c.read_packet().await?) {
                        return Err(protocol("no EOF after column definitions"));
                    }
                    if !sent_cols {
                        if tx.send(Msg::Columns(defs)).await.is_err() {
                            lease.clean = rest_skipped(c).await;
                            return Ok(());
                        }
                        sent_cols = true;
                    }
                    loop {
                        let p = c.read_packet().await?;
                        if is_eof(p) {
                            let (_, st) = parse_eof(p);
                            // How the server ran it (no index used), as one server's answer
                            // would say of the whole read.
                            status
                                .fetch_or(st & QUERY_STATUS, std::sync::atomic::Ordering::Relaxed);
                            break st;
                        }
                        if p.first() == Some(&0xff) {
                            let e = parse_err(p);
                            lease.clean = true;
                            return Err(e);
                        }
                        if tx.send(Msg::Row(p.to_vec())).await.is_err() {
                            lease.clean = rest_skipped(c).await;
                            return Ok(());
                        }
                    }
                }
            };
            if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                break;
            }
        }
        lease.clean = true;
        if let Some(f) = found {
            let rows = lease.conn.text_rows("SELECT FOUND_ROWS()").await?;
            let n = rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.as_deref())
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            f.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Rows read past what a read needed (the client's `LIMIT` reached: each logical shard's own
/// limit bounds them) are read and dropped, so that the connection is reused, unless there are
/// many: whether the connection may be reused.
async fn rest_skipped(c: &mut crate::backend::wire::WireConn) -> bool {
    const MAX_SKIPPED: usize = 4096;
    matches!(
        c.skip_rows(MAX_SKIPPED).await,
        Ok(Some(status)) if status & crate::wire::constants::SERVER_MORE_RESULTS_EXISTS == 0
    )
}
