//! The replicated topology store: a [`crate::Store`] kept by a Raft group (raft-rs) of 1, 3
//! or 5 nodes, in the spirit of etcd.
//!
//! # Layout
//!
//! - [`config`]: [`RaftConfig`], what a node needs to start, with `validate()`.
//! - [`handle`]: [`start`], [`start_on`] and [`serve_single`], and [`RaftNodeHandle`], which
//!   owns a running node: driver thread, peer transport and HTTP server.
//! - [`node`]: the driver around raft-rs's `RawNode`, with the one `on_ready`. Committed
//!   entries are applied through [`crate::kv::KvCore::apply`], the state machine every store
//!   shares.
//! - [`proposal`]: what a log entry carries, and the request id that finds its proposer.
//! - [`lease`]: lease deadlines, kept by the leader outside the replicated state.
//! - [`storage`]: the Raft log, hard state and snapshot on disk; [`wal`]: their checksummed
//!   record format.
//! - [`transport`]: peer messages as HTTP POSTs of protobuf batches to `/raft/message`.
//! - [`store`]: [`RaftStore`], the [`crate::Store`] a node serves (linearizable reads by
//!   ReadIndex, stale reads on request) and the membership API; [`members`]: the same over
//!   HTTP (`/v1/members`).
//! - [`logger`]: raft-rs's `slog` records forwarded to `tracing`.
//!
//! `docs/topology.md` describes the HTTP API, the peer protocol, the files and operations.

pub mod config;
pub mod handle;
pub mod lease;
pub mod logger;
pub mod members;
pub mod node;
pub mod proposal;
pub mod storage;
pub mod store;
pub mod transport;
pub mod wal;

#[cfg(test)]
mod sim;

pub use config::RaftConfig;
pub use handle::{serve_single, start, start_on, RaftNodeHandle};
pub use node::NodeStatus;
pub use store::RaftStore;
