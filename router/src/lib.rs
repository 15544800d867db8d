//! The Tessera router: the data plane. Applications connect to it over the MySQL protocol
//! as if it were one database; it sends each statement to the logical shards that hold its
//! rows.
//!
//! # Layout
//!
//! - [`mysql`]: the wire protocol (packets, handshake and authentication, result sets).
//! - [`planner`]: parse (sqlparser, MySQL dialect), decide the route, rewrite table names
//!   to logical-shard schemas. Planner tests are data files in `planner/testdata/`.
//! - [`vindex`]: shard-key value → keyspace id → logical shard.
//! - [`engine`]: runs plans on backend connections and streams results to the client.
//! - [`backend`]: one connection pool per physical shard.
//! - [`session`]: what a client connection carries between statements (keyspace, `SET`s,
//!   transaction and its pinned connections).
//! - [`shadow`]: the shadow verifier (the routing shadow plans every statement again
//!   against a candidate vschema and reports by query fingerprint).
//! - [`topology`]: the routing table, cached and kept current by a topology watch.
//! - [`server`]: the listener, connection tasks, authentication and shutdown.
//! - [`admin`], [`metrics`]: the admin HTTP endpoint (`/status`, `/metrics`).
//! - [`config`]: the router's YAML configuration.
//! - [`error`]: client-facing errors with MySQL error numbers.
//!
//! A new statement shape goes into `planner/` (with a case in `testdata/route_cases.yaml`)
//! and, if it needs merging, into `engine/`.

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
