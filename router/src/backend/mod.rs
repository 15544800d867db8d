//! Backend connections: per physical shard, one pool of the router's own connections for
//! clients' statements ([`wire`], used through [`conn::Conn`]) and one `mysql_async` pool for
//! the control plane and for a server whose login the router's own do not speak, created
//! when first needed and rebuilt when the shard's record changes.

pub mod conn;
pub mod error;
pub mod wire;

pub use conn::{release_lib, Conn};

use crate::config::BackendConfig;
use crate::error::SqlError;
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_topo::PhysicalShard;

/// Backend pool counters, by physical shard.
#[derive(Clone)]
pub struct PoolMetrics {
    /// Time to get a connection from a pool (a pooled one, or a new connection).
    pub acquire: prometheus::HistogramVec,
    /// Connections that could not be had (timeout or connect error).
    pub failures: prometheus::IntCounterVec,
}

impl Default for PoolMetrics {
    fn default() -> Self {
        PoolMetrics {
            acquire: prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "tessera_router_backend_acquire_seconds",
                    "Time to get a backend connection, by physical shard",
                )
                .buckets(vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
                ]),
                &["ps"],
            )
            .expect("valid metric"),
            failures: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "tessera_router_backend_acquire_failures_total",
                    "Backend connections that could not be had, by physical shard",
                ),
                &["ps"],
            )
            .expect("valid metric"),
        }
    }
}

impl PoolMetrics {
    /// Registers the counters.
    pub fn register(&self, r: &prometheus::Registry) {
        let _ = r.register(Box::new(self.acquire.clone()));
        let _ = r.register(Box::new(self.failures.clone()));
    }
}

/// One physical shard's pool.
pub struct ShardPool {
    pub name: String,
    pub addr: String,
    record: PhysicalShard,
    pool: Pool,
    /// The router's own connections (see [`conn`]).
    pub wire: Arc<wire::WirePool>,
    connect_timeout: Duration,
    /// This shard's series of [`PoolMetrics`].
    acquire: prometheus::Histogram,
    failures: prometheus::IntCounter,
}

impl ShardPool {
    /// Takes a connection from the pool.
    ///
    /// # Errors
    /// 1105 naming the shard when it cannot be reached in time.
    pub async fn get_conn(&self) -> Result<mysql_async::Conn, SqlError> {
        let mut refusals = 0;
        loop {
            // The timer is armed only for a wait, which keeps its registration off the common
            // path.
            let (got, waited) =
                waited(Box::pin(self.pool.get_conn()), Some(self.connect_timeout)).await;
            return match got {
                Ok(Ok(c)) => {
                    self.acquire.observe(waited);
                    Ok(c)
                }
                // A refused login is tried again (see `tessera_shardmove::login`).
                Ok(Err(e))
                    if tessera_shardmove::is_refused_login(&e)
                        && refusals < tessera_shardmove::REFUSED_LOGIN_RETRIES =>
                {
                    refusals += 1;
                    continue;
                }
                Ok(Err(e)) => {
                    self.failures.inc();
                    Err(SqlError::shard(&self.name, &self.addr, e))
                }
                Err(_) => {
                    self.failures.inc();
                    Err(self.busy())
                }
            };
        }
    }

    /// 1040, as MariaDB says when it has no connection to give: no backend connection to this
    /// shard could be had in time (the pool's connections are all in use, or the server does
    /// not answer).
    fn busy(&self) -> SqlError {
        SqlError::new(
            1040,
            "08004",
            format!(
                "Too many connections: no backend connection to physical shard {} ({}) within {} ms (the router's connections to it are all in use, or the server does not answer)",
                self.name,
                self.addr,
                self.connect_timeout.as_millis()
            ),
        )
    }

