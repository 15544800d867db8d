//! The Tessera router: the data plane. Applications connect to it over the MySQL protocol
//! as if it were one database; it sends each statement to the logical shards that hold its
//! rows.
//!
//! # Layout
//!
//! In layers along a statement's path, bottom first; each imports only layers below it
//! (`tests/layering.rs` checks it, `docs/architecture.md` draws it):
//!
//! - [`wire`], [`error`], [`vindex`], [`metrics`]: the MySQL protocol (packets, handshake and
//!   authentication, result sets); client-facing errors; shard-key value → keyspace id →
//!   logical shard; Prometheus metrics.
//! - [`sql`], [`config`]: the statement as bytes (comments, edits, shapes, fingerprints,
//!   markers); the router's YAML configuration.
//! - [`topology`]: the routing table, cached and kept current by a topology watch.
//! - [`planner`]: statement → plan, pure; planner tests are data files in
//!   `planner/testdata/`.
//! - [`backend`]: connection pools per physical shard, the router's own connections.
//! - [`session`]: what a client connection carries between statements (keyspace, `SET`s,
//!   transaction and its pinned connections, prepared statements).
//! - [`engine`]: runs plans on backend connections and streams results to the client.
//! - [`shadow`], [`overview`]: the shadow verifier; query statistics and the query log.
//! - [`admin`]: the admin HTTP endpoint (`/status`, `/metrics`).
//! - [`server`]: the listener, connection tasks, authentication, the command loop, shutdown.
//!
//! A new statement kind goes into `planner/` (with a case in `testdata/route_cases.yaml`)
//! and, if it needs its own execution, into `engine/`.

pub mod admin;
pub mod backend;
pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod overview;
pub mod planner;
pub mod server;
pub mod session;
pub mod shadow;
pub mod sql;
pub mod topology;
pub mod vindex;
pub mod wire;

pub use config::RouterConfig;
pub use error::SqlError;
pub use server::{Router, RouterHandle};

/// A hash map for the per-statement lookups (plan cache, shape statistics, routing table,
/// backend pools): a fast seeded hash instead of SipHash, whose cost showed in profiles.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
