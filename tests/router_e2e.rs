//! The router against real MariaDB servers: rows land in the schema of the logical shard
//! their key hashes to, and every supported query returns what one MariaDB holding the same
//! rows returns (an extra server in the cluster plays that oracle).

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use tessera_router::vindex::{keyspace_id, logical_shard, KeyValue};
use tessera_topo::VindexKind;

const VSCHEMA: &str = "
keyspace: demo
sharded: true
logical_shards: 16
tables:
  customer: { shard_key: customer_id, vindex: xxhash }
  orders: { shard_key: customer_id, vindex: xxhash }
  product: { shard_key: sku, vindex: unicode_loose_xxhash }
  country: { type: reference }
";

const DDL: &[&str] = &[
    "CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), score INT, note TEXT)",
    "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(10,2), status VARCHAR(16), KEY (customer_id))",
    "CREATE TABLE product (sku VARCHAR(32) PRIMARY KEY, title VARCHAR(64))",
    "CREATE TABLE country (code CHAR(2) PRIMARY KEY, name VARCHAR(64))",
];

/// Runs `sql` on the router and on the oracle, expecting success on both.
async fn both(router: &mut mysql_async::Conn, oracle: &mut mysql_async::Conn, sql: &str) {
    router
        .query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("router: {sql}: {e}"));
    oracle
        .query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("oracle: {sql}: {e}"));
}