    /// Takes a connection from the wire pool (preferring one whose session `SET`s are `sets`),
    /// or `None` when this shard's server wants a
    /// login method the router's own connections do not speak (use [`ShardPool::get_conn`]).
    ///
    /// # Errors
    /// 1105 naming the shard when it cannot be reached in time.
    pub async fn get_wire(&self, sets: &[String]) -> Result<Option<wire::WireLease>, SqlError> {
        if !self.wire.usable() {
            return Ok(None);
        }
        // `get` bounds its own waits.
        let get = std::pin::pin!(self.wire.get(self.connect_timeout, sets));
        let (Ok(got), waited) = waited(get, None).await else {
            return Err(self.busy());
        };
        match got {
            Ok(l) => {
                self.acquire.observe(waited);
                Ok(Some(l))
            }
            Err(wire::WireError::Unsupported(m)) => {
                tracing::warn!(shard = %self.name, "single-shard connections fall back to the pool: {m}");
                Ok(None)
            }
            Err(wire::WireError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.failures.inc();
                Err(self.busy())
            }
            Err(e) => {
                self.failures.inc();
                Err(SqlError::shard(&self.name, &self.addr, e))
            }
        }
    }
}

impl ShardPool {
    /// A connection for a client's statements, with the session `SET`s `sets` in place: one
    /// of the router's own, or a `mysql_async` one where the server wants a login the router
    /// does not speak. Its pool knows the session state of one of the router's own; a
    /// `mysql_async` one must be released dirty when `sets` is not empty.
    ///
    /// # Errors
    /// 1105 naming the shard when it cannot be reached in time, or a `SET` fails.
    pub async fn get_backend(&self, sets: &[String]) -> Result<Conn, SqlError> {
        if let Some(mut lease) = self.get_wire(sets).await? {
            if let Err(e) = lease.conn.replay(sets).await {
                // (Its session state is unknown now: closed, not reused.)
                lease.clean = false;
                self.wire.put(lease);
                return Err(SqlError::shard(&self.name, &self.addr, e));
            }
            lease.clean = true;
            return Ok(Conn::Own(Box::new(conn::OwnConn::new(
                lease,
                self.wire.clone(),
            ))));
        }
        let mut c = self.get_conn().await?;
        for s in sets {
            if let Err(e) = c.query_drop(s.as_str()).await {
                release_lib(c, true).await;
                return Err(SqlError::shard(&self.name, &self.addr, e));
            }
        }
        Ok(Conn::Lib(c))
    }
}

/// Runs `get` and says how many seconds it waited: none, without reading the clock, when it
/// is ready at once (an idle connection); otherwise it is timed, and bounded by `limit`.
async fn waited<F: std::future::Future + Unpin>(
    mut get: F,
    limit: Option<Duration>,
) -> (Result<F::Output, tokio::time::error::Elapsed>, f64) {
    use futures_util::FutureExt;
    if let Some(r) = (&mut get).now_or_never() {
        return (Ok(r), 0.0);
    }
    let started = std::time::Instant::now();
    let r = match limit {
        Some(d) => tokio::time::timeout(d, get).await,
        None => Ok(get.await),
    };
    (r, started.elapsed().as_secs_f64())
}

/// Every physical shard's pool.
pub struct Backends {
    pub metrics: PoolMetrics,
    cfg: BackendConfig,
    pools: Mutex<crate::FastMap<String, Arc<ShardPool>>>,
}

impl Backends {
    pub fn new(cfg: BackendConfig) -> Self {
        Backends {
            metrics: PoolMetrics::default(),
            cfg,
            pools: Mutex::default(),
        }
    }

    /// The pool of physical shard `ps` as the routing table `rt` names it.
    ///
    /// # Errors
    /// 1105 when the shard is not registered.
    pub fn pool_of(
        &self,
        rt: &crate::topology::RoutingTable,
        ps: &str,
    ) -> Result<Arc<ShardPool>, SqlError> {
        let rec = rt
            .shards
            .get(ps)
            .ok_or_else(|| SqlError::router(format!("physical shard {ps} is not registered")))?;
        Ok(self.pool(rec))
    }

    /// The pool a session uses on `ps`: an admin's (whose statements may act on a whole
    /// server) has the control account's connections where the shard has a data account of
    /// its own; everyone else's, the data account's.
    ///
    /// # Errors
    /// 1105 when the shard is not registered.
    pub fn pool_for(
        &self,
        rt: &crate::topology::RoutingTable,
        ps: &str,
        admin: bool,
    ) -> Result<Arc<ShardPool>, SqlError> {
        let rec = rt
            .shards
            .get(ps)
            .ok_or_else(|| SqlError::router(format!("physical shard {ps} is not registered")))?;
        Ok(self.pool_as(rec, admin && rec.data_account.is_some()))
    }

