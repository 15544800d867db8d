//! Local MariaDB servers for `tessera up` and the black-box tests: each on a free loopback
//! port with its own data dir, started in parallel, ready when they accept connections, and
//! always stopped — on [`LocalCluster::shutdown`], or killed on drop (even during a panic).

use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user every local server is given (all privileges).
pub const USER: &str = "tessera";
/// Its password.
pub const PASSWORD: &str = "tessera";
/// The data path's account on every server: made without privileges; `vschema apply` grants
/// it the keyspaces' schemas (see `tessera shard add --data-user`).
pub const DATA_USER: &str = "tessera_app";
/// Its password.
pub const DATA_PASSWORD: &str = "tessera_app";

/// Names the `mariadbd` binary to use instead of searching `PATH`, `/usr/sbin` and
/// `/usr/local/sbin` (`mysqld` is accepted too).
pub const MARIADBD_ENV: &str = "TESSERA_MARIADBD";
/// Names the `mariadb-install-db` (or `mysql_install_db`) script to use.
pub const INSTALL_DB_ENV: &str = "TESSERA_MARIADB_INSTALL_DB";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a local server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "mariadbd not found; install it with: sudo apt-get install mariadb-server (Debian/Ubuntu)"
    )]
    MariadbNotFound,
    #[error("{0} not found; install it with: sudo apt-get install mariadb-server (Debian/Ubuntu)")]
    InstallDbNotFound(String),
    #[error("initialising {dir} failed: {log}")]
    Init { dir: String, log: String },
    #[error("mariadbd on port {port} did not become ready: {log}")]
    NotReady { port: u16, log: String },
    #[error("local cluster I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The certificate, key and authority a server offers TLS with (PEM files).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
}

impl ServerTls {
    /// `server-cert.pem` and `server-key.pem` in `tls/` beside the servers' data dirs, when
    /// both are there.
    fn beside(base: &Path) -> Option<ServerTls> {
        let tls = base.join("tls");
        let (cert, key) = (tls.join("server-cert.pem"), tls.join("server-key.pem"));
        (cert.is_file() && key.is_file()).then_some(ServerTls {
            cert,
            key,
            ca: None,
        })
    }
}

/// One running `mariadbd`.
pub struct MariaDbServer {
    port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
    server_id: usize,
    tls: Option<ServerTls>,
}

/// Several local servers.
pub struct LocalCluster {
    servers: Vec<MariaDbServer>,
    _tmp: Option<tempfile::TempDir>,
}

/// Finds a binary: the path named by the environment variable `env` if it is set (and then
/// only that path, so a wrong override is reported rather than silently ignored), else the
/// first of `names` in `PATH` or the usual sbin/bin dirs.
fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    find_binary_in(
        std::env::var_os(env),
        std::env::var_os("PATH"),
        &["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"],
        names,
    )
}

