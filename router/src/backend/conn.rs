//! The backend connection a client's statement borrows, whatever the path: the router's own
//! ([`WireConn`], wherever the server accepts a login it speaks) or a `mysql_async` one (a
//! server that wants another login method). Transactions, reserved connections and the paths
//! that read decoded values (merges, writes over several shards, the router's own questions)
//! use this one interface, so a transaction's connection is the same kind of connection the
//! one-shard path streams on: its answers can be passed on undecoded there, column
//! definitions and status flags as the server sent them.
//!
//! The decoded interface mirrors `mysql_async`'s (`query_drop`, `query_iter`, `exec`, …) and
//! reports `mysql_async::Error`s, so the engine maps every backend error one way. Rows are
//! decoded with `mysql_common`, the library `mysql_async` itself decodes with.

use super::wire::{self, WireConn, WireError, WireLease, WirePool};
use crate::wire::codec::Cursor;
use crate::wire::constants::{
    COM_QUERY, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA,
    SERVER_MORE_RESULTS_EXISTS,
};
use mysql_async::prelude::{AsQuery, FromRow, Queryable};
use mysql_async::{BinaryProtocol, Column, Params, QueryResult, Row, TextProtocol, Value};
use mysql_common::io::ParseBuf;
use mysql_common::proto::{Binary, MySerialize, Text};
use mysql_common::row::RowDeserializer;
use mysql_common::value::ServerSide;
use std::borrow::Cow;
use std::sync::Arc;

type Result<T> = std::result::Result<T, mysql_async::Error>;

/// A backend connection: the router's own, or a `mysql_async` one.
pub enum Conn {
    Own(Box<OwnConn>),
    Lib(mysql_async::Conn),
}

/// One of the router's own connections, taken from its shard's [`WirePool`].
pub struct OwnConn {
    pub lease: WireLease,
    pool: Arc<WirePool>,
    /// The last OK (or end of rows) read: affected rows, last insert id, warnings, info.
    last: wire::OkInfo,
    /// A result the caller stopped reading: the rest is read before the next command.
    pending: Pending,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// Inside a result set's rows.
    Rows,
    /// Between results that said more follow.
    MoreResults,
}

/// `WireError` as the `mysql_async` error the engine maps.
pub fn lib_error(e: WireError) -> mysql_async::Error {
    match e {
        WireError::Server {
            code,
            state,
            message,
        } => mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message,
            state,
        }),
        WireError::Io(e) => mysql_async::Error::Io(mysql_async::IoError::Io(e)),
        WireError::Protocol(m) | WireError::Unsupported(m) => mysql_async::Error::Other(m.into()),
    }
}

/// A column definition the router's own connection read (with MariaDB's extended type
/// information when `extended`), decoded as `mysql_async` decodes one.
fn column(p: &[u8], extended: bool) -> Result<Column> {
    let p = crate::wire::resultset::ColumnDef::convert_extended(p, extended, false)
        .ok_or_else(|| malformed("column definition"))?;
    ParseBuf(&p)
        .parse::<Column>(())
        .map_err(|_| malformed("column definition"))
}

fn malformed(what: &str) -> mysql_async::Error {
    lib_error(WireError::Protocol(format!("malformed {what}")))
}

impl OwnConn {
    pub fn new(lease: WireLease, pool: Arc<WirePool>) -> Self {
        OwnConn {
            lease,
            pool,
            last: wire::OkInfo::default(),
            pending: Pending::Nothing,
        }
    }

    /// The connection itself.
    pub fn wire(&mut self) -> &mut WireConn {
        &mut self.lease.conn
    }

    /// Starts an exchange the caller reads itself on [`OwnConn::wire`] (what an earlier
    /// result left is read first); the caller sets `lease.clean` when it has read it to the
    /// end, or calls [`OwnConn::finished`].
    ///
    /// # Errors
    /// Reading what was left.
    pub async fn start(&mut self) -> Result<()> {
        self.settle().await?;
        self.lease.clean = false;
        self.last = wire::OkInfo::default();
        Ok(())
    }

