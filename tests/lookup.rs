//! Lookup vindexes against MariaDB direct: a table sharded by one column with a unique lookup
//! on another (and a non-unique one) answers, routes and enforces uniqueness as one MariaDB
//! holding the same rows does, and its lookup tables hold exactly the rows' values.

mod common;

use common::Harness;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;

const LOOKUPS: &str = "keyspace: lk\nsharded: false\n";

const DEMO: &str = "keyspace: demo
sharded: true
logical_shards: 16
tables:
  orders:
    shard_key: customer_id
    lookups:
      - { column: order_id, table: lk.orders_order_id }
      - { column: status, table: lk.orders_status, unique: false }
";

const ORDERS: &str =
    "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, \
     amount INT, status VARCHAR(16), KEY (status))";

/// Starts 2 physical shards and an oracle, the lookup keyspace, then `demo` (vschema text),
/// and waits until the router serves `demo`.
async fn start(demo: &str) -> Harness {
    let h = Harness::start(2, 1, LOOKUPS).await;
    apply(&h, demo).await.expect("apply demo");
    let mut probe = h.conn(None).await;
    for _ in 0..200 {
        if probe.query_drop("USE demo").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h
}

async fn apply(h: &Harness, yaml: &str) -> anyhow::Result<()> {
    let v = tessera_topo::VSchema::from_yaml(yaml)?;
    tessera::cli::apply_vschema(&h.topo, &v).await.map(|_| ())
}

async fn outcome(c: &mut Conn, sql: &str) -> Result<Vec<Vec<String>>, u16> {
    match c.query::<mysql_async::Row, _>(sql).await {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => "NULL".to_string(),
                        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .collect()),
        Err(mysql_async::Error::Server(e)) => Err(e.code),
        Err(other) => panic!("{sql}: {other}"),
    }
}

async fn same_as_mariadb(r: &mut Conn, o: &mut Conn, script: &[&str]) {
    for sql in script {
        let want = outcome(o, sql).await;
        let got = outcome(r, sql).await;
        assert_eq!(got, want, "{sql}");
        // Affected rows and warnings of writes too.
        assert_eq!(
            (r.affected_rows(), r.get_warnings()),
            (o.affected_rows(), o.get_warnings()),
            "affected rows and warnings of {sql}"
        );
    }
}

/// Entries of the lookup table `{table}` (`keyspace.table`) that no row of `orders` holds (orphans) and
/// values of `orders` whose entry is missing or names another keyspace id.
async fn disagreement(r: &mut Conn, table: &str, column: &str) -> (Vec<String>, Vec<String>) {
    // An entry taken over names its previous keyspace id too until it is settled.
    let entries: Vec<(String, u64)> = r
        .query(format!(
            "SELECT CAST({column} AS CHAR), keyspace_id FROM {table} UNION ALL \
             SELECT CAST({column} AS CHAR), previous_keyspace_id FROM {table} \
             WHERE previous_keyspace_id IS NOT NULL"
        ))
        .await
        .expect("lookup rows");
    let rows: Vec<(String, u64)> = r
        .query(format!(
            "SELECT CAST({column} AS CHAR), customer_id FROM demo.orders WHERE {column} IS NOT NULL"
        ))
        .await
        .expect("rows");
    let want: std::collections::BTreeSet<(String, u64)> = rows
        .into_iter()
        .map(|(v, c)| (v, ksid(i128::from(c))))
        .collect();
    let have: std::collections::BTreeSet<(String, u64)> = entries.into_iter().collect();
    let orphans = have
        .difference(&want)
        .map(|(v, k)| format!("{v}@{k}"))
        .collect();
    let missing = want
        .difference(&have)
        .map(|(v, k)| format!("{v}@{k}"))
        .collect();
    (orphans, missing)
}

