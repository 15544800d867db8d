//! The byte-level lexer: the one reading of a statement's bytes that the router's front end
//! shares (comments, statement splitting, classification, the trust scope). It reads the
//! bytes as MariaDB's own lexer does for the session: multi-byte characters of the client's
//! character set are skipped whole (an `sjis`, `gbk` or `big5` character's second byte may be
//! `\` or `'`), backslashes escape in strings unless `NO_BACKSLASH_ESCAPES`, `"` quotes an
//! identifier under `ANSI_QUOTES`, and the text of an executable comment (`/*!NNNNN … */`,
//! `/*M!NNNNNN … */`) is read as tokens when the server's version runs it. Nothing here needs
//! the text to be valid UTF-8 or valid SQL: every byte string lexes.

/// How the client's character set shapes lexing: which bytes start a two-byte character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// Single-byte sets, `binary`, and UTF-8 (whose bytes past the first are never ASCII).
    #[default]
    Plain,
    /// `sjis`, `cp932`.
    Sjis,
    /// `gbk`, `gb2312`, `gb18030` (its four-byte characters read as two pairs).
    Gbk,
    /// `big5`.
    Big5,
}

impl Charset {
    /// The lexing class of a MariaDB character set name.
    pub fn of(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "sjis" | "cp932" => Charset::Sjis,
            "gbk" | "gb2312" | "gb18030" => Charset::Gbk,
            "big5" => Charset::Big5,
            _ => Charset::Plain,
        }
    }

    /// The length of the character starting at `b[i]`: 2 for a lead byte followed by a valid
    /// second byte, 1 otherwise.
    pub(crate) fn char_len(self, b: &[u8], i: usize) -> usize {
        let (lead, second) = (b[i], b.get(i + 1).copied());
        let Some(s) = second else { return 1 };
        let two = match self {
            Charset::Plain => false,
            Charset::Sjis => {
                matches!(lead, 0x81..=0x9f | 0xe0..=0xfc) && matches!(s, 0x40..=0x7e | 0x80..=0xfc)
            }
            Charset::Gbk => {
                matches!(lead, 0x81..=0xfe) && matches!(s, 0x30..=0x39 | 0x40..=0x7e | 0x80..=0xfe)
            }
            Charset::Big5 => matches!(lead, 0xa1..=0xf9) && matches!(s, 0x40..=0x7e | 0xa1..=0xfe),
        };
        if two {
            2
        } else {
            1
        }
    }
}

/// How the router reads the text of the client's string literals (`character_set_client`),
/// when it must know their values (a shard key's): only sets it decodes exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Text {
    /// `utf8mb4`, `utf8mb3`, `utf8`.
    #[default]
    Utf8,
    /// `latin1` (MariaDB's is cp1252, with the five bytes cp1252 leaves out as C1 controls).
    Latin1,
    /// `ascii`.
    Ascii,
    /// `binary`: a literal is its bytes.
    Binary,
    /// Any other set: its literals' values are not read by the router.
    Other,
}

impl Text {
    /// The reading of a MariaDB character set name.
    pub fn of(name: &str) -> Text {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf8mb3" | "utf8" => Text::Utf8,
            "latin1" => Text::Latin1,
            "ascii" => Text::Ascii,
            "binary" => Text::Binary,
            _ => Text::Other,
        }
    }
}

/// What the session's settings make of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub charset: Charset,
    /// How the values of string literals read (see [`Text`]).
    pub text: Text,
    /// `sql_mode` has `NO_BACKSLASH_ESCAPES`.
    pub no_backslash_escapes: bool,
    /// `sql_mode` has `ANSI_QUOTES`.
    pub ansi_quotes: bool,
    /// The backend's version as `/*!NNNNN` compares it (`101100` for 10.11.0).
    pub server_version: u32,
}

/// The oldest MariaDB the router supports: executable comments for newer versions are read as
/// plain comments, as that server reads them.
pub const SERVER_VERSION: u32 = 101100;

impl Mode {
    /// Takes the client's character set (`character_set_client`, or the one `SET NAMES`
    /// names).
    pub fn set_charset(&mut self, name: &str) {
        self.charset = Charset::of(name);
        self.text = Text::of(name);
    }
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            charset: Charset::Plain,
            text: Text::Utf8,
            no_backslash_escapes: false,
            ansi_quotes: false,
            server_version: SERVER_VERSION,
        }
    }
}

