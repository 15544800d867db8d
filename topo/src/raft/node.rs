//! The Raft node driver: [`Node`] owns the `RawNode`, steps it with peer messages, client
//! requests and ticks, and runs the one [`Node::on_ready`] that persists, sends and applies
//! in the order raft-rs documents (`examples/five_mem_node`).
//!
//! The replicated state — the [`KvCore`] that committed entries are applied to, and the
//! node's published [`NodeStatus`] — lives behind `Arc<Mutex<_>>`s shared with
//! [`super::RaftStore`], so reads and watches never queue behind the driver. The driver runs
//! on a thread of its own ([`Node::run`]), since it does blocking file I/O and fsyncs.
//!
//! Everything the driver does is counted in ticks, not read from a clock, so the randomized
//! tests can drive it deterministically.

use super::lease::LeaseClock;
use super::logger::logger;
use super::proposal::{Applied, Cmd, RequestId};
use super::storage::{DiskStorage, SnapshotData};
use crate::error::{Result, TopoError};
use crate::kv::{KvCore, Op, OpOutcome};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use raft::{Config, RawNode, ReadOnlyOption, ReadState, SnapshotStatus, StateRole};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Ticks without a heartbeat before a follower stands for election (randomised up to twice
/// this by raft-rs).
pub const ELECTION_TICKS: usize = 10;
/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// Ticks after which an unanswered read index is asked again (a leader drops read requests
/// until it has committed an entry of its own term, and a message may be lost).
const READ_RETRY_TICKS: u64 = 3;
/// Messages handled between two looks at the clock.
const DRAIN: usize = 1024;

/// Where a caller's answer goes.
pub type Reply<T> = tokio::sync::oneshot::Sender<Result<T>>;

/// The sending side of a node's inbox.
/// Where a node's outgoing messages go. The HTTP transport implements it; the randomized
/// tests implement it with an in-memory network.
pub trait Outbox: Send {
    /// Queues messages for their recipients (`Message::to`); never blocks.
    fn send(&mut self, msgs: Vec<Message>);

    /// Sets (or with `None` removes) the address of a peer.
    fn set_peer(&mut self, id: u64, addr: Option<String>);
}

pub type NodeSender = Sender<NodeMsg>;

/// Everything a node is told.
pub enum NodeMsg {
    /// A message from a peer.
    Raft(Box<Message>),
    /// A write; answered once applied on this node.
    Propose { cmd: Cmd, reply: Reply<Applied> },
    /// A membership change; answered once applied on this node.
    ChangeMember {
        change: MemberChange,
        reply: Reply<Applied>,
    },
    /// A linearizable read barrier: answered once this node has applied everything that was
    /// committed when the read arrived.
    Read { reply: Reply<()> },
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// The transport finished (or failed) sending a snapshot.
    SnapshotSent { to: u64, ok: bool },
    /// Stop the driver.
    Shutdown,
}

/// A change of voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Adds a voter that listens on `addr`.
    Add { id: u64, addr: String },
    /// Removes a voter.
    Remove { id: u64 },
}

/// How to build a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub id: u64,
    /// The initial voters and every known address, this node included.
    pub peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub tick: Duration,
    /// Applied entries between two snapshots.
    pub snapshot_every: u64,
    /// Ticks a request may wait before it fails as unavailable.
    pub request_ticks: u64,
    /// A fixed election timeout in ticks instead of raft-rs's random one in
    /// [`ELECTION_TICKS`, 2 × `ELECTION_TICKS`): the randomized tests draw it from their seed.
    pub election_ticks: Option<usize>,
}

/// What a node says of itself (`GET /v1/status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `pre_candidate`.
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    /// Every member's address.
    pub peers: BTreeMap<u64, String>,
    pub leases: usize,
    /// Whether a membership change removed this node.
    pub removed: bool,
    /// Why the driver stopped, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// The state a node shares with its [`super::RaftStore`].
