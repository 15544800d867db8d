//! A router keeps serving from its cached topology while the topology service is down, says so
//! in its status, and catches up when the service returns.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tessera::localcluster::LocalCluster;
use tessera_router::{Router, RouterConfig};
use tessera_topo::{HttpStore, Topo, VSchema};

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(port: u16, dir: &std::path::Path) -> Node {
    let listen = format!("127.0.0.1:{port}");
    Node(topo_serve(
        [
            "--listen".as_ref(),
            listen.as_ref(),
            "--data-dir".as_ref(),
            dir.as_os_str(),
        ],
        Stdio::inherit(),
    ))
}

async fn status(admin: std::net::SocketAddr) -> serde_json::Value {
    serde_json::from_str(&http_get(admin, "/status").await).expect("status json")
}

/// Keyspace `demo` (8 logical shards over the cluster's 2 servers, table `t` by `id`) applied
/// through `topo`, and a router on the topology at `endpoints`: the router, its admin address,
/// and options to connect to it as the application.
async fn demo_router(
    topo: &Topo,
    cluster: &LocalCluster,
    endpoints: &[String],
) -> (
    tessera_router::RouterHandle,
    std::net::SocketAddr,
    mysql_async::OptsBuilder,
) {
    register_shards(topo, cluster, 2).await;
    let v = VSchema::from_yaml(
        "keyspace: demo\nsharded: true\nlogical_shards: 8\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(topo, &v).await.expect("apply");
    let cfg = RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\ntopo: {{endpoints: [{}]}}\n",
        endpoints.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ")
    ))
    .expect("config");
    let router = Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let admin = router.admin_addr().expect("admin");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(router.local_addr().port())
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("demo"))
        .prefer_socket(false);
    (router, admin, opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_serves_through_a_topology_outage_and_catches_up() {
    let cluster = LocalCluster::start(2, None).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let node = start_node(port, dir.path());
    let topo = Topo::new(Arc::new(
        HttpStore::new(&[format!("127.0.0.1:{port}")], None).expect("client"),
    ));
    let (router, admin, opts) = demo_router(&topo, &cluster, &[format!("127.0.0.1:{port}")]).await;
    let mut c = mysql_async::Conn::new(opts.clone()).await.expect("connect");
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    c.query_drop("INSERT INTO t (id, v) VALUES (1, 1), (2, 2), (3, 3)")
        .await
        .expect("insert");
    assert_eq!(status(admin).await["topology"]["connected"], true);
    // The router registered itself, with the epoch it serves.
    let mut registered = Vec::new();
    for _ in 0..50 {
        registered = topo.routers().await.expect("routers");
        if registered
            .first()
            .is_some_and(|r| r.epochs.get("demo") == Some(&1))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(registered[0].listen, router.local_addr().to_string());
    assert_eq!(registered[0].epochs.get("demo"), Some(&1));

    // Topology down: queries go on; the status says the router serves from its cache.
    drop(node);
    c.query_drop("UPDATE t SET v = 10 WHERE id = 1")
        .await
        .expect("write during outage");
    let mut fresh = mysql_async::Conn::new(opts.clone())
        .await
        .expect("new connections during outage");
    assert_eq!(
        rows(&mut fresh, "SELECT v FROM t WHERE id = 1").await,
        vec![vec!["10".to_string()]]
    );
    let mut down = false;
    for _ in 0..100 {
        if status(admin).await["topology"]["connected"] == false {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        down,
        "the status reports the outage: {}",
        status(admin).await
    );
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM t").await,
        vec![vec!["3".to_string()]]
    );

    // Back again, from its data dir: the router catches up with changes made since.
    let _node = start_node(port, dir.path());
    let other = VSchema::from_yaml("keyspace: other\nsharded: false\n").expect("vschema");
    tessera::cli::apply_vschema(&topo, &other)
        .await
        .expect("apply after restart");
    let mut seen = false;
    for _ in 0..100 {
        if c.query_drop("USE other").await.is_ok() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the router sees the keyspace added after the outage");
    assert_eq!(status(admin).await["topology"]["connected"], true);
    drop(c);
    drop(fresh);
    router.shutdown().await;
    assert!(
        topo.routers().await.expect("routers").is_empty(),
        "a stopped router deregisters"
    );
    cluster.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Every topology node down for a minute, under load.

use mysql_async::{Conn, OptsBuilder};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tessera_topo::{Condition, Store};

/// Seconds of load before the outage, and after the topology is back.
const LOAD_UP_SECS: u64 = 10;
/// The outage; `TESSERA_OUTAGE_SECS` shortens (or lengthens) it for local runs.
const DEFAULT_OUTAGE_SECS: u64 = 60;
/// Concurrent clients.
const CLIENTS: usize = 6;
/// Rows loaded per client before the run.
const PRELOAD: i64 = 50;
/// A statement that takes longer than this counts as failed (and its connection is dropped).
const STMT_TIMEOUT: Duration = Duration::from_secs(15);

/// One `tessera topo serve` member of a three-node group: started from its data dir, killed
/// (SIGKILL) on demand and always on drop.
struct RaftNode {
    id: u64,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl RaftNode {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(&mut self, peers: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("node log");
        let (id, listen) = (self.id.to_string(), self.endpoint());
        self.child = Some(topo_serve(
            [
                "--id".as_ref(),
                id.as_ref(),
                "--peers".as_ref(),
                peers.as_ref(),
                "--listen".as_ref(),
                listen.as_ref(),
                "--data-dir".as_ref(),
                self.dir.as_os_str(),
            ],
            Stdio::from(log),
        ));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `key` until a leader accepts it (at most 30 s); returns how long that took.
async fn put_until_leader(store: &HttpStore, key: &str) -> Duration {
    let t = Instant::now();
    loop {
        match store.put(key, "x", Condition::None, None).await {
            Ok(_) => return t.elapsed(),
            Err(e) => {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "no topology leader accepted a write in 30 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    PointSelect,
    Insert,
    Update,
    Scatter,
    Txn,
    Use,
    Login,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PointSelect => "point_select",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Scatter => "scatter",
            Kind::Txn => "txn_2ps",
            Kind::Use => "use",
            Kind::Login => "login",
        }
    }
}

/// One statement (or login) as a client saw it.
struct Rec {
    kind: Kind,
    start: Instant,
    latency: Duration,
    error: Option<String>,
}

enum Op {
    /// A statement without a result set; gives the affected rows.
    Drop(String),
    /// A prepared statement with one integer parameter and one integer result.
    ExecFirst(&'static str, i64),
    /// A text query whose first column is an integer; gives the first row's.
    QueryFirst(String),
    /// A text query; gives the number of rows.
    Rows(String),
}

enum Out {
    Affected(u64),
    Int(Option<i64>),
    Rows(usize),
}

async fn perform(conn: &mut Conn, op: &Op) -> Result<Out, mysql_async::Error> {
    Ok(match op {
        Op::Drop(sql) => {
            conn.query_drop(sql).await?;
            Out::Affected(conn.affected_rows())
        }
        Op::ExecFirst(sql, k) => Out::Int(conn.exec_first::<i64, _, _>(*sql, (*k,)).await?),
        Op::QueryFirst(sql) => Out::Int(conn.query_first::<i64, _>(sql).await?),
        Op::Rows(sql) => Out::Rows(conn.query::<mysql_async::Row, _>(sql).await?.len()),
    })
}

/// A load client: one connection through the router, every statement recorded.
struct Client {
    opts: OptsBuilder,
    conn: Option<Conn>,
    recs: Vec<Rec>,
    /// Failures printed as they happened (the first ten; all are in the summary).
    printed: usize,
}

impl Client {
    /// Runs one statement; `None` when it failed (recorded with its error) or when there is no
    /// connection (not recorded). A connection that broke or did not answer is dropped.
    async fn run(&mut self, kind: Kind, op: Op) -> Option<Out> {
        let conn = self.conn.as_mut()?;
        let start = Instant::now();
        let r = tokio::time::timeout(STMT_TIMEOUT, perform(conn, &op)).await;
        let latency = start.elapsed();
        let (out, error, lost) = match r {
            Ok(Ok(v)) => (Some(v), None, false),
            Ok(Err(mysql_async::Error::Server(e))) => (
                None,
                Some(format!("ERROR {} ({}): {}", e.code, e.state, e.message)),
                false,
            ),
            Ok(Err(e)) => (None, Some(format!("connection: {e}")), true),
            Err(_) => (None, Some(format!("no answer in {STMT_TIMEOUT:?}")), true),
        };
        if let Some(e) = error.as_ref().filter(|_| self.printed < 10) {
            self.printed += 1;
            let sql = match &op {
                Op::Drop(s) | Op::QueryFirst(s) | Op::Rows(s) => s.clone(),
                Op::ExecFirst(s, k) => format!("{s} [{k}]"),
            };
            eprintln!("statement failed ({}): {sql}: {e}", kind.name());
        }
        self.recs.push(Rec {
            kind,
            start,
            latency,
            error,
        });
        if lost {
            self.conn = None;
        }
        out
    }

    /// Marks the last recorded statement failed: it answered, but wrongly.
    fn wrong(&mut self, what: String) {
        if self.printed < 10 {
            self.printed += 1;
            eprintln!("wrong answer: {what}");
        }
        if let Some(r) = self.recs.last_mut() {
            r.error = Some(what);
        }
    }

    /// A fresh connection replaces the current one: a login naming the keyspace, or a login
    /// without one followed by `USE demo`.
    async fn relogin(&mut self, db_in_handshake: bool) {
        if let Some(old) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), old.disconnect()).await;
        }
        let opts = if db_in_handshake {
            self.opts.clone().db_name(Some("demo"))
        } else {
            self.opts.clone().db_name(None::<String>)
        };
        let start = Instant::now();
        let r = tokio::time::timeout(STMT_TIMEOUT, Conn::new(opts)).await;
        let error = match r {
            Ok(Ok(c)) => {
                self.conn = Some(c);
                None
            }
            Ok(Err(e)) => Some(format!("login: {e}")),
            Err(_) => Some(format!("login: no answer in {STMT_TIMEOUT:?}")),
        };
        if let Some(e) = error.as_ref().filter(|_| self.printed < 10) {
            self.printed += 1;
            eprintln!("login failed: {e}");
        }
        self.recs.push(Rec {
            kind: Kind::Login,
            start,
            latency: start.elapsed(),
            error,
        });
        if self.conn.is_some() && !db_in_handshake {
            self.run(Kind::Use, Op::Drop("USE demo".into())).await;
        }
    }
}

/// What one load client did and what it expects to find afterwards.
struct Outcome {
    recs: Vec<Rec>,
    /// Every key the client owns (loaded or inserted with an acknowledgement), with the last
    /// value acknowledged for it (`None`: a write to it failed, so either value may be there).
    values: BTreeMap<i64, Option<i64>>,
    /// Inserts that failed: the row may or may not be there.
    maybe: Vec<i64>,
}

/// Runs the statement mix until `stop`: a prepared point read, an insert of a new key, an
/// update, a read over every shard, a transaction updating a row on each physical shard, and
/// every 25th round a fresh connection. Each client has its own keys, so clients never wait
/// for each other's locks.
async fn load_client(
    i: usize,
    opts: OptsBuilder,
    on_ps0: Vec<i64>,
    on_ps1: Vec<i64>,
    stop: Arc<AtomicBool>,
) -> Outcome {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
    let base = client_base(i);
    let mut values: BTreeMap<i64, Option<i64>> = on_ps0
        .iter()
        .chain(&on_ps1)
        .map(|k| (*k, Some(0)))
        .collect();
    let mut owned: Vec<i64> = values.keys().copied().collect();
    let mut maybe = Vec::new();
    let mut next_key = base + 1_000_000;
    let mut next_v = base;
    let mut c = Client {
        opts,
        conn: None,
        recs: Vec::new(),
        printed: 0,
    };
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        if c.conn.is_none() || round.is_multiple_of(25) {
            c.relogin(round.is_multiple_of(2)).await;
            if c.conn.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        // Point read of an own key: the last acknowledged value.
        let k = *owned.choose(&mut rng).expect("keys");
        if let Some(Out::Int(got)) = c
            .run(
                Kind::PointSelect,
                Op::ExecFirst("SELECT v FROM t WHERE id = ?", k),
            )
            .await
        {
            if let Some(Some(want)) = values.get(&k) {
                if got != Some(*want) {
                    c.wrong(format!("id {k}: read {got:?}, last acknowledged {want}"));
                }
            }
        }
        // Insert of a new key.
        let (k, v) = (next_key, next_v);
        next_key += 1;
        next_v += 1;
        match c
            .run(
                Kind::Insert,
                Op::Drop(format!("INSERT INTO t (id, v) VALUES ({k}, {v})")),
            )
            .await
        {
            Some(_) => {
                values.insert(k, Some(v));
                owned.push(k);
            }
            None => maybe.push(k),
        }
        // Update of an own key to a value never written before.
        let (k, v) = (*owned.choose(&mut rng).expect("keys"), next_v);
        next_v += 1;
        match c
            .run(
                Kind::Update,
                Op::Drop(format!("UPDATE t SET v = {v} WHERE id = {k}")),
            )
            .await
        {
            Some(Out::Affected(n)) => {
                values.insert(k, Some(v));
                if n != 1 {
                    c.wrong(format!("update of id {k}: {n} rows affected"));
                }
            }
            _ => {
                values.insert(k, None);
            }
        }
        // A read over every logical shard.
        if round.is_multiple_of(2) {
            if let Some(Out::Int(n)) = c
                .run(
                    Kind::Scatter,
                    Op::QueryFirst("SELECT COUNT(*) FROM t".into()),
                )
                .await
            {
                if n.unwrap_or(0) < PRELOAD * CLIENTS as i64 {
                    c.wrong(format!("COUNT(*) = {n:?}, fewer than the rows loaded"));
                }
            }
        } else if let Some(Out::Rows(n)) = c
            .run(
                Kind::Scatter,
                Op::Rows("SELECT id, v FROM t ORDER BY id DESC LIMIT 5".into()),
            )
            .await
        {
            if n != 5 {
                c.wrong(format!("ORDER BY … LIMIT 5 gave {n} rows"));
            }
        }
        // A transaction over both physical shards.
        let a = *on_ps0.choose(&mut rng).expect("a key on ps0");
        let b = *on_ps1.choose(&mut rng).expect("a key on ps1");
        let (va, vb) = (next_v, next_v + 1);
        next_v += 2;
        let mut ok = c
            .run(Kind::Txn, Op::Drop("START TRANSACTION".into()))
            .await
            .is_some();
        for (k, v) in [(a, va), (b, vb)] {
            if ok {
                match c
                    .run(
                        Kind::Txn,
                        Op::Drop(format!("UPDATE t SET v = {v} WHERE id = {k}")),
                    )
                    .await
                {
                    Some(Out::Affected(1)) => {}
                    Some(Out::Affected(n)) => {
                        c.wrong(format!("update of id {k} in a transaction: {n} rows"));
                        ok = false;
                    }
                    _ => ok = false,
                }
            }
        }
        ok = ok && c.run(Kind::Txn, Op::Drop("COMMIT".into())).await.is_some();
        if ok {
            values.insert(a, Some(va));
            values.insert(b, Some(vb));
        } else {
            values.insert(a, None);
            values.insert(b, None);
            if let Some(conn) = c.conn.as_mut() {
                let _ = tokio::time::timeout(STMT_TIMEOUT, conn.query_drop("ROLLBACK")).await;
            }
        }
    }
    if let Some(conn) = c.conn.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.disconnect()).await;
    }
    Outcome {
        recs: c.recs,
        values,
        maybe,
    }
}

fn client_base(i: usize) -> i64 {
    (i as i64 + 1) * 10_000_000
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `n`, `p50`, `p99`, `max` of some latencies.
fn latency_summary(mut l: Vec<Duration>) -> String {
    if l.is_empty() {
        return "n=0".into();
    }
    l.sort();
    let at = |q: usize| l[((l.len() * q) / 100).min(l.len() - 1)];
    format!(
        "n={} p50={} p99={} max={}",
        l.len(),
        ms(at(50)),
        ms(at(99)),
        ms(*l.last().expect("one"))
    )
}

/// Prints one summary line per phase (and one per statement kind under it); returns the
/// failures, with their phase.
fn summarize(recs: &[&Rec], phases: &[(&str, Instant, Instant)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, from, to) in phases {
        let inside: Vec<&&Rec> = recs
            .iter()
            .filter(|r| r.start >= *from && r.start < *to)
            .collect();
        let (logins, stmts): (Vec<&&Rec>, Vec<&&Rec>) =
            inside.iter().partition(|r| r.kind == Kind::Login);
        let failed = |v: &[&&Rec]| v.iter().filter(|r| r.error.is_some()).count();
        let secs = to.duration_since(*from).as_secs_f64();
        eprintln!(
            "topo outage summary: phase={name} secs={secs:.1} statements={} ok={} failed={} rate={:.0}/s latency {} | logins={} failed={} latency {}",
            stmts.len(),
            stmts.len() - failed(&stmts),
            failed(&stmts),
            stmts.len() as f64 / secs,
            latency_summary(stmts.iter().map(|r| r.latency).collect()),
            logins.len(),
            failed(&logins),
            latency_summary(logins.iter().map(|r| r.latency).collect()),
        );
        let kinds: BTreeSet<Kind> = inside.iter().map(|r| r.kind).collect();
        for k in kinds {
            let of: Vec<&&Rec> = inside.iter().filter(|r| r.kind == k).copied().collect();
            eprintln!(
                "topo outage summary:   {name} {:<12} failed={} {}",
                k.name(),
                failed(&of),
                latency_summary(of.iter().map(|r| r.latency).collect())
            );
        }
        for r in inside.iter().filter(|r| r.error.is_some()) {
            failures.push(format!(
                "{name} +{:.3}s {}: {}",
                r.start.duration_since(*from).as_secs_f64(),
                r.kind.name(),
                r.error.as_deref().unwrap_or_default()
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_topology_nodes_down_for_a_minute_under_load() {
    let outage = Duration::from_secs(
        std::env::var("TESSERA_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_OUTAGE_SECS),
    );
    let up = Duration::from_secs(LOAD_UP_SECS);
    let t_begin = Instant::now();
    let cluster = LocalCluster::start(2, None).await.expect("mariadb");

    // A three-node topology group, each node its own process.
    let base = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<RaftNode> = (1..=3)
        .map(|id| RaftNode {
            id,
            port: std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("port")
                .port(),
            dir: base.path().join(format!("n{id}")),
            child: None,
        })
        .collect();
    let peers = nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.endpoint()))
        .collect::<Vec<_>>()
        .join(",");
    for n in nodes.iter_mut() {
        n.start(&peers);
    }
    let eps: Vec<String> = nodes.iter().map(RaftNode::endpoint).collect();
    let store = HttpStore::new(&eps, None).expect("client");
    let elected = put_until_leader(&store, "/outage-test/leader").await;
    eprintln!(
        "topology: three nodes up, a leader took a write after {}",
        ms(elected)
    );
    let topo = Topo::new(Arc::new(HttpStore::new(&eps, None).expect("client")));
    let (router, admin, opts) = demo_router(&topo, &cluster, &eps).await;

    // The table and each client's rows, loaded through the router.
    let mut c = Conn::new(opts.clone()).await.expect("connect");
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .expect("create");
    for i in 0..CLIENTS {
        let rows = (0..PRELOAD)
            .map(|j| format!("({}, 0)", client_base(i) + j))
            .collect::<Vec<_>>()
            .join(", ");
        c.query_drop(format!("INSERT INTO t (id, v) VALUES {rows}"))
            .await
            .expect("preload");
    }
    // Where each loaded row is, read from the servers themselves.
    let mut on_ps: Vec<BTreeSet<i64>> = vec![BTreeSet::new(), BTreeSet::new()];
    for (i, s) in cluster.servers().iter().take(2).enumerate() {
        let mut d = Conn::new(
            OptsBuilder::default()
                .ip_or_hostname(s.host())
                .tcp_port(s.port())
                .user(Some(s.user()))
                .pass(Some(s.password()))
                .prefer_socket(false),
        )
        .await
        .expect("direct connection");
        let schemas: Vec<String> = d
            .query(
                "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = 't' AND TABLE_SCHEMA LIKE 'demo\\_%'",
            )
            .await
            .expect("schemas");
        for schema in schemas {
            let ids: Vec<i64> = d
                .query(format!("SELECT id FROM `{schema}`.t"))
                .await
                .expect("ids");
            on_ps[i].extend(ids);
        }
        d.disconnect().await.expect("disconnect");
    }
    assert_eq!(
        on_ps[0].len() + on_ps[1].len(),
        CLIENTS * PRELOAD as usize,
        "every loaded row found on a server"
    );
    assert_eq!(status(admin).await["topology"]["connected"], true);

    // Load, with the topology up.
    let stop = Arc::new(AtomicBool::new(false));
    let t_load = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mine = client_base(i)..client_base(i) + PRELOAD;
        let keys = |ps: usize| -> Vec<i64> {
            on_ps[ps]
                .iter()
                .copied()
                .filter(|k| mine.contains(k))
                .collect()
        };
        let (k0, k1) = (keys(0), keys(1));
        assert!(
            !k0.is_empty() && !k1.is_empty(),
            "client {i} has rows on both shards"
        );
        tasks.push(tokio::spawn(load_client(
            i,
            opts.clone().db_name(None::<String>),
            k0,
            k1,
            stop.clone(),
        )));
    }
    tokio::time::sleep(up).await;

    // Every topology node killed; the load goes on for the outage.
    let t_kill = Instant::now();
    for n in nodes.iter_mut() {
        n.kill();
    }
    let mut noticed: Option<Duration> = None;
    let mut last_error = String::new();
    while t_kill.elapsed() < outage {
        let st = status(admin).await;
        let connected = st["topology"]["connected"] == true;
        match noticed {
            None if !connected => {
                noticed = Some(t_kill.elapsed());
                last_error = st["topology"]["last_error"].to_string();
            }
            Some(_) => assert!(
                !connected,
                "the router says it is connected while every topology node is down: {st}"
            ),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let st = status(admin).await;
    assert_eq!(
        st["topology"]["connected"], false,
        "the status reports the outage: {st}"
    );
    let noticed = noticed.expect("the status reported the outage while it lasted");
    eprintln!(
        "topology: all three nodes killed; /status said connected=false after {} (last_error {last_error}); at the end of the outage: registered={}",
        ms(noticed),
        st["topology"]["registered"]
    );

    // Back, from their data dirs; the router catches up with a change made since.
    let t_restart = Instant::now();
    for n in nodes.iter_mut() {
        n.start(&peers);
    }
    let elected = put_until_leader(&store, "/outage-test/leader").await;
    let other = VSchema::from_yaml("keyspace: other\nsharded: false\n").expect("vschema");
    tessera::cli::apply_vschema(&topo, &other)
        .await
        .expect("apply after restart");
    let applied = Instant::now();
    let mut seen = None;
    while applied.elapsed() < Duration::from_secs(30) {
        if c.query_drop("USE other").await.is_ok() {
            seen = Some(applied.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.expect("the router sees the keyspace added after the outage");
    c.query_drop("USE demo").await.expect("use demo");
    let mut reconnected = None;
    while t_restart.elapsed() < Duration::from_secs(30) {
        if status(admin).await["topology"]["connected"] == true {
            reconnected = Some(t_restart.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reconnected = reconnected.expect("the status says connected again");
    // Its registration lapsed during the outage; it registers again, with the epoch it serves.
    let mut reregistered = None;
    while t_restart.elapsed() < Duration::from_secs(30) {
        let listed = topo.routers().await.unwrap_or_default().iter().any(|r| {
            r.listen == router.local_addr().to_string() && r.epochs.get("demo") == Some(&1)
        });
        if listed && status(admin).await["topology"]["registered"] == true {
            reregistered = Some(t_restart.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reregistered = reregistered.expect("the router registers again after the outage");
    eprintln!(
        "topology: restarted; a leader took a write {} after the restart began; /status connected again {} after, registered again {} after; keyspace `other` (applied after the restart) usable through the router {} after it was applied",
        ms(elected),
        ms(reconnected),
        ms(reregistered),
        ms(seen)
    );
    let rest = (t_restart + up).saturating_duration_since(Instant::now());
    tokio::time::sleep(rest).await;
    stop.store(true, Ordering::Relaxed);
    let t_stop = Instant::now();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("load client"));
    }
    let t_end = Instant::now();
    let st = status(admin).await;
    assert_eq!(st["topology"]["connected"], true, "{st}");

    // Figures, per phase.
    let recs: Vec<&Rec> = outcomes.iter().flat_map(|o| &o.recs).collect();
    let failures = summarize(
        &recs,
        &[
            ("before", t_load, t_kill),
            ("outage", t_kill, t_restart),
            ("after", t_restart, t_end),
        ],
    );
    // Statements per second in 10 s windows from the start of the load, with where the
    // outage began and ended: a step at either would show here.
    let windows = (t_end.duration_since(t_load).as_secs() / 10) as usize;
    let mut per_window = vec![0usize; windows];
    for r in recs.iter().filter(|r| r.kind != Kind::Login) {
        let w = (r.start.duration_since(t_load).as_secs() / 10) as usize;
        if let Some(n) = per_window.get_mut(w) {
            *n += 1;
        }
    }
    eprintln!(
        "topo outage summary: statements/s per whole 10 s window: {} (outage from {:.1} s to {:.1} s)",
        per_window
            .iter()
            .map(|n| format!("{}", n / 10))
            .collect::<Vec<_>>()
            .join(" "),
        t_kill.duration_since(t_load).as_secs_f64(),
        t_restart.duration_since(t_load).as_secs_f64()
    );
    let total = recs.iter().filter(|r| r.kind != Kind::Login).count();
    eprintln!(
        "topo outage summary: total statements={total} logins={} failed={} (load {:.1} s, of which {:.1} s outage; whole test {:.1} s so far; load stopped {} before the last client finished)",
        recs.len() - total,
        failures.len(),
        t_end.duration_since(t_load).as_secs_f64(),
        t_restart.duration_since(t_kill).as_secs_f64(),
        t_begin.elapsed().as_secs_f64(),
        ms(t_end.duration_since(t_stop))
    );

    // Every acknowledged insert is there, with every acknowledged update's value.
    let got: BTreeMap<i64, i64> = c
        .query::<(i64, i64), _>("SELECT id, v FROM t")
        .await
        .expect("read back")
        .into_iter()
        .collect();
    let count: i64 = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("count")
        .expect("a row");
    let mut expected: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    let mut maybe: BTreeSet<i64> = BTreeSet::new();
    for o in &outcomes {
        expected.extend(o.values.iter().map(|(k, v)| (*k, *v)));
        maybe.extend(&o.maybe);
    }
    let missing: Vec<i64> = expected
        .keys()
        .filter(|k| !got.contains_key(k))
        .copied()
        .collect();
    let wrong: Vec<(i64, i64, i64)> = expected
        .iter()
        .filter_map(|(k, v)| match (v, got.get(k)) {
            (Some(want), Some(g)) if want != g => Some((*k, *want, *g)),
            _ => None,
        })
        .collect();
    let unexpected: Vec<i64> = got
        .keys()
        .filter(|k| !expected.contains_key(k) && !maybe.contains(k))
        .copied()
        .collect();
    let inserted = expected.len() - CLIENTS * PRELOAD as usize;
    eprintln!(
        "topo outage summary: rows at the end={count} (loaded {} + acknowledged inserts {inserted}; failed inserts {}), missing={}, wrong value={}, unexpected={}",
        CLIENTS * PRELOAD as usize,
        maybe.len(),
        missing.len(),
        wrong.len(),
        unexpected.len()
    );

    drop(c);
    router.shutdown().await;
    for n in nodes.iter_mut() {
        n.kill();
    }
    cluster.shutdown().await;

    assert!(
        failures.is_empty(),
        "{} statements failed; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(missing.is_empty(), "acknowledged rows missing: {missing:?}");
    assert!(
        wrong.is_empty(),
        "rows without their last acknowledged value (id, want, got): {wrong:?}"
    );
    assert!(unexpected.is_empty(), "rows never written: {unexpected:?}");
    assert_eq!(
        count as usize,
        got.len(),
        "COUNT(*) and the rows read agree"
    );
}
