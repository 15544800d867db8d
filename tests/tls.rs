//! TLS between clients and the router: a client that asks for it gets it (the `mariadb` CLI
//! verifying the router's certificate, PyMySQL), one that does not still logs in unless its
//! user or the router requires TLS, and a client that botches its TLS handshake costs nobody
//! else anything. Routers reach MariaDB over verified TLS, and `tessera up` turns all of it on
//! with a CA of its own.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const VSCHEMA: &str = "keyspace: app\nsharded: false\n";

/// A self-signed certificate for 127.0.0.1 and its key, made with the `openssl` command.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Runs the `mariadb` CLI against the router with `tls` options; (success, stdout, stderr).
fn cli(port: u16, user: &str, pw: &str, tls: &[&str], sql: &str) -> (bool, String, String) {
    let out = Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{port}"), &format!("-u{user}")])
        .arg(format!("-p{pw}"))
        .args(tls)
        .args(["app", "-e", sql])
        .output()
        .expect("run mariadb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tls_config(
    cert: &Path,
    key: &Path,
    require_all: bool,
) -> impl FnOnce(&mut tessera_router::config::RouterConfig) {
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    move |cfg| {
        cfg.tls = Some(tessera_router::config::TlsConfig { cert, key });
        cfg.require_secure_transport = require_all;
        cfg.users.push(tessera_router::config::UserConfig {
            require_tls: true,
            ..tessera_router::config::UserConfig::with_password("secure", Some("pw"))
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_ask_get_tls_and_required_tls_is_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let h = Harness::start_with(1, 0, VSCHEMA, tls_config(&cert, &key, false)).await;
    let port = h.port();
    let ca = format!("--ssl-ca={}", cert.display());
    let verified = ["--ssl", ca.as_str(), "--ssl-verify-server-cert"];
    // Over TLS, the router's certificate verified against its CA: the session works, and the
    // client reports the cipher in use.
    let (ok, out, err) = cli(port, USER, PASSWORD, &verified, "SELECT 40 + 2 AS n; \\s");
    assert!(ok, "{err}");
    assert!(out.contains("42"), "{out}");
    assert!(out.contains("Cipher in use is TLS"), "{out}");
    // In the clear: allowed for a user that does not require TLS, refused for one that does.
    let (ok, out, err) = cli(port, USER, PASSWORD, &["--skip-ssl"], "SELECT 7 AS n");
    assert!(ok && out.contains('7'), "{out}{err}");
    let (ok, _, err) = cli(port, "secure", "pw", &["--skip-ssl"], "SELECT 1");
    assert!(!ok && err.contains("1045"), "{err}");
    let (ok, out, err) = cli(port, "secure", "pw", &verified, "SELECT 8 AS n");
    assert!(ok && out.contains('8'), "{out}{err}");
    // A certificate the client does not trust: the client refuses the router.
    let other = tempfile::tempdir().expect("tempdir");
    let (other_cert, _) = certificate(other.path());
    let wrong = format!("--ssl-ca={}", other_cert.display());
    let (ok, _, err) = cli(
        port,
        USER,
        PASSWORD,
        &["--ssl", &wrong, "--ssl-verify-server-cert"],
        "SELECT 1",
    );
    assert!(!ok, "a client trusting another CA logged in: {err}");
    // A client that asks for TLS, then sends what is no TLS handshake, and one that never
    // sends anything: each is dropped on its own; others are served meanwhile.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("idle");
        let mut bad = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("bad");
        let mut greeting = vec![0u8; 4096];
        let _ = bad.read(&mut greeting).await.expect("greeting");
        let mut ssl_request = vec![32, 0, 0, 1];
        ssl_request.extend_from_slice(&(0x0000_0a00u32 | 0x0008_0000 | 0x0000_8000).to_le_bytes());
        ssl_request.extend_from_slice(&[0u8; 28]);
        bad.write_all(&ssl_request).await.expect("ssl request");
        bad.write_all(b"this is not a TLS client hello")
            .await
            .expect("garbage");
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            bad.read_to_end(&mut rest),
        )
        .await
        .expect("the router closes a botched TLS handshake");
        assert!(n.is_ok());
        let (ok, out, err) = cli(port, USER, PASSWORD, &verified, "SELECT 9 AS n");
        assert!(ok && out.contains('9'), "{out}{err}");
        let _ = idle.write_all(b"").await;
    }
    // PyMySQL over TLS, when installed.
    let py = r#"
import sys, ssl, pymysql
port, ca = int(sys.argv[1]), sys.argv[2]
c = pymysql.connect(host="127.0.0.1", port=port, user="secure", password="pw", database="app",
                    ssl={"ca": ca})
cur = c.cursor()
cur.execute("SELECT 6 * 7")
print(cur.fetchone()[0], c._sock.version().startswith("TLS"))
"#;
    let has_pymysql = Command::new("python3")
        .args(["-c", "import pymysql"])
        .status()
        .is_ok_and(|s| s.success());
    if has_pymysql {
        let out = Command::new("python3")
            .args(["-c", py, &port.to_string(), &cert.display().to_string()])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "42 True",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        println!("skipped the PyMySQL half: PyMySQL is not installed (scripts/test installs it)");
    }
    // Connector/J with `useSSL=true&trustServerCertificate=false`, when installed: the user
    // that requires TLS logs in verifying the router against its CA; trusting another CA, the
    // driver refuses the router.
    const JAR: &str = "/usr/share/java/mariadb-java-client.jar";
    let has_java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_java && Path::new(JAR).exists() {
        let program =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/ConnectorJTls.java");
        let run = |ca: &Path| {
            let out = Command::new("java")
                .args(["-cp", JAR])
                .arg(&program)
                .args(["127.0.0.1", &port.to_string(), "secure", "pw", "app"])
                .arg(ca)
                .output()
                .expect("java");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(run(&cert), "ok 42");
        let refused = run(&other_cert);
        assert!(refused.starts_with("error"), "{refused}");
    } else {
        println!("skipped the Connector/J half: no java or no {JAR} (scripts/test installs them)");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_secure_transport_refuses_clear_logins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let h = Harness::start_with(1, 0, VSCHEMA, tls_config(&cert, &key, true)).await;
    let port = h.port();
    let (ok, _, err) = cli(port, USER, PASSWORD, &["--skip-ssl"], "SELECT 1");
    assert!(!ok && err.contains("1045"), "{err}");
    let ca = format!("--ssl-ca={}", cert.display());
    let (ok, out, err) = cli(port, USER, PASSWORD, &["--ssl", &ca], "SELECT 5 AS n");
    assert!(ok && out.contains('5'), "{out}{err}");
    h.stop().await;
}

/// A config that asks for TLS the router cannot give fails at start, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_is_a_clear_start_error() {
    let mut cfg = tessera_router::config::RouterConfig::from_yaml(
        "listen: 127.0.0.1:0\nadmin_listen: null\nusers: [{name: a, password: b}]\ntls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\n",
    )
    .expect("config");
    cfg.topo.endpoints = vec!["127.0.0.1:1".into()];
    let topo = tessera_topo::Topo::new(std::sync::Arc::new(tessera_topo::MemoryStore::new()));
    match tessera_router::Router::new(cfg, topo).start().await {
        Err(e) => assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}"),
        Ok(_) => panic!("the router started without its certificate"),
    }
    let bad = tessera_router::config::RouterConfig::from_yaml(
        "users: [{name: a, password: b}]\nrequire_secure_transport: true\n",
    );
    assert!(
        bad.is_err(),
        "require_secure_transport without tls was accepted"
    );
}

/// A user known only by its password's stored form (`password_hash`, as `PASSWORD()` and
/// `tessera router --hash-password` write it) logs in, also when the router offers
/// `caching_sha2_password` first (the client is switched to `mysql_native_password`), and a
/// wrong password is still 1045.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_with_a_stored_password_hash_log_in() {
    use mysql_async::prelude::Queryable;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["router", "--hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b"h4sh-me\n")?;
            c.wait_with_output()
        })
        .expect("tessera router --hash-password");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(hash, tessera_router::wire::auth::native_hash(b"h4sh-me"));
    for plugin in ["mysql_native_password", "caching_sha2_password"] {
        let hash = hash.clone();
        let h = Harness::start_with(1, 0, VSCHEMA, move |cfg| {
            cfg.auth_plugin = plugin.to_string();
            cfg.users.push(tessera_router::config::UserConfig {
                password_hash: Some(hash),
                ..tessera_router::config::UserConfig::with_password("hashed", None)
            });
        })
        .await;
        let mut c = mysql_async::Conn::new(h.opts(Some("app"), "hashed", "h4sh-me"))
            .await
            .unwrap_or_else(|e| panic!("{plugin}: login with the hashed user: {e}"));
        let one: Option<u8> = c.query_first("SELECT 1").await.expect("select");
        assert_eq!(one, Some(1));
        drop(c);
        match mysql_async::Conn::new(h.opts(Some("app"), "hashed", "wrong")).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{plugin}"),
            other => panic!("{plugin}: a wrong password: {other:?}"),
        }
        // The plain users still log in as before.
        let c = h.conn(Some("app")).await;
        drop(c);
        h.stop().await;
    }
    // A config with a malformed hash, or a password given twice, is refused.
    for yaml in [
        "users: [{name: a, password_hash: '*00'}]\n",
        "users: [{name: a, password: x, password_hash: '*D821809F681A40A6E379B50D0463EFAE20BDD122'}]\n",
    ] {
        assert!(
            tessera_router::config::RouterConfig::from_yaml(yaml).is_err(),
            "{yaml}"
        );
    }
}