/// Routing by the lookup column, duplicates across logical shards, the conflict-resolving
/// inserts and deletes, in and out of transactions: MariaDB's rows, errors and counts; the
/// lookup tables list exactly the rows' values afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_and_plain_lookups_like_mariadb() {
    let h = start(DEMO).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    same_as_mariadb(
        &mut r,
        &mut o,
        &[
            ORDERS,
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1, 10, 100, 'new'), (2, 11, 200, 'paid'), (3, 12, 300, 'new'), (4, 13, 400, 'paid')",
            "INSERT INTO orders VALUES (8, 14, 800, 'shipped') -- a row without a column list",
            "SELECT ROW_COUNT()",
            // A duplicate of a value held on another logical shard: 1062, nothing written.
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1, 20, 5, 'dup')",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (5, 20, 5, 'x'), (2, 21, 5, 'dup')",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (9, 20, 5, 'x'), (9, 21, 5, 'dup')",
            "SELECT * FROM orders ORDER BY order_id",
            "SELECT order_id, customer_id FROM orders WHERE order_id = 3",
            "SELECT order_id FROM orders WHERE order_id IN (1, 4, 99) ORDER BY order_id",
            "SELECT COUNT(*) FROM orders WHERE order_id = 99",
            "SELECT order_id FROM orders WHERE status = 'new' ORDER BY order_id",
            "SELECT o.order_id FROM orders o WHERE o.order_id = 2 /* by alias */",
            // Comments anywhere change nothing.
            "SELECT /* a */ amount FROM orders -- b\n WHERE /*!100000 order_id = 3 AND */ order_id = 3 # c",
            "SELECT COUNT(*) FROM orders WHERE order_id IN (1, /* x */ 2) -- y",
            // Conflict-resolving inserts act on the row wherever it lives.
            "INSERT IGNORE INTO orders (order_id, customer_id, amount, status) VALUES (1, 30, 1, 'ign'), (6, 30, 6, 'new')",
            "SELECT ROW_COUNT()",
            "INSERT IGNORE INTO orders (order_id, customer_id, amount, status) VALUES (1, 31, 1, 'ign')",
            "REPLACE INTO orders (order_id, customer_id, amount, status) VALUES (2, 40, 222, 'replaced')",
            "SELECT ROW_COUNT()",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (3, 50, 0, 'x') ON DUPLICATE KEY UPDATE amount = amount + 1",
            "SELECT ROW_COUNT()",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (3, 12, 0, 'x'), (7, 51, 7, 'new') ON DUPLICATE KEY UPDATE amount = amount + 10",
            "SELECT * FROM orders ORDER BY order_id",
            // Deleted values are free again, on any logical shard.
            "DELETE /* c */ FROM orders # d\n WHERE order_id = 4 -- e",
            "SELECT ROW_COUNT()",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (4, 60, 4, 'again')",
            "SELECT order_id, customer_id FROM orders WHERE order_id = 4",
            "UPDATE orders SET amount = 7 WHERE order_id = 4",
            "SELECT ROW_COUNT()",
            "DELETE FROM /* c */ orders WHERE status = 'new' # trailing",
            "SELECT ROW_COUNT()",
            "SELECT * FROM orders ORDER BY order_id",
            // In a transaction: its own uncommitted rows are found by the lookup; a rollback
            // leaves no entry.
            "BEGIN",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (70, 70, 70, 'txn')",
            "SELECT order_id, customer_id FROM orders WHERE order_id = 70",
            "DELETE FROM orders WHERE order_id = 2",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (2, 71, 2, 'moved')",
            "ROLLBACK",
            "SELECT order_id FROM orders WHERE order_id IN (70, 2)",
            "BEGIN",
            "DELETE FROM orders WHERE order_id = 2",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (2, 71, 2, 'moved')",
            "COMMIT",
            "SELECT * FROM orders ORDER BY order_id",
            // Updates of lookup columns move the entries with the values.
            "UPDATE orders SET order_id = 100 WHERE order_id = 1",
            "SELECT ROW_COUNT()",
            "SELECT order_id, customer_id FROM orders WHERE order_id IN (1, 100) ORDER BY order_id",
            "UPDATE orders SET order_id = 3 WHERE order_id = 100",
            "UPDATE orders SET status = 'bulk', amount = amount + 1 WHERE amount > 100 -- several",
            "SELECT ROW_COUNT()",
            "SELECT order_id FROM orders WHERE status = 'bulk' ORDER BY order_id",
            "UPDATE orders SET status = NULL WHERE order_id = 3",
            "SELECT order_id FROM orders WHERE status IS NULL",
            "BEGIN",
            "UPDATE orders SET order_id = 200 WHERE order_id = 100",
            "SELECT order_id, customer_id FROM orders WHERE order_id = 200",
            "ROLLBACK",
            "SELECT order_id FROM orders WHERE order_id IN (100, 200)",
            "BEGIN",
            "UPDATE orders SET order_id = 300 WHERE order_id = 100",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (100, 77, 1, 'reused')",
            "COMMIT",
            "SELECT * FROM orders ORDER BY order_id",
        ],
    )
    .await;
    for (table, column) in [
        ("lk.orders_order_id", "order_id"),
        ("lk.orders_status", "status"),
    ] {
        let (orphans, missing) = disagreement(&mut r, table, column).await;
        assert!(missing.is_empty(), "{table}: entries missing: {missing:?}");
        assert!(orphans.is_empty(), "{table}: orphans: {orphans:?}");
    }
    // A point read by the lookup column is one logical shard.
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT amount FROM orders WHERE order_id = 3")
        .await
        .expect("vexplain");
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert!(
        plan[0].0.starts_with("one (by lookup lk.orders_order_id)"),
        "{plan:?}"
    );
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT amount FROM orders WHERE order_id IN (1, 3, 8)")
        .await
        .expect("vexplain");
    assert!((1..=3).contains(&plan.len()), "{plan:?}");
    // What the router cannot keep consistent is refused, never run.
    for sql in [
        "UPDATE orders SET order_id = order_id + 1000 WHERE order_id = 300",
        "UPDATE orders SET customer_id = 99 WHERE order_id = 300",
        "INSERT INTO orders (customer_id, amount) VALUES (5, 5)",
        "INSERT INTO orders (order_id, customer_id) VALUES (1 + 100, 5)",
        "INSERT INTO orders (order_id, customer_id) VALUES (101, 5) ON DUPLICATE KEY UPDATE order_id = 102",
    ] {
        let (code, msg) = common::error_code(&mut r, sql).await;
        assert_eq!(code, 1235, "{sql}: {msg}");
    }
    drop((r, o));
    h.stop().await;
}

