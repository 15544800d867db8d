//! `tessera vschema apply|show`.

use super::flags::TopoFlags;
use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum VschemaCmd {
    /// Validate a vschema file and apply it; a new keyspace is placed and its schemas created.
    Apply {
        file: std::path::PathBuf,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Print a keyspace's vschema and placement.
    Show {
        keyspace: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

pub async fn run(c: VschemaCmd) -> anyhow::Result<()> {
    match c {
        VschemaCmd::Apply { file, topo } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let v = tessera_topo::VSchema::from_yaml(&text)
                .with_context(|| format!("in {}", file.display()))?;
            let p = super::keyspace::apply_vschema(&topo.topo()?, &v).await?;
            println!(
                "applied vschema for keyspace {} ({} logical shards, {} tables) at placement epoch {}",
                v.keyspace,
                v.logical_shard_count(),
                v.tables.len(),
                p.epoch
            );
            report_keys(&topo.topo()?, &v.keyspace).await;
            Ok(())
        }
        VschemaCmd::Show { keyspace, topo } => {
            let t = topo.topo()?;
            let (ks, _) = t
                .get_keyspace(&keyspace)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no keyspace {keyspace}"))?;
            print!("{}", serde_yaml::to_string(&ks.vschema)?);
            if let Some((p, _)) = t.get_placement(&keyspace).await? {
                println!("# placement epoch {}", p.epoch);
                let mut by_ps: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
                for (i, e) in p.shards.iter().enumerate() {
                    by_ps.entry(e.ps.as_str()).or_default().push(i);
                }
                for (ps, ls) in by_ps {
                    println!("# {ps}: {} logical shards {:?}", ls.len(), ls);
                }
            }
            report_keys(&t, &keyspace).await;
            Ok(())
        }
    }
}

/// Prints the unique keys of the keyspace's tables that lack the shard key (tables created
/// later are checked by the router when a statement needs it).
async fn report_keys(topo: &tessera_topo::Topo, keyspace: &str) {
    match super::keyspace::uncovered_unique_keys(topo, keyspace).await {
        Ok(lines) => {
            for l in lines {
                println!("# warning: {l}");
            }
        }
        Err(e) => println!("# could not read the tables' unique keys: {e:#}"),
    }
}

impl VschemaCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            VschemaCmd::Apply { topo, .. } => Some(topo),
            VschemaCmd::Show { .. } => None,
        }
    }
}
