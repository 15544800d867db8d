//! The router process: the listener, its registration in the topology, one task per client
//! connection, and shutdown.

use super::connection::handle;
use super::shared::Shared;
use crate::backend::Backends;
use crate::config::RouterConfig;
use crate::engine::Engine;
use crate::topology::{TopoStatus, TopologyCache};
use crate::wire::resultset;
use crate::wire::PacketIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tessera_topo::Topo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// A configured router, not yet listening.
pub struct Router {
    cfg: RouterConfig,
    topo: Topo,
}

/// A running router: its address, its topology status, and the way to stop it.
pub struct RouterHandle {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    metrics: Arc<crate::metrics::Metrics>,
    cache: Arc<TopologyCache>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RouterHandle {
    /// Returns the address applications connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the admin endpoint's address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Returns the router's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Returns what the router knows of its topology connection.
    pub fn topo_status(&self) -> TopoStatus {
        self.cache.status()
    }

    /// Returns the routing-table cache.
    pub fn cache(&self) -> &Arc<TopologyCache> {
        &self.cache
    }

    /// Stops accepting, lets each connection finish its current statement, closes pools.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

impl Router {
    pub fn new(cfg: RouterConfig, topo: Topo) -> Self {
        Router { cfg, topo }
    }

    /// Binds the listener, loads the topology (or starts with an empty table and keeps
    /// trying, if topo is unreachable), and serves until shut down.
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    pub async fn start(self) -> std::io::Result<RouterHandle> {
        let listener = TcpListener::bind(self.cfg.listen).await?;
        self.start_on(listener).await
    }

    /// Like [`Router::start`] on an already bound listener.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub async fn start_on(self, listener: TcpListener) -> std::io::Result<RouterHandle> {
        let addr = listener.local_addr()?;
        let cache = Arc::new(TopologyCache::default());
        if let Err(e) = cache.load(&self.topo).await {
            tracing::warn!(error = %e, "topology not loaded at start; will keep trying");
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let backends = Arc::new(Backends::new(self.cfg.backend.clone()));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let admin = match self.cfg.admin_listen {
            Some(a) => {
                let l = TcpListener::bind(a).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("binding the admin endpoint to {a}: {e}"))
                })?;
                Some(l)
            }
            None => None,
        };
        // Changes through the admin endpoint need the topology's token.
        let admin_token: Option<Arc<str>> = tessera_topo::token::find(
            self.cfg
                .topo
                .token_env
                .as_deref()
                .unwrap_or(tessera_topo::token::TOKEN_ENV),
        )
        .map(Arc::from);
        let admin_addr = match &admin {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let shadow = crate::shadow::routing::RoutingShadow::start(cache.clone());
        let results = crate::shadow::results::ResultShadow::new(cache.clone(), 8, metrics.clone());
        let log = match &self.cfg.query_log {
            Some(c) => {
                let l = crate::overview::QueryLog::open(c.clone()).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("opening the query log {}: {e}", c.path.display()),
                    )
                })?;
                let _ = metrics.registry.register(Box::new(l.dropped.clone()));
                let _ = metrics.registry.register(Box::new(l.written.clone()));
                Some(l)
            }
            None => None,
        };
        let overview =
            crate::overview::Overview::new(self.topo.clone(), cache.clone(), backends.clone(), log);
        tokio::spawn(
            overview
                .clone()
                .measure_loop(std::time::Duration::from_secs(5), shutdown_rx.clone()),
        );
        backends.metrics.register(&metrics.registry);
        let tls = match &self.cfg.tls {
            Some(t) => Some(
                super::tls::acceptor(t)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let plans = crate::planner::cache::PlanCache::default();
        plans.register(&metrics.registry);
        let shared = Arc::new(Shared {
            overview: overview.clone(),
            plans,
            results: results.clone(),
            shadow: shadow.clone(),
            metrics: metrics.clone(),
            engine: {
                let mut e = Engine::new(cache.clone(), backends.clone());
                e.set_cutover_hold(
                    std::time::Duration::from_millis(self.cfg.cutover_hold_ms),
                    self.cfg.max_held_writes,
                );
                e.set_multi_shard_lock_wait(self.cfg.multi_shard_lock_wait_s);
                e.set_max_gather_rows(self.cfg.max_gather_rows);
                e.move_metrics().register(&metrics.registry);
                e
            },
            next_id: AtomicU32::new(1),
            topo: self.topo.clone(),
            tls,
            failed_logins: Default::default(),
            cfg: self.cfg,
        });
        let watcher = tokio::spawn(cache.clone().run(self.topo.clone(), shutdown_rx.clone()));
        let registration = tokio::spawn(register(
            self.topo.clone(),
            cache.clone(),
            tessera_topo::RouterRegistration {
                id: format!("router-{}-{}", addr.port(), std::process::id()),
                listen: addr.to_string(),
                admin: admin_addr.map(|a| a.to_string()),
                epochs: Default::default(),
                topo_connected: false,
            },
            shutdown_rx.clone(),
        ));
        let admin_task = admin.map(|l| {
            let state = crate::admin::AdminState {
                results: results.clone(),
                shadow: shadow.clone(),
                metrics: metrics.clone(),
                cache: cache.clone(),
                overview: overview.clone(),
                listen: addr,
                id: format!("router-{}", addr.port()),
                token: admin_token.clone(),
            };
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                let app = crate::admin::router(state);
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await;
            })
        });
        let task = tokio::spawn(async move {
            accept_loop(listener, shared, shutdown_rx, watcher, backends).await;
            let _ = registration.await;
            if let Some(t) = admin_task {
                let _ = t.await;
            }
        });
        tracing::info!(%addr, admin = ?admin_addr, "router listening");
        Ok(RouterHandle {
            addr,
            admin_addr,
            metrics,
            cache,
            shutdown: shutdown_tx,
            task,
        })
    }
}

