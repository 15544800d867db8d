//! Reads the planner cannot split over logical shards (subqueries, CTEs, set operations,
//! window functions, sums of floating-point numbers) answered by MariaDB over the gathered rows
//! of their sharded tables: the same rows, column names and errors as MariaDB direct, whatever
//! the session's character set or transaction; and a bound on the rows.

mod common;

use common::Harness;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

const VSCHEMA: &str = "keyspace: demo
sharded: true
logical_shards: 8
tables:
  m: { shard_key: id }
  n: { shard_key: k }
";

async fn outcome(c: &mut Conn, sql: &str) -> Result<(Vec<String>, Vec<Vec<String>>), u16> {
    match c.query_iter(sql).await {
        Ok(mut res) => {
            let cols: Vec<String> = res
                .columns()
                .map(|cs| cs.iter().map(|c| c.name_str().into_owned()).collect())
                .unwrap_or_default();
            let rows: Vec<mysql_async::Row> = res.collect().await.expect("rows");
            let rows = rows
                .into_iter()
                .map(|r| {
                    r.unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql_async::Value::NULL => "NULL".to_string(),
                            mysql_async::Value::Bytes(b) => {
                                String::from_utf8_lossy(&b).into_owned()
                            }
                            other => format!("{other:?}"),
                        })
                        .collect()
                })
                .collect();
            Ok((cols, rows))
        }
        Err(mysql_async::Error::Server(e)) => Err(e.code),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_planner_cannot_split_are_answered_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE m (id BIGINT PRIMARY KEY, f FLOAT, d DOUBLE, s VARCHAR(20), b BLOB, dec1 DECIMAL(12,4), at DATETIME(3))",
        "CREATE TABLE n (k BIGINT PRIMARY KEY, id BIGINT, w VARCHAR(8))",
        "INSERT INTO m VALUES (1, 1.1, 0.1, 'é', x'00ff27', 1.5, '2026-01-02 03:04:05.678'), (2, 2.2, 0.2, '日本', NULL, -2.25, NULL), (3, 3.3, 0.30000000000000004, 'a''b\\\\c', x'5c', 0.0001, '1999-12-31 23:59:59.999'), (4, NULL, 1e300, NULL, x'', 99999999.9999, '2026-06-06 06:06:06'), (5, -0.5, -0.1, 'É', x'e9', 3, NULL)",
        "INSERT INTO n VALUES (10, 1, 'x'), (11, 2, 'y'), (12, 2, 'z'), (13, 9, 'w')",
        "SELECT id FROM m WHERE f > (SELECT AVG(f) FROM m) ORDER BY id",
        "SELECT SUM(f), SUM(d), AVG(d), SUM(dec1) FROM m",
        "SELECT s, HEX(b), dec1, at FROM m WHERE id IN (SELECT id FROM n) ORDER BY id",
        "WITH x AS (SELECT id, d FROM m) SELECT COUNT(*), MAX(d) FROM x WHERE d > 0.25",
        "SELECT id, ROW_NUMBER() OVER (ORDER BY d DESC) AS rn FROM m ORDER BY id",
        "SELECT HEX(b) FROM m UNION SELECT w FROM n ORDER BY 1",
        "SELECT m.id, (SELECT COUNT(*) FROM n WHERE n.id = m.id) FROM m ORDER BY m.id",
        "SELECT MAX(f) - MIN(f), SUM(d) / COUNT(*) FROM m",
        "SELECT t.s FROM (SELECT s, id FROM m WHERE s LIKE '%É%') t ORDER BY t.id",
        "SELECT id FROM m WHERE EXISTS (SELECT 1 FROM n WHERE n.id = m.id AND n.w > 'x') ORDER BY id",
        // Found by the random query generator: a CTE named like the table it reads, and a
        // column named by a subquery's text after a WITH list.
        "WITH m AS (SELECT id, d FROM m WHERE id < 4) SELECT COUNT(*), MAX(d) FROM m",
        "WITH x AS (SELECT id, COUNT(*) AS c FROM n GROUP BY id) SELECT x.id, (SELECT m.s FROM m WHERE m.id = x.id) FROM x ORDER BY x.id",
        // Conditions on one table's own rows are applied as its rows are gathered.
        "SELECT id, ROW_NUMBER() OVER (ORDER BY d) AS rn FROM m WHERE d > 0.15 AND s IS NOT NULL AND LOWER(s) <> 'x' ORDER BY id",
        "SELECT m.id, n.w, ROW_NUMBER() OVER (ORDER BY m.id, n.k) AS rn FROM m JOIN n ON n.id = m.id WHERE n.w <> 'y' AND m.f > 1 ORDER BY m.id, n.w",
        "SELECT m.id, x.w, RANK() OVER (ORDER BY m.id) AS rk FROM m LEFT JOIN n x ON x.id = m.id WHERE x.w IS NULL AND m.id < 5 ORDER BY m.id",
        "SELECT m.id, SUM(m.d) OVER () FROM m WHERE m.id > 1 OR m.s IS NULL ORDER BY m.id",
        "SELECT id, SUM(d) OVER (ORDER BY id) FROM m WHERE d BETWEEN -1 AND 1 AND id IN (1, 2, 3, 5) ORDER BY id",
        "SELECT id, SUM(d) OVER (ORDER BY id) FROM m WHERE id IN (1, 3) AND (d > 0 OR id = 3) ORDER BY id",
        "SELECT m.id, RANK() OVER (ORDER BY m.d) FROM m WHERE m.id = 4 OR m.id = 2 ORDER BY m.id",
        "SELECT nosuch FROM m WHERE id IN (SELECT id FROM n)",
        // WITH ROLLUP, which the parser does not know: MariaDB computes it over all the rows.
        "SELECT id % 2 AS k, COUNT(*), SUM(dec1) FROM m GROUP BY k WITH ROLLUP",
        "SELECT n.id, n.w, COUNT(*) FROM n GROUP BY n.id, n.w WITH ROLLUP",
        // The session's settings hold for the answer, never for what is gathered.
        "SET NAMES latin1",
        "SELECT s FROM m WHERE id IN (SELECT id FROM n UNION SELECT 5) ORDER BY id",
        "SET NAMES utf8mb4",
        // A transaction's own rows are part of what is gathered; a rollback takes them away.
        "BEGIN",
        "INSERT INTO m (id, f, d, s) VALUES (6, 6.6, 0.6, 'txn')",
        "SELECT COUNT(*) FROM m WHERE d > (SELECT AVG(d) FROM m WHERE id < 4)",
        "SELECT s FROM m WHERE id = (SELECT MAX(id) FROM m)",
        "ROLLBACK",
        "SELECT s FROM m WHERE id = (SELECT MAX(id) FROM m)",
    ];
    for sql in script {
        let want = outcome(&mut o, sql).await;
        let got = outcome(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    // VEXPLAIN says where such a read runs.
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT id FROM m WHERE id IN (SELECT id FROM n)")
        .await
        .expect("vexplain");
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert!(plan[0].0.starts_with("gather (m, n"), "{plan:?}");
    assert_eq!(plan[0].1.as_deref(), Some("demo_ref"), "{plan:?}");
    // With the conditions it applies as it gathers: on the inner side of a join, not on the
    // outer join's side, not on a table named twice.
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT m.id, x.w, RANK() OVER (ORDER BY m.id) FROM m LEFT JOIN n x ON x.id = m.id WHERE x.w IS NULL AND m.id < 5 AND m.s > 'a'")
        .await
        .expect("vexplain");
    assert_eq!(
        plan[0].0, "gather (m where (m.id < 5) AND (m.s > 'a'), n from every logical shard)",
        "{plan:?}"
    );
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT id FROM m WHERE d > 0.1 AND id IN (SELECT id FROM m WHERE f > 1)")
        .await
        .expect("vexplain");
    assert_eq!(plan[0].0, "gather (m from every logical shard)", "{plan:?}");
    // Conditions that pin the shard key leave only the logical shards that hold such rows.
    let plan: Vec<(String, Option<String>, Option<String>, String)> = r
        .query("VEXPLAIN SELECT id, ROW_NUMBER() OVER (ORDER BY d) FROM m WHERE id IN (1, 3) AND d > 0")
        .await
        .expect("vexplain");
    assert!(
        plan[0]
            .0
            .starts_with("gather (m where (id IN (1, 3)) AND (d > 0) (logical shards ["),
        "{plan:?}"
    );
    drop((r, o));
    h.stop().await;
}

/// More rows than `max_gather_rows`: refused with an error naming the bound, not answered
/// short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gather_past_its_bound_is_refused() {
    let h = Harness::start_with(2, 0, VSCHEMA, |cfg| cfg.max_gather_rows = 50).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop("CREATE TABLE m (id BIGINT PRIMARY KEY, d DOUBLE)")
        .await
        .expect("ddl");
    let values: Vec<String> = (1..=80).map(|i| format!("({i}, {i})")).collect();
    r.query_drop(format!("INSERT INTO m VALUES {}", values.join(", ")))
        .await
        .expect("rows");
    let (code, msg) =
        common::error_code(&mut r, "SELECT id FROM m WHERE d > (SELECT AVG(d) FROM m)").await;
    assert_eq!(code, 1235, "{msg}");
    assert!(msg.contains("max_gather_rows"), "{msg}");
    // The session goes on, and a smaller table is answered.
    r.query_drop("DELETE FROM m WHERE id > 40")
        .await
        .expect("delete");
    let n: Option<u64> = r
        .query_first("SELECT COUNT(*) FROM m WHERE d > (SELECT AVG(d) FROM m)")
        .await
        .expect("answered");
    assert_eq!(n, Some(20));
    // The bound counts the rows gathered, after the statement's own conditions on the table.
    r.query_drop(format!("INSERT INTO m VALUES {}", values[40..].join(", ")))
        .await
        .expect("rows again");
    let ranks: Vec<(u64, u64)> = r
        .query("SELECT id, ROW_NUMBER() OVER (ORDER BY d DESC) FROM m WHERE id > 70 ORDER BY id")
        .await
        .expect("answered over the rows with id > 70 only");
    assert_eq!(ranks.len(), 10);
    assert_eq!(ranks[0], (71, 10));
    drop(r);
    h.stop().await;
}

