//! Real drivers with their default options, through the router and on MariaDB direct: each
//! driver runs the same scenario (tests/drivers/: DDL, parameters with unicode, JSON and
//! binary, multi-row insert, updates that change nothing, transactions, a savepoint,
//! warnings, a multi-statement batch, a duplicate key, session variables) once through a
//! router and once on a MariaDB of its own, and the two printouts must be equal, line for
//! line. Each scenario runs against an unsharded keyspace and a sharded one.
//!
//! The drivers are mysqlclient (MySQLdb), mysql-connector-python, Node's mysql2 and MariaDB
//! Connector/J; `scripts/test` installs them. A driver that is not installed is skipped with
//! a `skipped:` line.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A keyspace: its name (also the oracle's database) and its vschema.
struct Keyspace {
    name: &'static str,
    vschema: &'static str,
}

const UNSHARDED: Keyspace = Keyspace {
    name: "app",
    vschema: "keyspace: app\nsharded: false\n",
};

const SHARDED: Keyspace = Keyspace {
    name: "shop",
    vschema:
        "keyspace: shop\nsharded: true\nlogical_shards: 8\ntables:\n  drv_t: { shard_key: id }\n",
};

/// Where Debian's libmariadb-java puts Connector/J.
const CONNECTOR_J_JAR: &str = "/usr/share/java/mariadb-java-client.jar";

/// A driver program's run may take this long (a JVM start included).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A driver that loses track of the protocol can allocate without end: its heap is capped
/// (in KiB, `ulimit -d`) so such a run fails on its own instead of taking the machine.
const DATA_LIMIT_KIB: u64 = 2_000_000;

#[derive(Clone, Copy, Debug)]
enum Driver {
    Mysqlclient,
    Connector,
    Mysql2,
    ConnectorJ,
}

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

/// Whether `cmd args…` runs and exits 0.
async fn succeeds(cmd: &str, args: &[&str]) -> bool {
    tokio::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// The command line that runs a driver's program (the connection arguments follow it), or
/// what is missing.
async fn command(driver: Driver) -> Result<Vec<String>, String> {
    let dir = programs();
    let path = |f: &str| dir.join(f).display().to_string();
    match driver {
        Driver::Mysqlclient => {
            // Debian's python3-mysqldb is seen by the system Python, which need not be the
            // first python3 on PATH.
            for py in ["python3", "/usr/bin/python3"] {
                if succeeds(py, &["-c", "import MySQLdb"]).await {
                    return Ok(vec![py.into(), path("mysqlclient.py")]);
                }
            }
            Err("no python3 with MySQLdb (python3-mysqldb)".into())
        }
        Driver::Connector => {
            if succeeds("python3", &["-c", "import mysql.connector"]).await {
                Ok(vec!["python3".into(), path("connector.py")])
            } else {
                Err("no python3 with mysql.connector (mysql-connector-python)".into())
            }
        }
        Driver::Mysql2 => {
            if !dir.join("node_modules/mysql2/package.json").exists() {
                Err("no tests/drivers/node_modules/mysql2 (npm install mysql2)".into())
            } else if !succeeds("node", &["--version"]).await {
                Err("no node".into())
            } else {
                Ok(vec!["node".into(), path("mysql2.js")])
            }
        }
        Driver::ConnectorJ => {
            if !Path::new(CONNECTOR_J_JAR).exists() {
                Err(format!("no {CONNECTOR_J_JAR} (libmariadb-java)"))
            } else if !succeeds("java", &["-version"]).await {
                Err("no java (default-jdk-headless)".into())
            } else {
                Ok(vec![
                    "java".into(),
                    "-cp".into(),
                    CONNECTOR_J_JAR.into(),
                    path("ConnectorJ.java"),
                ])
            }
        }
    }
}

/// Runs a driver's program against one server and returns what it printed. A run that exits
/// non-zero or times out ends with a line saying so (compared like the rest; what it printed
/// before is kept); its stderr is kept for the failure message only.
async fn run(
    cmd: &[String],
    host: &str,
    port: u16,
    user: &str,
    pw: &str,
    db: &str,
) -> (String, String) {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -d {DATA_LIMIT_KIB}; exec \"$@\""))
        .arg("sh")
        .args(cmd)
        .args([host, &port.to_string(), user, pw, db])
        .current_dir(programs())
        .env("PYTHONIOENCODING", "utf-8");
    printout(c, RUN_TIMEOUT).await
}

/// Runs `driver`'s scenario through a router over `ks` (one physical shard) and on a second
/// MariaDB with a database of the same name, and asserts that both print the same.
async fn same_as_mariadb(driver: Driver, ks: Keyspace) {
    let cmd = match command(driver).await {
        Ok(c) => c,
        Err(why) => {
            println!("skipped: {driver:?}: {why}");
            return;
        }
    };
    let h = Harness::start(1, 1, ks.vschema).await;
    let mut o = h.direct(1).await;
    o.query_drop(format!("CREATE DATABASE {}", ks.name))
        .await
        .expect("oracle database");
    drop(o);
    let (router, router_err) = run(&cmd, "127.0.0.1", h.port(), USER, PASSWORD, ks.name).await;
    let s = &h.cluster.servers()[1];
    let (direct, direct_err) = run(&cmd, s.host(), s.port(), s.user(), s.password(), ks.name).await;
    h.stop().await;
    // The scenario itself must run through on MariaDB, or an equal failure would pass.
    assert!(
        direct.starts_with("connect: ok") && direct.contains("\nclose: ok\n"),
        "{driver:?} did not run through on MariaDB direct:\n{direct}{direct_err}"
    );
    assert!(
        router == direct,
        "{driver:?} on keyspace {}: the router's answers differ from MariaDB's:\n{}\
         \n--- through the router:\n{router}{router_err}",
        ks.name,
        line_diff(&direct, &router)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqlclient_unsharded() {
    same_as_mariadb(Driver::Mysqlclient, UNSHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqlclient_sharded() {
    same_as_mariadb(Driver::Mysqlclient, SHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_python_unsharded() {
    same_as_mariadb(Driver::Connector, UNSHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_python_sharded() {
    same_as_mariadb(Driver::Connector, SHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql2_unsharded() {
    same_as_mariadb(Driver::Mysql2, UNSHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql2_sharded() {
    same_as_mariadb(Driver::Mysql2, SHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_j_unsharded() {
    same_as_mariadb(Driver::ConnectorJ, UNSHARDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_j_sharded() {
    same_as_mariadb(Driver::ConnectorJ, SHARDED).await;
}

#[test]
fn diff_marks_lines_on_each_side() {
    assert_eq!(
        line_diff("a\nb\nc\n", "a\nB\nc\n"),
        "- direct: b\n+ router: B\n"
    );
    assert_eq!(line_diff("a\n", "a\nx\n"), "+ router: x\n");
    assert_eq!(line_diff("a\nb\n", "a\n"), "- direct: b\n");
}