    /// After a read streamed on [`OwnConn::wire`] that its reader may have stopped in the
    /// middle of a result set's rows (a `LIMIT` met): the rest is read before the next
    /// command, as for a result this interface left.
    pub fn after_streaming(&mut self) {
        if !self.lease.clean {
            self.pending = Pending::Rows;
        }
    }

    /// Ends an exchange the caller read itself with its final OK.
    pub fn finished(&mut self, ok: wire::OkInfo) {
        self.last = ok;
        self.lease.clean = true;
    }

    /// An answer (or one result of it) ended with `status`: the next result follows, or the
    /// exchange is over and the connection reusable.
    fn ended(&mut self, status: u16) {
        self.pending = if status & SERVER_MORE_RESULTS_EXISTS != 0 {
            Pending::MoreResults
        } else {
            self.lease.clean = true;
            Pending::Nothing
        };
    }

    /// Reads what a result left unread, so that a command can be sent. A connection whose
    /// last exchange was left at an unknown point (an error while it was read elsewhere) is
    /// lost: it says so, and is never reused.
    async fn settle(&mut self) -> Result<()> {
        if self.pending == Pending::Nothing && !self.lease.clean {
            return Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the backend connection was left in the middle of an answer",
                ),
            )));
        }
        if self.pending == Pending::Rows {
            let (_, status) = self.end_of_rows().await?;
            self.ended(status);
        }
        if self.pending == Pending::MoreResults {
            self.pending = Pending::Nothing;
            self.lease.clean = false;
            self.lease.conn.drain_results().await.map_err(lib_error)?;
            self.lease.clean = true;
        }
        Ok(())
    }

    async fn end_of_rows(&mut self) -> Result<(u16, u16)> {
        loop {
            let p = self.lease.conn.read_packet().await.map_err(lib_error)?;
            if wire::is_eof(p) {
                return Ok(wire::parse_eof(p));
            }
            if p.first() == Some(&0xff) {
                let e = wire::parse_err(p);
                self.lease.clean = true;
                self.pending = Pending::Nothing;
                return Err(lib_error(e));
            }
        }
    }

    /// Sends `cmd` with `arg`, after reading what an earlier result left.
    async fn send(&mut self, cmd: u8, arg: &[u8]) -> Result<()> {
        self.settle().await?;
        self.lease.clean = false;
        self.last = wire::OkInfo::default();
        self.lease
            .conn
            .command(cmd, arg)
            .await
            .map_err(|e| lib_error(e.into()))
    }

    /// Reads the start of an answer: an OK (`None`, kept in `last`) or a result set's column
    /// definitions (read up to their EOF). An ERR is the error. A `LOCAL INFILE` request is
    /// refused (no file is sent).
    async fn answer_head(&mut self) -> Result<Option<Arc<[Column]>>> {
        loop {
            let extended = self.lease.conn.extended;
            let p = self.lease.conn.read_packet().await.map_err(lib_error)?;
            match p.first() {
                Some(0x00) => {
                    let ok = wire::parse_ok(p).map_err(lib_error)?;
                    self.ended(ok.status);
                    self.last = ok;
                    return Ok(None);
                }
                Some(0xff) => {
                    let e = wire::parse_err(p);
                    self.lease.clean = true;
                    self.pending = Pending::Nothing;
                    return Err(lib_error(e));
                }
                Some(0xfb) => {
                    // No file from here: an empty one ends the request.
                    self.lease
                        .conn
                        .write_data(&[])
                        .await
                        .map_err(|e| lib_error(e.into()))?;
                    continue;
                }
                Some(_) => {
                    let n = Cursor::new(p)
                        .lenenc_int()
                        .ok_or_else(|| malformed("column count"))?;
                    let mut cols = Vec::with_capacity(n.min(4096) as usize);
                    for _ in 0..n {
                        let p = self.lease.conn.read_packet().await.map_err(lib_error)?;
                        cols.push(column(p, extended)?);
                    }
                    if !wire::is_eof(self.lease.conn.read_packet().await.map_err(lib_error)?) {
                        return Err(malformed("result: no EOF after column definitions"));
                    }
                    self.pending = Pending::Rows;
                    return Ok(Some(cols.into()));
                }
                None => return Err(malformed("answer")),
            }
        }
    }

    /// The next row of the result set being read (`binary`: in the binary protocol), `None`
    /// at its end (its warnings and status then in `last`).
    async fn next_row(&mut self, cols: &Arc<[Column]>, binary: bool) -> Result<Option<Row>> {
        if self.pending != Pending::Rows {
            return Ok(None);
        }
        let p = self.lease.conn.read_packet().await.map_err(lib_error)?;
        if wire::is_eof(p) {
            let (warnings, status) = wire::parse_eof(p);
            self.last.warnings = warnings;
            self.last.status = status;
            self.ended(status);
            return Ok(None);
        }
        if p.first() == Some(&0xff) {
            let e = wire::parse_err(p);
            self.lease.clean = true;
            self.pending = Pending::Nothing;
            return Err(lib_error(e));
        }
        let row = if binary {
            ParseBuf(p)
                .parse::<RowDeserializer<ServerSide, Binary>>(cols.clone())
                .map(Row::from)
        } else {
            ParseBuf(p)
                .parse::<RowDeserializer<ServerSide, Text>>(cols.clone())
                .map(Row::from)
        };
        row.map(Some).map_err(|_| malformed("row"))
    }

    /// Sends `COM_STMT_EXECUTE` of `sql` (prepared on this connection if it is not yet) with
    /// `params`.
    async fn execute(&mut self, sql: &str, params: Params) -> Result<()> {
        self.settle().await?;
        self.lease.clean = false;
        let (id, n) = self.lease.conn.prepared(sql).await.map_err(|e| {
            if matches!(e, WireError::Server { .. }) {
                self.lease.clean = true;
            }
            lib_error(e)
        })?;
        let values: Vec<Value> = match params {
            Params::Empty => Vec::new(),
            Params::Positional(v) => v,
            Params::Named(_) => {
                return Err(mysql_async::Error::Other(
                    "named parameters are not used on the router's connections".into(),
                ))
            }
        };
        if values.len() != usize::from(n) {
            self.lease.clean = true;
            return Err(mysql_async::Error::Other(
                format!(
                    "statement has {n} parameters, {} were supplied",
                    values.len()
                )
                .into(),
            ));
        }
        let (body, long) =
            mysql_common::packets::ComStmtExecuteRequestBuilder::new(id).build(&values);
        if long {
            // Byte values go ahead as long data, in pieces under any packet limit.
            for (i, v) in values.iter().enumerate() {
                if let Value::Bytes(b) = v {
                    let pieces: Vec<&[u8]> = if b.is_empty() {
                        vec![&[][..]]
                    } else {
                        b.chunks(mysql_common::constants::MAX_PAYLOAD_LEN - 7)
                            .collect()
                    };
                    for piece in pieces {
                        self.lease
                            .conn
                            .command_with(COM_STMT_SEND_LONG_DATA, |out| {
                                out.extend_from_slice(&id.to_le_bytes());
                                out.extend_from_slice(&(i as u16).to_le_bytes());
                                out.extend_from_slice(piece);
                            })
                            .await
                            .map_err(|e| lib_error(e.into()))?;
                    }
                }
            }
        }
        let mut buf = Vec::new();
        body.serialize(&mut buf);
        self.last = wire::OkInfo::default();
        // (The serialized request starts with the command byte.)
        let arg = buf.get(1..).unwrap_or_default();
        self.lease
            .conn
            .command(COM_STMT_EXECUTE, arg)
            .await
            .map_err(|e| lib_error(e.into()))
    }
}

