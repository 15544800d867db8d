//! Typed topology records and [`Topo`], the typed view over a [`Store`].
//!
//! Key layout (all values JSON):
//!
//! | key | record |
//! |---|---|
//! | `/tessera/keyspaces/{name}` | [`Keyspace`] |
//! | `/tessera/shards/{name}` | [`PhysicalShard`] |
//! | `/tessera/placement/{keyspace}` | [`Placement`] (one record per keyspace, so a flip is one CAS) |
//! | `/tessera/routers/{id}` | router registration, under a lease |
//! | `/tessera/movetables/{keyspace}` | [`MoveTablesProgress`]: copy checkpoints of `tessera movetables` |

use crate::error::{Result, TopoError};
use crate::store::{Condition, KeyValue, Store};
use crate::vschema::VSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Prefix of every Tessera key.
pub const ROOT: &str = "/tessera/";
const KEYSPACES: &str = "/tessera/keyspaces/";
const SHARDS: &str = "/tessera/shards/";
const PLACEMENT: &str = "/tessera/placement/";
const ROUTERS: &str = "/tessera/routers/";
const JOBS: &str = "/tessera/jobs/";
/// Copy checkpoints of `tessera movetables`, one record per source keyspace.
pub const MOVETABLES: &str = "/tessera/movetables/";

/// A live router, registered under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterRegistration {
    pub id: String,
    /// Where applications connect.
    pub listen: String,
    /// The admin endpoint, if any.
    pub admin: Option<String>,
    /// The placement epoch it serves, per keyspace.
    pub epochs: BTreeMap<String, u64>,
    /// Whether its topology watch is live.
    pub topo_connected: bool,
}

/// A move job: logical shards going from one physical shard to another, with the phase it is
/// in and checkpoints that let a restarted rebalancer resume.
///
/// Phases, in order: `created`, `prepare`, `dual_write`, `backfill`, `verify`, `verified`,
/// `cutover`, `cut_over` (serving from the target, copying back to the source), then
/// `completed`; or `rolled_back` (after a reverse cutover, serving from the source again, ready
/// to cut over again or abort), `aborted`, and `failed` (with [`Job::error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub keyspace: String,
    /// `(logical shard, from physical shard, to physical shard)`.
    pub moves: Vec<(u32, String, String)>,
    /// The phase, as the rebalancer names it (see above).
    pub phase: String,
    /// Resume points by name (for example `backfill/7/customer` → last copied primary key).
    #[serde(default)]
    pub checkpoints: BTreeMap<String, String>,
    /// Unix milliseconds of the last update.
    pub updated_ms: u64,
    /// Unix milliseconds of creation.
    #[serde(default)]
    pub created_ms: u64,
    /// Copy progress per table (summed over the job's logical shards).
    #[serde(default)]
    pub tables: BTreeMap<String, TableProgress>,
    /// Journal rows waiting to be copied, over the job's logical shards, when last measured.
    #[serde(default)]
    pub journal_backlog: u64,
    /// The last verification's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// The write stall of the last cutover (ms): from holding writes to serving them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// Why the job stopped, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Log lines (most recent last, bounded), for `reshard status` and the status page.
    #[serde(default)]
    pub events: Vec<String>,
}

/// One table's copy progress in a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// Rows on the source when the backfill started (an estimate while copying).
    pub rows_total: u64,
    /// Rows copied so far.
    pub rows_copied: u64,
    /// Recent copy rate.
    pub rows_per_sec: u64,
    /// Whether every chunk is copied.
    pub done: bool,
}

/// A verification's outcome, like a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Unix milliseconds when it finished.
    pub at_ms: u64,
    /// Per table: matching, mismatched, missing on target, extra on target.
    pub tables: BTreeMap<String, VerifyCounts>,
    /// Rows re-copied by repair.
    pub repaired: u64,
    /// Whether the last pass found source and target equal.
    pub clean: bool,
}

/// Row counts of one table's verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyCounts {
    pub rows: u64,
    pub chunks: u64,
    pub matching: u64,
    pub mismatched: u64,
    pub missing_on_target: u64,
    pub extra_on_target: u64,
}

