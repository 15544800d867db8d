//! `tessera topo status|get|put|list|watch`: a client of the topology service.

use super::TopoFlags;
use clap::Subcommand;
use tessera_topo::{Condition, Store};

#[derive(Subcommand, Debug)]
pub enum TopoCmd {
    /// Run a topology node in the foreground.
    Serve {
        /// Where clients (routers, the CLI, curl) connect. Loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:15999")]
        listen: std::net::SocketAddr,
        /// Where the node keeps its data.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// Environment variable holding a shared token that every request must carry.
        #[arg(long)]
        token_env: Option<String>,
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
    Ok(tessera_topo::HttpStore::new(
        std::slice::from_ref(&t.endpoints),
        std::env::var(&t.token_env).ok(),
    )?)
}

pub async fn run(c: TopoCmd) -> anyhow::Result<()> {
    match c {
        TopoCmd::Serve {
            listen,
            data_dir,
            token_env,
        } => {
            let token = match &token_env {
                Some(v) => Some(std::env::var(v).map_err(|_| {
                    anyhow::anyhow!("--token-env: environment variable {v} is not set")
                })?),
                None => None,
            };
            let store: std::sync::Arc<dyn Store> =
                std::sync::Arc::new(tessera_topo::FileStore::open(&data_dir)?);
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
            let addr = l.local_addr()?;
            let app = tessera_topo::http::server::router(store, token, None);
            println!(
                "ready: topology node on {addr}, data in {}",
                data_dir.display()
            );
            tessera_topo::http::server::serve(l, app, super::shutdown_signal()).await?;
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