/// A statement prepared to be described (its columns and parameters); close it with
/// [`Conn::close`].
pub enum Prepared {
    Lib(mysql_async::Statement),
    Own {
        id: u32,
        columns: Arc<[Column]>,
        params: u16,
    },
}

impl Prepared {
    pub fn columns(&self) -> Arc<[Column]> {
        match self {
            Prepared::Lib(s) => s.columns(),
            Prepared::Own { columns, .. } => columns.clone(),
        }
    }

    pub fn num_params(&self) -> u16 {
        match self {
            Prepared::Lib(s) => s.num_params(),
            Prepared::Own { params, .. } => *params,
        }
    }
}

/// The answer to a statement, read result by result (as `mysql_async::QueryResult`).
pub enum Results<'a> {
    LibText(QueryResult<'a, 'static, TextProtocol>),
    LibBinary(QueryResult<'a, 'static, BinaryProtocol>),
    Own {
        conn: &'a mut OwnConn,
        /// The current result set's columns (`None`: an OK).
        columns: Option<Arc<[Column]>>,
        binary: bool,
    },
}

impl Results<'_> {
    /// The current result's columns; `None` (or empty) for an OK.
    pub fn columns(&self) -> Option<Arc<[Column]>> {
        match self {
            Results::LibText(r) => r.columns(),
            Results::LibBinary(r) => r.columns(),
            Results::Own { columns, .. } => columns.clone(),
        }
    }

    /// The next row of the current result set; `None` at its end. Then the next result (of
    /// a `CALL`) becomes the current one, as `mysql_async` reads them.
    pub async fn next(&mut self) -> Result<Option<Row>> {
        match self {
            Results::LibText(r) => r.next().await,
            Results::LibBinary(r) => r.next().await,
            Results::Own {
                conn,
                columns,
                binary,
            } => {
                let Some(cols) = columns.as_ref() else {
                    return Ok(None);
                };
                let row = conn.next_row(cols, *binary).await?;
                if row.is_none() && conn.pending == Pending::MoreResults {
                    conn.pending = Pending::Nothing;
                    *columns = conn.answer_head().await?;
                }
                Ok(row)
            }
        }
    }

    pub fn affected_rows(&self) -> u64 {
        match self {
            Results::LibText(r) => r.affected_rows(),
            Results::LibBinary(r) => r.affected_rows(),
            Results::Own { conn, .. } => conn.last.affected,
        }
    }

    pub fn last_insert_id(&self) -> Option<u64> {
        match self {
            Results::LibText(r) => r.last_insert_id(),
            Results::LibBinary(r) => r.last_insert_id(),
            Results::Own { conn, .. } => Some(conn.last.last_insert_id).filter(|&i| i != 0),
        }
    }

    pub fn warnings(&self) -> u16 {
        match self {
            Results::LibText(r) => r.warnings(),
            Results::LibBinary(r) => r.warnings(),
            Results::Own { conn, .. } => conn.last.warnings,
        }
    }

    pub fn info(&self) -> Cow<'_, str> {
        match self {
            Results::LibText(r) => r.info(),
            Results::LibBinary(r) => r.info(),
            Results::Own { conn, .. } => Cow::Borrowed(conn.last.info.as_str()),
        }
    }

    /// The server's status flags at the end of the current result, where the connection
    /// tells them (the router's own; 0 on a `mysql_async` one).
    pub fn status(&self) -> u16 {
        match self {
            Results::Own { conn, .. } => conn.last.status,
            _ => 0,
        }
    }

    /// Whether no result is left to read.
    pub fn is_empty(&self) -> bool {
        match self {
            Results::LibText(r) => r.is_empty(),
            Results::LibBinary(r) => r.is_empty(),
            Results::Own { conn, columns, .. } => {
                columns.is_none() && conn.pending == Pending::Nothing
            }
        }
    }

    /// Reads and drops the rest of the answer.
    pub async fn drop_result(self) -> Result<()> {
        match self {
            Results::LibText(r) => r.drop_result().await,
            Results::LibBinary(r) => r.drop_result().await,
            Results::Own { conn, .. } => conn.settle().await,
        }
    }
}

