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
    // Resetting a report changes state: refused without the admin token.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(admin).await.expect("admin");
        s.write_all(b"DELETE /shadow/routing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut b = Vec::new();
        s.read_to_end(&mut b).await.expect("read");
        let b = String::from_utf8_lossy(&b);
        assert!(b.starts_with("HTTP/1.1 401"), "{b}");
    }
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
        "customer_id",
        "city",
        "LOWER(city) AS c",
        "name, score * 2",
        "CONCAT(name, city)",
        "customer_id, name, city, score",
        "score",
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
        ("SELECT COUNT(DISTINCT status) FROM orders WHERE order_id > {}", "scatter"),
        ("SELECT SUM(amount) / COUNT(*) FROM orders WHERE order_id > {}", "unsupported"),
        ("SELECT * FROM orders WHERE order_id = {}", "scatter"),
        ("SELECT * FROM customer WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > {})", "scatter"),
        ("SELECT * FROM customer WHERE customer_id NOT IN (SELECT customer_id FROM orders WHERE amount > {})", "unsupported"),
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
    assert!(shapes.len() >= 300, "{} shapes", shapes.len());
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
                .entry(tessera_router::sql::fingerprint(&sql))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_shadow_reports_exactly_the_corrupted_rows() {
    // Server 0: the legacy primary; servers 1 and 2: a sharded copy of the same rows.
    let cluster = LocalCluster::start(3, None).await.expect("mariadb");
    let topo = Topo::new(Arc::new(MemoryStore::new()));
    register_shards(&topo, &cluster, 1).await;
    tessera::cli::apply_vschema(
        &topo,
        &VSchema::from_yaml("keyspace: shop\n").expect("vschema"),
    )
    .await
    .expect("apply");
    // The copy's physical shards, registered after the primary's keyspace is placed.
    for (i, s) in cluster.servers().iter().enumerate().skip(1) {
        topo.put_physical_shard(&tessera_topo::PhysicalShard {
            name: format!("copy{i}"),
            host: s.host().into(),
            port: s.port(),
            user: s.user().into(),
            password: Some(s.password().into()),
            password_env: None,
            weight: 1,
            tls_ca: None,
            data_account: None,
        })
        .await
        .expect("register");
    }
    let mut ps0 = tessera_topo::PhysicalShard {
        name: "ps0".into(),
        host: cluster.servers()[0].host().into(),
        port: cluster.servers()[0].port(),
        user: cluster.servers()[0].user().into(),
        password: Some(cluster.servers()[0].password().into()),
        password_env: None,
        weight: 0,
        tls_ca: None,
        data_account: None,
    };
    topo.put_physical_shard(&ps0)
        .await
        .expect("ps0 takes no new logical shards");
    let copy = VSchema::from_yaml(
        "keyspace: copy\nsharded: true\nlogical_shards: 8\ntables:\n  item: { shard_key: id }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(&topo, &copy)
        .await
        .expect("apply copy");
    ps0.weight = 1;
    topo.put_physical_shard(&ps0).await.expect("ps0");
    let cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
    ))
    .expect("config");
    let router = Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let admin = router.admin_addr().expect("admin");
    let opts = |db: &str| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(router.local_addr().port())
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .db_name(Some(db.to_string()))
            .prefer_socket(false)
    };
    let mut shop = mysql_async::Conn::new(opts("shop")).await.expect("shop");
    let mut cp = mysql_async::Conn::new(opts("copy")).await.expect("copy");
    let ddl =
        "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2), tag CHAR(8))";
    shop.query_drop(ddl).await.expect("ddl");
    cp.query_drop(ddl).await.expect("ddl");
    let mut vals = Vec::new();
    for i in 1..=200 {
        vals.push(format!(
            "({i}, 'item{i}', {}.{:02}, 't{}')",
            i % 50,
            i % 100,
            i % 7
        ));
    }
    let ins = format!(
        "INSERT INTO item (id, name, price, tag) VALUES {}",
        vals.join(",")
    );
    shop.query_drop(&ins).await.expect("insert");
    cp.query_drop(&ins).await.expect("insert copy");
    // Corrupt rows 7 and 42 in the copy, behind the router's back, on whichever server holds them.
    let mut corrupted = 0;
    for s in cluster.servers().iter().skip(1) {
        let mut d = mysql_async::Conn::new(mysql_async::Opts::from_url(&s.url()).expect("url"))
            .await
            .expect("direct");
        let schemas: Vec<String> = d.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'copy\\_0%'").await.expect("schemas");
        for sch in schemas {
            let r = d
                .query_iter(format!(
                    "UPDATE `{sch}`.item SET price = price + 1 WHERE id IN (7, 42)"
                ))
                .await
                .expect("corrupt");
            corrupted += r.affected_rows();
            drop(r);
        }
    }
    assert_eq!(corrupted, 2);
    topo.put_result_shadow(&tessera_topo::ResultShadowSpec {
        keyspace: "shop".into(),
        target: "copy".into(),
        sample_rate: 1.0,
        timeout_ms: 5000,
        max_concurrency: 64,
        ignore: vec![],
    })
    .await
    .expect("result shadow");
    // Wait for the router to see it.
    for _ in 0..50 {
        if router.cache().table().result_shadows.contains_key("shop") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Reads of all kinds; the answers come from the primary.
    let mut expected_mismatch = std::collections::BTreeSet::new();
    let mut sent = 0u64;
    for i in 1..=60u64 {
        let q = format!("SELECT * FROM item WHERE id = {i}");
        let got = rows(&mut shop, &q).await;
        assert_eq!(got.len(), 1);
        if i == 7 || i == 42 {
            expected_mismatch.insert(tessera_router::sql::fingerprint(&q));
            assert_eq!(
                got[0][2],
                format!("{}.{:02}", i % 50, i % 100),
                "the client's answer is the primary's"
            );
        }
        sent += 1;
    }
    for q in [
        "SELECT name FROM item WHERE tag = 't3' ORDER BY id",
        "SELECT COUNT(*), MIN(price) FROM item WHERE id > 100",
        "SELECT tag, COUNT(*) FROM item GROUP BY tag",
        "SELECT SUM(price) FROM item",
        "SELECT id, price FROM item WHERE price > 40 ORDER BY price DESC, id",
        "SELECT name FROM item WHERE id BETWEEN 100 AND 120",
    ] {
        rows(&mut shop, q).await;
        sent += 1;
        if q.contains("SUM(price)") || q.contains("price > 40") {
            // The corrupted prices (7 → 8.07, 42 → 43.42) change these answers.
            expected_mismatch.insert(tessera_router::sql::fingerprint(q));
        }
    }
    // The point selects share one fingerprint: it must appear (ids 7 and 42), nothing else.
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        report = serde_json::from_str(&http_get(admin, "/shadow/results").await).expect("json");
        let done = report["compared"].as_u64().unwrap_or(0)
            + report["skipped"]
                .as_object()
                .map_or(0, |m| m.values().map(|v| v.as_u64().unwrap_or(0)).sum());
        if done >= sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(report["compared"].as_u64(), Some(sent), "{report}");
    let got: std::collections::BTreeSet<String> = report["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .map(|m| m["fingerprint"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, expected_mismatch, "{report:#}");
    let point = report["mismatches"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|m| m["fingerprint"] == "SELECT * FROM ITEM WHERE ID = ?")
        })
        .cloned()
        .expect("point-select mismatch");
    assert_eq!(point["count"], 2, "ids 7 and 42: {point}");
    assert_eq!(point["kind"], "rows");
    assert_eq!(report["mismatched"].as_u64(), Some(2 + 2));
    // Accepting a known difference by fingerprint drives the list to zero for it.
    topo.put_result_shadow(&tessera_topo::ResultShadowSpec {
        keyspace: "shop".into(),
        target: "copy".into(),
        sample_rate: 1.0,
        timeout_ms: 5000,
        max_concurrency: 64,
        ignore: vec!["SELECT SUM(PRICE) FROM ITEM".into()],
    })
    .await
    .expect("result shadow");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    rows(&mut shop, "SELECT SUM(price) FROM item").await;
    let r2: serde_json::Value =
        serde_json::from_str(&http_get(admin, "/shadow/results").await).expect("json");
    assert_eq!(r2["ignored"].as_u64(), Some(1), "{r2}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "verify",
            "report",
            "--results",
            "--router",
            &admin.to_string(),
        ])
        .output()
        .expect("report");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("only in shadow") && text.contains("43.42"),
        "{text}"
    );
    drop(shop);
    drop(cp);
    router.shutdown().await;
    cluster.shutdown().await;
}