/// Declaring a serving lookup on a table that already holds rows is refused at apply (its
/// lookup table would miss them); write-only, then `tessera vindex backfill`, fills and
/// verifies it and starts routing by it; uniqueness holds from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_added_to_a_table_with_rows_are_backfilled_before_they_route() {
    let plain = "keyspace: demo\nsharded: true\nlogical_shards: 16\ntables:\n  orders: { shard_key: customer_id }\n";
    let h = start(plain).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop(ORDERS).await.expect("create");
    let mut values = Vec::new();
    for i in 0..500u64 {
        values.push(format!("({i}, {}, {i}, 's{}')", i * 7 + 1, i % 5));
    }
    r.query_drop(format!(
        "INSERT INTO orders (order_id, customer_id, amount, status) VALUES {}",
        values.join(", ")
    ))
    .await
    .expect("rows");
    let e = apply(&h, DEMO)
        .await
        .expect_err("a serving lookup over rows");
    assert!(e.to_string().contains("write_only"), "{e}");
    let write_only = DEMO
        .replace(
            "table: lk.orders_order_id }",
            "table: lk.orders_order_id, write_only: true }",
        )
        .replace("unique: false }", "unique: false, write_only: true }");
    apply(&h, &write_only).await.expect("write-only lookup");
    // Writes keep it while it fills.
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.query_drop(
        "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1000, 3, 1, 'w')",
    )
    .await
    .expect("insert while write-only");
    let report = tessera::cli::vindex_backfill(&h.topo, "demo", "orders", "order_id", false)
        .await
        .expect("backfill");
    assert_eq!(report.rows, 501, "{report:?}");
    assert_eq!(report.missing, 0, "{report:?}");
    for _ in 0..100 {
        let plan: Vec<(String, Option<String>, Option<String>, String)> = r
            .query("VEXPLAIN SELECT amount FROM orders WHERE order_id = 3")
            .await
            .expect("vexplain");
        if plan.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT amount FROM orders WHERE order_id = 3")
        .await
        .expect("vexplain");
    assert_eq!(
        plan.len(),
        1,
        "routes by the lookup after the backfill: {plan:?}"
    );
    let got: Vec<(u64, u64)> = r
        .query("SELECT order_id, customer_id FROM orders WHERE order_id IN (3, 499, 1000) ORDER BY order_id")
        .await
        .expect("read");
    assert_eq!(got, vec![(3, 22), (499, 3494), (1000, 3)]);
    let (code, _) = common::error_code(
        &mut r,
        "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (3, 999, 1, 'dup')",
    )
    .await;
    assert_eq!(code, 1062);
    let (orphans, missing) = disagreement(&mut r, "lk.orders_order_id", "order_id").await;
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "{missing:?} {orphans:?}"
    );
    drop(r);
    h.stop().await;
}

