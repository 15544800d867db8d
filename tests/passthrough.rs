//! Passthrough: an unsharded keyspace behaves like the MariaDB behind it — the same result
//! sets (column names included), the same errors, the same bytes — and no statement reaches
//! past the session's keyspaces, whatever path it takes.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

const VSCHEMA: &str = "keyspace: app\nsharded: false\n";

/// One result set as the client sees it: column names and rows.
type Set = (Vec<String>, Vec<Vec<String>>);

/// Every result set of one statement, or its error number.
async fn results(c: &mut mysql_async::Conn, sql: &[u8]) -> Result<Vec<Set>, u16> {
    let shown = String::from_utf8_lossy(sql).into_owned();
    let mut res = match c.query_iter(sql).await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) => return Err(e.code),
        Err(other) => panic!("{shown}: {other}"),
    };
    let mut sets = Vec::new();
    loop {
        let names: Vec<String> = res
            .columns()
            .map(|cs| cs.iter().map(|c| c.name_str().into_owned()).collect())
            .unwrap_or_default();
        let rows: Vec<mysql_async::Row> = match res.collect().await {
            Ok(r) => r,
            Err(mysql_async::Error::Server(e)) => return Err(e.code),
            Err(other) => panic!("{shown}: {other}"),
        };
        let rows = rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => "NULL".to_string(),
                        mysql_async::Value::Bytes(b) => {
                            b.iter().map(|x| format!("{x:02x}")).collect()
                        }
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .collect();
        if !names.is_empty() {
            sets.push((names, rows));
        }
        if res.is_empty() {
            break;
        }
    }
    Ok(sets)
}

/// A router over the unsharded keyspace `app` on one physical shard, a connection to it, and
/// a connection to a second MariaDB with a database `app` (the direct answer).
async fn app_and_oracle() -> (Harness, mysql_async::Conn, mysql_async::Conn) {
    let h = Harness::start(1, 1, VSCHEMA).await;
    let r = h.conn(Some("app")).await;
    let mut o = h.direct(1).await;
    o.query_drop("CREATE DATABASE app")
        .await
        .expect("oracle db");
    o.query_drop("USE app").await.expect("use");
    (h, r, o)
}

/// Runs each statement through the router and on MariaDB direct: the same result sets with
/// the same column names, or the same error.
async fn same_as_mariadb(r: &mut mysql_async::Conn, o: &mut mysql_async::Conn, script: &[&str]) {
    for sql in script {
        let want = results(o, sql.as_bytes()).await;
        let got = results(r, sql.as_bytes()).await;
        assert_eq!(got, want, "{sql}");
    }
}

/// What MariaDB accepts in one schema, the router accepts in an unsharded keyspace, and
/// answers the same: syntax the router's parser does not know, views, stored programs with
/// their several result sets, table maintenance, `SHOW` of the schema, sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsharded_keyspace_answers_like_mariadb() {
    let (h, mut r, mut o) = app_and_oracle().await;
    same_as_mariadb(
        &mut r,
        &mut o,
        &[
            "CREATE TABLE t1 (id int KEY, a varchar(20), b blob) ENGINE=InnoDB",
            "INSERT INTO t1 VALUES (1, 'one', x'00ff'), (2, 'two', NULL), (3, 'three', '')",
            "SELECT id AS `Id`, UPPER(a), a /* a comment */ , 1+1 FROM t1 ORDER BY id",
            "SELECT * FROM app.t1 WHERE id IN (SELECT id FROM t1 WHERE a LIKE 't%') ORDER BY 1",
            "SELECT POSITION('b' IN 'abc'), INTERVAL(5, 1, 10), HEX(WEIGHT_STRING('a'))",
            "SELECT 1 FROM DUAL",
            "SELECT DATABASE(), SCHEMA()",
            // An error with other conditions: SHOW WARNINGS lists them all, as MariaDB does;
            // a SET's own warnings are kept too.
            "CREATE TABLE tc (id INT, FirstName VARCHAR(30) CHECK (FirstName > 0))",
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES'",
            "INSERT INTO tc VALUES (1, 'Ken')",
            "SHOW WARNINGS",
            "SELECT @@warning_count, @@error_count",
            "SET SESSION sql_mode = DEFAULT",
            "SET optimizer_switch = 'engine_condition_pushdown=on'",
            "SHOW WARNINGS",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT * FROM r",
            "(SELECT id FROM t1 WHERE id = 1) UNION ALL (SELECT id FROM t1 WHERE id = 3)",
            "CREATE VIEW v1 AS SELECT id, a FROM t1 WHERE id > 1",
            "SELECT * FROM v1 ORDER BY id",
            "SHOW FULL TABLES",
            // A `SHOW` the router has no plan of its own for is the server's to answer.
            "SHOW statistics",
            "SHOW PROFILES",
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 't1' ORDER BY ORDINAL_POSITION",
            "SHOW CREATE TABLE t1",
            "SHOW INDEX FROM t1",
            "SHOW COLUMNS FROM t1 FROM app",
            "CREATE TABLE t2 LIKE t1",
            "CREATE TABLE t3 AS SELECT id, a FROM t1",
            "SELECT COUNT(*) FROM t3",
            "CREATE PROCEDURE p1(IN x INT) BEGIN SELECT x AS first; SELECT id, a FROM t1 WHERE id <= x ORDER BY id; END",
            "CALL p1(2)",
            "BEGIN",
            "CALL p1(3)",
            "SELECT 'after the call in a transaction'",
            "COMMIT",
            "CREATE FUNCTION f1(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
            "SELECT f1(21)",
            "CREATE TRIGGER tr1 BEFORE INSERT ON t2 FOR EACH ROW SET NEW.a = UPPER(NEW.a)",
            "INSERT INTO t2 (id, a) VALUES (7, 'seven')",
            "SELECT id, a FROM t2",
            "CREATE SEQUENCE s1 START WITH 10",
            "SELECT NEXTVAL(s1), NEXTVAL(s1)",
            "CHECK TABLE t1 EXTENDED",
            "CHECKSUM TABLE t1",
            "OPTIMIZE TABLE t3",
            "DELETE m1 FROM t3 m1, t3 m2 WHERE m1.id = m2.id AND m1.id = 3",
            "DELETE FROM m1 USING t3 m1, t3 m2 WHERE m1.id = m2.id AND m1.id = 2",
            "SELECT id FROM t3 ORDER BY id",
            "UPDATE t1 SET a = CONCAT(a, '!') WHERE id >= 2",
            "SELECT a FROM t1 ORDER BY id",
            "DESCRIBE t1",
            "EXPLAIN SELECT * FROM t1 WHERE id = 1",
            "SELECT nosuch FROM t1",
            "SELECT * FROM missing",
            "SET STATEMENT max_statement_time = 10 FOR SELECT COUNT(*) FROM t1",
            "DO 1 + 1",
            "SHOW PLUGINS",
            "SHOW ENGINES",
            "DROP VIEW v1",
            "DROP PROCEDURE p1",
            "DROP FUNCTION f1",
            "DROP SEQUENCE s1",
            "DROP TABLES t2, t3",
            "FLUSH TABLES t1",
            "SET @b := 5",
            "SELECT @b",
            "IF (SELECT COUNT(*) FROM t1) > 0 THEN SELECT 'some' AS answer; ELSE SELECT 'none' AS answer; END IF",
            "FOR i IN 1..2 DO SELECT i; END FOR",
            "SHOW TABLES",
        ],
    )
    .await;
    // A condition a program signals keeps its SQLSTATE.
    for c in [&mut r, &mut o] {
        match c
            .query_drop("BEGIN NOT ATOMIC SIGNAL SQLSTATE '45001' SET MESSAGE_TEXT = 'no'; END")
            .await
        {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!(
                    (e.code, e.state.as_str(), e.message.as_str()),
                    (1644, "45001", "no")
                )
            }
            other => panic!("{other:?}"),
        }
    }
    // Prepared, statements the router does not parse are described and run as sent.
    for c in [&mut r, &mut o] {
        c.exec_drop("DO ?", (1,)).await.expect("prepared DO");
        let got: Option<(i64, String)> = c
            .exec_first("SELECT POSITION(? IN 'abc'), DATABASE()", ("b",))
            .await
            .expect("prepared select");
        assert_eq!(got, Some((2, "app".to_string())));
    }
    // A multi-statement batch that defines a stored program is one statement, as MariaDB
    // reads it; after it the batch goes on statement by statement.
    let program = b"CREATE PROCEDURE p2() BEGIN SELECT 1 AS a; SELECT 2 AS b; END";
    assert_eq!(
        results(&mut r, program).await,
        results(&mut o, program).await
    );
    let call = b"CALL p2(); SELECT 3 AS c";
    let want = results(&mut o, call).await;
    assert_eq!(results(&mut r, call).await, want);
    assert_eq!(want.map(|s| s.len()), Ok(3), "three result sets");
    drop(r);
    drop(o);
    h.stop().await;
}

