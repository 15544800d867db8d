//! A bounded fuzz run of the router's front end: statement text through the plan cache, the
//! planner, shapes, fingerprints, comment handling and parameter markers, and random bytes
//! through the packet decoders. Nothing a client sends may panic: every input gets a plan or
//! an error. Seeds are the planner's route cases and `tests/fuzz/corpus.txt`; the run is
//! seeded, so a failure names an input that reproduces it.
//!
//! `TESSERA_FUZZ_ITERS` sets the number of mutated statements (default 20 000, a few seconds);
//! `scripts/fuzz` runs a long one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tessera_router::planner::cache::PlanCache;
use tessera_router::sql::{fingerprint, markers, rewrite, shape};
use tessera_router::topology::RoutingTable;
use tessera_router::wire::codec::Cursor;
use tessera_router::wire::{binary, handshake, resultset};

/// Pieces mutations insert: quotes, comments, escapes, multi-byte text, clause keywords.
const PIECES: &[&str] = &[
    "'",
    "\"",
    "`",
    "\\",
    "-- ",
    "--",
    "#",
    "\n",
    "/*",
    "*/",
    "/*!40101 ",
    "/*!",
    "/*M!100100 ",
    "à",
    "日本",
    "é",
    "ß",
    "\u{1F600}",
    "(",
    ")",
    ",",
    " ",
    ";",
    "?",
    "0x",
    "X'",
    "b'",
    "_binary",
    "_utf8mb4",
    "N'",
    "1e5",
    ".5",
    "-",
    "=",
    " IN (",
    " LIMIT 1",
    " OFFSET 2",
    " GROUP BY 1",
    " ORDER BY 1 DESC",
    " HAVING COUNT(*) > 1",
    "COUNT(DISTINCT name)",
    " WITH ROLLUP",
    " LOCK IN SHARE MODE",
    " FOR UPDATE",
    " FROM customer",
    " WHERE customer_id = 7",
    " JOIN ",
    " UNION ALL ",
    "SELECT ",
    "VEXPLAIN ",
    "@@",
    "@x",
    "`__tessera_ls__`",
    "__tessera_h0",
];

fn seeds() -> Vec<String> {
    let cases = include_str!("../src/planner/testdata/route_cases.yaml");
    let mut out: Vec<String> = cases
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- sql: "))
        .filter_map(|s| serde_yaml::from_str::<String>(s).ok())
        .collect();
    out.extend(
        include_str!("fuzz/corpus.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.replace("\\n", "\n")),
    );
    out
}

/// A char boundary at or before `i`.
fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut StdRng, base: &str) -> String {
    let mut s = base.to_string();
    for _ in 0..rng.gen_range(1..5) {
        let at = floor(&s, rng.gen_range(0..=s.len()));
        match rng.gen_range(0..4) {
            0 | 1 => s.insert_str(at, PIECES[rng.gen_range(0..PIECES.len())]),
            2 => {
                let end = floor(&s, at + rng.gen_range(0..8));
                s.replace_range(at..end.max(at), "");
            }
            _ => {
                let end = floor(&s, at + rng.gen_range(0..12));
                let piece = s[at..end.max(at)].to_string();
                s.insert_str(at, &piece);
            }
        }
    }
    s
}

/// Runs `f`, failing with the input when it panics.
fn no_panic(what: &str, input: &dyn std::fmt::Debug, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("{what} panicked on {input:?}");
    }
}

