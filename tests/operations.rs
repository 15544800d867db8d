//! Operations: the query log (sampled JSON lines, slow statements always), the plan cache and
//! query counters in `/metrics`, and `tessera status`.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use tessera_router::config::RouterConfig;
use tessera_router::Router;

const VSCHEMA: &str = "keyspace: demo
sharded: true
logical_shards: 8
tables:
  customer: { shard_key: customer_id, vindex: xxhash }
";

async fn wait_lines(path: &std::path::Path, want: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        if lines.len() >= want {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("query log {} has fewer than {want} lines", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_log_metrics_and_status() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(20))")
        .await
        .expect("create");
    c.query_drop("INSERT INTO customer (customer_id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .expect("insert");

    // A second router on the same topology, logging every other statement.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("queries.jsonl");
    let cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n\
         query_log: {{ path: {}, sample_rate: 0.5 }}\n",
        log.display()
    ))
    .expect("config");
    let r = Router::new(cfg, h.topo.clone())
        .start()
        .await
        .expect("router");
    let opts = h
        .opts(Some("demo"), USER, PASSWORD)
        .tcp_port(r.local_addr().port());
    let mut lc = mysql_async::Conn::new(opts).await.expect("connect");
    for i in 0..20 {
        let _: Option<String> = lc
            .query_first(format!(
                "SELECT name FROM customer WHERE customer_id = {}",
                i % 3 + 1
            ))
            .await
            .expect("select");
    }
    let e = lc.query_drop("SELECT nope FROM customer").await;
    assert!(e.is_err());
    // 21 statements from this client (plus the driver's own at connect): every other one.
    let lines = wait_lines(&log, 10).await;
    assert!(
        lines.len() <= 13,
        "{} lines for ~22 statements at 0.5",
        lines.len()
    );
    let point = lines
        .iter()
        .find(|l| {
            l["fingerprint"]
                .as_str()
                .is_some_and(|f| f.contains("CUSTOMER_ID = ?"))
        })
        .expect("a point select logged with its fingerprint");
    assert_eq!(point["route"], "one");
    assert_eq!(point["shards"], 1);
    assert_eq!(point["rows"], 1);
    assert!(point["duration_ms"].as_f64().is_some());
    assert!(point["error"].is_null());

    // Counters moved on the first router: queries by route, plan cache lookups.
    let before = parse_metrics(
        &http_get(
            h.router
                .as_ref()
                .expect("router")
                .admin_addr()
                .expect("admin"),
            "/metrics",
        )
        .await,
    );
    let q0 = metric(&before, "tessera_router_queries_total", &["route=\"one\""]);
    for _ in 0..5 {
        let _: Option<String> = c
            .query_first("SELECT name FROM customer WHERE customer_id = 2")
            .await
            .expect("select");
    }
    c.query_drop("SELECT 1").await.expect("any");
    c.query_drop("SELECT 1").await.expect("any");
    let after = parse_metrics(
        &http_get(
            h.router
                .as_ref()
                .expect("router")
                .admin_addr()
                .expect("admin"),
            "/metrics",
        )
        .await,
    );
    assert_eq!(
        metric(&after, "tessera_router_queries_total", &["route=\"one\""]) - q0,
        5.0
    );
    assert!(
        metric(
            &after,
            "tessera_router_plan_cache_total",
            &["result=\"hit\""]
        ) >= 1.0
    );
    assert!(
        metric(
            &after,
            "tessera_router_plan_cache_total",
            &["result=\"miss\""]
        ) >= 1.0
    );
    let logm = parse_metrics(&http_get(r.admin_addr().expect("admin"), "/metrics").await);
    assert!(metric(&logm, "tessera_router_query_log_lines_total", &[]) >= 10.0);

    // tessera status prints the same overview.
    let admin = h
        .router
        .as_ref()
        .expect("router")
        .admin_addr()
        .expect("admin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["status", "--admin", &admin.to_string()])
        .output()
        .expect("tessera status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("keyspace demo (sharded, 8 logical shards"),
        "{text}"
    );
    assert!(text.contains("CUSTOMER_ID = ?"), "{text}");
    assert!(text.contains("ps0") && text.contains("ps1"), "{text}");
    drop(lc);
    drop(c);
    r.shutdown().await;
    h.stop().await;
}

/// A unique key without the shard key is reported by `tessera vschema apply|show`, and the
/// router refuses the writes that would resolve a conflict on it in the wrong logical shard,
/// until DDL through the router makes the key hold the shard key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_keys_without_the_shard_key_are_reported_and_guarded() {
    let h = Harness::start(
        2,
        0,
        "keyspace: demo\nsharded: true\nlogical_shards: 8\ntables:\n  \
         customer: { shard_key: customer_id }\n  orders: { shard_key: customer_id }\n",
    )
    .await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(20))")
        .await
        .expect("create customer");
    c.query_drop(
        "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, \
         ref VARCHAR(8), UNIQUE KEY by_ref (customer_id, ref))",
    )
    .await
    .expect("create orders");
    let lines = tessera::cli::uncovered_unique_keys(&h.topo, "demo")
        .await
        .expect("keys");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("table orders: unique key PRIMARY (order_id)"),
        "{lines:?}"
    );

    c.query_drop("INSERT INTO orders (order_id, customer_id) VALUES (1, 10)")
        .await
        .expect("insert");
    for sql in [
        "REPLACE INTO orders (order_id, customer_id) VALUES (1, 20)",
        "INSERT IGNORE INTO orders (order_id, customer_id) VALUES (1, 20)",
        "INSERT INTO orders (order_id, customer_id) VALUES (1, 20) ON DUPLICATE KEY UPDATE ref = 'x'",
    ] {
        let e = c.query_drop(sql).await.expect_err(sql);
        let mysql_async::Error::Server(e) = e else {
            panic!("{sql}: not a server error: {e}");
        };
        assert_eq!(e.code, 1235, "{sql}: {}", e.message);
        assert!(
            e.message.contains("PRIMARY (order_id)") && e.message.contains("customer_id"),
            "{sql}: {}",
            e.message
        );
    }
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM orders WHERE order_id = 1")
        .await
        .expect("count");
    assert_eq!(n, Some(1), "a refused write changed nothing");
    // A table whose keys all hold the shard key takes them.
    c.query_drop("REPLACE INTO customer (customer_id, name) VALUES (10, 'a'), (20, 'b')")
        .await
        .expect("replace on customer");
    // DDL through the router is seen at once.
    c.query_drop("ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (customer_id, order_id)")
        .await
        .expect("alter");
    c.query_drop("REPLACE INTO orders (order_id, customer_id, ref) VALUES (1, 10, 'r')")
        .await
        .expect("replace after the key holds the shard key");
    let lines = tessera::cli::uncovered_unique_keys(&h.topo, "demo")
        .await
        .expect("keys");
    assert!(lines.is_empty(), "{lines:?}");
    drop(c);
    h.stop().await;
}
