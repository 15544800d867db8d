//! Tessera: sharding middleware for MySQL and MariaDB.
//!
//! # Layout
//!
//! - [`cli`]: the `tessera` binary's subcommands, one file each (`up`, `router`, `vschema`,
//!   `shard`, `topo`).
//! - [`localcluster`]: MariaDB servers on free loopback ports in temporary data dirs, for
//!   `tessera up` and the black-box tests.
//! - [`localtls`]: the local cluster's own certificate authority and the MariaDB servers' and
//!   router's certificates it signs, for `tessera up`.
//!
//! The router, topology and rebalancer are crates of their own: `tessera-router`,
//! `tessera-topo`, `tessera-rebalancer`.

pub mod cli;
pub mod localcluster;
pub mod localtls;
