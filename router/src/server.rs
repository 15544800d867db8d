//! The router process: listener, one task per client connection, authentication, the
//! command loop, and shutdown.

use crate::backend::Backends;
use crate::config::RouterConfig;
use crate::engine::Engine;
use crate::error::SqlError;
use crate::mysql::auth;
use crate::mysql::constants::*;
use crate::mysql::handshake;
use crate::mysql::resultset;
use crate::mysql::PacketIo;
use crate::planner;
use crate::session::Session;
use crate::topology::{TopoStatus, TopologyCache};
use rand::Rng;
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

struct Shared {
    cfg: RouterConfig,
    overview: Arc<crate::overview::Overview>,
    plans: crate::planner::cache::PlanCache,
    engine: Engine,
    next_id: AtomicU32,
    metrics: Arc<crate::metrics::Metrics>,
    shadow: Arc<crate::shadow::routing::RoutingShadow>,
    results: Arc<crate::shadow::results::ResultShadow>,
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
                e.move_metrics().register(&metrics.registry);
                e
            },
            next_id: AtomicU32::new(1),
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
const REGISTRATION_TTL_MS: u64 = 10_000;

/// Keeps the router registered in topology under a lease, with the epochs it serves, until
/// shutdown; then revokes the lease so the registration goes at once.
async fn register(
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

async fn accept_loop(
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

async fn refuse(stream: TcpStream, _id: u32) {
    let mut io = PacketIo::new(stream);
    let p = resultset::err(1040, "08004", "Too many connections");
    let _ = io.write_packet(&p).await;
    io.shutdown().await;
}

fn scramble() -> [u8; 20] {
    let mut s = [0u8; 20];
    let mut rng = rand::thread_rng();
    for b in &mut s {
        // Printable, never NUL or '$', as servers send.
        *b = rng.gen_range(0x21..0x7f);
        if *b == b'$' {
            *b = b'#';
        }
    }
    s
}

/// Authenticates the client; returns its session, or `None` after sending the error.
async fn authenticate(
    io: &mut PacketIo,
    peer: SocketAddr,
    id: u32,
    shared: &Shared,
) -> std::io::Result<Option<Session>> {
    let scramble = scramble();
    let offered = shared.cfg.auth_plugin.as_str();
    io.write_packet(&handshake::greeting(
        &shared.cfg.server_version,
        id,
        &scramble,
        offered,
    ))
    .await?;
    io.flush().await?;
    let mut buf = Vec::new();
    io.read_packet(&mut buf).await?;
    let Some(resp) = handshake::parse_response(&buf) else {
        let p = resultset::err(1043, "08S01", "Bad handshake");
        io.write_packet(&p).await?;
        io.flush().await?;
        return Ok(None);
    };
    let host = peer.ip().to_string();
    let user = shared.cfg.users.iter().find(|u| u.name == resp.user);
    let mut plugin = resp
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_string());
    let mut token = resp.auth_response.clone();
    if plugin != auth::NATIVE && plugin != auth::CACHING_SHA2 {
        // Ask the client to use the plugin we offered.
        io.write_packet(&handshake::auth_switch(offered, &scramble))
            .await?;
        io.flush().await?;
        io.read_packet(&mut buf).await?;
        plugin = offered.to_string();
        token = buf.clone();
    }
    let password = user.map(|u| u.resolve_password()).unwrap_or_default();
    let ok = user.is_some() && auth::check(&plugin, password.as_bytes(), &scramble, &token);
    if !ok {
        let e = SqlError::access_denied(&resp.user, &host);
        io.write_packet(&resultset::err(e.code, e.state, &e.message))
            .await?;
        io.flush().await?;
        tracing::info!(conn = id, %peer, user = %resp.user, "access denied");
        return Ok(None);
    }
    if plugin == auth::CACHING_SHA2 {
        // fast_auth_success
        io.write_packet(&[0x01, 0x03]).await?;
    }
    let keyspace = resp
        .database
        .clone()
        .or_else(|| shared.cfg.default_keyspace.clone());
    if let Some(ks) = &resp.database {
        if shared.engine.topo.table().keyspace(ks).is_none() {
            let e = SqlError::unknown_database(ks);
            io.write_packet(&resultset::err(e.code, e.state, &e.message))
                .await?;
            io.flush().await?;
            return Ok(None);
        }
    }
    let session = Session::new(
        id,
        resp.user.clone(),
        keyspace,
        resp.capabilities & SERVER_CAPABILITIES,
    );
    io.write_packet(&resultset::ok(0, 0, session.status_flags(), 0, "", false))
        .await?;
    io.flush().await?;
    Ok(Some(session))
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    id: u32,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut io = PacketIo::new(stream);
    let mut session = match authenticate(&mut io, peer, id, &shared).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            io.shutdown().await;
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let mut buf = Vec::with_capacity(1024);
    // One shutdown future for the connection's life, not a new waiter per statement.
    let stop = shutdown.changed();
    tokio::pin!(stop);
    let mut series = SeriesCache::default();
    loop {
        io.seq = 0;
        // `biased`: the read first, without drawing a random number per statement.
        let read = tokio::select! {
            biased;
            r = io.read_packet(&mut buf) => r,
            _ = &mut stop => break,
        };
        if let Err(e) = read {
            if e.kind() == std::io::ErrorKind::InvalidData {
                tracing::info!(conn = id, %peer, error = %e, "malformed packet; closing the connection");
            }
            break;
        }
        let Some((&cmd, body)) = buf.split_first() else {
            break;
        };
        let r = match cmd {
            COM_QUIT => break,
            COM_PING => ok(&mut io, &session).await,
            COM_QUERY => {
                let sql = String::from_utf8_lossy(body);
                query(&shared, &mut session, &mut io, &sql, &mut series).await
            }
            COM_INIT_DB => {
                let db = String::from_utf8_lossy(body).trim().to_string();
                let plan = planner::Plan::Local(planner::Local::Use(db));
                shared.engine.execute(&mut session, plan, &mut io).await
            }
            COM_RESET_CONNECTION => {
                let r = shared.engine.finish_txn(&mut session, false).await;
                session.sets.clear();
                session.autocommit = true;
                session.last_insert_id = 0;
                match r {
                    Ok(()) => ok(&mut io, &session).await,
                    Err(e) => Err(e),
                }
            }
            COM_FIELD_LIST => field_list(&shared, &mut session, &mut io, body).await,
            COM_STATISTICS => {
                let s = format!("Uptime: 0  Threads: 1  Tessera router, connection {id}");
                io.write_packet(s.as_bytes())
                    .await
                    .map_err(crate::error::io_err)
            }
            COM_STMT_PREPARE => prepare(&shared, &mut session, &mut io, body).await,
            COM_STMT_EXECUTE => {
                let r = execute(&shared, &mut session, &mut io, body, &mut series).await;
                io.binary_mode = false;
                io.binary_columns = None;
                r
            }
            COM_STMT_CLOSE => {
                if let Some(id) = body.get(..4) {
                    session
                        .prepared
                        .remove(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                }
                // COM_STMT_CLOSE has no response.
                continue;
            }
            COM_STMT_SEND_LONG_DATA => {
                if body.len() >= 6 {
                    let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let param = u16::from_le_bytes([body[4], body[5]]);
                    if let Some(p) = session.prepared.get_mut(&id) {
                        p.long_data
                            .entry(param)
                            .or_default()
                            .extend_from_slice(&body[6..]);
                    }
                }
                // COM_STMT_SEND_LONG_DATA has no response.
                continue;
            }
            COM_STMT_RESET => {
                let id = body
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                match id.and_then(|id| session.prepared.get_mut(&id)) {
                    Some(p) => {
                        p.long_data.clear();
                        ok(&mut io, &session).await
                    }
                    None => Err(SqlError::new(
                        1243,
                        "HY000",
                        "Unknown prepared statement handler given to mysqld_stmt_reset",
                    )),
                }
            }
            COM_STMT_FETCH => Err(SqlError::unsupported(
                "server-side cursors (COM_STMT_FETCH)",
            )),
            COM_CHANGE_USER => Err(SqlError::new(
                1047,
                "08S01",
                "COM_CHANGE_USER is not supported yet; reconnect instead",
            )),
            other => Err(SqlError::unknown_command(other)),
        };
        if let Err(e) = r {
            shared
                .metrics
                .errors
                .with_label_values(&[e.code.to_string().as_str()])
                .inc();
            let p = resultset::err(e.code, e.state, &e.message);
            if io.write_packet(&p).await.is_err() {
                break;
            }
        }
        if io.flush().await.is_err() {
            break;
        }
    }
    // Whatever the session left open is rolled back.
    let _ = shared.engine.finish_txn(&mut session, false).await;
    io.shutdown().await;
}

async fn ok(io: &mut PacketIo, session: &Session) -> Result<(), SqlError> {
    io.write_packet(&resultset::ok(0, 0, session.status_flags(), 0, "", false))
        .await
        .map_err(crate::error::io_err)
}

/// The metric series of a connection's last statement shape, so a run of statements with the
/// same route and keyspace does not look its series up every time.
#[derive(Default)]
struct SeriesCache {
    last: Option<(
        &'static str,
        String,
        prometheus::IntCounter,
        prometheus::Histogram,
    )>,
}

impl SeriesCache {
    /// Makes `(route, ks)` the series of the statement about to run; the keyspace's name is
    /// copied only when it changes.
    fn select(&mut self, m: &crate::metrics::Metrics, route: &'static str, ks: &str) {
        if !matches!(&self.last, Some((r, k, _, _)) if *r == route && k == ks) {
            self.last = Some((
                route,
                ks.to_string(),
                m.queries.with_label_values(&[route, ks, "ok"]),
                m.latency.with_label_values(&[route]),
            ));
        }
    }

    /// The selected series: its route, keyspace, `ok` counter and latency histogram.
    fn current(
        &self,
    ) -> Option<(
        &'static str,
        &str,
        &prometheus::IntCounter,
        &prometheus::Histogram,
    )> {
        self.last
            .as_ref()
            .map(|(r, k, c, h)| (*r, k.as_str(), c, h))
    }
}

async fn query(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    sql: &str,
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    let rt = shared.engine.topo.table();
    if trimmed.len() > 9 && trimmed[..9].eq_ignore_ascii_case("VEXPLAIN ") {
        let plan = planner::plan(trimmed[9..].trim_start(), session.keyspace.as_deref(), &rt)?;
        return shared.engine.vexplain(session, plan, io).await;
    }
    let started = std::time::Instant::now();
    let (planned, fingerprint) = shared.plans.plan_keyed(
        trimmed,
        session.keyspace.as_deref(),
        session.last_insert_id,
        &rt,
    );
    let fingerprint = fingerprint.unwrap_or_else(|| "(does not tokenise)".to_string());
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            shared.overview.record(&crate::overview::Finished {
                fingerprint: &fingerprint,
                sql: trimmed,
                route: "none",
                keyspace: session.keyspace.as_deref().unwrap_or(""),
                shards: 0,
                rows: 0,
                elapsed: started.elapsed(),
                error: Some(&e.message),
            });
            let ks = session.keyspace.clone().unwrap_or_default();
            shared
                .metrics
                .queries
                .with_label_values(&["none", ks.as_str(), "error"])
                .inc();
            if rt.candidate.is_some() {
                shared.shadow.observe(trimmed, session.keyspace.as_deref());
            }
            return Err(e);
        }
    };
    let route = plan.route().as_str();
    let ks = match &plan {
        planner::Plan::Exec(e) => e.keyspace.as_deref(),
        planner::Plan::Local(_) => None,
    }
    .or(session.keyspace.as_deref())
    .unwrap_or_default();
    tracing::debug!(route = %route, keyspace = %ks, "planned");
    series.select(&shared.metrics, route, ks);
    // The result shadow: autocommit reads of a keyspace that has one, sampled.
    let spec = match &plan {
        planner::Plan::Exec(e)
            if e.kind == planner::StmtKind::Read
                && !session.in_transaction()
                && session.txn_conns.is_empty() =>
        {
            e.keyspace
                .as_ref()
                .and_then(|k| rt.result_shadows.get(k))
                .cloned()
        }
        _ => None,
    };
    if let Some(spec) = &spec {
        io.capture = shared.results.start(spec, trimmed);
    }
    let shards = match &plan {
        planner::Plan::Exec(e) => match &e.targets {
            planner::Targets::Ls { ls, .. } => ls.len(),
            planner::Targets::PerLs(v) => v.len(),
            _ => 1,
        },
        planner::Plan::Local(_) => 0,
    };
    io.rows = 0;
    let r = shared
        .engine
        .execute_planned(session, plan, io, Some(&rt))
        .await;
    if let Some(c) = io.capture.take() {
        if let (Ok(()), Some(spec)) = (&r, spec) {
            shared.results.finish(spec, trimmed.to_string(), c);
        }
    }
    if rt.candidate.is_some() {
        shared.shadow.observe(trimmed, session.keyspace.as_deref());
    }
    finished(
        shared,
        io,
        &fingerprint,
        trimmed,
        shards,
        started,
        &r,
        series,
    );
    r
}

