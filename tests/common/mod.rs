//! A real cluster for black-box tests: MariaDB servers on free loopback ports, a topology
//! store, and a router — all stopped when the harness is dropped, even on panic.

#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use std::sync::Arc;
use tessera::localcluster::LocalCluster;
use tessera_router::config::{RouterConfig, UserConfig};
use tessera_router::{Router, RouterHandle};
use tessera_topo::{MemoryStore, PhysicalShard, Topo, VSchema};

pub const USER: &str = "app";
pub const PASSWORD: &str = "s3cret";

pub struct Harness {
    /// Physical shards first, then any extra servers (e.g. an oracle MariaDB).
    pub cluster: LocalCluster,
    pub shards: usize,
    pub topo: Topo,
    pub router: Option<RouterHandle>,
}

impl Harness {
    /// Starts `shards` physical shards plus `extra` servers, applies `vschema` (YAML) and
    /// starts a router.
    pub async fn start(shards: usize, extra: usize, vschema: &str) -> Harness {
        Self::start_with(shards, extra, vschema, |_| {}).await
    }

    /// [`Harness::start`] with the router's config changed by `edit` before it starts.
    pub async fn start_with(
        shards: usize,
        extra: usize,
        vschema: &str,
        edit: impl FnOnce(&mut RouterConfig),
    ) -> Harness {
        let cluster = LocalCluster::start(shards + extra, None)
            .await
            .expect("start MariaDB servers");
        Self::start_on(cluster, shards, vschema, None, edit).await
    }

    /// [`Harness::start_with`] on servers already running (any beyond `shards` are extra),
    /// registered as physical shards with the backend account `account` (user, password)
    /// rather than the servers' own.
    pub async fn start_on(
        cluster: LocalCluster,
        shards: usize,
        vschema: &str,
        account: Option<(&str, &str)>,
        edit: impl FnOnce(&mut RouterConfig),
    ) -> Harness {
        let topo = Topo::new(Arc::new(MemoryStore::new()));
        register_shards_as(&topo, &cluster, shards, account).await;
        let v = VSchema::from_yaml(vschema).expect("vschema");
        tessera::cli::apply_vschema(&topo, &v)
            .await
            .expect("apply vschema");
        let mut cfg = RouterConfig::from_yaml(&format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
        ))
        .expect("config");
        cfg.users.push(UserConfig {
            create_keyspaces: false,
            ..UserConfig::with_password("nopw", None)
        });
        edit(&mut cfg);
        let router = Router::new(cfg, topo.clone())
            .start()
            .await
            .expect("router");
        Harness {
            cluster,
            shards,
            topo,
            router: Some(router),
        }
    }

    pub fn port(&self) -> u16 {
        self.router
            .as_ref()
            .map(|r| r.local_addr().port())
            .unwrap_or(0)
    }

    /// A connection to the router.
    pub async fn conn(&self, db: Option<&str>) -> Conn {
        Conn::new(self.opts(db, USER, PASSWORD))
            .await
            .expect("connect to router")
    }

    pub fn opts(&self, db: Option<&str>, user: &str, pw: &str) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port())
            .user(Some(user))
            .pass(Some(pw))
            .db_name(db)
            .prefer_socket(false)
    }

    /// A direct connection to server `i` (bypassing the router).
    pub async fn direct(&self, i: usize) -> Conn {
        direct_to(&self.cluster, i).await
    }

    /// A direct connection to server `i` with a `demo` database, as a single-MariaDB oracle.
    pub async fn oracle(&self, i: usize) -> Conn {
        let mut o = self.direct(i).await;
        o.query_drop("CREATE DATABASE demo")
            .await
            .expect("oracle database");
        o.query_drop("USE demo").await.expect("use");
        o
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.router.take() {
            r.shutdown().await;
        }
    }
}

/// A direct connection to server `i` of `cluster` with its own account.
pub async fn direct_to(cluster: &LocalCluster, i: usize) -> Conn {
    let s = &cluster.servers()[i];
    let o = OptsBuilder::default()
        .ip_or_hostname(s.host())
        .tcp_port(s.port())
        .user(Some(s.user()))
        .pass(Some(s.password()))
        .prefer_socket(false);
    Conn::new(o).await.expect("direct connection")
}

/// Registers the first `n` servers of `cluster` as physical shards `ps0`, `ps1`, …
pub async fn register_shards(topo: &Topo, cluster: &LocalCluster, n: usize) {
    register_shards_as(topo, cluster, n, None).await;
}