/// Every byte value reaches an unsharded keyspace as the client sent it, in each client
/// character set — also when it is not valid UTF-8, and when a multi-byte character's second
/// byte is `\` — and comes back the same as from MariaDB direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_round_trip_like_mariadb_in_every_charset() {
    let (h, mut r, mut o) = app_and_oracle().await;
    let create = "CREATE TABLE b (id int PRIMARY KEY, v blob, t varchar(300))";
    r.query_drop(create).await.expect("router create");
    o.query_drop(create).await.expect("direct create");
    let all: Vec<u8> = (0u8..=255).collect();
    for (i, cs) in ["binary", "latin1", "utf8mb4", "gbk", "sjis"]
        .iter()
        .enumerate()
    {
        for c in [&mut r, &mut o] {
            c.query_drop(format!("SET NAMES {cs}"))
                .await
                .expect("set names");
        }
        // Every byte in a binary string literal, escaped as a driver escapes for latin1.
        let mut lit = Vec::new();
        for &b in &all {
            match b {
                0 => lit.extend_from_slice(b"\\0"),
                b'\'' => lit.extend_from_slice(b"\\'"),
                b'\\' => lit.extend_from_slice(b"\\\\"),
                _ => lit.push(b),
            }
        }
        let id = i * 10;
        let mut insert = format!("INSERT INTO b (id, v) VALUES ({id}, _binary'").into_bytes();
        insert.extend_from_slice(&lit);
        insert.extend_from_slice(b"')");
        // A character whose second byte is `\` (sjis 0x95 0x5C, gbk 0xBF 0x5C), then a quote.
        let mut tricky = format!("INSERT INTO b (id, t) VALUES ({}, '", id + 1).into_bytes();
        tricky.extend_from_slice(&[0x95, 0x5c, 0xbf, 0x5c]);
        tricky.extend_from_slice(b"'); SELECT 'after'");
        let mut hex = b"SELECT HEX(_binary'".to_vec();
        hex.extend_from_slice(&[0x80, 0xff, 0xc3, 0x28]);
        hex.extend_from_slice(b"') AS h, HEX('");
        hex.extend_from_slice(&[0xe9, 0x95, 0x5c]);
        hex.extend_from_slice(b"') AS h2");
        for sql in [insert.as_slice(), tricky.as_slice(), hex.as_slice()] {
            let want = results(&mut o, sql).await;
            let got = results(&mut r, sql).await;
            assert_eq!(got, want, "{cs}: {}", String::from_utf8_lossy(sql));
        }
        let read = format!(
            "SELECT id, HEX(v), HEX(t), LENGTH(v) FROM b WHERE id IN ({id}, {})",
            id + 1
        );
        assert_eq!(
            results(&mut r, read.as_bytes()).await,
            results(&mut o, read.as_bytes()).await,
            "{cs}"
        );
    }
    // The binary string came back whole (not as 512 bytes of replacement characters).
    r.query_drop("SET NAMES utf8mb4").await.expect("names");
    let v: Option<Vec<u8>> = r
        .query_first("SELECT v FROM b WHERE id = 0")
        .await
        .expect("read");
    assert_eq!(v.as_deref(), Some(all.as_slice()));
    drop(r);
    drop(o);
    h.stop().await;
}

/// Statements that act on a whole physical shard or outside the session's keyspaces are
/// refused on every path (an unsharded keyspace, a sharded one, prepared), and the physical
/// shard does not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_reaching_past_the_keyspace_are_refused() {
    let vschema =
        "keyspace: demo\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n";
    let h = Harness::start(1, 0, vschema).await;
    let app = tessera_topo::VSchema::from_yaml(VSCHEMA).expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &app)
        .await
        .expect("apply");
    let mut probe = h.conn(None).await;
    for _ in 0..100 {
        if probe.query_drop("USE app").await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(probe);
    let mut d = h.direct(0).await;
    let before: Option<(u64, u64)> = d
        .query_first("SELECT @@global.max_connections, @@global.read_only")
        .await
        .expect("globals");
    for db in ["app", "demo"] {
        let mut c = h.conn(Some(db)).await;
        for (sql, code) in [
            ("SET GLOBAL max_connections = 5", 1227),
            ("SET @@global.read_only = 1", 1227),
            (
                "SET SESSION sql_mode = '', GLOBAL max_connections = 6",
                1227,
            ),
            ("/*!40101 SET GLOBAL max_connections = 7 */", 1227),
            ("SELECT user, authentication_string FROM mysql.user", 1044),
            ("SELECT * FROM `mysql`.`db`", 1044),
            ("SELECT * FROM performance_schema.threads", 1044),
            ("USE mysql", 1044),
            ("SHOW TABLES FROM mysql", 1044),
            ("SELECT * FROM demo_0001.t", 1044),
            ("SELECT LOAD_FILE('/etc/hostname')", 1227),
            ("SELECT 1 INTO OUTFILE '/tmp/tessera-outfile'", 1227),
            ("LOAD DATA INFILE '/etc/hostname' INTO TABLE t", 1227),
            ("CREATE USER intruder IDENTIFIED BY 'x'", 1227),
            ("GRANT ALL ON *.* TO intruder", 1227),
            ("SET PASSWORD = PASSWORD('x')", 1227),
            ("SHUTDOWN", 1227),
            ("FLUSH PRIVILEGES", 1227),
            ("EXECUTE IMMEDIATE 'KILL 5'", 1227),
            ("SELECT * FROM information_schema.PROCESSLIST", 1227),
            ("INSTALL SONAME 'ha_blackhole'", 1227),
        ] {
            let (got, msg) = error_code(&mut c, sql).await;
            assert_eq!(got, code, "{db}: {sql}: {msg}");
        }
        // Prepared, the same.
        match c.prep("SELECT * FROM mysql.user").await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1044),
            other => panic!("prepare of mysql.user: {other:?}"),
        }
        // Names that only look like them are fine.
        let ok: Option<String> = c
            .query_first("SELECT 'mysql.user' AS `mysql` -- LOAD_FILE(x)")
            .await
            .expect("a string is not a schema");
        assert_eq!(ok.as_deref(), Some("mysql.user"));
    }
    let after: Option<(u64, u64)> = d
        .query_first("SELECT @@global.max_connections, @@global.read_only")
        .await
        .expect("globals");
    assert_eq!(before, after, "the physical shard did not change");
    let users: Option<u64> = d
        .query_first("SELECT COUNT(*) FROM mysql.user WHERE user = 'intruder'")
        .await
        .expect("users");
    assert_eq!(users, Some(0));
    assert!(!std::path::Path::new("/tmp/tessera-outfile").exists());
    drop(d);
    h.stop().await;
}

