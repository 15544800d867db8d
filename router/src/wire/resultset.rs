//! Server responses: OK, EOF, ERR, column definitions and text rows.

use super::codec::{lenenc_int, put_lenenc_str};
use super::constants::*;

/// An OK or EOF packet, built without a heap allocation (they end most statements).
#[derive(Debug, Clone, Copy)]
pub struct Short {
    buf: [u8; 24],
    len: usize,
}

impl Short {
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

impl std::ops::Deref for Short {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Builds an OK packet (or, with `eof_header`, the OK that ends a result set under
/// `CLIENT_DEPRECATE_EOF`).
pub fn ok(
    affected: u64,
    last_insert_id: u64,
    status: u16,
    warnings: u16,
    info: &str,
    eof_header: bool,
) -> Short {
    // 1 + 9 + 9 + 2 + 2 = 23 bytes at most.
    let mut p = Short {
        buf: [0; 24],
        len: 0,
    };
    p.push(&[if eof_header { 0xfe } else { 0x00 }]);
    for v in [affected, last_insert_id] {
        let (b, n) = lenenc_int(v);
        p.push(&b[..n]);
    }
    p.push(&status.to_le_bytes());
    p.push(&warnings.to_le_bytes());
    // The info text ("Records: 3  Duplicates: 0 …") follows: see [`with_info`].
    let _ = info;
    p
}

/// An OK packet with its info text after it, length-encoded as MariaDB writes it (only when
/// there is one: an empty text is left out, as MariaDB leaves it out).
pub fn with_info(ok: &[u8], info: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(ok.len() + info.len() + 9);
    p.extend_from_slice(ok);
    let (n, len) = super::codec::lenenc_int(info.len() as u64);
    p.extend_from_slice(&n[..len]);
    p.extend_from_slice(info.as_bytes());
    p
}

/// An OK packet with its info text (written even when empty) and session state changes
/// after it, for a client that tracks session state (the OK's status must say
/// `SERVER_SESSION_STATE_CHANGED`).
pub fn with_state(ok: &[u8], info: &str, state: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(ok.len() + info.len() + state.len() + 18);
    p.extend_from_slice(ok);
    super::codec::put_lenenc_str(&mut p, info.as_bytes());
    super::codec::put_lenenc_str(&mut p, state);
    p
}

/// The info text of a backend's OK packet read to the packet's end: MariaDB writes it
/// length-encoded, so a leading length that matches the rest is dropped.
pub fn info_text(raw: &str) -> &str {
    match raw.as_bytes().first() {
        Some(&n) if usize::from(n) == raw.len() - 1 && n < 251 => &raw[1..],
        _ => raw,
    }
}

/// The info texts of one statement run on several logical shards, as one server would have
/// written it for all their rows: each count summed (`Records: 5  Duplicates: 0  Warnings:
/// 0`, `Rows matched: 4  Changed: 2  Warnings: 0`). Empty when the texts do not have one
/// shape.
pub fn merged_info<'a>(infos: impl IntoIterator<Item = &'a str>) -> String {
    let mut shape: Option<Vec<(String, u64)>> = None;
    for raw in infos {
        let mut pairs = Vec::new();
        for part in info_text(raw).split("  ").filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once(": ") else {
                return String::new();
            };
            let Ok(v) = v.trim().parse::<u64>() else {
                return String::new();
            };
            pairs.push((k.to_string(), v));
        }
        match &mut shape {
            None => shape = Some(pairs),
            Some(s) => {
                if s.len() != pairs.len() || s.iter().zip(&pairs).any(|(a, b)| a.0 != b.0) {
                    return String::new();
                }
                for (a, b) in s.iter_mut().zip(pairs) {
                    a.1 += b.1;
                }
            }
        }
    }
    shape
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("  ")
}

#[cfg(test)]
mod extended_tests {
    use super::*;

    #[test]
    fn extended_type_information_is_added_or_dropped() {
        let mut d = ColumnDef::text("doc");
        d.extended = vec![1, 4, b'j', b's', b'o', b'n'];
        let (mut with, mut without) = (Vec::new(), Vec::new());
        d.encode(&mut with, true);
        d.encode(&mut without, false);
        assert_eq!(ColumnDef::decode(&with, true), Some(d.clone()));
        assert_eq!(
            ColumnDef::convert_extended(&with, true, false).as_deref(),
            Some(without.as_slice())
        );
        let mut empty = d.clone();
        empty.extended.clear();
        let mut with_empty = Vec::new();
        empty.encode(&mut with_empty, true);
        assert_eq!(
            ColumnDef::convert_extended(&without, false, true).as_deref(),
            Some(with_empty.as_slice())
        );
        assert_eq!(
            ColumnDef::convert_extended(&with, true, true).as_deref(),
            Some(with.as_slice())
        );
    }
}

#[cfg(test)]
mod info_tests {
    use super::*;