    /// Returns the pool of `ps` with the data account, creating (or re-creating, if the
    /// record changed) it.
    pub fn pool(&self, ps: &PhysicalShard) -> Arc<ShardPool> {
        self.pool_as(ps, false)
    }

    /// Returns the pool of `ps` with the control account (`control`) or the data account.
    fn pool_as(&self, ps: &PhysicalShard, control: bool) -> Arc<ShardPool> {
        let key = if control {
            control_key(&ps.name)
        } else {
            ps.name.clone()
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pools.get(&key) {
            if p.record == *ps {
                return p.clone();
            }
        }
        // Statements prepared for parameterised queries are cached per connection and closed
        // when the cache evicts them: without a cache they are never closed, and pile up on
        // pooled connections until the server's `max_prepared_stmt_count` refuses everyone.
        // Applications are served with the data account (the control account when the record
        // names none); admins with the control account.
        let (user, password) = if control {
            (ps.user.clone(), ps.resolve_password())
        } else {
            ps.data_credentials()
        };
        let opts = tessera_shardmove::server_opts(
            &ps.host,
            ps.port,
            &user,
            password.clone(),
            ps.tls_ca.as_deref(),
        )
        .tcp_nodelay(true)
        .stmt_cache_size(32)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(
                    PoolConstraints::new(0, self.cfg.pool_max.max(1)).unwrap_or_default(),
                )
                .with_reset_connection(false)
                .with_inactive_connection_ttl(Duration::from_secs(60)),
        );
        let p = Arc::new(ShardPool {
            name: ps.name.clone(),
            addr: ps.address(),
            record: ps.clone(),
            pool: Pool::new(opts),
            wire: Arc::new({
                let tls = ps.tls_ca.as_deref().map(wire::tls_config);
                let w = wire::WirePool::new(
                    &ps.host,
                    ps.port,
                    &user,
                    password,
                    self.cfg.pool_max,
                    tls.clone().and_then(Result::ok),
                );
                // A CA that does not parse: never plaintext instead; statements take the
                // other path, whose connect reports the CA's error.
                if let Some(Err(e)) = tls {
                    tracing::error!(shard = %ps.name, error = %e, "bad tls_ca");
                    w.disable();
                }
                w
            }),
            connect_timeout: Duration::from_millis(self.cfg.connect_timeout_ms),
            acquire: self.metrics.acquire.with_label_values(&[ps.name.as_str()]),
            failures: self.metrics.failures.with_label_values(&[ps.name.as_str()]),
        });
        if let Some(old) = pools.insert(key, p.clone()) {
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    let _ = old.pool.clone().disconnect().await;
                });
            }
        }
        p
    }

    /// Drops physical shard `ps`'s pools: idle connections close, those in use close when
    /// given back, and new ones are made — with the server's global variables as they are
    /// now (after an admin's `SET GLOBAL`, as new sessions on one server would see them).
    pub fn renew(&self, ps: &str) {
        let old: Vec<Arc<ShardPool>> = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            [pools.remove(ps), pools.remove(&control_key(ps))]
                .into_iter()
                .flatten()
                .collect()
        };
        for old in old {
            old.wire.clear();
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    let _ = old.pool.clone().disconnect().await;
                });
            }
        }
    }

    /// Closes every pool.
    pub async fn disconnect_all(&self) {
        let pools: Vec<Arc<ShardPool>> = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        for p in pools {
            p.wire.clear();
            let _ = p.pool.clone().disconnect().await;
        }
    }
}

/// The key of `ps`'s control-account pool (a name no physical shard has).
fn control_key(ps: &str) -> String {
    format!("{ps}\0control")
}

/// Connection options for physical shard `ps` with its control account (see
/// `tessera_shardmove::server_opts`); routers' pools use the data account instead.
pub fn opts_for(ps: &PhysicalShard) -> OptsBuilder {
    tessera_shardmove::server_opts(
        &ps.host,
        ps.port,
        &ps.user,
        ps.resolve_password(),
        ps.tls_ca.as_deref(),
    )
}