fn ksid(customer: i128) -> u64 {
    tessera_router::vindex::keyspace_id(
        tessera_topo::VindexKind::Xxhash,
        &tessera_router::vindex::KeyValue::Int(customer),
    )
    .expect("ksid")
}

/// The entry of order 50: its keyspace id and previous keyspace id.
async fn entry_of_50(r: &mut Conn) -> Option<(u64, Option<u64>)> {
    r.query_first(
        "SELECT keyspace_id, previous_keyspace_id FROM lk.orders_order_id WHERE order_id = 50",
    )
    .await
    .expect("entry")
}

/// A value taken over from a row the same transaction deleted (a `DELETE` then an `INSERT` of
/// the value for another customer, a `REPLACE` across logical shards): the entry names both
/// keyspace ids until the commit, and is settled before the OK. The state a router that died
/// between the entry's commit and the rows' leaves behind (the entry names the new keyspace id,
/// the old row is still there) routes to the old row, keeps the value unique, and settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_taken_over_name_both_rows_until_settled() {
    let h = start(DEMO).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop(ORDERS).await.expect("create");
    // Customers 1, 2 and 3 on three different logical shards.
    let (a, b, c) = (ksid(1), ksid(2), ksid(3));
    let ls = |k: u64| tessera_router::vindex::logical_shard(k, 16);
    assert!(ls(a) != ls(b) && ls(b) != ls(c) && ls(a) != ls(c));
    r.query_drop("INSERT INTO orders VALUES (50, 1, 10, 'a')")
        .await
        .expect("insert");
    assert_eq!(entry_of_50(&mut r).await, Some((a, None)));

    // Deleted and inserted again elsewhere in one transaction: settled at the commit.
    r.query_drop("BEGIN").await.expect("begin");
    r.query_drop("DELETE FROM orders WHERE order_id = 50")
        .await
        .expect("delete");
    r.query_drop("INSERT INTO orders VALUES (50, 2, 20, 'b')")
        .await
        .expect("insert again");
    r.query_drop("COMMIT").await.expect("commit");
    assert_eq!(entry_of_50(&mut r).await, Some((b, None)));
    let rows: Vec<(u64, u64)> = r
        .query("SELECT order_id, customer_id FROM orders WHERE order_id = 50")
        .await
        .expect("read");
    assert_eq!(rows, vec![(50, 2)]);

    // A REPLACE across logical shards: the old row goes, the entry follows, settled.
    r.query_drop("REPLACE INTO orders VALUES (50, 1, 30, 'c')")
        .await
        .expect("replace");
    assert_eq!(entry_of_50(&mut r).await, Some((a, None)));

    // What a router that died between the commits leaves: the entry names customer 2's row
    // (never committed), and customer 1's row (whose deletion rolled back) as its previous.
    r.query_drop(format!(
        "UPDATE lk.orders_order_id SET keyspace_id = {b}, previous_keyspace_id = {a} WHERE order_id = 50"
    ))
    .await
    .expect("crash state");
    let rows: Vec<(u64, u64)> = r
        .query("SELECT order_id, customer_id FROM orders WHERE order_id = 50")
        .await
        .expect("read");
    assert_eq!(
        rows,
        vec![(50, 1)],
        "the row is found through the previous id"
    );
    let n: Option<u64> = r
        .query_first("SELECT COUNT(*) FROM orders WHERE order_id IN (50, 51)")
        .await
        .expect("count");
    assert_eq!(n, Some(1));
    // Still unique: the row named as previous holds the value.
    let e = r
        .query_drop("INSERT INTO orders VALUES (50, 3, 1, 'x')")
        .await
        .expect_err("a duplicate");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1062),
        "{e:?}"
    );
    // An upsert goes to the row that holds the value.
    r.query_drop(
        "INSERT INTO orders VALUES (50, 3, 1, 'x') ON DUPLICATE KEY UPDATE amount = amount + 5",
    )
    .await
    .expect("upsert");
    let rows: Vec<(u64, u64, i64)> = r
        .query("SELECT order_id, customer_id, amount FROM orders WHERE order_id = 50")
        .await
        .expect("read");
    assert_eq!(rows, vec![(50, 1, 35)]);
    // Deleting it settles the entry: nothing names customer 1's logical shard any more.
    r.query_drop("DELETE FROM orders WHERE order_id = 50")
        .await
        .expect("delete");
    assert_eq!(entry_of_50(&mut r).await.and_then(|(_, p)| p), None);
    assert_eq!(
        r.query_first::<u64, _>("SELECT COUNT(*) FROM orders WHERE order_id = 50")
            .await
            .expect("count"),
        Some(0)
    );
    // The entry left (an orphan of a row never committed) is taken over by the next insert.
    r.query_drop("INSERT INTO orders VALUES (50, 3, 1, 'x')")
        .await
        .expect("insert over an orphan");
    assert_eq!(entry_of_50(&mut r).await, Some((c, None)));
    let (orphans, missing) = disagreement(&mut r, "lk.orders_order_id", "order_id").await;
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "{missing:?} {orphans:?}"
    );

    // A lookup table made before the previous keyspace id: a clear error naming the command
    // that brings it up to date, which does.
    r.query_drop("ALTER TABLE lk.orders_order_id DROP COLUMN previous_keyspace_id")
        .await
        .expect("an older table");
    let e = r
        .query_drop("SELECT * FROM orders WHERE order_id = 50")
        .await
        .expect_err("an older table");
    assert!(e.to_string().contains("tessera vindex backfill"), "{e}");
    tessera::cli::vindex_backfill(&h.topo, "demo", "orders", "order_id", false)
        .await
        .expect("backfill");
    let rows: Vec<(u64, u64)> = r
        .query("SELECT order_id, customer_id FROM orders WHERE order_id = 50")
        .await
        .expect("read");
    assert_eq!(rows, vec![(50, 3)]);
    drop(r);
    h.stop().await;
}

