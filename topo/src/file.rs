//! A single-node store that persists its whole state to one file, fsynced before each write
//! is acknowledged. Topology is small (kilobytes to a few megabytes), so rewriting the file
//! on every write is cheap and keeps recovery trivial: the file is always one consistent
//! state, replaced atomically by rename.

use crate::error::{Result, TopoError};
use crate::kv::KvState;
use crate::memory::MemoryStore;
use crate::store::{Condition, KeyValue, Store, Watcher};
use std::path::{Path, PathBuf};

/// A file-backed single-node store.
#[derive(Clone)]
pub struct FileStore {
    mem: MemoryStore,
    path: PathBuf,
}

impl FileStore {
    /// Opens (or creates) the store in `dir`, reading `dir/topo.json` if present.
    ///
    /// # Errors
    /// Fails when the directory cannot be created or the file is corrupt.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("topo.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<KvState>(&bytes).map_err(|e| TopoError::Corrupt {
                    key: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KvState::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(FileStore {
            mem: MemoryStore::with_state(state, Some(path.clone())),
            path,
        })
    }

    /// Returns the file the state lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl Store for FileStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.mem.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: &str,
        cond: Condition,
        lease: Option<i64>,
    ) -> Result<u64> {
        self.mem.put(key, value, cond, lease).await
    }
    async fn delete(&self, key: &str, cond: Condition) -> Result<Option<u64>> {
        self.mem.delete(key, cond).await
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        self.mem.list(prefix).await
    }
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher> {
        self.mem.watch(prefix, after_revision).await
    }
    async fn grant_lease(&self, ttl_ms: u64) -> Result<i64> {
        self.mem.grant_lease(ttl_ms).await
    }
    async fn keep_alive(&self, lease: i64) -> Result<()> {
        self.mem.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: i64) -> Result<()> {
        self.mem.revoke_lease(lease).await
    }
    async fn revision(&self) -> Result<u64> {
        self.mem.revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_and_restart() {
        let dir = std::env::temp_dir().join(format!("tessera-filestore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = FileStore::open(&dir).expect("open");
            crate::conformance::run(&s).await;
            s.put("/persist/me", "yes", Condition::None, None)
                .await
                .expect("put");
        }
        let s = FileStore::open(&dir).expect("reopen");
        let kv = s.get("/persist/me").await.expect("get").expect("present");
        assert_eq!(kv.value, "yes");
        std::fs::write(dir.join("topo.json"), b"{not json").expect("corrupt");
        assert!(matches!(
            FileStore::open(&dir),
            Err(TopoError::Corrupt { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
