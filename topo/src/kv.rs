//! The deterministic key-value state machine shared by every store backend.
//!
//! Writes are [`Op`]s. Applying the same ops in the same order gives the same state on every
//! node, which is what lets the replicated store apply committed log entries to it, the file
//! store persist it, and the in-memory store simply hold it.

use crate::error::{Result, TopoError};
use crate::store::{Condition, KeyValue, WatchEvent, WatchEventKind, Watcher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::mpsc;

/// How many past events are kept for watches that start from an older revision.
pub const HISTORY_LEN: usize = 10_000;

/// Capacity of each watcher's channel; a watcher that falls this far behind is closed and
/// must re-list.
pub const WATCH_CHANNEL: usize = 4096;

/// A write to the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Put {
        key: String,
        value: String,
        #[serde(default)]
        cond: Condition,
        #[serde(default)]
        lease: Option<i64>,
    },
    Delete {
        key: String,
        #[serde(default)]
        cond: Condition,
    },
    GrantLease {
        id: i64,
        ttl_ms: u64,
    },
    RevokeLease {
        id: i64,
    },
}

/// The result of applying an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpOutcome {
    /// The write happened at this revision.
    Written { revision: u64 },
    /// A delete of an absent key: nothing changed.
    Absent,
    /// The condition did not hold.
    Conflict { expected: u64, found: u64 },
    /// The lease named by a put does not exist.
    NoLease { id: i64 },
}

impl OpOutcome {
    /// Turns a put's outcome into the trait's result.
    ///
    /// # Errors
    /// Conflicts and missing leases become the matching [`TopoError`].
    pub fn into_revision(self, key: &str) -> Result<Option<u64>> {
        match self {
            OpOutcome::Written { revision } => Ok(Some(revision)),
            OpOutcome::Absent => Ok(None),
            OpOutcome::Conflict { expected, found } => Err(TopoError::Conflict {
                key: key.to_string(),
                expected,
                found,
            }),
            OpOutcome::NoLease { id } => Err(TopoError::LeaseNotFound(id)),
        }
    }
}

/// Returns the conflict when `cond` does not hold for a key at `current` (0: absent).
fn check(cond: Condition, current: u64) -> Option<OpOutcome> {
    match cond {
        Condition::ModRevision(expected) if expected != current => Some(OpOutcome::Conflict {
            expected,
            found: current,
        }),
        _ => None,
    }
}

/// A lease and its TTL. Deadlines are kept by whoever drives the state machine, not here,
/// so that applying ops stays deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: i64,
    pub ttl_ms: u64,
}

/// The persisted part of the state machine: data, revision and leases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    pub revision: u64,
    pub data: BTreeMap<String, KeyValue>,
    pub leases: BTreeMap<i64, Lease>,
}

struct Subscriber {
    prefix: String,
    /// Only changes after this revision are delivered: a replica that is behind the
    /// watcher's revision must not send it what it already has.
    after: u64,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

/// The state machine plus its watch history and live watchers.
#[derive(Default)]
pub struct KvCore {
    state: KvState,
    history: VecDeque<WatchEvent>,
    /// Revisions at or below this have been dropped from `history`.
    compacted: u64,
    subscribers: Vec<Subscriber>,
}

impl KvCore {
    /// Returns a core holding `state`, with empty history (older watches get `Compacted`).
    pub fn from_state(state: KvState) -> Self {
        let compacted = state.revision;
        KvCore {
            state,
            history: VecDeque::new(),
            compacted,
            subscribers: Vec::new(),
        }
    }

    /// Returns the persisted state.
    pub fn state(&self) -> &KvState {
        &self.state
    }

    /// Returns the current revision.
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// Returns the key, or `None`.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.state.data.get(key).cloned()
    }

    /// Lists keys under `prefix`.
    pub fn list(&self, prefix: &str) -> (Vec<KeyValue>, u64) {
        let kvs = self
            .state
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (kvs, self.state.revision)
    }

    /// Returns whether a lease exists.
    pub fn has_lease(&self, id: i64) -> bool {
        self.state.leases.contains_key(&id)
    }

