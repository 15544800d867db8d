//! [`DiskStorage`]: the Raft log, hard state and snapshot of one node, kept in memory for
//! reading and persisted in its data directory.
//!
//! # Files
//!
//! - `raft.log`: a [record file](super::wal) of `Entry` and `HardState` records, appended
//!   and fsynced once per `Ready`. On replay an entry whose index is already present
//!   truncates the tail from there (Raft overwrote a conflicting suffix), and the last
//!   hard state wins. After a snapshot the file is rewritten, atomically, with only the
//!   entries after it.
//! - `LOCK`: held with an exclusive lock while a node has the directory open.
//! - `snapshot`: one `Snapshot` record (metadata and data), replaced atomically. Its data is
//!   [`SnapshotData`] as JSON: the key-value state and the members' addresses.
//!
//! A fresh directory is bootstrapped with an empty snapshot at index 0 whose configuration
//! is the initial voters, the way etcd's `--initial-cluster` works.

use super::wal::{self, Kind, RecordFile, LOG_MAGIC, SNAP_MAGIC};
use crate::error::{Result, TopoError};
use crate::kv::KvState;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a snapshot's data holds: the state machine, and where every member listens (so a
/// node that joins by snapshot can reach the others).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotData {
    pub kv: KvState,
    #[serde(default)]
    pub members: BTreeMap<u64, String>,
}

impl SnapshotData {
    /// Decodes snapshot data.
    ///
    /// # Errors
    /// [`TopoError::Corrupt`] when the bytes are not a snapshot image.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotData> {
        serde_json::from_slice(bytes).map_err(|e| TopoError::Corrupt {
            key: "raft snapshot data".into(),
            message: e.to_string(),
        })
    }

    /// Encodes snapshot data.
    ///
    /// # Errors
    /// [`TopoError::Corrupt`] if the state cannot be serialised (it always can).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| TopoError::Corrupt {
            key: "raft snapshot data".into(),
            message: e.to_string(),
        })
    }
}

/// The log file's name inside the data directory.
pub const LOG_FILE: &str = "raft.log";
/// The snapshot file's name inside the data directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// The file a running node holds locked inside its data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A node's Raft storage. Only the node's driver touches it, so it needs no lock.
pub struct DiskStorage {
    dir: PathBuf,
    /// Held (locked) for as long as this storage is open, so that two nodes never share a
    /// data directory.
    _lock: std::fs::File,
    log: RecordFile,
    hard_state: HardState,
    /// The latest snapshot, with its data.
    snapshot: Snapshot,
    /// Entries after the snapshot: `entries[0].index == snapshot index + 1`.
    entries: Vec<Entry>,
    /// Whether buffered writes must be fsynced before the node may speak.
    must_sync: bool,
    /// Set when Raft asked for a snapshot newer than the latest (one that includes a new
    /// member); the node then makes one.
    snapshot_wanted: std::cell::Cell<bool>,
}

fn pb_corrupt(path: &Path, offset: u64, e: impl std::fmt::Display) -> TopoError {
    TopoError::Corrupt {
        key: format!("{} at offset {offset}", path.display()),
        message: e.to_string(),
    }
}

fn encode_pb(m: &impl protobuf::Message) -> Result<Vec<u8>> {
    m.write_to_bytes().map_err(|e| TopoError::Corrupt {
        key: "raft record".into(),
        message: e.to_string(),
    })
}

