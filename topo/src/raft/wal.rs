//! Checksummed record files: the on-disk format of the Raft log and of the snapshot.
//!
//! A file opens with an 8-byte magic that names its kind, followed by records:
//!
//! ```text
//! | len: u32 LE | crc32: u32 LE | kind: u8 | payload: len bytes |
//! ```
//!
//! The CRC-32 (IEEE) covers the kind byte and the payload. Payloads are protobuf-encoded
//! Raft messages (`Entry`, `HardState`, `Snapshot`).
//!
//! Reading tells two kinds of damage apart. A *torn tail* — the last record cut short or
//! failing its checksum with nothing but zeroes after it — is what a crash in the middle of an
//! append leaves; that record was never fsynced, so nobody was told it was durable, and it is
//! truncated with a warning. Anything else (a bad checksum with valid data after it, an
//! unknown kind, a bad magic) is corruption and an error that names the file and the offset.

use crate::error::{Result, TopoError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Magic of the Raft log file.
pub(crate) const LOG_MAGIC: &[u8; 8] = b"TSRLOG01";
/// Magic of the snapshot file.
pub(crate) const SNAP_MAGIC: &[u8; 8] = b"TSRSNP01";

/// Bytes before each payload: length, checksum and kind.
const HEADER: usize = 9;

/// Largest payload a record may carry; a larger length field is corruption.
const MAX_RECORD: usize = 512 << 20;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One `eraftpb::Entry`.
    Entry = 1,
    /// One `eraftpb::HardState`; the last one in the log wins.
    HardState = 2,
    /// One `eraftpb::Snapshot`, metadata and data.
    Snapshot = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Entry),
            2 => Some(Kind::HardState),
            3 => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

/// One record read back, with the offset it starts at.
#[derive(Debug)]
pub(crate) struct Record {
    pub kind: Kind,
    pub payload: Vec<u8>,
    pub offset: u64,
}

/// The records of a file and where its valid part ends.
#[derive(Debug)]
pub(crate) struct Scan {
    pub records: Vec<Record>,
    /// Length of the valid prefix; anything after it is a torn tail.
    pub valid_len: u64,
    /// Why the tail was cut, when it was.
    pub torn: Option<String>,
}

/// Appends one record to `out`.
pub(crate) fn encode(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind as u8]);
    h.update(payload);
    // Payloads are bounded by MAX_RECORD on read; a larger write would be refused there.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

fn corrupt(path: &Path, offset: u64, message: impl Into<String>) -> TopoError {
    TopoError::Corrupt {
        key: format!("{} at offset {offset}", path.display()),
        message: message.into(),
    }
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads the records of `bytes`, the whole content of `path`.
///
/// # Errors
/// [`TopoError::Corrupt`] naming the file and offset for a bad magic or damage before the
/// last record.
pub(crate) fn scan(path: &Path, bytes: &[u8], magic: &[u8; 8]) -> Result<Scan> {
    if bytes.len() < magic.len() {
        // A file cut inside its magic was never written past creation.
        return Ok(Scan {
            records: Vec::new(),
            valid_len: 0,
            torn: Some(format!(
                "file is {} bytes, shorter than its header",
                bytes.len()
            )),
        });
    }
    if &bytes[..magic.len()] != magic {
        return Err(corrupt(path, 0, "bad magic: not a file of this kind"));
    }
    let mut records = Vec::new();
    let mut pos = magic.len();
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let torn = |why: String| Scan {
            records: Vec::new(),
            valid_len: offset,
            torn: Some(why),
        };
        if rest.len() < HEADER {
            let mut s = torn(format!(
                "{} bytes left, less than a record header",
                rest.len()
            ));
            s.records = records;
            return Ok(s);
        }
        let len = read_u32(rest) as usize;
        let crc = read_u32(&rest[4..]);
        if len > MAX_RECORD {
            return Err(corrupt(
                path,
                offset,
                format!("record length {len} too large"),
            ));
        }
        if rest.len() < HEADER + len {
            let mut s = torn(format!(
                "record of {len} bytes cut short at {} bytes",
                rest.len() - HEADER
            ));
            s.records = records;
            return Ok(s);
        }
        let body = &rest[HEADER - 1..HEADER + len];
        let end = pos + HEADER + len;
        if crc32fast::hash(body) != crc {
            if bytes[end..].iter().all(|b| *b == 0) {
                let mut s = torn("last record fails its checksum".to_string());
                s.records = records;
                return Ok(s);
            }
            return Err(corrupt(path, offset, "record fails its checksum"));
        }
        let kind = Kind::from_byte(body[0])
            .ok_or_else(|| corrupt(path, offset, format!("unknown record kind {}", body[0])))?;
        records.push(Record {
            kind,
            payload: body[1..].to_vec(),
            offset,
        });
        pos = end;
    }
    Ok(Scan {
        records,
        valid_len: bytes.len() as u64,
        torn: None,
    })
}

