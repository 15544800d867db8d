//! The binary protocol of prepared statements: `COM_STMT_EXECUTE` parameters decoded into SQL
//! literals, and text rows re-encoded as binary rows.

use super::codec::{put_lenenc_str, Cursor};

/// Column types (as in the protocol).
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

use types::*;

/// Quotes bytes as a SQL string literal that means exactly those bytes whatever the session's
/// `sql_mode`: printable UTF-8 without quotes or backslashes as `'…'`, anything else as a
/// hex literal with the connection's character set (`_utf8mb4 X'…'`), or plain `X'…'` for
/// bytes that are not UTF-8.
pub fn quote_bytes(b: &[u8], binary: bool) -> String {
    let plain = std::str::from_utf8(b).ok().filter(|s| {
        !binary
            && s.chars()
                .all(|c| c != '\'' && c != '\\' && c != '"' && !c.is_control())
    });
    if let Some(s) = plain {
        return format!("'{s}'");
    }
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    if binary || std::str::from_utf8(b).is_err() {
        format!("X'{hex}'")
    } else if b.is_empty() {
        "''".to_string()
    } else {
        format!("_utf8mb4 X'{hex}'")
    }
}

/// Decodes one binary parameter into a SQL literal.
///
/// Returns `None` for a malformed value.
pub fn param_literal(c: &mut Cursor<'_>, ty: u8, unsigned: bool) -> Option<String> {
    Some(match ty {
        NULL => "NULL".to_string(),
        TINY => {
            let v = c.u8()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i8).to_string()
            }
        }
        SHORT | YEAR => {
            let v = c.u16()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i16).to_string()
            }
        }
        LONG | INT24 => {
            let v = c.u32()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i32).to_string()
            }
        }
        LONGLONG => {
            let b = c.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            if unsigned {
                u64::from_le_bytes(a).to_string()
            } else {
                i64::from_le_bytes(a).to_string()
            }
        }
        FLOAT => {
            let v = f32::from_bits(c.u32()?);
            float_literal(f64::from(v))?
        }
        DOUBLE => {
            let b = c.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            float_literal(f64::from_bits(u64::from_le_bytes(a)))?
        }
        DATE | DATETIME | TIMESTAMP | NEWDATE | DATETIME2 | TIMESTAMP2 => {
            let n = usize::from(c.u8()?);
            let b = c.take(n)?;
            let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut us) =
                (0u32, 0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
            if n >= 4 {
                y = u32::from(u16::from_le_bytes([b[0], b[1]]));
                mo = u32::from(b[2]);
                d = u32::from(b[3]);
            }
            if n >= 7 {
                h = u32::from(b[4]);
                mi = u32::from(b[5]);
                s = u32::from(b[6]);
            }
            if n >= 11 {
                us = u32::from_le_bytes([b[7], b[8], b[9], b[10]]);
            }
            if ty == DATE || ty == NEWDATE {
                format!("'{y:04}-{mo:02}-{d:02}'")
            } else if us > 0 {
                format!("'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'")
            } else {
                format!("'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}'")
            }
        }
        TIME | TIME2 => {
            let n = usize::from(c.u8()?);
            let b = c.take(n)?;
            if n == 0 {
                "'00:00:00'".to_string()
            } else if n >= 8 {
                let neg = b[0] == 1;
                // u64: a client may send any day count (MariaDB then judges the value).
                let days = u64::from(u32::from_le_bytes([b[1], b[2], b[3], b[4]]));
                let h = days * 24 + u64::from(b[5]);
                let us = if n >= 12 {
                    u32::from_le_bytes([b[8], b[9], b[10], b[11]])
                } else {
                    0
                };
                let sign = if neg { "-" } else { "" };
                if us > 0 {
                    format!("'{sign}{h:02}:{:02}:{:02}.{us:06}'", b[6], b[7])
                } else {
                    format!("'{sign}{h:02}:{:02}:{:02}'", b[6], b[7])
                }
            } else {
                return None;
            }
        }
        DECIMAL | NEWDECIMAL => {
            let b = c.lenenc_str()?;
            let s = std::str::from_utf8(b).ok()?;
            if !s.is_empty()
                && s.bytes()
                    .all(|x| x.is_ascii_digit() || matches!(x, b'-' | b'+' | b'.' | b'e' | b'E'))
            {
                s.to_string()
            } else {
                return None;
            }
        }
        TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | GEOMETRY | BIT => {
            quote_bytes(c.lenenc_str()?, true)
        }
        _ => quote_bytes(c.lenenc_str()?, false),
    })
}

fn float_literal(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    // Scientific notation makes MariaDB read a DOUBLE, as the client sent.
    Some(format!("{v:e}"))
}

