//! The engine itself: what every connection of a router shares to run plans, and the
//! backend connection a statement borrows.

use crate::backend::Backends;
use crate::backend::Conn;
use crate::topology::TopologyCache;
use std::sync::Arc;

/// Runs plans. Shared by every connection of a router.
pub struct Engine {
    pub topo: Arc<TopologyCache>,
    pub backends: Arc<Backends>,
    /// Blocks of ids taken from sequences: `(keyspace, table) -> [next, end)`.
    pub sequences: tokio::sync::Mutex<std::collections::HashMap<(String, String), (u64, u64)>>,
    /// Dual-writes of moving logical shards.
    pub(super) moves: super::moves::Moves,
    /// Bound on each lock wait of a transaction spanning physical shards (s; 0: none).
    pub(super) multi_shard_lock_wait_s: u64,
    /// Unique keys of sharded tables, for writes that resolve conflicts on them.
    pub(super) unique_keys: super::unique_keys::UniqueKeyCache,
    /// The router's client sessions (`SHOW PROCESSLIST`, `KILL`).
    pub sessions: Arc<crate::session::registry::Registry>,
    /// Column lists of sharded and reference tables (`INSERT … VALUES` without one).
    pub columns: super::columns::ColumnCache,
    /// Most rows a gathered read may copy (`max_gather_rows`).
    pub(super) max_gather_rows: u64,
}

/// A backend connection borrowed for one statement.
pub(super) struct Lease {
    pub(super) ps: String,
    pub(super) conn: Conn,
    /// Pinned by the session's transaction: goes back to the session, not the pool.
    pub(super) pinned: bool,
    /// Session `SET`s were replayed on it: reset before it returns to the pool.
    pub(super) dirty: bool,
    /// The session's reserved connection: goes back to the session, not the pool.
    pub(super) reserved: bool,
}

/// What a write did.
#[derive(Default)]
pub(super) struct WriteResult {
    pub(super) affected: u64,
    pub(super) last_insert_id: u64,
    pub(super) warnings: u16,
    /// Each statement's info text, affected rows and warnings.
    pub(super) infos: Vec<(String, u64, u16)>,
    /// The conditions its statements left (`SHOW WARNINGS`), when it had warnings and they
    /// were read.
    pub(super) conditions: Option<Vec<(String, u16, String)>>,
    /// The "no index used" status bits of its statements, gathered.
    pub(super) query_status: u16,
}

impl Engine {
    pub fn new(topo: Arc<TopologyCache>, backends: Arc<Backends>) -> Self {
        Engine {
            moves: super::moves::Moves::new(topo.clone(), backends.clone()),
            multi_shard_lock_wait_s: 2,
            max_gather_rows: 200_000,
            unique_keys: Default::default(),
            sessions: Default::default(),
            columns: Default::default(),
            topo,
            backends,
            sequences: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Sets how long a write waits for a cutover before it fails with a retriable error, and
    /// how many writes may wait at once.
    pub fn set_cutover_hold(&mut self, hold: std::time::Duration, max_held: usize) {
        self.moves.set_hold(hold, max_held);
    }

    /// The counters of the router's part in moves.
    pub fn move_metrics(&self) -> &super::moves::MoveMetrics {
        &self.moves.metrics
    }

    /// Sets the most rows a gathered read may copy.
    pub fn set_max_gather_rows(&mut self, rows: u64) {
        self.max_gather_rows = rows;
    }

    /// Sets the bound on lock waits of transactions spanning physical shards (0: none).
    pub fn set_multi_shard_lock_wait(&mut self, seconds: u64) {
        self.multi_shard_lock_wait_s = seconds;
    }
}

/// `statement` after `prefix` (`SET STATEMENT vars FOR`), if there is one.
pub(super) fn prefixed(prefix: &[u8], statement: Vec<u8>) -> Vec<u8> {
    if prefix.is_empty() {
        return statement;
    }
    let mut b = prefix.to_vec();
    b.extend_from_slice(&statement);
    b
}

/// Statements to run, by physical shard: as bytes, for literals that are the client's own.
pub(super) type Work = std::collections::BTreeMap<String, Vec<Vec<u8>>>;
