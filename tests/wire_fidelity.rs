//! Wire fidelity: what a client sends reaches MariaDB as it was meant, or is refused with a
//! clear error — never changed on the way. Compared with MariaDB direct where there is a
//! direct answer.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

const VSCHEMA: &str = "keyspace: demo\nsharded: true\nlogical_shards: 8\ntables:\n  \
                       t: { shard_key: id }\n  u: { shard_key: k }\n";

/// A statement's bytes reach a sharded keyspace as the client sent them — binary strings,
/// every byte value, text in the client's own character set — and a shard key routes by the
/// value the client meant in that set: the same rows, errors and hex as MariaDB direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_statements_carry_the_clients_bytes_like_mariadb() {
    let h = Harness::start(1, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.direct(1).await;
    o.query_drop("CREATE DATABASE demo")
        .await
        .expect("oracle db");
    o.query_drop("USE demo").await.expect("use");
    for c in [&mut r, &mut o] {
        c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, b BLOB, s VARCHAR(300))")
            .await
            .expect("create t");
        c.query_drop("CREATE TABLE u (k VARCHAR(20) PRIMARY KEY, n INT)")
            .await
            .expect("create u");
    }
    let all: Vec<u8> = (0u8..=255).collect();
    // Every byte, escaped as a driver escapes for a single-byte set.
    let mut lit = Vec::new();
    for &b in &all {
        match b {
            0 => lit.extend_from_slice(b"\\0"),
            b'\'' => lit.extend_from_slice(b"\\'"),
            b'\\' => lit.extend_from_slice(b"\\\\"),
            _ => lit.push(b),
        }
    }
    let cat = |parts: &[&[u8]]| parts.concat();
    for (i, cs) in ["binary", "latin1", "utf8mb4", "gbk", "sjis"]
        .iter()
        .enumerate()
    {
        for c in [&mut r, &mut o] {
            c.query_drop(format!("SET NAMES {cs}"))
                .await
                .expect("names");
        }
        let id = (i * 10).to_string();
        let id1 = (i * 10 + 1).to_string();
        let script: Vec<Vec<u8>> = vec![
            cat(&[
                b"INSERT INTO t (id, b) VALUES (",
                id.as_bytes(),
                b", _binary'",
                &lit,
                b"')",
            ]),
            cat(&[
                b"INSERT INTO t (id, s) VALUES (",
                id1.as_bytes(),
                b", 'caf\xe9 \x95\x5c \xbf\x5c')",
            ]),
            cat(&[
                b"SELECT HEX(_binary'\x80\xff\xc3\x28') AS h FROM t WHERE id = ",
                id.as_bytes(),
            ]),
            cat(&[
                b"SELECT id, HEX(b), HEX(s), LENGTH(b) FROM t WHERE id IN (",
                id.as_bytes(),
                b", ",
                id1.as_bytes(),
                b") ORDER BY id",
            ]),
            cat(&[
                b"SELECT id FROM t WHERE b = _binary'",
                &lit,
                b"' ORDER BY id",
            ]),
            cat(&[
                b"UPDATE t SET s = '\xe9\xe8' WHERE id = ",
                id1.as_bytes(),
                b" AND s <> _binary'\xff'",
            ]),
            cat(&[b"SELECT id, HEX(s) FROM t WHERE s = '\xe9\xe8' ORDER BY id"]),
        ];
        for sql in &script {
            let want = outcome_bytes(&mut o, sql).await;
            let got = outcome_bytes(&mut r, sql).await;
            assert_eq!(got, want, "{cs}: {}", String::from_utf8_lossy(sql));
        }
    }
    // A latin1 client's key: `café` (0xE9), and bytes that would read as UTF-8 `é` but are
    // `Ã©` to it. Each lands where a utf8mb4 client's same value routes.
    for c in [&mut r, &mut o] {
        c.query_drop("SET NAMES latin1").await.expect("latin1");
        c.query_drop(
            b"INSERT INTO u (k, n) VALUES ('caf\xe9', 1), ('\xc3\xa9', 2), ('\x80', 3)".as_slice(),
        )
        .await
        .expect("insert latin1 keys");
    }
    for sql in [
        b"SELECT n FROM u WHERE k = 'caf\xe9'".as_slice(),
        b"SELECT n FROM u WHERE k = '\xc3\xa9'",
        b"SELECT n FROM u WHERE k = _utf8mb4'\xe2\x82\xac'",
        b"UPDATE u SET n = n + 10 WHERE k = 'caf\xe9'",
    ] {
        assert_eq!(
            outcome_bytes(&mut r, sql).await,
            outcome_bytes(&mut o, sql).await,
            "{}",
            String::from_utf8_lossy(sql)
        );
    }
    for c in [&mut r, &mut o] {
        c.query_drop("SET NAMES utf8mb4").await.expect("utf8mb4");
    }
    for (k, n) in [("café", 11), ("Ã©", 2), ("€", 3)] {
        let got: Option<i32> = r
            .exec_first("SELECT n FROM u WHERE k = ?", (k,))
            .await
            .expect("read by a utf8mb4 client");
        assert_eq!(got, Some(n), "{k}");
    }
    let all_rows = "SELECT k, n, HEX(k) FROM u ORDER BY n";
    assert_eq!(
        outcome(&mut r, all_rows).await,
        outcome(&mut o, all_rows).await
    );
    // A literal spelled like another's stand-in is refused, not confused with it.
    match r
        .query_drop(b"SELECT _binary'\x80' = X'80'".as_slice())
        .await
    {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{}", e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The binary string came back whole (not as 512 bytes of replacement characters).
    let v: Option<Vec<u8>> = r
        .query_first("SELECT b FROM t WHERE id = 0")
        .await
        .expect("read");
    assert_eq!(v.as_deref(), Some(all.as_slice()));
    drop(r);
    drop(o);
    h.stop().await;
}

