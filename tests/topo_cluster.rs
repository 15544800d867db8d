//! A real three-node topology cluster of `tessera topo serve` processes on loopback: writes
//! with a node down, leader loss, restart from the data dir, a wiped node rejoining by snapshot,
//! compare-and-set conflicts, watches across a leader change, lease expiry — and a router that
//! keeps serving while every topology node is stopped.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_topo::{Condition, HttpStore, Store, Topo, TopoError, VSchema};

struct Node {
    id: u64,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, peers: &str) {
        let (id, listen) = (self.id.to_string(), self.endpoint());
        self.child = Some(topo_serve(
            [
                "--id".as_ref(),
                id.as_ref(),
                "--peers".as_ref(),
                peers.as_ref(),
                "--listen".as_ref(),
                listen.as_ref(),
                "--snapshot-every".as_ref(),
                "50".as_ref(),
                "--data-dir".as_ref(),
                self.dir.as_os_str(),
            ],
            Stdio::null(),
        ));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn status(ep: &str) -> Option<serde_json::Value> {
    let c = reqwest_lite(ep, "/v1/status").await?;
    serde_json::from_str(&c).ok()
}

async fn reqwest_lite(ep: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(ep))
        .await
        .ok()?
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {ep}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Returns the id of the node that all live nodes agree leads, waiting up to 15 s.
async fn leader(nodes: &[Node]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for n in nodes.iter().filter(|n| n.child.is_some()) {
            if let Some(s) = status(&n.endpoint()).await {
                if s["role"] == "leader" {
                    return n.id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put_retry(store: &HttpStore, key: &str, value: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.put(key, value, Condition::None, None).await {
            Ok(r) => return r,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "write {key} never succeeded: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_survives_failures() {
    let base = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node {
            id,
            port: free_port(),
            dir: base.path().join(format!("n{id}")),
            child: None,
        })
        .collect();
    let peers = nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.endpoint()))
        .collect::<Vec<_>>()
        .join(",");
    for n in nodes.iter_mut() {
        n.start(&peers);
    }
    let eps: Vec<String> = nodes.iter().map(Node::endpoint).collect();
    let store = HttpStore::new(&eps, None).expect("client");
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let first = put_retry(&store, "/t/k0", "v0").await;
    acked.insert("/t/k0".into(), "v0".into());

    // A watch that must see every later change, in order, across a leader change.
    let mut w = store.watch("/t/", first).await.expect("watch");

    // Compare-and-set conflicts are detected.
    let kv = store.get("/t/k0").await.expect("get").expect("present");
    store
        .put(
            "/t/k0",
            "v0b",
            Condition::ModRevision(kv.mod_revision),
            None,
        )
        .await
        .expect("cas");
    acked.insert("/t/k0".into(), "v0b".into());
    assert!(matches!(
        store
            .put(
                "/t/k0",
                "stale",
                Condition::ModRevision(kv.mod_revision),
                None
            )
            .await,
        Err(TopoError::Conflict { .. })
    ));

    // One follower down: writes go on.
    let l = leader(&nodes).await;
    let follower = nodes.iter().position(|n| n.id != l).expect("a follower");
    nodes[follower].kill();
    for i in 1..=20 {
        let (k, v) = (format!("/t/k{i}"), format!("v{i}"));
        put_retry(&store, &k, &v).await;
        acked.insert(k, v);
    }
    // Back from its data dir, it catches up (read it alone, stale, to see its own copy).
    nodes[follower].start(&peers);
    let solo = HttpStore::new(&[nodes[follower].endpoint()], None).expect("client");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (kvs, _) = solo.list("/t/").await.unwrap_or_default();
        if kvs.len() == acked.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node did not catch up ({} of {})",
            kvs.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leader is SIGKILLed: a new one is elected, and no acknowledged write is lost.
    let l = leader(&nodes).await;
    let li = nodes.iter().position(|n| n.id == l).expect("leader");
    nodes[li].kill();
    for i in 21..=80 {
        let (k, v) = (format!("/t/k{i}"), format!("v{i}"));
        put_retry(&store, &k, &v).await;
        acked.insert(k, v);
    }
    let l2 = leader(&nodes).await;
    assert_ne!(l2, l, "a new leader");
    let (kvs, _) = store.list("/t/").await.expect("list");
    let got: BTreeMap<String, String> = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(got, acked, "every acknowledged write is there");

    // The watch saw every change in order, across the leader change.
    let mut seen = Vec::new();
    while seen.len() < 1 + 20 + 60 {
        let ev = tokio::time::timeout(Duration::from_secs(15), w.recv())
            .await
            .expect("watch event in time");
        let ev = ev.expect("watch open").expect("watch ok");
        seen.push(ev.revision);
    }
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "in revision order");

    // The old leader's data dir is wiped; it rejoins and gets everything by snapshot.
    let _ = std::fs::remove_dir_all(&nodes[li].dir);
    nodes[li].start(&peers);
    let solo = HttpStore::new(&[nodes[li].endpoint()], None).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (kvs, _) = solo.list("/t/").await.unwrap_or_default();
        if kvs.len() == acked.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "wiped node did not rejoin ({} of {})",
            kvs.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = status(&nodes[li].endpoint()).await.expect("status");
    assert!(
        st["snapshot_index"].as_u64().unwrap_or(0) > 0,
        "it was sent a snapshot: {st}"
    );

    // Leases expire.
    let lease = store.grant_lease(1000).await.expect("lease");
    store
        .put("/t/leased", "x", Condition::None, Some(lease))
        .await
        .expect("put with lease");
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.get("/t/leased").await.ok().flatten().is_some() {
        assert!(Instant::now() < deadline, "the leased key did not vanish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A router on this cluster keeps serving while every node is stopped.
    let cluster = tessera::localcluster::LocalCluster::start(1, None)
        .await
        .expect("mariadb");
    let topo = Topo::new(Arc::new(HttpStore::new(&eps, None).expect("client")));
    register_shards(&topo, &cluster, 1).await;
    tessera::cli::apply_vschema(
        &topo,
        &VSchema::from_yaml(
            "keyspace: app\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n",
        )
        .expect("v"),
    )
    .await
    .expect("apply");
    let cfg = tessera_router::RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: null\nusers: [{{name: {USER}, password: {PASSWORD}}}]\ntopo: {{endpoints: [{}]}}\n",
        eps.join(", ")
    ))
    .expect("config");
    let router = tessera_router::Router::new(cfg, topo)
        .start()
        .await
        .expect("router");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(router.local_addr().port())
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("app"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts.clone()).await.expect("connect");
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("create");
    for n in nodes.iter_mut() {
        n.kill();
    }
    c.query_drop("INSERT INTO t (id) VALUES (1), (2), (3)")
        .await
        .expect("write with topology down");
    let mut fresh = mysql_async::Conn::new(opts)
        .await
        .expect("connect with topology down");
    assert_eq!(
        rows(&mut fresh, "SELECT COUNT(*) FROM t").await,
        vec![vec!["3".to_string()]]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while router.topo_status().connected {
        assert!(Instant::now() < deadline, "the router reports the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);
    drop(fresh);
    router.shutdown().await;
    cluster.shutdown().await;
}
