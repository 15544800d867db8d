//! Randomized tests: real nodes (driver, disk storage, state machine) over an in-memory
//! network that drops, delays, reorders and partitions messages, with crashes and restarts
//! from the data dir. Each seed replays the same run. Checked: no two leaders in one term,
//! no acknowledged write lost, and every replica ends with the same state.

use super::node::Outbox;
use super::node::{lock, MemberChange, Node, NodeMsg, NodeOptions, ELECTION_TICKS};
use super::proposal::{Applied, Cmd};
use crate::error::Result;
use crate::kv::{KvState, Op, OpOutcome};
use crate::store::Condition;
use raft::eraftpb::{Message, MessageType};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A directory for the nodes' files: in memory where the machine has a tmpfs (the runs
/// model process crashes, not power loss, so the files need no platter, and fsyncs there
/// cost nothing), else the usual temporary directory.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

struct SimOutbox(Arc<Mutex<Vec<Message>>>);

impl Outbox for SimOutbox {
    fn send(&mut self, msgs: Vec<Message>) {
        lock(&self.0).extend(msgs);
    }
    fn set_peer(&mut self, _id: u64, _addr: Option<String>) {}
}

struct InFlight {
    msg: Message,
    at: u64,
}

struct Write {
    key: String,
    value: String,
    rx: oneshot::Receiver<Result<Applied>>,
}

/// How hostile the network is.
struct Chaos {
    drop: f64,
    max_delay: u64,
    partition_toggle: f64,
    crash: f64,
    restart: f64,
    write: f64,
    /// Chance per step of proposing to add or remove the last node.
    member_change: f64,
}

struct Sim {
    rng: StdRng,
    dir: tempfile::TempDir,
    ids: Vec<u64>,
    /// The voters a fresh cluster starts with; the last node joins later.
    initial: Vec<u64>,
    nodes: BTreeMap<u64, Option<Node>>,
    outs: BTreeMap<u64, Arc<Mutex<Vec<Message>>>>,
    net: Vec<InFlight>,
    now: u64,
    /// Nodes cut off from the others, while a partition lasts.
    island: Option<BTreeSet<u64>>,
    leaders: HashMap<u64, u64>,
    pending: Vec<Write>,
    acked: BTreeMap<String, (String, u64)>,
    next_key: u64,
    snapshot_every: u64,
    /// Changes of voters seen by node 1, and the voters it last had.
    member_changes: usize,
    last_voters: Vec<u64>,
}

impl Sim {
    fn new(seed: u64, n: u64, snapshot_every: u64) -> Sim {
        let mut s = Sim {
            rng: StdRng::seed_from_u64(seed),
            dir: scratch_dir(),
            ids: (1..=n).collect(),
            initial: (1..n).collect(),
            nodes: BTreeMap::new(),
            outs: BTreeMap::new(),
            net: Vec::new(),
            now: 0,
            island: None,
            leaders: HashMap::new(),
            pending: Vec::new(),
            acked: BTreeMap::new(),
            next_key: 0,
            snapshot_every,
            member_changes: 0,
            last_voters: Vec::new(),
        };
        for id in s.ids.clone() {
            s.outs.insert(id, Arc::new(Mutex::new(Vec::new())));
            s.boot(id);
        }
        s
    }

    fn boot(&mut self, id: u64) {
        let opts = NodeOptions {
            id,
            // The first nodes bootstrap the cluster; the last one starts as a joining node
            // does, with every member as its peers.
            peers: if self.initial.contains(&id) {
                &self.initial
            } else {
                &self.ids
            }
            .iter()
            .map(|i| (*i, format!("sim-{i}")))
            .collect(),
            data_dir: self.dir.path().join(format!("n{id}")),
            tick: Duration::from_millis(10),
            snapshot_every: self.snapshot_every,
            request_ticks: 100,
            election_ticks: Some(self.rng.gen_range(ELECTION_TICKS..2 * ELECTION_TICKS)),
        };
        let out = SimOutbox(self.outs[&id].clone());
        let node = Node::open(&opts, Box::new(out)).expect("open node");
        self.nodes.insert(id, Some(node));
    }

    fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn cut(&self, a: u64, b: u64) -> bool {
        self.island
            .as_ref()
            .is_some_and(|s| s.contains(&a) != s.contains(&b))
    }

