//! Backend accounts: routers serve applications with the shard's data account, which holds the
//! keyspaces' schemas and nothing else, and admin router users with its control account.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use tessera::localcluster::{LocalCluster, DATA_PASSWORD, DATA_USER};
use tessera_router::config::{RouterConfig, UserConfig};
use tessera_router::Router;
use tessera_topo::{DataAccount, MemoryStore, PhysicalShard, Topo, VSchema};

/// The users of the server's sessions other than `except` (a connection id), sorted, distinct.
async fn backend_users(direct: &mut mysql_async::Conn) -> Vec<String> {
    direct
        .query(
            "SELECT DISTINCT user FROM information_schema.processlist \
             WHERE id <> CONNECTION_ID() AND user NOT IN ('system user', 'event_scheduler') \
             ORDER BY user",
        )
        .await
        .expect("processlist")
}

/// Registers `s` as physical shard `ps0` with the local cluster's data account.
async fn register(topo: &Topo, s: &tessera::localcluster::MariaDbServer) {
    topo.put_physical_shard(&PhysicalShard {
        name: "ps0".into(),
        host: s.host().into(),
        port: s.port(),
        user: s.user().into(),
        password: Some(s.password().into()),
        password_env: None,
        weight: 1,
        tls_ca: None,
        data_account: Some(DataAccount {
            user: DATA_USER.into(),
            password: Some(DATA_PASSWORD.into()),
            password_env: None,
        }),
    })
    .await
    .expect("register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_get_the_data_account_and_admins_the_control_account() {
    let cluster = LocalCluster::start(1, None).await.expect("mariadb");
    let s = &cluster.servers()[0];
    let topo = Topo::new(Arc::new(MemoryStore::new()));
    register(&topo, s).await;
    // Applying the keyspace grants the data account its schema, then creates it with that
    // account.
    let v = VSchema::from_yaml("keyspace: shop\nsharded: false\n").expect("vschema");
    tessera::cli::apply_vschema(&topo, &v).await.expect("apply");
    let mut cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: null\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
    ))
    .expect("config");
    cfg.users.push(UserConfig {
        admin: true,
        ..UserConfig::with_password("dba", Some("dbapw"))
    });
    let router = Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let opts = |user: &str, pw: &str| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(router.local_addr().port())
            .user(Some(user))
            .pass(Some(pw))
            .db_name(Some("shop"))
            .prefer_socket(false)
    };
    let mut direct = direct_to(&cluster, 0).await;

    // The application: its statements run as the data account.
    let mut app = mysql_async::Conn::new(opts(USER, PASSWORD))
        .await
        .expect("app");
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        .await
        .expect("create");
    app.query_drop("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .await
        .expect("insert");
    app.query_drop("BEGIN").await.expect("begin");
    app.query_drop("UPDATE t SET v = 'c' WHERE id = 2")
        .await
        .expect("update");
    assert_eq!(
        backend_users(&mut direct).await,
        vec![DATA_USER.to_string()]
    );
    app.query_drop("COMMIT").await.expect("commit");
    assert_eq!(
        rows(&mut app, "SELECT v FROM t ORDER BY id").await,
        vec![vec!["a".to_string()], vec!["c".to_string()]]
    );
    // A keyspace made with CREATE DATABASE: the data account is granted its schema first.
    app.query_drop("CREATE DATABASE made_here")
        .await
        .expect("create database");
    app.query_drop("CREATE TABLE made_here.u (id INT PRIMARY KEY)")
        .await
        .expect("a table in it");
    app.query_drop("INSERT INTO made_here.u VALUES (7)")
        .await
        .expect("a row in it");
    let grants: Vec<String> = direct
        .query(format!("SHOW GRANTS FOR '{DATA_USER}'@'127.0.0.1'"))
        .await
        .expect("grants");
    assert!(
        grants.iter().any(|g| g.contains("ON `made\\_here`.*")),
        "{grants:?}"
    );
    assert!(
        grants
            .iter()
            .all(|g| !g.contains(" ON *.* ") || g.starts_with("GRANT USAGE ON *.*")),
        "{grants:?}"
    );
    // DROP DATABASE takes the grant back.
    app.query_drop("DROP DATABASE made_here")
        .await
        .expect("drop database");
    let grants: Vec<String> = direct
        .query(format!("SHOW GRANTS FOR '{DATA_USER}'@'127.0.0.1'"))
        .await
        .expect("grants");
    assert!(grants.iter().all(|g| !g.contains("made")), "{grants:?}");
    assert!(
        grants.iter().any(|g| g.contains("ON `shop`.*")),
        "{grants:?}"
    );
    // What the router refuses it, MariaDB would refuse the data account too.
    let mut as_data = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(s.host())
            .tcp_port(s.port())
            .user(Some(DATA_USER))
            .pass(Some(DATA_PASSWORD))
            .prefer_socket(false),
    )
    .await
    .expect("the data account logs in");
    assert_eq!(
        error_code(&mut as_data, "SET GLOBAL max_connections = 5")
            .await
            .0,
        1227
    );
    assert_eq!(
        error_code(&mut as_data, "SELECT authentication_string FROM mysql.user")
            .await
            .0,
        1142
    );
    drop(as_data);

    // The admin: its whole-server statements run as the control account.
    let mut dba = mysql_async::Conn::new(opts("dba", "dbapw"))
        .await
        .expect("dba");
    let before: u64 = dba
        .query_first("SELECT @@global.max_connections")
        .await
        .expect("read")
        .expect("a value");
    dba.query_drop(format!("SET GLOBAL max_connections = {}", before + 1))
        .await
        .expect("an admin's SET GLOBAL");
    let users: u64 = dba
        .query_first("SELECT COUNT(*) FROM mysql.user WHERE user = 'tessera_app'")
        .await
        .expect("an admin reads mysql.user")
        .expect("a count");
    assert!(users >= 1);
    let now: u64 = direct
        .query_first("SELECT @@global.max_connections")
        .await
        .expect("read")
        .expect("a value");
    assert_eq!(now, before + 1);
    dba.query_drop(format!("SET GLOBAL max_connections = {before}"))
        .await
        .expect("restore");
    // (An admin's SET GLOBAL renews the pools.) Both in a transaction, each on a connection
    // of its own account.
    dba.query_drop("BEGIN").await.expect("begin");
    let _: Option<u64> = dba
        .query_first("SELECT COUNT(*) FROM mysql.user")
        .await
        .expect("read");
    app.query_drop("BEGIN").await.expect("begin");
    app.query_drop("UPDATE t SET v = 'd' WHERE id = 1")
        .await
        .expect("update");
    assert_eq!(
        backend_users(&mut direct).await,
        vec![s.user().to_string(), DATA_USER.to_string()],
        "the admin's and the application's connections, each with its account"
    );
    app.query_drop("ROLLBACK").await.expect("rollback");
    dba.query_drop("ROLLBACK").await.expect("rollback");
    drop(app);
    drop(dba);
    drop(direct);
    router.shutdown().await;
    cluster.shutdown().await;
}

