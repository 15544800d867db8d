//! Faults that must fail only what they must: a physical shard whose connections are all busy
//! with slow statements turns further statements for it away within the configured wait (1040
//! naming the shard, counted), while statements for the other shard answer at once; it serves
//! again when the slow statements end. (A shard that is down: `router_e2e`; a topology store
//! that is down: `topo_outage`.)

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use tessera_router::vindex::{keyspace_id, logical_shard, KeyValue};
use tessera_topo::VindexKind;

const VSCHEMA: &str =
    "keyspace: demo\nsharded: true\nlogical_shards: 16\ntables:\n  t: { shard_key: id }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_out_of_connections_fails_only_its_own_statements_at_once() {
    let h = Harness::start_with(2, 0, VSCHEMA, |cfg| {
        cfg.backend.pool_max = 3;
        cfg.backend.connect_timeout_ms = 700;
    })
    .await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("ddl");
    let values: Vec<String> = (1..=100).map(|i| format!("({i}, {i})")).collect();
    c.query_drop(format!("INSERT INTO t VALUES {}", values.join(", ")))
        .await
        .expect("rows");
    let placement = h
        .topo
        .get_placement("demo")
        .await
        .expect("topo")
        .expect("placement")
        .0;
    let key_on = |ps: &str| {
        (1..=100u64)
            .find(|k| {
                let id =
                    keyspace_id(VindexKind::Xxhash, &KeyValue::Int(i128::from(*k))).expect("hash");
                placement.shards[logical_shard(id, 16) as usize].ps == ps
            })
            .expect("a key on the shard")
    };
    let (k0, k1) = (key_on("ps0"), key_on("ps1"));
    // Slow statements take every connection the router may open to ps1.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = h.conn(Some("demo")).await;
        slow.push(tokio::spawn(async move {
            s.query_drop(format!("SELECT SLEEP(4) FROM t WHERE id = {k1}"))
                .await
                .map_err(|e| e.to_string())
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The other shard answers at once.
    let started = Instant::now();
    let v: Option<u64> = c
        .query_first(format!("SELECT v FROM t WHERE id = {k0}"))
        .await
        .expect("the other shard serves");
    assert_eq!(v, Some(k0));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // The busy one turns a statement away within its wait, naming itself.
    let started = Instant::now();
    let (code, msg) = error_code(&mut c, &format!("SELECT v FROM t WHERE id = {k1}")).await;
    let waited = started.elapsed();
    assert_eq!(code, 1040, "{msg}");
    assert!(msg.contains("ps1"), "{msg}");
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    // A statement over every shard needs ps1 too: answered (from the other pool's bounded
    // connections) or turned away, never hung.
    let started = Instant::now();
    match c.query_first::<u64, _>("SELECT COUNT(*) FROM t").await {
        Ok(n) => assert_eq!(n, Some(100)),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1040, "{}", e.message),
        Err(e) => panic!("{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // Counted where a DBA looks.
    let admin = h
        .router
        .as_ref()
        .and_then(|r| r.admin_addr())
        .expect("admin");
    let m = parse_metrics(&http_get(admin, "/metrics").await);
    assert!(
        metric(
            &m,
            "tessera_router_backend_acquire_failures_total",
            &["ps=\"ps1\""]
        ) >= 1.0,
        "shed statements are counted"
    );
    for s in slow {
        s.await.expect("task").expect("the slow statements finish");
    }
    // And it serves again.
    let v: Option<u64> = c
        .query_first(format!("SELECT v FROM t WHERE id = {k1}"))
        .await
        .expect("ps1 serves again");
    assert_eq!(v, Some(k1));
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(n, Some(100));
    drop(c);
    h.stop().await;
}
