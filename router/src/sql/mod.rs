//! The statement as bytes: what the router needs to know or change of a statement's text
//! without planning it. Comments and where text may be spliced ([`rewrite`]), the plan
//! cache's shapes ([`shape`]), fingerprints ([`mod@fingerprint`]), parameter markers
//! ([`markers`]) and multi-statement batches ([`split`]). Imports nothing of the router but its errors.

pub mod carry;
pub mod classify;
pub mod fingerprint;
pub mod lex;
pub mod markers;
pub mod rewrite;
pub mod shape;
pub mod split;

pub use fingerprint::fingerprint;
pub use rewrite::{quote_ident, LS_PLACEHOLDER};
