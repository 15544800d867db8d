//! The in-process store: [`MemoryStore`] keeps everything in memory; [`crate::FileStore`]
//! is the same store persisting each write to a file before acknowledging it.

use crate::error::{Result, TopoError};
use crate::kv::{KvCore, KvState, Op};
use crate::store::{Condition, KeyValue, Store, Watcher};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often lapsed leases are looked for.
const LEASE_TICK: Duration = Duration::from_millis(100);

pub(crate) struct Inner {
    core: KvCore,
    deadlines: HashMap<i64, Instant>,
    next_lease: i64,
    persist: Option<PathBuf>,
}

impl Inner {
    fn apply(&mut self, op: &Op) -> Result<crate::kv::OpOutcome> {
        let out = self.core.apply(op);
        if let Some(path) = &self.persist {
            if matches!(out, crate::kv::OpOutcome::Written { .. }) {
                write_state(path, self.core.state())?;
            }
        }
        Ok(out)
    }
}

/// A store held in this process. Cloning shares the same data.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    _expiry: Arc<ExpiryTask>,
}

struct ExpiryTask(Option<tokio::task::JoinHandle<()>>);

impl Drop for ExpiryTask {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Returns an empty store. Lease expiry runs only inside a tokio runtime.
    pub fn new() -> Self {
        Self::with_state(KvState::default(), None)
    }

    pub(crate) fn with_state(state: KvState, persist: Option<PathBuf>) -> Self {
        let now = Instant::now();
        // Leases restored from disk get a full TTL from now, as etcd does after a restart.
        let deadlines = state
            .leases
            .values()
            .map(|l| (l.id, now + Duration::from_millis(l.ttl_ms)))
            .collect();
        let next_lease = state.leases.keys().max().copied().unwrap_or(0) + 1;
        let inner = Arc::new(Mutex::new(Inner {
            core: KvCore::from_state(state),
            deadlines,
            next_lease,
            persist,
        }));
        let expiry = match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let weak = Arc::downgrade(&inner);
                Some(h.spawn(async move {
                    loop {
                        tokio::time::sleep(LEASE_TICK).await;
                        let Some(inner) = weak.upgrade() else { return };
                        let mut g = lock(&inner);
                        let now = Instant::now();
                        let lapsed: Vec<i64> = g
                            .deadlines
                            .iter()
                            .filter(|(_, d)| **d <= now)
                            .map(|(id, _)| *id)
                            .collect();
                        for id in lapsed {
                            g.deadlines.remove(&id);
                            if let Err(e) = g.apply(&Op::RevokeLease { id }) {
                                tracing::warn!(lease = id, error = %e, "lease expiry not persisted");
                            }
                        }
                    }
                }))
            }
            Err(_) => None,
        };
        MemoryStore {
            inner,
            _expiry: Arc::new(ExpiryTask(expiry)),
        }
    }

    /// Returns a copy of the whole state (for snapshots and tests).
    pub fn snapshot(&self) -> KvState {
        lock(&self.inner).core.state().clone()
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves consistent data (every op is applied whole).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(lock(&self.inner).core.get(key))
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
        let out = lock(&self.inner).apply(&op)?;
        out.into_revision(key)?
            .ok_or_else(|| TopoError::NotFound(key.to_string()))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<Option<u64>> {
        let op = Op::Delete {
            key: key.to_string(),
            cond,
        };
        let out = lock(&self.inner).apply(&op)?;
        out.into_revision(key)
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        Ok(lock(&self.inner).core.list(prefix))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher> {
        lock(&self.inner).core.watch(prefix, after_revision)
    }

    async fn grant_lease(&self, ttl_ms: u64) -> Result<i64> {
        let mut g = lock(&self.inner);
        let id = g.next_lease;
        g.next_lease += 1;
        g.apply(&Op::GrantLease { id, ttl_ms })?;
        g.deadlines
            .insert(id, Instant::now() + Duration::from_millis(ttl_ms));
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<()> {
        let mut g = lock(&self.inner);
        let ttl = g
            .core
            .leases()
            .find(|l| l.id == lease)
            .map(|l| l.ttl_ms)
            .ok_or(TopoError::LeaseNotFound(lease))?;
        g.deadlines
            .insert(lease, Instant::now() + Duration::from_millis(ttl));
        Ok(())
    }

    async fn revoke_lease(&self, lease: i64) -> Result<()> {
        let mut g = lock(&self.inner);
        g.deadlines.remove(&lease);
        match g.apply(&Op::RevokeLease { id: lease })? {
            crate::kv::OpOutcome::NoLease { id } => Err(TopoError::LeaseNotFound(id)),
            _ => Ok(()),
        }
    }

    async fn revision(&self) -> Result<u64> {
        Ok(lock(&self.inner).core.revision())
    }
}

/// Writes `state` to `path` atomically: temp file, fsync, rename, fsync of the directory.
///
/// # Errors
/// Any I/O failure; the previous file is then left intact.
pub(crate) fn write_state(path: &Path, state: &KvState) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| TopoError::Corrupt {
        key: path.display().to_string(),
        message: e.to_string(),
    })?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        crate::conformance::run(&super::MemoryStore::new()).await;
    }
}
