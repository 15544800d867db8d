//! `tessera up`: a whole local cluster in the foreground — MariaDB servers, an embedded
//! topology store served on loopback, and a router — stopped cleanly on Ctrl-C or SIGTERM.

use crate::localcluster::{LocalCluster, ServerTls};
use crate::localtls::LocalTls;
use anyhow::Context;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tessera_router::config::{RouterConfig, TlsConfig, UserConfig};
use tessera_router::Router;
use tessera_topo::{PhysicalShard, Store, Topo, VSchema};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Number of MariaDB servers (physical shards).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Logical shards of the keyspace (a power of two), when no --vschema is given.
    #[arg(long, default_value_t = 64)]
    logical_shards: u32,
    /// Write a query log (JSON lines) to this file.
    #[arg(long)]
    query_log: Option<PathBuf>,
    /// Share of statements the query log keeps (0.0 to 1.0).
    #[arg(long, default_value_t = 1.0)]
    query_log_sample: f64,
    /// Statements at least this slow (ms) are always logged.
    #[arg(long)]
    query_log_slow_ms: Option<u64>,
    /// Extra MariaDB servers started but not registered, to add later with
    /// `tessera shard add` (for trying a reshard).
    #[arg(long, default_value_t = 0)]
    spare_servers: usize,
    /// Where applications connect.
    #[arg(long, default_value_t = 15306)]
    port: u16,
    /// The router's admin endpoint (`/status`, `/metrics`).
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_listen: SocketAddr,
    /// Topology nodes to run (1, 3 or 5), in this process.
    #[arg(long, default_value_t = 1)]
    topo_nodes: usize,
    /// Where the (first) topology node listens.
    #[arg(long, default_value = "127.0.0.1:15999")]
    topo_listen: SocketAddr,
    /// Keep MariaDB and topology data here (kept after exit); a temporary dir otherwise.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keyspace to create when no --vschema is given.
    #[arg(long, default_value = "demo")]
    keyspace: String,
    /// A vschema file to apply at start.
    #[arg(long)]
    vschema: Option<PathBuf>,
    /// SQL to run through the router once it is up (statements end with `;` at a line end).
    #[arg(long)]
    sample_data: Option<PathBuf>,
    /// The router user applications log in as.
    #[arg(long, default_value = "tessera")]
    user: String,
    /// That user's password.
    #[arg(long, default_value = "tessera")]
    password: String,
    /// Make that user an admin: statements on a whole server (`SET GLOBAL`, `FLUSH`, users
    /// and grants, `mysql.*`) run on the physical shard of its current unsharded keyspace
    /// instead of being refused.
    #[arg(long)]
    admin: bool,
    /// Plaintext on every hop: make no certificates, and start MariaDB and the router without
    /// TLS.
    #[arg(long)]
    no_tls: bool,
    /// Refuse clients that do not use TLS (the router's `require_secure_transport`).
    #[arg(long, conflicts_with = "no_tls")]
    require_tls: bool,
}

pub async fn run(a: UpArgs) -> anyhow::Result<()> {
    let vschema = match &a.vschema {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            VSchema::from_yaml(&text).with_context(|| format!("in {}", f.display()))?
        }
        None => {
            let v = VSchema {
                keyspace: a.keyspace.clone(),
                sharded: true,
                logical_shards: Some(a.logical_shards),
                tables: Default::default(),
                moved_tables: Default::default(),
            };
            v.validate()?;
            v
        }
    };
    let tmp;
    let base: PathBuf = match &a.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("tessera-up-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    // TLS on every hop unless told otherwise: a CA of this data dir's own signs the MariaDB
    // servers' certificate and the router's.
    let tls = if a.no_tls {
        None
    } else {
        let dir = base.join("tls");
        let (tls, notes) = crate::localtls::ensure(&dir)
            .with_context(|| format!("making the TLS certificates in {}", dir.display()))?;
        for n in notes {
            eprintln!("{n}");
        }
        Some(tls)
    };
    eprintln!("starting {} MariaDB servers…", a.shards + a.spare_servers);
    let server_tls = tls.as_ref().map(|t| ServerTls {
        cert: t.server_cert(),
        key: t.server_key(),
        ca: Some(t.ca_cert()),
    });
    let cluster = LocalCluster::start_with_tls(
        a.shards + a.spare_servers,
        Some(&base.join("mysql")),
        server_tls,
    )
    .await?;
    let result = serve(&a, &vschema, &base, tls.as_ref(), &cluster).await;
    eprintln!("stopping MariaDB servers…");
    cluster.shutdown().await;
    result
}