/// The copy progress of `tessera movetables run` for the tables moving out of one keyspace,
/// so that a `run` that stopped (killed, a lost connection) resumes after the last rows it
/// copied.
///
/// Kept in its own record rather than in the keyspace's vschema next to
/// [`MovedTable`](crate::MovedTable): a checkpoint is written every few seconds while copying,
/// and every change of a keyspace record makes every router re-read the topology and rebuild
/// its routing, and would race with `tessera vschema apply`. Routers do not watch this record for
/// routing; the state of each table (copying, switching, moved) stays in the vschema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveTablesProgress {
    /// The source keyspace.
    pub keyspace: String,
    /// Per table being copied.
    #[serde(default)]
    pub tables: BTreeMap<String, CopyCheckpoint>,
}

/// How far one table's copy got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyCheckpoint {
    /// The keyspace it is copied to.
    pub to: String,
    /// The primary key of the last row copied (as `tessera_shardmove::encode_key` writes
    /// it); `None`: nothing copied yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Rows copied so far (over every `run`).
    #[serde(default)]
    pub rows_copied: u64,
    /// The source's estimate of its rows when the copy last started.
    #[serde(default)]
    pub rows_total: u64,
    /// Whether every row was copied (a later `run` only catches up and verifies).
    #[serde(default)]
    pub done: bool,
    /// Unix milliseconds of the last update.
    #[serde(default)]
    pub updated_ms: u64,
}

/// A table that `tessera movetables` moves or moved, with its copy progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveTablesJob {
    /// The source keyspace.
    pub from: String,
    pub table: String,
    /// The target keyspace.
    pub to: String,
    pub state: crate::vschema::MoveState,
    /// The copy's checkpoint, if a `run` recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<CopyCheckpoint>,
}

const CANDIDATES: &str = "/tessera/candidates/";
const RESULT_SHADOWS: &str = "/tessera/result-shadows/";

/// A keyspace and its vschema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyspace {
    pub vschema: VSchema,
}

impl Keyspace {
    /// Returns the keyspace name.
    pub fn name(&self) -> &str {
        &self.vschema.keyspace
    }
}

/// A physical shard: one MySQL/MariaDB primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalShard {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The password, for local clusters and tests. Production setups use `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The environment variable that holds the password on the router's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Placement weight; 0 takes no new logical shards. Default: 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// The certificate (PEM) of the authority that signed the server's certificate: when set,
    /// every connection to this server (routers, moves, the CLI) is TLS, and the server's
    /// certificate must be valid for `host` and signed by it. Default: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    /// The account routers serve applications with (the data path), when it is not `user`:
    /// privileges on the keyspaces' schemas only, granted by the control plane as keyspaces
    /// and physical shards are added. `user` stays the control plane's account (moves,
    /// verification, grants). Default: none (routers use `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_account: Option<DataAccount>,
}

/// The data path's backend account on a physical shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataAccount {
    pub user: String,
    /// The password, for local clusters and tests. Production setups use `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The environment variable that holds the password on the router's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