#[test]
fn statements_never_panic_the_front_end() {
    let docs: Vec<tessera_topo::VSchema> =
        serde_yaml::from_str(include_str!("../src/planner/testdata/vschemas.yaml"))
            .expect("vschemas parse");
    let rt = Arc::new(RoutingTable::for_vschemas(docs, 2));
    let cache = PlanCache::default();
    let iters: usize = std::env::var("TESSERA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seeds = seeds();
    assert!(seeds.len() > 50, "seeds: {}", seeds.len());
    let mut rng = StdRng::seed_from_u64(0x7e55_f022);
    let inputs = seeds
        .iter()
        .cloned()
        .chain((0..iters).map(|_| {
            let base = &seeds[rng.gen_range(0..seeds.len())];
            mutate(&mut rng, base)
        }))
        .collect::<Vec<_>>();
    for sql in &inputs {
        let sql = sql.as_str();
        no_panic("the front end", &sql, || {
            let _ = shape::shape(sql);
            let _ = fingerprint(sql);
            let _ = markers::markers(sql);
            let _ = rewrite::comments(sql);
            let _ = rewrite::statement_end(sql);
            let _ = rewrite::check_executable_comments(sql);
            for ks in [Some("demo"), None] {
                let _ = cache.plan(sql, ks, 0, &rt);
                let _ = tessera_router::planner::plan(sql, ks, &rt);
            }
        });
    }
}

#[test]
fn packets_never_panic_the_decoders() {
    let iters: usize = std::env::var("TESSERA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = StdRng::seed_from_u64(0x7e55_f023);
    for _ in 0..iters {
        let n = rng.gen_range(0..96);
        let bytes: Vec<u8> = (0..n)
            .map(|_| match rng.gen_range(0..4) {
                0 => 0,
                1 => 0xfb + rng.gen_range(0..5u8),
                _ => rng.gen(),
            })
            .collect();
        no_panic("the packet decoders", &bytes, || {
            let _ = handshake::parse_response(&bytes);
            let _ = resultset::ColumnDef::decode(&bytes, false);
            let _ = resultset::ColumnDef::decode(&bytes, true);
            let _ = resultset::ColumnDef::convert_extended(&bytes, true, false);
            let _ = resultset::ColumnDef::convert_extended(&bytes, false, true);
            let _ = tessera_router::wire::codec::whole_packet(&bytes, 0, 1 << 24);
            let mut c = Cursor::new(&bytes);
            while c.lenenc_str().is_some() {}
            for ty in [
                0x01u8, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x0a, 0x0b, 0x0c, 0xf6, 0xfc, 0xfe,
            ] {
                let mut c = Cursor::new(&bytes);
                let _ =
                    binary::param_literal(&mut c, ty, bytes.first().is_some_and(|b| b & 1 == 1));
            }
            let cols: Vec<(u8, bool)> = bytes
                .iter()
                .take(4)
                .map(|b| {
                    (
                        [0x03u8, 0x08, 0xfd, 0x0c, 0xf6, 0x04][usize::from(*b % 6)],
                        b & 1 == 1,
                    )
                })
                .collect();
            let mut out = Vec::new();
            let _ = binary::text_row_to_binary(&bytes, &cols, &mut out);
        });
    }
}

/// Statement bytes (not UTF-8 too) through the byte-level readers: literals carried past the
/// parser in every character set the router reads, `SET` lists, assigned user variables,
/// `SET STATEMENT` bodies. Nothing panics, and what a carried text plans from restores to the
/// client's bytes.
#[test]
fn statement_bytes_never_panic_the_byte_readers() {
    use tessera_router::sql::{carry, classify, lex};
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0xb17e_5eed);
    let iters: usize = std::env::var("TESSERA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
        / 4;
    let extra: &[&[u8]] = &[
        b"_binary'",
        b"_latin1'",
        b"N'",
        b"X'",
        b"@v := ",
        b"SET STATEMENT a=1 FOR ",
        b"SET @@session.x = ",
        b"\x80",
        b"\xff\x5c",
        b"\x95\x5c'",
        b"\xe9",
        b"\\'",
        b"''",
    ];
    let modes: Vec<lex::Mode> = ["utf8mb4", "latin1", "binary", "sjis", "gbk", "big5"]
        .iter()
        .flat_map(|cs| {
            [false, true].into_iter().map(move |nbe| {
                let mut m = lex::Mode {
                    no_backslash_escapes: nbe,
                    ..lex::Mode::default()
                };
                m.set_charset(cs);
                m
            })
        })
        .collect();
    for _ in 0..iters {
        let mut sql = seeds[rng.gen_range(0..seeds.len())].as_bytes().to_vec();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..=sql.len());
            let piece = extra[rng.gen_range(0..extra.len())];
            sql.splice(at..at, piece.iter().copied());
        }
        let mode = modes[rng.gen_range(0..modes.len())];
        no_panic("the byte readers", &String::from_utf8_lossy(&sql), || {
            // As the query path does: executable comments the server runs unwrapped first.
            let sql = lex::unwrap_executable(&sql, &mode).unwrap_or(sql.clone());
            if let Ok(Some(c)) = carry::carry(&sql, &mode) {
                // The text as the planner got it restores to the client's own bytes (exactly,
                // when no comment or unterminated quote had to be blanked for the parser).
                let back = c.held.restore(&c.text).expect("a carried text restores");
                let blanked = lex::lex(&sql, &mode).iter().any(|t| {
                    matches!(
                        t.kind,
                        lex::Kind::LineComment | lex::Kind::BlockComment | lex::Kind::Unterminated
                    )
                });
                if !blanked {
                    assert_eq!(back, sql, "restored bytes differ");
                }
            }
            let _ = classify::set_items(&sql, &mode);
            let _ = classify::assigned_user_variables(&sql, &mode);
            let _ = rewrite::set_statement_body(&sql, &mode);
            let _ = classify::classify(&sql, &mode);
        });
    }
}