async fn serve(
    a: &UpArgs,
    vschema: &VSchema,
    base: &std::path::Path,
    tls: Option<&LocalTls>,
    cluster: &LocalCluster,
) -> anyhow::Result<()> {
    // The topology service: a Raft group of `--topo-nodes` nodes in this process, the first
    // on `--topo-listen`, each with its own data dir.
    let n = a.topo_nodes;
    if ![1, 3, 5].contains(&n) {
        anyhow::bail!("--topo-nodes must be 1, 3 or 5");
    }
    let mut listeners = Vec::with_capacity(n);
    for i in 0..n {
        let addr = if i == 0 {
            a.topo_listen
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the topology service to {addr}"))?;
        listeners.push(l);
    }
    let mut peers = std::collections::BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        peers.insert(i as u64 + 1, l.local_addr()?);
    }
    // Every request to the topology service (and every change through the router's admin
    // endpoint) carries the shared token, kept in a file the command line finds by itself.
    let token = tessera_topo::token::ensure(tessera_topo::token::TOKEN_ENV).with_context(|| {
        format!(
            "making the token file {}",
            tessera_topo::token::default_path().display()
        )
    })?;
    // With TLS, the topology nodes serve HTTPS with the servers' certificate and verify each
    // other against the local CA; the CA is left beside the token file, where the command line
    // finds it, for as long as this cluster runs.
    let node_tls = match tls {
        Some(t) => {
            let read = |p: PathBuf| {
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
            };
            Some(tessera_topo::tls::NodeTls {
                cert_pem: read(t.server_cert())?,
                key_pem: read(t.server_key())?,
                ca_pem: t.ca_pem.clone(),
                mutual: false,
            })
        }
        None => None,
    };
    let _ca_file = match tls {
        Some(t) => Some(LeftCa::write(
            &t.ca_pem,
            &peers.values().map(ToString::to_string).collect::<Vec<_>>(),
        )?),
        None => None,
    };
    let client_tls = node_tls.as_ref().map(|t| tessera_topo::tls::ClientTls {
        ca_pem: t.ca_pem.clone(),
        identity: None,
    });
    let mut nodes = Vec::with_capacity(n);
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let mut cfg = tessera_topo::RaftConfig::new(
            id,
            peers.clone(),
            peers[&id],
            base.join(format!("topo-{id}")),
        );
        cfg.token = Some(token.clone());
        cfg.tls = node_tls.clone();
        nodes.push(tessera_topo::raft::start_on(cfg, l).await?);
    }
    let endpoints: Vec<String> = peers.values().map(|a| a.to_string()).collect();
    let topo_addr = peers[&1];
    let store: Arc<dyn Store> = Arc::new(tessera_topo::HttpStore::with_tls(
        &endpoints,
        Some(token.clone()),
        client_tls,
    )?);
    let topo = Topo::new(store.clone());
    // Wait for a leader.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Err(e) = store
        .put("/tessera/up", "1", tessera_topo::Condition::None, None)
        .await
    {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the topology service elected no leader: {e}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Spare servers are added by `tessera shard add --password-env TESSERA_SPARE_PASSWORD`;
    // this process's router resolves the password from its own environment.
    if let Some(s) = cluster.servers().get(a.shards) {
        std::env::set_var("TESSERA_SPARE_PASSWORD", s.password());
        std::env::set_var(
            "TESSERA_SPARE_DATA_PASSWORD",
            crate::localcluster::DATA_PASSWORD,
        );
    }
    let result = async {
        for (i, s) in cluster.servers().iter().enumerate().take(a.shards) {
            topo.put_physical_shard(&PhysicalShard {
                name: format!("ps{i}"),
                host: s.host().to_string(),
                port: s.port(),
                user: s.user().to_string(),
                password: Some(s.password().to_string()),
                password_env: None,
                weight: 1,
                tls_ca: tls.map(|t| t.ca_pem.clone()),
                // Applications are served with an account that holds the keyspaces' schemas
                // only (an admin router user's sessions use the control account).
                data_account: Some(tessera_topo::DataAccount {
                    user: crate::localcluster::DATA_USER.to_string(),
                    password: Some(crate::localcluster::DATA_PASSWORD.to_string()),
                    password_env: None,
                }),
            })
            .await?;
        }
        let placement = super::keyspace::apply_vschema(&topo, vschema).await?;
        let cfg = RouterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], a.port)),
            users: vec![UserConfig {
                admin: a.admin,
                ..UserConfig::with_password(&a.user, Some(&a.password))
            }],
            default_keyspace: None,
            admin_listen: Some(a.admin_listen),
            query_log: a.query_log.clone().map(|path| tessera_router::config::QueryLogConfig {
                path,
                sample_rate: a.query_log_sample,
                slow_ms: a.query_log_slow_ms,
            }),
            tls: tls.map(|t| TlsConfig {
                cert: t.router_cert(),
                key: t.router_key(),
            }),
            require_secure_transport: a.require_tls,
            ..RouterConfig::from_yaml("users: [{name: x}]\n")?
        };
        let router = Router::new(cfg, topo.clone()).start().await.with_context(|| format!("binding the router to port {}", a.port))?;
        let raddr = router.local_addr();
        let r = async {
            if let Some(f) = &a.sample_data {
                load_sample(raddr, &a.user, &a.password, &vschema.keyspace, tls.map(|t| t.ca_pem.as_str()), f).await?;
            }
            println!(
                "ready: router {raddr}, topology {topo_addr} ({} node{}), {} physical shards, keyspace {} with {} logical shards (epoch {})",
                endpoints.len(),
                if endpoints.len() == 1 { "" } else { "s" },
                a.shards,
                vschema.keyspace,
                placement.shards.len(),
                placement.epoch
            );
            match tls {
                Some(t) => {
                    println!(
                        "connect: mariadb -h 127.0.0.1 -P {} -u {} -p{} --ssl-ca {} --ssl-verify-server-cert {}",
                        raddr.port(), a.user, a.password, t.ca_cert().display(), vschema.keyspace
                    );
                    println!(
                        "tls: on every hop; clients {} TLS and verify the router against {} (the router verifies MariaDB against it too; --no-tls for plaintext)",
                        if a.require_tls { "must use" } else { "may use" },
                        t.ca_cert().display()
                    );
                }
                None => println!("connect: mariadb -h 127.0.0.1 -P {} -u {} -p{} {}", raddr.port(), a.user, a.password, vschema.keyspace),
            }
            println!("topology: tessera vschema show {} --topo {}", vschema.keyspace, endpoints.join(","));
            if let Some(ca) = tessera_topo::tls::ca_path_for(&topo_addr.to_string()).filter(|_| tls.is_some()) {
                println!(
                    "topology tls: HTTPS between nodes and for every client, verified against {} (the tessera commands find it there while this cluster runs; --topo-ca elsewhere)",
                    ca.display()
                );
            }
            println!(
                "topology token: {} (every request needs it; the tessera commands read it from there)",
                tessera_topo::token::default_path().display()
            );
            let tls_ca = tls
                .map(|t| format!(" --tls-ca {}", t.ca_cert().display()))
                .unwrap_or_default();
            // The spare's data account, as the other servers'.
            let data_env = format!(" TESSERA_SPARE_DATA_PASSWORD={}", crate::localcluster::DATA_PASSWORD);
            let data = format!(
                " --data-user {} --data-password-env TESSERA_SPARE_DATA_PASSWORD",
                crate::localcluster::DATA_USER
            );
            for (i, s) in cluster.servers().iter().enumerate().skip(a.shards) {
                println!(
                    "spare server: {}:{} (user {}, password in TESSERA_SPARE_PASSWORD={}); add it with: TESSERA_SPARE_PASSWORD={}{data_env} tessera shard add ps{i} --mysql {}:{} --user {} --password-env TESSERA_SPARE_PASSWORD{data}{tls_ca} --topo {}",
                    s.host(), s.port(), s.user(), s.password(), s.password(), s.host(), s.port(), s.user(), endpoints.join(",")
                );
            }
            if let Some(admin) = router.admin_addr() {
                println!("admin: http://{admin}/status and http://{admin}/metrics");
            }
            super::flags::shutdown_signal().await;
            eprintln!("shutting down…");
            Ok::<(), anyhow::Error>(())
        }
        .await;
        router.shutdown().await;
        r
    }
    .await;
    for node in nodes {
        node.shutdown().await;
    }
    result
}