    fn step(&mut self, chaos: &Chaos) {
        self.now += 1;
        let ids = self.ids.clone();

        if self.rng.gen_bool(chaos.partition_toggle) {
            if self.island.is_some() {
                self.island = None;
            } else {
                let k = self.rng.gen_range(1..ids.len());
                let mut pick = ids.clone();
                pick.shuffle(&mut self.rng);
                self.island = Some(pick.into_iter().take(k).collect());
            }
        }
        let live = self.live();
        if live.len() == ids.len() && self.rng.gen_bool(chaos.crash) {
            let victim = live[self.rng.gen_range(0..live.len())];
            self.nodes.insert(victim, None);
            lock(&self.outs[&victim]).clear();
        }
        for id in ids.clone() {
            if self.nodes[&id].is_none() && self.rng.gen_bool(chaos.restart) {
                self.boot(id);
            }
        }

        if self.rng.gen_bool(chaos.write) {
            let live = self.live();
            let id = live[self.rng.gen_range(0..live.len())];
            self.next_key += 1;
            let key = format!("/sim/{:05}", self.next_key);
            let value = format!("v{}", self.next_key);
            let (tx, rx) = oneshot::channel();
            let cmd = Cmd::Op {
                op: Op::Put {
                    key: key.clone(),
                    value: value.clone(),
                    cond: Condition::None,
                    lease: None,
                },
            };
            if let Some(Some(n)) = self.nodes.get_mut(&id) {
                n.handle(NodeMsg::Propose { cmd, reply: tx });
            }
            self.pending.push(Write { key, value, rx });
        }

        if self.rng.gen_bool(chaos.member_change) {
            self.change_members();
        }

        // Deliver what is due, in random order.
        let now = self.now;
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.at <= now);
        self.net = later;
        due.shuffle(&mut self.rng);
        for m in due {
            let (from, to) = (m.msg.from, m.msg.to);
            let snapshot = m.msg.get_msg_type() == MessageType::MsgSnapshot;
            let delivered = !self.cut(from, to)
                && match self.nodes.get_mut(&to) {
                    Some(Some(n)) => {
                        n.handle(NodeMsg::Raft(Box::new(m.msg)));
                        true
                    }
                    _ => false,
                };
            if snapshot {
                self.report_snapshot(from, to, delivered);
            }
        }

        for id in &ids {
            if let Some(Some(n)) = self.nodes.get_mut(id) {
                n.tick();
                n.on_ready().expect("ready");
            }
        }

        // Collect what the nodes said, in an order that does not depend on how raft-rs
        // iterates its peers.
        for id in &ids {
            let mut msgs = std::mem::take(&mut *lock(&self.outs[id]));
            msgs.sort_by_key(|m| m.to);
            for msg in msgs {
                if self.rng.gen_bool(chaos.drop) {
                    if msg.get_msg_type() == MessageType::MsgSnapshot {
                        self.report_snapshot(msg.from, msg.to, false);
                    }
                    continue;
                }
                let delay = self.rng.gen_range(0..=chaos.max_delay);
                self.net.push(InFlight {
                    msg,
                    at: now + 1 + delay,
                });
            }
        }