/// A client that connects and never finishes its handshake is disconnected (after the login
/// timeout, 10 s), and others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_logs_in_is_disconnected() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start(1, 0, VSCHEMA).await;
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
        .await
        .expect("connect");
    let mut greeting = vec![0u8; 4096];
    let n = idle.read(&mut greeting).await.expect("greeting");
    assert!(n > 4, "a greeting comes first");
    // Served meanwhile.
    let (ok, out, err) = cli(h.port(), USER, PASSWORD, &["--skip-ssl"], "SELECT 3 AS n");
    assert!(ok && out.contains('3'), "{out}{err}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        idle.read_to_end(&mut rest),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the idle connection was not closed: {closed:?}"
    );
    h.stop().await;
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// MariaDB servers that offer TLS with a certificate for 127.0.0.1 signed by their own CA,
/// reached by routers (and every other part) only over TLS verified against it; a CA that
/// did not sign it gets a clear error, never a clear-text connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_reach_mariadb_over_verified_tls() {
    use mysql_async::prelude::Queryable;
    let base = tempfile::tempdir().expect("tempdir");
    let tls = base.path().join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    authority(&tls, "ca");
    authority(&tls, "other");
    std::fs::write(
        tls.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .expect("ext");
    openssl(
        &tls,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        &tls,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "server-cert.pem",
        ],
    );
    let cluster = tessera::localcluster::LocalCluster::start(2, Some(base.path()))
        .await
        .expect("servers");
    let ca = std::fs::read_to_string(tls.join("ca.pem")).expect("ca");
    let topo = tessera_topo::Topo::new(std::sync::Arc::new(tessera_topo::MemoryStore::new()));
    register_shards(&topo, &cluster, 2).await;
    for (i, s) in cluster.servers().iter().enumerate() {
        // Clear-text logins refused from now on: only TLS reaches them.
        let mut d = mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(s.host())
                .tcp_port(s.port())
                .user(Some(s.user()))
                .pass(Some(s.password()))
                .prefer_socket(false),
        )
        .await
        .expect("direct");
        d.query_drop("SET GLOBAL require_secure_transport = ON")
            .await
            .expect("require TLS");
        let mut rec = topo
            .snapshot()
            .await
            .expect("snapshot")
            .shards
            .get(&format!("ps{i}"))
            .cloned()
            .expect("registered");
        rec.tls_ca = Some(ca.clone());
        topo.put_physical_shard(&rec).await.expect("TLS record");
    }
    let v = tessera_topo::VSchema::from_yaml(
        "keyspace: demo\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("vschema");
    tessera::cli::apply_vschema(&topo, &v)
        .await
        .expect("schemas over TLS");
    let cfg = tessera_router::RouterConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nusers: [{{name: {USER}, password: {PASSWORD}}}]\n"
    ))
    .expect("config");
    let router = tessera_router::Router::new(cfg, topo.clone())
        .start()
        .await
        .expect("router");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(router.local_addr().port())
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("demo"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.expect("router");
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(8))")
        .await
        .expect("ddl");
    c.query_drop("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
        .await
        .expect("insert");
    // One logical shard (the router's own connections), all of them, a transaction.
    let one: Option<String> = c
        .query_first("SELECT v FROM t WHERE id = 3")
        .await
        .expect("point");
    assert_eq!(one.as_deref(), Some("c"));
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("scatter");
    assert_eq!(n, Some(4));
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop("UPDATE t SET v = 'x' WHERE id = 1")
        .await
        .expect("update");
    let v: Option<String> = c
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .expect("read");
    assert_eq!(v.as_deref(), Some("x"));
    c.query_drop("COMMIT").await.expect("commit");
    // The backend session says so itself.
    let version: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .expect("status");
    assert!(
        version
            .as_ref()
            .is_some_and(|(_, v)| v.starts_with("TLSv1")),
        "{version:?}"
    );
    // A record whose CA did not sign the servers' certificate: refused, named.
    let other = std::fs::read_to_string(tls.join("other.pem")).expect("other");
    for i in 0..2 {
        let mut rec = topo
            .snapshot()
            .await
            .expect("snapshot")
            .shards
            .get(&format!("ps{i}"))
            .cloned()
            .expect("registered");
        rec.tls_ca = Some(other.clone());
        topo.put_physical_shard(&rec).await.expect("wrong CA");
    }
    let mut refused = None;
    for _ in 0..100 {
        match c
            .query_first::<String, _>("SELECT v FROM t WHERE id = 2")
            .await
        {
            Err(mysql_async::Error::Server(e)) => {
                refused = Some(e.message);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let refused = refused.expect("a CA that did not sign the certificate is refused");
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("TLS"),
        "{refused}"
    );
    drop(c);
    router.shutdown().await;
}

/// Failed logins are counted, and an address that keeps failing waits longer for every
/// answer (a right password too); a success forgets its failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_counted_and_slowed() {
    let h = Harness::start(1, 0, VSCHEMA).await;
    for _ in 0..6 {
        let r = mysql_async::Conn::new(h.opts(Some("app"), USER, "wrong")).await;
        assert!(
            matches!(r, Err(mysql_async::Error::Server(ref e)) if e.code == 1045),
            "{:?}",
            r.err()
        );
    }
    let started = std::time::Instant::now();
    let c = mysql_async::Conn::new(h.opts(Some("app"), USER, PASSWORD))
        .await
        .expect("the right password still logs in");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(600),
        "after 6 failures a login waits: {waited:?}"
    );
    drop(c);
    let started = std::time::Instant::now();
    let c = mysql_async::Conn::new(h.opts(Some("app"), USER, PASSWORD))
        .await
        .expect("login");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "a success forgets the failures"
    );
    drop(c);
    let admin = h
        .router
        .as_ref()
        .and_then(|r| r.admin_addr())
        .expect("admin");
    let m = parse_metrics(&http_get(admin, "/metrics").await);
    assert!(metric(&m, "tessera_router_login_failures_total", &[]) >= 6.0);
    h.stop().await;
}