fn find_binary_in(
    explicit: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    extra_dirs: &[&str],
    names: &[&str],
) -> Option<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(extra_dirs.iter().map(PathBuf::from));
    for d in dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn mariadbd_binary() -> Option<PathBuf> {
    find_binary(MARIADBD_ENV, &["mariadbd", "mysqld"])
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("[Note]")).collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl MariaDbServer {
    fn init(data_dir: &Path) -> Result<(), ClusterError> {
        if data_dir.join("mysql").is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(data_dir)?;
        std::fs::create_dir_all(data_dir.join("tmp"))?;
        let install = find_binary(INSTALL_DB_ENV, &["mariadb-install-db", "mysql_install_db"])
            .ok_or_else(|| ClusterError::InstallDbNotFound("mariadb-install-db".into()))?;
        let mut cmd = Command::new(install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--tmpdir={}", data_dir.join("tmp").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M",
            ]);
        if is_root() {
            cmd.arg("--user=root");
        }
        let out = cmd.stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(ClusterError::Init {
                dir: data_dir.display().to_string(),
                log: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), ClusterError> {
        let bin = mariadbd_binary().ok_or(ClusterError::MariadbNotFound)?;
        let d = &self.data_dir;
        // Written at every start (not only at init) so a data dir kept by `tessera up
        // --data-dir` always has it; every statement is idempotent.
        let mut init = String::new();
        for host in ["%", "localhost", "127.0.0.1"] {
            init.push_str(&format!(
                "CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION;\n\
                 CREATE USER IF NOT EXISTS '{DATA_USER}'@'{host}' IDENTIFIED BY '{DATA_PASSWORD}';\n"
            ));
        }
        std::fs::write(d.join("tessera-init.sql"), init)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!(
                "--init-file={}",
                d.join("tessera-init.sql").display()
            ))
            .arg(format!("--server-id={}", self.server_id))
            .args([
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=500",
                "--log-bin=mysql-bin",
                "--binlog-format=ROW",
                "--sync-binlog=0",
                "--skip-log-slave-updates",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ]);
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--ssl-cert={}", tls.cert.display()))
                .arg(format!("--ssl-key={}", tls.key.display()));
            if let Some(ca) = &tls.ca {
                cmd.arg(format!("--ssl-ca={}", ca.display()));
            }
        }
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(ClusterError::NotReady {
                        port: self.port,
                        log: format!(
                            "mariadbd exited with {status}; {}:\n{}",
                            self.data_dir.join("error.log").display(),
                            tail(&self.data_dir.join("error.log"))
                        ),
                    });
                }
            }
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(self.port)
                .user(Some(USER))
                .pass(Some(PASSWORD))
                .prefer_socket(false);
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(Duration::from_secs(2), mysql_async::Conn::new(opts)).await
            {
                // Another cluster's server may hold a port we were told was free: make sure
                // the server that answers is ours.
                let datadir: Option<String> =
                    c.query_first("SELECT @@datadir").await.ok().flatten();
                let _ = c.disconnect().await;
                let ours =
                    std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
                if datadir.is_some_and(|d| Path::new(d.trim_end_matches('/')) == ours) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(ClusterError::NotReady {
                    port: self.port,
                    log: format!(
                        "no connection within {READY_TIMEOUT:?}; {}:\n{}",
                        self.data_dir.join("error.log").display(),
                        tail(&self.data_dir.join("error.log"))
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start(
        data_dir: PathBuf,
        server_id: usize,
        tls: Option<ServerTls>,
    ) -> Result<MariaDbServer, ClusterError> {
        let d = data_dir.clone();
        tokio::task::spawn_blocking(move || Self::init(&d))
            .await
            .map_err(|e| ClusterError::Io(std::io::Error::other(e)))??;
        let mut last = None;
        // A port found free can be taken before mariadbd binds it: try a few.
        for _ in 0..3 {
            let mut s = MariaDbServer {
                port: free_port()?,
                data_dir: data_dir.clone(),
                child: None,
                server_id,
                tls: tls.clone(),
            };
            s.spawn()?;
            match s.wait_ready().await {
                Ok(()) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClusterError::MariadbNotFound))
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn user(&self) -> &str {
        USER
    }
    pub fn password(&self) -> &str {
        PASSWORD
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the server again on the same port and data dir.
    ///
    /// # Errors
    /// When it does not become ready.
    pub async fn restart(&mut self) -> Result<(), ClusterError> {
        self.kill();
        self.spawn()?;
        self.wait_ready().await
    }

    /// Stops the server with SIGTERM, waiting up to 10 s before SIGKILL.
    pub async fn stop(&mut self) {
        self.terminate();
        self.wait_stopped(Instant::now() + STOP_TIMEOUT).await;
    }

    /// Sends SIGTERM (a clean shutdown) if the process is still running.
    fn terminate(&mut self) {
        let Some(c) = self.child.as_mut() else {
            return;
        };
        // A child already reaped (by `is_running`) must not be signalled: its pid may have
        // been reused.
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = i32::try_from(c.id()) {
            // SAFETY: kill(2) on our own, not yet reaped child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit until `deadline`, then kills it.
    async fn wait_stopped(&mut self, deadline: Instant) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        loop {
            if !matches!(c.try_wait(), Ok(None)) {
                return;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl LocalCluster {
    /// Starts `n` servers in parallel, under `base_dir` (kept) or a temporary dir (removed on
    /// drop), and returns when all accept connections. When `tls/server-cert.pem` and
    /// `tls/server-key.pem` are in `base_dir`, the servers offer TLS with them.
    ///
    /// # Errors
    /// [`ClusterError::MariadbNotFound`] when MariaDB is not installed; startup failures with
    /// the tail of the server's error log.
    pub async fn start(n: usize, base_dir: Option<&Path>) -> Result<LocalCluster, ClusterError> {
        let tls = base_dir.and_then(ServerTls::beside);
        Self::start_with_tls(n, base_dir, tls).await
    }

    /// [`LocalCluster::start`] with servers that offer TLS with `tls` (plaintext only when
    /// `None`).
    ///
    /// # Errors
    /// As [`LocalCluster::start`].
    pub async fn start_with_tls(
        n: usize,
        base_dir: Option<&Path>,
        tls: Option<ServerTls>,
    ) -> Result<LocalCluster, ClusterError> {
        if mariadbd_binary().is_none() {
            return Err(ClusterError::MariadbNotFound);
        }
        let (tmp, base) = match base_dir {
            Some(b) => {
                std::fs::create_dir_all(b)?;
                (None, b.to_path_buf())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("tessera-mariadb-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let starts = (0..n)
            .map(|i| MariaDbServer::start(base.join(format!("server{i}")), i + 1, tls.clone()));
        let results = futures_util::future::join_all(starts).await;
        let mut servers = Vec::with_capacity(n);
        let mut first_err = None;
        for r in results {
            match r {
                Ok(s) => servers.push(s),
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            // Dropping `servers` kills the ones that did start.
            return Err(e);
        }
        Ok(LocalCluster { servers, _tmp: tmp })
    }

    pub fn servers(&self) -> &[MariaDbServer] {
        &self.servers
    }

    pub fn server_mut(&mut self, i: usize) -> Option<&mut MariaDbServer> {
        self.servers.get_mut(i)
    }

    /// Stops every server gracefully: SIGTERM to all at once, then up to 10 s for them to
    /// exit before SIGKILL.
    pub async fn shutdown(mut self) {
        for s in &mut self.servers {
            s.terminate();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for s in &mut self.servers {
            s.wait_stopped(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn select_one(s: &MariaDbServer) -> anyhow::Result<i64> {
        let opts = mysql_async::Opts::from_url(&s.url())?;
        let mut conn = mysql_async::Conn::new(opts).await?;
        let one: Option<i64> = conn.query_first("SELECT 1").await?;
        conn.disconnect().await?;
        Ok(one.unwrap_or_default())
    }

    #[tokio::test]
    async fn servers_start_die_and_restart() {
        let mut c = LocalCluster::start(2, None).await.expect("start");
        let ports: Vec<u16> = c.servers().iter().map(|s| s.port()).collect();
        assert_ne!(ports[0], ports[1]);
        assert_ne!(c.servers()[0].data_dir(), c.servers()[1].data_dir());
        for s in c.servers() {
            assert_eq!(
                s.url(),
                format!("mysql://tessera:tessera@127.0.0.1:{}", s.port())
            );
            assert_eq!(select_one(s).await.expect("server answers"), 1);
        }

        let s0 = c.server_mut(0).expect("s0");
        s0.kill();
        assert!(!s0.is_running());
        assert!(
            select_one(&c.servers()[0]).await.is_err(),
            "killed server answers"
        );
        assert_eq!(select_one(&c.servers()[1]).await.expect("other server"), 1);

        let s0 = c.server_mut(0).expect("s0");
        s0.restart().await.expect("restart");
        assert!(s0.is_running());
        assert_eq!(s0.port(), ports[0], "restarted on the same port");
        assert_eq!(select_one(&c.servers()[0]).await.expect("restarted"), 1);

        let dir = c.servers()[0].data_dir().to_path_buf();
        c.shutdown().await;
        assert!(!dir.exists(), "temporary data dir removed");
    }

    #[test]
    fn missing_mariadbd_is_reported() {
        // An override naming a file that does not exist wins over PATH and /usr/sbin.
        assert_eq!(
            find_binary_in(
                Some("/nonexistent/mariadbd".into()),
                std::env::var_os("PATH"),
                &["/usr/sbin"],
                &["mariadbd", "mysqld"],
            ),
            None
        );
        // Nothing on an empty PATH.
        assert_eq!(
            find_binary_in(None, Some("".into()), &[], &["mariadbd", "mysqld"]),
            None
        );
        assert_eq!(
            ClusterError::MariadbNotFound.to_string(),
            "mariadbd not found; install it with: sudo apt-get install mariadb-server (Debian/Ubuntu)"
        );
    }

    /// `LocalCluster::start` with `TESSERA_MARIADBD` naming a nonexistent binary, in a child
    /// process (this test binary again), so the variable is not set under the other tests.
    #[test]
    fn start_without_mariadbd_fails_with_install_hint() {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "localcluster::tests::start_with_env_override",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MARIADBD_ENV, "/nonexistent/mariadbd")
            .output()
            .expect("run child");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(text.contains("1 passed"), "child test did not run:\n{text}");
    }

    #[tokio::test]
    #[ignore = "run by start_without_mariadbd_fails_with_install_hint with TESSERA_MARIADBD set"]
    async fn start_with_env_override() {
        if std::env::var_os(MARIADBD_ENV).is_none() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        match LocalCluster::start(1, Some(tmp.path())).await {
            Err(e @ ClusterError::MariadbNotFound) => {
                assert!(e
                    .to_string()
                    .contains("sudo apt-get install mariadb-server"));
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("started without mariadbd"),
        }
    }
}
