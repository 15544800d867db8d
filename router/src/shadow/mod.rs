//! The shadow verifier.
//!
//! - [`routing::RoutingShadow`]: plans every statement a second time against a candidate
//!   vschema, off the client's path, and keeps a report by fingerprint.

pub mod results;
pub mod routing;