async fn same(router: &mut mysql_async::Conn, oracle: &mut mysql_async::Conn, sql: &str) {
    let a = rows_sorted(router, sql).await;
    let b = rows_sorted(oracle, sql).await;
    if a != b {
        let only_a: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
        let only_b: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
        panic!("results differ for {sql}: {} vs {} rows; only from the router: {only_a:?}; only from MariaDB: {only_b:?}", a.len(), b.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_on_their_shards_and_answers_match_one_mariadb() {
    let h = Harness::start(3, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(3).await;
    for d in DDL {
        both(&mut r, &mut o, d).await;
    }
    // A few thousand rows, in multi-row inserts that span logical shards.
    let mut id: u64 = 0;
    for _batch in 0..60 {
        let mut vals = Vec::new();
        for _ in 0..50 {
            id += 1;
            let name = format!(
                "{}{}",
                ["ann", "bob", "cy", "dee", "Élodie"][id as usize % 5],
                id % 97
            );
            let note = if id.is_multiple_of(11) {
                "NULL".to_string()
            } else {
                format!("'it''s \\\\ {id}'")
            };
            vals.push(format!(
                "({}, '{name}', 'c{id}@example.com', {}, {note})",
                id * 7919 % 100_003,
                (id * 37) % 1000
            ));
        }
        both(
            &mut r,
            &mut o,
            &format!(
                "INSERT INTO customer (customer_id, name, email, score, note) VALUES {}",
                vals.join(", ")
            ),
        )
        .await;
    }
    let mut order_vals = Vec::new();
    for n in 1..=2000u64 {
        let cid = (n % 3000 + 1) * 7919 % 100_003;
        order_vals.push(format!(
            "({n}, {cid}, {}.{:02}, '{}')",
            n % 500,
            n % 100,
            ["new", "paid", "shipped"][n as usize % 3]
        ));
    }
    for chunk in order_vals.chunks(200) {
        both(
            &mut r,
            &mut o,
            &format!(
                "INSERT INTO orders (order_id, customer_id, amount, status) VALUES {}",
                chunk.join(",")
            ),
        )
        .await;
    }
    both(&mut r, &mut o, "INSERT INTO product (sku, title) VALUES ('Abc-1', 'one'), ('xyz-2', 'two'), ('Éte', 'three')").await;
    both(&mut r, &mut o, "INSERT INTO country (code, name) VALUES ('FR', 'France'), ('DE', 'Germany'), ('JP', 'Japan')").await;

    // Every row sits in the schema of the logical shard its key hashes to.
    let mut total = 0;
    for ps in 0..3 {
        let mut d = h.direct(ps).await;
        let schemas: Vec<String> = d
            .query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'demo\\_0%'")
            .await
            .expect("schemas");
        assert!(!schemas.is_empty(), "ps{ps} holds no logical shard");
        for s in schemas {
            let ls: u32 = s.trim_start_matches("demo_").parse().expect("ls number");
            let ids: Vec<u64> = d
                .query(format!("SELECT customer_id FROM `{s}`.customer"))
                .await
                .expect("ids");
            for cid in &ids {
                let ks = keyspace_id(VindexKind::Xxhash, &KeyValue::Int(i128::from(*cid)))
                    .expect("hash");
                assert_eq!(
                    logical_shard(ks, 16),
                    ls,
                    "customer {cid} is in {s} on ps{ps}"
                );
            }
            total += ids.len();
            let orders: Vec<u64> = d
                .query(format!("SELECT customer_id FROM `{s}`.orders"))
                .await
                .expect("orders");
            for cid in orders {
                let ks =
                    keyspace_id(VindexKind::Xxhash, &KeyValue::Int(i128::from(cid))).expect("hash");
                assert_eq!(logical_shard(ks, 16), ls, "order of {cid} is in {s}");
            }
        }
        // The reference table is copied to every physical shard.
        let n: Option<u64> = d
            .query_first("SELECT COUNT(*) FROM demo_ref.country")
            .await
            .expect("ref");
        assert_eq!(n, Some(3), "ps{ps} has every reference row");
    }
    assert_eq!(total, 3000);

    // Reads match the oracle.
    for cid in [7919u64, 15838, 23757, 99_999, 12345, 1] {
        same(
            &mut r,
            &mut o,
            &format!("SELECT * FROM customer WHERE customer_id = {cid}"),
        )
        .await;
        same(&mut r, &mut o, &format!("SELECT c.name, o.order_id, o.amount FROM customer c JOIN orders o ON c.customer_id = o.customer_id WHERE c.customer_id = {cid}")).await;
        same(&mut r, &mut o, &format!("SELECT c.name, k.name FROM customer c JOIN country k ON k.code = 'FR' WHERE c.customer_id = '{cid}'")).await;
    }
    same(
        &mut r,
        &mut o,
        "SELECT * FROM customer WHERE customer_id IN (7919, 15838, 23757, 31676, 5)",
    )
    .await;
    same(&mut r, &mut o, "SELECT * FROM customer").await;
    same(
        &mut r,
        &mut o,
        "SELECT customer_id, note FROM customer WHERE name LIKE 'bob%' AND score > 500",
    )
    .await;
    same(&mut r, &mut o, "SELECT c.customer_id, o.status FROM customer c JOIN orders o ON o.customer_id = c.customer_id WHERE o.amount > 400").await;
    same(&mut r, &mut o, "SELECT * FROM country").await;
    same(&mut r, &mut o, "SELECT * FROM product WHERE sku = 'abc-1'").await;
    same(&mut r, &mut o, "SELECT * FROM product WHERE sku = 'ÉTE'").await;
    same(
        &mut r,
        &mut o,
        "SELECT * FROM customer WHERE customer_id = 7919 AND customer_id = 15838",
    )
    .await;
    // A scatter LIMIT returns that many rows (which ones is unspecified without ORDER BY).
    assert_eq!(
        rows(&mut r, "SELECT * FROM customer LIMIT 25").await.len(),
        25
    );
    assert_eq!(
        rows(&mut r, "SELECT * FROM customer LIMIT 2990, 100")
            .await
            .len(),
        10
    );

    // Writes: by key and scattered, then the whole tables compare.
    both(
        &mut r,
        &mut o,
        "UPDATE customer SET name = 'renamed' WHERE customer_id = 7919",
    )
    .await;
    both(
        &mut r,
        &mut o,
        "UPDATE customer SET score = score + 1 WHERE score < 100",
    )
    .await;
    both(
        &mut r,
        &mut o,
        "DELETE FROM orders WHERE customer_id IN (15838, 23757)",
    )
    .await;
    both(
        &mut r,
        &mut o,
        "DELETE FROM customer WHERE score BETWEEN 200 AND 210",
    )
    .await;
    both(
        &mut r,
        &mut o,
        "UPDATE country SET name = 'République française' WHERE code = 'FR'",
    )
    .await;
    let res = r
        .query_iter("UPDATE customer SET email = NULL WHERE score > 990")
        .await
        .expect("update");
    let affected_router = res.affected_rows();
    drop(res);
    let res = o
        .query_iter("UPDATE customer SET email = NULL WHERE score > 990")
        .await
        .expect("update");
    assert_eq!(
        affected_router,
        res.affected_rows(),
        "affected rows of a scatter update"
    );
    drop(res);
    same(&mut r, &mut o, "SELECT * FROM customer").await;
    same(&mut r, &mut o, "SELECT * FROM orders").await;
    same(&mut r, &mut o, "SELECT * FROM country").await;

    // Transactions: rollback leaves nothing, commit keeps rows on several physical shards.
    r.query_drop("BEGIN").await.expect("begin");
    r.query_drop("INSERT INTO customer (customer_id, name) VALUES (900001, 'tx'), (900002, 'tx'), (900003, 'tx'), (900004, 'tx')").await.expect("insert");
    assert_eq!(
        rows(
            &mut r,
            "SELECT name FROM customer WHERE customer_id = 900001"
        )
        .await
        .len(),
        1,
        "a transaction sees its own writes"
    );
    r.query_drop("ROLLBACK").await.expect("rollback");
    assert!(rows(
        &mut r,
        "SELECT * FROM customer WHERE customer_id IN (900001, 900002, 900003, 900004)"
    )
    .await
    .is_empty());
    r.query_drop("SET autocommit = 0")
        .await
        .expect("autocommit off");
    r.query_drop("INSERT INTO customer (customer_id, name) VALUES (900001, 'tx'), (900002, 'tx'), (900003, 'tx'), (900004, 'tx')").await.expect("insert");
    r.query_drop("COMMIT").await.expect("commit");
    r.query_drop("SET autocommit = 1")
        .await
        .expect("autocommit on");
    let mut fresh = h.conn(Some("demo")).await;
    assert_eq!(
        rows(
            &mut fresh,
            "SELECT * FROM customer WHERE customer_id IN (900001, 900002, 900003, 900004)"
        )
        .await
        .len(),
        4
    );

    // Session statements every client sends.
    assert_eq!(
        rows(&mut r, "SELECT DATABASE()").await,
        vec![vec!["demo".to_string()]]
    );
    assert_eq!(
        rows(&mut r, "SELECT @@version_comment LIMIT 1").await.len(),
        1
    );
    r.query_drop("SET NAMES utf8mb4").await.expect("set names");
    let dbs: Vec<String> = r.query("SHOW DATABASES").await.expect("show databases");
    assert!(dbs.contains(&"demo".to_string()), "{dbs:?}");
    let tables: Vec<String> = r.query("SHOW TABLES").await.expect("show tables");
    assert_eq!(tables, vec!["country", "customer", "orders", "product"]);
    r.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
        .await
        .expect("set var");
    let mode: Option<String> = r
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .expect("sql_mode");
    assert_eq!(
        mode.as_deref(),
        Some("STRICT_ALL_TABLES"),
        "session variables follow the session"
    );
    let mode: Option<String> = fresh
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .expect("sql_mode");
    assert_ne!(
        mode.as_deref(),
        Some("STRICT_ALL_TABLES"),
        "and do not leak to other sessions"
    );
    // The admin endpoint counts what ran.
    let admin = h
        .router
        .as_ref()
        .and_then(|x| x.admin_addr())
        .expect("admin endpoint");
    let text = http_get(admin, "/metrics").await;
    let m = parse_metrics(&text);
    assert!(
        metric(
            &m,
            "tessera_router_queries_total",
            &["route=\"one\"", "keyspace=\"demo\"", "outcome=\"ok\""]
        ) >= 20.0,
        "{text}"
    );
    assert!(
        metric(
            &m,
            "tessera_router_queries_total",
            &["route=\"scatter\"", "outcome=\"ok\""]
        ) >= 5.0
    );
    let before = metric(
        &m,
        "tessera_router_queries_total",
        &["route=\"one\"", "outcome=\"ok\""],
    );
    r.query_drop("SELECT * FROM customer WHERE customer_id = 1")
        .await
        .expect("query");
    let m = parse_metrics(&http_get(admin, "/metrics").await);
    assert_eq!(
        metric(
            &m,
            "tessera_router_queries_total",
            &["route=\"one\"", "outcome=\"ok\""]
        ),
        before + 1.0,
        "the counter moved"
    );
    assert_eq!(metric(&m, "tessera_router_topo_connected", &[]), 1.0);
    assert!(metric(&m, "tessera_router_connections", &[]) >= 2.0);
    let status = http_get(admin, "/status").await;
    assert!(status.contains("\"connected\":true"), "{status}");
    // Where a statement goes, and MariaDB's plan for it.
    let v = rows(
        &mut r,
        "VEXPLAIN SELECT * FROM customer WHERE customer_id = 7919",
    )
    .await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0][0], "one");
    assert!(
        v[0][1].starts_with("demo_00") && v[0][2].starts_with("ps"),
        "{v:?}"
    );
    assert_eq!(
        rows(&mut r, "VEXPLAIN SELECT * FROM customer").await.len(),
        16
    );
    assert!(!rows(
        &mut r,
        "EXPLAIN SELECT * FROM customer WHERE customer_id = 7919"
    )
    .await
    .is_empty());
    // COM_RESET_CONNECTION forgets the session's variables.
    r.reset().await.expect("reset connection");
    let mode: Option<String> = r
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .expect("sql_mode");
    assert_ne!(
        mode.as_deref(),
        Some("STRICT_ALL_TABLES"),
        "reset clears session variables"
    );

    drop(r);
    drop(fresh);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_mysql_errors() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    // Wrong password.
    match mysql_async::Conn::new(h.opts(Some("demo"), USER, "wrong")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("expected 1045, got {:?}", other.map(|_| ())),
    }
    // Unknown user.
    match mysql_async::Conn::new(h.opts(None, "mallory", "x")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("expected 1045, got {:?}", other.map(|_| ())),
    }
    // Unknown database at connect.
    match mysql_async::Conn::new(h.opts(Some("nope"), USER, PASSWORD)).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1049, "{e}"),
        other => panic!("expected 1049, got {:?}", other.map(|_| ())),
    }
    let mut c = h.conn(Some("demo")).await;
    for d in DDL {
        c.query_drop(*d).await.expect("ddl");
    }
    assert_eq!(error_code(&mut c, "SELEC * FROM customer").await.0, 1064);
    let (code, msg) = error_code(&mut c, "SELECT * FROM nosuch").await;
    assert_eq!(code, 1146);
    assert!(msg.contains("demo.nosuch"), "{msg}");
    // A shape the merge does not take is answered by MariaDB over the gathered rows.
    let n: Option<(u64, u64)> = c
        .query_first("SELECT COUNT(DISTINCT name), COUNT(DISTINCT email) FROM customer")
        .await
        .expect("gathered");
    assert_eq!(n, Some((0, 0)));
    // A locking read it cannot split is refused, naming the shape.
    let (code, msg) = error_code(&mut c, "SELECT COUNT(*) FROM customer FOR UPDATE").await;
    assert_eq!(code, 1235, "{msg}");
    assert_eq!(error_code(&mut c, "USE nosuch").await.0, 1049);
    // What a pooled backend connection keeps of its own last statement is refused, not
    // answered with another session's.
    // (`SELECT FOUND_ROWS()` and `SELECT ROW_COUNT()` alone are answered from the session.)
    for q in ["SELECT FOUND_ROWS() + 0", "SELECT ROW_COUNT() + 0"] {
        let (code, msg) = error_code(&mut c, q).await;
        assert_eq!(code, 1235, "{q}: {msg}");
        assert!(msg.contains("pooled connections"), "{msg}");
    }
    // The session's own diagnostics answer `@@warning_count` and `ROW_COUNT()` alone: the
    // refusal above is the one condition, and a failed statement leaves -1.
    let n: Option<u64> = c
        .query_first("SELECT @@warning_count")
        .await
        .expect("@@warning_count");
    assert_eq!(n, Some(1));
    let rc: Option<i64> = c
        .query_first("SELECT ROW_COUNT()")
        .await
        .expect("ROW_COUNT()");
    assert_eq!(rc, Some(-1));
    // A column that does not exist: MariaDB's own error, with the keyspace's name in it.
    let (code, msg) = error_code(&mut c, "SELECT nocol FROM customer WHERE customer_id = 1").await;
    assert_eq!(code, 1054, "{msg}");
    // Duplicate key from MariaDB passes through with its number.
    c.query_drop("INSERT INTO customer (customer_id, name) VALUES (1, 'a')")
        .await
        .expect("insert");
    assert_eq!(
        error_code(
            &mut c,
            "INSERT INTO customer (customer_id, name) VALUES (1, 'b')"
        )
        .await
        .0,
        1062
    );
    // The connection is still good after all that.
    assert_eq!(
        rows(&mut c, "SELECT name FROM customer WHERE customer_id = 1").await,
        vec![vec!["a".to_string()]]
    );
    // A result set's warning count is its statement's, on the router's own connections
    // (autocommit) and on a transaction's pinned one.
    let warned = "SELECT CAST(name AS INT) FROM customer WHERE customer_id = 1";
    rows(&mut c, warned).await;
    assert_eq!(c.get_warnings(), 1, "autocommit");
    rows(&mut c, "SELECT name FROM customer WHERE customer_id = 1").await;
    assert_eq!(c.get_warnings(), 0);
    c.query_drop("BEGIN").await.expect("begin");
    rows(&mut c, warned).await;
    assert_eq!(c.get_warnings(), 1, "in a transaction");
    c.query_drop("ROLLBACK").await.expect("rollback");
    drop(c);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_physical_shard_fails_only_the_queries_that_need_it() {
    let mut h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    for d in DDL {
        c.query_drop(*d).await.expect("ddl");
    }
    let mut vals = Vec::new();
    for i in 1..=200 {
        vals.push(format!("({i}, 'n{i}')"));
    }
    c.query_drop(format!(
        "INSERT INTO customer (customer_id, name) VALUES {}",
        vals.join(",")
    ))
    .await
    .expect("insert");
    let placement = h
        .topo
        .get_placement("demo")
        .await
        .expect("topo")
        .expect("placement")
        .0;
    // Find a key on each physical shard.
    let key_on = |ps: &str| {
        (1..=200u64)
            .find(|k| {
                let id =
                    keyspace_id(VindexKind::Xxhash, &KeyValue::Int(i128::from(*k))).expect("hash");
                placement.shards[logical_shard(id, 16) as usize].ps == ps
            })
            .expect("a key on the shard")
    };
    let (k0, k1) = (key_on("ps0"), key_on("ps1"));
    drop(c);
    h.cluster.server_mut(1).expect("server 1").kill();
    let mut c = h.conn(Some("demo")).await;
    assert_eq!(
        rows(
            &mut c,
            &format!("SELECT name FROM customer WHERE customer_id = {k0}")
        )
        .await,
        vec![vec![format!("n{k0}")]]
    );
    let (code, msg) = error_code(
        &mut c,
        &format!("SELECT name FROM customer WHERE customer_id = {k1}"),
    )
    .await;
    assert_eq!(code, 1105);
    assert!(msg.contains("ps1"), "the error names the shard: {msg}");
    let (code, msg) = error_code(&mut c, "SELECT * FROM customer").await;
    assert_eq!(code, 1105);
    assert!(msg.contains("ps1"), "{msg}");
    // And the shard comes back.
    h.cluster
        .server_mut(1)
        .expect("server 1")
        .restart()
        .await
        .expect("restart");
    let mut ok = false;
    for _ in 0..20 {
        if c.query_drop(format!(
            "SELECT name FROM customer WHERE customer_id = {k1}"
        ))
        .await
        .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ok, "queries to the restarted shard work again");
    drop(c);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_reads_match_one_mariadb() {
    let h = Harness::start(3, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(3).await;
    for d in DDL {
        both(&mut r, &mut o, d).await;
    }
    let names = [
        "ann", "Ann", "bob", "BOB", "cy", "Élodie", "elodie", "zed", "", "ann ",
    ];
    let mut vals = Vec::new();
    for id in 1..=1500u64 {
        let name = if id % 13 == 0 {
            "NULL".to_string()
        } else {
            format!("'{}'", names[id as usize % names.len()])
        };
        let score = if id % 17 == 0 {
            "NULL".to_string()
        } else {
            format!("{}", (id * 7919) % 201) as String
        };
        vals.push(format!("({id}, {name}, 'e{id}', {score}, 'n')"));
    }
    for c in vals.chunks(300) {
        both(
            &mut r,
            &mut o,
            &format!(
                "INSERT INTO customer (customer_id, name, email, score, note) VALUES {}",
                c.join(",")
            ),
        )
        .await;
    }
    let mut ov = Vec::new();
    for n in 1..=3000u64 {
        ov.push(format!(
            "({n}, {}, {}.{:02}, '{}')",
            n % 1500 + 1,
            (n * 31) % 997,
            n % 100,
            ["new", "paid", "shipped"][n as usize % 3]
        ));
    }
    for c in ov.chunks(500) {
        both(
            &mut r,
            &mut o,
            &format!(
                "INSERT INTO orders (order_id, customer_id, amount, status) VALUES {}",
                c.join(",")
            ),
        )
        .await;
    }
    // Ordered results must match row for row (ties broken by the primary key).
    for sql in [
        "SELECT customer_id, name FROM customer ORDER BY name, customer_id",
        "SELECT customer_id, name FROM customer ORDER BY name DESC, customer_id DESC LIMIT 40",
        "SELECT * FROM customer ORDER BY score, customer_id LIMIT 25 OFFSET 100",
        "SELECT customer_id AS id, score FROM customer WHERE score > 100 ORDER BY 2 DESC, id LIMIT 7",
        "SELECT order_id, amount FROM orders ORDER BY amount DESC, order_id LIMIT 10",
        "SELECT score, COUNT(*) AS n FROM customer GROUP BY score ORDER BY n DESC, score LIMIT 5",
        "SELECT UPPER(name) AS u, COUNT(*) AS n FROM customer GROUP BY UPPER(name) ORDER BY n DESC, u LIMIT 5",
    ] {
        let a = rows(&mut r, sql).await;
        let b = rows(&mut o, sql).await;
        assert_eq!(a.len(), b.len(), "row counts differ for {sql}");
        if let Some(i) = (0..a.len()).find(|i| a[*i] != b[*i]) {
            panic!("ordered results differ for {sql} at row {i}: router {:?}, MariaDB {:?}", &a[i..(i + 3).min(a.len())], &b[i..(i + 3).min(b.len())]);
        }
    }
    // Aggregates and groups (unordered compare).
    for sql in [
        "SELECT COUNT(*) FROM customer",
        "SELECT COUNT(*), COUNT(name), SUM(score), MIN(score), MAX(score), AVG(score) FROM customer",
        "SELECT MIN(name), MAX(name) FROM customer",
        "SELECT SUM(amount), AVG(amount), MAX(amount) FROM orders",
        "SELECT status, COUNT(*), SUM(amount), AVG(amount) FROM orders GROUP BY status",
        "SELECT score, COUNT(*) FROM customer GROUP BY score HAVING COUNT(*) >= 8",
        "SELECT DISTINCT score FROM customer WHERE score < 50",
        "SELECT COUNT(*) FROM customer WHERE customer_id > 100000",
        "SELECT SUM(score) FROM customer WHERE customer_id > 100000",
        "SELECT c.score, COUNT(*), SUM(o.amount) FROM customer c JOIN orders o ON o.customer_id = c.customer_id WHERE o.amount > 500 GROUP BY c.score",
    ] {
        same(&mut r, &mut o, sql).await;
    }
    // Column names and types are what MariaDB gives.
    let sql = "SELECT COUNT(*), AVG(score), SUM(amount) FROM customer c JOIN orders o ON o.customer_id = c.customer_id";
    let rr = r.query_iter(sql).await.expect("router");
    let rc: Vec<(String, u8)> = rr
        .columns_ref()
        .iter()
        .map(|c| (c.name_str().into_owned(), c.column_type() as u8))
        .collect();
    drop(rr);
    let orr = o.query_iter(sql).await.expect("oracle");
    let oc: Vec<(String, u8)> = orr
        .columns_ref()
        .iter()
        .map(|c| (c.name_str().into_owned(), c.column_type() as u8))
        .collect();
    drop(orr);
    assert_eq!(rc, oc);
    same(&mut r, &mut o, sql).await;
    drop(r);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_route_like_literals() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let ddl = "CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), score INT, note TEXT, born DATE, seen DATETIME(3), balance DECIMAL(12,2), ratio DOUBLE, flag TINYINT UNSIGNED)";
    both(&mut r, &mut o, ddl).await;
    both(&mut r, &mut o, DDL[1]).await;
    let ins = "INSERT INTO customer (customer_id, name, email, score, note, born, seen, balance, ratio, flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    for id in 1..=120i64 {
        let name = if id % 9 == 0 {
            None
        } else {
            Some(format!("n{}'\\{}", id % 7, id))
        };
        let params = mysql_async::Params::Positional(vec![
            id.into(),
            name.clone().into(),
            format!("e{id}@x").into(),
            ((id * 37) % 100 - 50).into(),
            if id % 5 == 0 {
                mysql_async::Value::NULL
            } else {
                "note ünïcode".into()
            },
            mysql_async::Value::Date(
                2000 + (id % 20) as u16,
                1 + (id % 12) as u8,
                1 + (id % 28) as u8,
                0,
                0,
                0,
                0,
            ),
            mysql_async::Value::Date(2026, 11, 24, (id % 24) as u8, 30, 15, 123_000),
            format!("{}.{:02}", id * 3, id % 100).into(),
            (id as f64 / 8.0).into(),
            ((id % 200) as u8).into(),
        ]);
        r.exec_drop(ins, params.clone())
            .await
            .expect("router insert");
        o.exec_drop(ins, params).await.expect("oracle insert");
    }
    // Point reads by parameter, scatter reads, merges: identical rows and values.
    for (sql, p) in [
        ("SELECT * FROM customer WHERE customer_id = ?", mysql_async::Params::Positional(vec![7i64.into()])),
        ("SELECT * FROM customer WHERE customer_id IN (?, ?, ?)", mysql_async::Params::Positional(vec![1i64.into(), 50i64.into(), 99i64.into()])),
        ("SELECT customer_id, name, born, seen, balance, ratio, flag FROM customer WHERE score > ? ORDER BY balance DESC, customer_id LIMIT ?", mysql_async::Params::Positional(vec![10i64.into(), 15i64.into()])),
        ("SELECT COUNT(*), SUM(balance), MIN(born), MAX(seen), AVG(score) FROM customer WHERE name LIKE ?", mysql_async::Params::Positional(vec!["n3%".into()])),
        ("SELECT score, COUNT(*) FROM customer GROUP BY score ORDER BY score", mysql_async::Params::Empty),
    ] {
        let mut a = fetch(&mut r, sql, p.clone()).await;
        let mut b = fetch(&mut o, sql, p).await;
        if !sql.contains("ORDER BY") {
            a.sort();
            b.sort();
        }
        assert_eq!(a, b, "{sql}");
    }
    // Updates by parameter reach the same rows.
    let up = "UPDATE customer SET score = score + ? WHERE customer_id = ?";
    for id in [3i64, 4, 5, 60] {
        r.exec_drop(up, (100i64, id)).await.expect("update");
        o.exec_drop(up, (100i64, id)).await.expect("update");
    }
    same(&mut r, &mut o, "SELECT * FROM customer").await;
    // Errors come back as errors; a closed statement is gone.
    let e = r
        .exec_drop("SELECT nocol FROM customer WHERE customer_id = ?", (1i64,))
        .await;
    assert!(
        matches!(e, Err(mysql_async::Error::Server(ref s)) if s.code == 1054),
        "{e:?}"
    );
    let stmt = r
        .prep("SELECT name FROM customer WHERE customer_id = ?")
        .await
        .expect("prep");
    let name: Option<Option<String>> = r.exec_first(&stmt, (2i64,)).await.expect("exec");
    assert_eq!(name.flatten().as_deref(), Some("n2'\\2"));
    r.close(stmt).await.expect("close");
    drop(r);
    h.stop().await;
}

async fn fetch(c: &mut mysql_async::Conn, sql: &str, p: mysql_async::Params) -> Vec<String> {
    let rows: Vec<mysql_async::Row> = c
        .exec(sql, p)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| format!("{:?}", r.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_feed_auto_increment_columns() {
    let vschema = "
keyspace: app
sharded: true
logical_shards: 8
tables:
  customer: { shard_key: customer_id, auto_increment: { column: customer_id, sequence: lookup.customer_seq } }
";
    let h = Harness::start(2, 0, vschema).await;
    let lookup = tessera_topo::VSchema::from_yaml(
        "keyspace: lookup\ntables:\n  customer_seq: { type: sequence }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &lookup)
        .await
        .expect("apply lookup");
    let mut c = h.conn(None).await;
    let mut seen = false;
    for _ in 0..50 {
        if c.query_drop("USE lookup").await.is_ok() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the router follows the new keyspace");
    c.query_drop("CREATE TABLE customer_seq (id INT PRIMARY KEY, next_id BIGINT NOT NULL, cache BIGINT NOT NULL)").await.expect("seq table");
    c.query_drop("INSERT INTO customer_seq (id, next_id, cache) VALUES (0, 1000, 5)")
        .await
        .expect("seq row");
    c.query_drop("USE app").await.expect("use app");
    c.query_drop("CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(20))")
        .await
        .expect("table");
    let r = c
        .query_iter("INSERT INTO customer (name) VALUES ('a'), ('b'), ('c')")
        .await
        .expect("insert");
    assert_eq!(r.last_insert_id(), Some(1000), "the first id of the insert");
    assert_eq!(r.affected_rows(), 3);
    drop(r);
    assert_eq!(
        rows(&mut c, "SELECT LAST_INSERT_ID()").await,
        vec![vec!["1000".to_string()]]
    );
    for n in 0..4 {
        c.query_drop(format!("INSERT INTO customer (name) VALUES ('x{n}')"))
            .await
            .expect("insert");
    }
    // A second router shares the sequence: ids never collide.
    let mut c2 = h.conn(Some("app")).await;
    c2.query_drop("INSERT INTO customer (name) VALUES ('other')")
        .await
        .expect("insert");
    let ids: Vec<u64> = c
        .query("SELECT customer_id FROM customer ORDER BY customer_id")
        .await
        .expect("ids");
    assert_eq!(ids.len(), 8);
    let mut dedup = ids.clone();
    dedup.dedup();
    assert_eq!(dedup, ids, "ids are unique");
    assert_eq!(&ids[..7], &[1000, 1001, 1002, 1003, 1004, 1005, 1006]);
    // Rows sit on the logical shard of the id they were given.
    assert_eq!(
        rows(&mut c, "SELECT name FROM customer WHERE customer_id = 1001").await,
        vec![vec!["b".to_string()]]
    );
    // An explicit id still works.
    c.query_drop("INSERT INTO customer (customer_id, name) VALUES (5, 'five')")
        .await
        .expect("explicit id");
    drop(c);
    drop(c2);
    h.stop().await;
}

/// Reads one protocol packet: (sequence id, payload).
async fn read_raw(s: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut h = [0u8; 4];
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut h))
        .await
        .ok()?
        .ok()?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    Some((h[3], p))
}

async fn write_raw(s: &mut tokio::net::TcpStream, seq: u8, payload: &[u8]) -> bool {
    use tokio::io::AsyncWriteExt;
    let len = payload.len() as u32;
    let mut p = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    p.extend_from_slice(payload);
    s.write_all(&p).await.is_ok()
}

/// Logs in as `nopw` (no password) by hand; returns the stream ready for commands.
async fn raw_login(port: u16) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (_, greeting) = read_raw(&mut s).await.expect("greeting");
    assert_eq!(greeting.first(), Some(&10), "protocol version 10");
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD | TRANSACTIONS
    let caps: u32 = 0x200 | 0x8000 | 0x80000 | 0x1 | 0x2000;
    let mut r = Vec::new();
    r.extend_from_slice(&caps.to_le_bytes());
    r.extend_from_slice(&(16u32 << 20).to_le_bytes());
    r.push(45);
    r.extend_from_slice(&[0u8; 23]);
    r.extend_from_slice(b"nopw\0");
    r.push(0); // empty auth response
    r.extend_from_slice(b"mysql_native_password\0");
    assert!(write_raw(&mut s, 1, &r).await);
    let mut seq = 2;
    loop {
        let (sq, p) = read_raw(&mut s).await.expect("auth reply");
        match p.first() {
            Some(0x00) => return s,
            // Auth switch or more data: answer with the empty token.
            Some(0xfe) | Some(0x01) => {
                seq = sq.wrapping_add(1);
                assert!(write_raw(&mut s, seq, &[]).await);
            }
            other => panic!("login failed: {other:?} {p:?} (seq {seq})"),
        }
    }
}

/// Malformed and hostile packets after login (random bytes, truncated commands, bad
/// statement ids, wrong sequence numbers, oversized length claims) get an ERR packet or a
/// closed connection — never a crash, a hang or an OK for garbage — and the router keeps
/// answering other clients correctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_errors_and_the_router_keeps_serving() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    for d in DDL {
        c.query_drop(*d).await.expect("ddl");
    }
    c.query_drop("INSERT INTO customer (customer_id, name) VALUES (1, 'a'), (2, 'b')")
        .await
        .expect("insert");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut errors, mut closed) = (0, 0);
    for i in 0..120u32 {
        let mut s = raw_login(h.port()).await;
        let n = (rand() % 24) as usize;
        let mut body: Vec<u8> = (0..n).map(|_| rand() as u8).collect();
        let seq = match i % 6 {
            // A command byte the router knows, with a garbage body.
            0 => {
                body.insert(
                    0,
                    [0x03, 0x16, 0x17, 0x1a, 0x04, 0x11][(rand() % 6) as usize],
                );
                0
            }
            // COM_STMT_EXECUTE of a statement that does not exist.
            1 => {
                body = vec![0x17, 0xef, 0xbe, 0xad, 0xde, 0, 1, 0, 0, 0];
                0
            }
            // A wrong sequence id.
            2 => 1 + (rand() % 200) as u8,
            // Malformed SQL bytes (invalid UTF-8).
            3 => {
                body = vec![0x03, b'S', b'E', 0xff, 0xfe, b'L'];
                0
            }
            _ => 0,
        };
        if body
            .first()
            .is_some_and(|&b| b == 0x01 || b == 0x18 || b == 0x19)
        {
            // COM_QUIT, SEND_LONG_DATA and STMT_CLOSE have no answer.
            body[0] = 0x03;
        }
        assert!(write_raw(&mut s, seq, &body).await);
        match read_raw(&mut s).await {
            None => closed += 1,
            Some((_, p)) => {
                match p.first() {
                    Some(0xff) => errors += 1,
                    // Some garbage is a valid command (COM_PING, an empty COM_QUERY's
                    // error…): whatever comes must be a well-formed packet, and not an OK
                    // to a COM_QUERY of garbage.
                    Some(0x00) if body.first() == Some(&0x03) && body.len() > 1 => {
                        panic!("OK for a garbage query {body:?}")
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(errors + closed >= 100, "{errors} errors, {closed} closed");
    assert!(errors > 20, "{errors} errors");
    // An oversized length claim: the router closes or errors, without allocating it.
    let mut s = raw_login(h.port()).await;
    {
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(&[0xff, 0xff, 0xff, 0, 0x03, b'S']).await;
        drop(s);
    }
    // Still serving, with right answers.
    let mut c = h.conn(Some("demo")).await;
    let rows: Vec<(i64, String)> = c
        .query("SELECT customer_id, name FROM customer ORDER BY customer_id")
        .await
        .expect("query after the barrage");
    assert_eq!(rows, vec![(1, "a".to_string()), (2, "b".to_string())]);
}

/// Single-shard statements outside transactions run on the router's own backend connections,
/// which carry each session's `SET`s: sessions with different `SET`s never see each other's,
/// connections the server closed while idle are not handed out, and packets over 16 MiB
/// cross in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_backend_connections_keep_sessions_apart_and_survive_killed_connections() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    for d in DDL {
        c.query_drop(*d).await.expect("ddl");
    }
    c.query_drop(
        "INSERT INTO customer (customer_id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    .await
    .expect("insert");
    // Column definitions pass as the server sent them, with the logical shard's schema
    // named as the keyspace.
    {
        let mut r = c
            .query_iter("SELECT name AS n, customer_id + 1 FROM customer WHERE customer_id = 2")
            .await
            .expect("select");
        let cols = r.columns().expect("a result set");
        assert_eq!(cols.len(), 2);
        assert_eq!(cols[0].schema_str(), "demo");
        assert_eq!(cols[0].org_table_str(), "customer");
        assert_eq!(cols[0].name_str(), "n");
        assert_eq!(cols[0].org_name_str(), "name");
        assert_eq!(cols[1].schema_str(), "");
        let got: Vec<(String, i64)> = r.collect().await.expect("rows");
        assert_eq!(got, vec![("two".to_string(), 3)]);
    }
    let mut a = h.conn(Some("demo")).await;
    let mut b = h.conn(Some("demo")).await;
    let mut z = h.conn(Some("demo")).await;
    a.query_drop("SET time_zone = '+05:00'").await.expect("set");
    z.query_drop("SET time_zone = '-03:00'").await.expect("set");
    z.query_drop("SET @tag = 'zed'").await.expect("set");
    let default_tz = rows(&mut b, "SELECT @@time_zone").await[0][0].clone();
    assert_ne!(default_tz, "+05:00");
    let check = |who: &'static str, r: Vec<Vec<String>>, tz: &str| {
        assert_eq!(r.len(), 1, "{who}: {r:?}");
        assert_eq!(r[0][1], tz, "{who} sees its own time zone: {r:?}");
    };
    for round in 0..3 {
        for k in 1..=3 {
            let q = format!("SELECT name, @@time_zone, @tag FROM customer WHERE customer_id = {k}");
            let ra = rows(&mut a, &q).await;
            check("a", ra.clone(), "+05:00");
            assert_eq!(ra[0][2], "NULL", "a does not see z's user variable");
            check("b", rows(&mut b, &q).await, &default_tz);
            let rz = rows(&mut z, &q).await;
            check("z", rz.clone(), "-03:00");
            assert_eq!(rz[0][2], "zed");
            assert_eq!(
                rows(&mut b, "SELECT @@time_zone").await,
                vec![vec![default_tz.clone()]],
                "round {round}"
            );
        }
        // The server closes every idle connection (as wait_timeout or a DBA's KILL would);
        // the next statements must not land on a dead one.
        for i in 0..2 {
            let mut d = h.direct(i).await;
            d.query_drop("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
                .await
                .expect("max_allowed_packet");
            let ids: Vec<u64> = d
                .query(
                    "SELECT id FROM information_schema.processlist \
                     WHERE command = 'Sleep' AND id <> CONNECTION_ID()",
                )
                .await
                .expect("processlist");
            for id in ids {
                let _ = d.query_drop(format!("KILL {id}")).await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A 17 MiB value: the INSERT and the row each span two protocol packets.
    let big: String = (0..17 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut c = mysql_async::Conn::new(
        h.opts(Some("demo"), USER, PASSWORD)
            .max_allowed_packet(Some(64 * 1024 * 1024)),
    )
    .await
    .expect("connect");
    c.query_drop("ALTER TABLE customer MODIFY note LONGTEXT")
        .await
        .expect("alter");
    c.query_drop(format!(
        "UPDATE customer SET note = '{big}' WHERE customer_id = 2"
    ))
    .await
    .expect("17 MiB update");
    let got: Vec<(i64, Vec<u8>)> = c
        .query("SELECT customer_id, note FROM customer WHERE customer_id = 2")
        .await
        .expect("17 MiB row");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), big.len());
    assert!(got[0].1 == big.as_bytes(), "the row arrives intact");
    drop((a, b, z, c));
    h.stop().await;
}

/// Prepared reads on one shard — whatever their parameters (reference tables, no table at
/// all) or by the shard key they bind — run as server-side prepared statements on that shard:
/// values in both directions match one MariaDB's prepared answers, session SETs stay apart,
/// and reads over several shards or inside a transaction still answer the same (literals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_reads_on_one_shard_run_as_server_prepared_statements() {
    use mysql_async::{Params, Value};
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let ddl = "CREATE TABLE country (code CHAR(2) PRIMARY KEY, name VARCHAR(64), pop BIGINT UNSIGNED, area DOUBLE, founded DATE, updated DATETIME(3), gdp DECIMAL(14,2), flag BLOB)";
    both(&mut r, &mut o, ddl).await;
    let ins = "INSERT INTO country VALUES ('FR', 'France', 68000000, 551695.5, '1792-09-22', '2026-11-24 10:00:00.125', 3031000000.75, x'00ff10'), ('IS', 'Ísland', 380000, 103000, '1944-06-17', NULL, 31000000, NULL), ('NZ', 'New Zealand', 18446744073709551615, 268021, NULL, '2000-01-01 00:00:00', -1.5, 'kiwi')";
    both(&mut r, &mut o, ins).await;
    let before = stmt_executes(&h).await;
    let cases: Vec<(&str, Params)> = vec![
        (
            "SELECT * FROM country WHERE code = ?",
            Params::Positional(vec!["FR".into()]),
        ),
        (
            "SELECT * FROM country WHERE code = ?",
            Params::Positional(vec!["IS".into()]),
        ),
        (
            "SELECT * FROM country WHERE code = ?",
            Params::Positional(vec!["NZ".into()]),
        ),
        (
            "SELECT * FROM country WHERE code = ?",
            Params::Positional(vec!["XX".into()]),
        ),
        (
            "SELECT code, pop, area FROM country WHERE pop > ? ORDER BY code",
            Params::Positional(vec![1000u64.into()]),
        ),
        (
            "SELECT code FROM country WHERE founded < ? ORDER BY code",
            Params::Positional(vec![Value::Date(1900, 1, 1, 0, 0, 0, 0)]),
        ),
        (
            "SELECT code, name FROM country WHERE name = ?",
            Params::Positional(vec!["ísland".into()]),
        ),
        (
            "SELECT ?, ? + 1, CONCAT(?, 'x'), ? IS NULL, ?",
            Params::Positional(vec![
                42i64.into(),
                2.5f64.into(),
                "ab'c".into(),
                Value::NULL,
                Value::Bytes(vec![0, 255, 7]),
            ]),
        ),
        (
            "SELECT CAST(? AS DATE), ? * 2, ?",
            Params::Positional(vec![
                Value::Date(2026, 11, 28, 13, 14, 15, 0),
                (-7i64).into(),
                u64::MAX.into(),
            ]),
        ),
    ];
    let mut n = 0u64;
    for round in 0..2 {
        for (sql, p) in &cases {
            let a = fetch(&mut r, sql, p.clone()).await;
            let b = fetch(&mut o, sql, p.clone()).await;
            assert_eq!(a, b, "round {round}: {sql}");
            n += 1;
        }
    }
    let forwarded = stmt_executes(&h).await - before;
    assert!(
        forwarded >= n,
        "each of the {n} executes ran as a server-side prepared statement ({forwarded} seen)"
    );
    // By shard key: the bound values pick the logical shard, the statement runs there
    // prepared; several keys (IN) or a range still answer, through literals.
    both(&mut r, &mut o, DDL[0]).await;
    let mut vals = Vec::new();
    for i in 1..=60 {
        vals.push(format!("({i}, 'n{i}', 'e{i}@x', {}, NULL)", i * 7 % 13));
    }
    both(
        &mut r,
        &mut o,
        &format!(
            "INSERT INTO customer (customer_id, name, email, score, note) VALUES {}",
            vals.join(",")
        ),
    )
    .await;
    let before = stmt_executes(&h).await;
    let mut keyed = 0u64;
    for k in [1i64, 2, 17, 33, 60, 61, -5] {
        let sql = "SELECT customer_id, name, score FROM customer WHERE customer_id = ?";
        let a = fetch(&mut r, sql, Params::Positional(vec![k.into()])).await;
        let b = fetch(&mut o, sql, Params::Positional(vec![k.into()])).await;
        assert_eq!(a, b, "{sql} with {k}");
        keyed += 1;
    }
    for (sql, p) in [
        (
            "SELECT customer_id, name FROM customer WHERE customer_id IN (?, ?, ?)",
            Params::Positional(vec![3i64.into(), 30i64.into(), 59i64.into()]),
        ),
        (
            "SELECT customer_id FROM customer WHERE score = ?",
            Params::Positional(vec![5i64.into()]),
        ),
    ] {
        let mut a = fetch(&mut r, sql, p.clone()).await;
        let mut b = fetch(&mut o, sql, p).await;
        a.sort();
        b.sort();
        assert_eq!(a, b, "{sql}");
    }
    let forwarded = stmt_executes(&h).await - before;
    assert!(
        forwarded >= keyed,
        "each keyed execute ran prepared on its shard ({forwarded} of {keyed})"
    );
    // Session SETs apart, with statements prepared on shared connections.
    let mut s = h.conn(Some("demo")).await;
    s.query_drop("SET time_zone = '+05:00'").await.expect("set");
    for _ in 0..3 {
        let tz_s: Option<(String, i64)> = s
            .exec_first("SELECT @@time_zone, ?", (1i64,))
            .await
            .expect("exec");
        assert_eq!(tz_s.map(|x| x.0).as_deref(), Some("+05:00"));
        let tz_r: Option<(String, i64)> = r
            .exec_first("SELECT @@time_zone, ?", (1i64,))
            .await
            .expect("exec");
        assert_ne!(tz_r.map(|x| x.0).as_deref(), Some("+05:00"));
    }
    // In a transaction the same statements answer the same (literals on the pinned connection).
    r.query_drop("BEGIN").await.expect("begin");
    for (sql, p) in &cases {
        let a = fetch(&mut r, sql, p.clone()).await;
        let b = fetch(&mut o, sql, p.clone()).await;
        assert_eq!(a, b, "in a transaction: {sql}");
    }
    r.query_drop("COMMIT").await.expect("commit");
    let e = r
        .exec_drop("SELECT nocol FROM country WHERE code = ?", ("FR",))
        .await;
    assert!(
        matches!(e, Err(mysql_async::Error::Server(ref s)) if s.code == 1054),
        "{e:?}"
    );
    drop((r, s));
    h.stop().await;
}

/// `Com_stmt_execute` summed over the physical shards (servers 0 and 1).
async fn stmt_executes(h: &Harness) -> u64 {
    let mut n = 0u64;
    for i in [0usize, 1] {
        let mut d = h.direct(i).await;
        let v: Option<(String, u64)> = d
            .query_first("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
            .await
            .expect("status");
        n += v.map(|x| x.1).unwrap_or(0);
    }
    n
}

/// `UPDATE`/`DELETE … LIMIT n` over several logical shards: as on MariaDB, any n matching rows
/// (fewer when fewer match) — the affected rows, the `Rows matched` an `UPDATE`'s limit counts
/// (changed or not), rows left that match, and all of it undone when a part fails; `ORDER BY`
/// without a `LIMIT` across logical shards is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_with_limit_over_logical_shards() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop(DDL[0]).await.expect("create");
    let values: Vec<String> = (1..=40)
        .map(|i| format!("({i}, 'c{i}', NULL, {}, NULL)", i % 2))
        .collect();
    r.query_drop(format!("INSERT INTO customer VALUES {}", values.join(", ")))
        .await
        .expect("rows");
    let count = |c: &'static str| format!("SELECT COUNT(*) FROM customer WHERE {c}");
    async fn n(r: &mut mysql_async::Conn, sql: &str) -> u64 {
        r.query_first::<u64, _>(sql).await.expect(sql).unwrap_or(0)
    }

    // 20 rows have score 1: an UPDATE of 7 of them.
    r.query_drop("UPDATE customer SET score = 2 WHERE score = 1 LIMIT 7")
        .await
        .expect("update limit");
    assert_eq!(r.affected_rows(), 7);
    assert_eq!(n(&mut r, &count("score = 2")).await, 7);
    assert_eq!(n(&mut r, &count("score = 1")).await, 13);
    // Rows that match but do not change count against the limit, as MariaDB counts them.
    r.query_drop("UPDATE customer SET note = NULL WHERE score IN (1, 2) LIMIT 5")
        .await
        .expect("unchanged rows");
    assert_eq!(r.affected_rows(), 0);
    assert!(r.info().contains("Rows matched: 5"), "{}", r.info());
    // A limit above the matches changes them all.
    r.query_drop("UPDATE customer SET score = 3 WHERE score = 2 LIMIT 1000")
        .await
        .expect("update all");
    assert_eq!(r.affected_rows(), 7);

    // DELETE: 5 of the 20 rows with score 0, then the rest of them.
    r.query_drop("DELETE FROM customer WHERE score = 0 LIMIT 5")
        .await
        .expect("delete limit");
    assert_eq!(r.affected_rows(), 5);
    assert_eq!(n(&mut r, &count("score = 0")).await, 15);
    assert_eq!(n(&mut r, &count("TRUE")).await, 35);
    // In the client's transaction: undone by its rollback.
    r.query_drop("BEGIN").await.expect("begin");
    r.query_drop("DELETE FROM customer WHERE score = 0 LIMIT 4")
        .await
        .expect("delete in a transaction");
    assert_eq!(r.affected_rows(), 4);
    r.query_drop("ROLLBACK").await.expect("rollback");
    assert_eq!(n(&mut r, &count("score = 0")).await, 15);
    r.query_drop("DELETE FROM customer WHERE score = 0 LIMIT 100")
        .await
        .expect("delete the rest");
    assert_eq!(r.affected_rows(), 15);
    assert_eq!(n(&mut r, &count("TRUE")).await, 20);

    // A part that fails undoes the parts before it: rows a (a lower logical shard) and b2
    // get an email that b1, in b2's logical shard, holds under a unique key; a's part runs
    // first and succeeds, b2's fails, and a keeps its email.
    let ls = |id: i128| {
        tessera_router::vindex::logical_shard(
            tessera_router::vindex::keyspace_id(
                tessera_topo::VindexKind::Xxhash,
                &tessera_router::vindex::KeyValue::Int(id),
            )
            .expect("ksid"),
            16,
        )
    };
    // (The rows left: odd ids.)
    let ids: Vec<i128> = (1..=40).filter(|i| i % 2 == 1).collect();
    let (a, b1, b2) = ids
        .iter()
        .flat_map(|&a| ids.iter().map(move |&b1| (a, b1)))
        .flat_map(|(a, b1)| ids.iter().map(move |&b2| (a, b1, b2)))
        .find(|&(a, b1, b2)| b1 != b2 && ls(a) < ls(b1) && ls(b1) == ls(b2))
        .expect("three such rows");
    r.query_drop("ALTER TABLE customer ADD UNIQUE KEY (email)")
        .await
        .expect("unique key");
    r.query_drop(format!(
        "UPDATE customer SET email = 'taken' WHERE customer_id = {b1}"
    ))
    .await
    .expect("b1");
    let e = r
        .query_drop(format!(
            "UPDATE customer SET email = 'taken' WHERE customer_id IN ({a}, {b2}) LIMIT 10"
        ))
        .await
        .expect_err("a duplicate in the second part");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1062),
        "{e:?}"
    );
    let kept: Option<Option<String>> = r
        .query_first(format!(
            "SELECT email FROM customer WHERE customer_id = {a}"
        ))
        .await
        .expect("a");
    assert_eq!(kept, Some(None), "the first part was undone");

    // ORDER BY without LIMIT across logical shards is refused; on one logical shard it runs.
    let e = r
        .query_drop("DELETE FROM customer ORDER BY customer_id")
        .await
        .expect_err("ORDER BY without LIMIT across logical shards");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1235),
        "{e:?}"
    );
    r.query_drop("DELETE FROM customer WHERE customer_id = 1 ORDER BY score LIMIT 1")
        .await
        .expect("one logical shard");
    drop(r);
    h.stop().await;
}

/// A read over several logical shards that the client's `LIMIT` cuts short leaves its
/// backend connections reusable (the rows past the limit are read and dropped): twenty such
/// reads open no new connections to MariaDB after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cut_short_by_limit_keep_their_connections() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop(DDL[0]).await.expect("create");
    let values: Vec<String> = (1..=400)
        .map(|i| format!("({i}, 'c{i}', NULL, {i}, NULL)"))
        .collect();
    r.query_drop(format!("INSERT INTO customer VALUES {}", values.join(", ")))
        .await
        .expect("rows");
    async fn connections(h: &Harness) -> u64 {
        let mut total = 0;
        for i in 0..2 {
            let mut d = h.direct(i).await;
            let row: Option<(String, u64)> = d
                .query_first("SHOW GLOBAL STATUS LIKE 'Connections'")
                .await
                .expect("status");
            total += row.map_or(0, |(_, n)| n);
        }
        total
    }
    let rows: Vec<u64> = r
        .query("SELECT customer_id FROM customer LIMIT 3")
        .await
        .expect("first");
    assert_eq!(rows.len(), 3);
    let before = connections(&h).await;
    for _ in 0..20 {
        let rows: Vec<u64> = r
            .query("SELECT customer_id FROM customer LIMIT 3")
            .await
            .expect("limited read");
        assert_eq!(rows.len(), 3);
    }
    // (Each `connections` call itself opens two.)
    let opened = connections(&h).await - before - 2;
    assert!(
        opened < 5,
        "{opened} backend connections opened for 20 reads"
    );
    drop(r);
    h.stop().await;
}