    #[test]
    fn info_texts_merge_by_shape() {
        assert_eq!(info_text("\x05abcde"), "abcde");
        assert_eq!(info_text("Records: 1"), "Records: 1");
        assert_eq!(
            merged_info([
                "Records: 3  Duplicates: 1  Warnings: 0",
                "\x26Records: 2  Duplicates: 0  Warnings: 1"
            ]),
            "Records: 5  Duplicates: 1  Warnings: 1"
        );
        assert_eq!(
            merged_info(["Rows matched: 1  Changed: 0  Warnings: 0"]),
            "Rows matched: 1  Changed: 0  Warnings: 0"
        );
        assert_eq!(merged_info(["Records: 1", "Rows matched: 1"]), "");
        assert_eq!(merged_info(["", ""]), "");
    }
}

/// Builds a classic EOF packet.
pub fn eof(status: u16, warnings: u16) -> Short {
    let mut p = Short {
        buf: [0; 24],
        len: 0,
    };
    p.push(&[0xfe]);
    p.push(&warnings.to_le_bytes());
    p.push(&status.to_le_bytes());
    p
}

/// Builds an ERR packet.
pub fn err(code: u16, sqlstate: &str, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(9 + message.len());
    p.push(0xff);
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    for (i, b) in sqlstate.bytes().take(5).enumerate() {
        state[i] = b;
    }
    p.extend_from_slice(&state);
    p.extend_from_slice(message.as_bytes());
    p
}

/// One column's definition, as sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub schema: Vec<u8>,
    pub table: Vec<u8>,
    pub org_table: Vec<u8>,
    pub name: Vec<u8>,
    pub org_name: Vec<u8>,
    pub charset: u16,
    pub length: u32,
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
    /// MariaDB's extended type information (`MARIADB_CLIENT_EXTENDED_METADATA`), as the
    /// server wrote it: typed, length-prefixed strings (`0x01 "json"`: format json).
    pub extended: Vec<u8>,
}

impl ColumnDef {
    /// A string column made by the router itself (e.g. `SHOW DATABASES`).
    pub fn text(name: &str) -> Self {
        ColumnDef {
            schema: Vec::new(),
            table: Vec::new(),
            org_table: Vec::new(),
            name: name.as_bytes().to_vec(),
            org_name: name.as_bytes().to_vec(),
            charset: u16::from(UTF8MB4_GENERAL_CI),
            length: 256,
            column_type: TYPE_VAR_STRING,
            flags: 0,
            decimals: 0,
            extended: Vec::new(),
        }
    }

    /// A BIGINT column made by the router itself.
    pub fn bigint(name: &str) -> Self {
        ColumnDef {
            charset: BINARY_CHARSET,
            length: 21,
            column_type: TYPE_LONGLONG,
            flags: 0x80, // BINARY_FLAG, as MariaDB marks numbers
            ..ColumnDef::text(name)
        }
    }

    /// Reads a `ColumnDefinition41` payload; `None` when it is malformed.
    pub fn decode(p: &[u8], extended: bool) -> Option<Self> {
        let mut c = super::codec::Cursor::new(p);
        let _catalog = c.lenenc_str()?;
        let schema = c.lenenc_str()?.to_vec();
        let table = c.lenenc_str()?.to_vec();
        let org_table = c.lenenc_str()?.to_vec();
        let name = c.lenenc_str()?.to_vec();
        let org_name = c.lenenc_str()?.to_vec();
        let extended = match extended {
            true => c.lenenc_str()?.to_vec(),
            false => Vec::new(),
        };
        let _fixed_len = c.lenenc_int()?;
        Some(ColumnDef {
            schema,
            table,
            org_table,
            name,
            org_name,
            charset: c.u16()?,
            length: c.u32()?,
            column_type: c.u8()?,
            flags: c.u16()?,
            decimals: c.u8()?,
            extended,
        })
    }