/// Records a statement that ran (its route and keyspace are `series`' selected ones): the
/// shape statistics (and query log), the query counter and the latency histogram.
#[allow(clippy::too_many_arguments)]
fn finished(
    shared: &Shared,
    io: &PacketIo,
    fingerprint: &str,
    sql: &str,
    shards: usize,
    started: std::time::Instant,
    r: &Result<(), SqlError>,
    series: &SeriesCache,
) {
    let elapsed = started.elapsed();
    let Some((route, ks, ok, latency)) = series.current() else {
        return;
    };
    shared.overview.record(&crate::overview::Finished {
        fingerprint,
        sql,
        route,
        keyspace: ks,
        shards,
        rows: io.rows,
        elapsed,
        error: r.as_ref().err().map(|e| e.message.as_str()),
    });
    if r.is_ok() {
        ok.inc();
    } else {
        shared
            .metrics
            .queries
            .with_label_values(&[route, ks, "error"])
            .inc();
    }
    latency.observe(elapsed.as_secs_f64());
}

/// Most prepared statements a session may hold.
const MAX_PREPARED: usize = 16_382;

async fn prepare(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
) -> Result<(), SqlError> {
    let sql = String::from_utf8_lossy(body);
    let sql = sql.trim().trim_end_matches(';').trim_end().to_string();
    let markers = crate::sql::markers::markers(&sql)?;
    let (cols, backend_params) = shared.engine.describe(session, &sql).await?;
    if backend_params != 0 && usize::from(backend_params) != markers.len() {
        return Err(SqlError::router(format!(
            "parameter count mismatch: {} markers, the backend counts {backend_params}",
            markers.len()
        )));
    }
    if session.prepared.len() >= MAX_PREPARED {
        return Err(SqlError::new(
            1461,
            "42000",
            "Can't create more than max_prepared_stmt_count statements",
        ));
    }
    let id = session.next_stmt_id;
    session.next_stmt_id = session.next_stmt_id.wrapping_add(1).max(1);
    let nparams = markers.len() as u16;
    let ncols = cols.len() as u16;
    session
        .prepared
        .insert(id, crate::prepared::Prepared::new(sql, markers, ncols));
    let mut p = vec![0x00];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&ncols.to_le_bytes());
    p.extend_from_slice(&nparams.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&0u16.to_le_bytes());
    io.write_packet(&p).await.map_err(crate::error::io_err)?;
    let eof = |io: &mut PacketIo| {
        let p = if session.deprecate_eof() {
            None
        } else {
            Some(resultset::eof(session.status_flags(), 0))
        };
        let _ = io;
        p
    };
    if nparams > 0 {
        let mut b = Vec::new();
        for _ in 0..nparams {
            b.clear();
            resultset::ColumnDef::text("?").encode(&mut b);
            io.write_packet(&b).await.map_err(crate::error::io_err)?;
        }
        if let Some(e) = eof(io) {
            io.write_packet(&e).await.map_err(crate::error::io_err)?;
        }
    }
    if ncols > 0 {
        let mut b = Vec::new();
        for c in &cols {
            b.clear();
            c.encode(&mut b);
            io.write_packet(&b).await.map_err(crate::error::io_err)?;
        }
        if let Some(e) = eof(io) {
            io.write_packet(&e).await.map_err(crate::error::io_err)?;
        }
    }
    Ok(())
}