/// `UPDATE`/`DELETE … ORDER BY … LIMIT n` over several logical shards, against MariaDB direct
/// with the same rows: the same rows written (the orders here are total, so exactly the
/// same), the same affected rows and info text, the order's collation and expressions
/// MariaDB's; undone by a rollback; refused on a table without a primary key and by a column
/// number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_updates_and_deletes_with_limit_over_logical_shards_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    both(&mut r, &mut o, DDL[0]).await;
    // Names that sort differently by case-insensitive collation and by bytes, scores with
    // ties broken by the key.
    let values: Vec<String> = (1..=60)
        .map(|i| {
            let name = if i % 3 == 0 {
                format!("B{i:02}")
            } else {
                format!("a{i:02}")
            };
            format!("({i}, '{name}', NULL, {}, NULL)", (i * 7) % 10)
        })
        .collect();
    both(
        &mut r,
        &mut o,
        &format!("INSERT INTO customer VALUES {}", values.join(", ")),
    )
    .await;
    let all = "SELECT customer_id, name, score, note FROM customer";
    for sql in [
        "UPDATE customer SET note = 'first' WHERE score > 3 ORDER BY name LIMIT 5",
        "UPDATE customer SET note = 'bin' ORDER BY BINARY name DESC, customer_id LIMIT 4",
        "UPDATE customer c SET c.score = c.score + 100 WHERE c.note IS NULL ORDER BY c.score DESC, c.customer_id LIMIT 7",
        "UPDATE customer SET note = 'same' WHERE note = 'same' ORDER BY customer_id LIMIT 3",
        "UPDATE IGNORE customer SET score = score WHERE customer_id > 10 ORDER BY LENGTH(name), name DESC LIMIT 6",
        "UPDATE LOW_PRIORITY customer SET note = 'lp' WHERE customer_id = 5",
        "DELETE LOW_PRIORITY QUICK FROM customer WHERE score < 100 ORDER BY score, customer_id DESC LIMIT 4",
        "DELETE QUICK FROM customer WHERE customer_id = 11",
        "DELETE FROM customer ORDER BY name LIMIT 3",
        "DELETE FROM customer WHERE customer_id > 1000 ORDER BY name LIMIT 3",
        "UPDATE customer SET note = 'none' WHERE customer_id > 1000 ORDER BY name LIMIT 3",
    ] {
        r.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("router: {sql}: {e}"));
        o.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("oracle: {sql}: {e}"));
        assert_eq!(r.affected_rows(), o.affected_rows(), "{sql}");
        assert_eq!(r.info(), o.info(), "{sql}");
        same(&mut r, &mut o, all).await;
    }
    // In the client's transaction, undone by its rollback.
    let before = rows_sorted(&mut r, all).await;
    r.query_drop("BEGIN").await.expect("begin");
    r.query_drop("DELETE FROM customer ORDER BY score DESC LIMIT 10")
        .await
        .expect("delete in a transaction");
    assert_eq!(r.affected_rows(), 10);
    r.query_drop("ROLLBACK").await.expect("rollback");
    assert_eq!(rows_sorted(&mut r, all).await, before);
    // Refused: ORDER BY a column number (MariaDB reads it as a constant), no primary key.
    for sql in [
        "DELETE FROM customer ORDER BY 1 LIMIT 2",
        "UPDATE customer SET note = 'x' ORDER BY 2 DESC LIMIT 2",
    ] {
        let (code, msg) = error_code(&mut r, sql).await;
        assert_eq!(code, 1235, "{sql}: {msg}");
    }
    r.query_drop("CREATE TABLE orders (order_id BIGINT, customer_id BIGINT NOT NULL, amount DECIMAL(10,2), status VARCHAR(16))")
        .await
        .expect("a table without a primary key");
    let (code, msg) = error_code(&mut r, "DELETE FROM orders ORDER BY order_id LIMIT 1").await;
    assert!(code == 1235 && msg.contains("primary key"), "{code} {msg}");
    assert_eq!(rows_sorted(&mut r, all).await, before);
    drop(r);
    drop(o);
    h.stop().await;
}

