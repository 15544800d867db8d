//! Online resharding end to end: MariaDB servers on loopback, a three-node topology cluster of
//! `tessera topo serve` processes, two routers, a load generator writing and reading through
//! both routers the whole time, and the rebalancer run as `tessera reshard …` processes (killed
//! with SIGKILL in places). Afterwards every row is checked directly on the MariaDB that owns
//! it, and every table against a single-MariaDB replay of the committed writes.

mod common;

use common::topo_serve;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::localcluster::LocalCluster;
use tessera_router::config::RouterConfig;
use tessera_router::{Router, RouterHandle};
use tessera_topo::{HttpStore, PhysicalShard, Topo, VSchema};

const USER: &str = "app";
const PASSWORD: &str = "s3cret";

const VSCHEMA: &str = "keyspace: shop
sharded: true
logical_shards: 8
tables:
  accounts: { shard_key: id, vindex: xxhash }
  events: { shard_key: account_id, vindex: xxhash }
";

const DDL: &[&str] = &[
    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance BIGINT NOT NULL, note TEXT NULL)",
    "CREATE TABLE events (account_id BIGINT NOT NULL, seq INT NOT NULL, payload VARCHAR(64) NOT NULL, PRIMARY KEY (account_id, seq))",
];

struct TopoNode {
    child: Option<Child>,
}

impl Drop for TopoNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child process killed when dropped (a rebalancer run).
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a topology node per port (ids 1, 2, …, data under `dir`), waiting for each to say
/// it is ready.
fn spawn_topo_nodes(ports: &[u16], peers: &str, dir: &std::path::Path) -> Vec<TopoNode> {
    let mut nodes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let (id, listen) = ((i + 1).to_string(), format!("127.0.0.1:{p}"));
        let data = dir.join(format!("n{}", i + 1));
        let c = topo_serve(
            [
                "--id".as_ref(),
                id.as_ref(),
                "--peers".as_ref(),
                peers.as_ref(),
                "--listen".as_ref(),
                listen.as_ref(),
                "--data-dir".as_ref(),
                data.as_os_str(),
            ],
            Stdio::null(),
        );
        nodes.push(TopoNode { child: Some(c) });
    }
    nodes
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Cluster {
    servers: LocalCluster,
    topo_nodes: Vec<TopoNode>,
    topo_ports: Vec<u16>,
    topo_peers: String,
    dir: tempfile::TempDir,
    endpoints: String,
    topo: Topo,
    routers: Vec<RouterHandle>,
}

