//! Starting a node: [`start`] (and [`start_on`] for a listener already bound) open the
//! storage, spawn the driver thread and the peer transport, and serve the client API merged
//! with the peer and membership routes. [`RaftNodeHandle`] owns all of it.

use super::config::RaftConfig;
use super::members;
use super::node::{lock, Node, NodeMsg, NodeOptions, NodeSender};
use super::store::RaftStore;
use super::transport::{self, HttpTransport};
use crate::error::{Result, TopoError};
use crate::http::server::{self, StatusFn};
use crate::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for open HTTP requests (long-poll watches) before cutting them.
const SERVER_GRACE: Duration = Duration::from_millis(500);

/// A running node. [`RaftNodeHandle::shutdown`] stops it; dropping the handle stops it too,
/// without waiting.
pub struct RaftNodeHandle {
    id: u64,
    addr: SocketAddr,
    store: RaftStore,
    node: NodeSender,
    thread: Option<std::thread::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts a node on `cfg.listen`.
///
/// # Errors
/// [`TopoError::Invalid`] naming a bad field, I/O errors binding the address or opening the
/// data directory, [`TopoError::Corrupt`] for a damaged log or snapshot.
pub async fn start(cfg: RaftConfig) -> Result<RaftNodeHandle> {
    cfg.validate()?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    start_on(cfg, listener).await
}

/// Starts a single-voter node in `data_dir`, listening on `listen`: the embedded topology
/// service of a laptop or a test. Its id is 1.
///
/// # Errors
/// As [`start`].
pub async fn serve_single(data_dir: &Path, listen: SocketAddr) -> Result<RaftNodeHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let cfg = RaftConfig::new(1, BTreeMap::from([(1, addr)]), addr, data_dir);
    start_on(cfg, listener).await
}

/// Starts a node serving on `listener` (bound by the caller, e.g. to port 0 so tests need no
/// fixed ports). If this node's own entry in `cfg.peers` has port 0 it is replaced by the
/// listener's address.
///
/// # Errors
/// As [`start`].
pub async fn start_on(
    mut cfg: RaftConfig,
    listener: tokio::net::TcpListener,
) -> Result<RaftNodeHandle> {
    cfg.validate()?;
    let addr = listener.local_addr()?;
    if let Some(own) = cfg.peers.get_mut(&cfg.id) {
        if own.port() == 0 {
            *own = addr;
        }
    }
    let timeout = cfg.request_timeout();
    let opts = NodeOptions {
        id: cfg.id,
        peers: cfg
            .peers
            .iter()
            .map(|(id, a)| (*id, a.to_string()))
            .collect(),
        data_dir: cfg.data_dir.clone(),
        tick: cfg.tick,
        snapshot_every: cfg.snapshot_every,
        request_ticks: (timeout.as_millis() / cfg.tick.as_millis().max(1)) as u64,
        election_ticks: None,
    };
    let (tx, rx) = std::sync::mpsc::channel::<NodeMsg>();
    let transport = HttpTransport::new(
        tokio::runtime::Handle::current(),
        cfg.token.clone(),
        cfg.tls
            .as_ref()
            .map(crate::tls::NodeTls::peer_client)
            .as_ref(),
        tx.clone(),
    )?;
    let server_tls = cfg
        .tls
        .as_ref()
        .map(crate::tls::NodeTls::server_config)
        .transpose()?;
    let node = {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || Node::open(&opts, Box::new(transport)))
            .await
            .map_err(|e| TopoError::Unavailable(format!("raft node open panicked: {e}")))??
    };
    let shared = node.shared();
    let tick = cfg.tick;
    let thread = {
        let shared = shared.clone();
        let id = cfg.id;
        std::thread::Builder::new()
            .name(format!("raft-node-{id}"))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(move || node.run(rx, tick));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!(node = id, "raft node panicked; it no longer serves");
                    lock(&shared.core).close_watchers();
                    lock(&shared.status).stopped = Some("panicked".into());
                }
            })?
    };

    let store = RaftStore::new(tx.clone(), shared.clone(), timeout);
    let status_shared = shared.status.clone();
    let status: StatusFn = Arc::new(move || {
        serde_json::to_value(&*lock(&status_shared)).unwrap_or(serde_json::Value::Null)
    });
    let api: Arc<dyn Store> = Arc::new(store.clone());
    let app = server::router(api, cfg.token.clone(), Some(status))
        .merge(transport::routes(tx.clone(), cfg.token.clone()))
        .merge(members::routes(store.clone(), cfg.token.clone()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, app, server_tls, async {
        let _ = stop_rx.await;
    }));
    tracing::info!(node = cfg.id, listen = %addr, peers = ?cfg.peers, "raft topology node serving");
    Ok(RaftNodeHandle {
        id: cfg.id,
        addr,
        store,
        node: tx,
        thread: Some(thread),
        server: Some(server),
        stop_server: Some(stop_tx),
    })
}

impl RaftNodeHandle {
    /// Returns the node's store, as every topology user takes it.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    /// Returns the node's store with its membership API.
    pub fn raft_store(&self) -> RaftStore {
        self.store.clone()
    }

    /// Returns what the node says of itself: role, term, leader, commit and applied index,
    /// last log index, snapshot index, voters and peers.
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.store.node_status()).unwrap_or(serde_json::Value::Null)
    }

    /// Returns this node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Returns the address the node serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the node: the driver finishes its current step and exits (failing waiting
    /// requests and closing watches), then the HTTP server stops, giving open requests a
    /// short grace.
    pub async fn shutdown(mut self) {
        let _ = self.node.send(NodeMsg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(s) = self.stop_server.take() {
            let _ = s.send(());
        }
        if let Some(mut h) = self.server.take() {
            if tokio::time::timeout(SERVER_GRACE, &mut h).await.is_err() {
                h.abort();
                let _ = h.await;
            }
        }
        tracing::info!(node = self.id, "raft topology node shut down");
    }
}

impl Drop for RaftNodeHandle {
    fn drop(&mut self) {
        let _ = self.node.send(NodeMsg::Shutdown);
        if let Some(s) = self.stop_server.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}