/// A parameter sent with `COM_STMT_SEND_LONG_DATA` of the backend's `max_allowed_packet`
/// bytes (its statement with it could not be one packet there): the router sends it on as
/// long data to a server-side prepared statement, and the row holds every byte — outside a
/// transaction, and inside one (on the transaction's connection, committed or rolled back
/// with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_data_beyond_max_allowed_packet_goes_on_as_long_data() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop(DDL[0]).await.expect("create");
    c.query_drop("ALTER TABLE customer MODIFY note LONGBLOB")
        .await
        .expect("alter");
    let max: u64 = c
        .query_first("SELECT @@max_allowed_packet")
        .await
        .expect("read")
        .expect("a value");
    // Every byte value, as many as the backend takes in long data: bound into the statement's
    // text, they would make a packet larger than it takes.
    let data: Vec<u8> = (0..max as usize).map(|i| (i * 7 % 256) as u8).collect();
    let mut s = raw_login(h.port()).await;
    assert!(write_raw(&mut s, 0, &raw_command(0x02, b"demo")).await);
    assert_eq!(read_raw(&mut s).await.expect("use").1.first(), Some(&0));
    insert_long(&mut s, 7, &data).await;
    // In a transaction: kept by its commit (8), undone by its rollback (9).
    for (id, end) in [(8u64, &b"COMMIT"[..]), (9, b"ROLLBACK")] {
        assert!(write_raw(&mut s, 0, &raw_command(0x03, b"START TRANSACTION")).await);
        assert_eq!(read_raw(&mut s).await.expect("begin").1.first(), Some(&0));
        insert_long(&mut s, id, &data).await;
        assert!(write_raw(&mut s, 0, &raw_command(0x03, end)).await);
        assert_eq!(read_raw(&mut s).await.expect("end").1.first(), Some(&0));
    }
    drop(s);
    let got: Vec<(u64, u64, String)> = c
        .query("SELECT customer_id, LENGTH(note), MD5(note) FROM customer WHERE customer_id IN (7, 8, 9) ORDER BY customer_id")
        .await
        .expect("read back");
    // (The same bytes as a parameter of a read: mysql_async sends a value this large as long
    // data, which goes on as long data too.)
    let want_md5: String = c
        .exec_first("SELECT MD5(?)", (data.clone(),))
        .await
        .expect("MD5 of the data")
        .expect("a value");
    let len = data.len() as u64;
    assert_eq!(
        got,
        vec![(7, len, want_md5.clone()), (8, len, want_md5)],
        "rows 7 and 8 hold every byte, 9 was rolled back"
    );
    drop(c);
    h.stop().await;
}

