//! Backend accounts that log in with MariaDB's `ed25519`: the control plane (`vschema apply`),
//! the router's own connections (single-shard statements, reads over several shards) and its
//! `mysql_async` pools (transactions) all log in as such an account, and a wrong password is an
//! error the client sees, not a hang.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;
use tessera::localcluster::LocalCluster;

const VSCHEMA: &str = "
keyspace: demo
sharded: true
logical_shards: 8
tables:
  t: { shard_key: id, vindex: xxhash }
";

/// The backend account the shards are registered with, and its password.
const ED_USER: &str = "tessera_ed";
const ED_PASSWORD: &str = "ed-s3cret pw";

/// `ER_PLUGIN_INSTALLED`: "Plugin '%s' already installed".
const PLUGIN_INSTALLED: u16 = 1968;

/// Longest any statement may take here: a login that never ends would be a hang.
const BOUND: Duration = Duration::from_secs(30);

/// Installs the ed25519 plugin on a server (unless it is there) and creates [`ED_USER`] with
/// it, with the privileges the servers' own account (the router's usual one) has.
async fn ed25519_account(c: &mut Conn) {
    match c.query_drop("INSTALL SONAME 'auth_ed25519'").await {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if e.code == PLUGIN_INSTALLED => {}
        Err(e) => panic!("INSTALL SONAME 'auth_ed25519': {e}"),
    }
    for host in ["%", "localhost", "127.0.0.1"] {
        c.query_drop(format!(
            "CREATE USER '{ED_USER}'@'{host}' IDENTIFIED VIA ed25519 USING PASSWORD('{ED_PASSWORD}')"
        ))
        .await
        .expect("create the ed25519 user");
        c.query_drop(format!(
            "GRANT ALL PRIVILEGES ON *.* TO '{ED_USER}'@'{host}' WITH GRANT OPTION"
        ))
        .await
        .expect("grant");
    }
    let plugins: Vec<String> = c
        .query(format!(
            "SELECT DISTINCT plugin FROM mysql.user WHERE user = '{ED_USER}'"
        ))
        .await
        .expect("mysql.user");
    assert_eq!(plugins, vec!["ed25519".to_string()]);
}

