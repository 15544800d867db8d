//! A router keeps serving from its cached topology while the topology service is down, says so
//! in its status, and catches up when the service returns.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tessera::localcluster::LocalCluster;
use tessera_router::{Router, RouterConfig};
use tessera_topo::{HttpStore, Topo, VSchema};

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(port: u16, dir: &std::path::Path) -> Node {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "topo",
            "serve",
            "--open",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn topo serve");
    let out = c.stdout.take().expect("stdout");
    let line = std::io::BufRead::lines(std::io::BufReader::new(out))
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    assert!(line.starts_with("ready:"), "{line}");
    Node(c)
}

async fn status(admin: std::net::SocketAddr) -> serde_json::Value {
    serde_json::from_str(&http_get(admin, "/status").await).expect("status json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_serves_through_a_topology_outage_and_catches_up() {
    let cluster = LocalCluster::start(2, None).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let node = start_node(port, dir.path());
    let topo = Topo::new(Arc::new(
        HttpStore::new(&[format!("127.0.0.1:{port}")], None).expect("client"),
    ));
    register_shards(&topo, &cluster, 2).await;
    let v = VSchema::from_yaml(
        "keyspace: demo\nsharded: true\nlogical_shards: 8\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(&topo, &v).await.expect("apply");
    let cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\ntopo: {{endpoints: ['127.0.0.1:{port}']}}\n"
    ))
    .expect("config");
    let router = Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let admin = router.admin_addr().expect("admin");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(router.local_addr().port())
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("demo"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts.clone()).await.expect("connect");
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.query_drop("INSERT INTO t (id, v) VALUES (1, 1), (2, 2), (3, 3)")
        .await
        .expect("insert");
    assert_eq!(status(admin).await["topology"]["connected"], true);
    // The router registered itself, with the epoch it serves.
    let mut registered = Vec::new();
    for _ in 0..50 {
        registered = topo.routers().await.expect("routers");
        if registered
            .first()
            .is_some_and(|r| r.epochs.get("demo") == Some(&1))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(registered[0].listen, router.local_addr().to_string());
    assert_eq!(registered[0].epochs.get("demo"), Some(&1));

    // Topology down: queries go on; the status says the router serves from its cache.
    drop(node);
    c.query_drop("UPDATE t SET v = 10 WHERE id = 1")
        .await
        .expect("write during outage");
    let mut fresh = mysql_async::Conn::new(opts.clone())
        .await
        .expect("new connections during outage");
    assert_eq!(
        rows(&mut fresh, "SELECT v FROM t WHERE id = 1").await,
        vec![vec!["10".to_string()]]
    );
    let mut down = false;
    for _ in 0..100 {
        if status(admin).await["topology"]["connected"] == false {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        down,
        "the status reports the outage: {}",
        status(admin).await
    );
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM t").await,
        vec![vec!["3".to_string()]]
    );

    // Back again, from its data dir: the router catches up with changes made since.
    let _node = start_node(port, dir.path());
    let other = VSchema::from_yaml("keyspace: other\nsharded: false\n").expect("vschema");
    tessera::cli::apply_vschema(&topo, &other)
        .await
        .expect("apply after restart");
    let mut seen = false;
    for _ in 0..100 {
        if c.query_drop("USE other").await.is_ok() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the router sees the keyspace added after the outage");
    assert_eq!(status(admin).await["topology"]["connected"], true);
    drop(c);
    drop(fresh);
    router.shutdown().await;
    assert!(
        topo.routers().await.expect("routers").is_empty(),
        "a stopped router deregisters"
    );
    cluster.shutdown().await;
}