    /// Returns every lease.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.state.leases.values()
    }

    /// Applies one op, records its events and notifies watchers.
    pub fn apply(&mut self, op: &Op) -> OpOutcome {
        match op {
            Op::Put {
                key,
                value,
                cond,
                lease,
            } => {
                if let Some(l) = lease {
                    if !self.state.leases.contains_key(l) {
                        return OpOutcome::NoLease { id: *l };
                    }
                }
                let current = self.state.data.get(key).map_or(0, |kv| kv.mod_revision);
                if let Some(conflict) = check(*cond, current) {
                    return conflict;
                }
                self.state.revision += 1;
                let revision = self.state.revision;
                let create_revision = self
                    .state
                    .data
                    .get(key)
                    .map_or(revision, |kv| kv.create_revision);
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision,
                    mod_revision: revision,
                    lease: *lease,
                };
                self.state.data.insert(key.clone(), kv.clone());
                self.emit(WatchEvent {
                    kind: WatchEventKind::Put,
                    kv,
                    revision,
                });
                OpOutcome::Written { revision }
            }
            Op::Delete { key, cond } => {
                let current = self.state.data.get(key).map_or(0, |kv| kv.mod_revision);
                if let Some(conflict) = check(*cond, current) {
                    return conflict;
                }
                if current == 0 {
                    return OpOutcome::Absent;
                }
                OpOutcome::Written {
                    revision: self.delete_key(key),
                }
            }
            Op::GrantLease { id, ttl_ms } => {
                self.state.leases.insert(
                    *id,
                    Lease {
                        id: *id,
                        ttl_ms: *ttl_ms,
                    },
                );
                // Granting a lease changes no key, so it does not bump the revision.
                OpOutcome::Written {
                    revision: self.state.revision,
                }
            }
            Op::RevokeLease { id } => {
                if self.state.leases.remove(id).is_none() {
                    return OpOutcome::NoLease { id: *id };
                }
                let keys: Vec<String> = self
                    .state
                    .data
                    .values()
                    .filter(|kv| kv.lease == Some(*id))
                    .map(|kv| kv.key.clone())
                    .collect();
                for key in keys {
                    self.delete_key(&key);
                }
                OpOutcome::Written {
                    revision: self.state.revision,
                }
            }
        }
    }

    fn delete_key(&mut self, key: &str) -> u64 {
        self.state.data.remove(key);
        self.state.revision += 1;
        let revision = self.state.revision;
        self.emit(WatchEvent {
            kind: WatchEventKind::Delete,
            kv: KeyValue {
                key: key.to_string(),
                value: String::new(),
                create_revision: 0,
                mod_revision: revision,
                lease: None,
            },
            revision,
        });
        revision
    }

    fn emit(&mut self, ev: WatchEvent) {
        self.subscribers.retain(|s| {
            if !ev.kv.key.starts_with(&s.prefix) || ev.revision <= s.after {
                return !s.tx.is_closed();
            }
            // A watcher that cannot keep up is dropped; it sees its channel close and re-lists.
            s.tx.try_send(Ok(ev.clone())).is_ok()
        });
        self.history.push_back(ev);
        while self.history.len() > HISTORY_LEN {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.revision;
            }
        }
    }

    /// Closes every live watch: each watcher sees its channel end and re-lists (used when the
    /// store stops serving).
    pub fn close_watchers(&mut self) {
        self.subscribers.clear();
    }

    /// Starts a watch of `prefix` after `after_revision`, replaying kept history first.
    ///
    /// # Errors
    /// [`TopoError::Compacted`] when that history is gone.
    pub fn watch(&mut self, prefix: &str, after_revision: u64) -> Result<Watcher> {
        if after_revision < self.compacted {
            return Err(TopoError::Compacted {
                requested: after_revision,
                oldest: self.compacted,
            });
        }
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL);
        for ev in self.history.iter() {
            if ev.revision > after_revision
                && ev.kv.key.starts_with(prefix)
                && tx.try_send(Ok(ev.clone())).is_err()
            {
                return Err(TopoError::Compacted {
                    requested: after_revision,
                    oldest: self.compacted,
                });
            }
        }
        self.subscribers.push(Subscriber {
            prefix: prefix.to_string(),
            after: after_revision,
            tx,
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
            cond: Condition::None,
            lease: None,
        }
    }

    #[test]
    fn revisions_grow_and_cas_checks() {
        let mut c = KvCore::default();
        assert_eq!(c.apply(&put("a", "1")), OpOutcome::Written { revision: 1 });
        assert_eq!(c.apply(&put("a", "2")), OpOutcome::Written { revision: 2 });
        let kv = c.get("a").expect("present");
        assert_eq!(kv.create_revision, 1);
        assert_eq!(kv.mod_revision, 2);
        let stale = Op::Put {
            key: "a".into(),
            value: "3".into(),
            cond: Condition::ModRevision(1),
            lease: None,
        };
        assert_eq!(
            c.apply(&stale),
            OpOutcome::Conflict {
                expected: 1,
                found: 2
            }
        );
    }

    #[test]
    fn a_watch_ahead_of_the_state_skips_what_it_has_seen() {
        // A replica that has applied revision 1 serves a watcher that has already seen 2.
        let mut c = KvCore::default();
        c.apply(&put("k", "1"));
        let mut w = c.watch("", 2).expect("watch");
        c.apply(&put("k", "2"));
        c.apply(&put("k", "3"));
        let ev = w.try_recv().expect("event").expect("ok");
        assert_eq!(ev.revision, 3);
        assert!(w.try_recv().is_err());
    }

    #[test]
    fn compacted_history_is_reported() {
        let mut c = KvCore::default();
        for i in 0..(HISTORY_LEN + 10) {
            c.apply(&put("k", &i.to_string()));
        }
        assert!(matches!(c.watch("", 1), Err(TopoError::Compacted { .. })));
        assert!(c.watch("", (HISTORY_LEN + 5) as u64).is_ok());
    }
}