/// State that lives on one backend connection — temporary tables, user variables a statement
/// assigns, table locks, SQL-level prepared statements, `HANDLER`, named locks,
/// `FOUND_ROWS()` — holds for the session that made it (on a connection reserved for it, in
/// and out of transactions) and for no other, as on MariaDB direct; a reset ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_local_state_holds_for_its_session() {
    let (h, mut r, mut o) = app_and_oracle().await;
    same_as_mariadb(
        &mut r,
        &mut o,
        &[
            "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "SELECT COUNT(*) INTO @n FROM t",
            "SELECT @n, @m := @n + 1, @m",
            "CREATE TEMPORARY TABLE tmp (x int)",
            "INSERT INTO tmp SELECT id FROM t",
            "SELECT SUM(x) FROM tmp",
            "BEGIN",
            "INSERT INTO tmp VALUES (10)",
            "SELECT SUM(x) FROM tmp",
            "ROLLBACK",
            "SELECT SUM(x) FROM tmp",
            "SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 1",
            "SELECT FOUND_ROWS()",
            "PREPARE s FROM 'SELECT a FROM t WHERE id = ?'",
            "SET @id = 2",
            "EXECUTE s USING @id",
            "DEALLOCATE PREPARE s",
            "EXECUTE IMMEDIATE 'SELECT COUNT(*) FROM t'",
            "HANDLER t OPEN",
            "HANDLER t READ `PRIMARY` FIRST",
            "HANDLER t CLOSE",
            "SELECT GET_LOCK('tessera-test', 0)",
            "SELECT IS_USED_LOCK('tessera-test') IS NOT NULL",
            "SELECT RELEASE_LOCK('tessera-test')",
            "LOCK TABLES t WRITE",
            "INSERT INTO t VALUES (4, 'd')",
            "UNLOCK TABLES",
            "SELECT COUNT(*) FROM t",
            "DROP TEMPORARY TABLE tmp",
            "SELECT * FROM tmp",
            "CREATE PROCEDURE leave_state() BEGIN SET @from_proc = 42; SET SESSION div_precision_increment = 9; CREATE TEMPORARY TABLE proc_tmp (x int); INSERT INTO proc_tmp VALUES (1), (2); END",
        ],
    )
    .await;
    // What a procedure leaves behind is its session's (one that held no connection of its
    // own before), and no other session's.
    let mut p = h.conn(Some("app")).await;
    let mut po = h.direct(1).await;
    po.query_drop("USE app").await.expect("use");
    same_as_mariadb(
        &mut p,
        &mut po,
        &[
            "CALL leave_state()",
            "SELECT @from_proc, @@div_precision_increment, 1 / 3",
            "SELECT COUNT(*) FROM proc_tmp",
            "SELECT @from_proc, @@div_precision_increment",
        ],
    )
    .await;
    drop(po);
    let mut other = h.conn(Some("app")).await;
    for _ in 0..3 {
        let v: Option<(Option<i64>, i64)> = other
            .query_first("SELECT @from_proc, @@div_precision_increment")
            .await
            .expect("another session's view");
        assert_eq!(
            v,
            Some((None, 4)),
            "a procedure's state stays in its session"
        );
    }
    drop(other);
    drop(p);
    // `sql_auto_is_null`: `WHERE auto_col IS NULL` finds the row the session last inserted,
    // in sessions that held no connection of their own before, while another session with
    // the same settings inserts too.
    let mut q = h.conn(Some("app")).await;
    let mut q2 = h.conn(Some("app")).await;
    let mut qo = h.direct(1).await;
    let mut qo2 = h.direct(1).await;
    for o in [&mut qo, &mut qo2] {
        o.query_drop("USE app").await.expect("use");
    }
    let steps: &[(bool, &str)] = &[
        (
            true,
            "CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        ),
        (true, "SET sql_auto_is_null = 1"),
        (false, "SET sql_auto_is_null = 1"),
        (true, "INSERT INTO ai (v) VALUES (10)"),
        (false, "INSERT INTO ai (v) VALUES (99)"),
        (true, "SELECT id, v FROM ai WHERE id IS NULL"),
        (false, "SELECT id, v FROM ai WHERE id IS NULL"),
        (true, "INSERT INTO ai (v) VALUES (20), (30)"),
        (true, "SELECT id, v FROM ai WHERE id IS NULL"),
        (true, "SET sql_auto_is_null = 0"),
        (true, "SELECT id, v FROM ai WHERE id IS NULL"),
    ];
    for (first, sql) in steps {
        let (r, o) = match first {
            true => (&mut q, &mut qo),
            false => (&mut q2, &mut qo2),
        };
        let want = results(o, sql.as_bytes()).await;
        let got = results(r, sql.as_bytes()).await;
        assert_eq!(got, want, "{sql}");
    }
    drop((q, q2, qo, qo2));
    // Another session does not see this one's temporary table or variables.
    r.query_drop("CREATE TEMPORARY TABLE mine (x int)")
        .await
        .expect("temporary table");
    let mut other = h.conn(Some("app")).await;
    let (code, _) = error_code(&mut other, "SELECT * FROM mine").await;
    assert_eq!(
        code, 1146,
        "another session's temporary table is not visible"
    );
    let v: Option<Option<i64>> = other.query_first("SELECT @n").await.expect("@n");
    assert_eq!(v, Some(None), "another session's variable is not set");
    // A reset ends the session's connection-local state, as on MariaDB.
    r.reset().await.expect("reset");
    let (code, _) = error_code(&mut r, "SELECT * FROM mine").await;
    assert_eq!(code, 1146, "the reset dropped the temporary table");
    // Dynamic SQL stays inside the keyspace too.
    for (sql, code) in [
        ("PREPARE s FROM 'SELECT * FROM mysql.user'", 1044),
        ("EXECUTE IMMEDIATE 'SET GLOBAL max_connections = 3'", 1227),
        ("PREPARE s FROM @q", 1227),
        ("EXECUTE IMMEDIATE CONCAT('SELECT ', '1')", 1227),
    ] {
        let (got, msg) = error_code(&mut r, sql).await;
        assert_eq!(got, code, "{sql}: {msg}");
    }
    // UNLOCK TABLES with nothing locked is fine, as on MariaDB.
    r.query_drop("UNLOCK TABLES").await.expect("unlock");
    drop(other);
    drop(r);
    drop(o);
    h.stop().await;
}