/// The database-name patterns (as `GRANT … ON pattern.*` takes them, `_` and `%` escaped)
/// that cover every schema of `keyspace`: its logical shards' and reference schema when
/// sharded (`ks_0000` …, `ks_ref`), its own name when not.
pub fn grant_patterns(keyspace: &str, sharded: bool) -> Vec<String> {
    let escaped: String = keyspace
        .chars()
        .flat_map(|c| match c {
            '_' | '%' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    if sharded {
        vec![format!("{escaped}\\_%")]
    } else {
        vec![escaped]
    }
}

fn one() -> u32 {
    1
}

impl PhysicalShard {
    /// Returns the password from the record or from `password_env`.
    pub fn resolve_password(&self) -> Option<String> {
        self.password.clone().or_else(|| {
            self.password_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }

    /// The account and password routers serve applications with: the data account when
    /// there is one, else the control account.
    pub fn data_credentials(&self) -> (String, Option<String>) {
        match &self.data_account {
            Some(d) => (
                d.user.clone(),
                d.password
                    .clone()
                    .or_else(|| d.password_env.as_ref().and_then(|v| std::env::var(v).ok())),
            ),
            None => (self.user.clone(), self.resolve_password()),
        }
    }

    /// Returns `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The state of one logical shard in its placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogicalShardState {
    /// Served from its physical shard; no move in progress.
    #[default]
    Serving,
    /// Served from `ps`; routers copy each committed write's journalled rows to `peer` (the
    /// move's target) before acknowledging it.
    DualWrite,
    /// Being switched from `ps` to `peer`: routers hold new writes to it until the placement
    /// flips (or their hold bound passes), reads still go to `ps`.
    Cutover,
    /// Served from `ps` (the move's target); routers copy writes back to `peer` (the old
    /// source), so that a rollback loses nothing.
    Reverse,
}

impl LogicalShardState {
    /// Whether writes to the logical shard are copied to `peer`.
    pub fn copies(self) -> bool {
        matches!(self, Self::DualWrite | Self::Cutover | Self::Reverse)
    }
}

/// Where one logical shard lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementEntry {
    /// The physical shard serving it.
    pub ps: String,
    #[serde(default)]
    pub state: LogicalShardState,
    /// The other physical shard of a move: where writes are copied (see the state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The job moving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl PlacementEntry {
    /// A serving entry on `ps`.
    pub fn serving(ps: impl Into<String>) -> Self {
        PlacementEntry {
            ps: ps.into(),
            state: LogicalShardState::Serving,
            peer: None,
            job: None,
        }
    }
}

/// A keyspace's placement: logical shard `i` is `shards[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub keyspace: String,
    /// Grows with every placement change; routers report the epoch they serve.
    pub epoch: u64,
    pub shards: Vec<PlacementEntry>,
}

/// Returns the MySQL schema that holds logical shard `ls` of `keyspace`.
///
/// An unsharded keyspace is one schema named like the keyspace; a sharded one has a schema per
/// logical shard, `keyspace_0007`.
pub fn ls_schema(keyspace: &str, sharded: bool, ls: u32) -> String {
    if sharded {
        format!("{keyspace}_{ls:04}")
    } else {
        keyspace.to_string()
    }
}

/// Returns the schema holding a sharded keyspace's reference tables on every physical shard.
pub fn reference_schema(keyspace: &str) -> String {
    format!("{keyspace}_ref")
}

/// Everything a router needs, read at one revision.
#[derive(Debug, Clone, Default)]
pub struct TopoSnapshot {
    pub revision: u64,
    pub keyspaces: BTreeMap<String, Keyspace>,
    pub shards: BTreeMap<String, PhysicalShard>,
    pub placements: BTreeMap<String, Placement>,
    /// Candidate vschemas for the routing shadow, by keyspace.
    pub candidates: BTreeMap<String, VSchema>,
    /// Result shadows, by the keyspace whose reads are checked.
    pub result_shadows: BTreeMap<String, ResultShadowSpec>,
}

/// A result shadow: a share of a keyspace's reads also runs against a second copy of the data,
/// and the two answers are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultShadowSpec {
    /// The keyspace whose reads are checked (the client's answers come from it).
    pub keyspace: String,
    /// The keyspace holding the second copy.
    pub target: String,
    /// Share of eligible reads checked, 0.0 to 1.0. Default: 1.0.
    #[serde(default = "full")]
    pub sample_rate: f64,
    /// Longest a shadow read may take before it is abandoned (ms). Default: 2000.
    #[serde(default = "two_seconds")]
    pub timeout_ms: u64,
    /// Most shadow reads in flight per router; more are skipped. Default: 8.
    #[serde(default = "eight")]
    pub max_concurrency: usize,
    /// Query fingerprints whose differences are known and accepted.
    #[serde(default)]
    pub ignore: Vec<String>,
}

fn full() -> f64 {
    1.0
}
fn two_seconds() -> u64 {
    2000
}
fn eight() -> usize {
    8
}

impl TopoSnapshot {
    /// Builds a snapshot from a listing of [`ROOT`].
    ///
    /// # Errors
    /// [`TopoError::Corrupt`] when a record does not decode.
    pub fn from_kvs(kvs: &[KeyValue], revision: u64) -> Result<Self> {
        let mut s = TopoSnapshot {
            revision,
            ..Default::default()
        };
        for kv in kvs {
            if let Some(name) = kv.key.strip_prefix(KEYSPACES) {
                s.keyspaces.insert(name.to_string(), decode(kv)?);
            } else if let Some(name) = kv.key.strip_prefix(SHARDS) {
                s.shards.insert(name.to_string(), decode(kv)?);
            } else if let Some(name) = kv.key.strip_prefix(PLACEMENT) {
                s.placements.insert(name.to_string(), decode(kv)?);
            } else if let Some(name) = kv.key.strip_prefix(CANDIDATES) {
                s.candidates.insert(name.to_string(), decode(kv)?);
            } else if let Some(name) = kv.key.strip_prefix(RESULT_SHADOWS) {
                s.result_shadows.insert(name.to_string(), decode(kv)?);
            }
        }
        Ok(s)
    }
}

fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_str(&kv.value).map_err(|e| TopoError::Corrupt {
        key: kv.key.clone(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> String {
    // Records are plain data structures; serialising them cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// The typed view over a [`Store`] that routers, the CLI and jobs use.
#[derive(Clone)]
pub struct Topo {
    store: Arc<dyn Store>,
}

impl Topo {
    /// Wraps `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Topo { store }
    }

    /// Returns the underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reads every record at one revision.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn snapshot(&self) -> Result<TopoSnapshot> {
        let (kvs, rev) = self.store.list(ROOT).await?;
        TopoSnapshot::from_kvs(&kvs, rev)
    }

    /// Registers (or updates) a physical shard.
    ///
    /// # Errors
    /// Invalid names and store failures.
    pub async fn put_physical_shard(&self, ps: &PhysicalShard) -> Result<()> {
        if ps.name.is_empty() || ps.name.contains('/') {
            return Err(TopoError::invalid(
                "physical shard",
                "name: must be non-empty without '/'",
            ));
        }
        self.store
            .put(
                &format!("{SHARDS}{}", ps.name),
                &encode(ps),
                Condition::None,
                None,
            )
            .await?;
        Ok(())
    }

    /// Returns a keyspace's record and its revision.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn get_keyspace(&self, name: &str) -> Result<Option<(Keyspace, u64)>> {
        match self.store.get(&format!("{KEYSPACES}{name}")).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Returns a keyspace's placement and its revision.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn get_placement(&self, keyspace: &str) -> Result<Option<(Placement, u64)>> {
        match self.store.get(&format!("{PLACEMENT}{keyspace}")).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Writes a placement if its record is still at `expected` (0: absent).
    ///
    /// # Errors
    /// [`TopoError::Conflict`] when someone else changed it first.
    pub async fn put_placement(&self, p: &Placement, expected: u64) -> Result<u64> {
        self.store
            .put(
                &format!("{PLACEMENT}{}", p.keyspace),
                &encode(p),
                Condition::ModRevision(expected),
                None,
            )
            .await
    }

    /// Validates and stores a vschema. A new keyspace also gets its placement over the
    /// registered physical shards; an existing one keeps its logical-shard count.
    /// Returns the keyspace's placement.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] for a bad vschema, a changed shard count or no physical
    /// shards; [`TopoError::Conflict`] on a concurrent change.
    pub async fn apply_vschema(&self, v: &VSchema) -> Result<Placement> {
        v.validate()?;
        let key = format!("{KEYSPACES}{}", v.keyspace);
        let existing = self.get_keyspace(&v.keyspace).await?;
        let expected = match &existing {
            Some((ks, rev)) => {
                if ks.vschema.sharded != v.sharded
                    || ks.vschema.logical_shard_count() != v.logical_shard_count()
                {
                    return Err(TopoError::invalid(
                        "vschema",
                        format!(
                            "logical_shards: keyspace {} already has {} logical shards (sharded: {}); the count is fixed for a keyspace's life",
                            v.keyspace,
                            ks.vschema.logical_shard_count(),
                            ks.vschema.sharded
                        ),
                    ));
                }
                *rev
            }
            None => 0,
        };
        let placement = match self.get_placement(&v.keyspace).await? {
            Some((p, _)) => p,
            None => {
                let snap = self.snapshot().await?;
                let weights: Vec<(String, u32)> = snap
                    .shards
                    .values()
                    .map(|s| (s.name.clone(), s.weight))
                    .collect();
                let names =
                    crate::placement::assign(&v.keyspace, v.logical_shard_count(), &weights);
                if names.is_empty() {
                    return Err(TopoError::invalid(
                        "vschema",
                        "no physical shards are registered (with weight > 0) to place the keyspace on",
                    ));
                }
                let p = Placement {
                    keyspace: v.keyspace.clone(),
                    epoch: 1,
                    shards: names.into_iter().map(PlacementEntry::serving).collect(),
                };
                self.put_placement(&p, 0).await?;
                p
            }
        };
        self.store
            .put(
                &key,
                &encode(&Keyspace { vschema: v.clone() }),
                Condition::ModRevision(expected),
                None,
            )
            .await?;
        Ok(placement)
    }

    /// Removes an unsharded keyspace: its record (while still at `revision`), then its
    /// placement and any shadow records. Returns whether it was there. (Its schema is the
    /// caller's to drop.)
    ///
    /// # Errors
    /// [`TopoError::Invalid`] for a sharded keyspace (logical shards are not dropped this way);
    /// [`TopoError::Conflict`] when the record changed since `revision`; store failures.
    pub async fn delete_unsharded_keyspace(&self, name: &str, revision: u64) -> Result<bool> {
        let Some((ks, _)) = self.get_keyspace(name).await? else {
            return Ok(false);
        };
        if ks.vschema.sharded {
            return Err(TopoError::invalid(
                "keyspace",
                format!("{name} is sharded: its logical shards are not dropped this way"),
            ));
        }
        let gone = self
            .store
            .delete(
                &format!("{KEYSPACES}{name}"),
                Condition::ModRevision(revision),
            )
            .await?
            .is_some();
        for prefix in [PLACEMENT, CANDIDATES, RESULT_SHADOWS] {
            self.store
                .delete(&format!("{prefix}{name}"), Condition::None)
                .await?;
        }
        Ok(gone)
    }

    /// Stores a candidate vschema that routers plan every query against a second time (the
    /// routing shadow), replacing any earlier candidate for its keyspace.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] for a bad vschema; store failures.
    pub async fn put_candidate(&self, v: &VSchema) -> Result<()> {
        v.validate()?;
        self.store
            .put(
                &format!("{CANDIDATES}{}", v.keyspace),
                &encode(v),
                Condition::None,
                None,
            )
            .await?;
        Ok(())
    }

    /// Removes a keyspace's candidate vschema; returns whether there was one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn delete_candidate(&self, keyspace: &str) -> Result<bool> {
        Ok(self
            .store
            .delete(&format!("{CANDIDATES}{keyspace}"), Condition::None)
            .await?
            .is_some())
    }

    /// Stores a result shadow for `spec.keyspace`.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] naming a bad field; store failures.
    pub async fn put_result_shadow(&self, spec: &ResultShadowSpec) -> Result<()> {
        if !(0.0..=1.0).contains(&spec.sample_rate) {
            return Err(TopoError::invalid(
                "result shadow",
                "sample_rate: must be between 0.0 and 1.0",
            ));
        }
        if spec.keyspace == spec.target {
            return Err(TopoError::invalid(
                "result shadow",
                "target: must differ from keyspace",
            ));
        }
        if spec.max_concurrency == 0 {
            return Err(TopoError::invalid(
                "result shadow",
                "max_concurrency: must be at least 1",
            ));
        }
        self.store
            .put(
                &format!("{RESULT_SHADOWS}{}", spec.keyspace),
                &encode(spec),
                Condition::None,
                None,
            )
            .await?;
        Ok(())
    }

    /// Removes a keyspace's result shadow; returns whether there was one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn delete_result_shadow(&self, keyspace: &str) -> Result<bool> {
        Ok(self
            .store
            .delete(&format!("{RESULT_SHADOWS}{keyspace}"), Condition::None)
            .await?
            .is_some())
    }

    /// Registers (or refreshes) a router under a lease: the record vanishes if the router
    /// stops renewing the lease.
    ///
    /// # Errors
    /// Store failures; [`TopoError::LeaseNotFound`] when the lease has lapsed.
    pub async fn register_router(&self, r: &RouterRegistration, lease: i64) -> Result<()> {
        self.store
            .put(
                &format!("{ROUTERS}{}", r.id),
                &encode(r),
                Condition::None,
                Some(lease),
            )
            .await?;
        Ok(())
    }

    /// Returns the live routers.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn routers(&self) -> Result<Vec<RouterRegistration>> {
        let (kvs, _) = self.store.list(ROUTERS).await?;
        kvs.iter().map(decode).collect()
    }

    /// Creates a job (fails with [`TopoError::Conflict`] if its id exists); returns its
    /// revision.
    ///
    /// # Errors
    /// Conflicts and store failures.
    pub async fn create_job(&self, job: &Job) -> Result<u64> {
        self.store
            .put(
                &format!("{JOBS}{}", job.id),
                &encode(job),
                Condition::ModRevision(0),
                None,
            )
            .await
    }

    /// Returns a job and its revision.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn get_job(&self, id: &str) -> Result<Option<(Job, u64)>> {
        match self.store.get(&format!("{JOBS}{id}")).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Writes a job's new phase or checkpoints if it is still at `expected`, so that two
    /// rebalancers can never both advance one job.
    ///
    /// # Errors
    /// [`TopoError::Conflict`] when someone else changed it first.
    pub async fn update_job(&self, job: &Job, expected: u64) -> Result<u64> {
        self.store
            .put(
                &format!("{JOBS}{}", job.id),
                &encode(job),
                Condition::ModRevision(expected),
                None,
            )
            .await
    }

    /// The copy checkpoints of the tables moving out of keyspace `from`, and the record's
    /// revision (0: none yet).
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn get_movetables_progress(&self, from: &str) -> Result<(MoveTablesProgress, u64)> {
        match self.store.get(&format!("{MOVETABLES}{from}")).await? {
            Some(kv) => Ok((decode(&kv)?, kv.mod_revision)),
            None => Ok((
                MoveTablesProgress {
                    keyspace: from.to_string(),
                    tables: BTreeMap::new(),
                },
                0,
            )),
        }
    }

    /// Writes the copy checkpoints of keyspace `p.keyspace` if the record is still at
    /// `expected` (0: absent), so that two `run`s never both advance it; returns the new
    /// revision. An empty record is deleted.
    ///
    /// # Errors
    /// [`TopoError::Conflict`] when someone else changed it first; store failures.
    pub async fn put_movetables_progress(
        &self,
        p: &MoveTablesProgress,
        expected: u64,
    ) -> Result<u64> {
        let key = format!("{MOVETABLES}{}", p.keyspace);
        if p.tables.is_empty() {
            if expected == 0 {
                return Ok(0);
            }
            self.store
                .delete(&key, Condition::ModRevision(expected))
                .await?;
            return Ok(0);
        }
        self.store
            .put(&key, &encode(p), Condition::ModRevision(expected), None)
            .await
    }

    /// Every table `tessera movetables` moves or moved (from the keyspaces' vschemas), with
    /// its copy checkpoint.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn movetables_jobs(&self) -> Result<Vec<MoveTablesJob>> {
        let (kvs, _) = self.store.list(KEYSPACES).await?;
        let (progress, _) = self.store.list(MOVETABLES).await?;
        let mut progress: BTreeMap<String, MoveTablesProgress> = progress
            .iter()
            .map(|kv| decode::<MoveTablesProgress>(kv).map(|p| (p.keyspace.clone(), p)))
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for kv in &kvs {
            let ks: Keyspace = decode(kv)?;
            let mut p = progress.remove(&ks.vschema.keyspace).unwrap_or_default();
            for (table, m) in &ks.vschema.moved_tables {
                out.push(MoveTablesJob {
                    from: ks.vschema.keyspace.clone(),
                    table: table.clone(),
                    to: m.to.clone(),
                    state: m.state,
                    progress: p.tables.remove(table),
                });
            }
        }
        Ok(out)
    }

    /// Lists every job.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let (kvs, _) = self.store.list(JOBS).await?;
        kvs.iter().map(decode).collect()
    }

    /// Records an administrative action; the oldest entries beyond [`AUDIT_KEEP`] go.
    ///
    /// # Errors
    /// Store failures.
    pub async fn audit(&self, e: &AuditEntry) -> Result<()> {
        let key = format!("{AUDIT}{:013}-{:010}-{}", e.at_ms, e.pid, e.phase);
        let value = serde_json::to_string(e).map_err(|err| TopoError::Corrupt {
            key: key.clone(),
            message: err.to_string(),
        })?;
        self.store.put(&key, &value, Condition::None, None).await?;
        let (kvs, _) = self.store.list(AUDIT).await?;
        if kvs.len() > AUDIT_KEEP {
            let mut keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
            keys.sort_unstable();
            for k in &keys[..keys.len() - AUDIT_KEEP] {
                self.store.delete(k, Condition::None).await?;
            }
        }
        Ok(())
    }

    /// The recorded administrative actions, oldest first, the last `limit` of them.
    ///
    /// # Errors
    /// Store failures and corrupt records.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let (mut kvs, _) = self.store.list(AUDIT).await?;
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        let skip = kvs.len().saturating_sub(limit);
        kvs[skip..].iter().map(decode).collect()
    }
}

