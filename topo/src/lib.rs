//! Tessera's topology: the records that say where every logical shard lives, and the
//! store that keeps them.
//!
//! # Layout
//!
//! - [`store`]: the [`Store`] trait — a versioned key-value store with revisions,
//!   compare-and-set, prefix listing, prefix watches and leases. Every backend implements it.
//! - [`kv`]: [`kv::KvState`], the deterministic state machine every store applies writes to
//!   (the in-memory store, the file store, and the replicated store all share it).
//! - [`memory`]: [`MemoryStore`], for unit tests and embedded use.
//! - [`file`](mod@file): [`FileStore`], a single-node store persisted to one fsynced file.
//! - [`raft`]: [`RaftStore`], the store replicated with Raft (raft-rs): log, snapshots,
//!   peer transport, membership, and [`raft::start`], which runs one node.
//! - [`http`]: the HTTP/JSON API that serves any [`Store`], and [`HttpStore`], its client with
//!   endpoint failover.
//! - [`vschema`]: the vschema model read from YAML, with validation that names the bad field.
//! - [`records`]: typed records (keyspaces, physical shards, placement with epoch) and
//!   [`Topo`], the typed view over a [`Store`] that routers and jobs use.
//! - [`placement`]: where logical shards go on a ring of physical shards.
//! - [`tls`]: TLS for the topology API and between peers (rustls), and the helpers the
//!   router's own TLS is built with.
//! - [`conformance`]: one behaviour suite that every [`Store`] implementation must pass.
//!
//! New storage backends go beside `memory.rs` and `file.rs`, implement [`Store`], and add
//! themselves to the conformance tests.

pub mod conformance;
pub mod error;
pub mod file;
pub mod http;
pub mod kv;
pub mod memory;
pub mod placement;
pub mod raft;
pub mod records;
pub mod store;
pub mod tls;
pub mod token;
pub mod vschema;

pub use error::TopoError;
pub use file::FileStore;
pub use http::client::HttpStore;
pub use memory::MemoryStore;
pub use raft::{RaftConfig, RaftNodeHandle, RaftStore};
pub use records::{
    AuditEntry, CopyCheckpoint, DataAccount, Job, Keyspace, LogicalShardState, MoveTablesJob,
    MoveTablesProgress, PhysicalShard, Placement, PlacementEntry, ResultShadowSpec,
    RouterRegistration, TableProgress, Topo, TopoLock, TopoSnapshot, VerifyCounts, VerifyReport,
};
pub use store::{Condition, KeyValue, Store, WatchEvent, WatchEventKind, Watcher};
pub use vschema::{
    KeyType, LookupSpec, MoveState, MovedTable, TableKind, TableSpec, VSchema, VindexKind,
};