impl Conn {
    /// The server's id of this connection.
    pub fn id(&self) -> u32 {
        match self {
            Conn::Own(c) => c.lease.conn.id,
            Conn::Lib(c) => c.id(),
        }
    }

    /// Whether it is one of the router's own.
    pub fn is_own(&self) -> bool {
        matches!(self, Conn::Own(_))
    }

    /// The router's own connection, to stream an answer on undecoded.
    pub fn own(&mut self) -> Option<&mut OwnConn> {
        match self {
            Conn::Own(c) => Some(c),
            Conn::Lib(_) => None,
        }
    }

    /// Runs `q`; its answer (all its results) is read and dropped.
    pub async fn query_drop(&mut self, q: impl AsQuery) -> Result<()> {
        match self {
            Conn::Lib(c) => c.query_drop(q).await,
            Conn::Own(c) => {
                c.send(COM_QUERY, &q.as_query()).await?;
                let mut last = wire::OkInfo::default();
                loop {
                    match c.answer_head().await? {
                        None => last = c.last.clone(),
                        Some(_) => {
                            let (warnings, status) = c.end_of_rows().await?;
                            last.warnings = warnings;
                            c.ended(status);
                        }
                    }
                    if c.pending != Pending::MoreResults {
                        break;
                    }
                    c.pending = Pending::Nothing;
                }
                c.last = last;
                Ok(())
            }
        }
    }