/// Creates the schemas of `keyspace` on its physical shards: one per logical shard where it
/// lives, and (for a sharded keyspace) the reference schema on every physical shard that
/// holds any of its logical shards.
///
/// # Errors
/// The first failure, naming the shard.
pub async fn create_keyspace_schemas(
    rt: &crate::topology::RoutingTable,
    keyspace: &str,
    backends: &Backends,
) -> Result<(), SqlError> {
    let ks = rt
        .keyspace(keyspace)
        .ok_or_else(|| SqlError::unknown_database(keyspace))?;
    let mut per_ps: HashMap<String, Vec<String>> = HashMap::new();
    for (ls, ps) in ks.placement.iter().enumerate() {
        per_ps
            .entry(ps.clone())
            .or_default()
            .push(ks.schema(ls as u32));
    }
    if ks.sharded {
        for ps in ks.physical_shards() {
            per_ps.entry(ps).or_default().push(ks.reference_schema());
        }
    }
    for (ps, schemas) in per_ps {
        let pool = backends.pool_of(rt, &ps)?;
        let mut conn = pool.get_conn().await?;
        for s in schemas {
            conn.query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                crate::sql::quote_ident(&s)
            ))
            .await
            .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
        }
    }
    Ok(())
}

/// Returns a connection to its pool, resetting its session state first if needed (see
/// [`Conn::release`]).
pub async fn release(conn: Conn, dirty: bool) {
    conn.release(dirty).await;
}

/// Grants `ps`'s data account (when its record names one) what applications need on the
/// schemas of each `(keyspace, sharded)`: every privilege a database can hold, on those
/// schemas only, without GRANT OPTION. Done with the control account, to every host the data
/// user is defined for.
///
/// # Errors
/// A server that cannot be reached, a data user that does not exist there, a GRANT refused:
/// a message naming the shard.
pub async fn grant_data_account(
    ps: &PhysicalShard,
    keyspaces: &[(&str, bool)],
) -> Result<(), String> {
    data_account_privileges(ps, keyspaces, true).await
}

/// Takes back what [`grant_data_account`] gave on the schemas of each `(keyspace, sharded)`
/// (a keyspace dropped); a grant that is not there is no error.
///
/// # Errors
/// As [`grant_data_account`].
pub async fn revoke_data_account(
    ps: &PhysicalShard,
    keyspaces: &[(&str, bool)],
) -> Result<(), String> {
    data_account_privileges(ps, keyspaces, false).await
}

/// `ER_NONEXISTING_GRANT`: a REVOKE of a grant that is not there.
const NONEXISTING_GRANT: u16 = 1141;

async fn data_account_privileges(
    ps: &PhysicalShard,
    keyspaces: &[(&str, bool)],
    grant: bool,
) -> Result<(), String> {
    let Some(data) = &ps.data_account else {
        return Ok(());
    };
    if keyspaces.is_empty() {
        return Ok(());
    }
    let opts = opts_for(ps);
    let mut conn = tessera_shardmove::login(|| mysql_async::Conn::new(opts.clone()))
        .await
        .map_err(|e| {
            format!(
                "connecting to {} ({}) for grants: {e}",
                ps.name,
                ps.address()
            )
        })?;
    let r = async {
        let hosts: Vec<String> = conn
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (data.user.as_str(),))
            .await
            .map_err(|e| format!("looking up the data account {} on {}: {e}", data.user, ps.name))?;
        if hosts.is_empty() {
            return Err(format!(
                "the data account {} does not exist on {} ({}): create it there (CREATE USER '{}'@'…' IDENTIFIED BY …, no privileges needed), or register the shard without --data-user",
                data.user,
                ps.name,
                ps.address(),
                data.user
            ));
        }
        let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
        for (ks, sharded) in keyspaces {
            for pattern in tessera_topo::records::grant_patterns(ks, *sharded) {
                for host in &hosts {
                    let (verb, to) = if grant { ("GRANT", "TO") } else { ("REVOKE", "FROM") };
                    let r = conn
                        .query_drop(format!(
                            "{verb} ALL PRIVILEGES ON {}.* {to} '{}'@'{}'",
                            crate::sql::quote_ident(&pattern),
                            quote(&data.user),
                            quote(host)
                        ))
                        .await;
                    match r {
                        Err(mysql_async::Error::Server(e))
                            if !grant && e.code == NONEXISTING_GRANT => {}
                        r => r.map_err(|e| {
                            format!(
                                "{} {} on {pattern} on {} (the control account {} needs GRANT OPTION): {e}",
                                if grant { "granting" } else { "revoking" },
                                data.user,
                                ps.name,
                                ps.user
                            )
                        })?,
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    let _ = conn.disconnect().await;
    r
}