/// Runs the `mariadb` CLI against `port` with `args`, returning (success, stdout, stderr).
fn cli(port: u16, user: &str, pw: &str, db: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            &format!("-u{user}"),
            &format!("-p{pw}"),
            "--skip-ssl",
            db,
        ])
        .args(args)
        .output()
        .expect("run mariadb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `mariadb` CLI with `args` through the router and against server `s` directly:
/// both succeed with the same output, which is returned.
fn same_output_as_direct(
    h: &Harness,
    s: &tessera::localcluster::MariaDbServer,
    db: &str,
    args: &[&str],
) -> String {
    let routed = cli(h.port(), USER, PASSWORD, db, args);
    let direct = cli(s.port(), s.user(), s.password(), db, args);
    assert!(direct.0, "direct: {}", direct.2);
    assert!(routed.0, "router: {}", routed.2);
    assert_eq!(routed.1, direct.1);
    routed.1
}

/// `LOAD DATA LOCAL INFILE` into an unsharded keyspace: the client's file reaches MariaDB
/// through the router, with the same rows, counts and warnings as direct; a client that did
/// not enable it gets MariaDB's 1148.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_infile_like_mariadb() {
    let h = Harness::start(1, 1, VSCHEMA).await;
    let mut o = h.direct(1).await;
    o.query_drop("CREATE DATABASE app")
        .await
        .expect("oracle db");
    let s = &h.cluster.servers()[1];
    let dir = std::env::temp_dir().join(format!("tessera-infile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("rows.csv");
    let mut text = String::new();
    for i in 0..50_000 {
        text.push_str(&format!("{i},name {i}\n"));
    }
    // A row with too many fields and one with a bad number: warnings, as direct.
    text.push_str("50000,x,extra\nabc,y\n");
    std::fs::write(&file, &text).expect("write file");
    let load = format!(
        "CREATE TABLE l (id int PRIMARY KEY, n varchar(20)); \
         LOAD DATA LOCAL INFILE '{}' INTO TABLE l FIELDS TERMINATED BY ','; \
         SHOW WARNINGS; SELECT COUNT(*), SUM(id), MAX(n) FROM l",
        file.display()
    );
    let routed = same_output_as_direct(&h, s, "app", &["--local-infile=1", "-e", &load]);
    assert!(routed.contains("50002"), "{routed}");
    // Inside a transaction (a connection the transaction pins): rolled back, then committed.
    let txn = format!(
        "CREATE TABLE l2 (id int PRIMARY KEY, n varchar(20)); \
         BEGIN; LOAD DATA LOCAL INFILE '{f}' INTO TABLE l2 FIELDS TERMINATED BY ','; \
         SELECT COUNT(*) FROM l2; ROLLBACK; SELECT COUNT(*) FROM l2; \
         SET autocommit = 0; LOAD DATA LOCAL INFILE '{f}' INTO TABLE l2 FIELDS TERMINATED BY ','; \
         SHOW WARNINGS; COMMIT; SELECT COUNT(*), SUM(id) FROM l2",
        f = file.display()
    );
    same_output_as_direct(&h, s, "app", &["--local-infile=1", "-e", &txn]);
    // Without LOCAL INFILE on the client: 1148, nothing loaded.
    let refused = cli(
        h.port(),
        USER,
        PASSWORD,
        "app",
        &[
            "--local-infile=0",
            "-e",
            &format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE l", file.display()),
        ],
    );
    assert!(!refused.0);
    assert!(refused.2.contains("1148"), "{}", refused.2);
    let _ = std::fs::remove_dir_all(&dir);
    drop(o);
    h.stop().await;
}

/// `mariadb-dump` through the router of an unsharded keyspace gives the dump MariaDB direct
/// gives of the same schema (tables, rows, views, routines, triggers), in the default mode and
/// with `--single-transaction`; restored through the router into another keyspace, it holds
/// the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_restore_through_the_router_like_mariadb() {
    let h = Harness::start(1, 0, VSCHEMA).await;
    let copy =
        tessera_topo::VSchema::from_yaml("keyspace: copy\nsharded: false\n").expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &copy)
        .await
        .expect("apply");
    let mut r = h.conn(Some("app")).await;
    for sql in [
        "CREATE TABLE t (id int PRIMARY KEY, a varchar(20), b blob)",
        "INSERT INTO t VALUES (1, 'one', x'00ff'), (2, 'it''s', NULL), (3, 'été', '')",
        "CREATE VIEW v AS SELECT id, a FROM t WHERE id > 1",
        "CREATE PROCEDURE p(x int) SELECT x * 2",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = UPPER(NEW.a)",
    ] {
        r.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let s = &h.cluster.servers()[0];
    let dump = |port: u16, user: &str, pw: &str, extra: &[&str]| {
        let out = std::process::Command::new("mariadb-dump")
            .args([
                "-h127.0.0.1",
                &format!("-P{port}"),
                &format!("-u{user}"),
                &format!("-p{pw}"),
                "--skip-ssl",
                "--routines",
                "--triggers",
                "--skip-dump-date",
            ])
            .args(extra)
            .arg("app")
            .output()
            .expect("run mariadb-dump");
        assert!(
            out.status.success(),
            "mariadb-dump {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Without the header lines that name the host and server version; as bytes (a blob's
        // bytes are written as they are).
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.starts_with(b"-- Host:") && !l.starts_with(b"-- Server version"))
            .collect::<Vec<_>>()
            .join(&b'\n')
    };
    for extra in [&[][..], &["--single-transaction"][..]] {
        let routed = dump(h.port(), USER, PASSWORD, extra);
        let direct = dump(s.port(), s.user(), s.password(), extra);
        assert!(routed == direct, "dump {extra:?} differs");
        let shown = String::from_utf8_lossy(&routed);
        assert!(shown.contains("INSERT INTO `t` VALUES"), "{shown}");
    }
    // Restore through the router into the other keyspace.
    let text = dump(h.port(), USER, PASSWORD, &[]);
    restore_through_router(h.port(), "copy", &text);
    let mut c = h.conn(Some("copy")).await;
    same_rows(
        &mut r,
        &mut c,
        &[
            "SELECT id, a, HEX(b) FROM t ORDER BY id",
            "SELECT * FROM v ORDER BY id",
        ],
    )
    .await;
    let n: Option<i64> = c.query_first("CALL p(21)").await.expect("call");
    assert_eq!(n, Some(42));
    drop(c);
    drop(r);
    h.stop().await;
}

/// The router's sessions as one database shows its connections: `CONNECTION_ID()` is the
/// id `SHOW PROCESSLIST` lists, `KILL QUERY id` interrupts that session's statement on its
/// backend, `KILL id` ends the session; a user sees and kills only its own sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_list_and_kill_act_on_router_sessions() {
    let h = Harness::start(1, 0, VSCHEMA).await;
    let mut a = h.conn(Some("app")).await;
    let mut b = h.conn(Some("app")).await;
    let id: Option<u32> = a.query_first("SELECT CONNECTION_ID()").await.expect("id");
    let id = id.expect("an id");
    // (The session's answer may reach its client a moment before the session is marked idle,
    // as on MariaDB: asked again for a while.)
    let mut row = None;
    for _ in 0..50 {
        let list: Vec<mysql_async::Row> = b.query("SHOW FULL PROCESSLIST").await.expect("list");
        let r = list
            .into_iter()
            .find(|r| r.get::<u32, _>(0) == Some(id))
            .expect("the other session is listed");
        let sleeping = r.get::<String, _>("Command").as_deref() == Some("Sleep");
        row = Some(r);
        if sleeping {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let row = row.expect("listed");
    assert_eq!(row.get::<String, _>("User").as_deref(), Some(USER));
    assert_eq!(row.get::<String, _>("db").as_deref(), Some("app"));
    assert_eq!(row.get::<String, _>("Command").as_deref(), Some("Sleep"));
    // A long statement, interrupted by KILL QUERY from the other session.
    let started = std::time::Instant::now();
    let long = tokio::spawn(async move {
        let r: Result<Option<i64>, _> = a.query_first("SELECT SLEEP(20)").await;
        (r.map_err(|e| e.to_string()), a)
    });
    let mut seen = false;
    for _ in 0..100 {
        let list: Vec<mysql_async::Row> = b.query("SHOW PROCESSLIST").await.expect("list");
        seen = list.iter().any(|r| {
            r.get::<u32, _>(0) == Some(id)
                && r.get::<String, _>("Command").as_deref() == Some("Query")
                && r.get::<String, _>("Info")
                    .is_some_and(|i| i.contains("SLEEP"))
        });
        if seen {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the running statement is listed");
    b.query_drop(format!("KILL QUERY {id}"))
        .await
        .expect("kill query");
    let (r, mut a) = long.await.expect("task");
    // MariaDB ends an interrupted SLEEP() with 1 (or the statement with 1317).
    assert!(
        matches!(r, Ok(Some(1))) || r.as_ref().is_err_and(|e| e.contains("1317")),
        "{r:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let one: Option<u8> = a
        .query_first("SELECT 1")
        .await
        .expect("the session goes on");
    assert_eq!(one, Some(1));
    // Another user may not kill it; an unknown id is 1094.
    let mut other = mysql_async::Conn::new(h.opts(Some("app"), "nopw", ""))
        .await
        .expect("other user");
    let (code, _) = error_code(&mut other, &format!("KILL {id}")).await;
    assert_eq!(code, 1095);
    let listed: Vec<mysql_async::Row> = other.query("SHOW PROCESSLIST").await.expect("list");
    assert!(listed.iter().all(|r| r.get::<u32, _>(0) != Some(id)));
    let (code, _) = error_code(&mut b, "KILL 4000000000").await;
    assert_eq!(code, 1094);
    // KILL ends the session.
    b.query_drop(format!("KILL {id}")).await.expect("kill");
    assert!(
        a.query_drop("SELECT 1").await.is_err(),
        "the killed session is closed"
    );
    drop(other);
    drop(b);
    h.stop().await;
}

/// `mariadb-dump` of a sharded keyspace (4 physical shards, 64 logical shards) through the
/// router, in the default mode (`LOCK TABLES`), `--single-transaction`, `--skip-lock-tables`,
/// `--no-data` and `--where`: exit 0, each logical table described once under the keyspace's
/// name (no physical schema names), and every row of every logical shard (none with
/// `--no-data`, those the condition picks with `--where`) — restored into one MariaDB, the
/// rows equal the router's; and the
/// default dump, restored through the router into another sharded keyspace as `mariadb`
/// sends it (`LOCK TABLES … WRITE`, `DISABLE KEYS`, extended inserts without a column list),
/// holds the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_of_a_sharded_keyspace_holds_every_row() {
    let vschema = "keyspace: demo\nsharded: true\nlogical_shards: 64\ntables:\n  \
                   customer: { shard_key: customer_id }\n  country: { type: reference }\n";
    let h = Harness::start(4, 1, vschema).await;
    let mut r = h.conn(Some("demo")).await;
    r.query_drop(
        "CREATE TABLE customer (customer_id bigint PRIMARY KEY, name varchar(40), note blob)",
    )
    .await
    .expect("create");
    r.query_drop("CREATE TABLE country (code char(2) PRIMARY KEY, name varchar(40))")
        .await
        .expect("create reference");
    r.query_drop("INSERT INTO country (code, name) VALUES ('fr', 'France'), ('jp', 'Japan')")
        .await
        .expect("insert reference");
    // Enough rows for extended inserts of more than 32 KiB, which the router splits without
    // parsing their rows.
    let mut values = Vec::new();
    for i in 0..3000 {
        values.push(format!("({i}, 'name {i}', x'00ff{:02x}27')", i % 256));
    }
    r.query_drop(format!(
        "INSERT INTO customer (customer_id, name, note) VALUES {}",
        values.join(", ")
    ))
    .await
    .expect("insert");
    // Metadata answers under the keyspace's name.
    let schemas: Vec<(String, String)> = r
        .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 2")
        .await
        .expect("metadata");
    assert_eq!(schemas, vec![("demo".to_string(), "customer".to_string())]);
    let engine: Option<String> = r
        .query_first("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'demo' AND TABLE_NAME = 'country'")
        .await
        .expect("reference metadata");
    assert_eq!(engine.as_deref(), Some("InnoDB"));
    let copy =
        tessera_topo::VSchema::from_yaml(&vschema.replace("keyspace: demo", "keyspace: copy"))
            .expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &copy)
        .await
        .expect("apply");
    let mut o = h.oracle(4).await;
    let mut default_dump = Vec::new();
    // Each mode, and the tables it dumps (`--where` applies to every table it dumps: only
    // the one with that column).
    let modes: [(&str, &[&str]); 5] = [
        ("--opt", &[]),
        ("--single-transaction", &[]),
        ("--skip-lock-tables", &[]),
        ("--no-data", &[]),
        (
            "--where=customer_id < 100 OR name = 'name 2999'",
            &["customer"],
        ),
    ];
    for (mode, tables) in modes {
        let port = format!("-P{}", h.port());
        let user = format!("-u{USER}");
        let password = format!("-p{PASSWORD}");
        let mut args = vec![
            "-h127.0.0.1",
            port.as_str(),
            user.as_str(),
            password.as_str(),
            "--skip-ssl",
            "--hex-blob",
            mode,
            "demo",
        ];
        args.extend_from_slice(tables);
        let out = std::process::Command::new("mariadb-dump")
            .args(&args)
            .output()
            .expect("run mariadb-dump");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if mode == "--opt" {
            default_dump = out.stdout.clone();
            assert!(text.contains("LOCK TABLES `customer` WRITE"), "{text}");
        }
        assert!(
            !text.contains("demo_0"),
            "{mode}: a physical schema name in the dump"
        );
        assert_eq!(text.matches("CREATE TABLE `customer`").count(), 1, "{mode}");
        let with_country = tables.is_empty();
        assert_eq!(
            text.matches("CREATE TABLE `country`").count(),
            usize::from(with_country),
            "{mode}"
        );
        // Restored into one MariaDB: the same rows.
        o.query_drop("DROP TABLE IF EXISTS customer, country")
            .await
            .expect("drop");
        o.query_drop(text.as_str())
            .await
            .expect("restore into MariaDB");
        let filter = match mode {
            "--no-data" => " WHERE FALSE",
            m if m.starts_with("--where") => " WHERE customer_id < 100 OR name = 'name 2999'",
            _ => "",
        };
        let mut checks = vec![(
            format!(
                "SELECT customer_id, name, HEX(note) FROM customer{filter} ORDER BY customer_id"
            ),
            "SELECT customer_id, name, HEX(note) FROM customer ORDER BY customer_id".to_string(),
        )];
        if with_country {
            checks.push((
                format!("SELECT code, name FROM country{filter} ORDER BY code"),
                "SELECT code, name FROM country ORDER BY code".to_string(),
            ));
        }
        for (router_sql, sql) in &checks {
            let want: Vec<mysql_async::Row> = r.query(router_sql).await.expect("router");
            let got: Vec<mysql_async::Row> = o.query(sql).await.expect("restored");
            let rows = |v: Vec<mysql_async::Row>| -> Vec<Vec<mysql_async::Value>> {
                v.into_iter().map(|r| r.unwrap()).collect()
            };
            let (got, want) = (rows(got), rows(want));
            assert_eq!(got.len(), want.len(), "{mode}: {sql}");
            assert_eq!(got, want, "{mode}: {sql}");
            if filter.is_empty() {
                assert!(!got.is_empty(), "{mode}: {sql}: rows");
            }
            if mode.starts_with("--where") {
                assert_eq!(got.len(), 101, "{mode}: the rows the condition picks");
            }
        }
        if mode == "--no-data" {
            assert!(!text.contains("INSERT INTO"), "{mode}: no rows in the dump");
        }
    }
    // The default dump restored through the router into the other sharded keyspace.
    restore_through_router(h.port(), "copy", &default_dump);
    let mut c = h.conn(Some("copy")).await;
    same_rows(
        &mut r,
        &mut c,
        &[
            "SELECT customer_id, name, HEX(note) FROM customer ORDER BY customer_id",
            "SELECT code, name FROM country ORDER BY code",
        ],
    )
    .await;
    // Each row on the logical shard its key names (the router finds it by its key).
    let one: Option<String> = c
        .query_first("SELECT name FROM customer WHERE customer_id = 137")
        .await
        .expect("point read");
    assert_eq!(one.as_deref(), Some("name 137"));
    drop(c);
    drop(o);
    drop(r);
    h.stop().await;
}

/// Pipes `dump` into the `mariadb` CLI connected through the router to keyspace `db`; it must
/// succeed.
fn restore_through_router(port: u16, db: &str, dump: &[u8]) {
    let mut child = std::process::Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            &format!("-u{USER}"),
            &format!("-p{PASSWORD}"),
            "--skip-ssl",
            db,
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mariadb");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(dump).expect("write dump");
    }
    let out = child.wait_with_output().expect("restore");
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each query gives the same rows on `want` and `got`.
async fn same_rows(want: &mut mysql_async::Conn, got: &mut mysql_async::Conn, queries: &[&str]) {
    let rows = |v: Vec<mysql_async::Row>| -> Vec<Vec<mysql_async::Value>> {
        v.into_iter().map(|r| r.unwrap()).collect()
    };
    for sql in queries {
        let w: Vec<mysql_async::Row> = want.query(*sql).await.expect("source");
        let g: Vec<mysql_async::Row> = got.query(*sql).await.expect("copy");
        assert_eq!(rows(g), rows(w), "{sql}");
    }
}

/// The affected rows of one statement.
async fn affected(c: &mut mysql_async::Conn, sql: &str) -> u64 {
    let res = c.query_iter(sql).await.expect("statement");
    let n = res.affected_rows();
    res.drop_result().await.expect("drop result");
    n
}

/// `CREATE DATABASE` makes an unsharded keyspace (in the topology, its schema with the
/// statement's options on the physical shard its placement picks) that every session and
/// router sees, and `DROP DATABASE` drops it: the same answers, warnings and affected rows as
/// MariaDB direct. The server's own schemas, sharded keyspaces and users without the right
/// are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_drop_database_make_and_drop_keyspaces() {
    let vschema =
        "keyspace: demo\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n";
    let h = Harness::start(2, 1, vschema).await;
    let mut r = h.conn(None).await;
    let mut o = h.direct(2).await;
    let script: &[&str] = &[
        "SET collation_server = utf8mb4_unicode_ci",
        "CREATE DATABASE k0 CHARACTER SET DEFAULT",
        "SHOW CREATE DATABASE k0",
        "DROP DATABASE k0",
        "SET collation_server = DEFAULT",
        "CREATE DATABASE k1 CHARACTER SET latin1 COLLATE latin1_general_ci",
        "CREATE DATABASE k1",
        "CREATE DATABASE IF NOT EXISTS k1",
        "SHOW WARNINGS",
        "CREATE TABLE k1.t (a INT PRIMARY KEY, s VARCHAR(10))",
        "INSERT INTO k1.t VALUES (1, 'x'), (2, 'y')",
        "SELECT a, s FROM k1.t ORDER BY a",
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'k1'",
        "CREATE SCHEMA IF NOT EXISTS k2",
        "SHOW CREATE DATABASE k1",
        "SHOW CREATE SCHEMA IF NOT EXISTS k1",
        "CREATE PROCEDURE k1.p() BEGIN INSERT INTO k1.t VALUES (3, 'z'); SELECT LAST_INSERT_ID() AS id; END",
        "CALL k1.p()",
        "DROP DATABASE k1",
        "DROP DATABASE k1",
        "DROP DATABASE IF EXISTS k1",
        "SHOW WARNINGS",
        "SELECT DATABASE()",
    ];
    for sql in script {
        let want = results(&mut o, sql.as_bytes()).await;
        let got = results(&mut r, sql.as_bytes()).await;
        assert_eq!(got, want, "{sql}");
    }
    // Affected rows: 1 for a create, the tables dropped for a drop.
    for c in [&mut r, &mut o] {
        c.query_drop("CREATE TABLE k2.a (x INT)").await.expect("a");
        c.query_drop("CREATE TABLE k2.b (x INT)").await.expect("b");
    }
    assert_eq!(affected(&mut r, "CREATE DATABASE k3").await, 1);
    assert_eq!(
        affected(&mut r, "DROP DATABASE k2").await,
        affected(&mut o, "DROP DATABASE k2").await
    );
    // Another session sees the keyspace at once, and its current one goes with the drop.
    let mut other = h.conn(Some("k3")).await;
    other
        .query_drop("CREATE TABLE t (a INT)")
        .await
        .expect("in k3");
    r.query_drop("USE k3").await.expect("use");
    r.query_drop("DROP DATABASE k3").await.expect("drop k3");
    let db: Option<Option<String>> = r.query_first("SELECT DATABASE()").await.expect("db");
    assert_eq!(db, Some(None));
    match other.query_drop("SELECT * FROM t").await {
        Err(mysql_async::Error::Server(e)) => {
            assert!([1049, 1146, 1046].contains(&e.code), "{e:?}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(h.topo.get_keyspace("k3").await.expect("topo").is_none());
    // Refused: the server's schemas, a sharded keyspace, a logical shard's schema name, and a
    // user without the right.
    for (sql, code) in [
        ("CREATE DATABASE mysql", 1044),
        ("DROP DATABASE performance_schema", 1044),
        ("DROP DATABASE demo", 1235),
        ("CREATE DATABASE demo_0001", 1007),
        ("CREATE OR REPLACE DATABASE k4", 1235),
    ] {
        match r.query_drop(sql).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, code, "{sql}: {}", e.message),
            other => panic!("{sql}: expected an error, got {other:?}"),
        }
    }
    let mut nopw = mysql_async::Conn::new(h.opts(None, "nopw", ""))
        .await
        .expect("nopw");
    match nopw.query_drop("CREATE DATABASE k5").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1044, "{}", e.message),
        other => panic!("expected 1044, got {other:?}"),
    }
    // The session's sql_if_exists makes a DROP of a missing database a note, as IF EXISTS.
    r.query_drop("SET @@session.sql_if_exists = 1")
        .await
        .expect("set");
    r.query_drop("DROP DATABASE no_such_keyspace")
        .await
        .expect("a note, not an error");
    assert_eq!(r.get_warnings(), 1);
    r.query_drop("SET @@session.sql_if_exists = 0")
        .await
        .expect("set");
    let (code, _) = error_code(&mut r, "DROP DATABASE no_such_keyspace").await;
    assert_eq!(code, 1008);
    drop((r, o, other, nopw));
    h.stop().await;
}

/// Users limited to some keyspaces reach only those (a login's database, `USE`, names in
/// statements, `SHOW DATABASES`, `CREATE DATABASE`), and a read-only user only reads, on every
/// path (text, prepared, verbatim, planned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_reach_their_keyspaces_and_read_only_users_only_read() {
    use tessera_router::config::UserConfig;
    let h = Harness::start_with(1, 0, VSCHEMA, |cfg| {
        cfg.users.push(UserConfig {
            keyspaces: Some(vec!["app".into()]),
            read_only: true,
            ..UserConfig::with_password("reader", Some("r"))
        });
        cfg.users.push(UserConfig {
            keyspaces: Some(vec!["app".into(), "k9".into()]),
            ..UserConfig::with_password("appuser", Some("a"))
        });
    })
    .await;
    for v in [
        "keyspace: other\nsharded: false\n",
        "keyspace: demo\nsharded: true\nlogical_shards: 2\ntables:\n  t: { shard_key: id }\n",
    ] {
        let v = tessera_topo::VSchema::from_yaml(v).expect("vschema");
        tessera::cli::apply_vschema(&h.topo, &v)
            .await
            .expect("apply");
    }
    let mut admin = h.conn(Some("app")).await;
    admin
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    admin
        .query_drop("INSERT INTO t VALUES (1, 1)")
        .await
        .expect("row");
    admin
        .query_drop("CREATE PROCEDURE p() INSERT INTO t VALUES (9, 9)")
        .await
        .expect("procedure");
    let connect = |user: &'static str, pw: &'static str, db: Option<&'static str>| {
        mysql_async::Conn::new(h.opts(db, user, pw))
    };
    let code = |r: Result<(), mysql_async::Error>| match r {
        Err(mysql_async::Error::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    };
    // The read-only user: reads work; every kind of write is 1290.
    let mut reader = connect("reader", "r", Some("app")).await.expect("reader");
    let n: Option<i64> = reader
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("read");
    assert_eq!(n, Some(1));
    for sql in [
        "INSERT INTO t VALUES (2, 2)",
        "UPDATE t SET v = 3",
        "DELETE FROM t",
        "CREATE TABLE u (a INT)",
        "DROP TABLE t",
        "CALL p()",
        "CREATE DATABASE app2",
    ] {
        assert_eq!(code(reader.query_drop(sql).await), 1290, "{sql}");
    }
    assert_eq!(
        code(
            reader
                .exec_drop("INSERT INTO t VALUES (?, ?)", (4, 4))
                .await
        ),
        1290,
        "prepared insert"
    );
    // Other keyspaces: 1044 by `USE`, by name, at login; `SHOW DATABASES` lists its own.
    assert_eq!(code(reader.query_drop("USE other").await), 1044);
    assert_eq!(code(reader.query_drop("SELECT * FROM other.x").await), 1044);
    assert_eq!(code(reader.query_drop("SELECT * FROM demo.t").await), 1044);
    let dbs: Vec<String> = reader.query("SHOW DATABASES").await.expect("show");
    assert_eq!(
        dbs,
        vec!["app".to_string(), "information_schema".to_string()]
    );
    match connect("reader", "r", Some("other")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1044),
        other => panic!("a login into another keyspace: {other:?}"),
    }
    // A user with a list writes in its keyspaces, creates only those it lists.
    let mut app = connect("appuser", "a", Some("app")).await.expect("appuser");
    app.query_drop("INSERT INTO t VALUES (5, 5)")
        .await
        .expect("write");
    assert_eq!(code(app.query_drop("CREATE DATABASE k8").await), 1044);
    app.query_drop("CREATE DATABASE k9")
        .await
        .expect("listed keyspace");
    app.query_drop("USE k9").await.expect("use k9");
    app.query_drop("DROP DATABASE k9").await.expect("drop k9");
    assert_eq!(code(app.query_drop("USE demo").await), 1044);
    // `information_schema` shows the schemas a user may see: its keyspaces (and no physical
    // schema of a sharded keyspace, nor the server's own), in and out of a transaction.
    let schemata = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1";
    let seen: Vec<String> = reader.query(schemata).await.expect("schemata");
    assert_eq!(
        seen,
        vec!["app".to_string(), "information_schema".to_string()]
    );
    let seen: Vec<String> = admin.query(schemata).await.expect("schemata");
    assert_eq!(
        seen,
        vec![
            "app".to_string(),
            "information_schema".to_string(),
            "other".to_string()
        ]
    );
    // Asked with no keyspace chosen (any physical shard answers): the same.
    let mut none = h.conn(None).await;
    let seen: Vec<String> = none.query(schemata).await.expect("schemata");
    assert_eq!(
        seen,
        vec![
            "app".to_string(),
            "information_schema".to_string(),
            "other".to_string()
        ]
    );
    drop(none);
    admin.query_drop("BEGIN").await.expect("begin");
    let seen: Vec<String> = admin
        .query("SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES ORDER BY 1")
        .await
        .expect("tables");
    admin.query_drop("COMMIT").await.expect("commit");
    assert_eq!(
        seen,
        vec!["app".to_string(), "information_schema".to_string()]
    );
    // Two unsharded keyspaces on one physical shard: a statement naming both runs as written.
    admin
        .query_drop("CREATE TABLE other.o (a INT)")
        .await
        .expect("create in the other keyspace");
    admin
        .query_drop("INSERT INTO other.o (a) SELECT id FROM t")
        .await
        .expect("insert across co-located keyspaces");
    let n: Option<i64> = admin
        .query_first("SELECT COUNT(*) FROM other.o JOIN t ON t.id = other.o.a")
        .await
        .expect("join across co-located keyspaces");
    assert_eq!(n, Some(2));
    assert_eq!(code(reader.query_drop("SELECT * FROM other.o").await), 1044);
    // Nothing was written by the refused statements.
    let n: Option<i64> = admin
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(n, Some(2));
    drop((admin, reader, app));
    h.stop().await;
}

