//! sysbench `oltp_read_write` through the router against a sharded `sbtest1`, with server-side
//! prepared statements (sysbench's default `--db-ps-mode=auto`): it must finish with no error
//! and no reconnect; in sysbench's default mode (one thread) with not even a retried error. The only errors sysbench may retry are the ones MariaDB itself gives this
//! workload: deadlocks (1213; one MariaDB server directly gives 12–17 in the same run) and lock
//! waits cut short in transactions that span physical shards (1205), at most 2% of
//! transactions.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::Command;

const VSCHEMA: &str = "keyspace: sbtest
sharded: true
logical_shards: 16
tables:
  sbtest1: { shard_key: id, vindex: xxhash }
";

fn sysbench(port: u16, args: &[&str]) -> String {
    let out = Command::new("sysbench")
        .args([
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={port}"),
            &format!("--mysql-user={USER}"),
            &format!("--mysql-password={PASSWORD}"),
            "--mysql-db=sbtest",
            "--tables=1",
            "--table-size=2000",
            "--auto-inc=off",
        ])
        .args(args)
        .output()
        .expect("sysbench (apt-get install sysbench; ./scripts/test installs it)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sysbench {args:?} failed:\n{text}");
    text
}

/// The number after `label` on the line that has it (`ignored errors:  0 (0.00 per sec.)`).
fn count(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in sysbench output:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sysbench_oltp_read_write_has_no_errors() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let port = h.port();
    let prep = tokio::task::spawn_blocking(move || sysbench(port, &["oltp_read_write", "prepare"]))
        .await
        .expect("prepare");
    assert!(prep.contains("Inserting 2000 records"), "{prep}");
    let out = tokio::task::spawn_blocking(move || {
        sysbench(
            port,
            &[
                "oltp_read_write",
                "--threads=4",
                "--time=8",
                "--db-ps-mode=auto",
                "--verbosity=5",
                "run",
            ],
        )
    })
    .await
    .expect("run");
    // sysbench's defaults (one thread, prepared statements): not a single error, retried or
    // not.
    let default_run = tokio::task::spawn_blocking(move || {
        sysbench(port, &["oltp_read_write", "--time=4", "run"])
    })
    .await
    .expect("default run");
    assert!(count(&default_run, "transactions:") > 20, "{default_run}");
    assert_eq!(count(&default_run, "ignored errors:"), 0, "{default_run}");
    assert_eq!(count(&default_run, "reconnects:"), 0, "{default_run}");
    let transactions = count(&out, "transactions:");
    assert!(transactions > 50, "too few transactions:\n{out}");
    let ignored = count(&out, "ignored errors:");
    assert!(
        ignored * 50 <= transactions,
        "{ignored} errors in {transactions} transactions:\n{out}"
    );
    for l in out.lines().filter(|l| l.contains("Ignoring error")) {
        assert!(l.contains("error 1205") || l.contains("error 1213"), "{l}");
    }
    assert_eq!(count(&out, "reconnects:"), 0, "{out}");
    // oltp_read_write deletes and re-inserts the same ids: the row count stays.
    let mut c = h.conn(Some("sbtest")).await;
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM sbtest1")
        .await
        .expect("count");
    assert_eq!(n, Some(2000));
    drop(c);
    h.stop().await;
}