#[derive(Clone)]
pub struct Shared {
    pub core: Arc<Mutex<KvCore>>,
    pub status: Arc<Mutex<NodeStatus>>,
}

/// Locks a mutex, taking the data even if a panic poisoned it (every change under these
/// locks is applied whole).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Waiting<T> {
    reply: Reply<T>,
    since: u64,
}

/// One read index asked of Raft, on behalf of every read that arrived meanwhile.
struct PendingRead {
    waiters: Vec<Waiting<()>>,
    ctx: Vec<u8>,
    asked: u64,
}

/// One Raft node: the `RawNode`, the state machine it applies to, and the callers waiting.
pub struct Node {
    id: u64,
    boot: u64,
    raw: RawNode<DiskStorage>,
    shared: Shared,
    outbox: Box<dyn Outbox>,
    /// Addresses given at start; they win over remembered ones.
    cfg_peers: BTreeMap<u64, String>,
    members: BTreeMap<u64, String>,
    conf_state: ConfState,
    applied: u64,
    role: StateRole,
    snapshot_every: u64,
    request_ticks: u64,
    ticks: u64,
    next_seq: u64,
    proposals: HashMap<u64, Waiting<Applied>>,
    /// Reads not yet asked of Raft: they share the next read index.
    queued_reads: Vec<Waiting<()>>,
    reads: HashMap<u64, PendingRead>,
    /// Reads whose read index is known, waiting for `applied` to reach it.
    read_waiters: Vec<(u64, Waiting<()>)>,
    leases: LeaseClock,
    removed: bool,
    /// This leader's own removal, committed during a ready and applied after it: raft-rs
    /// cannot finish a ready for a leader that is no longer a member.
    deferred_removal: Option<(u64, ConfChange, Vec<u8>)>,
}

fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre_candidate",
    }
}

fn raft_err(what: &str, e: raft::Error) -> TopoError {
    TopoError::Unavailable(format!("{what}: {e}"))
}

impl Node {
    /// Opens the node's storage (bootstrapping an empty data dir with `opts.peers` as the
    /// voters), rebuilds the state machine from the latest snapshot, and creates the
    /// `RawNode`. Committed entries after the snapshot are applied again by the first readies.
    ///
    /// # Errors
    /// Storage errors ([`TopoError::Corrupt`] names file and offset) and invalid options.
    pub fn open(opts: &NodeOptions, mut outbox: Box<dyn Outbox>) -> Result<Node> {
        let voters: Vec<u64> = opts.peers.keys().copied().collect();
        let storage = DiskStorage::open(&opts.data_dir, &voters, &opts.peers)?;
        let snap = storage.latest_snapshot();
        let data = SnapshotData::decode(&snap.data)?;
        let applied = snap.get_metadata().index;
        let conf_state = snap.get_metadata().get_conf_state().clone();
        let mut members = data.members;
        members.extend(opts.peers.iter().map(|(k, v)| (*k, v.clone())));
        let core = KvCore::from_state(data.kv);
        let mut leases = LeaseClock::new(opts.tick);
        leases.reset(core.leases());

        let config = Config {
            id: opts.id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            ..Default::default()
        };
        let config = match opts.election_ticks {
            Some(t) => Config {
                election_tick: t,
                min_election_tick: t,
                max_election_tick: t + 1,
                ..config
            },
            None => config,
        };
        config
            .validate()
            .map_err(|e| TopoError::invalid("raft config", e.to_string()))?;
        let mut raw = RawNode::new(&config, storage, &logger(opts.id))
            .map_err(|e| raft_err("raft node", e))?;
        for (id, addr) in &members {
            if *id != opts.id {
                outbox.set_peer(*id, Some(addr.clone()));
            }
        }
        if conf_state.voters == [opts.id] {
            // The only voter needs no election timeout to know it wins.
            raw.campaign().map_err(|e| raft_err("campaign", e))?;
        }
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let removed = !conf_state.voters.contains(&opts.id)
            && !conf_state.learners.contains(&opts.id)
            && !conf_state.voters.is_empty();
        tracing::info!(
            node = opts.id,
            applied,
            voters = ?conf_state.voters,
            dir = %opts.data_dir.display(),
            "raft node opened"
        );
        let mut node = Node {
            id: opts.id,
            boot,
            raw,
            shared: Shared {
                core: Arc::new(Mutex::new(core)),
                status: Arc::new(Mutex::new(NodeStatus::default())),
            },
            outbox,
            cfg_peers: opts.peers.clone(),
            members,
            conf_state,
            applied,
            role: StateRole::Follower,
            snapshot_every: opts.snapshot_every.max(1),
            request_ticks: opts.request_ticks.max(1),
            ticks: 0,
            next_seq: 0,
            proposals: HashMap::new(),
            queued_reads: Vec::new(),
            reads: HashMap::new(),
            read_waiters: Vec::new(),
            leases,
            removed,
            deferred_removal: None,
        };
        // Apply what this node's own log already holds as committed, so that even stale
        // reads after a restart see everything this node had acknowledged.
        node.on_ready()?;
        node.publish_status();
        Ok(node)
    }