async fn execute(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    let id = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| {
            SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
        })?;
    let in_txn = session.in_transaction();
    let Some(p) = session.prepared.get_mut(&id) else {
        return Err(SqlError::new(
            1243,
            "HY000",
            format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
        ));
    };
    io.binary_mode = true;
    // A read whose route does not depend on the parameters runs as a server-side prepared
    // statement, outside transactions, result shadows (which compare text rows) and routing
    // shadows (which must see the values).
    let rt = shared.engine.topo.table();
    let forward = if in_txn || !p.long_data.is_empty() || rt.candidate.is_some() {
        None
    } else {
        p.forward_plan(&rt, session.keyspace.as_deref())
            .filter(|(e, _)| {
                e.exec()
                    .keyspace
                    .as_ref()
                    .is_none_or(|k| !rt.result_shadows.contains_key(k))
            })
            .map(|(e, fp)| (e.clone(), fp.clone()))
    };
    // The statement with its values bound as literals, once made.
    let mut bound: Option<String> = None;
    let forward = match forward {
        Some((crate::prepared::Forward::Fixed(e), fp)) => Some((e, fp, Some(p.sql.clone()))),
        Some((crate::prepared::Forward::ByShard(e), _)) => {
            let mut e = Arc::unwrap_or_clone(e);
            // Routed like literals: the bound statement's plan picks the logical shard.
            let sql = p.bind(&body[4..])?;
            let (planned, fp) = shared.plans.plan_keyed(
                &sql,
                session.keyspace.as_deref(),
                session.last_insert_id,
                &rt,
            );
            let one = match &planned {
                Ok(planner::Plan::Exec(b))
                    if b.kind == planner::StmtKind::Read
                        && b.merge.is_none()
                        && b.limit.is_none()
                        && b.keyspace == e.keyspace =>
                {
                    match &b.targets {
                        planner::Targets::Ls { ls, .. } if ls.len() == 1 => Some((ls[0], b.route)),
                        _ => None,
                    }
                }
                _ => None,
            };
            match (one, &mut e.targets) {
                (Some((l, route)), planner::Targets::Ls { ls, .. }) => {
                    *ls = vec![l];
                    e.route = route;
                    bound = Some(sql);
                    Some((Arc::new(e), fp.unwrap_or_default().into(), None))
                }
                _ => return Box::pin(query(shared, session, io, &sql, series)).await,
            }
        }
        None => None,
    };
    if let Some((e, fingerprint, text)) = forward {
        let Some(p) = session.prepared.get_mut(&id) else {
            return Err(SqlError::router("prepared statement vanished"));
        };
        let params = p.split_params(&body[4..])?;
        let types = p.param_types.clone();
        let started = std::time::Instant::now();
        let ks = e.keyspace.as_deref().or(session.keyspace.as_deref());
        series.select(&shared.metrics, e.route.as_str(), ks.unwrap_or_default());
        io.rows = 0;
        let r = shared
            .engine
            .execute_prepared(session, &e, &types, &params, io, &rt)
            .await;
        if !matches!(r, Ok(false)) {
            let r = r.map(|_| ());
            finished(
                shared,
                io,
                &fingerprint,
                text.as_deref().or(bound.as_deref()).unwrap_or_default(),
                1,
                started,
                &r,
                series,
            );
            return r;
        }
    }
    let sql = match bound {
        Some(sql) => sql,
        None => match session.prepared.get_mut(&id) {
            Some(p) => p.bind(&body[4..])?,
            None => return Err(SqlError::router("prepared statement vanished")),
        },
    };
    // Boxed: statements that run server-side do not carry a text statement's future.
    Box::pin(query(shared, session, io, &sql, series)).await
}

/// COM_FIELD_LIST: the columns of one table, as column definitions.
async fn field_list(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
) -> Result<(), SqlError> {
    let table = body.split(|b| *b == 0).next().unwrap_or_default();
    let table = String::from_utf8_lossy(table).replace('`', "``");
    let sql = format!("SELECT * FROM `{table}` LIMIT 0");
    let rt = shared.engine.topo.table();
    let plan = planner::plan(&sql, session.keyspace.as_deref(), &rt)?;
    shared.engine.field_list(session, plan, io).await
}