/// Multi-byte text in a pattern: answered like MariaDB, the connection task does not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multibyte_patterns_are_answered_like_mariadb() {
    let h = Harness::start(1, 1, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    let mut o = h.direct(1).await;
    for sql in [
        "SELECT 'à' RLIKE '^.$'",
        "SELECT 'à' REGEXP '^.$', 'ü' LIKE '_', CHAR_LENGTH('日本'), LENGTH('日本')",
        "SELECT 'é' AS `é`, UPPER('ß')",
    ] {
        let want: Vec<mysql_async::Row> = o.query(sql).await.expect("direct");
        let got: Vec<mysql_async::Row> =
            c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let show = |rows: &[mysql_async::Row]| -> Vec<Vec<mysql_async::Value>> {
            rows.iter().map(|r| r.clone().unwrap()).collect()
        };
        assert_eq!(show(&got), show(&want), "{sql}");
        let names = |rows: &[mysql_async::Row]| -> Vec<String> {
            rows.first()
                .map(|r| {
                    r.columns_ref()
                        .iter()
                        .map(|c| c.name_str().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(names(&got), names(&want), "{sql}: column names");
    }
    drop(c);
    drop(o);
    h.stop().await;
}

/// Outcome of one statement as the client sees it: rows, or the error number.
async fn outcome(c: &mut mysql_async::Conn, sql: &str) -> Result<Vec<Vec<String>>, u16> {
    outcome_bytes(c, sql.as_bytes()).await
}

/// [`outcome`] of a statement that need not be UTF-8.
async fn outcome_bytes(c: &mut mysql_async::Conn, sql: &[u8]) -> Result<Vec<Vec<String>>, u16> {
    let shown = String::from_utf8_lossy(sql).into_owned();
    let sql = sql.to_vec();
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
        Err(other) => panic!("{shown}: {other}"),
    }
}

/// Runs each statement on the router and on MariaDB direct; their outcomes must be equal.
async fn same_as_mariadb(r: &mut mysql_async::Conn, o: &mut mysql_async::Conn, script: &[&str]) {
    for sql in script {
        let want = outcome(o, sql).await;
        let got = outcome(r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
}

/// `START TRANSACTION READ ONLY | WITH CONSISTENT SNAPSHOT` and savepoints behave as in
/// MariaDB, over one logical shard and over several physical shards: the same rows and the
/// same errors (the read-only status flag is checked in `session.rs`'s unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_options_and_savepoints_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)",
        "INSERT INTO t (id, v) VALUES (1, 10), (2, 20), (3, 30), (4, 40)",
        "START TRANSACTION READ ONLY",
        "SELECT v FROM t WHERE id = 1",
        "UPDATE t SET v = 11 WHERE id = 1",
        "INSERT INTO t (id, v) VALUES (9, 90)",
        "COMMIT",
        "START TRANSACTION READ WRITE, WITH CONSISTENT SNAPSHOT",
        "UPDATE t SET v = 12 WHERE id = 1",
        "SAVEPOINT a",
        "UPDATE t SET v = 22 WHERE id = 2",
        "UPDATE t SET v = 33 WHERE id = 3",
        "SAVEPOINT b",
        "UPDATE t SET v = 44 WHERE id = 4",
        "ROLLBACK TO SAVEPOINT a",
        "SELECT id, v FROM t ORDER BY id",
        "ROLLBACK TO b",
        "RELEASE SAVEPOINT a",
        "ROLLBACK TO a",
        "SAVEPOINT c",
        "UPDATE t SET v = 0",
        "ROLLBACK TO c",
        "COMMIT",
        "SELECT id, v FROM t ORDER BY id",
        "SAVEPOINT outside",
        "ROLLBACK TO outside",
        "RELEASE SAVEPOINT nowhere",
        "SET autocommit = 0",
        "SAVEPOINT s",
        "UPDATE t SET v = v + 1",
        "ROLLBACK TO s",
        "COMMIT",
        "SET autocommit = 1",
        "SELECT id, v FROM t ORDER BY id",
    ];
    same_as_mariadb(&mut r, &mut o, script).await;
    drop(r);
    drop(o);
    h.stop().await;
}

/// Session statements drivers send: autocommit carried to the backend connection (so
/// `@@autocommit` reads what the session set), Connector/J's first statement, comment-only
/// and empty queries — each compared with MariaDB direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_statements_drivers_send_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)",
        "set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')",
        "SELECT @@autocommit, @@sql_mode LIKE '%STRICT_TRANS_TABLES%'",
        "SET autocommit = 0",
        "SELECT @@autocommit",
        "INSERT INTO t (id, v) VALUES (1, 1), (2, 2), (3, 3)",
        "SELECT @@autocommit, COUNT(*) FROM t",
        "ROLLBACK",
        "SELECT COUNT(*) FROM t",
        "INSERT INTO t (id, v) VALUES (4, 4)",
        "COMMIT",
        "SELECT @@autocommit",
        "SET autocommit = 1, sql_mode = 'STRICT_ALL_TABLES'",
        "SELECT @@autocommit, @@sql_mode",
        "INSERT INTO t (id, v) VALUES (5, 5)",
        "SELECT id, v FROM t ORDER BY id",
        "/* a comment only */",
        "-- a line comment only\n",
        "SET autocommit = 2, sql_mode = ''",
        "SET autocommit = 2",
        "SELECT @@autocommit",
    ];
    same_as_mariadb(&mut r, &mut o, script).await;
    // A second session on the same pools sees none of it.
    let mut r2 = h.conn(Some("demo")).await;
    let mut o2 = h.direct(2).await;
    for sql in [
        "SELECT @@autocommit",
        "SELECT @@sql_mode LIKE '%STRICT_ALL_TABLES%'",
    ] {
        assert_eq!(
            outcome(&mut r2, sql).await,
            outcome(&mut o2, sql).await,
            "{sql}"
        );
    }
    drop((r, o, r2, o2));
    h.stop().await;
}

/// `CLIENT_FOUND_ROWS`: a client that asks for it gets matched rows as affected rows (an
/// `UPDATE` to the same value counts), on one logical shard and summed over several; a client
/// that does not gets changed rows — both as MariaDB answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_rows_as_the_client_asks() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    for found in [true, false] {
        let mut r = mysql_async::Conn::new(
            h.opts(Some("demo"), USER, PASSWORD)
                .client_found_rows(found),
        )
        .await
        .expect("router");
        let s = &h.cluster.servers()[2];
        let mut o = mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(s.host())
                .tcp_port(s.port())
                .user(Some(s.user()))
                .pass(Some(s.password()))
                .prefer_socket(false)
                .client_found_rows(found),
        )
        .await
        .expect("direct");
        o.query_drop("CREATE DATABASE IF NOT EXISTS demo")
            .await
            .expect("db");
        o.query_drop("USE demo").await.expect("use");
        for c in [&mut r, &mut o] {
            c.query_drop("DROP TABLE IF EXISTS t").await.expect("drop");
        }
        for sql in [
            "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)",
            "INSERT INTO t (id, v) VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)",
            "UPDATE t SET v = 1 WHERE id = 1",
            "UPDATE t SET v = 2 WHERE id = 1",
            "UPDATE t SET v = v WHERE id IN (2, 3, 4)",
            "UPDATE t SET v = 3 WHERE id > 1",
            "UPDATE t SET v = 3 WHERE id > 100",
            "DELETE FROM t WHERE id = 5",
        ] {
            r.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("router {sql}: {e}"));
            o.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("direct {sql}: {e}"));
            assert_eq!(
                r.affected_rows(),
                o.affected_rows(),
                "{sql} (CLIENT_FOUND_ROWS {found})"
            );
        }
    }
    h.stop().await;
}