fn raw_command(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![cmd];
    p.extend_from_slice(body);
    p
}

/// Inserts customer `id` with `data` as its note, sent as long data to a prepared statement,
/// on a raw connection; asserts one row affected.
async fn insert_long(s: &mut tokio::net::TcpStream, id: u64, data: &[u8]) {
    let sql = format!("INSERT INTO customer (customer_id, note) VALUES ({id}, ?)");
    assert!(write_raw(s, 0, &raw_command(0x16, sql.as_bytes())).await);
    let (_, ok) = read_raw(s).await.expect("prepare");
    assert_eq!(ok.first(), Some(&0), "{ok:?}");
    let stmt = [ok[1], ok[2], ok[3], ok[4]];
    let params = u16::from_le_bytes([ok[7], ok[8]]);
    assert_eq!(params, 1);
    // The parameter's definition and its EOF.
    for _ in 0..2 {
        read_raw(s).await.expect("parameter definitions");
    }
    for piece in data.chunks(1 << 20) {
        let mut body = stmt.to_vec();
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(piece);
        assert!(write_raw(s, 0, &raw_command(0x18, &body)).await);
    }
    // Execute: no cursor, one iteration, no NULLs, the type (a blob) bound, no value.
    let mut body = stmt.to_vec();
    body.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0xfc, 0]);
    assert!(write_raw(s, 0, &raw_command(0x17, &body)).await);
    let (_, answer) = read_raw(s).await.expect("execute");
    assert_eq!(
        answer.first(),
        Some(&0),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(answer.get(1), Some(&1), "one row affected");
}
