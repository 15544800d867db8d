//! What moving a logical shard between physical shards needs, below both the router and the
//! rebalancer: table metadata of a logical-shard schema, copying its rows (chunked backfill,
//! given keys, journal draining), verification checksums, and the journal and fence triggers
//! that keep a moving logical shard consistent (`docs/architecture.md`, "Moving a logical
//! shard").
//!
//! The rebalancer drives a move with these; routers use them for the dual-write of a moving
//! logical shard (copying the rows their transactions touched) and to read table metadata.
//!
//! # Layout
//!
//! - [`copy`]: everything above, in one file today.

pub mod copy;
