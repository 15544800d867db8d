//! The rebalancer: placement planning and online moves of logical shards between physical
//! shards (prepare, journal, dual-write, backfill, verify, cut over, rollback, complete,
//! abort), as `docs/architecture.md` describes.
//!
//! [`Rebalancer`] is the programmatic API the `tessera reshard` commands use. The row-copying
//! primitives, the journal and the fence, which routers use too for their dual-writes, live in
//! the `tessera-shardmove` crate below both.

mod job;
mod plan;

pub use job::{Options, Rebalancer, Stop};
pub use plan::{plan_moves, PlannedMove};

/// The row-copying primitives below the rebalancer (for tests and tools that drive them).
pub use tessera_shardmove as shardmove;