/// The control plane runs as the control account where a shard has a data account: moving
/// tables needs triggers (the change journal), which the data account may not create on a
/// server that writes a binary log (as `tessera up`'s servers do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_commands_run_as_the_control_account() {
    let cluster = LocalCluster::start(1, None).await.expect("mariadb");
    let s = &cluster.servers()[0];
    let topo = Topo::new(Arc::new(MemoryStore::new()));
    register(&topo, s).await;
    for y in [
        "keyspace: legacy\nsharded: false\n",
        "keyspace: shop\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n",
    ] {
        let v = VSchema::from_yaml(y).expect("vschema");
        tessera::cli::apply_vschema(&topo, &v).await.expect("apply");
    }
    let mut direct = direct_to(&cluster, 0).await;
    direct
        .query_drop("CREATE TABLE legacy.t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .expect("table");
    let rows: Vec<String> = (1..=200).map(|i| format!("({i}, 'v{i}')")).collect();
    direct
        .query_drop(format!("INSERT INTO legacy.t VALUES {}", rows.join(", ")))
        .await
        .expect("rows");
    let tables = vec!["t".to_string()];
    tessera::cli::movetables::movetables_start(&topo, "legacy", "shop", &tables)
        .await
        .expect("start (the journal's triggers)");
    let run = tessera::cli::movetables::movetables_run(&topo, "legacy")
        .await
        .expect("run");
    assert_eq!(run.rows, 200, "{run:?}");
    tessera::cli::movetables::movetables_cutover(&topo, "legacy")
        .await
        .expect("cutover");
    let mut moved = 0u64;
    for ls in 0..4 {
        let n: Option<u64> = direct
            .query_first(format!("SELECT COUNT(*) FROM shop_{ls:04}.t"))
            .await
            .expect("count");
        moved += n.unwrap_or(0);
    }
    assert_eq!(moved, 200);
}
