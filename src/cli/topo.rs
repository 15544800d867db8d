//! `tessera topo status|get|put|list|watch`: a client of the topology service.

use super::flags::TopoFlags;
use anyhow::Context;
use clap::Subcommand;
use tessera_topo::{Condition, Store};

#[derive(Subcommand, Debug)]
pub enum TopoCmd {
    /// Run a topology node in the foreground (a member of a Raft group).
    Serve {
        /// This node's id (1, 2, 3, …).
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// Every voter, this node included: `1=127.0.0.1:2381,2=…,3=…`. Without it the node
        /// is a group of one.
        #[arg(long)]
        peers: Option<String>,
        /// Where clients (routers, the CLI, curl) and peers connect. Loopback unless you say
        /// otherwise.
        #[arg(long, default_value = "127.0.0.1:15999")]
        listen: std::net::SocketAddr,
        /// Where the node keeps its log, hard state and snapshots.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// Environment variable holding the shared token that every request must carry.
        /// Without it, the token file (made with a new random token on first start; see
        /// docs/operations.md).
        #[arg(long)]
        token_env: Option<String>,
        /// Serve without a token: anyone who can reach the node reads and writes everything.
        #[arg(long, conflicts_with = "token_env")]
        open: bool,
        /// Serve HTTPS with this certificate (PEM, chain first), and reach peers over HTTPS.
        #[arg(long, requires_all = ["tls_key", "tls_ca"])]
        tls_cert: Option<std::path::PathBuf>,
        /// The certificate's key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// The CA (PEM) that signed the peers' certificates: peers are verified against it.
        #[arg(long, requires = "tls_cert")]
        tls_ca: Option<std::path::PathBuf>,
        /// Mutual TLS: every client and peer must present a certificate the CA signed.
        #[arg(long, requires = "tls_cert")]
        tls_mutual: bool,
        /// Take a snapshot (and compact the log) every this many applied entries.
        #[arg(long, default_value_t = tessera_topo::raft::config::DEFAULT_SNAPSHOT_EVERY)]
        snapshot_every: u64,
    },
    /// Show each node's role, term, commit and applied index.
    Status {
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Print one key.
    Get {
        key: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Write one key (optionally only if its revision is still REV; 0: only if absent).
    Put {
        key: String,
        value: String,
        #[arg(long)]
        if_revision: Option<u64>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// List keys under a prefix.
    List {
        #[arg(default_value = "/")]
        prefix: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Print every change under a prefix as it happens.
    Watch {
        #[arg(default_value = "/")]
        prefix: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

fn store(t: &TopoFlags) -> anyhow::Result<tessera_topo::HttpStore> {
    t.store()
}

pub async fn run(c: TopoCmd) -> anyhow::Result<()> {
    match c {
        TopoCmd::Serve {
            id,
            peers,
            listen,
            data_dir,
            token_env,
            open,
            tls_cert,
            tls_key,
            tls_ca,
            tls_mutual,
            snapshot_every,
        } => {
            let token = match &token_env {
                Some(v) => Some(std::env::var(v).map_err(|_| {
                    anyhow::anyhow!("--token-env: environment variable {v} is not set")
                })?),
                None if open => None,
                None => Some(
                    tessera_topo::token::ensure(tessera_topo::token::TOKEN_ENV).with_context(
                        || {
                            format!(
                                "making the token file {}",
                                tessera_topo::token::default_path().display()
                            )
                        },
                    )?,
                ),
            };
            let peers = match peers {
                Some(p) => parse_peers(&p)?,
                None => std::collections::BTreeMap::from([(id, listen)]),
            };
            let mut cfg = tessera_topo::raft::RaftConfig::new(id, peers, listen, &data_dir);
            cfg.token = token;
            if let (Some(cert), Some(key), Some(ca)) = (&tls_cert, &tls_key, &tls_ca) {
                let read = |p: &std::path::Path| {
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
                };
                cfg.tls = Some(tessera_topo::tls::NodeTls {
                    cert_pem: read(cert)?,
                    key_pem: read(key)?,
                    ca_pem: read(ca)?,
                    mutual: tls_mutual,
                });
            }
            cfg.snapshot_every = snapshot_every;
            let node = tessera_topo::raft::start(cfg).await?;
            println!(
                "ready: topology node {id} on {}, data in {}",
                node.local_addr(),
                data_dir.display()
            );
            super::flags::shutdown_signal().await;
            node.shutdown().await;
            Ok(())
        }
        TopoCmd::Status { topo } => {
            for (ep, r) in store(&topo)?.status_all().await {
                match r {
                    Ok(v) => println!("{ep}  {v}"),
                    Err(e) => println!("{ep}  unreachable: {e}"),
                }
            }
            Ok(())
        }
        TopoCmd::Get { key, topo } => {
            match store(&topo)?.get(&key).await? {
                Some(kv) => println!("{}", serde_json::to_string_pretty(&kv)?),
                None => anyhow::bail!("no key {key}"),
            }
            Ok(())
        }
        TopoCmd::Put {
            key,
            value,
            if_revision,
            topo,
        } => {
            let cond = if_revision.map_or(Condition::None, Condition::ModRevision);
            let rev = store(&topo)?.put(&key, &value, cond, None).await?;
            println!("revision {rev}");
            Ok(())
        }
        TopoCmd::List { prefix, topo } => {
            let (kvs, rev) = store(&topo)?.list(&prefix).await?;
            for kv in kvs {
                println!("{} (rev {}) = {}", kv.key, kv.mod_revision, kv.value);
            }
            println!("# revision {rev}");
            Ok(())
        }
        TopoCmd::Watch { prefix, topo } => {
            let s = store(&topo)?;
            let rev = s.revision().await?;
            let mut w = s.watch(&prefix, rev).await?;
            while let Some(ev) = w.recv().await {
                let ev = ev?;
                println!(
                    "{} {:?} {} = {}",
                    ev.revision, ev.kind, ev.kv.key, ev.kv.value
                );
            }
            Ok(())
        }
    }
}

/// Parses `1=127.0.0.1:2381,2=127.0.0.1:2382`.
///
/// # Errors
/// Names the entry that does not parse.
pub fn parse_peers(
    s: &str,
) -> anyhow::Result<std::collections::BTreeMap<u64, std::net::SocketAddr>> {
    let mut out = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--peers: {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--peers: {id:?} is not a node id"))?;
        let addr: std::net::SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--peers: {addr:?} is not HOST:PORT"))?;
        if out.insert(id, addr).is_some() {
            anyhow::bail!("--peers: node {id} is listed twice");
        }
    }
    if out.is_empty() {
        anyhow::bail!("--peers: no peers given");
    }
    Ok(out)
}

impl TopoCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            TopoCmd::Put { topo, .. } => Some(topo),
            _ => None,
        }
    }
}