/// How long a router's registration outlives it (ms).
pub(super) const REGISTRATION_TTL_MS: u64 = 10_000;

/// Keeps the router registered in topology under a lease, with the epochs it serves, until
/// shutdown; then revokes the lease so the registration goes at once.
pub(super) async fn register(
    topo: Topo,
    cache: Arc<TopologyCache>,
    mut me: tessera_topo::RouterRegistration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lease: Option<i64> = None;
    let mut changed = cache.subscribe();
    let mut renewed_at: Option<std::time::Instant> = None;
    loop {
        let st = cache.status();
        me.epochs = st.epochs.clone();
        me.topo_connected = st.connected;
        let step = async {
            let id = match lease {
                Some(id) => {
                    topo.store().keep_alive(id).await?;
                    id
                }
                None => topo.store().grant_lease(REGISTRATION_TTL_MS).await?,
            };
            lease = Some(id);
            topo.register_router(&me, id).await
        };
        match step.await {
            Ok(()) => {
                renewed_at = Some(std::time::Instant::now());
                cache.set_registered(true);
            }
            Err(e) => {
                tracing::debug!(error = %e, "router registration not renewed");
                lease = None;
                // The registration outlives the last renewal by the lease's TTL; past that, jobs
                // no longer wait for this router, so it must not write to moving shards.
                let lapsed = renewed_at.is_none_or(|t| {
                    t.elapsed() >= std::time::Duration::from_millis(REGISTRATION_TTL_MS * 3 / 4)
                });
                if lapsed {
                    cache.set_registered(false);
                }
            }
        }
        let served = me.epochs.clone();
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(REGISTRATION_TTL_MS / 4)) => {}
            // A new epoch is acknowledged at once: jobs wait for it.
            _ = async {
                loop {
                    if changed.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if cache.status().epochs != served {
                        return;
                    }
                }
            } => {}
            _ = shutdown.changed() => {
                if let Some(id) = lease {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), topo.store().revoke_lease(id)).await;
                }
                return;
            }
        }
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    watcher: tokio::task::JoinHandle<()>,
    backends: Arc<Backends>,
) {
    let limit = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let permit = limit.clone().try_acquire_owned();
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                // A debug-level span: off under the default filter, so polling a connection
                // does not go through the subscriber on every statement.
                let span = tracing::debug_span!("conn", id, %peer);
                conns.spawn(async move {
                    match permit {
                        Ok(_permit) => {
                            shared.metrics.accepted.with_label_values(&["accepted"]).inc();
                            shared.metrics.connections.inc();
                            handle(stream, peer, id, shared.clone(), shutdown).await;
                            shared.metrics.connections.dec();
                        }
                        Err(_) => {
                            shared.metrics.accepted.with_label_values(&["refused"]).inc();
                            refuse(stream, id).await
                        }
                    }
                }.instrument(span));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    let _ = watcher.await;
    backends.disconnect_all().await;
}

pub(super) async fn refuse(stream: TcpStream, _id: u32) {
    let mut io = PacketIo::new(stream);
    let p = resultset::err(1040, "08004", "Too many connections");
    let _ = io.write_packet(&p).await;
    io.shutdown().await;
}
