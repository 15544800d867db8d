//! The router process: listener, one task per client connection, authentication, the
//! command loop, and shutdown.
//!
//! # Layout
//!
//! - `listener`: [`Router`] and [`RouterHandle`]; accepting connections, registration in the
//!   topology, shutdown.
//! - `login`: the handshake and password check of a new connection.
//! - `connection`: a connection's command loop, which hands each command on to
//! - `query` (`COM_QUERY`) or `prepare` (`COM_STMT_*`, `COM_FIELD_LIST`); `processes` (the
//!   process list, `KILL`) and `databases` (`CREATE`/`DROP DATABASE` as keyspaces) are
//!   statements `query` hands on.
//! - `shared`: what every connection task shares (engine, plan cache, metrics, shadows).

mod connection;
mod databases;
mod listener;
mod login;
mod prepare;
mod processes;
mod query;
mod shared;
mod status;
mod tls;

pub use listener::{Router, RouterHandle};
