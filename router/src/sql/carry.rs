//! String literals carried past the SQL parser as the client's own bytes.
//!
//! The planner parses UTF-8 text with MySQL's default escapes. A statement may hold string
//! literals that it would misread or cannot read at all: bytes that are not UTF-8
//! (`_binary'…'`, a latin1 client's `'café'`), a character set other than the one the bytes
//! would be read in (any non-ASCII literal of a latin1 client, `_latin1'…'`), a backslash that
//! `NO_BACKSLASH_ESCAPES` makes a plain character. [`carry`] replaces each such literal, for
//! the planner only, by a *stand-in* that means the same value to the router:
//!
//! - the value as a UTF-8 string literal, when it is text in a character set the router
//!   decodes exactly ([`Text`]) and holds no quote, backslash or control character — so a
//!   shard key routes by its real value, as a client in `utf8mb4` writing the same value would
//!   route it;
//! - else a hex literal of the value's bytes, which routes nothing (a read over such a key
//!   goes to every logical shard, whose servers compare it; a write that needs its shard is
//!   refused).
//!
//! [`Held::restore`] puts every stand-in in a planned statement back as the literal's bytes as
//! the client sent them (introducer included), so what the backend runs is what the client
//! wrote, read in the session's own character set. What cannot be carried this way is refused
//! with an error, never changed: a stand-in that another literal of the statement already
//! spells, non-ASCII bytes outside literals in a character set other than UTF-8.

use super::lex::{self, Kind, Mode, Text};
use crate::error::SqlError;

/// The literals [`carry`] replaced: each stand-in with the client's bytes it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    stand_ins: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether stand-ins may hold non-ASCII text (a client set other than UTF-8): then no
    /// non-ASCII byte may be left in a planned statement outside a stand-in.
    decoded: bool,
}

/// A statement ready for the planner, and what it holds back.
#[derive(Debug)]
pub struct Carried {
    pub text: String,
    pub held: Held,
}

fn refused(what: &str) -> SqlError {
    SqlError::unsupported(format!(
        "{what} in a statement over a sharded keyspace (send such values as prepared-statement parameters)"
    ))
}

/// Makes `sql` readable to the planner (see the module's text), or `None` when it already is.
///
/// # Errors
/// A refusal (1235) for what cannot be carried exactly.
pub fn carry(sql: &[u8], mode: &Mode) -> Result<Option<Carried>, SqlError> {
    if sql.is_ascii() && !(mode.no_backslash_escapes && sql.contains(&b'\\')) {
        return Ok(None);
    }
    let toks = lex::lex(sql, mode);
    let mut text: Vec<u8> = Vec::with_capacity(sql.len() + 16);
    let mut held = Held {
        stand_ins: Vec::new(),
        decoded: mode.text != Text::Utf8,
    };
    // Byte ranges of `text` that hold a stand-in.
    let mut ours: Vec<(usize, usize)> = Vec::new();
    let mut copied = 0;
    for (i, t) in toks.iter().enumerate() {
        let raw = t.bytes(sql);
        if t.kind == Kind::String {
            let introducer = introducer(sql, &toks, i);
            let utf8 = introducer.map_or(mode.text, |(_, cs)| cs) == Text::Utf8;
            // In a session whose text is not UTF-8, every non-ASCII literal is carried, so
            // that a planned statement holds non-ASCII bytes only in stand-ins.
            let needs = !(raw.is_ascii()
                || utf8 && mode.text == Text::Utf8 && std::str::from_utf8(raw).is_ok())
                || (mode.no_backslash_escapes && raw.contains(&b'\\'));
            if !needs {
                continue;
            }
            let from = introducer.map_or(t.start, |(at, _)| at);
            let text_of = introducer.map_or(mode.text, |(_, cs)| cs);
            let value = super::classify::unquote(raw, mode);
            let stand_in = stand_in(&value, text_of);
            text.extend_from_slice(&sql[copied..from]);
            ours.push((text.len(), text.len() + stand_in.len()));
            text.extend_from_slice(&stand_in);
            copied = t.end;
            let original = sql[from..t.end].to_vec();
            match held.stand_ins.iter().find(|(s, _)| *s == stand_in) {
                Some((_, o)) if *o != original => {
                    return Err(refused(
                        "two literals of the same value in different spellings",
                    ))
                }
                Some(_) => {}
                None => held.stand_ins.push((stand_in, original)),
            }
        } else if !raw.is_ascii() {
            match t.kind {
                // A quote or comment the text ends inside: a syntax error either way, so
                // the planner gets one it can read.
                Kind::Unterminated => {
                    text.extend_from_slice(&sql[copied..t.start]);
                    text.push(raw[0]);
                    copied = t.end;
                }
                // Comments mean nothing to the planner: blanked when they would not read.
                Kind::LineComment | Kind::BlockComment
                    if mode.text != Text::Utf8 || std::str::from_utf8(raw).is_err() =>
                {
                    text.extend_from_slice(&sql[copied..t.start]);
                    text.push(b' ');
                    copied = t.end;
                }
                _ if mode.text != Text::Utf8 => return Err(refused(
                    "non-ASCII text outside string literals in a character set other than UTF-8",
                )),
                _ => {}
            }
        }
    }
    if held.stand_ins.is_empty() && copied == 0 {
        return Ok(None);
    }
    text.extend_from_slice(&sql[copied..]);
    let text = String::from_utf8(text).map_err(|_| refused("text that is not valid UTF-8"))?;
    // No literal the client wrote may read as a stand-in: it would be put back as another. And
    // each stand-in must read as one literal of its own (not run into a word or a string
    // written against it).
    let toks = lex::lex(text.as_bytes(), &Mode::default());
    for t in &toks {
        if matches!(t.kind, Kind::String | Kind::Hex)
            && !ours.iter().any(|&(s, e)| s == t.start && e == t.end)
            && held.is_stand_in(t.bytes(text.as_bytes()))
        {
            return Err(refused("a literal spelled like another literal's stand-in"));
        }
    }
    if !ours.iter().all(|&(s, e)| {
        toks.iter()
            .any(|t| t.start == s && t.end == e && matches!(t.kind, Kind::String | Kind::Hex))
    }) {
        return Err(refused(
            "a string literal written against a word or another literal",
        ));
    }
    Ok(Some(Carried { text, held }))
}