/// A token's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Spaces, tabs, newlines.
    Space,
    /// `-- …` or `# …` to the end of the line (newline included).
    LineComment,
    /// `/* … */`, or an executable comment the server does not run (its version is newer,
    /// or it holds nothing).
    BlockComment,
    /// The opening `/*!NNNNN` or `/*M!NNNNNN` of an executable comment the server runs; its
    /// text follows as tokens, up to [`Kind::ExecClose`].
    ExecOpen,
    /// The `*/` that closes an executable comment.
    ExecClose,
    /// A keyword or unquoted identifier (letters, digits, `_`, `$`, bytes ≥ 0x80).
    Word,
    /// A backtick-quoted identifier (or `"…"` under `ANSI_QUOTES`).
    QuotedIdent,
    /// A quoted string (`'…'`, or `"…"` without `ANSI_QUOTES`); an introducer (`_latin1`)
    /// or `N` before it is a [`Kind::Word`].
    String,
    /// A decimal number.
    Number,
    /// `X'…'`, `0x…`.
    Hex,
    /// `B'…'`, `0b…`.
    Bits,
    /// `@name`, `@'name'`, `@`name``.
    UserVar,
    /// `@@name` (a following `.name` lexes on its own).
    SysVar,
    /// `?`.
    Placeholder,
    /// `;`.
    Semicolon,
    /// Any other byte: operators and punctuation, one byte each.
    Punct,
    /// A quote, backtick or comment that the text ends inside.
    Unterminated,
}

/// A token: its kind and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The token's bytes in `sql`.
    pub fn bytes<'s>(&self, sql: &'s [u8]) -> &'s [u8] {
        &sql[self.start..self.end]
    }

    /// Whether this is the word `w` (ASCII, any case).
    pub fn is_word(&self, sql: &[u8], w: &str) -> bool {
        self.kind == Kind::Word && self.bytes(sql).eq_ignore_ascii_case(w.as_bytes())
    }

    /// Whether the token means nothing to the server (whitespace, comments not run).
    pub fn is_blank(&self) -> bool {
        matches!(
            self.kind,
            Kind::Space | Kind::LineComment | Kind::BlockComment
        )
    }

    /// The word upper-cased (keywords are compared this way); `None` for another kind of token,
    /// or a word that is not valid UTF-8 (it is no keyword, and its bytes are never rewritten).
    pub fn upper_word(&self, sql: &[u8]) -> Option<String> {
        if self.kind != Kind::Word {
            return None;
        }
        std::str::from_utf8(self.bytes(sql))
            .ok()
            .map(str::to_ascii_uppercase)
    }

    /// Whether this token names identifier `name` (ASCII case-insensitively; a quoted one
    /// without doubled quotes inside), without allocating.
    pub fn ident_is(&self, sql: &[u8], name: &str) -> bool {
        let b = self.bytes(sql);
        match self.kind {
            Kind::Word => b.eq_ignore_ascii_case(name.as_bytes()),
            Kind::QuotedIdent => {
                b.len() >= 2 && b[1..b.len() - 1].eq_ignore_ascii_case(name.as_bytes())
            }
            _ => false,
        }
    }

    /// The identifier this token names (a word, or a quoted identifier unquoted), as bytes.
    pub fn ident(&self, sql: &[u8]) -> Option<Vec<u8>> {
        match self.kind {
            Kind::Word => Some(self.bytes(sql).to_vec()),
            Kind::QuotedIdent => {
                let b = self.bytes(sql);
                let q = b[0];
                let inner = &b[1..b.len() - 1];
                let mut out = Vec::with_capacity(inner.len());
                let mut i = 0;
                while i < inner.len() {
                    out.push(inner[i]);
                    i += if inner[i] == q { 2 } else { 1 };
                }
                Some(out)
            }
            _ => None,
        }
    }
}

/// Lexes `sql` as a whole.
pub fn lex(sql: &[u8], mode: &Mode) -> Vec<Token> {
    Lexer::new(sql, *mode).collect()
}

/// The tokens of `sql`, one at a time.
pub struct Lexer<'s> {
    b: &'s [u8],
    i: usize,
    mode: Mode,
    /// Inside a running executable comment.
    in_exec: bool,
    /// The last token that was not blank (for `.` after a name and `-` before a number).
    prev: Option<Kind>,
}

