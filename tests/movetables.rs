//! `tessera movetables`: tables of a database created directly on a MariaDB (not through the
//! router) move into a sharded keyspace while a writer keeps inserting, updating (shard keys
//! too) and deleting through the router; every acknowledged write is there afterwards with its
//! last value, nothing is left behind, and a rollback after the cutover brings the source back
//! with the writes made since.

mod common;

use common::Harness;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const LEGACY: &str = "keyspace: legacy\nsharded: false\n";

const SHOP: &str = "keyspace: shop
sharded: true
logical_shards: 8
tables:
  orders: { shard_key: customer_id }
  kv: { shard_key: k, key_type: string }
  pairs: { shard_key: a }
";

/// Applies `vschema` (of keyspace `ks`) beside `legacy` and returns a router connection in
/// `legacy` once the router knows `ks` (a table it lacks answers 1146, not 1049).
async fn with_keyspace(h: &Harness, vschema: &str, ks: &str) -> Conn {
    let v = tessera_topo::VSchema::from_yaml(vschema).expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &v)
        .await
        .expect("apply vschema");
    let mut r = h.conn(Some("legacy")).await;
    for _ in 0..200 {
        if r.query_drop(format!("SELECT 1 FROM {ks}.nothing_here"))
            .await
            .is_err_and(|e| e.to_string().contains("1146"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r
}

/// Orders as acknowledged: id -> (customer, amount).
type Model = Arc<Mutex<BTreeMap<u64, (u64, u64)>>>;

/// Runs `sql` through the router until it is acknowledged (a fenced write is retried, as a
/// client retries 1205); returns its affected rows.
async fn write(c: &mut Conn, sql: &str) -> u64 {
    for _ in 0..200 {
        match c.query_drop(sql).await {
            Ok(()) => return c.affected_rows(),
            Err(mysql_async::Error::Server(e)) if e.code == 1205 || e.code == 1213 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    panic!("{sql}: never acknowledged");
}

/// A writer through the router on `legacy.orders` until `stop`: inserts, amount updates,
/// shard-key updates and deletes, recorded in `model` once acknowledged.
fn writer(
    h: &Harness,
    model: Model,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> tokio::task::JoinHandle<u64> {
    let opts = h.opts(Some("legacy"), common::USER, common::PASSWORD);
    tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut c = Conn::new(opts).await.expect("writer connection");
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let pick = {
                let m = model.lock().await;
                if m.is_empty() {
                    None
                } else {
                    m.keys().nth(rng.gen_range(0..m.len())).copied()
                }
            };
            let op = rng.gen_range(0..10);
            match (op, pick) {
                (0..=3, _) | (_, None) => {
                    let id = 1_000_000 + seed * 100_000 + n;
                    let cust = rng.gen_range(1..500u64);
                    let amount = rng.gen_range(1..1000u64);
                    write(
                        &mut c,
                        &format!("INSERT INTO orders (order_id, customer_id, amount, note) VALUES ({id}, {cust}, {amount}, 'w')"),
                    )
                    .await;
                    model.lock().await.insert(id, (cust, amount));
                }
                (4..=6, Some(id)) => {
                    let amount = rng.gen_range(1..1000u64);
                    write(
                        &mut c,
                        &format!("UPDATE orders SET amount = {amount} WHERE order_id = {id}"),
                    )
                    .await;
                    if let Some(v) = model.lock().await.get_mut(&id) {
                        v.1 = amount;
                    }
                }
                (7, Some(id)) => {
                    let cust = rng.gen_range(1..500u64);
                    write(
                        &mut c,
                        &format!("UPDATE orders SET customer_id = {cust} WHERE order_id = {id}"),
                    )
                    .await;
                    if let Some(v) = model.lock().await.get_mut(&id) {
                        v.0 = cust;
                    }
                }
                (_, Some(id)) => {
                    write(&mut c, &format!("DELETE FROM orders WHERE order_id = {id}")).await;
                    model.lock().await.remove(&id);
                }
            }
            n += 1;
        }
        n
    })
}

async fn orders_seen(c: &mut Conn, sql: &str) -> BTreeMap<u64, (u64, u64)> {
    let rows: Vec<(u64, u64, u64)> = c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = BTreeMap::new();
    for (id, cust, amount) in rows {
        assert!(
            out.insert(id, (cust, amount)).is_none(),
            "order {id} is held twice"
        );
    }
    out
}

fn assert_same(what: &str, got: &BTreeMap<u64, (u64, u64)>, want: &BTreeMap<u64, (u64, u64)>) {
    if got != want {
        let missing: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(k) != Some(v))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(k, v)| want.get(k) != Some(v))
            .take(5)
            .collect();
        panic!(
            "{what}: {} rows, {} acknowledged; wrong or missing: {missing:?}; extra or stale: {extra:?}",
            got.len(),
            want.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_move_online_into_a_sharded_keyspace_and_back() {
    let h = Harness::start(2, 0, LEGACY).await;
    // The database as an application made it, directly on its MariaDB.
    let (p, _) = h
        .topo
        .get_placement("legacy")
        .await
        .expect("placement")
        .expect("legacy placed");
    let ps: usize = p.shards[0]
        .ps
        .trim_start_matches("ps")
        .parse()
        .expect("ps index");
    let mut d = h.direct(ps).await;
    for sql in [
        "CREATE TABLE legacy.orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, \
         amount BIGINT NOT NULL, note TEXT, created DATETIME DEFAULT '2026-01-01 00:00:00', KEY (customer_id))",
        "CREATE TABLE legacy.kv (k VARCHAR(32) PRIMARY KEY, v BLOB)",
        "CREATE TABLE legacy.pairs (a INT NOT NULL, b INT NOT NULL, body VARCHAR(100), PRIMARY KEY (a, b))",
        "CREATE TABLE legacy.settings (name VARCHAR(16) PRIMARY KEY, value INT)",
        "INSERT INTO legacy.settings VALUES ('stays', 1)",
    ] {
        d.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let model: Model = Arc::default();
    {
        let mut m = model.lock().await;
        let mut rows = Vec::new();
        for i in 1..=3000u64 {
            let (cust, amount) = (i % 450 + 1, i * 3 % 1000);
            m.insert(i, (cust, amount));
            rows.push(format!("({i}, {cust}, {amount}, 'n{i}')"));
        }
        for chunk in rows.chunks(500) {
            d.query_drop(format!(
                "INSERT INTO legacy.orders (order_id, customer_id, amount, note) VALUES {}",
                chunk.join(", ")
            ))
            .await
            .expect("orders");
        }
        let kv: Vec<String> = (0..300)
            .map(|i| format!("('key{i}', x'{i:04x}')"))
            .collect();
        d.query_drop(format!("INSERT INTO legacy.kv VALUES {}", kv.join(", ")))
            .await
            .expect("kv");
        let pairs: Vec<String> = (0..200)
            .map(|i| format!("({}, {}, 'p{i}')", i % 37, i))
            .collect();
        d.query_drop(format!(
            "INSERT INTO legacy.pairs VALUES {}",
            pairs.join(", ")
        ))
        .await
        .expect("pairs");
    }
    let shop = tessera_topo::VSchema::from_yaml(SHOP).expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &shop)
        .await
        .expect("apply shop");
    let mut r = h.conn(Some("legacy")).await;
    let full = "SELECT order_id, customer_id, amount FROM orders";
    assert_same(
        "before",
        &orders_seen(&mut r, full).await,
        &*model.lock().await,
    );

    // Start, copy and cut over while the writer writes.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(&h, model.clone(), stop.clone(), 1);
    let tables: Vec<String> = ["orders", "kv", "pairs"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tessera::cli::movetables::movetables_start(&h.topo, "legacy", "shop", &tables)
        .await
        .expect("start");
    // Until the cutover only the copy writes into the target: a direct write is refused.
    {
        let ps0 = h
            .topo
            .get_placement("shop")
            .await
            .expect("placement")
            .expect("shop")
            .0
            .shards[0]
            .ps
            .clone();
        let i: usize = ps0.trim_start_matches("ps").parse().expect("index");
        let mut c = h.direct(i).await;
        let (code, msg) = common::error_code(
            &mut c,
            "INSERT INTO shop_0000.orders (order_id, customer_id, amount) VALUES (-1, -1, 1)",
        )
        .await;
        assert_eq!(code, 1205, "{msg}");
    }
    // Under the writer a check may see the two sides at different moments: the cutover
    // verifies exactly, with writes held.
    let run = tessera::cli::movetables::movetables_run(&h.topo, "legacy")
        .await
        .expect("run");
    assert!(run.rows >= 3500, "{run:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut = tessera::cli::movetables::movetables_cutover(&h.topo, "legacy")
        .await
        .expect("cutover");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let writes = w.await.expect("writer");
    assert!(writes > 20, "the writer wrote {writes}");
    // Served by the sharded keyspace now: through the router, and directly there.
    let mut plan: Vec<(String, Option<String>, Option<String>, String)> = Vec::new();
    for _ in 0..100 {
        // Until this router has seen the switch end, VEXPLAIN may answer its retriable 1205.
        match r
            .query("VEXPLAIN SELECT amount FROM orders WHERE customer_id = 7")
            .await
        {
            Ok(p) => {
                plan = p;
                break;
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1205 => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("vexplain: {e}"),
        }
    }
    assert!(
        plan.len() == 1 && plan[0].1.as_deref().is_some_and(|s| s.starts_with("shop_")),
        "{plan:?}"
    );
    let want = model.lock().await.clone();
    assert_same(
        "after the cutover, through the router",
        &orders_seen(&mut r, full).await,
        &want,
    );
    let mut direct = BTreeMap::new();
    for ls in 0..8u32 {
        let ps_of = h
            .topo
            .get_placement("shop")
            .await
            .expect("placement")
            .expect("shop")
            .0
            .shards[ls as usize]
            .ps
            .clone();
        let i: usize = ps_of.trim_start_matches("ps").parse().expect("index");
        let mut c = h.direct(i).await;
        for (k, v) in orders_seen(
            &mut c,
            &format!("SELECT order_id, customer_id, amount FROM shop_{ls:04}.orders"),
        )
        .await
        {
            assert!(
                direct.insert(k, v).is_none(),
                "order {k} in two logical shards"
            );
        }
    }
    assert_same("after the cutover, in the logical shards", &direct, &want);
    let n: Option<u64> = r.query_first("SELECT COUNT(*) FROM kv").await.expect("kv");
    assert_eq!(n, Some(300));
    let n: Option<u64> = r
        .query_first("SELECT COUNT(*) FROM pairs WHERE a = 3")
        .await
        .expect("pairs");
    assert_eq!(n, Some(6));
    let s: Option<u64> = r
        .query_first("SELECT value FROM settings WHERE name = 'stays'")
        .await
        .expect("settings");
    assert_eq!(s, Some(1), "a table not moved stays served by the source");
    // Statements joining a moved table with one that stayed are refused, never half-answered.
    let (code, _) = common::error_code(&mut r, "SELECT * FROM orders JOIN settings ON 1 = 1").await;
    assert_eq!(code, 1235);
    println!(
        "cutover: {} ms of held statements, {writes} writes during the move",
        cut.stall_ms
    );

    // Writes after the cutover, then a rollback: the source has them.
    stop.store(false, Ordering::SeqCst);
    let w = writer(&h, model.clone(), stop.clone(), 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let back = tessera::cli::movetables::movetables_rollback(&h.topo, "legacy")
        .await
        .expect("rollback");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    w.await.expect("writer");
    let want = model.lock().await.clone();
    assert!(back > 0, "rows written since the cutover copied back");
    assert_same(
        "after the rollback, in the source",
        &orders_seen(
            &mut d,
            "SELECT order_id, customer_id, amount FROM legacy.orders",
        )
        .await,
        &want,
    );
    assert_same(
        "after the rollback, through the router",
        &orders_seen(&mut r, full).await,
        &want,
    );

    // Again, to the end.
    let run = tessera::cli::movetables::movetables_run(&h.topo, "legacy")
        .await
        .expect("run again");
    // The rollback cleared the checkpoints: copied again from the first row.
    assert!(
        run.verified && run.resumed == 0 && run.rows >= 3500,
        "{run:?}"
    );
    tessera::cli::movetables::movetables_cutover(&h.topo, "legacy")
        .await
        .expect("cutover again");
    tessera::cli::movetables::movetables_complete(&h.topo, "legacy")
        .await
        .expect("complete");
    assert_same("after completing", &orders_seen(&mut r, full).await, &want);
    let left: Option<u64> = d
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'legacy' AND TABLE_NAME IN ('orders', 'kv', 'pairs')")
        .await
        .expect("source tables");
    assert_eq!(left, Some(0), "the source tables are dropped");
    let (progress, _) = h
        .topo
        .get_movetables_progress("legacy")
        .await
        .expect("checkpoints");
    assert!(progress.tables.is_empty(), "{progress:?}");
    drop((r, d));
    h.stop().await;
}

/// Vertical partitioning: a group of tables moves into another unsharded keyspace; the
/// application keeps naming them in the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_move_into_another_unsharded_keyspace() {
    let h = Harness::start(2, 0, LEGACY).await;
    let mut r = with_keyspace(&h, "keyspace: archive\nsharded: false\n", "archive").await;
    for sql in [
        "CREATE TABLE events (id BIGINT PRIMARY KEY, kind VARCHAR(16), at DATETIME)",
        "CREATE TABLE audit (id BIGINT PRIMARY KEY AUTO_INCREMENT, what TEXT)",
        "INSERT INTO events VALUES (1, 'a', '2026-01-01 00:00:00'), (2, 'b', NULL), (3, 'c', '2026-02-03 04:05:06')",
        "INSERT INTO audit (what) VALUES ('x'), ('y')",
    ] {
        r.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tables = vec!["events".to_string(), "audit".to_string()];
    tessera::cli::movetables::movetables_start(&h.topo, "legacy", "archive", &tables)
        .await
        .expect("start");
    r.query_drop("INSERT INTO events VALUES (4, 'd', NULL)")
        .await
        .expect("write while copying");
    let run = tessera::cli::movetables::movetables_run(&h.topo, "legacy")
        .await
        .expect("run");
    assert!(run.verified && run.rows >= 5, "{run:?}");
    tessera::cli::movetables::movetables_cutover(&h.topo, "legacy")
        .await
        .expect("cutover");
    let mut plan: Vec<(String, Option<String>, Option<String>, String)> = Vec::new();
    for _ in 0..100 {
        // Until this router has seen the switch end, VEXPLAIN may answer the switch's
        // retriable 1205 (statements wait; VEXPLAIN does not).
        plan = match r.query("VEXPLAIN SELECT * FROM events").await {
            Ok(p) => p,
            Err(mysql_async::Error::Server(e)) if e.code == 1205 => Vec::new(),
            Err(e) => panic!("vexplain: {e}"),
        };
        if plan.first().and_then(|p| p.1.as_deref()) == Some("archive") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        plan.first().and_then(|p| p.1.as_deref()),
        Some("archive"),
        "{plan:?}"
    );
    r.query_drop("UPDATE events SET kind = 'B' WHERE id = 2")
        .await
        .expect("update after");
    let rows: Vec<(u64, String)> = r
        .query("SELECT id, kind FROM legacy.events ORDER BY id")
        .await
        .expect("read");
    assert_eq!(
        rows,
        vec![
            (1, "a".into()),
            (2, "B".into()),
            (3, "c".into()),
            (4, "d".into())
        ]
    );
    let n: Option<u64> = r
        .query_first("SELECT COUNT(*) FROM audit")
        .await
        .expect("audit");
    assert_eq!(n, Some(2));
    tessera::cli::movetables::movetables_complete(&h.topo, "legacy")
        .await
        .expect("complete");
    let rows: Vec<(u64, String)> = r
        .query("SELECT id, kind FROM events ORDER BY id")
        .await
        .expect("read after");
    assert_eq!(rows.len(), 4);
    drop(r);
    h.stop().await;
}

/// A table moves into a sharded keyspace as a reference table: its rows are copied to the
/// reference schema on every physical shard of the keyspace (a write made during the copy
/// included), the verification checks each copy, and after the cutover the router reads it
/// and writes every copy; a join with a sharded table of the keyspace stays on each shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_moves_in_as_a_reference_table() {
    let h = Harness::start(2, 0, LEGACY).await;
    let mut r = with_keyspace(
        &h,
        "keyspace: geo\nsharded: true\nlogical_shards: 4\ntables:\n  country: { type: reference }\n  city: { shard_key: id }\n",
        "geo",
    )
    .await;
    for sql in [
        "CREATE TABLE country (code CHAR(2) PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        "INSERT INTO country VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan')",
        "CREATE TABLE geo.city (id BIGINT PRIMARY KEY, country CHAR(2), name VARCHAR(40))",
        "INSERT INTO geo.city VALUES (1, 'fr', 'Paris'), (2, 'de', 'Berlin'), (3, 'jp', 'Kyoto'), (4, 'fr', 'Lyon')",
    ] {
        r.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tables = vec!["country".to_string()];
    tessera::cli::movetables::movetables_start(&h.topo, "legacy", "geo", &tables)
        .await
        .expect("start");
    r.query_drop("INSERT INTO country VALUES ('it', 'Italy')")
        .await
        .expect("write while copying");
    r.query_drop("UPDATE country SET name = 'Nippon' WHERE code = 'jp'")
        .await
        .expect("update while copying");
    let run = tessera::cli::movetables::movetables_run(&h.topo, "legacy")
        .await
        .expect("run");
    assert!(run.verified && run.rows >= 4, "{run:?}");
    // Every physical shard holds every row in the keyspace's reference schema.
    let want: Vec<(String, String)> = vec![
        ("de".into(), "Germany".into()),
        ("fr".into(), "France".into()),
        ("it".into(), "Italy".into()),
        ("jp".into(), "Nippon".into()),
    ];
    for ps in 0..2 {
        let mut d = h.direct(ps).await;
        let rows: Vec<(String, String)> = d
            .query("SELECT code, name FROM geo_ref.country ORDER BY code")
            .await
            .expect("reference copy");
        assert_eq!(rows, want, "the copy on ps{ps}");
    }
    tessera::cli::movetables::movetables_cutover(&h.topo, "legacy")
        .await
        .expect("cutover");
    let mut write = None;
    for _ in 0..100 {
        // (Until this router has seen the switch end, a write may get the switch's 1205.)
        match r
            .query_drop("INSERT INTO country VALUES ('es', 'Spain')")
            .await
        {
            Ok(()) => {
                write = Some(());
                break;
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1205 => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("write after cutover: {e}"),
        }
    }
    assert!(write.is_some(), "a write after the cutover");
    for ps in 0..2 {
        let mut d = h.direct(ps).await;
        let n: Option<u64> = d
            .query_first("SELECT COUNT(*) FROM geo_ref.country")
            .await
            .expect("reference copy");
        assert_eq!(n, Some(5), "ps{ps} holds the write made after the cutover");
    }
    let joined: Vec<(String, String)> = r
        .query("SELECT c.name, k.name FROM geo.city c JOIN geo.country k ON k.code = c.country ORDER BY c.id")
        .await
        .expect("join");
    assert_eq!(
        joined,
        vec![
            ("Paris".into(), "France".into()),
            ("Berlin".into(), "Germany".into()),
            ("Kyoto".into(), "Nippon".into()),
            ("Lyon".into(), "France".into()),
        ]
    );
    tessera::cli::movetables::movetables_complete(&h.topo, "legacy")
        .await
        .expect("complete");
    let n: Option<u64> = r
        .query_first("SELECT COUNT(*) FROM country")
        .await
        .expect("read through the old name after complete");
    assert_eq!(n, Some(5));
    drop(r);
    h.stop().await;
}

/// A `tessera movetables run` killed (SIGKILL) in the middle of its copy, while a writer keeps
/// writing through the router: `tessera status` shows the table copying with the rows its
/// checkpoint holds, a second `run` resumes after the checkpoint (a table whose copy had
/// finished is only caught up and verified), and after the cutover every acknowledged write is
/// there with its last value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_after_its_checkpoint() {
    use tokio::io::AsyncBufReadExt;
    const ROWS: u64 = 80_000;
    let h = Harness::start(2, 0, LEGACY).await;
    let (p, _) = h
        .topo
        .get_placement("legacy")
        .await
        .expect("placement")
        .expect("legacy placed");
    let ps: usize = p.shards[0]
        .ps
        .trim_start_matches("ps")
        .parse()
        .expect("ps index");
    let mut d = h.direct(ps).await;
    for sql in [
        "CREATE TABLE legacy.orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, \
         amount BIGINT NOT NULL, note TEXT, KEY (customer_id))",
        "CREATE TABLE legacy.kv (k VARCHAR(32) PRIMARY KEY, v BLOB)",
        "INSERT INTO legacy.kv VALUES ('a', x'01'), ('b', NULL), ('c', x'0304')",
    ] {
        d.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let model: Model = Arc::default();
    {
        let mut m = model.lock().await;
        let mut rows = Vec::with_capacity(5000);
        for i in 1..=ROWS {
            let (cust, amount) = (i % 450 + 1, i * 7 % 1000);
            m.insert(i, (cust, amount));
            rows.push(format!("({i}, {cust}, {amount}, 'n{i}')"));
            if rows.len() == 5000 || i == ROWS {
                d.query_drop(format!(
                    "INSERT INTO legacy.orders (order_id, customer_id, amount, note) VALUES {}",
                    rows.join(", ")
                ))
                .await
                .expect("orders");
                rows.clear();
            }
        }
    }
    d.query_drop("ANALYZE TABLE legacy.orders")
        .await
        .expect("analyze");
    let shop = tessera_topo::VSchema::from_yaml(SHOP).expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &shop)
        .await
        .expect("apply shop");

    // The harness's topology, served over HTTP to the `tessera` processes.
    let topo_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("topo port");
    let topo_addr = topo_listener.local_addr().expect("addr").to_string();
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
    let tessera = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        c.args(args)
            .args(["--topo", &topo_addr])
            .env("TESSERA_TOKEN_FILE", dir.path().join("no-token"))
            .env_remove("TESSERA_TOPO_TOKEN")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(&h, model.clone(), stop.clone(), 3);
    let tables = vec!["orders".to_string(), "kv".to_string()];
    tessera::cli::movetables::movetables_start(&h.topo, "legacy", "shop", &tables)
        .await
        .expect("start");

    // The first run (throttled, so that its copy takes a few seconds): killed once it has
    // shown progress on orders (its first checkpoint is written with its first progress line).
    let mut first = tessera(&[
        "movetables",
        "run",
        "--from",
        "legacy",
        "--max-rows-per-sec",
        "15000",
    ])
    .spawn()
    .expect("spawn run");
    let mut lines = tokio::io::BufReader::new(first.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let progressed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l.clone());
            if l.starts_with("[backfill] legacy.orders [") && !l.contains(" 0/~") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(progressed, "the first run showed no progress: {seen:?}");
    first.kill().await.expect("SIGKILL the first run");
    assert!(
        seen.iter().all(|l| !l.contains("rows copied in")),
        "the first run finished before it was killed: {seen:?}"
    );
    // One command per keyspace at a time: the killed run's lock lapses within seconds.
    let out = tessera(&["movetables", "run", "--from", "legacy"])
        .output()
        .await
        .expect("a run while the lock is held");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("held by") && err.contains("pid"),
        "{err}"
    );
    let (progress, _) = h
        .topo
        .get_movetables_progress("legacy")
        .await
        .expect("checkpoints");
    let cp = progress
        .tables
        .get("orders")
        .cloned()
        .expect("a checkpoint of orders");
    assert!(
        cp.rows_copied > 0 && cp.rows_copied < ROWS && !cp.done && cp.after.is_some(),
        "{cp:?}"
    );
    assert!(
        progress.tables.get("kv").is_some_and(|c| c.done),
        "{progress:?}"
    );

    // `tessera status` (through the router's admin endpoint) shows the move and its progress.
    let admin = h
        .router
        .as_ref()
        .and_then(|r| r.admin_addr())
        .expect("admin address")
        .to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["status", "--admin", &admin])
        .output()
        .await
        .expect("tessera status");
    let status = String::from_utf8_lossy(&out.stdout);
    let line = status
        .lines()
        .find(|l| l.contains("legacy.orders"))
        .unwrap_or_else(|| panic!("no movetables line in:\n{status}"));
    assert!(
        line.contains("shop")
            && line.contains("copying")
            && line.contains(&format!("{}/~", cp.rows_copied)),
        "{line}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.contains("legacy.kv") && l.contains("copied 3 rows")),
        "{status}"
    );

    // The second run resumes after the checkpoint and finishes (once the lock has lapsed).
    let mut out = tessera(&["movetables", "run", "--from", "legacy"])
        .output()
        .await
        .expect("second run");
    for _ in 0..40 {
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("held by") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        out = tessera(&["movetables", "run", "--from", "legacy"])
            .output()
            .await
            .expect("second run");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "second run: {stdout}\n{err}");
    let resumed = err
        .lines()
        .find_map(|l| l.strip_prefix("[backfill] legacy.orders resumed after "))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the second run did not resume: {err}"));
    assert_eq!(resumed, cp.rows_copied, "{err}");
    assert!(
        err.contains("[backfill] legacy.kv was copied by an earlier run"),
        "{err}"
    );
    let copied: u64 = stdout
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    // The rows after the checkpoint (some deleted, some inserted by the writer since).
    assert!(
        copied > 0 && copied < ROWS - resumed + 5000,
        "copied {copied} after {resumed}: {stdout}"
    );
    assert!(stdout.contains("verified:"), "{stdout}");
    let (progress, _) = h
        .topo
        .get_movetables_progress("legacy")
        .await
        .expect("checkpoints");
    assert!(
        progress.tables.get("orders").is_some_and(|c| c.done),
        "{progress:?}"
    );
    let out = tessera(&["movetables", "status", "--from", "legacy"])
        .output()
        .await
        .expect("movetables status");
    let st = String::from_utf8_lossy(&out.stdout);
    assert!(
        st.lines()
            .any(|l| l.starts_with("legacy.orders -> shop: copying, copy done")),
        "{st}"
    );

    // Cut over while the writer writes; every acknowledged write is there.
    tessera::cli::movetables::movetables_cutover(&h.topo, "legacy")
        .await
        .expect("cutover");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let writes = w.await.expect("writer");
    assert!(writes > 20, "the writer wrote {writes}");
    let want = model.lock().await.clone();
    let mut r = h.conn(Some("legacy")).await;
    let full = "SELECT order_id, customer_id, amount FROM orders";
    let mut got = BTreeMap::new();
    for _ in 0..100 {
        // Until this router has seen the switch end, a read may meet its retriable 1205.
        match r.query::<(u64, u64, u64), _>(full).await {
            Ok(rows) => {
                got = rows.into_iter().map(|(i, c, a)| (i, (c, a))).collect();
                break;
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1205 => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{full}: {e}"),
        }
    }
    assert_same("after the cutover, through the router", &got, &want);
    let mut direct = BTreeMap::new();
    let (shop_p, _) = h
        .topo
        .get_placement("shop")
        .await
        .expect("placement")
        .expect("shop");
    for ls in 0..8usize {
        let i: usize = shop_p.shards[ls]
            .ps
            .trim_start_matches("ps")
            .parse()
            .expect("index");
        let mut c = h.direct(i).await;
        for (k, v) in orders_seen(
            &mut c,
            &format!("SELECT order_id, customer_id, amount FROM shop_{ls:04}.orders"),
        )
        .await
        {
            assert!(
                direct.insert(k, v).is_none(),
                "order {k} in two logical shards"
            );
        }
    }
    assert_same("after the cutover, in the logical shards", &direct, &want);
    let n: Option<u64> = r.query_first("SELECT COUNT(*) FROM kv").await.expect("kv");
    assert_eq!(n, Some(3));
    println!(
        "resumed after {resumed} of {ROWS} rows (checkpoint {}), {copied} copied by the second run, {writes} writes",
        cp.rows_copied
    );
    drop((r, d));
    let _ = stop_tx.send(());
    let _ = server.await;
    h.stop().await;
}
