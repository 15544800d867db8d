//! What a Raft log entry carries: a [`Cmd`] as its data, and in its context the
//! [`RequestId`] that lets the node that proposed it find the caller waiting for it.

use crate::kv::{Op, OpOutcome};
use serde::{Deserialize, Serialize};

/// A write to replicate. Everything here is applied through [`crate::kv::KvCore::apply`],
/// except keep-alives, which change no state and only prove a lease still exists at their
/// place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    /// A key-value operation, applied as it is.
    Op { op: Op },
    /// Grants a lease whose id is the index of this entry: unique across the cluster, and the
    /// same on every node.
    GrantLease { ttl_ms: u64 },
    /// Renews a lease for another full TTL.
    KeepAlive { id: i64 },
}

impl Cmd {
    /// Encodes the command as entry data (JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain enums cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes entry data.
    ///
    /// # Errors
    /// When the data is not a command.
    pub fn decode(data: &[u8]) -> Result<Cmd, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

/// Who proposed an entry: the node, the node's boot (so a restarted node never mistakes an
/// old entry for a new request) and a sequence number within that boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub node: u64,
    pub boot: u64,
    pub seq: u64,
}

impl RequestId {
    /// Encodes the id as an entry context (24 bytes, little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.node.to_le_bytes());
        v.extend_from_slice(&self.boot.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v
    }

    /// Decodes an entry context; `None` for an entry that carries no id.
    pub fn decode(ctx: &[u8]) -> Option<RequestId> {
        if ctx.len() != 24 {
            return None;
        }
        let word = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&ctx[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a)
        };
        Some(RequestId {
            node: word(0),
            boot: word(1),
            seq: word(2),
        })
    }
}

/// What the proposer learns once its entry is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The entry's index (for a lease grant: the lease id).
    pub index: u64,
    pub outcome: OpOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Condition;

    #[test]
    fn round_trips() {
        let id = RequestId {
            node: 3,
            boot: 99,
            seq: 7,
        };
        assert_eq!(RequestId::decode(&id.encode()), Some(id));
        assert_eq!(RequestId::decode(b"short"), None);
        let cmd = Cmd::Op {
            op: Op::Put {
                key: "k".into(),
                value: "v".into(),
                cond: Condition::ModRevision(4),
                lease: Some(9),
            },
        };
        assert_eq!(Cmd::decode(&cmd.encode()).expect("decode"), cmd);
    }
}