    /// Runs `q` and returns its answer to read.
    pub async fn query_iter<'a, Q: AsQuery + 'a>(&'a mut self, q: Q) -> Result<Results<'a>> {
        match self {
            Conn::Lib(c) => c.query_iter(q).await.map(Results::LibText),
            Conn::Own(c) => {
                c.send(COM_QUERY, &q.as_query()).await?;
                let columns = c.answer_head().await?;
                Ok(Results::Own {
                    conn: c,
                    columns,
                    binary: false,
                })
            }
        }
    }

    /// The rows of `q`, each converted to `T`.
    pub async fn query<T: FromRow + Send + 'static>(&mut self, q: impl AsQuery) -> Result<Vec<T>> {
        let res = self.query_iter(q).await?;
        collect(res).await
    }

    /// The first row of `q` converted to `T`, if there is one.
    pub async fn query_first<T: FromRow + Send + 'static>(
        &mut self,
        q: impl AsQuery,
    ) -> Result<Option<T>> {
        Ok(self.query::<T>(q).await?.into_iter().next())
    }

    /// Executes prepared statement `sql` with `params`, and returns its answer to read (rows
    /// in the binary protocol).
    pub async fn exec_iter(
        &mut self,
        sql: impl AsRef<str>,
        params: impl Into<Params>,
    ) -> Result<Results<'_>> {
        match self {
            Conn::Lib(c) => c
                .exec_iter(sql.as_ref(), params)
                .await
                .map(Results::LibBinary),
            Conn::Own(c) => {
                c.execute(sql.as_ref(), params.into()).await?;
                let columns = c.answer_head().await?;
                Ok(Results::Own {
                    conn: c,
                    columns,
                    binary: true,
                })
            }
        }
    }

    /// The rows of prepared statement `sql` with `params`, each converted to `T`.
    pub async fn exec<T: FromRow + Send + 'static>(
        &mut self,
        sql: impl AsRef<str>,
        params: impl Into<Params>,
    ) -> Result<Vec<T>> {
        let res = self.exec_iter(sql, params).await?;
        collect(res).await
    }

    /// The first row of prepared statement `sql` with `params`, converted to `T`.
    pub async fn exec_first<T: FromRow + Send + 'static>(
        &mut self,
        sql: impl AsRef<str>,
        params: impl Into<Params>,
    ) -> Result<Option<T>> {
        Ok(self.exec::<T>(sql, params).await?.into_iter().next())
    }

    /// Executes prepared statement `sql` with `params`; its answer is read and dropped.
    pub async fn exec_drop(
        &mut self,
        sql: impl AsRef<str>,
        params: impl Into<Params>,
    ) -> Result<()> {
        let res = self.exec_iter(sql, params).await?;
        res.drop_result().await
    }

    /// Prepares `sql` to describe it (nothing runs).
    pub async fn prep(&mut self, sql: impl AsRef<str>) -> Result<Prepared> {
        match self {
            Conn::Lib(c) => c.prep(sql.as_ref()).await.map(Prepared::Lib),
            Conn::Own(c) => {
                c.settle().await?;
                c.lease.clean = false;
                let extended = c.lease.conn.extended;
                let r = c
                    .lease
                    .conn
                    .prepare_described(sql.as_ref().as_bytes())
                    .await;
                let (id, params, defs) = match r {
                    Ok(d) => d,
                    Err(e) => {
                        c.lease.clean = matches!(e, WireError::Server { .. });
                        return Err(lib_error(e));
                    }
                };
                c.lease.clean = true;
                let cols = defs
                    .iter()
                    .map(|p| column(p, extended))
                    .collect::<Result<Vec<Column>>>()?;
                Ok(Prepared::Own {
                    id,
                    columns: cols.into(),
                    params,
                })
            }
        }
    }

    /// Closes a statement [`Conn::prep`] prepared.
    pub async fn close(&mut self, stmt: Prepared) -> Result<()> {
        match (self, stmt) {
            (Conn::Lib(c), Prepared::Lib(s)) => c.close(s).await,
            (Conn::Own(c), Prepared::Own { id, .. }) => {
                c.settle().await?;
                // COM_STMT_CLOSE has no answer.
                c.lease
                    .conn
                    .command(COM_STMT_CLOSE, &id.to_le_bytes())
                    .await
                    .map_err(|e| lib_error(e.into()))
            }
            _ => Ok(()),
        }
    }

    /// The last statement's affected rows.
    pub fn affected_rows(&self) -> u64 {
        match self {
            Conn::Lib(c) => c.affected_rows(),
            Conn::Own(c) => c.last.affected,
        }
    }

    /// The last statement's last insert id (`None` for 0).
    pub fn last_insert_id(&self) -> Option<u64> {
        match self {
            Conn::Lib(c) => c.last_insert_id(),
            Conn::Own(c) => Some(c.last.last_insert_id).filter(|&i| i != 0),
        }
    }

    /// The last statement's warning count.
    pub fn get_warnings(&self) -> u16 {
        match self {
            Conn::Lib(c) => c.get_warnings(),
            Conn::Own(c) => c.last.warnings,
        }
    }

    /// The last statement's info text.
    pub fn info(&self) -> Cow<'_, str> {
        match self {
            Conn::Lib(c) => c.info(),
            Conn::Own(c) => Cow::Borrowed(c.last.info.as_str()),
        }
    }

    /// Brings the connection back to its login's session state.
    pub async fn reset(&mut self) -> Result<()> {
        match self {
            Conn::Lib(c) => c.reset().await.map(|_| ()),
            Conn::Own(c) => {
                c.settle().await?;
                c.lease.clean = false;
                c.lease.conn.reset().await.map_err(lib_error)?;
                c.lease.clean = true;
                Ok(())
            }
        }
    }

    /// Returns the connection to its pool: reset first when `dirty` (its session state is
    /// not what its pool knows of it), closed when that fails or an answer was left half
    /// read.
    pub async fn release(self, dirty: bool) {
        match self {
            Conn::Lib(c) => release_lib(c, dirty).await,
            Conn::Own(mut c) => {
                if c.settle().await.is_err() {
                    return;
                }
                if dirty {
                    c.lease.clean = false;
                    if c.lease.conn.reset().await.is_err() {
                        return;
                    }
                    c.lease.clean = true;
                }
                let OwnConn { lease, pool, .. } = *c;
                pool.put(lease);
            }
        }
    }

    /// Closes the connection without giving it back.
    pub async fn disconnect(self) {
        match self {
            Conn::Lib(c) => {
                let _ = c.disconnect().await;
            }
            // Dropped: the socket closes.
            Conn::Own(_) => {}
        }
    }
}

async fn collect<T: FromRow + Send + 'static>(mut res: Results<'_>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = res.next().await? {
        out.push(
            mysql_async::from_row_opt::<T>(row)
                .map_err(|e| mysql_async::Error::Other(e.to_string().into()))?,
        );
    }
    res.drop_result().await?;
    Ok(out)
}

/// Returns a `mysql_async` connection to its pool, resetting its session state first if
/// needed.
pub async fn release_lib(mut conn: mysql_async::Conn, dirty: bool) {
    if dirty && conn.reset().await.is_err() {
        // A connection that cannot be reset is closed rather than reused.
        let _ = conn.disconnect().await;
        return;
    }
    drop(conn);
}
