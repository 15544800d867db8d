//! `tessera status`: the status page's overview, in the terminal.

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A router's admin endpoint (`host:port`).
    #[arg(long, env = "TESSERA_ADMIN", default_value = "127.0.0.1:15000")]
    admin: String,
    /// Print the raw JSON instead.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let url = format!("http://{}/overview", a.admin);
    let d: Value = tessera_topo::tls::http_client(None)?
        .build()?
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("asking the router at {}", a.admin))?
        .json()
        .await
        .with_context(|| format!("reading {url}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The tables `tessera movetables` moves, as text: source, table, target, state, rows copied
/// of the source's estimate (the journal backlog: `tessera movetables status`).
fn render_movetables(v: &Value) -> String {
    let mut o = String::from("\nmovetables\n");
    match v.as_array() {
        Some(jobs) if !jobs.is_empty() => {
            for j in jobs {
                let p = &j["progress"];
                let copy = if p.is_null() {
                    "copy not started".to_string()
                } else if p["done"].as_bool().unwrap_or(false) {
                    format!("copied {} rows", n(&p["rows_copied"]))
                } else {
                    let done = n(&p["rows_copied"]);
                    let total = n(&p["rows_total"]).max(done).max(1);
                    let filled = ((done * 20) / total) as usize;
                    format!(
                        "[{}{}] {done}/~{} rows",
                        "#".repeat(filled),
                        "-".repeat(20 - filled),
                        n(&p["rows_total"])
                    )
                };
                o.push_str(&format!(
                    "  {:<28} -> {:<12} {:<9} {copy}\n",
                    format!("{}.{}", s(&j["from"]), s(&j["table"])),
                    s(&j["to"]),
                    s(&j["state"]),
                ));
            }
        }
        Some(_) | None if v.is_null() || v.is_array() => o.push_str("  none\n"),
        _ => o.push_str(&format!("  {}\n", s(&v["error"]))),
    }
    o
}

/// The overview as text.
pub fn render(d: &Value) -> String {
    let mut o = String::new();
    let r = &d["router"];
    let t = &r["topology"];
    o.push_str(&format!(
        "router {} at {}, {} connections; topology {} (revision {})\n",
        s(&r["id"]),
        s(&r["listen"]),
        n(&r["connections"]),
        if t["connected"].as_bool().unwrap_or(false) {
            "connected".to_string()
        } else {
            format!("UNREACHABLE: {}", s(&t["last_error"]))
        },
        n(&t["revision"])
    ));
    for ks in d["keyspaces"].as_array().into_iter().flatten() {
        let lss = ks["logical_shards"].as_array().cloned().unwrap_or_default();
        o.push_str(&format!(
            "\nkeyspace {} ({}, {} logical shards, epoch {})\n",
            s(&ks["name"]),
            if ks["sharded"].as_bool().unwrap_or(false) {
                "sharded"
            } else {
                "unsharded"
            },
            lss.len(),
            n(&ks["epoch"])
        ));
        let mut per: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for p in d["physical_shards"].as_array().into_iter().flatten() {
            per.insert(s(p), Vec::new());
        }
        for l in &lss {
            per.entry(s(&l["ps"])).or_default().push(l);
        }
        for (ps, v) in per {
            let rows: u64 = v.iter().map(|l| n(&l["rows"])).sum();
            let bytes: u64 = v.iter().map(|l| n(&l["bytes"])).sum();
            let moving: Vec<String> = v
                .iter()
                .filter(|l| l["state"] != "serving")
                .map(|l| format!("{} {} -> {}", n(&l["ls"]), s(&l["state"]), s(&l["peer"])))
                .collect();
            o.push_str(&format!(
                "  {ps:<10} {:>4} logical shards {:>12} rows {:>14} bytes{}\n",
                v.len(),
                rows,
                bytes,
                if moving.is_empty() {
                    String::new()
                } else {
                    format!("  moving: {}", moving.join(", "))
                }
            ));
        }
    }
    o.push_str("\njobs\n");
    match d["jobs"].as_array() {
        Some(jobs) if !jobs.is_empty() => {
            for j in jobs {
                o.push_str(&format!(
                    "  {} {} phase {}  journal backlog {}{}\n",
                    s(&j["id"]),
                    s(&j["keyspace"]),
                    s(&j["phase"]),
                    n(&j["journal_backlog"]),
                    j["stall_ms"]
                        .as_u64()
                        .map(|m| format!("  stall {m} ms"))
                        .unwrap_or_default()
                ));
                if let Some(tables) = j["tables"].as_object() {
                    for (t, p) in tables {
                        let total = n(&p["rows_total"]).max(1);
                        let done = n(&p["rows_copied"]);
                        let filled = ((done.min(total) * 20) / total) as usize;
                        o.push_str(&format!(
                            "    {t:<20} [{}{}] {done}/{} rows, {} rows/s\n",
                            "#".repeat(filled),
                            "-".repeat(20 - filled),
                            n(&p["rows_total"]),
                            n(&p["rows_per_sec"])
                        ));
                    }
                }
            }
        }
        Some(_) => o.push_str("  none\n"),
        None => o.push_str(&format!("  {}\n", s(&d["jobs"]["error"]))),
    }
    o.push_str(&render_movetables(&d["movetables"]));
    o.push_str("\nrouters\n");
    for rt in d["routers"].as_array().into_iter().flatten() {
        let epochs: Vec<String> = rt["epochs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, e)| format!("{k} {}", n(e)))
            .collect();
        o.push_str(&format!(
            "  {:<28} {:<22} epochs: {}\n",
            s(&rt["id"]),
            s(&rt["listen"]),
            epochs.join(", ")
        ));
    }
    o.push_str("\ntopology nodes\n");
    let nodes = d["topo_nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        o.push_str("  in-process store\n");
    }
    for nd in nodes {
        if nd["error"].is_string() {
            o.push_str(&format!(
                "  {:<28} unreachable: {}\n",
                s(&nd["endpoint"]),
                s(&nd["error"])
            ));
        } else {
            let st = &nd["status"];
            o.push_str(&format!(
                "  {:<28} id {} {:<9} term {} applied {}\n",
                s(&nd["endpoint"]),
                n(&st["id"]),
                s(&st["role"]),
                n(&st["term"]),
                n(&st["applied"])
            ));
        }
    }
    o.push_str("\ntop queries\n");
    for q in d["top_queries"].as_array().into_iter().flatten().take(10) {
        let count = n(&q["count"]).max(1);
        let fp = s(&q["fingerprint"]);
        let fp: String = fp.chars().take(90).collect();
        o.push_str(&format!(
            "  {:>8}x {:>8.2} ms avg  {:<8} {fp}\n",
            n(&q["count"]),
            q["total_ms"].as_f64().unwrap_or(0.0) / count as f64,
            s(&q["route"]),
        ));
    }
    let sh = &d["shadow"];
    o.push_str(&format!(
        "\nresult shadow: compared {}, matched {}, mismatched {}\n",
        n(&sh["compared"]),
        n(&sh["matched"]),
        n(&sh["mismatched"])
    ));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movetables_show_state_and_rows_copied() {
        let d = serde_json::json!([
            {"from": "legacy", "table": "orders", "to": "shop", "state": "copying",
             "progress": {"to": "shop", "rows_copied": 500, "rows_total": 1000, "done": false}},
            {"from": "legacy", "table": "kv", "to": "shop", "state": "moved",
             "progress": {"to": "shop", "rows_copied": 3, "rows_total": 3, "done": true}},
            {"from": "legacy", "table": "pairs", "to": "shop", "state": "copying"},
        ]);
        let o = render_movetables(&d);
        let line = |t: &str| {
            o.lines()
                .find(|l| l.contains(t))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            line("legacy.orders").contains("copying")
                && line("legacy.orders").contains("[##########----------] 500/~1000 rows"),
            "{o}"
        );
        assert!(
            line("legacy.kv").contains("moved") && line("legacy.kv").contains("copied 3 rows"),
            "{o}"
        );
        assert!(line("legacy.pairs").contains("copy not started"), "{o}");
        assert!(render_movetables(&serde_json::json!([])).contains("none"));
        assert!(
            render_movetables(&serde_json::json!({"error": "topology did not answer in 2 s"}))
                .contains("did not answer")
        );
    }
}
