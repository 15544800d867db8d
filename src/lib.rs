//! Tessera: sharding middleware for MySQL and MariaDB.
//!
//! # Layout
//!
//! - [`cli`]: the `tessera` binary's subcommands, one file each (`up`, `router`, `vschema`,
//!   `shard`, `topo`).
//! - [`localcluster`]: MariaDB servers on free loopback ports in temporary data dirs, for
//!   `tessera up` and the black-box tests.
//!
//! The router, topology and rebalancer are crates of their own: `tessera-router`,
//! `tessera-topo`, `tessera-rebalancer`.

pub mod cli;
pub mod localcluster;
