//! The router's view of the topology: a routing table built from a topology snapshot, kept
//! current by a watch, and served from a local cache so that queries never wait on topo.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tessera_topo::records::{ls_schema, reference_schema, ROOT};
use tessera_topo::{PhysicalShard, TableKind, Topo, TopoSnapshot, VindexKind};

/// How one table routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRouting {
    Sharded {
        shard_key: String,
        vindex: VindexKind,
        key_type: tessera_topo::KeyType,
        /// `(column, sequence keyspace, sequence table)` when ids come from a sequence.
        auto_increment: Option<(String, String, String)>,
        /// Lookup vindexes of secondary columns (empty for most tables).
        lookups: std::sync::Arc<[Lookup]>,
    },
    Reference,
    /// A table of an unsharded keyspace (declared or not).
    Unsharded,
}

/// A lookup vindex of a sharded table, ready for routing (see `tessera_topo::LookupSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub column: String,
    /// The lookup table's keyspace (unsharded) and name.
    pub keyspace: String,
    pub table: String,
    pub unique: bool,
    /// Written but not read: neither routes nor enforces uniqueness yet.
    pub write_only: bool,
}

impl Lookup {
    /// Whether reads may be routed by it and uniqueness is enforced through it.
    pub fn serves(&self) -> bool {
        !self.write_only
    }
}

/// One keyspace, ready for routing.
#[derive(Debug, Clone)]
pub struct KeyspaceRouting {
    pub name: String,
    pub sharded: bool,
    pub logical_shards: u32,
    pub tables: HashMap<String, TableRouting>,
    /// The physical shard of each logical shard.
    pub placement: Vec<String>,
    /// Each logical shard's move state and the other physical shard of its move.
    pub moves: Vec<(tessera_topo::LogicalShardState, Option<String>)>,
    pub epoch: u64,
    /// Tables `tessera movetables` is switching or has moved to another keyspace (by lower-case
    /// name): the keyspace they go to, and whether statements on them wait (switching).
    pub moved: HashMap<String, (String, bool)>,
}

impl KeyspaceRouting {
    /// The keyspace `table` was moved to by `tessera movetables`, and whether it is being
    /// switched over now (statements on it wait).
    pub fn moved_to(&self, table: &str) -> Option<(&str, bool)> {
        if self.moved.is_empty() {
            return None;
        }
        self.moved
            .get(&table.to_ascii_lowercase())
            .map(|(k, s)| (k.as_str(), *s))
    }

    /// Returns how `table` routes, or `None` when a sharded keyspace does not declare it.
    pub fn table(&self, table: &str) -> Option<TableRouting> {
        if !self.sharded {
            return Some(TableRouting::Unsharded);
        }
        self.tables.get(table).cloned()
    }

    /// Returns the schema of logical shard `ls`.
    pub fn schema(&self, ls: u32) -> String {
        ls_schema(&self.name, self.sharded, ls)
    }

