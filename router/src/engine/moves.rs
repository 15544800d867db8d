//! The router's part in moving a logical shard: holding writes during a cutover, refusing
//! writes to moving shards when the router's registration has lapsed, and copying committed
//! writes to the move's other side (dual-write) before they are acknowledged.

use crate::backend::Backends;
use crate::error::SqlError;
use crate::planner::{Exec, StmtKind, Targets};
use crate::session::Session;
use crate::topology::TopologyCache;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_shardmove::{self as shardmove, Copier, TableMeta};
use tessera_topo::LogicalShardState;
use tokio::sync::Semaphore;

/// The error a held write gets when the hold bound passes (and a fenced copy's error): the
/// transaction is retried and then goes where the logical shard lives.
pub const RETRY_CODE: u16 = 1205;

type MetaKey = (String, String, u64);
type CopyLocks = HashMap<(String, u32), Arc<tokio::sync::Mutex<()>>>;

/// What the router's part in moves counts (registered with the router's metrics).
pub struct MoveMetrics {
    /// Dual-write copies after commits, by outcome (`ok`, `error`).
    pub copies: prometheus::IntCounterVec,
    /// Writes that met a move: `released` (held through a cutover, then run), `timeout` and
    /// `overflow` (held past the bound, or too many held: 1205), `unregistered` (refused:
    /// the router's registration lapsed).
    pub held: prometheus::IntCounterVec,
}

impl MoveMetrics {
    fn new() -> Self {
        MoveMetrics {
            copies: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "tessera_router_dualwrite_copies_total",
                    "Dual-write copies of moving logical shards after commits, by outcome",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            held: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "tessera_router_cutover_writes_total",
                    "Writes that waited for a cutover or were refused by a move, by outcome",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
        }
    }

    /// Registers the counters.
    pub fn register(&self, r: &prometheus::Registry) {
        let _ = r.register(Box::new(self.copies.clone()));
        let _ = r.register(Box::new(self.held.clone()));
    }
}

/// Dual-write and cutover state shared by a router's connections.
pub struct Moves {
    pub metrics: MoveMetrics,
    topo: Arc<TopologyCache>,
    backends: Arc<Backends>,
    hold: Duration,
    held: Arc<Semaphore>,
    /// One copier per logical shard at a time; later ones find less to do.
    locks: Mutex<CopyLocks>,
    /// Table metadata per (physical shard, schema, epoch).
    meta: Mutex<HashMap<MetaKey, Arc<Vec<TableMeta>>>>,
}

impl Moves {
    pub fn new(topo: Arc<TopologyCache>, backends: Arc<Backends>) -> Self {
        Moves {
            metrics: MoveMetrics::new(),
            topo,
            backends,
            hold: Duration::from_secs(3),
            held: Arc::new(Semaphore::new(10_000)),
            locks: Mutex::default(),
            meta: Mutex::default(),
        }
    }

    /// Sets the hold bound and the most writes held at once.
    pub fn set_hold(&mut self, hold: Duration, max_held: usize) {
        self.hold = hold;
        self.held = Arc::new(Semaphore::new(max_held.max(1)));
    }