/// The result sets of a multi-statement batch, or the error that ended it.
async fn batch_outcome(
    c: &mut mysql_async::Conn,
    sql: &str,
) -> (Vec<Vec<Vec<String>>>, Option<u16>) {
    let mut sets = Vec::new();
    let mut res = match c.query_iter(sql).await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) => return (sets, Some(e.code)),
        Err(e) => panic!("{sql}: {e}"),
    };
    loop {
        match res.collect::<mysql_async::Row>().await {
            Ok(rows) => sets.push(
                rows.into_iter()
                    .map(|r| r.unwrap().into_iter().map(|v| format!("{v:?}")).collect())
                    .collect(),
            ),
            Err(mysql_async::Error::Server(e)) => return (sets, Some(e.code)),
            Err(e) => panic!("{sql}: {e}"),
        }
        if res.is_empty() {
            break;
        }
    }
    (sets, None)
}

/// Multi-statement batches: each statement routed on its own, result sets in order, an error
/// ends the batch — as MariaDB answers the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_batches_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    for sql in [
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)",
        "INSERT INTO t (id, v) VALUES (1, 10), (2, 20); INSERT INTO t (id, v) VALUES (3, 30)",
        "SELECT 1; SELECT id, v FROM t ORDER BY id; SELECT COUNT(*) FROM t",
        "UPDATE t SET v = v + 1 WHERE id = 1; SELECT v FROM t WHERE id = 1;",
        "SELECT 'a;b' AS x; /* ; */ SELECT `v` FROM t WHERE id = 2 -- ;\n",
        "SELECT 1; SELECT nope FROM t; SELECT 3",
        "BEGIN; UPDATE t SET v = 0 WHERE id = 3; ROLLBACK; SELECT v FROM t WHERE id = 3",
        "SELECT id FROM t WHERE id = 2;",
        "SELECT v FROM t WHERE id = 2 --",
        "SELECT 1; SELECT v FROM t WHERE id = 2 --",
        "SELECT 1; SELECT 2 +; SELECT 3",
        "SELECT 4",
    ] {
        let want = batch_outcome(&mut o, sql).await;
        let got = batch_outcome(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    // The connection goes on after a batch that failed half way.
    assert_eq!(
        batch_outcome(&mut r, "SELECT 7").await.0,
        batch_outcome(&mut o, "SELECT 7").await.0
    );
    drop((r, o));
    h.stop().await;
}

/// `sql_auto_is_null` in a sharded keyspace: each logical shard's connection would read
/// `auto_col IS NULL` as its own last insert, so reads are refused by name while it is on
/// (never another session's row); writes go on, and reads come back once it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_auto_is_null_refuses_sharded_reads() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.query_drop("SET sql_auto_is_null = 1").await.expect("set");
    c.query_drop("INSERT INTO t (id, v) VALUES (1, 10), (2, 20)")
        .await
        .expect("a write goes on");
    for sql in [
        "SELECT id FROM t WHERE id IS NULL",
        "SELECT id FROM t WHERE id = 1",
    ] {
        let (code, msg) = error_code(&mut c, sql).await;
        assert_eq!(code, 1235, "{sql}: {msg}");
        assert!(msg.contains("sql_auto_is_null"), "{msg}");
    }
    c.query_drop("SET sql_auto_is_null = 0").await.expect("off");
    assert_eq!(
        outcome(&mut c, "SELECT id, v FROM t ORDER BY id").await,
        Ok(vec![
            vec!["1".to_string(), "10".to_string()],
            vec!["2".to_string(), "20".to_string()]
        ])
    );
    drop(c);
    h.stop().await;
}

