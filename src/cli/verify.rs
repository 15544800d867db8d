//! `tessera verify routing|report`: the routing shadow — plan every production statement a
//! second time against a candidate vschema, and read what would happen.

use super::TopoFlags;
use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum VerifyCmd {
    /// Set (or clear) the candidate vschema that routers plan every statement against.
    Routing {
        /// The candidate vschema (its keyspace is the one whose traffic is checked).
        #[arg(long, conflicts_with = "clear")]
        candidate: Option<std::path::PathBuf>,
        /// Remove the candidate of this keyspace.
        #[arg(long)]
        clear: Option<String>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Print a router's routing-shadow report, busiest query shapes first.
    Report {
        /// The router's admin endpoint.
        #[arg(long, default_value = "127.0.0.1:15000")]
        router: String,
        /// Print the JSON as served.
        #[arg(long)]
        json: bool,
        /// Show at most this many fingerprints per route.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Forget what has been recorded (after printing).
        #[arg(long)]
        reset: bool,
    },
}

pub async fn run(c: VerifyCmd) -> anyhow::Result<()> {
    match c {
        VerifyCmd::Routing {
            candidate,
            clear,
            topo,
        } => {
            let t = topo.topo()?;
            match (candidate, clear) {
                (Some(f), _) => {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    let v = tessera_topo::VSchema::from_yaml(&text)
                        .with_context(|| format!("in {}", f.display()))?;
                    t.put_candidate(&v).await?;
                    println!(
                        "candidate vschema for keyspace {} set; routers plan its traffic against it from now on (tessera verify report)",
                        v.keyspace
                    );
                }
                (None, Some(ks)) => {
                    if !t.delete_candidate(&ks).await? {
                        anyhow::bail!("keyspace {ks} has no candidate vschema");
                    }
                    println!("candidate vschema for keyspace {ks} removed");
                }
                (None, None) => anyhow::bail!("give --candidate FILE or --clear KEYSPACE"),
            }
            Ok(())
        }
        VerifyCmd::Report {
            router,
            json,
            top,
            reset,
        } => {
            let base = if router.starts_with("http") {
                router.clone()
            } else {
                format!("http://{router}")
            };
            let client = reqwest::Client::new();
            let v: serde_json::Value = client
                .get(format!("{base}/shadow/routing"))
                .send()
                .await
                .with_context(|| format!("asking the router at {router}"))?
                .json()
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render(&v, top));
            }
            if reset {
                client
                    .delete(format!("{base}/shadow/routing"))
                    .send()
                    .await?;
            }
            Ok(())
        }
    }
}

/// Renders the report for a terminal.
pub fn render(v: &serde_json::Value, top: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let total = v["statements"].as_u64().unwrap_or(0);
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            100.0 * n as f64 / total as f64
        }
    };
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "{total} statements, {} query shapes", entries.len());
    let order = [
        "one",
        "several",
        "reference",
        "any",
        "local",
        "scatter",
        "unsupported",
    ];
    for route in order {
        let n = v["by_route"][route].as_u64().unwrap_or(0);
        let shapes = entries.iter().filter(|e| e["route"] == route).count();
        if n > 0 {
            let what = match route {
                "one" => "single logical shard",
                "several" => "several logical shards",
                "reference" => "reference tables",
                "any" => "no table",
                "local" => "answered by the router",
                "scatter" => "every logical shard",
                _ => "refused",
            };
            let _ = writeln!(
                out,
                "  {:>6.1}%  {route:<12} {shapes:>5} shapes  ({what})",
                pct(n)
            );
        }
    }
    for route in [
        "unsupported",
        "scatter",
        "several",
        "one",
        "reference",
        "any",
        "local",
    ] {
        let list: Vec<&serde_json::Value> =
            entries.iter().filter(|e| e["route"] == route).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{route}:");
        for e in list.iter().take(top) {
            let fp = e["fingerprint"].as_str().unwrap_or("");
            let fp: String = fp.chars().take(110).collect();
            let merged = if e["merged"] == true { " [merged]" } else { "" };
            let _ = writeln!(
                out,
                "  {:>8}  {fp}{merged}",
                e["count"].as_u64().unwrap_or(0)
            );
            if let Some(r) = e["reason"].as_str() {
                let _ = writeln!(out, "            why: {r}");
            }
        }
        if list.len() > top {
            let _ = writeln!(out, "  … and {} more", list.len() - top);
        }
    }
    let dropped = v["dropped"].as_u64().unwrap_or(0);
    if dropped > 0 {
        let _ = writeln!(
            out,
            "\n{dropped} statements were not checked (the shadow queue was full)"
        );
    }
    out
}
