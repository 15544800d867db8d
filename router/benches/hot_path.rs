//! Micro-benchmarks of the router's per-statement hot path, without any network:
//! planning a point select (warm plan cache and cold), vindex hashing, and row encoding.
//!
//! ```sh
//! cargo bench -p tessera-router --bench hot_path
//! ```
//!
//! Results and the machine they ran on are in `docs/benchmarks.md`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use tessera_router::planner::cache::PlanCache;
use tessera_router::planner::plan_session;
use tessera_router::topology::RoutingTable;
use tessera_router::vindex::{keyspace_id, logical_shard, KeyValue};
use tessera_router::wire::binary::text_row_to_binary;
use tessera_router::wire::resultset::put_text_value;
use tessera_topo::{VSchema, VindexKind};

const VSCHEMAS: &str = "
- keyspace: sbtest
  sharded: false
- keyspace: sharded
  sharded: true
  logical_shards: 64
  tables:
    sbtest1: { shard_key: id, vindex: xxhash }
";

fn routing_table() -> Arc<RoutingTable> {
    let docs: Vec<VSchema> = serde_yaml::from_str(VSCHEMAS).expect("bench vschemas parse");
    Arc::new(RoutingTable::for_vschemas(docs, 4))
}

fn planning(c: &mut Criterion) {
    let rt = routing_table();
    let cache = PlanCache::default();
    // sysbench's point select, with ids that change from call to call.
    let statements: Vec<String> = (0..1024)
        .map(|i| format!("SELECT c FROM sbtest1 WHERE id={}", i * 7919 % 100_000))
        .collect();
    for ks in ["sbtest", "sharded"] {
        let mut i = 0;
        c.bench_function(&format!("plan point select, warm cache, {ks}"), |b| {
            b.iter(|| {
                i = (i + 1) % statements.len();
                black_box(cache.plan(&statements[i], Some(ks), 0, &rt)).ok()
            })
        });
        let mut i = 0;
        c.bench_function(&format!("plan point select, no cache, {ks}"), |b| {
            b.iter(|| {
                i = (i + 1) % statements.len();
                black_box(plan_session(&statements[i], Some(ks), 0, &rt)).ok()
            })
        });
    }
    // The byte front end every statement passes: one lexing, the classification, the scope
    // check, and the verbatim plan of an unsharded keyspace with its fingerprint.
    let mode = tessera_router::sql::lex::Mode::default();
    let mut i = 0;
    c.bench_function("front end: lex + classify + scope, point select", |b| {
        b.iter(|| {
            i = (i + 1) % statements.len();
            let sql = statements[i].as_bytes();
            let toks = tessera_router::sql::lex::significant(sql, &mode);
            let class = tessera_router::sql::classify::classify_tokens(sql, &toks, &mode);
            black_box(tessera_router::planner::passthrough::check_scope(
                &class, "u", false, &rt,
            ))
            .ok();
            black_box(class)
        })
    });
    let mut i = 0;
    let none = std::collections::BTreeSet::new();
    c.bench_function("front end: verbatim plan + fingerprint, unsharded", |b| {
        b.iter(|| {
            i = (i + 1) % statements.len();
            let sql = statements[i].as_bytes();
            let toks = tessera_router::sql::lex::significant(sql, &mode);
            let class = tessera_router::sql::classify::classify_tokens(sql, &toks, &mode);
            let plan = tessera_router::planner::passthrough::verbatim(
                sql,
                &class,
                Some("sbtest"),
                &none,
                &rt,
                false,
            );
            let fp = tessera_router::sql::shape::shape(&statements[i]).map(|s| s.key);
            black_box((plan, fp))
        })
    });
    let range = "SELECT c FROM sbtest1 WHERE id BETWEEN 5000 AND 5099 ORDER BY c";
    c.bench_function("plan scatter ORDER BY (merge), sharded", |b| {
        b.iter(|| black_box(cache.plan(range, Some("sharded"), 0, &rt)).ok())
    });
}

fn hashing(c: &mut Criterion) {
    let mut n: i128 = 0;
    c.bench_function("vindex xxhash, integer key", |b| {
        b.iter(|| {
            n += 1;
            let id = keyspace_id(VindexKind::Xxhash, &KeyValue::Int(black_box(n)));
            id.map(|id| logical_shard(id, 64)).ok()
        })
    });
    let key = KeyValue::Bytes("Zoë Müller-Łukasiewicz".as_bytes().to_vec());
    c.bench_function("vindex unicode_loose_xxhash, 22-character key", |b| {
        b.iter(|| keyspace_id(VindexKind::UnicodeLooseXxhash, black_box(&key)).ok())
    });
}

fn rows(c: &mut Criterion) {
    // sbtest1's row: id INT, k INT, c CHAR(120), pad CHAR(60).
    let c_val = "83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330";
    let pad = "67847967377-48000963322-62604785301-91415491898-96926520291";
    let values: [&[u8]; 4] = [b"5012", b"4993", c_val.as_bytes(), pad.as_bytes()];
    let mut buf = Vec::with_capacity(256);
    c.bench_function("encode text row (sbtest1)", |b| {
        b.iter(|| {
            buf.clear();
            for v in &values {
                put_text_value(&mut buf, Some(black_box(v)));
            }
            buf.len()
        })
    });
    let mut text = Vec::new();
    for v in &values {
        put_text_value(&mut text, Some(v));
    }
    // LONG, LONG, STRING, STRING.
    let cols = [(3u8, false), (3u8, false), (254u8, false), (254u8, false)];
    let mut out = Vec::with_capacity(256);
    c.bench_function("text row to binary row (sbtest1)", |b| {
        b.iter(|| text_row_to_binary(black_box(&text), &cols, &mut out).map(|()| out.len()))
    });
}

criterion_group!(benches, planning, hashing, rows);
criterion_main!(benches);
