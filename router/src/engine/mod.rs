//! The executor: runs a [`crate::planner::Plan`] on backend connections and streams the answer to the
//! client.
//!
//! - One target: the backend's rows are re-framed and written as they arrive; memory stays
//!   flat whatever the result size. Outside a transaction this runs on the router's own
//!   backend connections ([`crate::backend::wire`]), which hand row packets on undecoded.
//! - Several targets: one task per physical shard (its logical shards' selects joined with
//!   `UNION ALL` into one round trip where the shape allows), rows interleaved as they come,
//!   `LIMIT`/`OFFSET` applied in the router.
//! - Writes over several physical shards run concurrently; a partial failure is reported with
//!   the shards that committed.
//!
//! # Layout
//!
//! - `core`: the [`Engine`] every connection shares, and a borrowed backend connection.
//! - `execute`: running one plan, dispatched to the paths below.
//! - `single`: one statement on one physical shard (text or prepared).
//! - `scatter`: reads over several logical shards, streamed or merged ([`merge`]).
//! - `write`: writes and DDL over several physical shards.
//! - `txn`: transactions and the connections they pin.
//! - `local`: what the router answers itself (session statements, `DESCRIBE`, `VEXPLAIN`).
//! - `uservars`: user variables carried to every backend connection as values.
//! - [`lookup`]: lookup vindexes (routing by a secondary column, and keeping its table);
//!   `sequence`: ids from sequences; `moverows`: shard-key updates; `crossjoin`: cross-shard
//!   joins; `results`: result sets the router writes itself.
//! - [`moves`]: the dual-write of moving logical shards; [`unique_keys`]: unique keys of
//!   sharded tables, for writes that resolve conflicts on them.

pub mod columns;
mod core;
mod crossjoin;
mod execute;
mod gather;
mod insert_select;
pub mod load;
mod local;
pub mod lookup;
pub mod merge;
mod moverows;
pub mod moves;
mod results;
mod scatter;
mod sequence;
mod single;
mod txn;
pub mod unique_keys;
mod uservars;
mod write;

pub use core::Engine;
pub use results::{column_def, write_end};