    /// Returns the state shared with the store.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Returns this node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Returns the current term and whether this node leads it.
    pub fn term_and_leadership(&self) -> (u64, bool) {
        (self.raw.raft.term, self.raw.raft.state == StateRole::Leader)
    }

    /// Returns the voters as of the last applied entry.
    pub fn voters(&self) -> &[u64] {
        &self.conf_state.voters
    }

    /// Returns the index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn request_id(&mut self) -> (u64, Vec<u8>) {
        self.next_seq += 1;
        let id = RequestId {
            node: self.id,
            boot: self.boot,
            seq: self.next_seq,
        };
        (self.next_seq, id.encode())
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> TopoError {
        let leader = self.raw.raft.leader_id;
        TopoError::Unavailable(format!(
            "raft node {}: {why} (term {}, leader {})",
            self.id,
            self.raw.raft.term,
            if leader == 0 {
                "unknown".to_string()
            } else {
                leader.to_string()
            }
        ))
    }

    /// Handles one message; returns `false` when the node must stop.
    pub fn handle(&mut self, msg: NodeMsg) -> bool {
        match msg {
            NodeMsg::Raft(mut m) => {
                let last = self.raw.raft.raft_log.last_index();
                if m.get_msg_type() == MessageType::MsgHeartbeat && m.commit > last {
                    // A leader only sends a commit index this node has acknowledged; a higher
                    // one means this node lost its log (a wiped data dir). raft-rs would
                    // panic; clamp it, and the leader finds out from the appends that follow.
                    tracing::warn!(
                        node = self.id,
                        commit = m.commit,
                        last_index = last,
                        "heartbeat commit beyond this node's log; was its data dir wiped?"
                    );
                    m.commit = last;
                }
                if m.to != self.id {
                    tracing::debug!(
                        to = m.to,
                        node = self.id,
                        "raft message for another node dropped"
                    );
                } else if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(node = self.id, error = %e, "raft message not stepped");
                }
            }
            NodeMsg::Propose { cmd, reply } => self.propose(cmd, Some(reply)),
            NodeMsg::ChangeMember { change, reply } => self.change_member(change, reply),
            NodeMsg::Read { reply } => self.read(reply),
            NodeMsg::Unreachable(id) => {
                self.raw.report_unreachable(id);
                if id == self.raw.raft.leader_id && self.raw.raft.state != StateRole::Leader {
                    // What this follower forwarded is most likely lost: let callers go and try
                    // another node now rather than at their timeout.
                    self.fail_forwarded("the leader is unreachable");
                }
            }
            NodeMsg::SnapshotSent { to, ok } => self.raw.report_snapshot(
                to,
                if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                },
            ),
            NodeMsg::Shutdown => return false,
        }
        true
    }

    /// Proposes `cmd`; `reply` (if any) hears the outcome once the entry is applied here.
    pub fn propose(&mut self, cmd: Cmd, reply: Option<Reply<Applied>>) {
        if self.removed {
            if let Some(r) = reply {
                let _ = r.send(Err(self.unavailable("removed from the cluster")));
            }
            return;
        }
        let (seq, ctx) = self.request_id();
        match self.raw.propose(ctx, cmd.encode()) {
            Ok(()) => {
                if let Some(reply) = reply {
                    self.proposals.insert(
                        seq,
                        Waiting {
                            reply,
                            since: self.ticks,
                        },
                    );
                }
            }
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(self.unavailable(format!("proposal dropped: {e}"))));
                }
            }
        }
    }

    fn change_member(&mut self, change: MemberChange, reply: Reply<Applied>) {
        let mut cc = ConfChange::default();
        match &change {
            MemberChange::Add { id, addr } => {
                if *id == 0 || addr.is_empty() {
                    let _ = reply.send(Err(TopoError::invalid(
                        "member",
                        "a member needs a non-zero id and an address",
                    )));
                    return;
                }
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *id;
                cc.context = addr.clone().into_bytes().into();
            }
            MemberChange::Remove { id } => {
                if !self.conf_state.voters.contains(id) {
                    let _ = reply.send(Err(TopoError::NotFound(format!("member {id}"))));
                    return;
                }
                if self.conf_state.voters.len() == 1 {
                    let _ = reply.send(Err(TopoError::invalid(
                        "member",
                        "cannot remove the last voter",
                    )));
                    return;
                }
                if *id == self.id && self.raw.raft.state == StateRole::Leader {
                    // A leader does not remove itself: it hands over, and the caller retries
                    // with the new leader, which then removes this node.
                    if let Some(next) = self.conf_state.voters.iter().find(|v| **v != self.id) {
                        self.raw.transfer_leader(*next);
                    }
                    let _ = reply.send(Err(self.unavailable(
                        "leadership is being transferred before this node is removed; retry",
                    )));
                    return;
                }
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
            }
        }
        let (seq, ctx) = self.request_id();
        match self.raw.propose_conf_change(ctx, cc) {
            Ok(()) => {
                tracing::info!(node = self.id, change = ?change, "membership change proposed");
                self.proposals.insert(
                    seq,
                    Waiting {
                        reply,
                        since: self.ticks,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(self.unavailable(format!("member change dropped: {e}"))));
            }
        }
    }

    fn read(&mut self, reply: Reply<()>) {
        if self.removed {
            let _ = reply.send(Err(self.unavailable("removed from the cluster")));
            return;
        }
        self.queued_reads.push(Waiting {
            reply,
            since: self.ticks,
        });
    }

    /// Asks Raft for one read index on behalf of every queued read.
    fn flush_reads(&mut self) {
        if self.queued_reads.is_empty() {
            return;
        }
        let (seq, ctx) = self.request_id();
        self.raw.read_index(ctx.clone());
        self.reads.insert(
            seq,
            PendingRead {
                waiters: std::mem::take(&mut self.queued_reads),
                ctx,
                asked: self.ticks,
            },
        );
    }

    /// Advances Raft's logical clock: elections, heartbeats, lease expiry, request timeouts.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
        self.leases.tick();
        if self.raw.raft.state == StateRole::Leader {
            for id in self.leases.take_expired() {
                tracing::info!(lease = id, "lease expired; revoking");
                self.propose(
                    Cmd::Op {
                        op: Op::RevokeLease { id },
                    },
                    None,
                );
            }
        }
        let now = self.ticks;
        for r in self.reads.values_mut() {
            if now >= r.asked + READ_RETRY_TICKS {
                self.raw.read_index(r.ctx.clone());
                r.asked = now;
            }
        }
        self.expire_requests();
    }

    fn fail_forwarded(&mut self, why: &str) {
        if self.proposals.is_empty() && self.reads.is_empty() {
            return;
        }
        let err = self.unavailable(why);
        for (_, w) in self.proposals.drain() {
            let _ = w.reply.send(Err(TopoError::Unavailable(err.to_string())));
        }
        for (_, r) in self.reads.drain() {
            for w in r.waiters {
                let _ = w.reply.send(Err(TopoError::Unavailable(err.to_string())));
            }
        }
    }

    fn expire_requests(&mut self) {
        let now = self.ticks;
        let limit = self.request_ticks;
        let timed_out = |since: u64| now.saturating_sub(since) > limit;
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, w)| timed_out(w.since) || w.reply.is_closed())
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(w) = self.proposals.remove(&k) {
                let _ = w
                    .reply
                    .send(Err(self.unavailable("write not applied in time")));
            }
        }
        let mut expired = Vec::new();
        for r in self.reads.values_mut() {
            let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut r.waiters)
                .into_iter()
                .partition(|w| timed_out(w.since) || w.reply.is_closed());
            r.waiters = keep;
            expired.extend(gone);
        }
        self.reads.retain(|_, r| !r.waiters.is_empty());
        for w in expired {
            let _ = w.reply.send(Err(self.unavailable("no read index in time")));
        }
        let (expired, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.read_waiters)
            .into_iter()
            .partition(|(_, w)| timed_out(w.since) || w.reply.is_closed());
        self.read_waiters = keep;
        for (_, w) in expired {
            let _ = w
                .reply
                .send(Err(self.unavailable("read not applied in time")));
        }
    }

    /// Handles one `Ready`, in raft-rs's documented order:
    ///
    /// 1. send the messages a leader may send before it persists;
    /// 2. install a snapshot from the leader;
    /// 3. apply committed entries;
    /// 4. append new entries and 5. the hard state to the log, and fsync;
    /// 6. send the messages that had to wait for that fsync (votes, append responses);
    /// 7. `advance`, then record the light ready's commit index, send its messages, apply
    ///    its committed entries, and `advance_apply`.
    ///
    /// Around that: reads queued since the last ready are asked of Raft as one read index,
    /// read states release waiting reads, a role change restarts lease TTLs,
    /// and a snapshot is taken every `snapshot_every` applied entries.
    ///
    /// # Errors
    /// Storage failures; the node cannot go on safely after one and must stop.
    pub fn on_ready(&mut self) -> Result<()> {
        self.flush_reads();
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();

        if let Some(ss) = ready.ss() {
            let (role, leader) = (ss.raft_state, ss.leader_id);
            self.on_role(role, leader);
        }

        // 1. Messages the leader sends while it persists (replication runs concurrently).
        if !ready.messages().is_empty() {
            self.outbox.send(ready.take_messages());
        }

        // 2. A snapshot from the leader replaces the state machine.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }

        // 3. Newly committed entries.
        self.apply_entries(ready.take_committed_entries());

        // 4. and 5. New entries and the hard state, fsynced before anything depending on
        // them is said to anyone.
        self.raw.mut_store().append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        self.raw.mut_store().sync()?;

        for rs in ready.take_read_states() {
            self.on_read_state(rs);
        }

        // 6. Messages that needed the fsync.
        if !ready.persisted_messages().is_empty() {
            self.outbox.send(ready.take_persisted_messages());
        }

        // 7. Advance, and handle what that releases.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.outbox.send(light.take_messages());
        self.apply_entries(light.take_committed_entries());
        self.raw.advance_apply();
        self.raw.mut_store().sync()?;

        self.apply_deferred_removal();
        self.release_reads();
        self.maybe_snapshot()?;
        self.publish_status();
        Ok(())
    }

    fn on_role(&mut self, role: StateRole, leader: u64) {
        if role == StateRole::Leader && self.role != StateRole::Leader {
            let core = lock(&self.shared.core);
            self.leases.reset(core.leases());
            tracing::info!(
                node = self.id,
                term = self.raw.raft.term,
                leases = self.leases.tracked(),
                "became raft leader; every lease gets a fresh TTL"
            );
        } else if role != self.role {
            tracing::info!(
                node = self.id,
                term = self.raw.raft.term,
                role = role_name(role),
                leader,
                "raft role changed"
            );
        }
        self.role = role;
    }

    fn install_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let data = SnapshotData::decode(&snap.data)?;
        let index = snap.get_metadata().index;
        let conf_state = snap.get_metadata().get_conf_state().clone();
        self.raw.mut_store().apply_snapshot(snap)?;
        {
            let mut core = lock(&self.shared.core);
            // Watchers of the old state see their channel close and re-list.
            *core = KvCore::from_state(data.kv);
            self.leases.reset(core.leases());
        }
        self.applied = index;
        self.removed =
            !conf_state.voters.contains(&self.id) && !conf_state.learners.contains(&self.id);
        self.conf_state = conf_state;
        let mut members = data.members;
        members.extend(self.cfg_peers.iter().map(|(k, v)| (*k, v.clone())));
        for id in self.members.keys() {
            if !members.contains_key(id) {
                self.outbox.set_peer(*id, None);
            }
        }
        for (id, addr) in &members {
            if *id != self.id {
                self.outbox.set_peer(*id, Some(addr.clone()));
            }
        }
        self.members = members;
        // Entries the snapshot covers are never applied one by one here, so their proposers
        // would only hear at their timeout: tell them now that the outcome is unknown.
        let err = self.unavailable("state replaced by a snapshot; the write's outcome is unknown");
        for (_, w) in self.proposals.drain() {
            let _ = w.reply.send(Err(TopoError::Unavailable(err.to_string())));
        }
        tracing::info!(node = self.id, index, "installed snapshot from the leader");
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let core = self.shared.core.clone();
        let mut core = lock(&core);
        for e in entries {
            self.apply_entry(&mut core, e);
        }
        drop(core);
        self.release_reads();
    }

    fn apply_entry(&mut self, core: &mut KvCore, e: Entry) {
        self.applied = e.index;
        let result = match e.get_entry_type() {
            EntryType::EntryNormal => {
                if e.data.is_empty() {
                    // The empty entry a new leader commits to start its term.
                    return;
                }
                match Cmd::decode(&e.data) {
                    Ok(cmd) => Ok(self.apply_cmd(core, e.index, cmd)),
                    Err(err) => {
                        // Every node skips it alike, so the replicas stay equal.
                        tracing::error!(index = e.index, error = %err, "undecodable raft entry skipped");
                        Err(TopoError::Corrupt {
                            key: format!("raft entry {}", e.index),
                            message: err.to_string(),
                        })
                    }
                }
            }
            EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&e.data) {
                Ok(cc) => {
                    let (id, ty, ctx) = (cc.node_id, cc.get_change_type(), cc.context.to_vec());
                    if ty == ConfChangeType::RemoveNode
                        && id == self.id
                        && self.raw.raft.state == StateRole::Leader
                    {
                        self.deferred_removal = Some((e.index, cc, e.context.to_vec()));
                        return;
                    }
                    self.apply_conf_change(core, e.index, &cc, id, ty, &ctx)
                }
                Err(err) => Err(TopoError::Corrupt {
                    key: format!("raft entry {}", e.index),
                    message: err.to_string(),
                }),
            },
            EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&e.data) {
                Ok(cc) => match self.raw.apply_conf_change(&cc) {
                    Ok(cs) => {
                        self.conf_state = cs;
                        Ok(Applied {
                            index: e.index,
                            outcome: OpOutcome::Written {
                                revision: core.revision(),
                            },
                        })
                    }
                    Err(err) => Err(TopoError::invalid("member change", err.to_string())),
                },
                Err(err) => Err(TopoError::Corrupt {
                    key: format!("raft entry {}", e.index),
                    message: err.to_string(),
                }),
            },
        };
        self.answer(&e.context, result);
    }

    /// Answers the caller that proposed the entry with context `ctx`, if it waits here.
    fn answer(&mut self, ctx: &[u8], result: Result<Applied>) {
        if let Some(id) = RequestId::decode(ctx) {
            if id.node == self.id && id.boot == self.boot {
                if let Some(w) = self.proposals.remove(&id.seq) {
                    let _ = w.reply.send(result);
                }
            }
        }
    }

    /// Applies this leader's own removal once the ready that committed it is done.
    fn apply_deferred_removal(&mut self) {
        let Some((index, cc, ctx)) = self.deferred_removal.take() else {
            return;
        };
        let core = self.shared.core.clone();
        let core = lock(&core);
        let result = self.apply_conf_change(
            &core,
            index,
            &cc,
            cc.node_id,
            cc.get_change_type(),
            &cc.context,
        );
        drop(core);
        self.answer(&ctx, result);
    }

    fn apply_cmd(&mut self, core: &mut KvCore, index: u64, cmd: Cmd) -> Applied {
        let outcome = match cmd {
            Cmd::Op { op } => {
                let out = core.apply(&op);
                if let Op::RevokeLease { id } = op {
                    self.leases.forget(id);
                }
                out
            }
            Cmd::GrantLease { ttl_ms } => {
                let id = index as i64;
                let out = core.apply(&Op::GrantLease { id, ttl_ms });
                self.leases.renew(id, ttl_ms);
                out
            }
            Cmd::KeepAlive { id } => match core.leases().find(|l| l.id == id).map(|l| l.ttl_ms) {
                Some(ttl_ms) => {
                    self.leases.renew(id, ttl_ms);
                    OpOutcome::Written {
                        revision: core.revision(),
                    }
                }
                None => OpOutcome::NoLease { id },
            },
        };
        Applied { index, outcome }
    }

    fn apply_conf_change(
        &mut self,
        core: &KvCore,
        index: u64,
        cc: &ConfChange,
        id: u64,
        ty: ConfChangeType,
        ctx: &[u8],
    ) -> Result<Applied> {
        let cs = self
            .raw
            .apply_conf_change(cc)
            .map_err(|e| TopoError::invalid("member change", e.to_string()))?;
        match ty {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                if let Ok(addr) = std::str::from_utf8(ctx) {
                    if !addr.is_empty() {
                        let addr = self.cfg_peers.get(&id).cloned().unwrap_or(addr.to_string());
                        if id != self.id {
                            self.outbox.set_peer(id, Some(addr.clone()));
                        }
                        self.members.insert(id, addr);
                    }
                }
            }
            ConfChangeType::RemoveNode => {
                self.members.remove(&id);
                if id == self.id {
                    tracing::warn!(node = self.id, "this node was removed from the cluster");
                    self.removed = true;
                    if self.raw.raft.state == StateRole::Leader {
                        // raft-rs keeps a removed leader leading (and heartbeating, so nobody
                        // else stands), and panics when such a leader persists entries. Hand
                        // over to a remaining voter, and step down at once. (This runs between
                        // readies: see `deferred_removal`.)
                        if let Some(next) = cs.voters.first() {
                            self.raw.transfer_leader(*next);
                        }
                        let term = self.raw.raft.term;
                        self.raw.raft.become_follower(term, raft::INVALID_ID);
                    }
                } else {
                    self.outbox.set_peer(id, None);
                }
            }
        }
        tracing::info!(
            node = self.id,
            member = id,
            change = ?ty,
            voters = ?cs.voters,
            "membership changed"
        );
        self.conf_state = cs;
        Ok(Applied {
            index,
            outcome: OpOutcome::Written {
                revision: core.revision(),
            },
        })
    }

    fn on_read_state(&mut self, rs: ReadState) {
        let Some(id) = RequestId::decode(&rs.request_ctx) else {
            return;
        };
        if id.node != self.id || id.boot != self.boot {
            return;
        }
        if let Some(r) = self.reads.remove(&id.seq) {
            for w in r.waiters {
                if rs.index <= self.applied {
                    let _ = w.reply.send(Ok(()));
                } else {
                    self.read_waiters.push((rs.index, w));
                }
            }
        }
    }

    fn release_reads(&mut self) {
        if self.read_waiters.is_empty() {
            return;
        }
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.read_waiters)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.read_waiters = waiting;
        for (_, w) in ready {
            let _ = w.reply.send(Ok(()));
        }
    }

    fn maybe_snapshot(&mut self) -> Result<()> {
        let last = self.raw.store().snapshot_index();
        let wanted = self.raw.store().take_snapshot_request();
        if self.applied <= last || (!wanted && self.applied < last + self.snapshot_every) {
            return Ok(());
        }
        let data = {
            let core = lock(&self.shared.core);
            SnapshotData {
                kv: core.state().clone(),
                members: self.members.clone(),
            }
        }
        .encode()?;
        let applied = self.applied;
        let cs = self.conf_state.clone();
        self.raw.mut_store().compact(applied, cs, data)
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        let st = NodeStatus {
            id: self.id,
            role: role_name(r.state).to_string(),
            term: r.term,
            leader: (r.leader_id != 0).then_some(r.leader_id),
            commit: r.raft_log.committed,
            applied: self.applied,
            last_index: r.raft_log.last_index(),
            snapshot_index: self.raw.store().snapshot_index(),
            voters: self.conf_state.voters.clone(),
            peers: self.members.clone(),
            leases: self.leases.tracked(),
            removed: self.removed,
            stopped: None,
        };
        *lock(&self.shared.status) = st;
    }

    /// Drives the node until it is told to stop or its inbox closes: waits for messages,
    /// ticks every `tick`, and handles readies. A storage failure stops it too.
    pub fn run(mut self, inbox: Receiver<NodeMsg>, tick: Duration) {
        let span = tracing::info_span!("raft_node", node = self.id);
        let _enter = span.enter();
        let mut next_tick = Instant::now() + tick;
        let reason = 'run: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(msg) => {
                    if !self.handle(msg) {
                        break 'run "shut down".to_string();
                    }
                    for _ in 0..DRAIN {
                        match inbox.try_recv() {
                            Ok(msg) => {
                                if !self.handle(msg) {
                                    break 'run "shut down".to_string();
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break 'run "inbox closed".to_string(),
            }
            let now = Instant::now();
            let mut caught_up = 0;
            while now >= next_tick && caught_up < 10 {
                self.tick();
                next_tick += tick;
                caught_up += 1;
            }
            if now >= next_tick {
                // Far behind (the machine stalled): do not burst through missed ticks.
                next_tick = now + tick;
            }
            if let Err(e) = self.on_ready() {
                tracing::error!(node = self.id, error = %e, "raft node stopped on a storage failure");
                break 'run format!("storage failure: {e}");
            }
        };
        self.stop(reason);
    }

    /// Fails whoever still waits, closes the watches and marks the node stopped.
    pub fn stop(mut self, reason: String) {
        tracing::info!(node = self.id, reason = %reason, "raft node stopping");
        lock(&self.shared.core).close_watchers();
        let mut st = lock(&self.shared.status).clone();
        st.stopped = Some(reason);
        *lock(&self.shared.status) = st;
        self.proposals.clear();
        self.queued_reads.clear();
        self.reads.clear();
        self.read_waiters.clear();
    }
}