fn word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl<'s> Lexer<'s> {
    pub fn new(b: &'s [u8], mode: Mode) -> Self {
        Lexer {
            b,
            i: 0,
            mode,
            in_exec: false,
            prev: None,
        }
    }

    /// Past a quoted run that starts at `self.i` with quote `q`; `false` when the text ends
    /// inside it.
    fn quoted(&mut self, q: u8, escapes: bool) -> bool {
        let b = self.b;
        if self.mode.charset == Charset::Plain {
            return self.quoted_plain(q, escapes);
        }
        let mut i = self.i + 1;
        while i < b.len() {
            let c = b[i];
            if c == q {
                if b.get(i + 1) == Some(&q) {
                    i += 2;
                    continue;
                }
                self.i = i + 1;
                return true;
            }
            if c == b'\\' && escapes {
                // The escaped character may itself be a multi-byte one.
                i += 1;
                if i < b.len() {
                    i += self.mode.charset.char_len(b, i);
                }
                continue;
            }
            i += self.mode.charset.char_len(b, i);
        }
        self.i = b.len();
        false
    }

    /// [`Lexer::quoted`] for a character set whose multi-byte characters hold no ASCII byte
    /// (UTF-8, the single-byte sets): straight to the next quote or backslash. Dump rows are
    /// mostly long strings, and this is most of what reading them costs.
    fn quoted_plain(&mut self, q: u8, escapes: bool) -> bool {
        let b = self.b;
        let mut i = self.i + 1;
        while i < b.len() {
            let found = if escapes {
                memchr::memchr2(q, b'\\', &b[i..])
            } else {
                memchr::memchr(q, &b[i..])
            };
            let Some(p) = found else { break };
            let j = i + p;
            if b[j] == q {
                if b.get(j + 1) == Some(&q) {
                    i = j + 2;
                    continue;
                }
                self.i = j + 1;
                return true;
            }
            // A backslash: the byte after it is escaped (a multi-byte character's other
            // bytes are not ASCII, so they are never a quote or a backslash).
            i = j + 2;
        }
        self.i = b.len();
        false
    }

    /// Past a run of word bytes from `self.i` (multi-byte characters whole).
    fn word(&mut self) {
        let b = self.b;
        let mut i = self.i;
        while i < b.len() && word_byte(b[i]) {
            i += self.mode.charset.char_len(b, i);
        }
        self.i = i.min(b.len());
    }

    /// A comment or executable comment starting with `/*` at `self.i`.
    fn block(&mut self, start: usize) -> Kind {
        let b = self.b;
        let body = start + 2;
        let mut j = match (b.get(body), b.get(body + 1)) {
            (Some(b'!'), _) => body + 1,
            (Some(b'M'), Some(b'!')) => body + 2,
            _ => usize::MAX,
        };
        let close = b[body.min(b.len())..]
            .windows(2)
            .position(|w| w == b"*/")
            .map(|p| body + p);
        if j != usize::MAX && !self.in_exec {
            let digits = b[j.min(b.len())..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            // A version is five digits, or six when a sixth follows (`/*!100000`,
            // `/*M!100100`), with or without the `M`, as MariaDB's lexer reads it.
            let want = if digits >= 6 { 6 } else { 5 };
            let version: Option<u32> = if digits >= want {
                std::str::from_utf8(&b[j..j + want])
                    .ok()
                    .and_then(|v| v.parse().ok())
            } else {
                // No digits, or too few: MariaDB reads them as text of the comment.
                None
            };
            if digits >= want {
                j += want;
            }
            let runs = version.is_none_or(|v| v <= self.mode.server_version);
            let has_text = close
                .map(|c| &b[j.min(c)..c])
                .unwrap_or(&b[j.min(b.len())..])
                .iter()
                .any(|c| !c.is_ascii_whitespace());
            if runs && has_text && close.is_some() {
                self.i = j;
                self.in_exec = true;
                return Kind::ExecOpen;
            }
        }
        match close {
            Some(c) => {
                self.i = c + 2;
                Kind::BlockComment
            }
            None => {
                self.i = b.len();
                Kind::Unterminated
            }
        }
    }

    /// A token starting with a digit at `self.i` (or `.digit`): a number, `0x…`, `0b…`, or
    /// an identifier that starts with digits.
    fn number(&mut self) -> Kind {
        let b = self.b;
        let start = self.i;
        let run_end = |from: usize| {
            let mut i = from;
            while i < b.len() && word_byte(b[i]) {
                i += 1;
            }
            i
        };
        if b.get(start) == Some(&b'0') && matches!(b.get(start + 1), Some(b'x' | b'b')) {
            let end = run_end(start);
            let digits = &b[start + 2..end];
            let ok = !digits.is_empty()
                && if b[start + 1] == b'x' {
                    digits.iter().all(u8::is_ascii_hexdigit)
                } else {
                    digits.iter().all(|c| *c == b'0' || *c == b'1')
                };
            if ok {
                self.i = end;
                return if b[start + 1] == b'x' {
                    Kind::Hex
                } else {
                    Kind::Bits
                };
            }
        }
        let mut i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut k = i + 1;
            if matches!(b.get(k), Some(b'+' | b'-')) {
                k += 1;
            }
            if b.get(k).is_some_and(u8::is_ascii_digit) {
                i = k;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        if b.get(i).is_some_and(|&c| word_byte(c)) && !b[start..i].contains(&b'.') {
            // `1abc`: an identifier.
            self.i = start;
            self.word();
            return Kind::Word;
        }
        self.i = i;
        Kind::Number
    }

    fn next_kind(&mut self) -> Option<Kind> {
        let b = self.b;
        let start = self.i;
        let c = *b.get(start)?;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                let mut i = start + 1;
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                    i += 1;
                }
                self.i = i;
                Kind::Space
            }
            b'#' => self.line_comment(),
            b'-' if b.get(start + 1) == Some(&b'-')
                && b.get(start + 2).is_none_or(|&c| c <= b' ') =>
            {
                self.line_comment()
            }
            b'/' if b.get(start + 1) == Some(&b'*') => self.block(start),
            b'*' if self.in_exec && b.get(start + 1) == Some(&b'/') => {
                self.in_exec = false;
                self.i = start + 2;
                Kind::ExecClose
            }
            b'\'' => self.string(b'\''),
            b'"' if self.mode.ansi_quotes => self.ident(b'"'),
            b'"' => self.string(b'"'),
            b'`' => self.ident(b'`'),
            b'x' | b'X' | b'b' | b'B' if b.get(start + 1) == Some(&b'\'') => {
                self.i = start + 1;
                let closed = self.quoted(b'\'', false);
                if !closed {
                    Kind::Unterminated
                } else if c.eq_ignore_ascii_case(&b'x') {
                    Kind::Hex
                } else {
                    Kind::Bits
                }
            }
            b'0'..=b'9' => self.number(),
            // `.5` is a number, but `t.5c` names column `5c` of `t`.
            b'.' if b.get(start + 1).is_some_and(u8::is_ascii_digit)
                && !matches!(self.prev, Some(Kind::Word | Kind::QuotedIdent)) =>
            {
                self.number()
            }
            b'@' => {
                if b.get(start + 1) == Some(&b'@') {
                    self.i = start + 2;
                    if matches!(b.get(self.i), Some(b'`')) {
                        if !self.quoted(b'`', false) {
                            return Some(Kind::Unterminated);
                        }
                    } else {
                        self.word();
                    }
                    Kind::SysVar
                } else {
                    self.i = start + 1;
                    match b.get(self.i) {
                        Some(&q @ (b'\'' | b'"' | b'`')) => {
                            if !self.quoted(q, q != b'`' && !self.mode.no_backslash_escapes) {
                                return Some(Kind::Unterminated);
                            }
                        }
                        _ => {
                            let from = self.i;
                            while self.i < b.len() && (word_byte(b[self.i]) || b[self.i] == b'.') {
                                self.i += self.mode.charset.char_len(b, self.i);
                            }
                            self.i = self.i.min(b.len()).max(from);
                        }
                    }
                    Kind::UserVar
                }
            }
            b'?' => {
                self.i = start + 1;
                Kind::Placeholder
            }
            b';' => {
                self.i = start + 1;
                Kind::Semicolon
            }
            c if word_byte(c) => {
                self.word();
                Kind::Word
            }
            _ => {
                self.i = start + 1;
                Kind::Punct
            }
        };
        Some(kind)
    }

    fn line_comment(&mut self) -> Kind {
        let b = self.b;
        let from = self.i;
        self.i = b[from..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| from + p + 1);
        Kind::LineComment
    }

    fn string(&mut self, q: u8) -> Kind {
        if self.quoted(q, !self.mode.no_backslash_escapes) {
            Kind::String
        } else {
            Kind::Unterminated
        }
    }

    fn ident(&mut self, q: u8) -> Kind {
        if self.quoted(q, false) {
            Kind::QuotedIdent
        } else {
            Kind::Unterminated
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let start = self.i;
        let kind = self.next_kind()?;
        // Every token moves on by at least one byte.
        if self.i <= start {
            self.i = start + 1;
        }
        let t = Token {
            kind,
            start,
            end: self.i.min(self.b.len()),
        };
        if !t.is_blank() {
            self.prev = Some(kind);
        }
        Some(t)
    }
}