/// The introducer (`_latin1`, `N`) right before the string token at `i`: where it starts, and
/// the set it names.
fn introducer(sql: &[u8], toks: &[lex::Token], i: usize) -> Option<(usize, Text)> {
    let mut j = i.checked_sub(1)?;
    while toks[j].kind == Kind::Space {
        j = j.checked_sub(1)?;
    }
    let t = toks[j];
    if t.kind != Kind::Word {
        return None;
    }
    let w = t.bytes(sql);
    if w.eq_ignore_ascii_case(b"N") {
        return Some((t.start, Text::Utf8));
    }
    let name = std::str::from_utf8(w.strip_prefix(b"_")?).ok()?;
    Some((t.start, Text::of(name)))
}

/// The stand-in of a literal whose value is `value` in set `text`.
fn stand_in(value: &[u8], text: Text) -> Vec<u8> {
    let decoded: Option<String> = match text {
        Text::Utf8 => std::str::from_utf8(value).ok().map(str::to_string),
        Text::Ascii => std::str::from_utf8(value)
            .ok()
            .filter(|v| v.is_ascii())
            .map(str::to_string),
        Text::Latin1 => Some(value.iter().map(|&b| latin1_char(b)).collect()),
        Text::Binary | Text::Other => None,
    };
    match decoded {
        Some(s) if !s.chars().any(|c| c == '\'' || c == '\\' || c.is_control()) => {
            let mut out = Vec::with_capacity(s.len() + 2);
            out.push(b'\'');
            out.extend_from_slice(s.as_bytes());
            out.push(b'\'');
            out
        }
        _ => {
            let mut out = Vec::with_capacity(value.len() * 2 + 3);
            out.extend_from_slice(b"X'");
            for b in value {
                out.extend_from_slice(format!("{b:02X}").as_bytes());
            }
            out.push(b'\'');
            out
        }
    }
}

/// MariaDB's `latin1` (cp1252; the five bytes cp1252 leaves undefined are the C1 controls).
fn latin1_char(b: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9f => char::from_u32(u32::from(HIGH[usize::from(b - 0x80)])).unwrap_or('?'),
        _ => char::from(b),
    }
}

impl Held {
    /// Whether no literal is held (only comments were blanked).
    pub fn is_empty(&self) -> bool {
        self.stand_ins.is_empty()
    }

    fn is_stand_in(&self, tok: &[u8]) -> bool {
        self.original(tok).is_some()
    }