/// `session_track_transaction_info`: transaction state is not reported in OK packets, so a
/// session that turns it on is refused by name (and keeps it off), never given nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_info_tracking_is_refused_by_name() {
    let h = Harness::start(1, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    for sql in [
        "SET session_track_transaction_info = 'STATE'",
        "SET SESSION session_track_transaction_info = CHARACTERISTICS",
    ] {
        let (code, msg) = error_code(&mut c, sql).await;
        assert_eq!(code, 1235, "{sql}: {msg}");
        assert!(msg.contains("session_track_transaction_info"), "{msg}");
    }
    for _ in 0..3 {
        assert_eq!(
            outcome(&mut c, "SELECT @@session.session_track_transaction_info").await,
            Ok(vec![vec!["OFF".to_string()]])
        );
    }
    c.query_drop("SET session_track_transaction_info = OFF")
        .await
        .expect("off is fine");
    drop(c);
    h.stop().await;
}

/// `COM_CHANGE_USER`: the new user's password is checked, and the connection gets a new
/// session (open transaction rolled back, session settings gone), as with MariaDB direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_starts_a_new_session() {
    use mysql_async::ChangeUserOpts;
    let h = Harness::start(2, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.query_drop("SET sql_mode = 'ANSI_QUOTES'")
        .await
        .expect("set");
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop("INSERT INTO t (id, v) VALUES (1, 1)")
        .await
        .expect("insert");
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("nopw".into()))
            .with_pass(None)
            .with_db_name(Some("demo".into())),
    )
    .await
    .expect("change user");
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(n, Some(0), "the open transaction was rolled back");
    let mode: Option<String> = c.query_first("SELECT @@sql_mode").await.expect("mode");
    assert!(
        !mode.unwrap_or_default().contains("ANSI_QUOTES"),
        "the old session's SET is gone"
    );
    // Back to the first user, then a wrong password: refused, and the connection is closed.
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some(USER.into()))
            .with_pass(Some(PASSWORD.into())),
    )
    .await
    .expect("change back");
    let one: Option<u8> = c.query_first("SELECT 1").await.expect("select");
    assert_eq!(one, Some(1));
    let e = c
        .change_user(
            ChangeUserOpts::default()
                .with_user(Some(USER.into()))
                .with_pass(Some("wrong".into())),
        )
        .await
        .expect_err("a wrong password is refused");
    match e {
        mysql_async::Error::Server(s) => assert_eq!(s.code, 1045, "{}", s.message),
        other => panic!("expected 1045, got {other}"),
    }
    drop(c);
    h.stop().await;
}

/// Kills every connection of the router's backend account on server `i` but the caller's.
async fn kill_backend_connections(h: &Harness, i: usize) -> usize {
    let mut d = h.direct(i).await;
    let user = h.cluster.servers()[i].user().to_string();
    let ids: Vec<u64> = d
        .exec(
            "SELECT id FROM information_schema.PROCESSLIST WHERE user = ? AND id <> CONNECTION_ID()",
            (user,),
        )
        .await
        .expect("processlist");
    for id in &ids {
        let _ = d.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    ids.len()
}

/// A backend connection that dies under a session: the statement fails with 2013 (or runs on
/// a new connection), the session goes on; inside a transaction the transaction is reported
/// rolled back and nothing of it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_backend_connections_are_2013_and_roll_back_the_transaction() {
    let h = Harness::start(1, 0, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.query_drop("INSERT INTO t (id, v) VALUES (1, 1)")
        .await
        .expect("insert");
    assert!(kill_backend_connections(&h, 0).await > 0);
    match c.query_drop("SELECT v FROM t WHERE id = 1").await {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 2013, "{}", e.message),
        Err(e) => panic!("the client's connection must stay: {e}"),
    }
    let v: Option<i64> = c
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .expect("the session goes on");
    assert_eq!(v, Some(1));

    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop("INSERT INTO t (id, v) VALUES (10, 10)")
        .await
        .expect("insert in the transaction");
    assert!(kill_backend_connections(&h, 0).await > 0);
    match c.query_drop("INSERT INTO t (id, v) VALUES (11, 11)").await {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!(e.code, 2013, "{}", e.message);
            assert!(e.message.contains("rolled back"), "{}", e.message);
        }
        other => panic!("expected 2013, got {other:?}"),
    }
    // Not in a transaction any more: this commits on its own.
    c.query_drop("INSERT INTO t (id, v) VALUES (12, 12)")
        .await
        .expect("autocommit insert");
    let ids: Vec<i64> = c
        .query("SELECT id FROM t WHERE id >= 10 ORDER BY id")
        .await
        .expect("read");
    assert_eq!(ids, vec![12], "nothing of the lost transaction stays");
    drop(c);
    h.stop().await;
}