/// Appends `text` (a text-protocol value) to `out` in the binary encoding of `ty`.
fn put_binary(out: &mut Vec<u8>, ty: u8, unsigned: bool, text: &[u8]) {
    let s = std::str::from_utf8(text).unwrap_or("");
    let int = || -> i128 { s.trim().parse::<i128>().unwrap_or(0) };
    match ty {
        TINY => out.push(int() as u8),
        SHORT | YEAR => out.extend_from_slice(&(int() as u16).to_le_bytes()),
        LONG | INT24 => out.extend_from_slice(&(int() as u32).to_le_bytes()),
        LONGLONG => {
            let v = if unsigned {
                s.trim().parse::<u64>().unwrap_or(0)
            } else {
                int() as u64
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
        FLOAT => out.extend_from_slice(&s.trim().parse::<f32>().unwrap_or(0.0).to_le_bytes()),
        DOUBLE => out.extend_from_slice(&s.trim().parse::<f64>().unwrap_or(0.0).to_le_bytes()),
        DATE | DATETIME | TIMESTAMP | NEWDATE | DATETIME2 | TIMESTAMP2 => {
            let (date, time) = s.split_once(' ').unwrap_or((s, ""));
            let mut d = date.split('-').map(|x| x.parse::<u32>().unwrap_or(0));
            let (y, mo, dd) = (
                d.next().unwrap_or(0),
                d.next().unwrap_or(0),
                d.next().unwrap_or(0),
            );
            let (h, mi, se, us) = hms_micros(time);
            if y == 0 && mo == 0 && dd == 0 && h == 0 && mi == 0 && se == 0 && us == 0 {
                out.push(0);
            } else if h == 0 && mi == 0 && se == 0 && us == 0 {
                out.push(4);
                out.extend_from_slice(&(y as u16).to_le_bytes());
                out.extend_from_slice(&[mo as u8, dd as u8]);
            } else {
                out.push(if us > 0 { 11 } else { 7 });
                out.extend_from_slice(&(y as u16).to_le_bytes());
                out.extend_from_slice(&[mo as u8, dd as u8, h as u8, mi as u8, se as u8]);
                if us > 0 {
                    out.extend_from_slice(&us.to_le_bytes());
                }
            }
        }
        TIME | TIME2 => {
            let (neg, rest) = match s.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, s),
            };
            let (h, mi, se, us) = hms_micros(rest);
            if h == 0 && mi == 0 && se == 0 && us == 0 {
                out.push(0);
            } else {
                out.push(if us > 0 { 12 } else { 8 });
                out.push(u8::from(neg));
                out.extend_from_slice(&(h / 24).to_le_bytes());
                out.extend_from_slice(&[(h % 24) as u8, mi as u8, se as u8]);
                if us > 0 {
                    out.extend_from_slice(&us.to_le_bytes());
                }
            }
        }
        _ => put_lenenc_str(out, text),
    }
}

/// Parses `HH:MM:SS[.ffffff]` (hours may exceed 23) into its parts and microseconds.
fn hms_micros(t: &str) -> (u32, u32, u32, u32) {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut p = hms.split(':').map(|x| x.parse::<u32>().unwrap_or(0));
    let (h, mi, se) = (
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
    );
    let us = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")
            .get(..6)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    };
    (h, mi, se, us)
}

/// Re-encodes a text-protocol row (`values` as in a text row packet) as a binary row.
///
/// Returns `None` if the text row is malformed.
pub fn text_row_to_binary(row: &[u8], cols: &[(u8, bool)], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    out.push(0x00);
    let bitmap_len = (cols.len() + 7 + 2) / 8;
    let bitmap_at = out.len();
    out.resize(bitmap_at + bitmap_len, 0);
    let mut c = Cursor::new(row);
    for (i, (ty, unsigned)) in cols.iter().enumerate() {
        let rest = row.len() - c.remaining();
        if row.get(rest) == Some(&0xfb) {
            c.u8()?;
            let bit = i + 2;
            out[bitmap_at + bit / 8] |= 1 << (bit % 8);
            continue;
        }
        let v = c.lenenc_str()?;
        put_binary(out, *ty, *unsigned, v);
    }
    Some(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_time_parameter_of_any_day_count_is_a_literal() {
        // 8 bytes: not negative, u32::MAX days, 255 hours, 1 minute, 2 seconds.
        let p = [8u8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2];
        let mut c = Cursor::new(&p);
        let lit = param_literal(&mut c, 11, false).expect("a literal");
        assert_eq!(lit, format!("'{}:01:02'", u64::from(u32::MAX) * 24 + 255));
    }

    use super::*;

    #[test]
    fn literals() {
        assert_eq!(quote_bytes(b"abc", false), "'abc'");
        assert_eq!(quote_bytes(b"it's", false), "_utf8mb4 X'69742773'");
        assert_eq!(quote_bytes(&[0xff], false), "X'FF'");
        let mut c = Cursor::new(&[0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(param_literal(&mut c, LONG, false).as_deref(), Some("-2"));
        let mut c = Cursor::new(&[4, 0xea, 0x07, 11, 24]);
        assert_eq!(
            param_literal(&mut c, DATE, false).as_deref(),
            Some("'2026-11-24'")
        );
        let b = 1.5f64.to_bits().to_le_bytes();
        let mut c = Cursor::new(&b);
        assert_eq!(
            param_literal(&mut c, DOUBLE, false).as_deref(),
            Some("1.5e0")
        );
    }

    #[test]
    fn rows_convert() {
        let mut text = Vec::new();
        crate::wire::resultset::put_text_value(&mut text, Some(b"-5"));
        crate::wire::resultset::put_text_value(&mut text, None);
        crate::wire::resultset::put_text_value(&mut text, Some(b"hi"));
        crate::wire::resultset::put_text_value(&mut text, Some(b"2026-11-24 10:00:00"));
        let mut out = Vec::new();
        text_row_to_binary(
            &text,
            &[
                (LONG, false),
                (LONG, false),
                (VAR_STRING, false),
                (DATETIME, false),
            ],
            &mut out,
        )
        .expect("row");
        assert_eq!(out[0], 0);
        assert_eq!(out[1], 0b0000_1000);
        assert_eq!(&out[2..6], &(-5i32 as u32).to_le_bytes());
        assert_eq!(&out[6..9], &[2, b'h', b'i']);
        assert_eq!(out[9], 7);
    }
}