    /// `template` with its logical-shard placeholder ([`crate::sql::LS_PLACEHOLDER`]) made
    /// logical shard `ls`'s schema; `template` itself when it has none (statements on
    /// unsharded keyspaces name their schema already).
    pub fn fill<'t>(&self, template: &'t str, ls: u32) -> std::borrow::Cow<'t, str> {
        use crate::sql::LS_PLACEHOLDER;
        if !template.contains(LS_PLACEHOLDER) {
            return std::borrow::Cow::Borrowed(template);
        }
        std::borrow::Cow::Owned(
            template.replace(LS_PLACEHOLDER, &crate::sql::quote_ident(&self.schema(ls))),
        )
    }

    /// Returns the schema of the reference tables.
    pub fn reference_schema(&self) -> String {
        reference_schema(&self.name)
    }

    /// Returns the physical shards that hold at least one logical shard, in name order.
    pub fn physical_shards(&self) -> Vec<String> {
        let mut v: Vec<String> = self.placement.clone();
        v.sort();
        v.dedup();
        v
    }

    /// Returns the move state of logical shard `ls` and the other physical shard of its move.
    pub fn move_state(&self, ls: u32) -> (tessera_topo::LogicalShardState, Option<&str>) {
        match self.moves.get(ls as usize) {
            Some((st, peer)) => (*st, peer.as_deref()),
            None => (tessera_topo::LogicalShardState::Serving, None),
        }
    }

    /// Whether any logical shard of the keyspace is in a move.
    pub fn moving(&self) -> bool {
        self.moves
            .iter()
            .any(|(s, _)| *s != tessera_topo::LogicalShardState::Serving)
    }

    /// Returns whether `schema` is one of this keyspace's schemas (for error messages).
    pub fn owns_schema(&self, schema: &str) -> bool {
        if schema == self.name || schema == self.reference_schema() {
            return true;
        }
        schema
            .strip_prefix(&self.name)
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Everything routing needs at one topology revision.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    pub revision: u64,
    pub keyspaces: crate::FastMap<String, KeyspaceRouting>,
    pub shards: crate::FastMap<String, PhysicalShard>,
    /// The candidate layout for the routing shadow (keyspaces from candidate vschemas, on a
    /// placeholder placement: a route's kind does not depend on placement).
    pub candidate: Option<Arc<RoutingTable>>,
    /// Result shadows, by the keyspace whose reads are checked.
    pub result_shadows: HashMap<String, tessera_topo::ResultShadowSpec>,
}

