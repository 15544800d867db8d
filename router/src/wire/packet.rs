//! Framing: 4-byte headers (3-byte length, sequence id), payloads split at 16 MiB.

use super::constants::MAX_CLIENT_PACKET;
use std::io;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::TcpStream;

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A copy of the result set being written (for the result shadow), up to a size bound.
#[derive(Debug, Default)]
pub struct Capture {
    /// Column names and types of the result set.
    pub columns: Vec<(Vec<u8>, u8)>,
    /// Rows in the text encoding.
    pub rows: Vec<Vec<u8>>,
    pub bytes: usize,
    pub max_bytes: usize,
    /// More rows came than `max_bytes` allows: the copy is incomplete.
    pub overflow: bool,
}

const MAX_PAYLOAD: usize = 0xff_ffff;

/// Flush the write buffer once it holds this much, so large results stream.
const FLUSH_AT: usize = 64 * 1024;

/// One client connection's packet reader and writer.
pub struct PacketIo {
    reader: BufReader<Reader>,
    writer: BufWriter<Writer>,
    /// Sequence id of the next packet to write.
    pub seq: u8,
    /// Set while answering `COM_STMT_EXECUTE`: rows go out in the binary protocol.
    pub binary_mode: bool,
    /// The current result's column types (and unsigned flags), in binary mode.
    pub binary_columns: Option<Vec<(u8, bool)>>,
    row_buf: Vec<u8>,
    /// When set, result rows written are also copied here.
    pub capture: Option<Capture>,
    /// Rows sent (result sets) or affected (writes) by the current statement.
    pub rows: u64,
    /// The warning count of the last OK or end-of-result packet written.
    pub warnings: u16,
    /// Whether the last answer written was a result set (else an OK).
    pub result_set: bool,
    /// Whether the client reads MariaDB's extended type information in column definitions.
    pub extended_metadata: bool,
}

impl PacketIo {
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Self::from_parts(Box::new(r), Box::new(w))
    }

    /// A packet stream over any reader and writer (the result shadow writes to a sink).
    pub fn from_parts(r: Reader, w: Writer) -> Self {
        PacketIo {
            reader: BufReader::with_capacity(16 * 1024, r),
            writer: BufWriter::with_capacity(FLUSH_AT + 1024, w),
            seq: 0,
            binary_mode: false,
            binary_columns: None,
            row_buf: Vec::new(),
            capture: None,
            rows: 0,
            warnings: 0,
            result_set: false,
            extended_metadata: false,
        }
    }

    /// Reads one logical packet (joining 16 MiB continuations) into `buf`.
    ///
    /// # Errors
    /// I/O errors, and `InvalidData` for a payload over [`MAX_CLIENT_PACKET`] or a sequence
    /// id out of order.
    pub async fn read_packet(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        // The common case: the whole packet arrives in one read; it is taken from the read
        // buffer as a whole rather than header and body through two reads.
        if self.reader.buffer().is_empty() {
            self.reader.fill_buf().await?;
        }
        let b = self.reader.buffer();
        if let Some(len) = super::codec::whole_packet(b, self.seq, MAX_PAYLOAD) {
            self.seq = self.seq.wrapping_add(1);
            buf.extend_from_slice(&b[4..4 + len]);
            self.reader.consume(4 + len);
            return Ok(());
        }
        loop {
            let mut hdr = [0u8; 4];
            self.reader.read_exact(&mut hdr).await?;
            let len = usize::from(hdr[0]) | usize::from(hdr[1]) << 8 | usize::from(hdr[2]) << 16;
            if hdr[3] != self.seq {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "packet out of order: sequence {} where {} was due",
                        hdr[3], self.seq
                    ),
                ));
            }
            self.seq = self.seq.wrapping_add(1);
            if buf.len() + len > MAX_CLIENT_PACKET {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("packet larger than {MAX_CLIENT_PACKET} bytes"),
                ));
            }
            let start = buf.len();
            buf.resize(start + len, 0);
            self.reader.read_exact(&mut buf[start..]).await?;
            if len < MAX_PAYLOAD {
                return Ok(());
            }
        }
    }

    /// Queues one packet for writing, flushing when the buffer is large.
    ///
    /// # Errors
    /// I/O errors of the socket.
    pub async fn write_packet(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
        if payload.is_empty() {
            self.write_frame(&[]).await?;
        }
        while let Some(c) = chunks.next() {
            self.write_frame(c).await?;
            if chunks.peek().is_none() && c.len() == MAX_PAYLOAD {
                self.write_frame(&[]).await?;
            }
        }
        if self.writer.buffer().len() >= FLUSH_AT {
            self.writer.flush().await?;
        }
        Ok(())
    }

    async fn write_frame(&mut self, c: &[u8]) -> io::Result<()> {
        let len = c.len() as u32;
        let hdr = [len as u8, (len >> 8) as u8, (len >> 16) as u8, self.seq];
        self.seq = self.seq.wrapping_add(1);
        self.writer.write_all(&hdr).await?;
        self.writer.write_all(c).await
    }

    /// Writes one result row given in the text encoding, converting it to the binary
    /// encoding when answering a prepared statement.
    ///
    /// # Errors
    /// I/O errors, and `InvalidData` for a malformed row.
    pub async fn write_row(&mut self, text_row: &[u8]) -> io::Result<()> {
        self.rows += 1;
        if let Some(c) = self.capture.as_mut() {
            if c.bytes + text_row.len() <= c.max_bytes {
                c.bytes += text_row.len();
                c.rows.push(text_row.to_vec());
            } else {
                c.overflow = true;
            }
        }
        let Some(cols) = &self.binary_columns else {
            return self.write_packet(text_row).await;
        };
        let mut buf = std::mem::take(&mut self.row_buf);
        let ok = super::binary::text_row_to_binary(text_row, cols, &mut buf);
        let r = match ok {
            Some(()) => self.write_packet(&buf).await,
            None => Err(io::Error::new(io::ErrorKind::InvalidData, "malformed row")),
        };
        self.row_buf = buf;
        r
    }

    /// Writes one result row already in the binary encoding (a backend's answer to a
    /// prepared statement, passed on as it is).
    ///
    /// # Errors
    /// I/O errors of the socket.
    pub async fn write_binary_row(&mut self, row: &[u8]) -> io::Result<()> {
        self.rows += 1;
        self.write_packet(row).await
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// I/O errors of the socket.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().await
    }

    /// Shuts the write side down.
    pub async fn shutdown(&mut self) {
        let _ = self.writer.flush().await;
        let _ = self.writer.shutdown().await;
    }
}