/// Whether PyMySQL can be imported (`scripts/test` installs it).
fn has_pymysql() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import pymysql"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a Python `script` with the port, user and password as arguments; returns its output.
fn run_python(script: &str, port: u16, user: &str, pw: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), user, pw])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The character set and collation a client names in its handshake hold through the router
/// as on MariaDB direct: what `@@character_set_client` says, the bytes results come back in,
/// how literals compare, and after `COM_RESET_CONNECTION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_character_sets_hold_like_mariadb() {
    if !has_pymysql() {
        println!("skipped: PyMySQL is not installed (scripts/test installs it)");
        return;
    }
    let h = Harness::start(1, 1, VSCHEMA).await;
    let mut c = h.conn(Some("demo")).await;
    let mut o = h.oracle(1).await;
    for x in [&mut c, &mut o] {
        x.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
            .await
            .expect("create");
        x.query_drop("INSERT INTO t (id, name) VALUES (1, 'café'), (2, 'Straße')")
            .await
            .expect("insert");
    }
    let s = &h.cluster.servers()[1];
    let script = r#"
import sys, pymysql
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for charset in ["latin1", "utf8mb4"]:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database="demo", charset=charset)
    cur = c.cursor()
    cur.execute("SELECT @@character_set_client, @@character_set_results, @@collation_connection")
    print(charset, cur.fetchall())
    cur.execute("SELECT id, name, HEX(name) FROM t ORDER BY id")
    print(charset, cur.fetchall())
    cur.execute("SELECT 'a' = 'A', 'x' = 'x '")
    print(charset, cur.fetchall())
    # COM_RESET_CONNECTION goes back to the handshake's character set, not the server's.
    cur.execute("SET NAMES utf8mb3")
    c._execute_command(0x1f, b"")
    c._read_ok_packet()
    cur.execute("SELECT @@character_set_client, @@collation_connection")
    print(charset, "after a reset", cur.fetchall())
"#;
    let via_router = run_python(script, h.port(), USER, PASSWORD);
    let direct = run_python(script, s.port(), s.user(), s.password());
    assert_eq!(via_router, direct);
    assert!(
        via_router.contains("latin1 (('latin1', 'latin1'"),
        "{via_router}"
    );
    drop((c, o));
    h.stop().await;
}

/// `NO_BACKSLASH_ESCAPES`: OK packets carry its status flag once the session's `sql_mode`
/// has it, so a driver stops doubling backslashes and `a\b` is stored as `a\b` (PyMySQL,
/// unsharded keyspace, compared with MariaDB direct); over a sharded keyspace a statement with
/// a backslash is refused rather than routed by a misread literal, while a parameter goes in
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backslash_escapes_is_carried() {
    let has_pymysql = has_pymysql();
    let h = Harness::start(1, 1, VSCHEMA).await;
    let plain = tessera_topo::VSchema::from_yaml("keyspace: plain\n").expect("vschema");
    tessera::cli::apply_vschema(&h.topo, &plain)
        .await
        .expect("apply");
    let mut d = h.direct(1).await;
    d.query_drop("CREATE DATABASE plain").await.expect("db");
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20))")
        .await
        .expect("create");
    c.query_drop("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        .await
        .expect("set");
    // A backslash is a plain character: stored as is, and a key holding one routes by it.
    c.query_drop("INSERT INTO t (id, name) VALUES (1, 'a\\b')")
        .await
        .expect("literal with a backslash");
    let got: Option<String> = c
        .query_first("SELECT HEX(name) FROM t WHERE id = 1 AND name = 'a\\b'")
        .await
        .expect("read");
    assert_eq!(got.as_deref(), Some("615C62"));
    c.exec_drop("INSERT INTO t (id, name) VALUES (?, ?)", (2, "a\\b"))
        .await
        .expect("parameter");
    let got: Option<String> = c
        .query_first("SELECT name FROM t WHERE id = 2")
        .await
        .expect("read");
    assert_eq!(got.as_deref(), Some("a\\b"));
    drop(c);
    if !has_pymysql {
        println!("skipped the driver half: PyMySQL is not installed (scripts/test installs it)");
        h.stop().await;
        return;
    }
    let script = r#"
import sys, pymysql
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database="plain", autocommit=True)
cur = c.cursor()
cur.execute("CREATE TABLE nb (id INT PRIMARY KEY, s VARCHAR(20))")
print("flag before", bool(c.server_status & 512))
cur.execute("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
print("flag after", bool(c.server_status & 512))
cur.execute("INSERT INTO nb VALUES (%s, %s)", (1, "a\\b"))
cur.execute("SELECT s, HEX(s) FROM nb")
print(cur.fetchall())
"#;
    let s = &h.cluster.servers()[1];
    let via_router = run_python(script, h.port(), USER, PASSWORD);
    let direct = run_python(script, s.port(), s.user(), s.password());
    assert_eq!(via_router, direct);
    assert!(via_router.contains("flag after True"), "{via_router}");
    assert!(via_router.contains("'615C62'"), "{via_router}");
    drop(d);
    h.stop().await;
}