/// [`register_shards`] with the backend account `account` (user, password) instead of the
/// servers' own.
pub async fn register_shards_as(
    topo: &Topo,
    cluster: &LocalCluster,
    n: usize,
    account: Option<(&str, &str)>,
) {
    for (i, s) in cluster.servers().iter().take(n).enumerate() {
        let (user, password) = account.unwrap_or((s.user(), s.password()));
        topo.put_physical_shard(&PhysicalShard {
            name: format!("ps{i}"),
            host: s.host().into(),
            port: s.port(),
            user: user.into(),
            password: Some(password.into()),
            password_env: None,
            weight: 1,
            tls_ca: None,
            data_account: None,
        })
        .await
        .expect("register shard");
    }
}

/// Fetches `path` from a local HTTP endpoint and returns the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Parses the Prometheus text format into (name with labels as written, value).
pub fn parse_metrics(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
            None => (series.to_string(), String::new()),
        };
        out.push((name, labels, value.parse().expect("numeric value")));
    }
    out
}

/// Returns the value of a series whose labels contain every `want` (`key="value"`).
pub fn metric(all: &[(String, String, f64)], name: &str, want: &[&str]) -> f64 {
    all.iter()
        .filter(|(n, l, _)| n == name && want.iter().all(|w| l.split(',').any(|p| p == *w)))
        .map(|(_, _, v)| *v)
        .sum()
}

/// Runs a query and returns every row as strings (NULL as "NULL"), sorted.
pub async fn rows_sorted(c: &mut Conn, sql: &str) -> Vec<Vec<String>> {
    let mut v = rows(c, sql).await;
    v.sort();
    v
}

/// Runs a query and returns every row as strings (NULL as "NULL"), in order.
pub async fn rows(c: &mut Conn, sql: &str) -> Vec<Vec<String>> {
    let rs: Vec<mysql_async::Row> = c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rs.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => "NULL".to_string(),
                    mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => other.as_sql(true),
                })
                .collect()
        })
        .collect()
}

/// Returns the server error number of a failed query.
pub async fn error_code(c: &mut Conn, sql: &str) -> (u16, String) {
    match c.query_drop(sql).await {
        Err(mysql_async::Error::Server(e)) => (e.code, e.message),
        Err(other) => panic!("{sql}: expected a server error, got {other}"),
        Ok(()) => panic!("{sql}: expected an error, it succeeded"),
    }
}

/// Runs `cmd` (its output piped here) and returns what it printed on stdout; a run that exits
/// non-zero or takes longer than `timeout` (then killed) ends with a line saying so, compared
/// like the rest. Its stderr is returned apart, for a failure message.
#[allow(dead_code)]
pub async fn printout(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
) -> (String, String) {
    use std::process::Stdio;
    use tokio::io::AsyncReadExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start the program");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b).await;
        b
    });
    let err = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let end = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => String::new(),
        Ok(Ok(status)) => format!("exit: {status}\n"),
        Ok(Err(e)) => panic!("waiting for the program: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            format!("timeout: no end within {timeout:?}\n")
        }
    };
    let mut text = String::from_utf8_lossy(&out.await.expect("stdout reader")).into_owned();
    text.push_str(&end);
    let err = String::from_utf8_lossy(&err.await.expect("stderr reader")).into_owned();
    (text, err)
}

/// A line diff (longest common subsequence): `-` for lines only directly, `+` for lines only
/// through the router.
#[allow(dead_code)]
pub fn line_diff(direct: &str, router: &str) -> String {
    let a: Vec<&str> = direct.lines().collect();
    let b: Vec<&str> = router.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- direct: {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ router: {}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Stops a child process as Ctrl-C would (SIGTERM), so that it stops what it started itself
/// (`tessera up` its MariaDB servers); killed if it has not exited after `grace`. Returns
/// whether it exited by itself.
pub fn stop_child(child: &mut std::process::Child, grace: std::time::Duration) -> bool {
    terminate(child);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Sends SIGTERM to a child process (as Ctrl-C stops it).
pub fn terminate(child: &std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid, not yet waited for.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Starts `tessera topo serve --open` with `args` (id, peers, listen address, data dir …), its
/// stderr to `stderr`, and returns it once it printed its `ready:` line; a node that does not
/// come up is stopped and the test fails.
pub fn topo_serve<I, A>(args: I, stderr: std::process::Stdio) -> std::process::Child
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["topo", "serve", "--open"])
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn tessera topo serve");
    let line = c
        .stdout
        .take()
        .and_then(|out| std::io::BufRead::lines(std::io::BufReader::new(out)).next())
        .and_then(Result::ok)
        .unwrap_or_default();
    if !line.starts_with("ready:") {
        let _ = c.kill();
        let _ = c.wait();
        panic!("tessera topo serve {args:?} did not come up: {line:?}");
    }
    c
}
