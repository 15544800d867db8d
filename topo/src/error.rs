//! Errors of the topology crate.

/// Everything a topology operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// A compare-and-set found another revision than the one expected.
    #[error("revision conflict on {key}: expected {expected}, found {found}")]
    Conflict {
        key: String,
        expected: u64,
        found: u64,
    },
    /// A watch asked for history that compaction has already dropped; re-list and watch again.
    #[error("revision {requested} has been compacted (oldest available is {oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// The lease does not exist or has expired.
    #[error("lease {0} not found")]
    LeaseNotFound(i64),
    /// A record that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A vschema or record failed validation; the message names the field.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
    /// No endpoint of the topology service could be reached.
    #[error("topology service unavailable: {0}")]
    Unavailable(String),
    /// The local persistence layer failed.
    #[error("topology storage error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record {key}: {message}")]
    Corrupt { key: String, message: String },
    /// The store has been closed.
    #[error("topology store closed")]
    Closed,
}

impl TopoError {
    /// Returns an `Invalid` error for `what` with `message`.
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        TopoError::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = TopoError> = std::result::Result<T, E>;
