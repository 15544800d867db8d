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
//! - [`table`]: a schema's tables, columns and primary keys; auxiliary names; checkpoint keys.
//! - [`journal`]: the journal and fence triggers.
//! - [`server`]: connection options for a physical shard (TLS when its record asks for it).
//! - [`copy`]: copying rows (by key, by chunk, whole tables, the journal) and chunk checksums.

pub mod copy;
pub mod journal;
pub mod server;
pub mod table;

pub use copy::{
    chunk_end, next_digest, push_literal, range_digest, read_chunk, write_rows, Chunk, ChunkResult,
    Copier, Digest, COPY_SESSION, STMT_BYTES,
};
pub use journal::{install_fence, install_journal, journal_backlog, remove_fence, remove_journal};
pub use server::{is_refused_login, login, server_opts, REFUSED_LOGIN_RETRIES};
pub use table::{
    aux_name, create_schema_like, decode_key, encode_key, key_string, load_tables, qi, table_meta,
    TableMeta, AUX_PREFIX,
};