const COPY_VSCHEMA: &str = "keyspace: demo
sharded: true
logical_shards: 8
tables:
  src: { shard_key: id }
  dst: { shard_key: k }
  kinds: { type: reference }
";

/// A write's outcome as a client sees it: affected rows, info text, last insert id; or the
/// error number.
async fn wrote(c: &mut Conn, sql: &str) -> Result<(u64, String, u64), u16> {
    match c.query_drop(sql).await {
        Ok(()) => Ok((
            c.affected_rows(),
            c.info().into_owned(),
            c.last_insert_id().unwrap_or(0),
        )),
        Err(mysql_async::Error::Server(e)) => {
            eprintln!("{sql}: {} {}", e.code, e.message);
            Err(e.code)
        }
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// `INSERT … SELECT` with sharded tables on either side — rows moving between logical shards
/// by another shard key, from a reference table, from a select the router can only gather,
/// with IGNORE and ON DUPLICATE KEY UPDATE, in and out of transactions — leaves the same rows
/// as MariaDB direct, with the same affected rows and info; a failing one changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_across_shards_like_mariadb() {
    let h = Harness::start(2, 1, COPY_VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let writes: &[&str] = &[
        "CREATE TABLE src (id BIGINT PRIMARY KEY, grp INT, v VARCHAR(20) CHARACTER SET latin1, u VARCHAR(20) CHARACTER SET utf8mb4, b BLOB, d DECIMAL(10,2), f DOUBLE, at DATETIME)",
        "CREATE TABLE dst (k BIGINT PRIMARY KEY, id BIGINT, v VARCHAR(20) CHARACTER SET latin1, u VARCHAR(40) CHARACTER SET utf8mb4, b BLOB, d DECIMAL(10,2), f DOUBLE, at DATETIME, UNIQUE KEY (k, id))",
        "CREATE TABLE kinds (kind INT PRIMARY KEY, label VARCHAR(10))",
        "INSERT INTO kinds VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "INSERT INTO src VALUES (1, 1, 'café', '日本', x'00ff27', 1.50, 0.1, '2026-01-02 03:04:05'), (2, 1, 'Straße', 'ü', NULL, -2.25, 1e300, NULL), (3, 2, NULL, 'a''b\\\\c', x'5c', 0.01, -0.5, '1999-12-31 23:59:59'), (4, 2, 'x', NULL, x'', 99.99, NULL, NULL), (5, 3, 'É', 'É', x'e9', 3, 3, '2026-06-06 06:06:06')",
        // Every row to the logical shard of another key.
        "INSERT INTO dst (k, id, v, u, b, d, f, at) SELECT id * 100, id, v, u, b, d, f, at FROM src",
        "INSERT INTO dst (k, id, u) SELECT id * 1000, grp, CONCAT(u, '-', v) FROM src WHERE grp = 1",
        // From a reference table, and from no table.
        "INSERT INTO dst (k, id, v) SELECT kind + 5000, kind, label FROM kinds",
        "INSERT INTO dst (k, id) SELECT 9000, 1",
        // What only a gather answers (aggregates, subqueries, ORDER BY … LIMIT).
        "INSERT INTO dst (k, id, d) SELECT grp + 7000, COUNT(*), SUM(d) FROM src GROUP BY grp",
        "INSERT INTO dst (k, id) SELECT id + 8000, id FROM src WHERE d > (SELECT AVG(d) FROM src)",
        "INSERT INTO dst (k, id) SELECT id + 8100, id FROM src ORDER BY d DESC LIMIT 2",
        // Into an unsharded-by-its-own-key table from itself (rows read before written).
        "INSERT INTO src (id, grp, v) SELECT id + 10, grp, v FROM src WHERE id < 3",
        // Duplicates: an error undoes the whole statement; IGNORE and ODKU count them.
        "INSERT INTO dst (k, id) SELECT id * 100, 0 FROM src WHERE id > 4",
        "INSERT IGNORE INTO dst (k, id) SELECT id * 100, 0 FROM src WHERE id >= 4",
        "INSERT INTO dst (k, id, d) SELECT id * 100, id, 1 FROM src WHERE id <= 2 ON DUPLICATE KEY UPDATE d = VALUES(d) + 1",
        // Without a column list, and in a transaction that rolls back.
        "INSERT INTO dst SELECT id + 20000, id, v, u, b, d, f, at FROM src WHERE id = 1",
        "BEGIN",
        "INSERT INTO dst (k, id) SELECT id + 30000, id FROM src",
        "INSERT INTO dst (k, id) SELECT 30001, 1",
        "ROLLBACK",
        "BEGIN",
        "INSERT INTO dst (k, id) SELECT id + 40000, id FROM src",
        "COMMIT",
        "INSERT INTO dst (k, id) SELECT nosuch FROM src",
    ];
    for sql in writes {
        let want = wrote(&mut o, sql).await;
        let got = wrote(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    for sql in [
        "SELECT k, id, v, u, HEX(b), d, f, at FROM dst ORDER BY k",
        "SELECT id, grp, v, u, HEX(b), d, f, at FROM src ORDER BY id",
        "SELECT HEX(v), HEX(u) FROM dst ORDER BY k",
    ] {
        assert_eq!(
            outcome(&mut r, sql).await,
            outcome(&mut o, sql).await,
            "{sql}"
        );
    }
    drop((r, o));
    h.stop().await;
}

/// `UPDATE` and `DELETE` of one sharded table whose subqueries read other sharded tables (or
/// the same one): `IN`, `NOT IN`, `EXISTS`, scalar subqueries, empty answers — the same rows
/// and affected counts as MariaDB direct, and MariaDB's error for a scalar subquery of
/// several rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_with_subqueries_over_sharded_tables_like_mariadb() {
    let h = Harness::start(2, 1, COPY_VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let writes: &[&str] = &[
        "CREATE TABLE src (id BIGINT PRIMARY KEY, grp INT, v VARCHAR(20), d DECIMAL(10,2))",
        "CREATE TABLE dst (k BIGINT PRIMARY KEY, id BIGINT, v VARCHAR(20), d DECIMAL(10,2))",
        "INSERT INTO src VALUES (1, 1, 'café', 1.50), (2, 1, 'b', -2.25), (3, 2, NULL, 0.01), (4, 2, 'x', 99.99), (5, 3, 'É', 3)",
        "INSERT INTO dst VALUES (100, 1, 'a', 0), (200, 2, 'b', 0), (300, 3, 'c', 0), (400, 4, 'd', 0), (500, 5, 'e', 0), (600, NULL, 'f', 0)",
        "UPDATE dst SET v = 'grp1' WHERE id IN (SELECT id FROM src WHERE grp = 1)",
        "UPDATE dst SET d = (SELECT MAX(d) FROM src) WHERE k > 250",
        "UPDATE dst SET d = d + 1 WHERE id NOT IN (SELECT id FROM src WHERE grp = 9)",
        "UPDATE dst SET v = 'none' WHERE id IN (SELECT id FROM src WHERE grp = 9)",
        "UPDATE dst SET v = 'cafe' WHERE v = (SELECT v FROM src WHERE id = 1) OR k = (SELECT MIN(id) * 100 FROM src WHERE grp = 2)",
        "UPDATE dst SET d = 0 WHERE EXISTS (SELECT 1 FROM src WHERE d > 50) AND k = 100",
        "UPDATE dst SET d = 7 WHERE NOT EXISTS (SELECT 1 FROM src WHERE d > 500)",
        "UPDATE dst SET v = (SELECT v FROM src WHERE grp = 1)",
        "UPDATE dst SET v = (SELECT v FROM src WHERE grp = 42) WHERE k = 600",
        "DELETE FROM dst WHERE id IN (SELECT id FROM src WHERE d < 1)",
        "DELETE FROM dst WHERE id = (SELECT MAX(id) FROM src)",
        // Joins on the shard keys (co-located rows) and with reference tables.
        "CREATE TABLE kinds (kind INT PRIMARY KEY, label VARCHAR(10))",
        "INSERT INTO kinds VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "INSERT INTO dst VALUES (1, 1, 'p', 0), (2, 2, 'q', 0), (3, 3, 'r', 0), (4, 9, 's', 0)",
        "UPDATE dst JOIN src ON src.id = dst.k SET dst.v = src.v WHERE src.grp = 1",
        "UPDATE dst d JOIN src s ON d.k = s.id SET d.d = s.d, s.v = 'seen' WHERE s.grp = 2",
        "UPDATE dst JOIN kinds ON kinds.kind = dst.id SET dst.v = kinds.label WHERE dst.k < 10",
        "DELETE FROM src WHERE id IN (SELECT id FROM src WHERE grp = 3)",
        "DELETE FROM dst WHERE id NOT IN (SELECT id FROM src)",
        "INSERT INTO dst VALUES (5, 5, 't', 0), (6, 6, 'u', 0)",
        "INSERT INTO src VALUES (6, 2, 'y', 1)",
        "DELETE d FROM dst d JOIN src s ON s.id = d.k WHERE s.grp = 2",
        "DELETE FROM s USING src s JOIN dst ON dst.k = s.id WHERE dst.v = 'q'",
        "DELETE k FROM kinds k WHERE k.kind = 3",
        "DELETE kinds FROM kinds JOIN dst ON dst.id = kinds.kind WHERE dst.v = 'nothing'",
        "ROLLBACK",
    ];
    for sql in writes {
        let want = wrote(&mut o, sql).await;
        let got = wrote(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    for sql in [
        "SELECT k, id, v, d FROM dst ORDER BY k",
        "SELECT id, grp, v, d FROM src ORDER BY id",
        "SELECT kind, label FROM kinds ORDER BY kind",
    ] {
        assert_eq!(
            outcome(&mut r, sql).await,
            outcome(&mut o, sql).await,
            "{sql}"
        );
    }
    // Not joined on the shard keys: rows would meet across logical shards. Refused by name.
    for sql in [
        "UPDATE dst JOIN src ON src.grp = dst.k SET dst.v = 'x'",
        "DELETE d FROM dst d JOIN src s ON s.grp = d.k WHERE s.grp = 2",
    ] {
        let (code, msg) = common::error_code(&mut r, sql).await;
        assert_eq!(code, 1235, "{sql}: {msg}");
    }
    drop((r, o));
    h.stop().await;
}