/// The diagnostics of the last statement: `SHOW WARNINGS`, `SHOW ERRORS`, `SHOW COUNT(*)
/// WARNINGS`, `@@warning_count`, `@@error_count` — after warnings, after an error, after a
/// clean statement — as MariaDB direct answers them (one logical shard, and a keyspace-free
/// statement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_of_the_last_statement_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TINYINT)",
        "SHOW WARNINGS",
        "INSERT INTO t (id, v) VALUES (1, 1)",
        "SELECT @@warning_count",
        "SET sql_mode = ''",
        "UPDATE t SET v = 1000 WHERE id = 1",
        "SHOW WARNINGS",
        "SELECT @@warning_count",
        "SHOW COUNT(*) WARNINGS",
        "SHOW WARNINGS",
        "SELECT CAST('12abc' AS SIGNED)",
        "SHOW WARNINGS",
        "SELECT nope FROM t WHERE id = 1",
        "SHOW WARNINGS",
        "SHOW ERRORS",
        "SELECT @@error_count",
        "SHOW COUNT(*) ERRORS",
        "SELECT v FROM t WHERE id = 1",
        "SHOW WARNINGS",
        "SELECT @@warning_count",
        "INSERT INTO t (id, v) VALUES (2, 2), (3, 3)",
        "SELECT ROW_COUNT()",
        "SELECT ROW_COUNT()",
        "UPDATE t SET v = v WHERE id = 1",
        "select row_count()",
        "UPDATE t SET v = 5 WHERE id IN (1, 2, 3)",
        "SELECT ROW_COUNT()",
        "DELETE FROM t WHERE id = 3",
        "SELECT ROW_COUNT()",
        "SET sql_mode = ''",
        "SELECT ROW_COUNT()",
        "SELECT v FROM t WHERE id = 2",
        "SELECT ROW_COUNT()",
        "SELECT nope FROM t",
        "SELECT ROW_COUNT()",
        "INSERT INTO t (id, v) VALUES (4, 4)",
        "SELECT @@warning_count",
        "SELECT ROW_COUNT()",
        "INSERT INTO t (id, v) VALUES (5, 5)",
        "SHOW WARNINGS",
        "SELECT ROW_COUNT()",
    ];
    for sql in script {
        let want = outcome(&mut o, sql).await;
        let got = outcome(&mut r, sql).await;
        if sql.contains("nope") {
            // The same error; its message names the column as each server sees it.
            assert_eq!(got.as_ref().err(), want.as_ref().err(), "{sql}");
            continue;
        }
        if *sql == "SHOW WARNINGS" || *sql == "SHOW ERRORS" {
            // Messages may name the physical schema differently only for table errors;
            // compare level and code, and the messages where no table is named.
            let strip = |x: &Result<Vec<Vec<String>>, u16>| {
                x.clone().map(|rows| {
                    rows.into_iter()
                        .map(|r| r.into_iter().take(2).collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                })
            };
            assert_eq!(strip(&got), strip(&want), "{sql}");
            continue;
        }
        assert_eq!(got, want, "{sql}");
    }
    drop((r, o));
    h.stop().await;
}

/// The column names of one statement's result.
async fn column_names(c: &mut mysql_async::Conn, sql: &str) -> Vec<String> {
    let res = c.query_iter(sql).await.expect("statement");
    let names = res
        .columns()
        .map(|cs| cs.iter().map(|c| c.name_str().into_owned()).collect())
        .unwrap_or_default();
    res.drop_result().await.expect("drop");
    names
}

/// `FOUND_ROWS()` after a read over one logical shard, several, reference tables and no
/// table, with and without `SQL_CALC_FOUND_ROWS`, in and out of a transaction: what MariaDB
/// direct answers with the same rows (the sum of each logical shard's found rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_rows_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    for c in [&mut r, &mut o] {
        c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
            .await
            .expect("create");
        let rows: Vec<String> = (1..=40).map(|i| format!("({i}, {})", i % 13)).collect();
        c.query_drop(format!("INSERT INTO t (id, v) VALUES {}", rows.join(", ")))
            .await
            .expect("rows");
    }
    // Reads whose rows come back in no defined order: only their count is compared.
    let unordered = |sql: &str| !sql.contains("ORDER BY") && sql.contains("FROM t");
    let script: &[&str] = &[
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 5",
        "SELECT FOUND_ROWS()",
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS id, v FROM t WHERE v > 3 ORDER BY v DESC, id LIMIT 3, 4",
        "SELECT FOUND_ROWS() AS total",
        "SELECT SQL_CALC_FOUND_ROWS id FROM t WHERE v >= 2 LIMIT 3",
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS id FROM t WHERE id = 7 LIMIT 0",
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS id FROM t WHERE id IN (1, 2, 3, 30) ORDER BY id LIMIT 1",
        "SELECT FOUND_ROWS()",
        "SELECT id FROM t WHERE v < 4 ORDER BY id",
        "SELECT FOUND_ROWS()",
        "SELECT id FROM t ORDER BY id LIMIT 6",
        "SELECT FOUND_ROWS() n",
        "INSERT INTO t (id, v) VALUES (41, 1)",
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS 1 LIMIT 0",
        "SELECT FOUND_ROWS()",
        "BEGIN",
        "SELECT SQL_CALC_FOUND_ROWS id FROM t WHERE v = 1 ORDER BY id LIMIT 1",
        "SELECT FOUND_ROWS()",
        "COMMIT",
    ];
    for sql in script {
        let want = outcome(&mut o, sql).await;
        let got = outcome(&mut r, sql).await;
        if unordered(sql) {
            assert_eq!(
                got.as_ref().map(Vec::len),
                want.as_ref().map(Vec::len),
                "{sql}"
            );
        } else {
            assert_eq!(got, want, "{sql}");
        }
        if sql.starts_with("SELECT FOUND_ROWS()") {
            // Asked again, each answers 1 (the last select's one row); the names are compared.
            assert_eq!(
                column_names(&mut r, sql).await,
                column_names(&mut o, sql).await,
                "{sql}"
            );
        }
    }
    // What the router cannot count exactly is refused, never guessed.
    match r
        .query_drop("SELECT SQL_CALC_FOUND_ROWS v, COUNT(*) FROM t GROUP BY v LIMIT 2")
        .await
    {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{}", e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop((r, o));
    h.stop().await;
}

