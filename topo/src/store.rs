//! The store trait: the one seam between topology users and topology backends.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One key with its value and revisions, as etcd reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    /// The value as UTF-8 text (records are JSON).
    pub value: String,
    /// The store revision at which this key was created.
    pub create_revision: u64,
    /// The store revision of the last write to this key.
    pub mod_revision: u64,
    /// The lease that keeps this key alive, if any; the key vanishes when it lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

/// A condition on a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Write unconditionally.
    #[default]
    None,
    /// Write only if the key's `mod_revision` equals this value; `0` means "only if absent".
    ModRevision(u64),
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventKind {
    Put,
    Delete,
}

/// One change delivered by a watch, in revision order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// The key after the change (for a delete: the key with an empty value).
    pub kv: KeyValue,
    /// The store revision of this change.
    pub revision: u64,
}

/// The receiving end of a watch. Events arrive in revision order; an `Err` ends the watch
/// (for example [`crate::TopoError::Compacted`], after which the watcher re-lists).
pub type Watcher = mpsc::Receiver<Result<WatchEvent>>;

/// A versioned key-value store with compare-and-set, prefix watches and leases.
///
/// Implementations: [`crate::MemoryStore`], [`crate::FileStore`], [`crate::HttpStore`] (a
/// client of a remote store) and the replicated store. All pass [`crate::conformance`].
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Returns the key, or `None` if absent.
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Returns the key as this node has it, without confirming that nothing newer was
    /// committed elsewhere: cheaper, possibly stale (dashboards). Stores with one copy of the
    /// data answer exactly as [`Store::get`].
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn get_stale(&self, key: &str) -> Result<Option<KeyValue>> {
        self.get(key).await
    }

    /// Writes `value` under `key` if `cond` holds; returns the new revision.
    ///
    /// # Errors
    /// [`crate::TopoError::Conflict`] when the condition does not hold;
    /// [`crate::TopoError::LeaseNotFound`] when `lease` is unknown.
    async fn put(&self, key: &str, value: &str, cond: Condition, lease: Option<i64>)
        -> Result<u64>;

    /// Deletes `key` if `cond` holds; returns the new revision, or `None` if it was absent.
    ///
    /// # Errors
    /// [`crate::TopoError::Conflict`] when the condition does not hold.
    async fn delete(&self, key: &str, cond: Condition) -> Result<Option<u64>>;

    /// Lists every key that starts with `prefix`, in key order, with the store revision
    /// the listing reflects.
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)>;

    /// Lists keys under `prefix` as this node has them, like [`Store::get_stale`].
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn list_stale(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        self.list(prefix).await
    }

    /// Watches every key under `prefix`, delivering each change with a revision greater
    /// than `after_revision`, in order.
    ///
    /// # Errors
    /// [`crate::TopoError::Compacted`] when `after_revision` is older than kept history.
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher>;

    /// Grants a lease that lives `ttl_ms` unless kept alive; returns its id.
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn grant_lease(&self, ttl_ms: u64) -> Result<i64>;

    /// Renews a lease for another full TTL.
    ///
    /// # Errors
    /// [`crate::TopoError::LeaseNotFound`] when it has already lapsed.
    async fn keep_alive(&self, lease: i64) -> Result<()>;

    /// Revokes a lease now, deleting the keys attached to it.
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn revoke_lease(&self, lease: i64) -> Result<()>;

    /// Returns the current store revision.
    ///
    /// # Errors
    /// Fails when the store is unreachable.
    async fn revision(&self) -> Result<u64>;

    /// The nodes of the service and what each says of itself (`GET /v1/status`: id, role,
    /// leader, term, applied index), or why it could not be asked. Stores that are not a
    /// replicated service return none.
    async fn nodes(&self) -> Vec<(String, std::result::Result<serde_json::Value, String>)> {
        Vec::new()
    }
}
