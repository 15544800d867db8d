//! Result-set framing: column definitions from backend metadata, rows re-framed from the
//! backend's text protocol, and the end-of-result marker each client expects.

use crate::backend::error::from_backend;
use crate::error::io_err;
use crate::error::SqlError;
use crate::session::Session;
use crate::wire::resultset::{self, ColumnDef};
use crate::wire::PacketIo;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Row, Value};

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