    /// Checks a plan against moves in progress before it runs. Writes to a logical shard
    /// being cut over wait for the flip (unless the session's transaction already wrote it:
    /// the cutover waits for that transaction instead); schema changes to a keyspace with
    /// moves are refused; writes to moving shards are refused when the registration lapsed.
    /// Returns the logical shards the statement writes.
    ///
    /// # Errors
    /// 1205 (retriable) when the hold bound passes or too many writes are held; 1105 for DDL.
    pub async fn guard(&self, session: &Session, e: &Exec) -> Result<Vec<(String, u32)>, SqlError> {
        let Some(k) = e.keyspace.as_deref() else {
            return Ok(Vec::new());
        };
        if e.kind == StmtKind::Read {
            return Ok(Vec::new());
        }
        let lss: Vec<u32> = match &e.targets {
            Targets::Ls { ls, .. } => ls.clone(),
            Targets::PerLs(v) => v.iter().map(|(l, _)| *l).collect(),
            Targets::Verbatim { .. } => vec![0],
            _ => Vec::new(),
        };
        let mut changed = self.topo.subscribe();
        let deadline = tokio::time::Instant::now() + self.hold;
        let mut permit = None;
        loop {
            let rt = self.topo.table();
            let Some(ks) = rt.keyspace(k) else {
                return Ok(Vec::new());
            };
            if !ks.moving() {
                if permit.is_some() {
                    self.metrics.held.with_label_values(&["released"]).inc();
                }
                break;
            }
            if e.kind == StmtKind::Ddl {
                return Err(SqlError::router(format!(
                    "schema changes to keyspace {k} are refused while its logical shards move; finish or abort the reshard job first"
                )));
            }
            // Reference writes wait while a cutover brings a new physical shard into the
            // keyspace (the rebalancer copies the reference tables to it meanwhile); writes to
            // a logical shard being cut over wait for the flip.
            let reason = if e.kind == StmtKind::Write
                && matches!(e.targets, Targets::Reference { .. })
            {
                let joining = ks.moves.iter().any(|(st, peer)| {
                    *st == LogicalShardState::Cutover
                        && peer.as_ref().is_some_and(|p| !ks.placement.contains(p))
                });
                joining.then(|| {
                    format!("reference tables of {k} are being copied to a new physical shard")
                })
            } else {
                let moving: Vec<u32> = lss
                    .iter()
                    .copied()
                    .filter(|l| ks.move_state(*l).0 != LogicalShardState::Serving)
                    .collect();
                if !moving.is_empty() && !self.topo.status().registered {
                    self.metrics.held.with_label_values(&["unregistered"]).inc();
                    return Err(SqlError::new(
                        RETRY_CODE,
                        "HY000",
                        format!(
                            "Lock wait timeout exceeded; this router lost its topology registration, so it does not write to moving logical shards {moving:?} of {k}; try restarting transaction"
                        ),
                    ));
                }
                let held: Vec<u32> = moving
                    .iter()
                    .copied()
                    .filter(|l| {
                        ks.move_state(*l).0 == LogicalShardState::Cutover
                            && !session.txn_ls.contains(&(k.to_string(), *l))
                    })
                    .collect();
                (!held.is_empty())
                    .then(|| format!("logical shards {held:?} of {k} are being cut over"))
            };
            let Some(reason) = reason else {
                if permit.is_some() {
                    self.metrics.held.with_label_values(&["released"]).inc();
                }
                break;
            };
            if permit.is_none() {
                permit = Some(self.held.clone().try_acquire_owned().map_err(|_| {
                    self.metrics.held.with_label_values(&["overflow"]).inc();
                    SqlError::new(
                        RETRY_CODE,
                        "HY000",
                        format!("Lock wait timeout exceeded; too many writes are waiting for the cutover of {k}; try restarting transaction"),
                    )
                })?);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    self.metrics.held.with_label_values(&["timeout"]).inc();
                    return Err(SqlError::new(
                        RETRY_CODE,
                        "HY000",
                        format!("Lock wait timeout exceeded; {reason}; try restarting transaction"),
                    ));
                }
            }
        }
        if e.kind != StmtKind::Write {
            return Ok(Vec::new());
        }
        Ok(lss.into_iter().map(|l| (k.to_string(), l)).collect())
    }

    /// Copies the journalled rows of the given logical shards to their move's other side,
    /// where a move is in progress. Failures are logged: the client's write stands, and the
    /// rebalancer's own journal drain copies what this missed.
    pub async fn copy(&self, lss: &[(String, u32)]) {
        let rt = self.topo.table();
        for (k, ls) in lss {
            let Some(ks) = rt.keyspace(k) else { continue };
            let (st, peer) = ks.move_state(*ls);
            let Some(peer) = peer else { continue };
            if !st.copies() {
                continue;
            }
            let Some(ps) = ks.placement.get(*ls as usize) else {
                continue;
            };
            let schema = ks.schema(*ls);
            let r = self
                .copy_one(&rt, k, *ls, ps, peer, &schema, ks.epoch)
                .await;
            self.metrics
                .copies
                .with_label_values(&[if r.is_ok() { "ok" } else { "error" }])
                .inc();
            if let Err(e) = r {
                tracing::warn!(keyspace = %k, ls, from = %ps, to = %peer, error = %e, "dual-write copy failed; the job's journal drain will copy it");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_one(
        &self,
        rt: &crate::topology::RoutingTable,
        k: &str,
        ls: u32,
        ps: &str,
        peer: &str,
        schema: &str,
        epoch: u64,
    ) -> Result<(), String> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((k.to_string(), ls))
            .or_default()
            .clone();
        let _g = lock.lock().await;
        let src_rec = rt.shards.get(ps).ok_or("source not registered")?;
        let dst_rec = rt.shards.get(peer).ok_or("target not registered")?;
        let mut s = self
            .backends
            .pool(src_rec)
            .get_conn()
            .await
            .map_err(|e| e.message)?;
        let mut d = self
            .backends
            .pool(dst_rec)
            .get_conn()
            .await
            .map_err(|e| e.message)?;
        let r = async {
            s.query_drop(shardmove::COPY_SESSION)
                .await
                .map_err(|e| e.to_string())?;
            d.query_drop(shardmove::COPY_SESSION)
                .await
                .map_err(|e| e.to_string())?;
            let key = (ps.to_string(), schema.to_string(), epoch);
            let cached = self
                .meta
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            let tables = match cached {
                Some(t) => t,
                None => {
                    let t = Arc::new(
                        shardmove::load_tables(&mut s, schema)
                            .await
                            .map_err(|e| format!("{e:#}"))?,
                    );
                    let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
                    m.retain(|(_, _, ep), _| *ep + 2 >= epoch);
                    m.insert(key, t.clone());
                    t
                }
            };
            let mut cp = Copier {
                src: &mut s,
                dst: &mut d,
                src_schema: schema,
                dst_schema: schema,
            };
            cp.drain_all(&tables, 1)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        }
        .await;
        crate::backend::release_lib(s, true).await;
        crate::backend::release_lib(d, true).await;
        r
    }
}