    fn original(&self, tok: &[u8]) -> Option<&[u8]> {
        self.stand_ins
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(tok))
            .map(|(_, o)| o.as_slice())
    }

    /// A planned statement with every stand-in put back as the client's bytes.
    ///
    /// # Errors
    /// A refusal when the planner copied a stand-in's text anywhere but as a literal (an
    /// alias, say), where it cannot be put back.
    pub fn restore(&self, planned: &str) -> Result<Vec<u8>, SqlError> {
        let b = planned.as_bytes();
        let mut out = Vec::with_capacity(b.len() + 16);
        let mut copied = 0;
        for t in lex::lex(b, &Mode::default()) {
            if !matches!(t.kind, Kind::String | Kind::Hex) {
                if self.decoded && !t.bytes(b).is_ascii() {
                    return Err(refused("a literal the router had to copy"));
                }
                continue;
            }
            if let Some(o) = self.original(t.bytes(b)) {
                out.extend_from_slice(&b[copied..t.start]);
                out.extend_from_slice(o);
                copied = t.end;
            } else if self.decoded && !t.bytes(b).is_ascii() {
                return Err(refused("a literal the router had to copy"));
            }
        }
        out.extend_from_slice(&b[copied..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(cs: &str, nbe: bool) -> Mode {
        let mut m = Mode {
            no_backslash_escapes: nbe,
            ..Mode::default()
        };
        m.set_charset(cs);
        m
    }

    #[test]
    fn ascii_and_utf8_text_pass_unchanged() {
        let m = mode("utf8mb4", false);
        assert!(carry(b"SELECT 'a\\'b' FROM t", &m).expect("ok").is_none());
        assert!(carry("SELECT 'café' FROM t".as_bytes(), &m)
            .expect("ok")
            .is_none());
    }

    #[test]
    fn binary_bytes_stand_in_as_hex_and_come_back() {
        let m = mode("utf8mb4", false);
        let sql = b"INSERT INTO t (id, b) VALUES (1, _binary'\x80\xff\\'\\0')";
        let c = carry(sql, &m).expect("ok").expect("carried");
        assert_eq!(c.text, "INSERT INTO t (id, b) VALUES (1, X'80FF2700')");
        let planned = c.text.replace("INTO t", "INTO `ks_0001`.t");
        assert_eq!(
            c.held.restore(&planned).expect("ok"),
            b"INSERT INTO `ks_0001`.t (id, b) VALUES (1, _binary'\x80\xff\\'\\0')".to_vec()
        );
    }

    #[test]
    fn latin1_text_stands_in_as_its_value() {
        let m = mode("latin1", false);
        // `é` in latin1, and bytes that read as UTF-8 `é` but mean `Ã©` to a latin1 client.
        let sql = b"SELECT * FROM t WHERE k = 'caf\xe9' OR k = '\xc3\xa9' OR k = '\x80'";
        let c = carry(sql, &m).expect("ok").expect("carried");
        assert_eq!(
            c.text,
            "SELECT * FROM t WHERE k = 'café' OR k = 'Ã©' OR k = '€'"
        );
        assert_eq!(c.held.restore(&c.text).expect("ok"), sql.to_vec());
        // Copied anywhere but as a literal: refused.
        assert!(c.held.restore("SELECT 1 AS `café`").is_err());
        // Non-ASCII outside literals: refused; in comments: blanked.
        assert!(carry(b"SELECT 1 AS `\xe9`", &m).is_err());
        let c = carry(b"SELECT 1 /* \xe9 */", &m)
            .expect("ok")
            .expect("carried");
        assert_eq!(c.text, "SELECT 1  ");
    }

    #[test]
    fn backslashes_under_no_backslash_escapes_are_plain() {
        let m = mode("utf8mb4", true);
        let sql = b"SELECT * FROM t WHERE k = 'a\\b'";
        let c = carry(sql, &m).expect("ok").expect("carried");
        assert_eq!(c.text, "SELECT * FROM t WHERE k = X'615C62'");
        assert_eq!(c.held.restore(&c.text).expect("ok"), sql.to_vec());
    }

    #[test]
    fn a_literal_spelled_like_a_stand_in_is_refused() {
        let m = mode("utf8mb4", false);
        assert!(carry(b"SELECT _binary'\x80', X'80'", &m).is_err());
        // The same literal twice is one stand-in.
        let c = carry(b"SELECT _binary'\x80', _binary'\x80'", &m)
            .expect("ok")
            .expect("carried");
        assert_eq!(c.text, "SELECT X'80', X'80'");
    }

    #[test]
    fn latin1_reads_as_mariadb_reads_it() {
        assert_eq!(latin1_char(0x80), '€');
        assert_eq!(latin1_char(0x81), '\u{81}');
        assert_eq!(latin1_char(0x9f), 'Ÿ');
        assert_eq!(latin1_char(0xe9), 'é');
    }
}