/// An append-only record file. Appends are buffered until [`RecordFile::sync`].
pub(crate) struct RecordFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl RecordFile {
    /// Opens `path`, creating it with `magic` if absent, and returns its records. A torn tail
    /// is truncated (and fsynced) with a warning.
    ///
    /// # Errors
    /// I/O errors, and [`TopoError::Corrupt`] for damage that is not a torn tail.
    pub(crate) fn open(path: &Path, magic: &[u8; 8]) -> Result<(RecordFile, Vec<Record>)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(path, magic, &[])?;
                magic.to_vec()
            }
            Err(e) => return Err(e.into()),
        };
        let scan = scan(path, &bytes, magic)?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if let Some(why) = &scan.torn {
            tracing::warn!(
                file = %path.display(),
                offset = scan.valid_len,
                dropped_bytes = bytes.len() as u64 - scan.valid_len,
                reason = %why,
                "truncating torn tail of raft log"
            );
            if scan.valid_len < magic.len() as u64 {
                file.set_len(0)?;
                (&file).write_all(magic)?;
            } else {
                file.set_len(scan.valid_len)?;
            }
            file.sync_all()?;
        }
        let mut f = RecordFile {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
        };
        f.seek_end()?;
        Ok((f, scan.records))
    }

    fn seek_end(&mut self) -> Result<()> {
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }

    /// Buffers one record.
    pub(crate) fn append(&mut self, kind: Kind, payload: &[u8]) {
        encode(kind, payload, &mut self.buf);
    }

    /// Returns whether records wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes the buffered records and, when `fsync`, waits until they are on disk.
    ///
    /// # Errors
    /// I/O errors; the node must then stop, since it can no longer promise durability.
    pub(crate) fn sync(&mut self, fsync: bool) -> Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        if fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Replaces the whole file with `records`, atomically, and keeps appending to the new one.
    ///
    /// # Errors
    /// I/O errors; the old file is then left as it was.
    pub(crate) fn rewrite(&mut self, magic: &[u8; 8], records: &[(Kind, Vec<u8>)]) -> Result<()> {
        self.sync(false)?;
        write_atomic(&self.path, magic, records)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.seek_end()
    }
}

/// Writes a whole record file atomically: temporary file, fsync, rename, fsync of the
/// directory.
///
/// # Errors
/// I/O errors; a previous file at `path` is then left intact.
pub(crate) fn write_atomic(
    path: &Path,
    magic: &[u8; 8],
    records: &[(Kind, Vec<u8>)],
) -> Result<()> {
    let mut bytes = magic.to_vec();
    for (kind, payload) in records {
        encode(*kind, payload, &mut bytes);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a file written by [`write_atomic`]; `None` if it does not exist.
///
/// # Errors
/// I/O errors, and [`TopoError::Corrupt`] for any damage: an atomically written file is
/// never torn, so a short or failing record is corruption here.
pub(crate) fn read_whole(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<Record>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let scan = scan(path, &bytes, magic)?;
    if let Some(why) = scan.torn {
        return Err(corrupt(path, scan.valid_len, why));
    }
    Ok(Some(scan.records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(records: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut b = LOG_MAGIC.to_vec();
        for (k, p) in records {
            encode(*k, p, &mut b);
        }
        b
    }

    #[test]
    fn reads_back_what_was_written() {
        let b = file_with(&[(Kind::Entry, b"one"), (Kind::HardState, b"two")]);
        let s = scan(Path::new("x"), &b, LOG_MAGIC).expect("scan");
        assert!(s.torn.is_none());
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].payload, b"two");
        assert_eq!(s.records[1].kind, Kind::HardState);
        assert_eq!(s.valid_len, b.len() as u64);
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let b = file_with(&[(Kind::Entry, b"one"), (Kind::Entry, b"second record")]);
        let first_end = 8 + HEADER + 3;
        for cut in first_end + 1..b.len() {
            let s = scan(Path::new("x"), &b[..cut], LOG_MAGIC).expect("torn, not corrupt");
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, first_end as u64);
            assert!(s.torn.is_some());
        }
    }

    #[test]
    fn a_bad_checksum_in_the_middle_is_corruption_with_offset() {
        let mut b = file_with(&[
            (Kind::Entry, b"one"),
            (Kind::Entry, b"two"),
            (Kind::Entry, b"three"),
        ]);
        let second = 8 + HEADER + 3;
        b[second + HEADER] ^= 0xff;
        match scan(Path::new("/data/raft.log"), &b, LOG_MAGIC) {
            Err(TopoError::Corrupt { key, .. }) => {
                assert_eq!(key, format!("/data/raft.log at offset {second}"))
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // The same damage on the last record, followed by zeroes, is a torn write.
        let mut b = file_with(&[(Kind::Entry, b"one"), (Kind::Entry, b"two")]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        b.extend_from_slice(&[0u8; 32]);
        let s = scan(Path::new("x"), &b, LOG_MAGIC).expect("torn");
        assert_eq!(s.records.len(), 1);
    }

    #[test]
    fn a_bad_magic_is_corruption() {
        let b = file_with(&[(Kind::Entry, b"one")]);
        assert!(matches!(
            scan(Path::new("x"), &b, SNAP_MAGIC),
            Err(TopoError::Corrupt { .. })
        ));
    }

    #[test]
    fn open_truncates_a_torn_tail_and_appends_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raft.log");
        {
            let (mut f, recs) = RecordFile::open(&path, LOG_MAGIC).expect("create");
            assert!(recs.is_empty());
            f.append(Kind::Entry, b"kept");
            f.append(Kind::Entry, b"torn away");
            f.sync(true).expect("sync");
        }
        let len = std::fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 4).expect("cut");
        drop(f);
        {
            let (mut f, recs) = RecordFile::open(&path, LOG_MAGIC).expect("reopen");
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].payload, b"kept");
            f.append(Kind::Entry, b"after");
            f.sync(true).expect("sync");
        }
        let (_, recs) = RecordFile::open(&path, LOG_MAGIC).expect("reopen");
        let payloads: Vec<_> = recs.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(payloads, vec![b"kept".to_vec(), b"after".to_vec()]);
    }
}