/// Where exclusive locks of long-running commands live (outside [`ROOT`]).
pub const LOCKS: &str = "/tessera-locks/";

/// How long a lock outlives a holder that stopped renewing it (a process that died).
const LOCK_TTL_MS: u64 = 10_000;

/// An exclusive lock in the topology store, held while a lease renewed in the background
/// lives: [`TopoLock::release`] ends it at once; a holder that dies loses it within
/// `LOCK_TTL_MS`.
pub struct TopoLock {
    store: Arc<dyn Store>,
    lease: i64,
    keeper: tokio::task::JoinHandle<()>,
}

impl TopoLock {
    /// Gives the lock up now.
    pub async fn release(self) {
        self.keeper.abort();
        let _ = self.store.revoke_lease(self.lease).await;
    }
}

impl Drop for TopoLock {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Topo {
    /// Takes the exclusive lock `name`, saying `holder` holds it.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] naming the holder when someone holds it; store failures.
    pub async fn lock(&self, name: &str, holder: &str) -> Result<TopoLock> {
        let key = format!("{LOCKS}{name}");
        let lease = self.store.grant_lease(LOCK_TTL_MS).await?;
        match self
            .store
            .put(&key, holder, Condition::ModRevision(0), Some(lease))
            .await
        {
            Ok(_) => {}
            Err(TopoError::Conflict { .. }) => {
                let _ = self.store.revoke_lease(lease).await;
                let by = self
                    .store
                    .get(&key)
                    .await?
                    .map_or_else(|| "someone".to_string(), |kv| kv.value);
                return Err(TopoError::invalid(
                    name,
                    format!(
                        "held by {by} (one at a time; a holder that died lets go within {} s)",
                        LOCK_TTL_MS / 1000
                    ),
                ));
            }
            Err(e) => {
                let _ = self.store.revoke_lease(lease).await;
                return Err(e);
            }
        }
        let store = self.store.clone();
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(LOCK_TTL_MS / 4)).await;
                let _ = store.keep_alive(lease).await;
            }
        });
        Ok(TopoLock {
            store: self.store.clone(),
            lease,
            keeper,
        })
    }
}