/// A router process killed (SIGKILL) again and again under writers that insert, replace and
/// delete values of a unique lookup on random logical shards, in and out of transactions:
/// afterwards no row lacks its entry, no value is held twice, and orphans (allowed) are
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_routers_never_leave_a_row_without_its_entry() {
    use rand::Rng;
    use std::process::{Command, Stdio};
    let h = start(DEMO).await;
    {
        let mut r = h.conn(Some("demo")).await;
        r.query_drop(ORDERS).await.expect("create");
    }
    // The topology the harness keeps, served over HTTP to router processes.
    let topo_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("topo port");
    let topo_addr = topo_listener.local_addr().expect("addr");
    let app = tessera_topo::http::server::router(h.topo.store().clone(), None, None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera_topo::http::server::serve(
        topo_listener,
        app,
        None,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut rng = rand::thread_rng();
    let mut acknowledged = 0u64;
    for round in 0..5 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let cfg = dir.path().join(format!("router{round}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nusers: [{{name: tessera, password: tessera}}]\ntopo: {{endpoints: [\"{topo_addr}\"]}}\n"
            ),
        )
        .expect("config");
        let child = Killed(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["router", "--config"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn router"),
        );
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some("tessera"))
            .pass(Some("tessera"))
            .db_name(Some("demo"))
            .prefer_socket(false);
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(mut c) = Conn::new(opts.clone()).await {
                if c.query_drop("SELECT 1 FROM orders LIMIT 1").await.is_ok() {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "router process {round} did not start");
        let mut writers = Vec::new();
        for w in 0..3u64 {
            let opts = opts.clone();
            let seed: u64 = rng.gen();
            writers.push(tokio::spawn(async move {
                use rand::SeedableRng;
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ w);
                let mut ok = 0u64;
                let Ok(mut c) = Conn::new(opts).await else {
                    return ok;
                };
                loop {
                    let id = rng.gen_range(0..60);
                    let cust = rng.gen_range(0..100_000);
                    let sql = match rng.gen_range(0..7) {
                        5 => format!(
                            "UPDATE orders SET order_id = {} WHERE order_id = {id}",
                            rng.gen_range(0..60)
                        ),
                        0 | 1 => format!("INSERT INTO orders (order_id, customer_id, amount, status) VALUES ({id}, {cust}, 1, 's{}')", cust % 3),
                        2 => format!("REPLACE INTO orders (order_id, customer_id, amount, status) VALUES ({id}, {cust}, 2, 'r')"),
                        3 => format!("DELETE FROM orders WHERE order_id = {id}"),
                        4 => format!("INSERT INTO orders (order_id, customer_id, amount, status) VALUES ({id}, {cust}, 3, 'u') ON DUPLICATE KEY UPDATE amount = amount + 1"),
                        _ => {
                            let two = rng.gen_range(0..60);
                            let r = async {
                                c.query_drop("BEGIN").await?;
                                c.query_drop(format!("DELETE FROM orders WHERE order_id = {id}")).await?;
                                c.query_drop(format!("INSERT IGNORE INTO orders (order_id, customer_id, amount, status) VALUES ({two}, {cust}, 4, 't')")).await?;
                                c.query_drop("COMMIT").await
                            }
                            .await;
                            match r {
                                Ok(()) => ok += 1,
                                Err(mysql_async::Error::Server(_)) => {
                                    let _ = c.query_drop("ROLLBACK").await;
                                }
                                Err(_) => return ok,
                            }
                            continue;
                        }
                    };
                    match c.query_drop(sql).await {
                        Ok(()) => ok += 1,
                        Err(mysql_async::Error::Server(_)) => {}
                        Err(_) => return ok,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(700..1500))).await;
        drop(child);
        for w in writers {
            acknowledged += w.await.unwrap_or(0);
        }
    }
    assert!(
        acknowledged > 50,
        "the writers got too little done: {acknowledged}"
    );
    let mut r = h.conn(Some("demo")).await;
    let (orphans, missing) = disagreement(&mut r, "lk.orders_order_id", "order_id").await;
    if !missing.is_empty() {
        let rows: Vec<(u64, u64)> = r
            .query("SELECT order_id, customer_id FROM orders ORDER BY order_id")
            .await
            .expect("rows");
        let entries: Vec<(u64, u64)> = r
            .query("SELECT order_id, keyspace_id FROM lk.orders_order_id ORDER BY order_id")
            .await
            .expect("entries");
        panic!("rows without their entry: {missing:?}\nrows: {rows:?}\nentries: {entries:?}");
    }
    let (_, missing) = disagreement(&mut r, "lk.orders_status", "status").await;
    assert!(
        missing.is_empty(),
        "rows without their status entry: {missing:?}"
    );
    let dups: Vec<(u64, u64)> = r
        .query("SELECT order_id, COUNT(*) FROM orders GROUP BY order_id HAVING COUNT(*) > 1")
        .await
        .expect("duplicates");
    assert!(dups.is_empty(), "values held twice: {dups:?}");
    eprintln!(
        "{acknowledged} writes acknowledged over 5 killed routers; {} orphan entries",
        orphans.len()
    );
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(r);
    h.stop().await;
}

/// A lookup table in a keyspace sharded by the looked-up column: entries live in the logical
/// shard of their value, reads and uniqueness work as with an unsharded one, and moving one
/// of its logical shards to another physical shard carries the entries along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_lookup_tables_route_and_move_with_their_logical_shards() {
    let lks = "keyspace: lks\nsharded: true\nlogical_shards: 4\ntables:\n  orders_order_id: { shard_key: order_id }\n";
    let h = Harness::start(2, 1, lks).await;
    let demo = "keyspace: demo\nsharded: true\nlogical_shards: 16\ntables:\n  orders:\n    shard_key: customer_id\n    lookups: [{ column: order_id, table: lks.orders_order_id }]\n";
    apply(&h, demo).await.expect("apply demo");
    let mut r = h.conn(None).await;
    for _ in 0..200 {
        if r.query_drop("USE demo").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut o = h.oracle(2).await;
    let script = [
        ORDERS,
        "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1, 10, 1, 'a'), (2, 11, 2, 'b'), (3, 12, 3, 'c'), (4, 13, 4, 'd'), (5, 14, 5, 'e')",
        "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (3, 20, 0, 'dup')",
        "REPLACE INTO orders (order_id, customer_id, amount, status) VALUES (2, 21, 22, 'r')",
        "SELECT ROW_COUNT()",
        "DELETE FROM orders WHERE order_id = 4",
        "SELECT order_id, customer_id FROM orders WHERE order_id IN (1, 2, 3, 4, 5) ORDER BY order_id",
    ];
    same_as_mariadb(&mut r, &mut o, &script).await;
    let (orphans, missing) = disagreement(&mut r, "lks.orders_order_id", "order_id").await;
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "{missing:?} {orphans:?}"
    );
    // Every logical shard of the lookup keyspace moves to the other physical shard.
    let (p, _) = h
        .topo
        .get_placement("lks")
        .await
        .expect("placement")
        .expect("lks placed");
    let moves: Vec<(u32, String)> = p
        .shards
        .iter()
        .enumerate()
        .map(|(ls, e)| {
            (
                ls as u32,
                if e.ps == "ps0" { "ps1" } else { "ps0" }.to_string(),
            )
        })
        .collect();
    let reb = tessera_rebalancer::Rebalancer::new(h.topo.clone(), Default::default());
    let job = reb.create_job("lks", &moves).await.expect("job");
    reb.run(&job.id, tessera_rebalancer::Stop::Completed)
        .await
        .expect("move");
    same_as_mariadb(
        &mut r,
        &mut o,
        &[
            "SELECT order_id, customer_id FROM orders WHERE order_id IN (1, 2, 3, 4, 5) ORDER BY order_id",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1, 30, 0, 'dup')",
            "INSERT INTO orders (order_id, customer_id, amount, status) VALUES (4, 31, 4, 'again'), (6, 32, 6, 'f')",
            "SELECT * FROM orders ORDER BY order_id",
        ],
    )
    .await;
    let (orphans, missing) = disagreement(&mut r, "lks.orders_order_id", "order_id").await;
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "{missing:?} {orphans:?}"
    );
    drop((r, o));
    h.stop().await;
}
