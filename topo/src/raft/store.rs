//! [`RaftStore`]: the [`Store`] a Raft node serves, and the Rust API for its membership.
//!
//! - Writes are proposed to Raft with a unique request id and answered once the entry is
//!   applied on this node, with the state machine's outcome (so a failed compare-and-set is a
//!   [`TopoError::Conflict`]). A follower's proposal is forwarded to the leader by Raft
//!   itself; with no leader known it fails at once as [`TopoError::Unavailable`], which an
//!   [`crate::HttpStore`] client takes as its cue to try another node.
//! - Reads are linearizable: a ReadIndex round confirms with a quorum what the commit index
//!   is, and the read is served from this node's state once it has applied that far.
//!   [`Store::get_stale`] and [`Store::list_stale`] skip the round and answer from whatever
//!   this node has applied.
//! - Watches are served from this node's applied state, which every committed entry reaches
//!   in log order, whoever leads.

use super::node::{lock, MemberChange, NodeMsg, NodeSender, NodeStatus, Reply, Shared};
use super::proposal::{Applied, Cmd};
use crate::error::{Result, TopoError};
use crate::kv::{Op, OpOutcome};
use crate::store::{Condition, KeyValue, Store, Watcher};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A handle on one Raft node's store. Cloning shares the node.
#[derive(Clone)]
pub struct RaftStore {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeSender,
    shared: Shared,
    timeout: Duration,
}

impl RaftStore {
    pub(crate) fn new(node: NodeSender, shared: Shared, timeout: Duration) -> Self {
        RaftStore {
            inner: Arc::new(Inner {
                node,
                shared,
                timeout,
            }),
        }
    }

    /// Returns what the node says of itself: role, term, leader, indexes, voters, peers.
    pub fn node_status(&self) -> NodeStatus {
        lock(&self.inner.shared.status).clone()
    }

    /// Returns every member's id and address.
    pub fn members(&self) -> BTreeMap<u64, String> {
        self.node_status().peers
    }

    fn check_open(&self) -> Result<()> {
        match &lock(&self.inner.shared.status).stopped {
            Some(_) => Err(TopoError::Closed),
            None => Ok(()),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> NodeMsg) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .node
            .send(make(tx))
            .map_err(|_| TopoError::Closed)?;
        // The node fails requests itself after its request timeout; this bound is a backstop.
        match tokio::time::timeout(self.inner.timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(TopoError::Closed),
            Err(_) => Err(TopoError::Unavailable(format!(
                "raft node did not answer within {} ms",
                self.inner.timeout.as_millis()
            ))),
        }
    }

    async fn propose(&self, cmd: Cmd) -> Result<Applied> {
        self.call(|reply| NodeMsg::Propose { cmd, reply }).await
    }

    /// Waits until this node has applied everything committed when the call began.
    async fn read_barrier(&self) -> Result<()> {
        self.call(|reply| NodeMsg::Read { reply }).await
    }

    /// Adds a voter listening on `addr`; returns once the change is applied on this node.
    /// Start the new node (with every member, itself included, as its peers) after this.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] for a zero id or an empty address, `Unavailable` without a
    /// leader.
    pub async fn add_member(&self, id: u64, addr: &str) -> Result<()> {
        let change = MemberChange::Add {
            id,
            addr: addr.to_string(),
        };
        self.call(|reply| NodeMsg::ChangeMember { change, reply })
            .await
            .map(|_| ())
    }

    /// Removes a voter; returns once the change is applied on this node. A leader asked to
    /// remove itself hands leadership over first and answers `Unavailable`: retry.
    ///
    /// # Errors
    /// [`TopoError::NotFound`] for an id that is not a voter, [`TopoError::Invalid`] for the
    /// last voter, `Unavailable` without a leader.
    pub async fn remove_member(&self, id: u64) -> Result<()> {
        let change = MemberChange::Remove { id };
        self.call(|reply| NodeMsg::ChangeMember { change, reply })
            .await
            .map(|_| ())
    }
}

fn lease_outcome(out: OpOutcome) -> Result<()> {
    match out {
        OpOutcome::NoLease { id } => Err(TopoError::LeaseNotFound(id)),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Store for RaftStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read_barrier().await?;
        Ok(lock(&self.inner.shared.core).get(key))
    }

    async fn get_stale(&self, key: &str) -> Result<Option<KeyValue>> {
        self.check_open()?;
        Ok(lock(&self.inner.shared.core).get(key))
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        cond: Condition,
        lease: Option<i64>,
    ) -> Result<u64> {
        let op = Op::Put {
            key: key.to_string(),
            value: value.to_string(),
            cond,
            lease,
        };
        let applied = self.propose(Cmd::Op { op }).await?;
        applied
            .outcome
            .into_revision(key)?
            .ok_or_else(|| TopoError::NotFound(key.to_string()))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<Option<u64>> {
        let op = Op::Delete {
            key: key.to_string(),
            cond,
        };
        self.propose(Cmd::Op { op })
            .await?
            .outcome
            .into_revision(key)
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        self.read_barrier().await?;
        Ok(lock(&self.inner.shared.core).list(prefix))
    }

    async fn list_stale(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        self.check_open()?;
        Ok(lock(&self.inner.shared.core).list(prefix))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher> {
        self.check_open()?;
        lock(&self.inner.shared.core).watch(prefix, after_revision)
    }

    async fn grant_lease(&self, ttl_ms: u64) -> Result<i64> {
        let applied = self.propose(Cmd::GrantLease { ttl_ms }).await?;
        lease_outcome(applied.outcome)?;
        Ok(applied.index as i64)
    }

    async fn keep_alive(&self, lease: i64) -> Result<()> {
        let applied = self.propose(Cmd::KeepAlive { id: lease }).await?;
        lease_outcome(applied.outcome)
    }

    async fn revoke_lease(&self, lease: i64) -> Result<()> {
        let op = Op::RevokeLease { id: lease };
        let applied = self.propose(Cmd::Op { op }).await?;
        lease_outcome(applied.outcome)
    }

    async fn revision(&self) -> Result<u64> {
        self.read_barrier().await?;
        Ok(lock(&self.inner.shared.core).revision())
    }
}