    /// A backend's column definition `p` (with the extended field when `from_extended`) as a
    /// client reads it (with one when `to_extended`): the field dropped, or an empty one
    /// added, after the names.
    pub fn convert_extended(
        p: &[u8],
        from_extended: bool,
        to_extended: bool,
    ) -> Option<std::borrow::Cow<'_, [u8]>> {
        use std::borrow::Cow;
        if from_extended == to_extended {
            return Some(Cow::Borrowed(p));
        }
        let mut c = super::codec::Cursor::new(p);
        for _ in 0..6 {
            c.lenenc_str()?;
        }
        let at = p.len() - c.remaining();
        let mut out = Vec::with_capacity(p.len() + 1);
        out.extend_from_slice(&p[..at]);
        if from_extended {
            c.lenenc_str()?;
        } else {
            out.push(0);
        }
        out.extend_from_slice(&p[p.len() - c.remaining()..]);
        Some(Cow::Owned(out))
    }

    /// A `ColumnDefinition41` packet `p` with its schema name mapped by `map`: `p` itself
    /// when the name stays as it is (the packet is passed on as the server sent it), `None`
    /// when `p` is malformed.
    pub fn remap_schema<'p>(
        p: &'p [u8],
        map: impl for<'s> Fn(&'s str) -> std::borrow::Cow<'s, str>,
    ) -> Option<std::borrow::Cow<'p, [u8]>> {
        use std::borrow::Cow;
        let mut c = super::codec::Cursor::new(p);
        c.lenenc_str()?;
        let start = p.len() - c.remaining();
        let schema = c.lenenc_str()?;
        let end = p.len() - c.remaining();
        if schema.is_empty() {
            return Some(Cow::Borrowed(p));
        }
        let name = String::from_utf8_lossy(schema);
        let mapped = map(&name);
        if mapped.as_bytes() == schema {
            return Some(Cow::Borrowed(p));
        }
        let mut out = Vec::with_capacity(p.len() + mapped.len());
        out.extend_from_slice(&p[..start]);
        put_lenenc_str(&mut out, mapped.as_bytes());
        out.extend_from_slice(&p[end..]);
        Some(Cow::Owned(out))
    }

    /// Appends the `ColumnDefinition41` encoding (with MariaDB's extended field for a client
    /// that asked for it).
    pub fn encode(&self, p: &mut Vec<u8>, extended: bool) {
        put_lenenc_str(p, b"def");
        put_lenenc_str(p, &self.schema);
        put_lenenc_str(p, &self.table);
        put_lenenc_str(p, &self.org_table);
        put_lenenc_str(p, &self.name);
        put_lenenc_str(p, &self.org_name);
        if extended {
            put_lenenc_str(p, &self.extended);
        }
        p.push(0x0c);
        p.extend_from_slice(&self.charset.to_le_bytes());
        p.extend_from_slice(&self.length.to_le_bytes());
        p.push(self.column_type);
        p.extend_from_slice(&self.flags.to_le_bytes());
        p.push(self.decimals);
        p.extend_from_slice(&[0, 0]);
    }
}

/// Appends one text-protocol value (NULL as 0xfb).
pub fn put_text_value(p: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => put_lenenc_str(p, b),
        None => p.push(0xfb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column of a logical shard's table, as its server describes it.
    fn sample() -> ColumnDef {
        ColumnDef {
            schema: b"shop_0003".to_vec(),
            table: b"c".to_vec(),
            org_table: b"customers".to_vec(),
            name: b"n".to_vec(),
            org_name: b"name".to_vec(),
            charset: 45,
            length: 1020,
            column_type: TYPE_VAR_STRING,
            flags: 0x1001,
            decimals: 0,
            extended: Vec::new(),
        }
    }

    #[test]
    fn column_definitions_round_trip() {
        let d = sample();
        let mut p = Vec::new();
        d.encode(&mut p, false);
        assert_eq!(ColumnDef::decode(&p, false), Some(d));
        for n in 0..p.len() - 3 {
            assert_eq!(ColumnDef::decode(&p[..n], false), None, "truncated at {n}");
        }
    }

    #[test]
    fn schema_names_are_mapped_in_passed_on_definitions() {
        let mut d = sample();
        let mut p = Vec::new();
        d.encode(&mut p, false);
        fn to_keyspace(s: &str) -> std::borrow::Cow<'_, str> {
            s.strip_suffix("_0003").unwrap_or(s).into()
        }
        let mapped = ColumnDef::remap_schema(&p, to_keyspace).expect("well formed");
        assert!(matches!(mapped, std::borrow::Cow::Owned(_)));
        d.schema = b"shop".to_vec();
        assert_eq!(ColumnDef::decode(&mapped, false), Some(d.clone()));
        // A schema that stays as it is: the very packet.
        let same = ColumnDef::remap_schema(&mapped, to_keyspace).expect("well formed");
        assert!(matches!(same, std::borrow::Cow::Borrowed(b) if b == &mapped[..]));
        // No schema (an expression column): as it came.
        d.schema = Vec::new();
        p.clear();
        d.encode(&mut p, false);
        let none = ColumnDef::remap_schema(&p, |_| "x".into()).expect("well formed");
        assert!(matches!(none, std::borrow::Cow::Borrowed(_)));
        // Truncated before the schema ends: malformed.
        assert!(ColumnDef::remap_schema(&p[..2], to_keyspace).is_none());
        assert!(ColumnDef::remap_schema(&[], to_keyspace).is_none());
    }
}