async fn max_conn(d: &mut mysql_async::Conn) -> u64 {
    let v: Option<u64> = d
        .query_first("SELECT @@global.max_connections")
        .await
        .expect("global");
    v.expect("a value")
}

/// An admin user's statements on a whole server (`SET GLOBAL`, users, `mysql.*`, `FLUSH TABLES
/// WITH READ LOCK`) run on the physical shard that holds its session's unsharded keyspace —
/// and on no other — where an application user's are refused; an admin sees and kills every
/// session. Reading a global into a user variable is no `SET GLOBAL`, for any user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_users_run_server_statements_on_their_keyspace_server() {
    use tessera_router::config::UserConfig;
    let h = Harness::start_with(2, 0, VSCHEMA, |cfg| {
        cfg.users.push(UserConfig {
            admin: true,
            ..UserConfig::with_password("dba", Some("d"))
        });
    })
    .await;
    let sharded = tessera_topo::VSchema::from_yaml(
        "keyspace: demo\nsharded: true\nlogical_shards: 2\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &sharded)
        .await
        .expect("apply");
    // Which physical shard holds `app`.
    let mut holds = Vec::new();
    for i in 0..2 {
        let mut d = h.direct(i).await;
        let n: Option<u64> = d
            .query_first(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'",
            )
            .await
            .expect("schemata");
        holds.push(n == Some(1));
    }
    let home = holds
        .iter()
        .position(|&h| h)
        .expect("app is on a physical shard");
    let (mut here, mut there) = (h.direct(home).await, h.direct(1 - home).await);
    let (home_before, other_before) = (max_conn(&mut here).await, max_conn(&mut there).await);

    let mut dba = mysql_async::Conn::new(h.opts(Some("app"), "dba", "d"))
        .await
        .expect("admin login");
    dba.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("create");
    dba.query_drop("SET GLOBAL max_connections = 177")
        .await
        .expect("an admin's SET GLOBAL");
    assert_eq!(max_conn(&mut here).await, 177);
    assert_eq!(max_conn(&mut there).await, other_before, "the other server");
    assert_eq!(max_conn(&mut dba).await, 177);
    // A global with a session value: the session that set it keeps its own value, as on one
    // server; a new session starts with the new one.
    dba.query_drop("SET GLOBAL div_precision_increment = 7")
        .await
        .expect("SET GLOBAL with a session value");
    let seen: Option<(u64, u64)> = dba
        .query_first("SELECT @@session.div_precision_increment, @@global.div_precision_increment")
        .await
        .expect("values");
    assert_eq!(seen, Some((4, 7)));
    let mut fresh = mysql_async::Conn::new(h.opts(Some("app"), "dba", "d"))
        .await
        .expect("admin login");
    let seen: Option<u64> = fresh
        .query_first("SELECT @@session.div_precision_increment")
        .await
        .expect("value");
    assert_eq!(seen, Some(7));
    drop(fresh);
    dba.query_drop("SET GLOBAL div_precision_increment = 4")
        .await
        .expect("restore");
    // A `SET NAMES DEFAULT …` means another thing once the global character set changed:
    // a later `SET NAMES` replaces it instead of replaying it first.
    dba.query_drop("SET NAMES DEFAULT COLLATE utf8mb4_bin")
        .await
        .expect("SET NAMES DEFAULT COLLATE");
    let global: Option<String> = dba
        .query_first("SELECT @@global.character_set_client")
        .await
        .expect("global");
    let global = global.expect("a value");
    dba.query_drop("SET @@global.character_set_client = latin1")
        .await
        .expect("SET GLOBAL character_set_client");
    let r = dba.query_drop("SET NAMES DEFAULT").await;
    dba.query_drop(format!("SET @@global.character_set_client = {global}"))
        .await
        .expect("restore");
    r.expect("SET NAMES DEFAULT after the global changed");
    let names: Option<(String, String)> = dba
        .query_first("SELECT @@character_set_client, @@collation_connection")
        .await
        .expect("names");
    assert_eq!(
        names,
        Some(("latin1".to_string(), "latin1_swedish_ci".to_string()))
    );
    dba.query_drop("SET NAMES utf8mb4").await.expect("names");
    // `mysql.*` reads as on that server.
    let users: Option<u64> = dba
        .query_first("SELECT COUNT(*) FROM mysql.user")
        .await
        .expect("an admin reads mysql.user");
    let direct_users: Option<u64> = here
        .query_first("SELECT COUNT(*) FROM mysql.user")
        .await
        .expect("mysql.user");
    assert_eq!(users, direct_users);
    dba.query_drop("CREATE USER probe@'%' IDENTIFIED BY 'x'")
        .await
        .expect("create user");
    let made: Option<u64> = here
        .query_first("SELECT COUNT(*) FROM mysql.user WHERE user = 'probe'")
        .await
        .expect("mysql.user");
    assert_eq!(made, Some(1));
    dba.query_drop("DROP USER probe@'%'")
        .await
        .expect("drop user");
    // The global read lock is the session's: its own write is refused as MariaDB refuses it,
    // until it unlocks.
    dba.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .expect("FTWRL");
    let (code, msg) = error_code(&mut dba, "INSERT INTO t VALUES (1)").await;
    assert_eq!(code, 1223, "{msg}");
    // A keyspace made elsewhere would wait for the session's own lock: refused as MariaDB
    // refuses it.
    let (code, msg) = error_code(&mut dba, "CREATE DATABASE locked_out").await;
    assert_eq!(code, 1223, "{msg}");
    dba.query_drop("UNLOCK TABLES").await.expect("unlock");
    dba.query_drop("INSERT INTO t VALUES (1)")
        .await
        .expect("a write after UNLOCK TABLES");
    // What no one may run, and what names no one server.
    for (sql, code) in [
        ("SHUTDOWN", 1227),
        (
            "SET GLOBAL max_connections = 150, SESSION sql_mode = ''",
            1235,
        ),
        ("SELECT * FROM demo_0001.t", 1044),
    ] {
        let (got, msg) = error_code(&mut dba, sql).await;
        assert_eq!(got, code, "{sql}: {msg}");
    }
    dba.query_drop("USE demo").await.expect("use demo");
    let (got, msg) = error_code(&mut dba, "SET GLOBAL max_connections = 5").await;
    assert_eq!(got, 1227, "{msg}");
    assert!(msg.contains("unsharded keyspace"), "{msg}");
    dba.query_drop("USE app").await.expect("use app");

    // An application user: refused, and reading a global into a variable is fine.
    let mut app = h.conn(Some("app")).await;
    let (got, _) = error_code(&mut app, "SET GLOBAL max_connections = 5").await;
    assert_eq!(got, 1227);
    app.query_drop("SET @m = @@GLOBAL.max_connections, @n = 2")
        .await
        .expect("reading a global");
    let m: Option<(u64, u64)> = app.query_first("SELECT @m, @n").await.expect("@m");
    assert_eq!(m, Some((177, 2)));
    // The admin sees the application's session and may kill it; not the other way round.
    let app_id: Option<u64> = app.query_first("SELECT CONNECTION_ID()").await.expect("id");
    let dba_id: Option<u64> = dba.query_first("SELECT CONNECTION_ID()").await.expect("id");
    let (app_id, dba_id) = (app_id.expect("id"), dba_id.expect("id"));
    let rows: Vec<mysql_async::Row> = dba.query("SHOW PROCESSLIST").await.expect("processlist");
    let ids: Vec<u64> = rows.iter().filter_map(|r| r.get::<u64, _>(0)).collect();
    assert!(ids.contains(&app_id) && ids.contains(&dba_id), "{ids:?}");
    let (got, _) = error_code(&mut app, &format!("KILL {dba_id}")).await;
    assert_eq!(got, 1095);
    dba.query_drop(format!("KILL {app_id}"))
        .await
        .expect("an admin kills another user's session");
    assert!(app.query_drop("SELECT 1").await.is_err(), "killed");

    dba.query_drop(format!("SET GLOBAL max_connections = {home_before}"))
        .await
        .expect("restore");
    drop((dba, here, there));
    h.stop().await;
}

