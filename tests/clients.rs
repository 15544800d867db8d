//! Real clients through the router: the `mariadb` command-line client, PyMySQL and
//! mysql-connector-python (when installed), and the `tessera` binary itself (`up`, `vschema apply`).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VSCHEMA: &str = "
keyspace: shop
sharded: true
logical_shards: 8
tables:
  item: { shard_key: id, vindex: numeric }
  tag: { type: reference }
";

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .arg("-c")
        .arg(format!("import {module}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_and_python_drivers_work_through_the_router() {
    let h = Harness::start(2, 0, VSCHEMA).await;
    let port = h.port().to_string();
    let run_cli = |args: &[&str], sql: &str| {
        let out = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &port,
                "-u",
                USER,
                &format!("-p{PASSWORD}"),
                "--batch",
                "--skip-column-names",
            ])
            .args(args)
            .args(["-e", sql])
            .output()
            .expect("run the mariadb client");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(
        have("mariadb"),
        "the mariadb client is installed by scripts/test"
    );
    let (ok, _, err) = run_cli(&["shop"], "CREATE TABLE item (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(40)); CREATE TABLE tag (t VARCHAR(10) PRIMARY KEY)");
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(&["shop"], "INSERT INTO item (id, name) VALUES (1, 'one'), (2305843009213693952, 'big'), (3, 'three'); INSERT INTO tag VALUES ('x')");
    assert!(ok, "{err}");
    let (ok, out, err) = run_cli(
        &[],
        "USE shop; SELECT name FROM item WHERE id = 2305843009213693952; SELECT DATABASE()",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "big\nshop\n");
    let (ok, _, err) = run_cli(&["shop"], "SELECT * FROM nosuch");
    assert!(!ok);
    assert!(err.contains("1146"), "{err}");
    let (ok, _, err) = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-u",
            USER,
            "-pwrong",
            "-e",
            "SELECT 1",
        ])
        .output()
        .map(|o| {
            (
                o.status.success(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .expect("run");
    assert!(!ok);
    assert!(err.contains("1045"), "{err}");

    let script = r#"
import sys
port = int(sys.argv[1]); user = sys.argv[2]; pw = sys.argv[3]; driver = sys.argv[4]
if driver == "pymysql":
    import pymysql as m
    c = m.connect(host="127.0.0.1", port=port, user=user, password=pw, database="shop")
else:
    import mysql.connector as m
    c = m.connect(host="127.0.0.1", port=port, user=user, password=pw, database="shop", use_pure=True)
cur = c.cursor()
cur.execute("SELECT name FROM item WHERE id = 3")
got = [tuple(r) for r in cur.fetchall()]
assert got == [("three",)], got
# Autocommit is off in both drivers: the first statement's answer says "in a transaction"
# (the status flag Connector/Python reads; PyMySQL does not keep it from result sets).
if driver == "connector":
    assert c.in_transaction, "the first statement with autocommit off opens a transaction"
    c.commit()
    assert not c.in_transaction, "COMMIT ends it"
b = 10 if driver == "pymysql" else 20
cur.execute("INSERT INTO item (id, name) VALUES (%d, 'ten'), (%d, 'eleven')" % (b, b + 1))
c.commit()
cur.execute("SELECT id, name FROM item WHERE id IN (%d, %d)" % (b, b + 1))
rows = sorted(cur.fetchall())
assert [tuple(r) for r in rows] == [(b, "ten"), (b + 1, "eleven")], rows
cur.execute("SELECT * FROM tag")
assert [tuple(r) for r in cur.fetchall()] == [("x",)]
cur.execute("USE shop")
cur.execute("SELECT DATABASE()")
assert cur.fetchall()[0][0] == "shop"
if driver == "connector":
    pc = c.cursor(prepared=True)
    pc.execute("SELECT id, name FROM item WHERE id = ?", (b,))
    got = [tuple(r) for r in pc.fetchall()]
    assert got == [(b, "ten")], got
    pc.execute("SELECT COUNT(*), MAX(name) FROM item WHERE id > ?", (0,))
    got = [tuple(r) for r in pc.fetchall()]
    assert got[0][0] >= 5, got
    pc.execute("UPDATE item SET name = ? WHERE id = ?", ("TEN", b))
    c.commit()
    pc.execute("SELECT name FROM item WHERE id = ?", (b,))
    assert [tuple(r) for r in pc.fetchall()] == [("TEN",)]
    pc.close()
try:
    cur.execute("SELEC 1")
    raise SystemExit("parse error expected")
except Exception as e:
    assert "1064" in str(e), e
c.close()
print("ok")
"#;
    let mut drivers = vec![];
    if python_has("pymysql") {
        drivers.push("pymysql");
    }
    if python_has("mysql.connector") {
        drivers.push("connector");
    }
    assert!(!drivers.is_empty(), "PyMySQL is installed by scripts/test");
    for d in drivers {
        let out = Command::new("python3")
            .args(["-c", script, &port, USER, PASSWORD, d])
            .output()
            .expect("run python");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
            "{d}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A router that offers caching_sha2_password: mysql_async and PyMySQL both log in with it.
    let mut cfg = tessera_router::RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: null\nauth_plugin: caching_sha2_password\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
    ))
    .expect("config");
    cfg.default_keyspace = Some("shop".into());
    let sha2 = tessera_router::Router::new(cfg, h.topo.clone())
        .start()
        .await
        .expect("router");
    let sport = sha2.local_addr().port();
    let o = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sport)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(o.clone())
        .await
        .expect("caching_sha2 login");
    assert_eq!(
        rows(&mut c, "SELECT name FROM item WHERE id = 1").await,
        vec![vec!["one".to_string()]],
        "default keyspace"
    );
    drop(c);
    match mysql_async::Conn::new(o.pass(Some("bad"))).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045),
        other => panic!("expected 1045, got {:?}", other.map(|_| ())),
    }
    let out = Command::new("python3")
        .args(["-c", "import sys, pymysql; c = pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3]); cur = c.cursor(); cur.execute('SELECT name FROM item WHERE id = 3'); print(cur.fetchall()[0][0])", &sport.to_string(), USER, PASSWORD])
        .output()
        .expect("python");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "three",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha2.shutdown().await;
    h.stop().await;
}

