//! The router's client sessions, as `SHOW PROCESSLIST` lists them and `KILL` finds them: per
//! session, who it is, what it runs and since when, and the backend connection running it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Every live session of a router, by connection id.
#[derive(Default)]
pub struct Registry {
    slots: Mutex<HashMap<u32, Arc<Slot>>>,
}

/// One session's entry.
pub struct Slot {
    pub id: u32,
    pub user: String,
    pub host: String,
    state: Mutex<SlotState>,
    killed: AtomicBool,
    kill: tokio::sync::Notify,
}

#[derive(Default, Clone)]
struct SlotState {
    keyspace: Option<String>,
    /// The statement running, as the client sent it (its buffer reused from statement to
    /// statement), and since when (`None`: idle).
    text: Vec<u8>,
    started: Option<Instant>,
    /// The backend connection running it: physical shard (buffer reused) and the server's
    /// connection id (`None`: none).
    backend_ps: String,
    backend_id: Option<u32>,
    /// Since when the session has been idle (or connected).
    idle_since: Option<Instant>,
}

/// A row of `SHOW PROCESSLIST`.
pub struct Process {
    pub id: u32,
    pub user: String,
    pub host: String,
    pub keyspace: Option<String>,
    /// `Query` or `Sleep`.
    pub command: &'static str,
    pub seconds: u64,
    /// The statement's bytes as the client sent them.
    pub info: Option<Vec<u8>>,
}

impl Registry {
    /// Registers a session; it leaves the registry when the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, id: u32, user: &str, host: &str) -> SlotGuard {
        let slot = Arc::new(Slot {
            id,
            user: user.to_string(),
            host: host.to_string(),
            state: Mutex::new(SlotState {
                idle_since: Some(Instant::now()),
                ..Default::default()
            }),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        });
        if let Ok(mut m) = self.slots.lock() {
            m.insert(id, slot.clone());
        }
        SlotGuard {
            registry: self.clone(),
            slot,
        }
    }

    /// The session with connection id `id`.
    pub fn get(&self, id: u32) -> Option<Arc<Slot>> {
        self.slots.lock().ok()?.get(&id).cloned()
    }

    /// Every session, by id.
    pub fn list(&self) -> Vec<Process> {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut out: Vec<Process> = slots
            .iter()
            .map(|s| {
                let st = s.state.lock().map(|g| g.clone()).unwrap_or_default();
                let (command, since, info) = match st.started {
                    Some(at) => ("Query", Some(at), Some(st.text)),
                    None => ("Sleep", st.idle_since, None),
                };
                Process {
                    id: s.id,
                    user: s.user.clone(),
                    host: s.host.clone(),
                    keyspace: st.keyspace,
                    command,
                    seconds: since.map_or(0, |t| t.elapsed().as_secs()),
                    info,
                }
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }
}

impl Slot {
    /// A statement starts (its bytes, as the process list shows them).
    pub fn running(&self, sql: &[u8], keyspace: Option<&str>) {
        if let Ok(mut s) = self.state.lock() {
            s.text.clear();
            s.text.extend_from_slice(sql);
            s.started = Some(Instant::now());
            if s.keyspace.as_deref() != keyspace {
                s.keyspace = keyspace.map(str::to_string);
            }
        }
    }

    /// The statement ended.
    pub fn idle(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.started = None;
            s.backend_id = None;
            s.idle_since = Some(Instant::now());
        }
    }

    /// The backend connection the statement runs on (`None`: none any more).
    pub fn on_backend(&self, backend: Option<(&str, u32)>) {
        if let Ok(mut s) = self.state.lock() {
            match backend {
                Some((ps, id)) => {
                    if s.backend_ps != ps {
                        s.backend_ps.clear();
                        s.backend_ps.push_str(ps);
                    }
                    s.backend_id = Some(id);
                }
                None => s.backend_id = None,
            }
        }
    }

    /// When the statement running started (`None`: idle): it names that statement.
    pub fn started(&self) -> Option<Instant> {
        self.state.lock().ok()?.started
    }

    /// The backend connection running the session's statement, if one does.
    pub fn backend(&self) -> Option<(String, u32)> {
        let s = self.state.lock().ok()?;
        s.backend_id.map(|id| (s.backend_ps.clone(), id))
    }

    /// Asks the session to end (`KILL CONNECTION`): its connection closes after the statement
    /// it runs, or at once when idle.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    /// Whether `KILL CONNECTION` asked the session to end.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Resolves when `KILL CONNECTION` asks the session to end.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await;
    }
}

/// A session's place in the registry, given up when dropped.
pub struct SlotGuard {
    registry: Arc<Registry>,
    pub slot: Arc<Slot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.slots.lock() {
            m.remove(&self.slot.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_list_keeps_a_statements_bytes() {
        let r = Arc::new(Registry::default());
        let g = r.enter(7, "u", "h");
        let sql = b"SELECT '\xff\x80' FROM t";
        g.slot.running(sql, Some("app"));
        let p = r.list();
        assert_eq!(p[0].info.as_deref(), Some(&sql[..]));
        assert_eq!(p[0].command, "Query");
        g.slot.idle();
        assert_eq!(r.list()[0].info, None);
        drop(g);
        assert!(r.list().is_empty());
    }
}