/// Where administrative actions are recorded: outside [`ROOT`], so that neither routers'
/// watches nor their snapshots read them.
pub const AUDIT: &str = "/tessera-audit/";

/// How many audit entries are kept.
pub const AUDIT_KEEP: usize = 10_000;

/// One administrative action, as the command line that made it recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who: the operating-system user and host (or `TESSERA_ACTOR`).
    pub who: String,
    /// The process that did it.
    pub pid: u32,
    /// The command line, secrets masked.
    pub command: String,
    /// `started`, `ok` or `failed`.
    pub phase: String,
    /// For `failed`: the error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn a_lock_is_held_by_one_at_a_time() {
        let topo = Topo::new(Arc::new(MemoryStore::new()));
        let a = topo
            .lock("movetables/legacy", "anna@h pid 1")
            .await
            .expect("first");
        let e = topo
            .lock("movetables/legacy", "bob@h pid 2")
            .await
            .err()
            .expect("second refused");
        assert!(e.to_string().contains("anna@h pid 1"), "{e}");
        let other = topo
            .lock("movetables/other", "bob@h pid 2")
            .await
            .expect("another name");
        a.release().await;
        let b = topo
            .lock("movetables/legacy", "bob@h pid 2")
            .await
            .expect("after release");
        b.release().await;
        other.release().await;
    }

    #[tokio::test]
    async fn jobs_advance_only_from_the_revision_read() {
        let topo = Topo::new(Arc::new(MemoryStore::new()));
        let mut job = Job {
            id: "j1".into(),
            keyspace: "k".into(),
            moves: vec![(3, "ps0".into(), "ps1".into())],
            phase: "prepare".into(),
            checkpoints: BTreeMap::new(),
            updated_ms: 0,
            created_ms: 0,
            tables: BTreeMap::new(),
            journal_backlog: 0,
            verify: None,
            stall_ms: None,
            error: None,
            events: Vec::new(),
        };
        let rev = topo.create_job(&job).await.expect("create");
        assert!(topo.create_job(&job).await.is_err(), "ids are unique");
        job.phase = "backfill".into();
        job.checkpoints.insert("backfill/t".into(), "42".into());
        let rev2 = topo.update_job(&job, rev).await.expect("advance");
        assert!(matches!(
            topo.update_job(&job, rev).await,
            Err(TopoError::Conflict { .. })
        ));
        let (got, r) = topo.get_job("j1").await.expect("get").expect("present");
        assert_eq!((got, r), (job, rev2));
        assert_eq!(topo.jobs().await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn apply_places_and_keeps_count() {
        let topo = Topo::new(Arc::new(MemoryStore::new()));
        for i in 0..3 {
            topo.put_physical_shard(&PhysicalShard {
                name: format!("ps{i}"),
                host: "127.0.0.1".into(),
                port: 3306 + i,
                user: "u".into(),
                password: None,
                password_env: None,
                weight: 1,
                tls_ca: None,
                data_account: None,
            })
            .await
            .expect("ps");
        }
        let v = VSchema::from_yaml("keyspace: k\nsharded: true\nlogical_shards: 16\n").expect("v");
        let p = topo.apply_vschema(&v).await.expect("apply");
        assert_eq!(p.shards.len(), 16);
        let again = topo.apply_vschema(&v).await.expect("re-apply");
        assert_eq!(again, p);
        let v2 = VSchema::from_yaml("keyspace: k\nsharded: true\nlogical_shards: 32\n").expect("v");
        assert!(topo.apply_vschema(&v2).await.is_err());
        let snap = topo.snapshot().await.expect("snap");
        assert_eq!(snap.keyspaces.len(), 1);
        assert_eq!(snap.shards.len(), 3);
    }

    #[tokio::test]
    async fn movetables_checkpoints_are_compare_and_set_and_join_the_vschemas() {
        let topo = Topo::new(Arc::new(MemoryStore::new()));
        topo.put_physical_shard(&PhysicalShard {
            name: "ps0".into(),
            host: "127.0.0.1".into(),
            port: 3306,
            user: "u".into(),
            password: None,
            password_env: None,
            weight: 1,
            tls_ca: None,
            data_account: None,
        })
        .await
        .expect("ps");
        let v = VSchema::from_yaml(
            "keyspace: legacy\nsharded: false\nmoved_tables:\n  orders: {to: shop, state: copying}\n  kv: {to: shop, state: moved}\n",
        )
        .expect("v");
        topo.apply_vschema(&v).await.expect("apply");
        let (mut p, rev) = topo.get_movetables_progress("legacy").await.expect("get");
        assert_eq!((p.tables.len(), rev), (0, 0));
        p.tables.insert(
            "orders".into(),
            CopyCheckpoint {
                to: "shop".into(),
                after: Some("[\"i12\"]".into()),
                rows_copied: 12,
                rows_total: 100,
                done: false,
                updated_ms: 1,
            },
        );
        let rev = topo.put_movetables_progress(&p, 0).await.expect("put");
        assert!(matches!(
            topo.put_movetables_progress(&p, 0).await,
            Err(TopoError::Conflict { .. })
        ));
        let (got, got_rev) = topo.get_movetables_progress("legacy").await.expect("get");
        assert_eq!((&got, got_rev), (&p, rev));
        let jobs = topo.movetables_jobs().await.expect("jobs");
        assert_eq!(jobs.len(), 2);
        let orders = jobs.iter().find(|j| j.table == "orders").expect("orders");
        assert_eq!(orders.progress.as_ref().map(|c| c.rows_copied), Some(12));
        let kv = jobs.iter().find(|j| j.table == "kv").expect("kv");
        assert_eq!(
            (kv.state, kv.progress.is_none()),
            (crate::MoveState::Moved, true)
        );
        // A record emptied is removed.
        p.tables.clear();
        topo.put_movetables_progress(&p, rev).await.expect("clear");
        assert_eq!(
            topo.get_movetables_progress("legacy").await.expect("get").1,
            0
        );
        // Routers' snapshots ignore the record.
        assert!(topo.snapshot().await.is_ok());
    }
}