impl Cluster {
    /// Three MariaDB servers (ps0 and ps1 registered, the third left for `ps2`) plus an oracle,
    /// a three-node topology cluster, the vschema, the tables, and two routers.
    async fn start() -> Cluster {
        let servers = LocalCluster::start(4, None).await.expect("MariaDB servers");
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = spawn_topo_nodes(&ports, &peers, dir.path());
        let eps: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let topo = Topo::new(Arc::new(HttpStore::new(&eps, None).expect("client")));
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..2 {
            loop {
                let s = &servers.servers()[i];
                let r = topo
                    .put_physical_shard(&PhysicalShard {
                        name: format!("ps{i}"),
                        host: s.host().into(),
                        port: s.port(),
                        user: s.user().into(),
                        password: Some(s.password().into()),
                        password_env: None,
                        weight: 1,
                        tls_ca: None,
                        data_account: None,
                    })
                    .await;
                match r {
                    Ok(()) => break,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("register ps{i}: {e}"),
                }
            }
        }
        let v = VSchema::from_yaml(VSCHEMA).expect("vschema");
        tessera::cli::apply_vschema(&topo, &v).await.expect("apply");
        let mut routers = Vec::new();
        for _ in 0..2 {
            let cfg = RouterConfig::from_yaml(&format!(
                "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
            ))
            .expect("config");
            routers.push(
                Router::new(cfg, topo.clone())
                    .start()
                    .await
                    .expect("router"),
            );
        }
        let c = Cluster {
            servers,
            topo_nodes: nodes,
            topo_ports: ports,
            topo_peers: peers,
            dir,
            endpoints: eps.join(","),
            topo,
            routers,
        };
        let mut conn = c.router_conn(0).await;
        for d in DDL {
            conn.query_drop(*d).await.expect("create table");
        }
        // Both routers registered.
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.topo.routers().await.map(|r| r.len()).unwrap_or(0) < 2 {
            assert!(Instant::now() < deadline, "routers did not register");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c
    }

    fn router_opts(&self, i: usize) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.routers[i].local_addr().port())
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .db_name(Some("shop"))
            .prefer_socket(false)
    }

    async fn router_conn(&self, i: usize) -> Conn {
        Conn::new(self.router_opts(i))
            .await
            .expect("router connection")
    }

    async fn direct(&self, i: usize) -> Conn {
        let s = &self.servers.servers()[i];
        let o = OptsBuilder::default()
            .ip_or_hostname(s.host())
            .tcp_port(s.port())
            .user(Some(s.user()))
            .pass(Some(s.password()))
            .prefer_socket(false);
        Conn::new(o).await.expect("direct connection")
    }

    async fn add_ps2(&self) {
        let s = &self.servers.servers()[2];
        self.topo
            .put_physical_shard(&PhysicalShard {
                name: "ps2".into(),
                host: s.host().into(),
                port: s.port(),
                user: s.user().into(),
                password: Some(s.password().into()),
                password_env: None,
                weight: 1,
                tls_ca: None,
                data_account: None,
            })
            .await
            .expect("register ps2");
    }

    fn server_of(&self, ps: &str) -> usize {
        ps.trim_start_matches("ps").parse().expect("ps index")
    }

    /// Runs `tessera reshard ARGS` to completion; returns stdout, panics on failure.
    fn reshard(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("reshard")
            .args(args)
            .args(["--topo", &self.endpoints])
            .output()
            .expect("run tessera reshard");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "tessera reshard {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn reshard_bg(&self, args: &[&str]) -> Proc {
        Proc(Some(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .arg("reshard")
                .args(args)
                .args(["--topo", &self.endpoints])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn tessera reshard"),
        ))
    }

    /// Waits (up to 90 s) for a background `reshard run` to exit successfully.
    async fn finish(&self, runner: &mut Proc, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while let Some(ch) = runner.0.as_mut() {
            if let Some(st) = ch.try_wait().expect("wait") {
                assert!(st.success(), "reshard run failed: {:?}", self.job(id).await);
                runner.0 = None;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run did not finish: {:?}",
                self.job(id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn job(&self, id: &str) -> tessera_topo::Job {
        self.topo.get_job(id).await.expect("topo").expect("job").0
    }

    /// Every topology node killed (SIGKILL).
    fn topo_down(&mut self) {
        self.topo_nodes.clear();
    }

    /// The topology nodes started again on their ports and data dirs; returns once a write
    /// goes through.
    async fn topo_up(&mut self) {
        self.topo_nodes = spawn_topo_nodes(&self.topo_ports, &self.topo_peers, self.dir.path());
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = self
            .topo
            .store()
            .put("/test/topo-up", "1", tessera_topo::Condition::None, None)
            .await
        {
            assert!(
                Instant::now() < deadline,
                "no leader after the restart: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_job(&self, id: &str, what: &str, f: impl Fn(&tessera_topo::Job) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j = self.job(id).await;
            if f(&j) {
                return;
            }
            assert!(Instant::now() < deadline, "job never reached {what}: {j:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn placement(&self) -> tessera_topo::Placement {
        self.topo
            .get_placement("shop")
            .await
            .expect("topo")
            .expect("placement")
            .0
    }

    async fn stop(mut self) {
        for r in self.routers.drain(..) {
            r.shutdown().await;
        }
    }
}

/// What the load generator was told committed: per account `(owner, balance)`, or `None`
/// when deleted; events by `(account, seq)`.
#[derive(Default)]
struct Model {
    accounts: BTreeMap<i64, Option<(String, i64)>>,
    events: BTreeMap<(i64, i32), String>,
}

type Effect = Box<dyn Fn(&mut Model) + Send>;

#[derive(Default)]
struct LoadStats {
    ops: AtomicU64,
    retried: AtomicU64,
    /// Retries of writes that a router refused because its topology registration had lapsed.
    refused_unregistered: AtomicU64,
    reads_checked: AtomicU64,
    errors: Mutex<Vec<String>>,
}

fn retriable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1205 || s.code == 1213)
}

fn unregistered(e: &mysql_async::Error) -> bool {
    retriable(e) && e.to_string().contains("lost its topology registration")
}

/// One worker: owns accounts `base..base+n`; inserts, updates, deletes, multi-statement
/// transactions through one router, and reads back each acknowledged write through the other.
async fn worker(
    w: usize,
    writer: OptsBuilder,
    reader: OptsBuilder,
    model: Arc<Mutex<Model>>,
    stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
) {
    let base = 1_000_000 * (w as i64 + 1);
    let mut wc = Conn::new(writer).await.expect("writer");
    let mut rc = Conn::new(reader).await.expect("reader");
    let mut next = 0i64;
    let mut live: Vec<i64> = Vec::new();
    let mut seq = 0i32;
    let mut rng = w as u64 * 7919 + 1;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    while !stop.load(Ordering::Relaxed) {
        let op = rand(10);
        // (sql statements, model effect)
        let (stmts, effect): (Vec<String>, Effect) = if op < 4 || live.len() < 5 {
            let id = base + next;
            next += 1;
            let owner = format!("w{w}-{id}");
            let bal = rand(1000) as i64;
            (
                vec![format!("INSERT INTO accounts (id, owner, balance, note) VALUES ({id}, '{owner}', {bal}, 'n')")],
                Box::new(move |m: &mut Model| {
                    m.accounts.insert(id, Some((owner.clone(), bal)));
                }),
            )
        } else if op < 7 {
            let id = live[rand(live.len() as u64) as usize];
            let bal = rand(100_000) as i64;
            (
                vec![format!(
                    "UPDATE accounts SET balance = {bal} WHERE id = {id}"
                )],
                Box::new(move |m: &mut Model| {
                    if let Some(Some(a)) = m.accounts.get_mut(&id) {
                        a.1 = bal;
                    }
                }),
            )
        } else if op < 8 {
            let i = rand(live.len() as u64) as usize;
            let id = live[i];
            (
                // One transaction: the retry loop below retries the op as a whole, so its
                // statements must commit together or not at all.
                vec![
                    "BEGIN".into(),
                    format!("DELETE FROM events WHERE account_id = {id}"),
                    format!("DELETE FROM accounts WHERE id = {id}"),
                    "COMMIT".into(),
                ],
                Box::new(move |m: &mut Model| {
                    m.accounts.insert(id, None);
                    m.events.retain(|(a, _), _| *a != id);
                }),
            )
        } else {
            // A transaction over two accounts (usually two logical shards).
            let a = live[rand(live.len() as u64) as usize];
            let b = live[rand(live.len() as u64) as usize];
            let amt = rand(50) as i64;
            seq += 1;
            let s = seq;
            (
                vec![
                    "BEGIN".into(),
                    format!("UPDATE accounts SET balance = balance - {amt} WHERE id = {a}"),
                    format!("UPDATE accounts SET balance = balance + {amt} WHERE id = {b}"),
                    format!("INSERT INTO events (account_id, seq, payload) VALUES ({a}, {s}, 'transfer {amt} to {b}')"),
                    "COMMIT".into(),
                ],
                Box::new(move |m: &mut Model| {
                    if let Some(Some(x)) = m.accounts.get_mut(&a) {
                        x.1 -= amt;
                    }
                    if let Some(Some(x)) = m.accounts.get_mut(&b) {
                        x.1 += amt;
                    }
                    m.events.insert((a, s), format!("transfer {amt} to {b}"));
                }),
            )
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut failed = None;
            for s in &stmts {
                if let Err(e) = wc.query_drop(s.as_str()).await {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None => break,
                // A router without its topology registration refuses writes to moving
                // logical shards until the topology is back: keep retrying those longer.
                Some(e)
                    if retriable(&e) && (attempt < 50 || unregistered(&e) && attempt < 3000) =>
                {
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    if unregistered(&e) {
                        stats.refused_unregistered.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = wc.query_drop("ROLLBACK").await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some(e) => {
                    stats
                        .errors
                        .lock()
                        .expect("lock")
                        .push(format!("{stmts:?}: {e}"));
                    let _ = wc.query_drop("ROLLBACK").await;
                    return;
                }
            }
        }
        {
            let mut m = model.lock().expect("model");
            effect(&mut m);
            live = m
                .accounts
                .range(base..base + 1_000_000)
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| *k)
                .collect();
        }
        stats.ops.fetch_add(1, Ordering::Relaxed);
        // Read the last written account back through the other router.
        if let Some(&id) = live.last() {
            let want = model
                .lock()
                .expect("model")
                .accounts
                .get(&id)
                .cloned()
                .flatten();
            match rc
                .query_first::<(String, i64), _>(format!(
                    "SELECT owner, balance FROM accounts WHERE id = {id}"
                ))
                .await
            {
                Ok(got) => {
                    if got != want {
                        stats
                            .errors
                            .lock()
                            .expect("lock")
                            .push(format!("read of account {id} through the other router: {got:?}, committed {want:?}"));
                    }
                    stats.reads_checked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if retriable(&e) => {}
                Err(e) => stats
                    .errors
                    .lock()
                    .expect("lock")
                    .push(format!("read: {e}")),
            }
        }
    }
}

struct Load {
    model: Arc<Mutex<Model>>,
    stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(c: &Cluster, workers: usize) -> Load {
    let model = Arc::new(Mutex::new(Model::default()));
    let stats = Arc::new(LoadStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..workers)
        .map(|w| {
            tokio::spawn(worker(
                w,
                c.router_opts(w % 2),
                c.router_opts((w + 1) % 2),
                model.clone(),
                stats.clone(),
                stop.clone(),
            ))
        })
        .collect();
    Load {
        model,
        stats,
        stop,
        tasks,
    }
}

impl Load {
    async fn finish(self) -> (Arc<Mutex<Model>>, Arc<LoadStats>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("worker");
        }
        (self.model, self.stats)
    }
}

/// Loads `n` accounts (ids 1..=n) through the routers, recording them in `model`.
async fn seed(c: &Cluster, n: i64, model: &Mutex<Model>) {
    let mut conn = c.router_conn(0).await;
    let mut id = 1;
    while id <= n {
        let hi = (id + 499).min(n);
        let rows: Vec<String> = (id..=hi)
            .map(|i| format!("({i}, 'seed{i}', {}, NULL)", i * 3))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO accounts (id, owner, balance, note) VALUES {}",
            rows.join(", ")
        ))
        .await
        .expect("seed");
        let mut m = model.lock().expect("model");
        for i in id..=hi {
            m.accounts.insert(i, Some((format!("seed{i}"), i * 3)));
        }
        id = hi + 1;
    }
}

/// Reads every row of every logical shard directly from the MariaDB that owns it (per the
/// placement), failing on a row found twice.
async fn owned_rows(c: &Cluster) -> (BTreeMap<i64, (String, i64)>, BTreeMap<(i64, i32), String>) {
    let p = c.placement().await;
    let mut accounts = BTreeMap::new();
    let mut events = BTreeMap::new();
    for (ls, e) in p.shards.iter().enumerate() {
        assert_eq!(
            e.state,
            tessera_topo::LogicalShardState::Serving,
            "LS {ls} still moving"
        );
        let mut d = c.direct(c.server_of(&e.ps)).await;
        let schema = format!("shop_{ls:04}");
        let rows: Vec<(i64, String, i64)> = d
            .query(format!("SELECT id, owner, balance FROM {schema}.accounts"))
            .await
            .expect("read accounts");
        for (id, o, b) in rows {
            assert!(
                accounts.insert(id, (o, b)).is_none(),
                "account {id} in two logical shards"
            );
        }
        let rows: Vec<(i64, i32, String)> = d
            .query(format!(
                "SELECT account_id, seq, payload FROM {schema}.events"
            ))
            .await
            .expect("read events");
        for (a, s, p) in rows {
            events.insert((a, s), p);
        }
    }
    (accounts, events)
}

/// Every committed row is where the placement says, with its last committed value; deleted
/// rows are gone; and a checksum of each table equals that of a single-MariaDB replay of the
/// committed writes (on the oracle server).
async fn check_data(c: &Cluster, model: &Model) {
    let (accounts, events) = owned_rows(c).await;
    let want: BTreeMap<i64, (String, i64)> = model
        .accounts
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    for (id, v) in &want {
        assert_eq!(accounts.get(id), Some(v), "account {id}");
    }
    for id in accounts.keys() {
        assert!(
            want.contains_key(id),
            "account {id} should not exist (deleted or never committed)"
        );
    }
    assert_eq!(events, model.events, "events");
    // Single-MariaDB replay and checksums.
    let mut o = c.direct(3).await;
    o.query_drop("DROP DATABASE IF EXISTS replay")
        .await
        .expect("oracle");
    o.query_drop("CREATE DATABASE replay")
        .await
        .expect("oracle");
    o.query_drop("USE replay").await.expect("oracle");
    for d in DDL {
        o.query_drop(*d).await.expect("oracle ddl");
    }
    for chunk in want.iter().collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|(id, (o, b))| format!("({id}, '{o}', {b})"))
            .collect();
        o.query_drop(format!(
            "INSERT INTO accounts (id, owner, balance) VALUES {}",
            rows.join(",")
        ))
        .await
        .expect("replay");
    }
    for chunk in model.events.iter().collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|((a, s), p)| format!("({a}, {s}, '{p}')"))
            .collect();
        o.query_drop(format!("INSERT INTO events VALUES {}", rows.join(",")))
            .await
            .expect("replay");
    }
    let sum = |t: &str| {
        match t {
        "accounts" => "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT_WS('|', id, owner, balance))), 0) AS UNSIGNED) FROM ",
        _ => "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT_WS('|', account_id, seq, payload))), 0) AS UNSIGNED) FROM ",
    }
    };
    let p = c.placement().await;
    for t in ["accounts", "events"] {
        let want: (u64, u64) = o
            .query_first(format!("{}replay.{t}", sum(t)))
            .await
            .expect("oracle sum")
            .expect("row");
        let mut got = (0u64, 0u64);
        for (ls, e) in p.shards.iter().enumerate() {
            let mut d = c.direct(c.server_of(&e.ps)).await;
            let r: (u64, u64) = d
                .query_first(format!("{}shop_{ls:04}.{t}", sum(t)))
                .await
                .expect("sum")
                .expect("row");
            got.0 += r.0;
            got.1 += r.1;
        }
        assert_eq!(
            got, want,
            "checksum of {t} against the single-MariaDB replay"
        );
    }
}

/// Tessera's objects (journal tables, triggers) in `schema` on server `i`.
async fn aux_objects(c: &Cluster, i: usize, schema: &str) -> (u64, u64) {
    let mut d = c.direct(i).await;
    let t: Option<u64> = d
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_tessera\\_%'",
            (schema,),
        )
        .await
        .expect("tables");
    let g: Option<u64> = d
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
            (schema,),
        )
        .await
        .expect("triggers");
    (t.unwrap_or(0), g.unwrap_or(0))
}