/// A `tessera up` process, stopped with SIGTERM when dropped (SIGKILL after 30 s, and then its
/// MariaDB servers by the pids in their data dirs), so a failing test leaves nothing running.
struct Up {
    child: Option<std::process::Child>,
    data: PathBuf,
    port: u16,
    topo_port: u16,
    /// What it printed up to and including its `admin:` line.
    lines: Vec<String>,
    /// Its standard error, in a file.
    stderr: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Up {
    /// Starts `tessera up --shards 2 --logical-shards 4` on `data` with `extra` arguments, on
    /// free ports (tried again on new ports when a port was taken meanwhile), and returns once
    /// it printed its connect lines.
    fn start(data: &Path, logs: &Path, extra: &[&str]) -> Up {
        use std::io::BufRead;
        for attempt in 1..=3 {
            let (port, topo_port) = (free_port(), free_port());
            let stderr = logs.join(format!("up-{}-{attempt}.err", free_port()));
            let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["up", "--shards", "2", "--logical-shards", "4"])
                .args(["--port", &port.to_string()])
                .args(["--topo-listen", &format!("127.0.0.1:{topo_port}")])
                .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
                .arg("--data-dir")
                .arg(data)
                .args(extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(&stderr).expect("stderr file"))
                .spawn()
                .expect("spawn tessera up");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut up = Up {
                child: Some(child),
                data: data.to_path_buf(),
                port,
                topo_port,
                lines: Vec::new(),
                stderr,
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        let last = line.starts_with("admin:");
                        up.lines.push(line);
                        if last {
                            return up;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        panic!("tessera up printed no admin line in 120 s: {:?}", up.lines)
                    }
                    // It exited before being ready: a port taken meanwhile, most likely.
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let err = up.stderr_text();
            drop(up);
            assert!(attempt < 3, "tessera up did not start: {err}");
        }
        unreachable!()
    }

    /// The printed line that starts with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in {:?}", self.lines))
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        terminate(&child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "tessera up exited with {status}");
                return;
            }
            if std::time::Instant::now() > deadline {
                self.child = Some(child);
                panic!("tessera up did not stop within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if stop_child(&mut child, std::time::Duration::from_secs(30)) {
            return;
        }
        // Its MariaDB servers outlive a SIGKILL: stop them by their pid files.
        for i in 0..2 {
            let pid = self.data.join(format!("mysql/server{i}/mysqld.pid"));
            if let Some(pid) = std::fs::read_to_string(pid)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on the pid a server of this test wrote.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// The `mariadb` CLI against `port`, database `db`; (success, stdout, stderr).
fn cli_db(
    port: u16,
    user: &str,
    pw: &str,
    tls: &[&str],
    db: &str,
    sql: &str,
) -> (bool, String, String) {
    let out = Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{port}"), &format!("-u{user}")])
        .arg(format!("-p{pw}"))
        .args(["--batch", "--skip-column-names"])
        .args(tls)
        .args([db, "-e", sql])
        .output()
        .expect("run mariadb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Root on a MariaDB server of `tessera up`, through its socket.
fn server_root(data: &Path, i: usize, sql: &str) -> String {
    let out = Command::new("mariadb")
        .arg(format!(
            "--socket={}",
            data.join(format!("mysql/server{i}/mysqld.sock")).display()
        ))
        .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
        .output()
        .expect("run mariadb");
    assert!(
        out.status.success(),
        "server{i}: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tessera up` makes a CA in its data dir and uses TLS on every hop: clients verify the router
/// against the CA (and a client trusting another CA is refused), the router and the control
/// plane reach MariaDB over TLS (proved by servers that refuse anything else), a second start
/// reuses the CA (and `--require-tls` refuses clear-text clients), and `--no-tls` is plaintext.
#[test]
fn tessera_up_uses_tls_on_every_hop_with_its_own_ca() {
    use std::os::unix::fs::PermissionsExt;
    let data_tmp = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let data = data_tmp.path();
    let tls = data.join("tls");
    let up = Up::start(data, logs.path(), &[]);
    assert!(
        up.stderr_text().contains("made a local CA"),
        "{}",
        up.stderr_text()
    );
    for f in [
        "ca.pem",
        "ca-key.pem",
        "server-cert.pem",
        "server-key.pem",
        "router-cert.pem",
        "router-key.pem",
    ] {
        let mode = std::fs::metadata(tls.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let ca_path = tls.join("ca.pem");
    let connect = up.line("connect:");
    assert!(
        connect.contains(&format!(
            "--ssl-ca {} --ssl-verify-server-cert",
            ca_path.display()
        )),
        "{connect}"
    );
    let ca = format!("--ssl-ca={}", ca_path.display());
    let verified = ["--ssl", ca.as_str(), "--ssl-verify-server-cert"];

    // (a) The mariadb CLI verifying the router against the CA; one trusting another CA fails.
    let (ok, out, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &verified,
        "demo",
        "SELECT 40 + 2; \\s",
    );
    assert!(ok, "{err}");
    assert!(out.contains("42"), "{out}");
    assert!(out.contains("Cipher in use is TLS"), "{out}");
    let other = tempfile::tempdir().expect("tempdir");
    let (other_tls, _) = tessera::localtls::ensure(&other.path().join("tls")).expect("other CA");
    let wrong = format!("--ssl-ca={}", other_tls.ca_cert().display());
    let (ok, _, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &["--ssl", &wrong, "--ssl-verify-server-cert"],
        "demo",
        "SELECT 1",
    );
    assert!(!ok, "a client trusting another CA logged in: {err}");
    // Clear text is still allowed by default.
    let (ok, out, err) = cli_db(up.port, "tessera", "tessera", &[], "demo", "SELECT 7");
    assert!(ok && out.contains('7'), "{out}{err}");

    // (b) The router's backend session says it is encrypted…
    let (ok, out, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &verified,
        "demo",
        "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
    );
    assert!(ok, "{err}");
    let cipher = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        !cipher.is_empty(),
        "no cipher on the backend session: {out}"
    );
    // …and servers that refuse clear-text logins from now on still serve a router that
    // starts now (every backend connection new) and the control plane (`vschema apply`
    // creates schemas on every server).
    for i in 0..2 {
        server_root(data, i, "SET GLOBAL require_secure_transport = ON");
    }
    let direct_port = server_root(data, 0, "SELECT @@port");
    let (ok, _, err) = cli_db(
        direct_port.trim().parse().expect("port"),
        "tessera",
        "tessera",
        &["--skip-ssl"],
        "mysql",
        "SELECT 1",
    );
    assert!(!ok, "a clear-text login to MariaDB was accepted: {err}");
    let vschema = logs.path().join("other.yaml");
    std::fs::write(
        &vschema,
        "keyspace: other\nsharded: true\nlogical_shards: 4\ntables:\n  t: { shard_key: id }\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["vschema", "apply"])
        .arg(&vschema)
        .args(["--topo", &format!("127.0.0.1:{}", up.topo_port)])
        .output()
        .expect("vschema apply");
    assert!(
        out.status.success(),
        "vschema apply over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The topology API speaks only TLS: a clear-text request gets no HTTP answer, and the
    // command line found the CA beside the token file by itself.
    assert!(
        !topo_answers_clear_text(up.topo_port),
        "the topology answered clear-text HTTP"
    );
    let ca_left =
        std::fs::read_to_string(topo_ca_file(up.topo_port)).expect("the topology CA file");
    assert_eq!(ca_left.as_bytes(), std::fs::read(&ca_path).expect("ca"));
    // Trusting another CA, the command line refuses the topology (the token is never sent).
    let other_ca = logs.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other_tls.ca_pem).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["topo", "get", "/tessera/up"])
        .args(["--topo", &format!("127.0.0.1:{}", up.topo_port)])
        .arg("--topo-ca")
        .arg(&other_ca)
        .output()
        .expect("topo get");
    assert!(
        !out.status.success(),
        "a topology signed by another CA was trusted"
    );
    let rport = free_port();
    let cfg = logs.path().join("router.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{rport}\nadmin_listen: null\nusers:\n  - {{ name: app, password: pw }}\ntopo:\n  endpoints: [127.0.0.1:{}]\n",
            up.topo_port
        ),
    )
    .expect("write config");
    let mut router = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["router", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tessera router");
    let first = router
        .stdout
        .take()
        .and_then(|o| {
            use std::io::BufRead;
            std::io::BufReader::new(o).lines().next()
        })
        .and_then(Result::ok)
        .unwrap_or_default();
    let served = cli_db(
        rport,
        "app",
        "pw",
        &[],
        "other",
        "CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t (id) VALUES (1), (2), (3), (4), (5), (6), (7), (8); SELECT COUNT(*) FROM t; SHOW SESSION STATUS LIKE 'Ssl_version'",
    );
    let _ = router.kill();
    let _ = router.wait();
    assert!(first.starts_with("ready:"), "{first}");
    let (ok, out, err) = served;
    assert!(ok, "a new router on servers that require TLS: {err}");
    assert!(out.contains("\n8\n") || out.starts_with("8\n"), "{out}");
    assert!(out.contains("TLSv1"), "{out}");
    let ca_bytes = std::fs::read(&ca_path).expect("ca");
    let server_cert = std::fs::read(tls.join("server-cert.pem")).expect("cert");
    let topo_port = up.topo_port;
    up.stop();
    assert!(
        !topo_ca_file(topo_port).exists(),
        "a stopped cluster leaves its topology CA behind"
    );

    // (c) A second start reuses the CA and certificates; with --require-tls clear-text clients
    // are refused, and the sample data goes in over TLS.
    let sample = logs.path().join("sample.sql");
    std::fs::write(&sample, "INSERT INTO t (id) VALUES (9);\n").expect("write");
    let vschema = vschema.display().to_string();
    let up = Up::start(
        data,
        logs.path(),
        &[
            "--require-tls",
            "--vschema",
            &vschema,
            "--sample-data",
            &sample.display().to_string(),
        ],
    );
    assert_eq!(
        std::fs::read(&ca_path).expect("ca"),
        ca_bytes,
        "the CA was made again"
    );
    assert_eq!(
        std::fs::read(tls.join("server-cert.pem")).expect("cert"),
        server_cert
    );
    assert!(
        !up.stderr_text().contains("local CA"),
        "{}",
        up.stderr_text()
    );
    let (ok, out, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &verified,
        "other",
        "SELECT COUNT(*) FROM t; SHOW SESSION STATUS LIKE 'Ssl_cipher'",
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("9\nSsl_cipher\t"), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.len() > "Ssl_cipher\t".len()),
        "no cipher on the backend session: {out}"
    );
    let (ok, _, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &["--skip-ssl"],
        "other",
        "SELECT 1",
    );
    assert!(!ok && err.contains("1045"), "{err}");
    up.stop();

    // (d) --no-tls: plaintext everywhere, as before, on the same data dir.
    let up = Up::start(data, logs.path(), &["--no-tls", "--vschema", &vschema]);
    let connect = up.line("connect:");
    assert!(!connect.contains("--ssl"), "{connect}");
    assert!(topo_answers_clear_text(up.topo_port));
    let (ok, out, err) = cli_db(
        up.port,
        "tessera",
        "tessera",
        &[],
        "other",
        "SELECT COUNT(*) FROM t; SHOW SESSION STATUS LIKE 'Ssl_cipher'; \\s",
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("9\nSsl_cipher\t\n"), "{out}");
    assert!(out.contains("Not in use"), "{out}");
    let (ok, _, err) = cli_db(
        up.port, "tessera", "tessera", &verified, "other", "SELECT 1",
    );
    assert!(
        !ok,
        "a client that requires TLS logged in to a plaintext router: {err}"
    );
    up.stop();
}

/// Where `tessera up` leaves its topology CA for the node at `port` (beside the token file).
fn topo_ca_file(port: u16) -> PathBuf {
    tessera_topo::tls::ca_path_for(&format!("127.0.0.1:{port}")).expect("a home for the CA file")
}

/// Whether the topology at `port` answers a clear-text HTTP request with HTTP.
fn topo_answers_clear_text(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = s.write_all(b"GET /v1/status HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got.starts_with(b"HTTP/")
}
