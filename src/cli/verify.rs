//! `tessera verify routing|report`: the routing shadow — plan every production statement a
//! second time against a candidate vschema, and read what would happen.

use super::flags::TopoFlags;
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
    /// Set (or clear) a result shadow: reads of KEYSPACE also run on TARGET and are compared.
    Results {
        /// The keyspace whose reads are checked (clients get its answers).
        #[arg(long, required_unless_present = "clear")]
        keyspace: Option<String>,
        /// The keyspace holding the second copy of the data.
        #[arg(long, required_unless_present = "clear")]
        target: Option<String>,
        /// Share of reads compared, 0.0 to 1.0.
        #[arg(long, default_value_t = 1.0)]
        sample: f64,
        /// Longest a shadow read may take (ms).
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Most shadow reads in flight per router.
        #[arg(long, default_value_t = 8)]
        max_concurrency: usize,
        /// A query fingerprint whose differences are accepted (repeatable).
        #[arg(long)]
        ignore: Vec<String>,
        /// Remove the result shadow of this keyspace.
        #[arg(long, conflicts_with_all = ["keyspace", "target"])]
        clear: Option<String>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Print a router's routing-shadow report, busiest query shapes first.
    Report {
        /// Print the result shadow's mismatches instead.
        #[arg(long)]
        results: bool,
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
        VerifyCmd::Results {
            keyspace,
            target,
            sample,
            timeout_ms,
            max_concurrency,
            ignore,
            clear,
            topo,
        } => {
            let t = topo.topo()?;
            if let Some(ks) = clear {
                if !t.delete_result_shadow(&ks).await? {
                    anyhow::bail!("keyspace {ks} has no result shadow");
                }
                println!("result shadow of keyspace {ks} removed");
                return Ok(());
            }
            let (Some(keyspace), Some(target)) = (keyspace, target) else {
                anyhow::bail!("give --keyspace and --target, or --clear KEYSPACE");
            };
            let spec = tessera_topo::ResultShadowSpec {
                keyspace,
                target,
                sample_rate: sample,
                timeout_ms,
                max_concurrency,
                ignore,
            };
            t.put_result_shadow(&spec).await?;
            println!(
                "result shadow set: {}% of reads of {} also run on {} and are compared (tessera verify report --results)",
                spec.sample_rate * 100.0,
                spec.keyspace,
                spec.target
            );
            Ok(())
        }
        VerifyCmd::Report {
            results,
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
            let client = tessera_topo::tls::http_client(None)?.build()?;
            let path = if results {
                "shadow/results"
            } else {
                "shadow/routing"
            };
            let v: serde_json::Value = client
                .get(format!("{base}/{path}"))
                .send()
                .await
                .with_context(|| format!("asking the router at {router}"))?
                .json()
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if results {
                print!("{}", render_results(&v, top));
            } else {
                print!("{}", render(&v, top));
            }
            if reset {
                let mut req = client.delete(format!("{base}/{path}"));
                if let Some(t) = tessera_topo::token::find(tessera_topo::token::TOKEN_ENV) {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await?;
                anyhow::ensure!(
                    r.status().is_success(),
                    "the router refused the reset ({}): the admin token is the topology token \
                     (TESSERA_TOPO_TOKEN or the token file)",
                    r.status()
                );
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

/// Renders the result shadow's report for a terminal.
pub fn render_results(v: &serde_json::Value, top: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "{} reads compared: {} matched, {} mismatched, {} ignored",
        n("compared"),
        n("matched"),
        n("mismatched"),
        n("ignored")
    );
    if let Some(sk) = v["skipped"].as_object() {
        for (why, c) in sk {
            let _ = writeln!(out, "  skipped ({why}): {}", c.as_u64().unwrap_or(0));
        }
    }
    let list = v["mismatches"].as_array().cloned().unwrap_or_default();
    for m in list.iter().take(top) {
        let _ = writeln!(
            out,
            "\n{:>6} x {}  [{}]",
            m["count"].as_u64().unwrap_or(0),
            m["fingerprint"].as_str().unwrap_or(""),
            m["kind"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "         last: {}",
            m["statement"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "         rows: primary {}, shadow {}",
            m["primary_rows"], m["shadow_rows"]
        );
        if let Some(d) = m["detail"].as_str() {
            let _ = writeln!(out, "         {d}");
        }
        for (label, key) in [
            ("only in primary", "only_in_primary"),
            ("only in shadow", "only_in_shadow"),
        ] {
            for r in m[key].as_array().cloned().unwrap_or_default() {
                let _ = writeln!(out, "         {label}: {r}");
            }
        }
    }
    if list.len() > top {
        let _ = writeln!(out, "\n... and {} more", list.len() - top);
    }
    out
}

impl VerifyCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            VerifyCmd::Routing { topo, .. } | VerifyCmd::Results { topo, .. } => Some(topo),
            VerifyCmd::Report { .. } => None,
        }
    }
}