async fn schema_exists(c: &Cluster, i: usize, schema: &str) -> bool {
    let mut d = c.direct(i).await;
    let r: Option<String> = d
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (schema,),
        )
        .await
        .expect("schemata");
    r.is_some()
}

fn job_id(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("job ")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        })
        .expect("job id in output")
}

/// Two logical shards of those on `ps` (with their sources).
async fn pick_moves(c: &Cluster, n: usize) -> Vec<(u32, String)> {
    let p = c.placement().await;
    let mut out = Vec::new();
    for (i, e) in p.shards.iter().enumerate() {
        if out.len() < n
            && out
                .iter()
                .all(|(_, ps): &(u32, String)| *ps != e.ps || n > 2)
        {
            out.push((i as u32, e.ps.clone()));
        }
    }
    assert_eq!(out.len(), n);
    out
}

/// The backfill reads chunks without locks, so a chunk can land on the target after a newer
/// copy of one of its rows (a router's dual-write or the journal drain). Settling the chunk
/// must leave every row as the source has it; the text `REPLACE`s must store every type as it
/// was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_written_after_newer_copies_is_settled() {
    use tessera_rebalancer::shardmove::{self as sm, Copier};
    let servers = LocalCluster::start(2, None).await.expect("MariaDB servers");
    let conn = |i: usize| {
        let s = &servers.servers()[i];
        OptsBuilder::default()
            .ip_or_hostname(s.host())
            .tcp_port(s.port())
            .user(Some(s.user()))
            .pass(Some(s.password()))
            .prefer_socket(false)
    };
    let mut src = Conn::new(conn(0)).await.expect("source");
    let mut dst = Conn::new(conn(1)).await.expect("target");
    let mut writer = Conn::new(conn(0)).await.expect("writer");
    for c in [&mut src, &mut dst] {
        c.query_drop(sm::COPY_SESSION).await.expect("copy session");
    }
    src.query_drop(
        "CREATE DATABASE m; CREATE TABLE m.t (id BIGINT UNSIGNED PRIMARY KEY, \
         v VARCHAR(40) CHARACTER SET utf8mb4, l VARCHAR(20) CHARACTER SET latin1, \
         f FLOAT, d DOUBLE, n DECIMAL(30,10), b VARBINARY(16), bits BIT(12), \
         dt DATETIME(6), z DATE, tm TIME(3), e ENUM('x','y z'), j JSON, \
         g VARCHAR(30) AS (CONCAT('g', id)) VIRTUAL)",
    )
    .await
    .expect("source table");
    let mut values = Vec::new();
    for i in 1..=120u64 {
        values.push(format!(
            "({}, {}, 'caf\u{e9} {i}', {}, {}, {}.0000000001, {}, b'{:012b}', \
             '2024-02-29 23:59:58.{:06}', {}, '-838:59:58.5', {}, '{{\"k\": {i}}}')",
            if i == 120 { u64::MAX } else { i },
            match i % 4 {
                0 => "NULL".to_string(),
                1 => format!("'it''s \\\\ a \"q\" \\n {i} \u{1F600}'"),
                _ => format!("'row {i}'"),
            },
            if i % 5 == 0 {
                "NULL".to_string()
            } else {
                format!("{}.1e-3", i)
            },
            if i % 3 == 0 {
                "1.7976931348623157e308".to_string()
            } else {
                format!("{i}.3333333333333333")
            },
            i,
            if i % 2 == 0 {
                "X'00FF27275C00'".to_string()
            } else {
                "NULL".to_string()
            },
            i % 4096,
            i,
            if i % 7 == 0 {
                "'0000-00-00'"
            } else {
                "'1999-12-31'"
            },
            if i % 2 == 0 { "'y z'" } else { "NULL" },
        ));
    }
    src.query_drop(format!(
        "INSERT INTO m.t (id, v, l, f, d, n, b, bits, dt, z, tm, e, j) VALUES {}",
        values.join(", ")
    ))
    .await
    .expect("source rows");
    let tables = sm::load_tables(&mut src, "m").await.expect("tables");
    sm::create_schema_like(&mut src, &mut dst, "m", "m", &tables)
        .await
        .expect("target schema");
    let t = &tables[0];

    // The backfill reads rows 1..=50 ...
    let chunk = sm::read_chunk(&mut src, "m", t, None, 50)
        .await
        .expect("read chunk");
    assert_eq!(chunk.rows.len(), 50);
    // ... then a writer changes and deletes some of them and the dual-write copies that ...
    writer
        .query_drop(
            "UPDATE m.t SET v = 'newer', d = -0.5 WHERE id IN (7, 8); DELETE FROM m.t WHERE id = 9",
        )
        .await
        .expect("writer");
    let keys: Vec<Vec<mysql_async::Value>> = [7u64, 8, 9]
        .iter()
        .map(|k| vec![mysql_async::Value::UInt(*k)])
        .collect();
    let mut cp = Copier {
        src: &mut src,
        dst: &mut dst,
        src_schema: "m",
        dst_schema: "m",
    };
    assert_eq!(
        cp.copy_keys(t, &keys, true).await.expect("dual-write copy"),
        2
    );
    // ... and only then does the chunk land: rows 7 and 8 older than the source, 9 back.
    sm::write_rows(cp.dst, "m", t, &chunk.rows)
        .await
        .expect("write chunk");
    let stale: Option<String> = cp
        .dst
        .query_first("SELECT v FROM m.t WHERE id = 7")
        .await
        .expect("read target");
    assert_ne!(stale.as_deref(), Some("newer"), "the race did not happen");
    assert_eq!(cp.settle_chunk(t, &chunk).await.expect("settle"), 2);
    // The rest of the table, in one more chunk.
    let rest = sm::read_chunk(cp.src, "m", t, chunk.next(t).as_deref(), 1000)
        .await
        .expect("read rest");
    assert!(rest.next(t).is_none());
    sm::write_rows(cp.dst, "m", t, &rest.rows)
        .await
        .expect("write rest");
    assert_eq!(cp.settle_chunk(t, &rest).await.expect("settle rest"), 0);

    // Every row and value as on the source (compared as the server prints them, and by digest).
    let all = "SELECT id, v, l, f, d, n, HEX(b), bits + 0, dt, z, tm, e, j, g FROM m.t ORDER BY id";
    let a: Vec<mysql_async::Row> = cp.src.query(all).await.expect("source rows");
    let b: Vec<mysql_async::Row> = cp.dst.query(all).await.expect("target rows");
    let a: Vec<Vec<mysql_async::Value>> = a.into_iter().map(mysql_async::Row::unwrap).collect();
    let b: Vec<Vec<mysql_async::Value>> = b.into_iter().map(mysql_async::Row::unwrap).collect();
    assert_eq!(a.len(), 119);
    assert_eq!(a, b);
    let ck: Vec<(String, Option<i64>)> = cp
        .src
        .query("CHECKSUM TABLE m.t EXTENDED")
        .await
        .expect("source checksum");
    let ck2: Vec<(String, Option<i64>)> = cp
        .dst
        .query("CHECKSUM TABLE m.t EXTENDED")
        .await
        .expect("target checksum");
    assert_eq!(ck, ck2);
    let r = cp.verify_chunk(t, None, None).await.expect("verify");
    assert!(r.matched() && r.rows == 119 && r.repaired == 0, "{r:?}");
    // A difference is found, named and repaired.
    cp.dst
        .query_drop("UPDATE m.t SET l = 'x' WHERE id = 3; DELETE FROM m.t WHERE id = 4")
        .await
        .expect("damage the target");
    let r = cp.verify_chunk(t, None, None).await.expect("verify");
    assert_eq!(
        (r.mismatched, r.missing_on_target, r.repaired),
        (1, 1, 2),
        "{r:?}"
    );
    assert!(r.clean_after_repair, "{r:?}");
    drop((src, dst, writer));
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reshard_under_load_through_two_routers() {
    let c = Cluster::start().await;
    let seeded = Arc::new(Mutex::new(Model::default()));
    seed(&c, 3000, &seeded).await;
    c.add_ps2().await;
    let load = start_load(&c, 4);
    {
        let mut m = load.model.lock().expect("model");
        let s = seeded.lock().expect("seed");
        m.accounts.extend(s.accounts.clone());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let moves = pick_moves(&c, 2).await;
    let (ls_a, src_a) = moves[0].clone();
    let mut args: Vec<String> = vec!["start".into(), "--keyspace".into(), "shop".into()];
    for (ls, _) in &moves {
        args.push("--move".into());
        args.push(format!("{ls}:ps2"));
    }
    args.extend(["--no-run".into()]);
    let out = c.reshard(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let id = job_id(&out);
    // Throttled so that the backfill is still running when the direct write happens.
    let mut runner = c.reshard_bg(&["run", &id, "--until-verified", "--max-rows-per-sec", "3000"]);
    c.wait_job(&id, "backfill", |j| j.phase == "backfill").await;

    // A write made directly on the source MariaDB (not through a router) is journalled.
    let src_i = c.server_of(&src_a);
    let schema_a = format!("shop_{ls_a:04}");
    let mut d = c.direct(src_i).await;
    d.query_drop(format!(
        "INSERT INTO {schema_a}.accounts (id, owner, balance) VALUES (999999999, 'direct', 42)"
    ))
    .await
    .expect("direct write on the source");
    load.model
        .lock()
        .expect("model")
        .accounts
        .insert(999_999_999, Some(("direct".into(), 42)));

    // Wait for the runner (it stops at verified).
    c.finish(&mut runner, &id).await;
    let j = c.job(&id).await;
    assert_eq!(j.phase, "verified", "{j:?}");
    let v = j.verify.clone().expect("verify report");
    assert!(v.clean, "{v:?}");

    // The direct write reached the target copy.
    let mut t = c.direct(2).await;
    let got: Option<String> = t
        .query_first(format!(
            "SELECT owner FROM {schema_a}.accounts WHERE id = 999999999"
        ))
        .await
        .expect("read target");
    assert_eq!(got.as_deref(), Some("direct"));

    // Cutover under load.
    let out = c.reshard(&["cutover", &id]);
    assert!(out.contains("phase cut_over"), "{out}");
    let j = c.job(&id).await;
    let stall = j.stall_ms.expect("stall recorded");
    let p = c.placement().await;
    assert_eq!(p.shards[ls_a as usize].ps, "ps2");

    // A write made on the fenced source after cutover is rejected.
    let e = d
        .query_drop(format!(
            "UPDATE {schema_a}.accounts SET balance = 0 WHERE id = 999999999"
        ))
        .await
        .expect_err("fenced source must refuse writes");
    assert!(e.to_string().contains("fenced"), "{e}");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let out = c.reshard(&["complete", &id]);
    assert!(out.contains("phase completed"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (model, stats) = load.finish().await;
    let errors = stats.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "load generator errors: {errors:#?}");
    let ops = stats.ops.load(Ordering::Relaxed);
    assert!(ops > 100, "load generator made progress ({ops} ops)");
    eprintln!(
        "load: {ops} ops, {} retried, {} reads checked across routers; cutover stall {stall} ms",
        stats.retried.load(Ordering::Relaxed),
        stats.reads_checked.load(Ordering::Relaxed)
    );
    // Both routers copied writes while the logical shards moved, and count it.
    let mut copies = 0.0;
    for r in &c.routers {
        let text = common::http_get(r.admin_addr().expect("admin"), "/metrics").await;
        let all = common::parse_metrics(&text);
        copies += common::metric(
            &all,
            "tessera_router_dualwrite_copies_total",
            &["outcome=\"ok\""],
        );
    }
    assert!(copies > 0.0, "no dual-write copies counted");
    // The job's phase, rows copied and stall are in every router's metrics.
    let text = common::http_get(c.routers[0].admin_addr().expect("admin"), "/metrics").await;
    let all = common::parse_metrics(&text);
    let job_label = format!("job=\"{id}\"");
    assert_eq!(
        common::metric(
            &all,
            "tessera_job_phase",
            &[&job_label, "phase=\"completed\""]
        ),
        1.0,
        "{text}"
    );
    assert!(common::metric(&all, "tessera_job_rows_copied", &[&job_label]) > 0.0);
    assert!(common::metric(&all, "tessera_job_cutover_stall_seconds", &[&job_label]) > 0.0);
    let m = std::mem::take(&mut *model.lock().expect("model"));
    check_data(&c, &m).await;
    // Old copies gone; nothing of Tessera's left on the new owner.
    for (ls, from) in &moves {
        let schema = format!("shop_{ls:04}");
        assert!(
            !schema_exists(&c, c.server_of(from), &schema).await,
            "{schema} still on {from}"
        );
        assert_eq!(
            aux_objects(&c, 2, &schema).await,
            (0, 0),
            "{schema} on ps2 keeps journal or triggers"
        );
    }
    c.stop().await;
}

/// 4000 accounts seeded, `ps2` added, a load of two workers running, and a move of one
/// logical shard to `ps2` started and running in the background (at most 800 rows a second)
/// until it has copied rows: the load, the logical shard, its source, the job id, the runner.
/// Runs a resumed job to the end of verification (which must be clean), then cuts it over:
/// logical shard `ls` is then on ps2.
async fn resume_verify_and_cut_over(c: &Cluster, id: &str, ls: u32) {
    c.reshard(&["run", id, "--until-verified"]);
    let j = c.job(id).await;
    assert_eq!(j.phase, "verified");
    assert!(j.verify.as_ref().is_some_and(|v| v.clean), "{j:?}");
    c.reshard(&["cutover", id]);
    assert_eq!(c.placement().await.shards[ls as usize].ps, "ps2");
}

async fn backfilling_move(c: &Cluster) -> (Load, u32, String, String, Proc) {
    let seeded = Arc::new(Mutex::new(Model::default()));
    seed(c, 4000, &seeded).await;
    c.add_ps2().await;
    let load = start_load(c, 2);
    {
        let mut m = load.model.lock().expect("model");
        m.accounts
            .extend(seeded.lock().expect("seed").accounts.clone());
    }
    let moves = pick_moves(c, 1).await;
    let (ls, src) = moves[0].clone();
    let out = c.reshard(&[
        "start",
        "--keyspace",
        "shop",
        "--move",
        &format!("{ls}:ps2"),
        "--no-run",
    ]);
    let id = job_id(&out);
    let r = c.reshard_bg(&["run", &id, "--until-verified", "--max-rows-per-sec", "800"]);
    c.wait_job(&id, "backfill progress", |j| {
        j.phase == "backfill" && j.tables.values().any(|t| t.rows_copied > 0)
    })
    .await;
    (load, ls, src, id, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reshard_resumes_after_sigkill_and_rolls_back() {
    let c = Cluster::start().await;
    let (load, ls, src, id, mut r) = backfilling_move(&c).await;
    let schema = format!("shop_{ls:04}");

    // Killed during backfill.
    r.kill();
    let at_kill = c.job(&id).await;
    assert_eq!(at_kill.phase, "backfill");
    // Killed during verification. (A logical shard of one chunk per table saves no verify
    // checkpoint before it is done, and the checkpoints go once it is: the phase is what
    // can be waited for.)
    let mut r = c.reshard_bg(&["run", &id, "--until-verified", "--max-rows-per-sec", "800"]);
    c.wait_job(&id, "verification", |j| j.phase == "verify")
        .await;
    r.kill();
    let phase = c.job(&id).await.phase;
    assert!(phase == "verify" || phase == "verified", "{phase}");
    // Resumed to the end of verification, then cut over.
    resume_verify_and_cut_over(&c, &id, ls).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Rollback: back on the source with nothing lost (writes kept coming meanwhile).
    let out = c.reshard(&["rollback", &id]);
    assert!(out.contains("phase rolled_back"), "{out}");
    assert_eq!(c.placement().await.shards[ls as usize].ps, src);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Abort after rollback: the target copy goes, the source keeps no trace of the move.
    c.reshard(&["abort", &id]);
    let (model, stats) = load.finish().await;
    let errors = stats.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "load generator errors: {errors:#?}");
    let m = std::mem::take(&mut *model.lock().expect("model"));
    check_data(&c, &m).await;
    assert!(
        !schema_exists(&c, 2, &schema).await,
        "target copy left behind"
    );
    assert_eq!(
        aux_objects(&c, c.server_of(&src), &schema).await,
        (0, 0),
        "source keeps journal or triggers"
    );
    c.stop().await;
}

/// Every topology node down in the middle of a move, under load: the routers keep serving
/// (writes to the moving logical shard still copied, until a router's registration lapses:
/// then, and only those, refused with 1205), the move holds in the phase it was in (its runner
/// cannot go on; the job record is as it was), and once the topology is back the move
/// resumes, verifies, cuts over and loses nothing.
///
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_holds_while_the_topology_is_down_and_resumes() {
    const OUTAGE: Duration = Duration::from_secs(12);
    let mut c = Cluster::start().await;
    let (load, ls, _, id, mut r) = backfilling_move(&c).await;
    let state_before = c.placement().await.shards[ls as usize].state;
    let ops_before = load.stats.ops.load(Ordering::Relaxed);
    c.topo_down();
    tokio::time::sleep(OUTAGE).await;
    let ops_during = load.stats.ops.load(Ordering::Relaxed) - ops_before;
    // Whatever the runner did meanwhile (it cannot record progress), it goes.
    r.kill();
    c.topo_up().await;
    let held = c.job(&id).await;
    assert_eq!(held.phase, "backfill", "{held:?}");
    assert_eq!(
        c.placement().await.shards[ls as usize].state,
        state_before,
        "the placement of the moving logical shard is as it was"
    );
    assert!(ops_during > 0, "the routers served through the outage");
    // Resumed, verified, cut over.
    resume_verify_and_cut_over(&c, &id, ls).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (model, stats) = load.finish().await;
    c.reshard(&["complete", &id]);
    // The one kind of statement that needs the topology here: a write to the moving logical
    // shard once the router's registration has lapsed (7.5 s into the outage), which the move
    // could no longer account for; it is refused with 1205 (the workers retry it until the
    // topology is back), nothing else is.
    let errors = stats.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "load generator errors: {errors:#?}");
    let refused = stats.refused_unregistered.load(Ordering::Relaxed);
    let m = std::mem::take(&mut *model.lock().expect("model"));
    check_data(&c, &m).await;
    eprintln!(
        "topology down for {} s during a backfill: {ops_during} load operations served meanwhile; {refused} writes refused (to the moving logical shard {ls} after the registration lapsed, then retried), none other; the job held in phase {}",
        OUTAGE.as_secs(),
        held.phase
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_mid_backfill_leaves_the_source_as_it_was() {
    let c = Cluster::start().await;
    let seeded = Arc::new(Mutex::new(Model::default()));
    seed(&c, 3000, &seeded).await;
    c.add_ps2().await;
    let moves = pick_moves(&c, 1).await;
    let (ls, src) = moves[0].clone();
    let schema = format!("shop_{ls:04}");
    let mut s = c.direct(c.server_of(&src)).await;
    let before: Vec<(String, String)> = s
        .query(format!(
            "SELECT TABLE_NAME, CAST(CHECKSUM_OK AS CHAR) FROM (SELECT TABLE_NAME, 1 AS CHECKSUM_OK FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}') t ORDER BY 1"
        ))
        .await
        .expect("tables");
    let sum_before: Vec<(String, Option<u64>)> = s
        .query(format!("CHECKSUM TABLE {schema}.accounts, {schema}.events"))
        .await
        .expect("checksum");
    let out = c.reshard(&[
        "start",
        "--keyspace",
        "shop",
        "--move",
        &format!("{ls}:ps2"),
        "--no-run",
    ]);
    let id = job_id(&out);
    let mut r = c.reshard_bg(&["run", &id, "--until-verified", "--max-rows-per-sec", "500"]);
    c.wait_job(&id, "backfill progress", |j| {
        j.phase == "backfill" && j.tables.values().any(|t| t.rows_copied > 0)
    })
    .await;
    r.kill();
    let out = c.reshard(&["abort", &id]);
    assert!(out.contains("phase aborted"), "{out}");
    assert!(
        !schema_exists(&c, 2, &schema).await,
        "target copy left behind"
    );
    let after: Vec<(String, String)> = s
        .query(format!(
            "SELECT TABLE_NAME, CAST(CHECKSUM_OK AS CHAR) FROM (SELECT TABLE_NAME, 1 AS CHECKSUM_OK FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}') t ORDER BY 1"
        ))
        .await
        .expect("tables");
    assert_eq!(before, after, "source tables changed");
    assert_eq!(aux_objects(&c, c.server_of(&src), &schema).await, (0, 0));
    let sum_after: Vec<(String, Option<u64>)> = s
        .query(format!("CHECKSUM TABLE {schema}.accounts, {schema}.events"))
        .await
        .expect("checksum");
    assert_eq!(sum_before, sum_after, "source data changed");
    let p = c.placement().await;
    assert_eq!(p.shards[ls as usize].ps, src);
    assert_eq!(
        p.shards[ls as usize].state,
        tessera_topo::LogicalShardState::Serving
    );
    // Writes still work.
    let mut conn = c.router_conn(1).await;
    conn.query_drop("UPDATE accounts SET balance = 1 WHERE id = 1")
        .await
        .expect("write after abort");
    let _ = HashMap::<u8, u8>::new();
    c.stop().await;
}

/// Headless Chromium on the status page, or `None` when no `chromium` is installed
/// (`./scripts/test` installs it).
fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|b| b.to_string())
}

/// Loads the page in headless Chromium (its script fetches `/overview`), saves a screenshot as
/// `name.png` under `target/status-page/`, and returns the DOM after the script ran.
fn capture(browser: &str, url: &str, name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1500",
        "--virtual-time-budget=4000",
    ];
    let shot = dir.join(format!("{name}.png"));
    let out = Command::new(browser)
        .args(common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(browser)
        .args(common)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page's script did not load /overview:\n{dom}"
    );
    dom
}

/// The `(ls, ps, state)` cells of the placement picture.
fn cells(dom: &str) -> Vec<(u32, String, String)> {
    let mut out = Vec::new();
    // The page's own script (also in the DOM) writes the same markup: stop before it.
    let body = dom.split("<script").next().unwrap_or("");
    for part in body.split("<div class=\"ls ").skip(1) {
        let attr = |name: &str| {
            part.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        out.push((
            attr("data-ls").parse().unwrap_or(u32::MAX),
            attr("data-ps"),
            attr("data-state"),
        ));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_page_follows_a_reshard() {
    let Some(browser) = chromium() else {
        panic!("chromium is not installed (apt-get install chromium; ./scripts/test installs it)");
    };
    let c = Cluster::start().await;
    let seeded = Mutex::new(Model::default());
    seed(&c, 3000, &seeded).await;
    c.add_ps2().await;
    let url = format!("http://{}/", c.routers[0].admin_addr().expect("admin"));
    // Let the router measure sizes and see ps2.
    tokio::time::sleep(Duration::from_millis(5500)).await;

    let dom = capture(&browser, &url, "1-before");
    let before = cells(&dom);
    let p = c.placement().await;
    assert_eq!(before.len(), p.shards.len(), "one cell per logical shard");
    for (ls, ps, st) in &before {
        assert_eq!(*ps, p.shards[*ls as usize].ps);
        assert_eq!(st, "serving");
    }
    assert!(
        dom.contains("data-ps=\"ps2\""),
        "the new physical shard is shown"
    );
    assert!(dom.contains("rows ·"), "sizes are shown");

    let moves = pick_moves(&c, 2).await;
    let mut args = vec![
        "start".to_string(),
        "--keyspace".into(),
        "shop".into(),
        "--no-run".into(),
    ];
    for (ls, _) in &moves {
        args.push("--move".into());
        args.push(format!("{ls}:ps2"));
    }
    let id = job_id(&c.reshard(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let mut runner = c.reshard_bg(&["run", &id, "--until-verified", "--max-rows-per-sec", "100"]);
    c.wait_job(&id, "backfill progress", |j| {
        j.phase == "backfill" && j.tables.values().any(|t| t.rows_copied > 0)
    })
    .await;
    let dom = capture(&browser, &url, "2-backfill");
    let during = cells(&dom);
    for (ls, _) in &moves {
        let (_, ps, st) = &during[*ls as usize];
        assert_eq!(st, "dual_write", "LS {ls} during backfill");
        assert_ne!(ps, "ps2");
    }
    // The job moves on while the browser works: backfill, or just past it.
    assert!(
        ["backfill", "verify", "verified"]
            .iter()
            .any(|ph| dom.contains(&format!("data-job=\"{id}\" data-phase=\"{ph}\""))),
        "job shown while copying"
    );
    assert!(dom.contains("<progress"), "progress bars shown");

    // Finish, cut over, and look again.
    c.finish(&mut runner, &id).await;
    c.reshard(&["cutover", &id]);
    let dom = capture(&browser, &url, "3-cut-over");
    let after = cells(&dom);
    for (ls, _) in &moves {
        let (_, ps, st) = &after[*ls as usize];
        assert_eq!(
            (ps.as_str(), st.as_str()),
            ("ps2", "reverse"),
            "LS {ls} after cutover"
        );
    }
    assert!(dom.contains("data-phase=\"cut_over\""));
    c.reshard(&["complete", &id]);
    let dom = capture(&browser, &url, "4-completed");
    let done = cells(&dom);
    for (ls, _) in &moves {
        assert_eq!(done[*ls as usize].1, "ps2");
        assert_eq!(done[*ls as usize].2, "serving");
    }
    assert!(dom.contains("data-phase=\"completed\""));
    c.stop().await;
}