impl RoutingTable {
    /// Every registered physical shard's name, in order.
    pub fn shard_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shards.keys().cloned().collect();
        v.sort();
        v
    }

    /// Builds the table from a snapshot. Keyspaces without a placement are left out.
    pub fn from_snapshot(s: &TopoSnapshot) -> Self {
        let mut t = Self::from_parts(s);
        if !s.candidates.is_empty() {
            let mut c = TopoSnapshot::default();
            for (name, v) in &s.candidates {
                c.placements.insert(
                    name.clone(),
                    tessera_topo::Placement {
                        keyspace: name.clone(),
                        epoch: 0,
                        shards: (0..v.logical_shard_count())
                            .map(|_| tessera_topo::PlacementEntry::serving("candidate"))
                            .collect(),
                    },
                );
                c.keyspaces
                    .insert(name.clone(), tessera_topo::Keyspace { vschema: v.clone() });
            }
            t.candidate = Some(Arc::new(Self::from_parts(&c)));
        }
        t
    }

    /// A routing table for `vschemas` alone, each keyspace's logical shards placed round-robin
    /// over `physical_shards` shards named `ps0`, `ps1`, … (for tests and benchmarks).
    ///
    /// # Panics
    /// On a vschema that does not validate.
    pub fn for_vschemas(vschemas: Vec<tessera_topo::VSchema>, physical_shards: usize) -> Self {
        let mut snap = TopoSnapshot::default();
        for v in vschemas {
            if let Err(e) = v.validate() {
                panic!("invalid vschema {}: {e}", v.keyspace);
            }
            let n = v.logical_shard_count();
            snap.placements.insert(
                v.keyspace.clone(),
                tessera_topo::Placement {
                    keyspace: v.keyspace.clone(),
                    epoch: 1,
                    shards: (0..n as usize)
                        .map(|i| {
                            tessera_topo::PlacementEntry::serving(format!(
                                "ps{}",
                                i % physical_shards.max(1)
                            ))
                        })
                        .collect(),
                },
            );
            snap.keyspaces
                .insert(v.keyspace.clone(), tessera_topo::Keyspace { vschema: v });
        }
        Self::from_snapshot(&snap)
    }

    fn from_parts(s: &TopoSnapshot) -> Self {
        let mut keyspaces = crate::FastMap::default();
        for (name, ks) in &s.keyspaces {
            let Some(p) = s.placements.get(name) else {
                continue;
            };
            let v = &ks.vschema;
            let tables = v
                .tables
                .iter()
                .map(|(t, spec)| {
                    let r = match (v.sharded, spec.kind) {
                        (false, _) => TableRouting::Unsharded,
                        (true, TableKind::Reference | TableKind::Sequence) => {
                            TableRouting::Reference
                        }
                        (true, TableKind::Sharded) => TableRouting::Sharded {
                            shard_key: spec.shard_key.clone().unwrap_or_default(),
                            vindex: spec.vindex.unwrap_or_default(),
                            key_type: spec.shard_key_type(),
                            auto_increment: spec.auto_increment.as_ref().and_then(|a| {
                                a.sequence_parts()
                                    .map(|(k, t)| (a.column.clone(), k.to_string(), t.to_string()))
                            }),
                            lookups: spec
                                .lookups
                                .iter()
                                .filter_map(|l| {
                                    let (k, t) = l.table_parts()?;
                                    Some(Lookup {
                                        column: l.column.clone(),
                                        keyspace: k.to_string(),
                                        table: t.to_string(),
                                        unique: l.unique,
                                        write_only: l.write_only,
                                    })
                                })
                                .collect(),
                        },
                    };
                    (t.clone(), r)
                })
                .collect();
            keyspaces.insert(
                name.clone(),
                KeyspaceRouting {
                    name: name.clone(),
                    sharded: v.sharded,
                    logical_shards: v.logical_shard_count(),
                    tables,
                    placement: p.shards.iter().map(|e| e.ps.clone()).collect(),
                    moves: p.shards.iter().map(|e| (e.state, e.peer.clone())).collect(),
                    epoch: p.epoch,
                    moved: v
                        .moved_tables
                        .iter()
                        .filter(|(_, m)| m.state != tessera_topo::MoveState::Copying)
                        .map(|(t, m)| {
                            (
                                t.to_ascii_lowercase(),
                                (m.to.clone(), m.state == tessera_topo::MoveState::Switching),
                            )
                        })
                        .collect(),
                },
            );
        }
        RoutingTable {
            revision: s.revision,
            keyspaces,
            shards: s.shards.clone().into_iter().collect(),
            candidate: None,
            result_shadows: s.result_shadows.clone().into_iter().collect(),
        }
    }

    /// Returns a keyspace.
    pub fn keyspace(&self, name: &str) -> Option<&KeyspaceRouting> {
        self.keyspaces.get(name)
    }
}

/// What a router says about its topology connection.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TopoStatus {
    /// Whether the watch is live.
    pub connected: bool,
    /// The revision served.
    pub revision: u64,
    /// The last error talking to topo, if the watch is down.
    pub last_error: Option<String>,
    /// The placement epoch served, per keyspace.
    pub epochs: std::collections::BTreeMap<String, u64>,
    /// Whether the router's registration in topo is current (renewed within its lease).
    pub registered: bool,
}

