//! TLS between clients and the router: a client that asks for it gets it (the `mariadb` CLI
//! verifying the router's certificate, PyMySQL), one that does not still logs in unless its
//! user or the router requires TLS, and a client that botches its TLS handshake costs nobody
//! else anything.

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