/// Kills the child on drop, so a failed test leaves nothing behind.
/// A `tessera` process, stopped when dropped (a test that fails included) as Ctrl-C would
/// stop it, so that a `tessera up` stops its MariaDB servers.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        stop_child(&mut self.0, std::time::Duration::from_secs(30));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn tessera_up_serves_and_stops_cleanly() {
    // Ports are picked free but taken a moment later; another test's server may win one, so a
    // start that exits before `ready:` (saying which port) is tried again on new ports.
    let mut attempt = 0;
    let (mut child, port, topo_port, mut up_lines, data) = loop {
        attempt += 1;
        let port = free_port();
        let topo_port = free_port();
        let data = tempfile::tempdir().expect("tempdir");
        let root = env!("CARGO_MANIFEST_DIR");
        let mut child = Child(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args([
                    "up",
                    "--shards",
                    "2",
                    "--spare-servers",
                    "1",
                    "--port",
                    &port.to_string(),
                    "--topo-listen",
                    &format!("127.0.0.1:{topo_port}"),
                    "--topo-nodes",
                    "3",
                ])
                .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
                .arg("--data-dir")
                .arg(data.path())
                .arg("--vschema")
                .arg(format!("{root}/examples/demo/vschema.yaml"))
                .arg("--sample-data")
                .arg(format!("{root}/examples/demo/data.sql"))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn tessera up"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ready = false;
        for line in lines.by_ref() {
            let line = line.expect("line");
            if line.starts_with("ready:") {
                ready = true;
                break;
            }
            assert!(Instant::now() < deadline, "tessera up took too long");
        }
        if ready {
            break (child, port, topo_port, lines, data);
        }
        assert!(
            attempt < 3,
            "tessera up printed no ready line in 3 attempts"
        );
    };

    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "tessera",
            "-ptessera",
            "--batch",
            "--skip-column-names",
            "demo",
        ])
        .args([
            "-e",
            "SELECT name FROM customer WHERE customer_id = 1; SELECT COUNT(*) FROM country",
        ])
        .output()
        .expect("mariadb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");

    // A bad vschema is rejected by `vschema apply`, naming the field.
    let bad = data.path().join("bad.yaml");
    std::fs::write(&bad, "keyspace: other\nsharded: true\nlogical_shards: 48\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["vschema", "apply"])
        .arg(&bad)
        .args(["--topo", &format!("127.0.0.1:{topo_port}")])
        .output()
        .expect("vschema apply");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("logical_shards"), "{err}");
    // The topology service answers nothing without the token `tessera up` keeps in its file
    // (which the command line above found by itself).
    // It speaks only TLS, verified against the cluster's own CA.
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let ca = std::fs::read_to_string(data.path().join("tls").join("ca.pem")).expect("ca");
            let client = tessera_topo::tls::http_client(Some(&tessera_topo::tls::ClientTls {
                ca_pem: ca,
                identity: None,
            }))
            .expect("client")
            .build()
            .expect("client");
            let r = client
                .get(format!("https://127.0.0.1:{topo_port}/v1/revision"))
                .send()
                .await
                .expect("topo over TLS");
            assert_eq!(r.status().as_u16(), 401);
            assert!(
                tessera_topo::tls::http_client(None)
                    .expect("client")
                    .build()
                    .expect("client")
                    .get(format!("http://127.0.0.1:{topo_port}/v1/revision"))
                    .send()
                    .await
                    .is_err(),
                "the topology answered clear-text HTTP"
            );
        });
    // A good one is applied and can be shown.
    let good = data.path().join("good.yaml");
    std::fs::write(
        &good,
        "keyspace: other\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["vschema", "apply"])
        .arg(&good)
        .args(["--topo", &format!("127.0.0.1:{topo_port}")])
        .env("TESSERA_ACTOR", "dba-anna")
        .output()
        .expect("vschema apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both applies are in the audit trail: who, what, how each ended.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["audit", "--topo", &format!("127.0.0.1:{topo_port}")])
        .output()
        .expect("audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trail = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = trail
        .lines()
        .filter(|l| l.contains("vschema apply"))
        .collect();
    assert_eq!(lines.len(), 4, "{trail}");
    assert!(
        lines[1].contains("failed") && lines[1].contains("bad.yaml"),
        "{trail}"
    );
    assert!(
        lines[2].contains("dba-anna") && lines[2].contains("started"),
        "{trail}"
    );
    assert!(
        lines[3].contains("dba-anna") && lines[3].contains(" ok "),
        "{trail}"
    );
    let out = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &port.to_string(), "-u", "tessera", "-ptessera", "--batch", "--skip-column-names", "other"])
        .args(["-e", "CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t (id) VALUES (5); SELECT id FROM t WHERE id = 5"])
        .output()
        .expect("mariadb");
    assert!(
        out.status.success(),
        "the router follows the new keyspace: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Applications are served with the data account, which holds the keyspaces' schemas and
    // nothing else: seen from the server itself, with the control account.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["topo", "get", "/tessera/shards/ps0"])
        .args(["--topo", &format!("127.0.0.1:{topo_port}")])
        .output()
        .expect("topo get");
    let kv: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the shard's key as JSON");
    let rec: serde_json::Value =
        serde_json::from_str(kv["value"].as_str().expect("a value")).expect("the shard record");
    assert_eq!(rec["data_account"]["user"], "tessera_app", "{rec}");
    let mport = rec["port"].as_u64().expect("port").to_string();
    let ca = format!(
        "--ssl-ca={}",
        data.path().join("tls").join("ca.pem").display()
    );
    let direct = |user: &str, pw: &str, sql: &str| {
        Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &mport,
                "-u",
                user,
                &format!("-p{pw}"),
            ])
            .args(["--ssl", &ca, "--batch", "--skip-column-names", "-e", sql])
            .output()
            .expect("mariadb")
    };
    let out = direct(
        "tessera",
        "tessera",
        "SHOW GRANTS FOR 'tessera_app'@'127.0.0.1'; SELECT '--'; SELECT DISTINCT user FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user NOT IN ('system user', 'event_scheduler')",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (grants, users) = text.split_once("--\n").expect("two answers");
    assert!(
        grants.starts_with("GRANT USAGE ON *.* TO `tessera_app`"),
        "{grants}"
    );
    for ks in ["demo", "other"] {
        assert!(
            // (--batch shows the pattern's backslash escaped.)
            grants.contains(&format!(
                "GRANT ALL PRIVILEGES ON `{ks}\\\\_%`.* TO `tessera_app`"
            )),
            "{grants}"
        );
    }
    assert_eq!(
        grants.lines().count(),
        3,
        "nothing beyond the keyspaces: {grants}"
    );
    assert!(users.lines().all(|u| u == "tessera_app"), "{users}");
    assert!(users.lines().count() >= 1, "the router's sessions: {users}");
    // What an application could reach past its keyspaces, the data account cannot.
    for sql in [
        "SELECT authentication_string FROM mysql.user",
        "SET GLOBAL max_connections = 5",
        "SELECT LOAD_FILE('/etc/hostname') IS NULL AND (SELECT 1 FROM mysql.db LIMIT 1)",
    ] {
        let out = direct("tessera_app", "tessera_app", sql);
        assert!(!out.status.success(), "the data account could run {sql}");
    }

    // The spare server, registered with its data account: `shard add` grants it every
    // keyspace's schemas, checks it, and prints both accounts' grants. An account with
    // privileges on the whole server, or one that does not exist, is refused.
    let spare = up_lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("spare server:"))
        .expect("a spare server line");
    let spare_addr = spare
        .trim_start_matches("spare server: ")
        .split_whitespace()
        .next()
        .expect("address")
        .to_string();
    let add = |name: &str, data_user: &str| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "shard",
                "add",
                name,
                "--mysql",
                &spare_addr,
                "--user",
                "tessera",
            ])
            .args(["--password-env", "SPARE_PW", "--data-user", data_user])
            .args(["--data-password-env", "SPARE_DATA_PW", "--tls-ca"])
            .arg(data.path().join("tls").join("ca.pem"))
            .args(["--topo", &format!("127.0.0.1:{topo_port}")])
            .env("SPARE_PW", "tessera")
            .env(
                "SPARE_DATA_PW",
                if data_user == "tessera" {
                    "tessera"
                } else {
                    "tessera_app"
                },
            )
            .output()
            .expect("shard add")
    };
    let out = add("ps9", "tessera");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("privileges on the whole server"),
        "{err}"
    );
    let out = add("ps9", "nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not exist"),
        "{err}"
    );
    let out = add("ps2", "tessera_app");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("data account tessera_app"), "{said}");
    for ks in ["demo", "other"] {
        assert!(
            said.contains(&format!("ON `{ks}\\_%`.* TO `tessera_app`")),
            "{said}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["shard", "list", "--topo", &format!("127.0.0.1:{topo_port}")])
        .output()
        .expect("shard list");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("ps2") && !listed.contains("ps9"),
        "{listed}"
    );

    // A second router, alone, from a config file, on the same topology.
    let rport = free_port();
    let cfg = data.path().join("router.yaml");
    std::fs::write(
        &cfg,
        format!("listen: 127.0.0.1:{rport}\nadmin_listen: null\nusers:\n  - {{ name: app, password_env: TESSERA_TEST_APP_PW }}\ntopo:\n  endpoints: [127.0.0.1:{topo_port}]\n"),
    )
    .expect("write config");
    let mut router = Child(
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["router", "--config"])
            .arg(&cfg)
            .env("TESSERA_TEST_APP_PW", "pw")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tessera router"),
    );
    let rout = router.0.stdout.take().expect("stdout");
    let first = BufReader::new(rout)
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    assert!(first.starts_with("ready:"), "{first}");
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &rport.to_string(),
            "-u",
            "app",
            "-ppw",
            "--batch",
            "--skip-column-names",
            "demo",
        ])
        .args(["-e", "SELECT name FROM country WHERE code = 'FR'"])
        .output()
        .expect("mariadb");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "France",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(router);
    // A config with a mistake is refused, naming it.
    std::fs::write(&cfg, "listen: 127.0.0.1:1\nuserz: []\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["router", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("userz"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM stops everything, MariaDB servers included.
    let pid = child.0.id() as i32;
    // SAFETY: kill(2) with a pid we own.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            assert!(status.success(), "tessera up exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "tessera up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = Command::new("pgrep")
        .args(["-f", &data.path().display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "processes left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