fn to_raft(e: TopoError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl DiskStorage {
    /// Opens the storage in `dir`, creating and bootstrapping it with `voters` when empty.
    ///
    /// # Errors
    /// I/O errors, and [`TopoError::Corrupt`] naming the file and offset of damage that is
    /// not a torn tail.
    pub fn open(dir: &Path, voters: &[u64], members: &BTreeMap<u64, String>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(TopoError::invalid(
                    "raft.data_dir",
                    format!("{} is in use by another node", dir.display()),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let snap_path = dir.join(SNAPSHOT_FILE);
        let snapshot = match wal::read_whole(&snap_path, SNAP_MAGIC)? {
            Some(records) => {
                let rec = records
                    .into_iter()
                    .find(|r| r.kind == Kind::Snapshot)
                    .ok_or_else(|| pb_corrupt(&snap_path, 8, "no snapshot record"))?;
                Snapshot::parse_from_bytes(&rec.payload)
                    .map_err(|e| pb_corrupt(&snap_path, rec.offset, e))?
            }
            None => {
                let mut s = Snapshot::default();
                s.mut_metadata().mut_conf_state().voters = voters.to_vec();
                let data = SnapshotData {
                    kv: KvState::default(),
                    members: members.clone(),
                };
                s.data = data.encode()?.into();
                wal::write_atomic(&snap_path, SNAP_MAGIC, &[(Kind::Snapshot, encode_pb(&s)?)])?;
                tracing::info!(dir = %dir.display(), voters = ?voters, "bootstrapped raft storage");
                s
            }
        };
        let log_path = dir.join(LOG_FILE);
        let (log, records) = RecordFile::open(&log_path, LOG_MAGIC)?;
        let snap_index = snapshot.get_metadata().index;
        let mut st = DiskStorage {
            dir: dir.to_path_buf(),
            _lock: lock,
            log,
            hard_state: HardState::default(),
            snapshot,
            entries: Vec::new(),
            must_sync: false,
            snapshot_wanted: std::cell::Cell::new(false),
        };
        for rec in records {
            match rec.kind {
                Kind::Entry => {
                    let e = Entry::parse_from_bytes(&rec.payload)
                        .map_err(|e| pb_corrupt(&log_path, rec.offset, e))?;
                    if e.index <= snap_index {
                        continue;
                    }
                    if e.index > st.last_index() + 1 {
                        return Err(pb_corrupt(
                            &log_path,
                            rec.offset,
                            format!(
                                "entry {} leaves a gap after index {}",
                                e.index,
                                st.last_index()
                            ),
                        ));
                    }
                    st.put_entry(e);
                }
                Kind::HardState => {
                    st.hard_state = HardState::parse_from_bytes(&rec.payload)
                        .map_err(|e| pb_corrupt(&log_path, rec.offset, e))?;
                }
                Kind::Snapshot => {
                    return Err(pb_corrupt(
                        &log_path,
                        rec.offset,
                        "snapshot record in the log",
                    ))
                }
            }
        }
        let snap_term = st.snapshot.get_metadata().term;
        st.hard_state.term = st.hard_state.term.max(snap_term);
        st.hard_state.commit = st.hard_state.commit.max(snap_index);
        if st.hard_state.commit > st.last_index() {
            // Only possible if the log lost fsynced entries; keep what is provable.
            tracing::warn!(
                commit = st.hard_state.commit,
                last_index = st.last_index(),
                "persisted commit index is past the log's end; clamping"
            );
            st.hard_state.commit = st.last_index();
        }
        Ok(st)
    }

    fn put_entry(&mut self, e: Entry) {
        let first = self.first_index();
        if e.index < first + self.entries.len() as u64 {
            self.entries.truncate((e.index - first) as usize);
        }
        self.entries.push(e);
    }

    /// Returns the directory this storage lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the latest snapshot.
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Returns the index of the latest snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Returns whether Raft asked for a fresher snapshot than the latest, and forgets it.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// Returns the persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Appends entries from a `Ready`, replacing any conflicting suffix. Written on the next
    /// [`DiskStorage::sync`].
    ///
    /// # Errors
    /// [`TopoError::Corrupt`] if the entries would leave a gap or overwrite compacted ones.
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        if first.index < self.first_index() || first.index > self.last_index() + 1 {
            return Err(TopoError::Corrupt {
                key: self.dir.join(LOG_FILE).display().to_string(),
                message: format!(
                    "append at {} outside [{}, {}]",
                    first.index,
                    self.first_index(),
                    self.last_index() + 1
                ),
            });
        }
        for e in ents {
            self.log.append(Kind::Entry, &encode_pb(e)?);
            self.put_entry(e.clone());
        }
        self.must_sync = true;
        Ok(())
    }

    /// Records a new hard state. Written on the next [`DiskStorage::sync`].
    ///
    /// # Errors
    /// Encoding errors only.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.hard_state = hs.clone();
        self.log.append(Kind::HardState, &encode_pb(hs)?);
        self.must_sync = true;
        Ok(())
    }

    /// Records a higher commit index from a `LightReady`. It needs no fsync: a lost commit
    /// index is learnt again from the leader.
    ///
    /// # Errors
    /// Encoding errors only.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        self.hard_state.commit = commit;
        let hs = self.hard_state.clone();
        self.log.append(Kind::HardState, &encode_pb(&hs)?);
        Ok(())
    }

    /// Writes what is buffered, fsyncing when entries or a hard state require it.
    ///
    /// # Errors
    /// I/O errors; the node must stop then.
    pub fn sync(&mut self) -> Result<()> {
        if self.log.has_pending() || self.must_sync {
            self.log.sync(self.must_sync)?;
            self.must_sync = false;
        }
        Ok(())
    }

    /// Installs a snapshot received from the leader: the snapshot file is replaced first,
    /// then the log is rewritten without the entries the snapshot covers.
    ///
    /// # Errors
    /// I/O errors; the node must stop then.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let index = meta.index;
        wal::write_atomic(
            &self.dir.join(SNAPSHOT_FILE),
            SNAP_MAGIC,
            &[(Kind::Snapshot, encode_pb(&snap)?)],
        )?;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = index;
        self.snapshot = snap;
        self.entries.clear();
        self.rewrite_log()
    }

    /// Makes a snapshot of the state at `index` (already applied) with `conf_state` and
    /// `data`, then drops the log entries it covers.
    ///
    /// # Errors
    /// I/O errors; the node must stop then.
    pub fn compact(&mut self, index: u64, conf_state: ConfState, data: Vec<u8>) -> Result<()> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        let term = raft::Storage::term(self, index).map_err(|e| TopoError::Corrupt {
            key: self.dir.join(LOG_FILE).display().to_string(),
            message: format!("no term for snapshot index {index}: {e}"),
        })?;
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = term;
        snap.mut_metadata().set_conf_state(conf_state);
        snap.data = data.into();
        wal::write_atomic(
            &self.dir.join(SNAPSHOT_FILE),
            SNAP_MAGIC,
            &[(Kind::Snapshot, encode_pb(&snap)?)],
        )?;
        let drop_n = (index - self.snapshot_index()) as usize;
        self.snapshot = snap;
        self.entries.drain(..drop_n.min(self.entries.len()));
        self.rewrite_log()?;
        tracing::info!(
            index,
            term,
            kept_entries = self.entries.len(),
            "raft log compacted"
        );
        Ok(())
    }

    fn rewrite_log(&mut self) -> Result<()> {
        let mut records = Vec::with_capacity(self.entries.len() + 1);
        records.push((Kind::HardState, encode_pb(&self.hard_state)?));
        for e in &self.entries {
            records.push((Kind::Entry, encode_pb(e)?));
        }
        self.log.rewrite(LOG_MAGIC, &records)?;
        self.must_sync = false;
        Ok(())
    }
}

