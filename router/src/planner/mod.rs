//! The planner: parses one statement (MySQL dialect) and decides where it runs.
//!
//! - [`plan()`] is the entry point; [`Plan`] says what to do.
//! - Table names are qualified with the schema of each logical shard by editing the original
//!   text at the parser's token spans ([`crate::sql::rewrite`]), so literals reach MariaDB byte
//!   for byte.
//! - A shape the router cannot answer correctly is refused with error 1235 naming it.
//!
//! # Layout
//!
//! - [`statement`]: the entry points; parses and dispatches by statement kind to
//!   `select` (reads), `insert`, `update_delete`, `ddl` and `local` (session statements).
//! - `resolve`: which keyspace and table each name means, and qualifying them.
//! - `keys`: shard-key values from literals, and the logical shards a `WHERE` pins.
//! - [`passthrough`]: statements on an unsharded keyspace sent as the client's bytes, and the
//!   scope every statement must stay in.
//! - [`merge`]: what a read over several logical shards needs merged in the router.
//! - `crossjoin`: joins of sharded tables not on their shard keys.
//! - [`gather`]: reads answered by MariaDB over their sharded tables' gathered rows.
//! - `lookup`: statements routed by a lookup vindex, and the writes that keep one.
//! - `standin`: MariaDB syntax the parser does not know, planned through a stand-in.
//! - `ast`: small questions about the parsed statement.
//! - [`mod@plan`]: the plans themselves; [`cache`]: the plan cache.
//!
//! A new statement kind gets its own file here and an arm in `statement`'s dispatch, with
//! cases in `testdata/route_cases.yaml`.

mod ast;
pub mod cache;
mod crossjoin;
mod ddl;
pub mod gather;
mod insert;
mod joins;
mod keys;
mod local;
mod lookup;
pub mod merge;
pub mod passthrough;
pub mod plan;
mod resolve;
mod select;
mod standin;
pub mod statement;
mod update_delete;

pub(crate) use keys::literal_key;
pub use plan::{
    Conflict, CrossJoin, Exec, KeyAt, KeyLiteral, LimitedWrite, Local, MoveRows, OrderedWrite,
    Plan, RouteKind, SavepointOp, StmtKind, Targets, TxnStart, LIMIT_PLACEHOLDER,
};
pub use statement::{describe_target, plan, plan_internal, plan_session};

#[cfg(test)]
mod tests;
