//! Django through the router and on MariaDB direct: tests/django/run.py (a small Django
//! project: `migrate` of contenttypes, auth, sessions and an app with a foreign key, unique
//! constraints, indexes, JSON, decimal and time zone aware columns, a many-to-many, columns
//! altered in place, a renamed model and field, a view from raw SQL; then `showmigrations`,
//! `inspectdb`, introspection, ORM work that depends on affected-row counts, savepoints,
//! `SELECT … FOR UPDATE` and what a second connection sees, `dumpdata` and `loaddata`,
//! `migrate shop zero`, `migrate` again and `flush`) runs once through a router over an
//! unsharded keyspace and once on a MariaDB of its own with a database of the same name, and
//! the two printouts must be equal, line for line.
//!
//! Django's MySQL backend is mysqlclient (MySQLdb); Debian's python3-django and
//! python3-mysqldb provide both. When they are not installed the tests print a `skipped:`
//! line. `DJANGO_SQL_LOG=1` in the environment makes the script log every statement it sends
//! (to its stderr, shown when a test fails).

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// One run of the script may take this long (two full migrations included).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django")
}

/// A Python that imports Django and MySQLdb: Debian's packages are seen by the system Python,
/// which need not be the first python3 on PATH.
async fn python() -> Result<&'static str, String> {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = tokio::process::Command::new(py)
            .args(["-c", "import django, MySQLdb"])
            .stdin(Stdio::null())
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(py);
        }
    }
    Err("no python3 with Django and MySQLdb (python3-django, python3-mysqldb)".into())
}

/// Runs the script against one server and returns what it printed; a run that exits non-zero
/// or times out ends with a line saying so. Its stderr (tracebacks, the SQL log) is returned
/// apart, for the failure message only.
async fn run(py: &str, host: &str, port: u16, user: &str, pw: &str, db: &str) -> (String, String) {
    let mut cmd = tokio::process::Command::new(py);
    cmd.arg(project().join("run.py"))
        .current_dir(project())
        .env("HOST", host)
        .env("PORT", port.to_string())
        .env("USER", user)
        .env("PASSWORD", pw)
        .env("NAME", db)
        .env("DJANGO_SETTINGS_MODULE", "project.settings")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8");
    printout(cmd, RUN_TIMEOUT).await
}

/// Starts `shards` physical shards and an oracle MariaDB, with the unsharded keyspace
/// `keyspace` on physical shard `on`; runs the script through the router and on the oracle
/// (in a database named like the keyspace) and asserts that both print the same.
async fn same_as_mariadb(shards: usize, keyspace: &str, on: &str) {
    let py = match python().await {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let h = Harness::start(
        shards,
        1,
        &format!("keyspace: {keyspace}\nsharded: false\n"),
    )
    .await;
    let (placement, _) = h
        .topo
        .get_placement(keyspace)
        .await
        .expect("placement")
        .expect("keyspace placed");
    let placed: Vec<&str> = placement.shards.iter().map(|e| e.ps.as_str()).collect();
    assert_eq!(placed, [on], "where keyspace {keyspace} was placed");
    let mut o = h.direct(shards).await;
    o.query_drop(format!("CREATE DATABASE {keyspace}"))
        .await
        .expect("oracle database");
    drop(o);
    let (router, router_err) = run(py, "127.0.0.1", h.port(), USER, PASSWORD, keyspace).await;
    let s = &h.cluster.servers()[shards];
    let (direct, direct_err) = run(py, s.host(), s.port(), s.user(), s.password(), keyspace).await;
    h.stop().await;
    // The script must run through on MariaDB, or an equal failure would pass.
    assert!(
        direct.ends_with("\ndone\n") && !direct.contains("\nerror: "),
        "the script did not run through on MariaDB direct:\n{direct}{direct_err}"
    );
    assert!(
        router == direct,
        "keyspace {keyspace} on {on}: Django through the router differs from MariaDB direct:\n{}\
         \n--- through the router:\n{router}{router_err}",
        line_diff(&direct, &router)
    );
}

/// The first of `app`, `app1`, `app2`, … that the placement ring puts on `ps1` of two equal
/// physical shards (the ring places a keyspace by its name; a vschema does not choose).
fn keyspace_on_second_shard() -> String {
    let shards = [("ps0".to_string(), 1), ("ps1".to_string(), 1)];
    (0..)
        .map(|i| match i {
            0 => "app".to_string(),
            i => format!("app{i}"),
        })
        .find(|k| tessera_topo::placement::assign(k, 1, &shards) == ["ps1"])
        .expect("a name on ps1")
}

/// One physical shard holds the keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_unsharded() {
    same_as_mariadb(1, "app", "ps0").await;
}

/// The keyspace is on the second of two physical shards: statements that go to "any physical
/// shard" must not land on the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_unsharded_on_second_shard() {
    let keyspace = keyspace_on_second_shard();
    same_as_mariadb(2, &keyspace, "ps1").await;
}
