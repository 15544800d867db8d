//! Planner tests as data: `testdata/*_cases.yaml` hold (query → expected route, SQL or error)
//! against the vschemas in `testdata/vschemas.yaml`.

use super::*;
use crate::topology::RoutingTable;
use serde::Deserialize;
use tessera_topo::VSchema;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    sql: String,
    #[serde(default = "demo")]
    keyspace: String,
    #[serde(default)]
    route: Option<RouteKind>,
    /// Expected logical shards (for one/several).
    #[serde(default)]
    ls: Option<Vec<u32>>,
    /// Expected SQL template, or for split inserts the per-shard SQL joined by " ;; ".
    #[serde(default)]
    sql_out: Option<String>,
    /// Expected error number.
    #[serde(default)]
    error: Option<u16>,
    /// A text the error message must contain.
    #[serde(default)]
    error_contains: Option<String>,
    #[serde(default)]
    limit: Option<(u64, u64)>,
}

fn demo() -> String {
    "demo".into()
}

fn table() -> RoutingTable {
    let docs: Vec<VSchema> =
        serde_yaml::from_str(include_str!("testdata/vschemas.yaml")).expect("vschemas parse");
    RoutingTable::for_vschemas(docs, 2)
}

#[test]
fn planner_cases() {
    let rt = table();
    let cases: Vec<Case> =
        serde_yaml::from_str(include_str!("testdata/route_cases.yaml")).expect("cases parse");
    let mut failures = Vec::new();
    for c in &cases {
        let ks = if c.keyspace.is_empty() {
            None
        } else {
            Some(c.keyspace.as_str())
        };
        let got = plan(&c.sql, ks, &rt);
        let mut fail = |m: String| failures.push(format!("{}\n    {m}", c.sql));
        match (&got, c.error) {
            (Err(e), Some(code)) => {
                if e.code != code {
                    fail(format!("error {} expected, got {e}", code));
                }
                if let Some(t) = &c.error_contains {
                    if !e.message.contains(t.as_str()) {
                        fail(format!("error should contain {t:?}: {e}"));
                    }
                }
            }
            (Err(e), None) => fail(format!("unexpected error {e}")),
            (Ok(p), Some(code)) => fail(format!("expected error {code}, got {p:?}")),
            (Ok(p), None) => {
                if let Some(r) = c.route {
                    if p.route() != r {
                        fail(format!("route {r:?} expected, got {:?}", p.route()));
                    }
                }
                if let Plan::Exec(e) = p {
                    if let Some(ls) = &c.ls {
                        let got_ls: Vec<u32> = match &e.targets {
                            Targets::Ls { ls, .. } => ls.clone(),
                            Targets::PerLs(v) => v.iter().map(|(l, _)| *l).collect(),
                            _ => vec![],
                        };
                        if &got_ls != ls {
                            fail(format!("ls {ls:?} expected, got {got_ls:?}"));
                        }
                    }
                    if let Some(s) = &c.sql_out {
                        let got_sql = match &e.targets {
                            Targets::Ls { template, .. } => template.clone(),
                            Targets::PerLs(v) => v
                                .iter()
                                .map(|(_, s)| s.as_str())
                                .collect::<Vec<_>>()
                                .join(" ;; "),
                            Targets::Reference { sql } | Targets::Any { sql } => sql.clone(),
                            Targets::Verbatim { sql, .. } => {
                                String::from_utf8_lossy(sql).into_owned()
                            }
                        };
                        if &got_sql != s {
                            fail(format!("sql {s:?} expected, got {got_sql:?}"));
                        }
                    }
                    if c.limit.is_some() && c.limit != e.limit {
                        fail(format!("limit {:?} expected, got {:?}", c.limit, e.limit));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Every planner case, and a variant of it with other literal values, planned through the
/// plan cache gives exactly the plan the planner gives.
#[test]
fn plan_cache_rebinds_literals_exactly() {
    let rt = std::sync::Arc::new(table());
    let cases: Vec<Case> =
        serde_yaml::from_str(include_str!("testdata/route_cases.yaml")).expect("cases parse");
    let cache = cache::PlanCache::default();
    let variant = |sql: &str| -> String {
        let Some(shape) = crate::sql::shape::shape(sql) else {
            return sql.to_string();
        };
        let mut out = String::new();
        let mut at = 0;
        for &(s, e) in &shape.literals {
            out.push_str(&sql[at..s]);
            let lit = &sql[s..e];
            if lit.bytes().all(|b| b.is_ascii_digit()) {
                let n: u128 = lit.parse().unwrap_or(0);
                out.push_str(&(n % 1000 + 7).to_string());
            } else if lit.len() >= 2 && lit.starts_with('\'') && lit.ends_with('\'') {
                out.push_str(&format!("'{}z'", &lit[1..lit.len() - 1]));
            } else {
                out.push_str(lit);
            }
            at = e;
        }
        out.push_str(&sql[at..]);
        out
    };
    for c in &cases {
        let ks = Some(c.keyspace.as_str());
        for sql in [c.sql.clone(), variant(&c.sql), c.sql.clone()] {
            let want = plan_session(&sql, ks, 0, &rt);
            let got = cache.plan(&sql, ks, 0, &rt);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{sql}"),
                (Err(w), Err(g)) => assert_eq!(g.code, w.code, "{sql}"),
                (w, g) => panic!("{sql}: planner {w:?}, cache {g:?}"),
            }
        }
    }
    let hits = cache.lookups.with_label_values(&["hit"]).get();
    assert!(hits > 0, "no plan was served from the cache");
}

/// Sharded statements on one logical shard are served from the cache for every key value,
/// with the logical shard the planner would pick; values that name no single shard fall back
/// to the planner.
#[test]
fn plan_cache_routes_sharded_point_statements() {
    let rt = std::sync::Arc::new(table());
    let cache = cache::PlanCache::default();
    let mut statements = Vec::new();
    for i in 0..300 {
        statements.push(format!("SELECT name FROM customer WHERE customer_id = {i}"));
        statements.push(format!(
            "UPDATE customer SET name = 'x{i}' WHERE customer_id = {i}"
        ));
        statements.push(format!("DELETE FROM orders WHERE customer_id = '{i}'"));
        statements.push(format!(
            "SELECT * FROM users_by_name WHERE name = 'N\\u00e4me {i}  ' AND 1 = 1"
        ));
    }
    for odd in [
        "'1.5'", "'abc'", "1.0", "1e3", "X'41'", "'12 '", "-3", "NULL",
    ] {
        statements.push(format!(
            "SELECT name FROM customer WHERE customer_id = {odd}"
        ));
    }
    let mut ls_seen = std::collections::BTreeSet::new();
    for sql in &statements {
        let want = plan_session(sql, Some("demo"), 0, &rt);
        let got = cache.plan(sql, Some("demo"), 0, &rt);
        match (want, got) {
            (Ok(w), Ok(g)) => {
                if let Plan::Exec(e) = &g {
                    if let Targets::Ls { ls, .. } = &e.targets {
                        ls_seen.extend(ls.iter().copied());
                    }
                }
                assert_eq!(g, w, "{sql}");
            }
            (Err(w), Err(g)) => assert_eq!(g.code, w.code, "{sql}"),
            (w, g) => panic!("{sql}: planner {w:?}, cache {g:?}"),
        }
    }
    let hits = cache.lookups.with_label_values(&["hit"]).get();
    assert!(hits >= 1100, "only {hits} hits");
    assert!(ls_seen.len() > 32, "only {} logical shards", ls_seen.len());
}

/// The direct scan finds exactly the literals and key the tokenizer finds, or leaves the
/// statement to the tokenizer: over every planner case, and over statements built at random
/// from fragments that sit at the edges (quotes, escapes, numbers next to words and dots,
/// comments, non-ASCII).
#[test]
fn scanned_shapes_match_tokenized_shapes() {
    let cases: Vec<Case> =
        serde_yaml::from_str(include_str!("testdata/route_cases.yaml")).expect("cases parse");
    let mut statements: Vec<String> = cases.iter().map(|c| c.sql.clone()).collect();
    let fragments = [
        "SELECT",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "c",
        "t1",
        "`a b`",
        "`x``y`",
        "'s'",
        "'it''s'",
        "'a\\'b'",
        "'\\\\'",
        "\"dq\"",
        "\"a\"\"b\"",
        "'é'",
        "é",
        "42",
        "4.5",
        "5.",
        ".5",
        "1e3",
        "0x1F",
        "X'41'",
        "N'n'",
        "_utf8mb4'u'",
        "b'01'",
        "-",
        "--",
        "-- c\n",
        "#c\n",
        "/* c */",
        "/*!50000 x */",
        "=",
        ",",
        "(",
        ")",
        ".",
        "@v",
        "@@session.x",
        "?",
        "$",
        "1abc",
        "a$b",
        ";",
        "'",
        "`",
        "''",
        "\"\"",
        "*",
        "+",
        "<=>",
        "!=",
    ];
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for _ in 0..20_000 {
        let n = 1 + (next() % 12) as usize;
        let s: String = (0..n)
            .map(|_| fragments[(next() % fragments.len() as u64) as usize])
            .collect();
        statements.push(s);
    }
    let mut scanned = 0;
    for sql in &statements {
        if let Some(fast) = crate::sql::shape::scan_shape(sql) {
            scanned += 1;
            assert_eq!(
                Some(fast),
                crate::sql::shape::tokenized_shape(sql),
                "{sql:?}"
            );
        }
    }
    assert!(
        scanned > 2_000,
        "only {scanned} statements scanned directly"
    );
    let plain = cases
        .iter()
        .filter(|c| crate::sql::shape::scan_shape(&c.sql).is_some())
        .count();
    assert!(
        plain * 10 >= cases.len() * 9,
        "only {plain} of {} planner cases scanned directly",
        cases.len()
    );
}

/// A long `INSERT` of literal rows (a dump's) is split without parsing its rows, into the same
/// statements per logical shard as the full parse gives; anything the fast split does not
/// read is planned whole, with the same outcome.
#[test]
fn long_inserts_split_like_the_full_parse() {
    let rt = table();
    let row = |i: i64| {
        let name = match i % 4 {
            0 => format!("'n{i}'"),
            1 => "NULL".to_string(),
            2 => format!("'it''s {i}'"),
            _ => format!("_utf8mb4'x\\\\{i}'"),
        };
        format!("({i}, {name}, 'c{}', -{}.5)", i % 7, i % 3)
    };
    let rows = |n: i64, key: &dyn Fn(i64) -> String| {
        (0..n)
            .map(|i| row(i).replacen(&i.to_string(), &key(i), 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let head = "INSERT INTO customer (customer_id, name, country, balance) VALUES ";
    let statements = [
        format!("{head}{}", rows(2000, &|i| i.to_string())),
        format!("{head}{}", rows(2000, &|i| format!("-{i}"))),
        format!("{head}{}", rows(2000, &|i| format!("'{i}'"))),
        format!(
            "INSERT IGNORE INTO demo.customer (balance, customer_id, name, country) VALUES {}",
            (0..2000)
                .map(|i| format!("(1.5, {i}, 'x', 'FR')"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // Not read by the fast split: planned whole.
        format!(
            "{head}{},({}, NOW(), 'x', 1)",
            rows(2000, &|i| i.to_string()),
            5000
        ),
        format!(
            "{head}{} ON DUPLICATE KEY UPDATE name = VALUES(name)",
            rows(2000, &|i| i.to_string())
        ),
        format!(
            "{head}{},(1e3, 'x', 'y', 1)",
            rows(2000, &|i| i.to_string())
        ),
        format!("{head}{},(1, 'x', 'y')", rows(2000, &|i| i.to_string())),
    ];
    for sql in &statements {
        assert!(sql.len() >= insert::FAST_INSERT_BYTES, "{}", sql.len());
        let whole = {
            let stmt = ast::parse_one(sql).expect("parses");
            let p = resolve::Planner {
                sql,
                offsets: crate::sql::rewrite::Offsets::new(sql),
                session_ks: Some("demo"),
                rt: &rt,
                last_insert_id: 0,
            };
            p.statement(stmt)
        };
        let fast = plan(sql, Some("demo"), &rt);
        match (&fast, &whole) {
            (Ok(Plan::Exec(a)), Ok(Plan::Exec(b))) => {
                assert_eq!(a.targets, b.targets, "{}", &sql[..120]);
                assert_eq!(a.conflict, b.conflict, "{}", &sql[..120]);
            }
            (Err(a), Err(b)) => assert_eq!(a.code, b.code, "{}", &sql[..120]),
            (a, b) => panic!("{}: {a:?} vs {b:?}", &sql[..120]),
        }
    }
    // The first four are split by the fast path.
    for sql in &statements[..4] {
        assert!(
            insert::fast_insert(sql, Some("demo"), 0, &rt).is_some(),
            "{}",
            &sql[..120]
        );
    }
    for sql in &statements[4..] {
        assert!(
            insert::fast_insert(sql, Some("demo"), 0, &rt).is_none(),
            "{}",
            &sql[..120]
        );
    }
}