/// The tokens of `sql` that mean something to the server: blanks, and the markers of executable
/// comments, left out.
pub fn significant(sql: &[u8], mode: &Mode) -> Vec<Token> {
    let mut out = Vec::with_capacity(sql.len() / 4 + 4);
    out.extend(
        Lexer::new(sql, *mode)
            .filter(|t| !t.is_blank() && !matches!(t.kind, Kind::ExecOpen | Kind::ExecClose)),
    );
    out
}

/// `sql` with the markers of every executable comment the server runs (`/*!NNNNN`, `/*M!NNNNNN`
/// and their `*/`) blanked out with spaces, so that a reader that does not know them (the SQL
/// parser) sees the text MariaDB runs, at the same byte offsets; `None` when there are none.
pub fn unwrap_executable(sql: &[u8], mode: &Mode) -> Option<Vec<u8>> {
    let opens =
        memchr::memmem::find_iter(sql, b"/*").any(|i| matches!(sql.get(i + 2), Some(b'!' | b'M')));
    if !opens {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    for t in Lexer::new(sql, *mode) {
        if matches!(t.kind, Kind::ExecOpen | Kind::ExecClose) {
            let o = out.get_or_insert_with(|| sql.to_vec());
            o[t.start..t.end].fill(b' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &[u8], mode: Mode) -> Vec<(Kind, String)> {
        lex(sql, &mode)
            .into_iter()
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, String::from_utf8_lossy(t.bytes(sql)).into_owned()))
            .collect()
    }

    fn k(sql: &str) -> Vec<(Kind, String)> {
        kinds(sql.as_bytes(), Mode::default())
    }

    #[test]
    fn every_byte_string_lexes_to_its_whole_length() {
        let mut all: Vec<u8> = (0..=255u8).collect();
        all.extend_from_slice(b"'\\' \"x` /* -- #\n/*!40101 x */ @@ @` 0x 0b 1e+ .5 x'");
        for cs in [Charset::Plain, Charset::Sjis, Charset::Gbk, Charset::Big5] {
            for cut in 0..all.len() {
                let sql = &all[cut..];
                let m = Mode {
                    charset: cs,
                    ..Mode::default()
                };
                let toks = lex(sql, &m);
                let mut at = 0;
                for t in &toks {
                    assert_eq!(t.start, at);
                    assert!(t.end > t.start);
                    at = t.end;
                }
                assert_eq!(at, sql.len());
            }
        }
    }

    /// The quoted-run scan of the one-byte-safe character sets (straight to the next quote
    /// or backslash) ends every run where the byte-by-byte scan ends it.
    #[test]
    fn plain_quoted_runs_end_where_the_byte_scan_ends_them() {
        fn by_bytes(b: &[u8], start: usize, q: u8, escapes: bool) -> (usize, bool) {
            let mut i = start + 1;
            while i < b.len() {
                if b[i] == q {
                    if b.get(i + 1) == Some(&q) {
                        i += 2;
                        continue;
                    }
                    return (i + 1, true);
                }
                i += if b[i] == b'\\' && escapes { 2 } else { 1 };
            }
            (b.len(), false)
        }
        let alphabet = b"'\"\\`a \xc3\xa9\x00";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize + 1;
            let mut sql = vec![b'\''];
            let mut x = seed;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                sql.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            for escapes in [true, false] {
                let mode = Mode {
                    no_backslash_escapes: !escapes,
                    ..Mode::default()
                };
                let mut lx = Lexer::new(&sql, mode);
                let done = lx.quoted(b'\'', escapes);
                assert_eq!((lx.i, done), by_bytes(&sql, 0, b'\'', escapes), "{sql:?}");
            }
        }
    }

    #[test]
    fn strings_identifiers_and_comments() {
        assert_eq!(
            k("SELECT 'a''b\\'c', `x``y`, \"q\" -- c\n# d\n/* e */ 1"),
            vec![
                (Kind::Word, "SELECT".into()),
                (Kind::String, "'a''b\\'c'".into()),
                (Kind::Punct, ",".into()),
                (Kind::QuotedIdent, "`x``y`".into()),
                (Kind::Punct, ",".into()),
                (Kind::String, "\"q\"".into()),
                (Kind::LineComment, "-- c\n".into()),
                (Kind::LineComment, "# d\n".into()),
                (Kind::BlockComment, "/* e */".into()),
                (Kind::Number, "1".into()),
            ]
        );
        // `--` without a space after it is two minus signs.
        assert_eq!(k("1--1").len(), 4);
    }

    #[test]
    fn sql_mode_changes_quotes_and_escapes() {
        let nbe = Mode {
            no_backslash_escapes: true,
            ..Mode::default()
        };
        assert_eq!(
            kinds(b"'a\\' , 'b'", nbe),
            vec![
                (Kind::String, "'a\\'".into()),
                (Kind::Punct, ",".into()),
                (Kind::String, "'b'".into())
            ]
        );
        let ansi = Mode {
            ansi_quotes: true,
            ..Mode::default()
        };
        assert_eq!(kinds(b"\"t\"", ansi)[0].0, Kind::QuotedIdent);
    }

    #[test]
    fn multibyte_second_bytes_do_not_end_strings() {
        // sjis 0x95 0x5c is one character whose second byte is `\`; gbk 0xd5 0x27 holds `'`.
        let sql = b"SELECT '\x95\x5c' , 1";
        let sjis = Mode {
            charset: Charset::Sjis,
            ..Mode::default()
        };
        let t = kinds(sql, sjis);
        assert_eq!(t[1].0, Kind::String);
        assert_eq!(t.len(), 4);
        // Read as latin1 the backslash escapes the quote and the string runs on.
        assert_eq!(kinds(sql, Mode::default())[1].0, Kind::Unterminated);
        let gbk = Mode {
            charset: Charset::Gbk,
            ..Mode::default()
        };
        let t = kinds(b"SELECT '\xbf\x5c' , 1", gbk);
        assert_eq!(t[1].0, Kind::String);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn executable_comments_run_by_version() {
        // Five digits compare with the server's 101100 too: `/*!99999` runs on MariaDB 10.x.
        let t = k("/*!40101 SET x=1 */ /*!99999 y */ /*M!100100 z */ /*M!999999 w */");
        assert_eq!(k("/*!100000 a */")[1], (Kind::Word, "a".into()));
        assert_eq!(k("/*!999999 a */")[0].0, Kind::BlockComment);
        let ks: Vec<Kind> = t.iter().map(|t| t.0).collect();
        assert_eq!(
            ks,
            vec![
                Kind::ExecOpen,
                Kind::Word,
                Kind::Word,
                Kind::Punct,
                Kind::Number,
                Kind::ExecClose,
                Kind::ExecOpen,
                Kind::Word,
                Kind::ExecClose,
                Kind::ExecOpen,
                Kind::Word,
                Kind::ExecClose,
                Kind::BlockComment,
            ]
        );
        assert_eq!(k("/*!*/")[0].0, Kind::BlockComment);
        assert_eq!(k("/*! SELECT 1 */")[0].0, Kind::ExecOpen);
    }

    #[test]
    fn executable_comments_unwrap_in_place() {
        let m = Mode::default();
        let sql = b"/*!40101 SET x=1 */ /*M!999999 no */ /*M!100100 SET y=2*/";
        let u = unwrap_executable(sql, &m).expect("unwrapped");
        assert_eq!(u.len(), sql.len());
        assert_eq!(
            String::from_utf8_lossy(&u),
            "         SET x=1    /*M!999999 no */            SET y=2  "
        );
        assert_eq!(unwrap_executable(b"SELECT 1 /* c */", &m), None);
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(
            k("x'0aff' 0x1F b'01' 0b1 1.5e-3 .5 t.5c 12abc @v @'u v' @@session.x ?"),
            vec![
                (Kind::Hex, "x'0aff'".into()),
                (Kind::Hex, "0x1F".into()),
                (Kind::Bits, "b'01'".into()),
                (Kind::Bits, "0b1".into()),
                (Kind::Number, "1.5e-3".into()),
                (Kind::Number, ".5".into()),
                (Kind::Word, "t".into()),
                (Kind::Punct, ".".into()),
                (Kind::Word, "5c".into()),
                (Kind::Word, "12abc".into()),
                (Kind::UserVar, "@v".into()),
                (Kind::UserVar, "@'u v'".into()),
                (Kind::SysVar, "@@session".into()),
                (Kind::Punct, ".".into()),
                (Kind::Word, "x".into()),
                (Kind::Placeholder, "?".into()),
            ]
        );
    }
}