/// One integer (or NULL) answered by `sql`.
async fn q(c: &mut mysql_async::Conn, sql: &str) -> Option<i64> {
    c.query_first::<Option<i64>, _>(sql)
        .await
        .expect("statement")
        .flatten()
}

/// User variables reach every backend connection of a session as the values they were given
/// (not as expressions computed again elsewhere), whether set by `SET` or by `@v := …`, and
/// named locks live on one connection the session holds: the same answers as MariaDB direct
/// over logical shards on two physical shards, and another session sees the locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_variables_and_named_locks_hold_for_the_session() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s VARCHAR(64))",
        "INSERT INTO t (id, s) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f'), (7, 'g'), (8, 'h')",
        "SET @x = 5",
        "SELECT id, s FROM t WHERE id = @x",
        "SELECT @y := 7, @z := 'two'",
        "SELECT id FROM t WHERE id = @y",
        "SELECT id FROM t WHERE s = 'g' AND id IN (@y, 8) ORDER BY id",
        "SELECT @y, @z, CHARSET(@z), COLLATION(@z)",
        "SET @n = 0",
        "SET @n = @n + 1",
        "SET @n = @n + 1",
        "SET @n = @n + 1",
        "SELECT id FROM t WHERE id = @n",
        "SELECT id FROM t WHERE id IN (@n, @n + 1) ORDER BY id",
        "SET @f = 0.1e0 + 0.2e0, @d = 1.50, @nul = NULL, @b = _binary'\\x01\\x02'",
        "SELECT id FROM t WHERE @f = 0.30000000000000004e0 AND id IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY id",
        "SELECT @d, @nul IS NULL, HEX(@b), CHARSET(@b)",
        "UPDATE t SET s = CONCAT(s, @z) WHERE id IN (1, 6)",
        "SELECT id, s FROM t ORDER BY id",
        // System variables given computed values hold as those values on every shard.
        "SET time_zone = CONCAT('+0', '1:00'), sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')",
        "SELECT id, @@time_zone, @@sql_mode FROM t WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY id",
        "SET @@session.max_statement_time = 2 * 5, SESSION div_precision_increment = @n + 1",
        "SELECT id, @@max_statement_time, @@div_precision_increment FROM t WHERE id IN (1, 5) ORDER BY id",
    ];
    for sql in script {
        let want = outcome(&mut o, sql).await;
        let got = outcome(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    // A value that is different each time it is computed is the same on every connection.
    r.query_drop("SET @u = UUID()").await.expect("set uuid");
    r.query_drop("INSERT INTO t (id, s) VALUES (11, @u), (12, @u), (13, @u), (14, @u), (15, @u)")
        .await
        .expect("insert uuid");
    let n: Option<u64> = r
        .query_first("SELECT COUNT(DISTINCT s) FROM t WHERE id > 10")
        .await
        .expect("distinct");
    assert_eq!(n, Some(1));
    // A clock frozen at a computed instant is the same instant on every connection.
    r.query_drop("SET timestamp = UNIX_TIMESTAMP(NOW(6)) - 1000")
        .await
        .expect("set timestamp");
    r.query_drop("SELECT SLEEP(0.2)").await.expect("sleep");
    r.query_drop("INSERT INTO t (id, s) VALUES (21, NOW(6)), (22, NOW(6)), (23, NOW(6)), (24, NOW(6)), (25, NOW(6))")
        .await
        .expect("insert now");
    let n: Option<u64> = r
        .query_first("SELECT COUNT(DISTINCT s) FROM t WHERE id > 20")
        .await
        .expect("distinct");
    assert_eq!(n, Some(1));
    // Assigned alongside a sharded table's rows: refused, never left on a pooled connection.
    match r.query_drop("SELECT @v := s FROM t WHERE id = 1").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{}", e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Named locks: held by the session that took them, seen by another, freed when released
    // and when the holder goes away.
    let mut other = h.conn(Some("demo")).await;
    assert_eq!(q(&mut r, "SELECT GET_LOCK('tessera_l', 0)").await, Some(1));
    assert_eq!(
        q(&mut other, "SELECT IS_FREE_LOCK('tessera_l')").await,
        Some(0)
    );
    assert_eq!(
        q(&mut other, "SELECT GET_LOCK('tessera_l', 0)").await,
        Some(0)
    );
    // Other statements of the holder, on any logical shard, do not lose it.
    let _ = outcome(&mut r, "SELECT id FROM t WHERE id = 2").await;
    assert_eq!(
        q(&mut r, "SELECT IS_USED_LOCK('tessera_l') IS NOT NULL").await,
        Some(1)
    );
    assert_eq!(q(&mut r, "SELECT RELEASE_LOCK('tessera_l')").await, Some(1));
    assert_eq!(
        q(&mut other, "SELECT GET_LOCK('tessera_l', 0)").await,
        Some(1)
    );
    assert_eq!(
        q(&mut other, "SELECT RELEASE_LOCK('tessera_l')").await,
        Some(1)
    );
    assert_eq!(q(&mut r, "SELECT GET_LOCK('tessera_m', 0)").await, Some(1));
    drop(r);
    let mut freed = false;
    for _ in 0..50 {
        if q(&mut other, "SELECT IS_FREE_LOCK('tessera_m')").await == Some(1) {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "a lock outlived the session that took it");
    drop((other, o));
    h.stop().await;
}

/// `SET STATEMENT … FOR` and `DO` over a sharded keyspace: the variables hold for every
/// statement sent for one (one logical shard, several, merged, a split insert, reference
/// tables), as MariaDB direct answers them; multi-row inserts whose rows hold calls and
/// parentheses split by shard key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_statement_and_do_like_mariadb() {
    let h = Harness::start(2, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(2).await;
    let script: &[&str] = &[
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s VARCHAR(64), d DATE)",
        "INSERT INTO t (id, s, d) VALUES (1, CONCAT('a', ')'), DATE('2024-01-02')), (2, '(', NULL), (3, 'c', DATE(CONCAT('2024-', '02-03'))), (4, (SELECT 'x'), NULL)",
        "SELECT ROW_COUNT()",
        "SET STATEMENT max_statement_time = 10 FOR SELECT id, s FROM t WHERE id = 1",
        "SET STATEMENT max_statement_time = 10, sql_mode = 'STRICT_ALL_TABLES' FOR SELECT COUNT(*) FROM t",
        "SET STATEMENT max_statement_time = 10 FOR SELECT id FROM t ORDER BY id DESC LIMIT 2",
        "SET STATEMENT max_statement_time = 10 FOR SELECT s, COUNT(*) FROM t GROUP BY s ORDER BY s",
        // The time limit fires while the sleep runs (never before it starts): SLEEP answers 1.
        "SET STATEMENT max_statement_time = 0.3 FOR SELECT SLEEP(3) FROM t WHERE id = 2",
        "SET STATEMENT sql_mode = '' FOR INSERT INTO t (id, s, d) VALUES (5, 'e', '2024-13-45'), (6, 'f', NULL)",
        "SELECT ROW_COUNT()",
        "SET STATEMENT sql_mode = 'STRICT_ALL_TABLES' FOR INSERT INTO t (id, s, d) VALUES (7, 'g', '2024-13-45')",
        "SELECT id, s, d FROM t ORDER BY id",
        "SET STATEMENT max_statement_time = 10 FOR UPDATE t SET s = CONCAT(s, '!') WHERE id IN (1, 2, 3, 4)",
        "SELECT ROW_COUNT()",
        "SET STATEMENT max_statement_time = 10 FOR SELECT 1 + 1",
        "DO 1 + 1",
        "DO @v := 3, SLEEP(0)",
        "SELECT id, s FROM t WHERE id = @v",
        "SELECT id, s FROM t ORDER BY id",
    ];
    for sql in script {
        let want = outcome(&mut o, sql).await;
        let got = outcome(&mut r, sql).await;
        assert_eq!(got, want, "{sql}");
    }
    // What the router itself must read differently, or would cap per logical shard: refused.
    for sql in [
        "SET STATEMENT sql_select_limit = 1 FOR SELECT id FROM t",
        "SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR SELECT id FROM t WHERE s = 'a\\\\'",
        "DO (SELECT COUNT(*) FROM t)",
    ] {
        match r.query_drop(sql).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{sql}: {}", e.message),
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    drop((r, o));
    h.stop().await;
}

/// A session's `wait_timeout` closes its connection after that long idle, as MariaDB closes
/// it: the next statement fails with a lost connection, through the router as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_closes_an_idle_session() {
    let h = Harness::start(1, 1, VSCHEMA).await;
    let mut r = h.conn(Some("demo")).await;
    let mut o = h.oracle(1).await;
    for c in [&mut r, &mut o] {
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit");
        c.query_drop("SET wait_timeout = 1").await.expect("set");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for (who, c) in [("router", &mut r), ("direct", &mut o)] {
        match c.query_drop("SELECT 1").await {
            Err(mysql_async::Error::Server(e)) => {
                panic!("{who}: a server error, not a lost connection: {e:?}")
            }
            Err(_) => {}
            Ok(()) => panic!("{who}: the idle session was not closed"),
        }
    }
    // A session that keeps busy is not closed.
    let mut busy = h.conn(Some("demo")).await;
    busy.query_drop("SET wait_timeout = 1").await.expect("set");
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        busy.query_drop("SELECT 1").await.expect("busy session");
    }
    drop((r, o, busy));
    h.stop().await;
}
