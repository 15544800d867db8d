//! The routing shadow: a router fronts a plain legacy database unchanged (an unsharded
//! keyspace), and plans every statement a second time against a candidate sharded vschema;
//! the report classifies each query shape as the planner would, with exact counts.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;
use tessera::localcluster::LocalCluster;
use tessera_router::{Router, RouterConfig};
use tessera_topo::{MemoryStore, Topo, VSchema};

const CANDIDATE: &str = "
keyspace: shop
sharded: true
logical_shards: 16
tables:
  customer: { shard_key: customer_id }
  orders: { shard_key: customer_id }
  product: { type: reference }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_shadow_classifies_every_shape_with_exact_counts() {
    let cluster = LocalCluster::start(1, None).await.expect("mariadb");
    // The legacy database, created directly on MariaDB, before any router exists.
    let s = &cluster.servers()[0];
    let mut legacy = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(s.host())
            .tcp_port(s.port())
            .user(Some(s.user()))
            .pass(Some(s.password()))
            .prefer_socket(false),
    )
    .await
    .expect("legacy");
    for q in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.customer (customer_id INT PRIMARY KEY, name VARCHAR(40), city VARCHAR(40), score INT)",
        "CREATE TABLE shop.orders (order_id INT PRIMARY KEY, customer_id INT, amount DECIMAL(8,2), status VARCHAR(10))",
        "CREATE TABLE shop.product (sku VARCHAR(10) PRIMARY KEY, title VARCHAR(40))",
        "INSERT INTO shop.customer VALUES (1, 'ann', 'oslo', 5), (2, 'bo', 'rome', 7), (3, 'cy', 'oslo', 9)",
        "INSERT INTO shop.orders VALUES (1, 1, 9.5, 'new'), (2, 1, 3.25, 'paid'), (3, 2, 7.0, 'new')",
        "INSERT INTO shop.product VALUES ('a', 'apple'), ('b', 'bread')",
    ] {
        legacy.query_drop(q).await.expect(q);
    }
    let topo = Topo::new(Arc::new(MemoryStore::new()));
    register_shards(&topo, &cluster, 1).await;
    // Passthrough: an unsharded keyspace whose schema is the legacy database itself.
    tessera::cli::apply_vschema(
        &topo,
        &VSchema::from_yaml("keyspace: shop\n").expect("vschema"),
    )
    .await
    .expect("apply");
    topo.put_candidate(&VSchema::from_yaml(CANDIDATE).expect("candidate"))
        .await
        .expect("candidate");
    let cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
    ))
    .expect("config");
    let router = Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let admin = router.admin_addr().expect("admin");
    let mut c = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(router.local_addr().port())
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .db_name(Some("shop"))
            .prefer_socket(false),
    )
    .await
    .expect("connect");

    // Several hundred query shapes: projections × filters × orderings, joins, aggregates, writes.
    let projections = [
        "*",
        "name",
        "name, city",
        "customer_id, score",
        "city, score, name",
        "UPPER(name)",
        "score + 1 AS s",
    ];
    let filters = [
        ("customer_id = {}", "one"),
        ("customer_id IN ({}, 2)", "several"),
        ("customer_id = {} OR customer_id = 3", "several"),
        ("name = 'n{}'", "scatter"),
        ("score > {}", "scatter"),
        ("city LIKE 'o{}%'", "scatter"),
        ("customer_id = {} AND score > 1", "one"),
    ];
    let orderings = ["", " ORDER BY name", " LIMIT 2"];
    let mut shapes: Vec<(String, &str)> = Vec::new();
    for p in projections {
        for (f, route) in filters {
            for o in orderings {
                shapes.push((format!("SELECT {p} FROM customer WHERE {f}{o}"), route));
            }
        }
    }
    for (q, route) in [
        ("SELECT c.name, o.amount FROM customer c JOIN orders o ON o.customer_id = c.customer_id WHERE c.customer_id = {}", "one"),
        ("SELECT c.name, o.amount FROM customer c JOIN orders o ON o.customer_id = c.customer_id WHERE o.amount > {}", "scatter"),
        ("SELECT COUNT(*) FROM orders WHERE amount > {}", "scatter"),
        ("SELECT status, SUM(amount) FROM orders WHERE order_id > {} GROUP BY status", "scatter"),
        ("SELECT COUNT(DISTINCT status) FROM orders WHERE order_id > {}", "unsupported"),
        ("SELECT * FROM orders WHERE order_id = {}", "scatter"),
        ("SELECT * FROM customer WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > {})", "unsupported"),
        ("SELECT title FROM product WHERE sku = 'a{}'", "reference"),
        ("SELECT c.name, p.title FROM customer c JOIN product p ON p.sku = 'a' WHERE c.customer_id = {}", "one"),
        ("UPDATE customer SET score = score + 1 WHERE customer_id = {}", "one"),
        ("UPDATE customer SET score = {} WHERE city = 'nowhere'", "scatter"),
        ("DELETE FROM orders WHERE order_id = {} + 1000", "scatter"),
        ("UPDATE customer SET customer_id = {} + 500 WHERE customer_id = 999", "unsupported"),
        ("SELECT {}", "any"),
    ] {
        shapes.push((q.to_string(), route));
    }
    assert!(shapes.len() >= 150, "{} shapes", shapes.len());
    let mut sent: HashMap<String, (u64, &str)> = HashMap::new();
    let mut total = 0u64;
    for (i, (shape, route)) in shapes.iter().enumerate() {
        let times = 1 + (i % 3) as u64;
        for k in 0..times {
            let sql = shape.replace("{}", &(k + 1).to_string());
            // Every statement runs on the legacy database and gets its real answer.
            c.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            total += 1;
            let e = sent
                .entry(tessera_router::shadow::fingerprint(&sql))
                .or_insert((0, route));
            e.0 += 1;
        }
    }
    // The shadow runs off the client's path: wait until it has seen everything. (The driver's
    // own connect-time statements are in the report too; they are not ours to count.)
    let ours = |r: &serde_json::Value| -> u64 {
        r["entries"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|e| {
                        e["fingerprint"]
                            .as_str()
                            .is_some_and(|f| sent.contains_key(f))
                    })
                    .map(|e| e["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        report = serde_json::from_str(&http_get(admin, "/shadow/routing").await).expect("json");
        if ours(&report) == total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ours(&report), total, "every statement was checked");
    assert_eq!(report["dropped"].as_u64(), Some(0));
    let entries = report["entries"].as_array().expect("entries");
    let mut matched = 0;
    for e in entries {
        let fp = e["fingerprint"].as_str().expect("fingerprint");
        let Some((count, route)) = sent.get(fp) else {
            continue;
        };
        matched += 1;
        assert_eq!(e["count"].as_u64(), Some(*count), "{fp}");
        assert_eq!(e["route"].as_str(), Some(*route), "{fp}: {e}");
        if *route == "unsupported" {
            assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
        }
    }
    assert_eq!(matched, sent.len(), "one entry per shape");
    let all = report["statements"].as_u64().unwrap_or(0);
    // The CLI prints it grouped, with totals.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["verify", "report", "--router", &admin.to_string()])
        .output()
        .expect("tessera verify report");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{all} statements, {} query shapes", entries.len())),
        "{text}"
    );
    assert!(
        text.contains("unsupported:") && text.contains("why:"),
        "{text}"
    );
    drop(c);
    router.shutdown().await;
    cluster.shutdown().await;
}