impl raft::Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(to_raft(TopoError::Corrupt {
                key: self.dir.join(LOG_FILE).display().to_string(),
                message: format!(
                    "entries [{low}, {high}) asked of a log ending at {}",
                    self.last_index()
                ),
            }));
        }
        let off = self.first_index();
        let mut ents = self.entries[(low - off) as usize..(high - off) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(DiskStorage::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(DiskStorage::last_index(self))
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snapshot.get_metadata().get_conf_state();
        // A peer refuses a snapshot whose configuration does not include it (a member added
        // after the snapshot was taken): have the node make a fresh one, and let Raft retry.
        let knows_peer = cs.voters.contains(&to) || cs.learners.contains(&to);
        if self.snapshot_index() < request_index || !knows_peer {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: data.as_bytes().to_vec().into(),
            ..Default::default()
        }
    }

    fn open(dir: &Path) -> DiskStorage {
        DiskStorage::open(dir, &[1, 2, 3], &BTreeMap::new()).expect("open")
    }

    #[test]
    fn entries_and_hard_state_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = open(dir.path());
            assert_eq!(
                s.initial_state().expect("state").conf_state.voters,
                vec![1, 2, 3]
            );
            s.append(&[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")])
                .expect("append");
            // A new leader overwrote index 3 onwards.
            s.append(&[entry(3, 2, "c2"), entry(4, 2, "d")])
                .expect("append");
            let hs = HardState {
                term: 2,
                vote: 2,
                commit: 3,
                ..Default::default()
            };
            s.set_hard_state(&hs).expect("hs");
            s.sync().expect("sync");
        }
        let s = open(dir.path());
        assert_eq!(Storage::last_index(&s).expect("last"), 4);
        assert_eq!(s.term(3).expect("term"), 2);
        let ents = s
            .entries(1, 5, None, GetEntriesContext::empty(false))
            .expect("entries");
        let data: Vec<_> = ents.iter().map(|e| e.data.to_vec()).collect();
        assert_eq!(
            data,
            vec![b"a".to_vec(), b"b".to_vec(), b"c2".to_vec(), b"d".to_vec()]
        );
        let hs = s.initial_state().expect("state").hard_state;
        assert_eq!((hs.term, hs.vote, hs.commit), (2, 2, 3));
    }

    #[test]
    fn a_data_dir_is_used_by_one_node_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        match DiskStorage::open(dir.path(), &[1], &BTreeMap::new()) {
            Err(TopoError::Invalid { what, .. }) => assert_eq!(what, "raft.data_dir"),
            Err(e) => panic!("expected the lock to refuse, got {e}"),
            Ok(_) => panic!("two storages on one directory"),
        }
        drop(s);
        open(dir.path());
    }

    #[test]
    fn compaction_keeps_later_entries_and_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = open(dir.path());
            let ents: Vec<_> = (1..=10).map(|i| entry(i, 1, "x")).collect();
            s.append(&ents).expect("append");
            s.sync().expect("sync");
            let cs = ConfState {
                voters: vec![1, 2],
                ..Default::default()
            };
            s.compact(
                7,
                cs,
                b"{\"kv\":{\"revision\":0,\"data\":{},\"leases\":{}}}".to_vec(),
            )
            .expect("compact");
            assert!(matches!(
                s.term(5),
                Err(raft::Error::Store(StorageError::Compacted))
            ));
        }
        let s = open(dir.path());
        assert_eq!(Storage::first_index(&s).expect("first"), 8);
        assert_eq!(Storage::last_index(&s).expect("last"), 10);
        assert_eq!(s.term(7).expect("snapshot term"), 1);
        let snap = s.snapshot(0, 2).expect("snapshot");
        assert_eq!(snap.get_metadata().index, 7);
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2]);
        assert_eq!(
            s.initial_state().expect("state").conf_state.voters,
            vec![1, 2]
        );
    }
}
