//! In-process Raft clusters on loopback ports for the black-box tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_topo::raft::{start, start_on, RaftConfig, RaftNodeHandle};
use tessera_topo::{Condition, HttpStore, Store, TopoError};

/// The tick the tests run Raft at: elections after 250 to 500 ms.
pub const TICK: Duration = Duration::from_millis(25);

/// A cluster of nodes in this process, each with its own data dir and loopback port.
pub struct Cluster {
    pub dirs: tempfile::TempDir,
    pub peers: BTreeMap<u64, SocketAddr>,
    pub nodes: BTreeMap<u64, RaftNodeHandle>,
    pub snapshot_every: u64,
    pub token: Option<String>,
    pub tls: Option<tessera_topo::tls::NodeTls>,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) and waits for a leader.
    pub async fn start(n: u64, snapshot_every: u64) -> Cluster {
        Cluster::start_with(n, snapshot_every, None).await
    }

    /// Starts `n` nodes that require `token` of clients and peers.
    pub async fn start_with(n: u64, snapshot_every: u64, token: Option<&str>) -> Cluster {
        Cluster::start_full(n, snapshot_every, token, None).await
    }

    /// Starts `n` nodes that serve HTTPS and reach each other over it with `tls`.
    pub async fn start_full(
        n: u64,
        snapshot_every: u64,
        token: Option<&str>,
        tls: Option<tessera_topo::tls::NodeTls>,
    ) -> Cluster {
        let dirs = tempfile::tempdir().expect("tempdir");
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            listeners.insert(id, l);
        }
        let peers: BTreeMap<u64, SocketAddr> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().expect("addr")))
            .collect();
        let mut c = Cluster {
            dirs,
            peers,
            nodes: BTreeMap::new(),
            snapshot_every,
            token: token.map(str::to_string),
            tls,
        };
        for (id, l) in listeners {
            let cfg = c.config(id);
            let h = start_on(cfg, l).await.expect("start node");
            c.nodes.insert(id, h);
        }
        c.wait_leader(None).await;
        c
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.dirs.path().join(format!("node-{id}"))
    }

    pub fn config(&self, id: u64) -> RaftConfig {
        let mut cfg = RaftConfig::new(id, self.peers.clone(), self.peers[&id], self.dir(id));
        cfg.tick = TICK;
        cfg.snapshot_every = self.snapshot_every;
        cfg.token = self.token.clone();
        cfg.tls = self.tls.clone();
        cfg
    }

    /// Returns a node's status field.
    pub fn status(&self, id: u64) -> serde_json::Value {
        self.nodes[&id].status()
    }

    /// Returns the id of the node that is leader, as the nodes agree.
    pub fn leader(&self) -> Option<u64> {
        let mut leader = None;
        for (id, h) in &self.nodes {
            let st = h.status();
            if st["role"] == "leader" {
                leader = Some(*id);
            }
        }
        let l = leader?;
        let term = self.status(l)["term"].as_u64();
        // Every live node must follow it in the same term.
        for h in self.nodes.values() {
            let st = h.status();
            if st["leader"].as_u64() != Some(l) || st["term"].as_u64() != term {
                return None;
            }
        }
        Some(l)
    }

    /// Waits until every live node agrees on a leader other than `not`; returns it.
    pub async fn wait_leader(&self, not: Option<u64>) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(l) = self.leader() {
                if Some(l) != not {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader elected in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns a live node that is not the leader.
    pub fn follower(&self) -> u64 {
        let l = self.leader();
        *self
            .nodes
            .keys()
            .find(|id| Some(**id) != l)
            .expect("a follower")
    }

    /// Stops a node, keeping its data dir.
    pub async fn kill(&mut self, id: u64) {
        let h = self.nodes.remove(&id).expect("node running");
        h.shutdown().await;
    }

    /// Starts a stopped node again on its old port and data dir.
    pub async fn restart(&mut self, id: u64) {
        let h = start(self.config(id)).await.expect("restart node");
        self.nodes.insert(id, h);
    }

    /// Waits until `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let applied = self.status(id)["applied"].as_u64().unwrap_or(0);
            if applied >= index {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} applied {applied}, wanted {index}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns an HTTP client of every live node, `first` first.
    pub fn client(&self, first: Option<u64>) -> HttpStore {
        let mut eps: Vec<String> = Vec::new();
        if let Some(f) = first {
            eps.push(self.peers[&f].to_string());
        }
        for (id, a) in &self.peers {
            if Some(*id) != first {
                eps.push(a.to_string());
            }
        }
        HttpStore::new(&eps, self.token.clone()).expect("client")
    }

    pub fn store(&self, id: u64) -> Arc<dyn Store> {
        self.nodes[&id].store()
    }

    pub async fn shutdown(self) {
        for (_, h) in self.nodes {
            h.shutdown().await;
        }
    }
}

/// Puts `key`, retrying while the cluster is unavailable (no leader yet); returns the
/// revision once acknowledged.
pub async fn put_retry(store: &dyn Store, key: &str, value: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.put(key, value, Condition::None, None).await {
            Ok(r) => return r,
            Err(TopoError::Unavailable(e)) => {
                assert!(Instant::now() < deadline, "put {key} unavailable: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}

/// Waits until `f` holds, polling.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
