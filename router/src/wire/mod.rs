//! The MySQL client/server protocol, server side: packets, handshake and authentication,
//! result sets, OK/EOF/ERR. Written for Tessera rather than taken from a library so that
//! result rows can be streamed from backends to clients without buffering, and so that both
//! `mysql_native_password` and `caching_sha2_password` are checked against configured users.

pub mod auth;
pub mod binary;
pub mod codec;
pub mod constants;
pub mod handshake;
pub mod packet;
pub mod resultset;

pub use packet::PacketIo;