/// Runs `sql` on the router, bounded by [`BOUND`].
async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, mysql_async::Error> {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

/// `Com_stmt_execute` summed over the first `n` servers: statements executed server-side.
async fn stmt_executes(cluster: &LocalCluster, n: usize) -> u64 {
    let mut total = 0;
    for i in 0..n {
        let mut d = direct_to(cluster, i).await;
        let v: Option<(String, u64)> = d
            .query_first("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
            .await
            .expect("status");
        total += v.map_or(0, |(_, v)| v);
        d.disconnect().await.expect("disconnect");
    }
    total
}

/// Users of the TCP client sessions on server `i` other than the asking one.
async fn session_users(cluster: &LocalCluster, i: usize) -> Vec<String> {
    let mut d = direct_to(cluster, i).await;
    let users: Vec<String> = d
        .query(
            "SELECT DISTINCT user FROM information_schema.processlist \
             WHERE id <> CONNECTION_ID() AND host LIKE '127.0.0.1:%'",
        )
        .await
        .expect("processlist");
    d.disconnect().await.expect("disconnect");
    users
}

/// Rows of table `t` on server `i`, over every logical shard schema it holds.
async fn rows_on_server(cluster: &LocalCluster, i: usize) -> Vec<Vec<String>> {
    let mut d = direct_to(cluster, i).await;
    let schemas: Vec<String> = d
        .query("SELECT table_schema FROM information_schema.tables WHERE table_name = 't'")
        .await
        .expect("schemas");
    let mut all = Vec::new();
    for s in schemas {
        all.extend(rows(&mut d, &format!("SELECT id, v FROM `{s}`.t")).await);
    }
    d.disconnect().await.expect("disconnect");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_backend_accounts_serve_every_path() {
    let cluster = LocalCluster::start(2, None)
        .await
        .expect("start MariaDB servers");
    for i in 0..2 {
        let mut d = direct_to(&cluster, i).await;
        ed25519_account(&mut d).await;
        d.disconnect().await.expect("disconnect");
    }
    // `vschema apply` creates the shard schemas as the ed25519 account (mysql_async).
    let h = Harness::start_on(cluster, 2, VSCHEMA, Some((ED_USER, ED_PASSWORD)), |_| {}).await;
    let mut c = h.conn(Some("demo")).await;
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(32))")
        .await
        .expect("ddl");

    // Single-shard point writes and a point read: the router's own connections.
    for id in 1..=20 {
        bounded(
            "insert",
            c.query_drop(format!("INSERT INTO t VALUES ({id}, 'v{id}')")),
        )
        .await
        .expect("point write");
    }
    let v: Option<String> = bounded("point read", c.query_first("SELECT v FROM t WHERE id = 7"))
        .await
        .expect("point read");
    assert_eq!(v.as_deref(), Some("v7"));
    // A prepared point read runs as a server-side statement only on the router's own
    // connections (the pool path binds the values into text): the backends count it, which
    // shows those connections logged in rather than falling back to the pools.
    let before = stmt_executes(&h.cluster, 2).await;
    let v: Option<String> = bounded(
        "prepared point read",
        c.exec_first("SELECT v FROM t WHERE id = ?", (11,)),
    )
    .await
    .expect("prepared point read");
    assert_eq!(v.as_deref(), Some("v11"));
    let after = stmt_executes(&h.cluster, 2).await;
    assert!(
        after > before,
        "the prepared point read did not run on the router's own connection \
         (Com_stmt_execute {before} -> {after}): it fell back to the pool"
    );

    // A read over all logical shards.
    let all = rows_sorted(&mut c, "SELECT id, v FROM t").await;
    let mut want: Vec<Vec<String>> = (1..=20)
        .map(|i| vec![i.to_string(), format!("v{i}")])
        .collect();
    want.sort();
    assert_eq!(all, want);
    let n: Option<u64> = bounded("count", c.query_first("SELECT COUNT(*) FROM t"))
        .await
        .expect("scatter count");
    assert_eq!(n, Some(20));

    // A transaction over both physical shards (the pools' pinned connections): committed,
    // then one rolled back.
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop("INSERT INTO t VALUES (101, 'a'), (102, 'b'), (103, 'c'), (104, 'd'), (105, 'e'), (106, 'f')")
        .await
        .expect("insert in transaction");
    c.query_drop("UPDATE t SET v = CONCAT(v, '+') WHERE id <= 10")
        .await
        .expect("update in transaction");
    let inside: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM t WHERE v LIKE '%+'")
        .await
        .expect("read in transaction");
    assert_eq!(inside, Some(10));
    c.query_drop("COMMIT").await.expect("commit");
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop("DELETE FROM t").await.expect("delete");
    c.query_drop("ROLLBACK").await.expect("rollback");
    let mut want: Vec<Vec<String>> = (1..=20)
        .map(|i| {
            let v = if i <= 10 {
                format!("v{i}+")
            } else {
                format!("v{i}")
            };
            vec![i.to_string(), v]
        })
        .chain(
            [
                (101, "a"),
                (102, "b"),
                (103, "c"),
                (104, "d"),
                (105, "e"),
                (106, "f"),
            ]
            .iter()
            .map(|(i, v)| vec![i.to_string(), v.to_string()]),
        )
        .collect();
    want.sort();
    assert_eq!(rows_sorted(&mut c, "SELECT id, v FROM t").await, want);
    // Read on the servers themselves: every row once, and both servers hold some.
    let (on0, on1) = (
        rows_on_server(&h.cluster, 0).await,
        rows_on_server(&h.cluster, 1).await,
    );
    assert!(!on0.is_empty() && !on1.is_empty(), "{on0:?} / {on1:?}");
    let mut both: Vec<Vec<String>> = on0.into_iter().chain(on1).collect();
    both.sort();
    assert_eq!(both, want);

    // On the MariaDB side, the router's sessions (its own connections and its pools') are
    // the ed25519 account.
    // (A direct session of this test's that just closed may linger there for a moment.)
    for i in 0..2 {
        let mut users = Vec::new();
        for _ in 0..40 {
            users = session_users(&h.cluster, i).await;
            if users == [ED_USER] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(users, vec![ED_USER.to_string()], "server {i}");
    }

    // A wrong password on ps1's record: statements reaching it fail, naming the shard and
    // the server's refusal, within the bound; ps0 still serves.
    let snap = h.topo.snapshot().await.expect("snapshot");
    let mut rec = snap.shards.get("ps1").cloned().expect("ps1");
    let good = rec.clone();
    rec.password = Some("not the ed25519 password".into());
    h.topo
        .put_physical_shard(&rec)
        .await
        .expect("wrong password");
    let mut refused = None;
    for _ in 0..200 {
        match bounded("scatter read", c.query_drop("SELECT COUNT(*) FROM t")).await {
            Err(mysql_async::Error::Server(e)) => {
                refused = Some(e);
                break;
            }
            Err(e) => panic!("not a server error: {e}"),
            Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let e = refused.expect("a wrong password is refused");
    assert!(
        e.message.contains("ps1") && e.message.contains("Access denied"),
        "{e:?}"
    );
    // Ids whose rows live on ps1 (as its server holds them) and on ps0.
    let id_on = |rows: Vec<Vec<String>>| rows.first().map(|r| r[0].clone()).expect("a row");
    let on1 = id_on(rows_on_server(&h.cluster, 1).await);
    let on0 = id_on(rows_on_server(&h.cluster, 0).await);
    // A point read (own connections) and a transaction (pools) on ps1: the same refusal.
    let (code, msg) = match bounded(
        "point read on ps1",
        c.query_drop(format!("SELECT v FROM t WHERE id = {on1}")),
    )
    .await
    {
        Err(mysql_async::Error::Server(e)) => (e.code, e.message),
        other => panic!("point read on ps1: {other:?}"),
    };
    assert!(
        msg.contains("ps1") && msg.contains("Access denied"),
        "{code} {msg}"
    );
    c.query_drop("BEGIN").await.expect("begin");
    match bounded(
        "update on ps1 in a transaction",
        c.query_drop(format!("UPDATE t SET v = 'no' WHERE id = {on1}")),
    )
    .await
    {
        Err(mysql_async::Error::Server(e)) => {
            assert!(e.message.contains("ps1"), "{e:?}")
        }
        other => panic!("update on ps1 in a transaction: {other:?}"),
    }
    let _ = bounded("rollback", c.query_drop("ROLLBACK")).await;
    // The router carries on: ps0 serves, and so does ps1 once its record is right again.
    let v: Option<String> = bounded(
        "point read on ps0",
        c.query_first(format!("SELECT v FROM t WHERE id = {on0}")),
    )
    .await
    .expect("ps0 still serves");
    assert!(v.is_some());
    h.topo
        .put_physical_shard(&good)
        .await
        .expect("right password");
    let mut back = false;
    for _ in 0..200 {
        if let Ok(Some(n)) =
            bounded("count", c.query_first::<u64, _>("SELECT COUNT(*) FROM t")).await
        {
            assert_eq!(n, 26);
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "ps1 serves again with the right password");

    drop(c);
    h.stop().await;
}

/// MariaDB's nonces are random bytes: one in 256 ends in a zero byte, which must be signed as
/// it is (a client that takes it for a terminator and drops it is refused). Many logins in a
/// row on the router's own connections, and on its pools' (whose `mysql_async` has that bug,
/// worked around by trying a refused login again), all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ed25519_login_succeeds() {
    let cluster = LocalCluster::start(1, None)
        .await
        .expect("start MariaDB servers");
    let mut d = direct_to(&cluster, 0).await;
    ed25519_account(&mut d).await;
    d.disconnect().await.expect("disconnect");
    let s = &cluster.servers()[0];
    // 2000 logins: a nonce ending in 0 among them but for a chance of (255/256)^2000, 0.04%.
    for i in 0..2000 {
        let c = tessera_router::backend::wire::WireConn::connect(
            s.host(),
            s.port(),
            ED_USER,
            ED_PASSWORD.as_bytes(),
            None,
        );
        if let Err(e) = tokio::time::timeout(BOUND, c).await.expect("login ends") {
            panic!("own connection login {i}: {e}");
        }
    }
    let topo = tessera_topo::Topo::new(std::sync::Arc::new(tessera_topo::MemoryStore::new()));
    register_shards_as(&topo, &cluster, 1, Some((ED_USER, ED_PASSWORD))).await;
    let rec = topo
        .snapshot()
        .await
        .expect("snapshot")
        .shards
        .get("ps0")
        .cloned()
        .expect("ps0");
    // Fresh pools, so that each is a new login.
    for i in 0..500 {
        let backends = tessera_router::backend::Backends::new(Default::default());
        let got = tokio::time::timeout(BOUND, backends.pool(&rec).get_conn())
            .await
            .expect("login ends");
        match got {
            Ok(c) => drop(c),
            Err(e) => panic!("pool login {i}: {}", e.message),
        }
        backends.disconnect_all().await;
    }
}