        self.check_leaders();
        self.collect_acks();
        if let Some(Some(n)) = self.nodes.get(&1) {
            if n.voters() != self.last_voters.as_slice() {
                self.member_changes += 1;
                self.last_voters = n.voters().to_vec();
            }
        }
    }

    /// Proposes, through a random live node, to add the last node if it is not a voter
    /// there, or to remove it if it is.
    fn change_members(&mut self) {
        let live = self.live();
        let id = live[self.rng.gen_range(0..live.len())];
        let joiner = *self.ids.last().expect("nodes");
        if let Some(Some(n)) = self.nodes.get_mut(&id) {
            let change = if n.voters().contains(&joiner) {
                MemberChange::Remove { id: joiner }
            } else {
                MemberChange::Add {
                    id: joiner,
                    addr: format!("sim-{joiner}"),
                }
            };
            let (tx, _rx) = oneshot::channel();
            n.handle(NodeMsg::ChangeMember { change, reply: tx });
        }
    }

    /// Returns whether every live node counts every node as a voter.
    fn all_voters(&self) -> bool {
        self.nodes
            .values()
            .flatten()
            .all(|n| n.voters().len() == self.ids.len())
    }

    /// Tells the sender how sending a snapshot went, as the HTTP transport does.
    fn report_snapshot(&mut self, from: u64, to: u64, ok: bool) {
        if let Some(Some(n)) = self.nodes.get_mut(&from) {
            n.handle(NodeMsg::SnapshotSent { to, ok });
        }
    }

    fn check_leaders(&mut self) {
        for (id, n) in &self.nodes {
            let Some(n) = n else { continue };
            let (term, leads) = n.term_and_leadership();
            if leads {
                let first = *self.leaders.entry(term).or_insert(*id);
                assert_eq!(first, *id, "two leaders in term {term}");
            }
        }
    }

    fn collect_acks(&mut self) {
        let mut still = Vec::new();
        for mut w in std::mem::take(&mut self.pending) {
            match w.rx.try_recv() {
                Ok(Ok(applied)) => match applied.outcome {
                    OpOutcome::Written { revision } => {
                        self.acked.insert(w.key, (w.value, revision));
                    }
                    other => panic!("unconditional put answered {other:?}"),
                },
                Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => {}
                Err(oneshot::error::TryRecvError::Empty) => still.push(w),
            }
        }
        self.pending = still;
    }

    fn states(&self) -> BTreeMap<u64, (u64, KvState)> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| {
                n.as_ref().map(|n| {
                    let st = lock(&n.shared().core).state().clone();
                    (*id, (n.applied(), st))
                })
            })
            .collect()
    }
}

/// Runs one seed; returns the writes acknowledged, the terms seen and the membership
/// changes seen.
fn run(seed: u64, steps: u64) -> (usize, usize, usize) {
    let mut sim = Sim::new(seed, 4, 40);
    let chaos = Chaos {
        drop: 0.1,
        max_delay: 3,
        partition_toggle: 0.01,
        crash: 0.02,
        restart: 0.1,
        write: 0.4,
        member_change: 0.004,
    };
    for _ in 0..steps {
        sim.step(&chaos);
    }
    // Heal everything and let the cluster settle, still writing now and then.
    let calm = Chaos {
        drop: 0.0,
        max_delay: 0,
        partition_toggle: 0.0,
        crash: 0.0,
        restart: 1.0,
        write: 0.0,
        member_change: 0.0,
    };
    sim.island = None;
    let mut settled = false;
    for step in 0..3000 {
        if step % 50 == 0 && !sim.all_voters() {
            sim.change_members();
        }
        sim.step(&calm);
        let states = sim.states();
        let applied: BTreeSet<u64> = states.values().map(|(a, _)| *a).collect();
        if sim.pending.is_empty()
            && states.len() == sim.ids.len()
            && applied.len() == 1
            && sim.all_voters()
        {
            settled = true;
            break;
        }
    }
    if !settled {
        for (id, n) in &sim.nodes {
            if let Some(n) = n {
                eprintln!("node {id}: {:?}", lock(&n.shared().status));
            }
        }
        eprintln!("pending {} net {}", sim.pending.len(), sim.net.len());
    }
    assert!(settled, "seed {seed}: the cluster did not settle");
    let states = sim.states();
    let (_, reference) = &states[&1];
    for (id, (_, st)) in &states {
        assert_eq!(st, reference, "seed {seed}: node {id} diverged");
        for (key, (value, revision)) in &sim.acked {
            let kv = st
                .data
                .get(key)
                .unwrap_or_else(|| panic!("seed {seed}: acknowledged {key} lost on node {id}"));
            assert_eq!(&kv.value, value);
            assert_eq!(kv.mod_revision, *revision);
        }
    }
    (sim.acked.len(), sim.leaders.len(), sim.member_changes)
}

#[test]
fn randomized_network_and_membership_lose_no_acknowledged_write() {
    let mut changes = 0;
    for seed in 1..=8 {
        let (acked, terms, members) = run(seed, 3000);
        eprintln!(
            "seed {seed}: {acked} writes acknowledged over {terms} terms, {members} voter sets"
        );
        changes += members;
        assert!(acked > 100, "seed {seed}: only {acked} writes acknowledged");
        assert!(terms > 1, "seed {seed}: the leader never changed");
    }
    assert!(changes > 8 * 2, "voters changed only {changes} times");
}
