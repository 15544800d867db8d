//! `tessera topo status|get|put|list|watch`: a client of the topology service.

use super::TopoFlags;
use clap::Subcommand;
use tessera_topo::{Condition, Store};

#[derive(Subcommand, Debug)]
pub enum TopoCmd {
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