/// The cached routing table, updated by [`TopologyCache::run`].
pub struct TopologyCache {
    table: RwLock<Arc<RoutingTable>>,
    status: RwLock<TopoStatus>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for TopologyCache {
    fn default() -> Self {
        TopologyCache {
            table: RwLock::new(Arc::new(RoutingTable::default())),
            status: RwLock::new(TopoStatus::default()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl TopologyCache {
    /// Returns the current routing table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Returns the connection status.
    pub fn status(&self) -> TopoStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Returns a receiver that sees each new revision served.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Installs a snapshot.
    pub fn install(&self, snap: &TopoSnapshot) {
        let t = RoutingTable::from_snapshot(snap);
        let rev = t.revision;
        let epochs = t
            .keyspaces
            .values()
            .map(|k| (k.name.clone(), k.epoch))
            .collect();
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
        {
            let mut s = self.status.write().unwrap_or_else(|p| p.into_inner());
            s.connected = true;
            s.revision = rev;
            s.last_error = None;
            s.epochs = epochs;
        }
        self.changed.send_replace(rev);
    }

    /// Records whether the router's registration is current.
    pub fn set_registered(&self, registered: bool) {
        self.status
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .registered = registered;
    }

    fn disconnected(&self, e: &dyn std::fmt::Display) {
        let mut s = self.status.write().unwrap_or_else(|p| p.into_inner());
        if s.connected {
            tracing::warn!(error = %e, "topology unreachable; serving from the cached routing table");
        }
        s.connected = false;
        s.last_error = Some(e.to_string());
    }

    /// Loads the topology once.
    ///
    /// # Errors
    /// When topo cannot be read.
    pub async fn load(&self, topo: &Topo) -> Result<(), tessera_topo::TopoError> {
        let snap = topo.snapshot().await?;
        self.install(&snap);
        Ok(())
    }

    /// Keeps the cache current: list, watch, re-list on every change; on failure, keep the
    /// last table and retry. Runs until `shutdown` fires.
    pub async fn run(
        self: Arc<Self>,
        topo: Topo,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let round = async {
                let snap = topo.snapshot().await?;
                self.install(&snap);
                let mut w = topo.store().watch(ROOT, snap.revision).await?;
                loop {
                    match w.recv().await {
                        Some(Ok(ev)) => {
                            // Take the burst, then re-list once — unless it only touched router
                            // registrations, jobs or copy checkpoints, which routing does not
                            // read.
                            let mut relevant = routing_key(&ev.kv.key);
                            while let Ok(Ok(ev)) = w.try_recv() {
                                relevant |= routing_key(&ev.kv.key);
                            }
                            if relevant {
                                let snap = topo.snapshot().await?;
                                self.install(&snap);
                            }
                        }
                        Some(Err(e)) => return Err(e),
                        None => {
                            return Err(tessera_topo::TopoError::Unavailable("watch closed".into()))
                        }
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), tessera_topo::TopoError>(())
            };
            tokio::select! {
                r = round => {
                    if let Err(e) = r {
                        self.disconnected(&e);
                    }
                }
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Whether a change to `key` can change routing (router registrations, jobs and movetables'
/// copy checkpoints cannot).
fn routing_key(key: &str) -> bool {
    !(key.starts_with("/tessera/routers/")
        || key.starts_with("/tessera/jobs/")
        || key.starts_with(tessera_topo::records::MOVETABLES))
}

/// Maps logical-shard schema names in backend text (messages, column definitions) back to
/// the keyspace's name; `None`: no keyspace, the text stays as it is.
#[derive(Debug, Clone, Copy)]
pub struct Unqualify<'k>(pub Option<&'k KeyspaceRouting>);

impl Unqualify<'_> {
    /// Whether every text stays as it is (no keyspace, or an unsharded one: its schema is
    /// the keyspace's name).
    pub fn keeps_all(&self) -> bool {
        self.0.is_none_or(|k| !k.sharded)
    }

    /// `text` with logical-shard schema names mapped back to the keyspace name (borrowed
    /// when there are none).
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.0 {
            Some(k) => unqualify(text, k),
            None => Cow::Borrowed(text),
        }
    }
}

/// Maps logical-shard schema names in a backend message back to the keyspace name.
pub fn unqualify<'a>(msg: &'a str, ks: &KeyspaceRouting) -> Cow<'a, str> {
    let name = ks.name.as_str();
    if Unqualify(Some(ks)).keeps_all() || !msg.contains(name) {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(name) {
        out.push_str(&rest[..i]);
        let after = &rest[i + name.len()..];
        if let Some(tail) = after.strip_prefix("_ref") {
            out.push_str(name);
            rest = tail;
        } else if after.len() >= 5
            && after.as_bytes()[0] == b'_'
            && after.as_bytes()[1..5].iter().all(u8::is_ascii_digit)
        {
            out.push_str(name);
            rest = &after[5..];
        } else {
            out.push_str(name);
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}