/// `LOAD DATA LOCAL INFILE` into a sharded table: MariaDB reads the file (into a temporary
/// table), and the rows go to the logical shards their shard key names — the same rows,
/// affected counts, `Records/Deleted/Skipped/Warnings` and warnings count as MariaDB direct,
/// with duplicates in the file and against rows already there, in `IGNORE` (a local load's
/// default) and `REPLACE` modes, in and out of a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_infile_into_a_sharded_table_like_mariadb() {
    let h = Harness::start(
        2,
        1,
        "keyspace: demo\nsharded: true\nlogical_shards: 8\ntables:\n  l: { shard_key: id }\n",
    )
    .await;
    let s = &h.cluster.servers()[2];
    let mut o = h.direct(2).await;
    o.query_drop("CREATE DATABASE demo")
        .await
        .expect("oracle db");
    let dir = std::env::temp_dir().join(format!("tessera-infile-sharded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("rows.csv");
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("{i},name {i},{}.5\n", i % 7));
    }
    // The file holds some ids twice.
    text.push_str("5,again,1.0\n19999,again,2.0\n");
    std::fs::write(&file, &text).expect("write file");
    // Times vary; everything else the client prints must be the same.
    let strip = |out: String| -> String {
        out.lines()
            .map(|l| match l.find(" sec)") {
                Some(_) => l.split(" (").next().unwrap_or(l).to_string(),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let both = |sql: String| {
        let args = ["--local-infile=1", "-vvv", "-e", sql.as_str()];
        let routed = cli(h.port(), USER, PASSWORD, "demo", &args);
        let direct = cli(s.port(), s.user(), s.password(), "demo", &args);
        assert!(direct.0, "direct: {}", direct.2);
        assert!(routed.0, "router: {}", routed.2);
        let (r, d) = (strip(routed.1), strip(direct.1));
        assert_eq!(r, d);
        r
    };
    let f = file.display();
    let out = both(format!(
        "CREATE TABLE l (id int PRIMARY KEY, n varchar(20) CHARACTER SET latin1, d DECIMAL(6,2)); \
         INSERT INTO l VALUES (7, 'before', 0), (12345, 'before', 0); \
         LOAD DATA LOCAL INFILE '{f}' INTO TABLE l FIELDS TERMINATED BY ','; \
         SELECT COUNT(*), SUM(id), SUM(d), MAX(n), MIN(n) FROM l; \
         SELECT n, d FROM l WHERE id IN (5, 7, 19999, 12345) ORDER BY id"
    ));
    assert!(out.contains("Records: 20002"), "{out}");
    both(format!(
        "LOAD DATA LOCAL INFILE '{f}' REPLACE INTO TABLE l FIELDS TERMINATED BY ',' (id, n, @d) SET d = @d * 2; \
         SELECT COUNT(*), SUM(id), SUM(d), MAX(n) FROM l; \
         SELECT n, d FROM l WHERE id IN (5, 7, 19999, 12345) ORDER BY id; \
         BEGIN; DELETE FROM l WHERE id < 100; \
         LOAD DATA LOCAL INFILE '{f}' IGNORE INTO TABLE l FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' IGNORE 10 LINES; \
         SELECT COUNT(*) FROM l; ROLLBACK; SELECT COUNT(*), SUM(id) FROM l"
    ));
    let _ = std::fs::remove_dir_all(&dir);
    drop(o);
    h.stop().await;
}

/// `SHOW SESSION STATUS` counts the session's own statements (`Questions`, `Com_select`, …),
/// as MariaDB direct counts a session's, and a reset starts them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_status_counts_the_sessions_own_statements() {
    let (h, _r, _o) = app_and_oracle().await;
    let s = &h.cluster.servers()[1];
    let out = same_output_as_direct(
        &h,
        s,
        "app",
        &[
            "-e",
            "CREATE TABLE c (a int); SELECT 1; SELECT 2 FROM DUAL; INSERT INTO c VALUES (1); \
             UPDATE c SET a = 2; BEGIN; DELETE FROM c; COMMIT; SET @x = 1; \
             SHOW SESSION STATUS LIKE 'Com_select'; \
             SHOW LOCAL STATUS WHERE Variable_name IN ('Questions', 'Com_insert', 'Com_update', 'Com_delete', 'Com_begin', 'Com_commit', 'Com_set_option')",
        ],
    );
    assert!(
        out.contains("Com_select\t2") && out.contains("Questions\t11"),
        "{out}"
    );
    // A reset starts the counters again.
    let mut c = h.conn(Some("app")).await;
    c.query_drop("SELECT 1").await.expect("select");
    c.reset().await.expect("reset");
    let n: Option<(String, u64)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Com_select'")
        .await
        .expect("status");
    assert_eq!(n.map(|(_, v)| v), Some(0));
    h.stop().await;
}

/// `COMMIT AND CHAIN` starts the next transaction at once, `ROLLBACK AND NO CHAIN` does not,
/// and `COMMIT RELEASE` ends the session after it, as on MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_chain_and_release() {
    let (h, mut r, _o) = app_and_oracle().await;
    r.query_drop("CREATE TABLE ch (a int)").await.expect("ddl");
    for sql in [
        "BEGIN",
        "INSERT INTO ch VALUES (1)",
        "COMMIT WORK AND CHAIN",
        "INSERT INTO ch VALUES (2)",
        "ROLLBACK AND NO CHAIN",
        "INSERT INTO ch VALUES (3)",
        "ROLLBACK NO RELEASE",
    ] {
        r.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let rows: Vec<i64> = r.query("SELECT a FROM ch ORDER BY a").await.expect("rows");
    assert_eq!(
        rows,
        vec![1, 3],
        "2 was in the chained transaction, 3 autocommitted"
    );
    r.query_drop("BEGIN").await.expect("begin");
    r.query_drop("INSERT INTO ch VALUES (4)")
        .await
        .expect("insert");
    r.query_drop("COMMIT RELEASE")
        .await
        .expect("commit release");
    assert!(r.query_drop("SELECT 1").await.is_err(), "the session ended");
    let mut c = h.conn(Some("app")).await;
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM ch")
        .await
        .expect("count");
    assert_eq!(n, Some(3));
    drop(c);
    h.stop().await;
}

/// What the router's parser rejects in an unsharded keyspace is the server's to run or
/// refuse: MariaDB's own error message for a syntax error, `SIGNAL` as MariaDB raises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsed_statements_get_mariadbs_own_answer() {
    let (h, mut r, mut o) = app_and_oracle().await;
    for c in [&mut r, &mut o] {
        c.query_drop("CREATE TABLE t1 (a int)").await.expect("ddl");
    }
    for sql in [
        "SELECT @arg00 a FROM t1 WHERE a = 1 INTO",
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'",
        "SELECT 1 FROM t1 WHERE (1 IN (SELECT * FROM t1)",
        // Statements that change the session are not sent as they are, but MariaDB's own
        // syntax error is what the client gets.
        "COMMIT AND CHAIN RELEASE",
        "ROLLBACK AND NO CHAIN NO",
        "COMMIT RELEASE RELEASE",
        "SET @a = 1 +",
    ] {
        let want = error_code(&mut o, sql).await;
        let got = error_code(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    // Without a default database, a multi-table DELETE's targets are not found (MariaDB
    // looks for them, aliases too, in the current database).
    let mut r0 = h.conn(None).await;
    let mut o0 = h.direct(1).await;
    let sql = "DELETE a1, a2 FROM db1.t1 AS a1, db2.t2 AS a2";
    assert_eq!(
        error_code(&mut r0, sql).await.0,
        error_code(&mut o0, sql).await.0,
        "{sql}"
    );
    drop((r0, o0));
    h.stop().await;
}