/// Runs the statements of `file` through the router (over TLS verified against `tls_ca` when
/// given).
async fn load_sample(
    addr: SocketAddr,
    user: &str,
    password: &str,
    keyspace: &str,
    tls_ca: Option<&str>,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let opts = tessera_shardmove::server_opts(
        &addr.ip().to_string(),
        addr.port(),
        user,
        Some(password.to_string()),
        tls_ca,
    )
    .db_name(Some(keyspace));
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .context("connecting to the router")?;
    let mut n = 0;
    for stmt in split_statements(&text) {
        conn.query_drop(&stmt)
            .await
            .with_context(|| format!("running {}", stmt.chars().take(80).collect::<String>()))?;
        n += 1;
    }
    conn.disconnect().await?;
    eprintln!("loaded {} statements from {}", n, file.display());
    Ok(())
}

/// Splits SQL text at `;` that ends a line, skipping `--` comment lines.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("--") || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let s = cur.trim().trim_end_matches(';').trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().trim_end_matches(';').trim().to_string();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// The topology CA left beside the token file while the cluster runs, one file per node
/// address; removed when dropped, unless another cluster has put its own there since.
struct LeftCa {
    paths: Vec<PathBuf>,
    pem: String,
}

impl LeftCa {
    fn write(pem: &str, addrs: &[String]) -> anyhow::Result<LeftCa> {
        let mut left = LeftCa {
            paths: Vec::new(),
            pem: pem.to_string(),
        };
        for addr in addrs {
            let path = tessera_topo::tls::ca_path_for(addr)
                .context("no directory for the topology CA file")?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("making {}", dir.display()))?;
            }
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            left.paths.push(path);
        }
        Ok(left)
    }
}

impl Drop for LeftCa {
    fn drop(&mut self) {
        for path in &self.paths {
            if std::fs::read_to_string(path).is_ok_and(|p| p == self.pem) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
