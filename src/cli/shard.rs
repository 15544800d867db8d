//! `tessera shard add|list|remove`: physical shards in the topology.

use super::flags::TopoFlags;
use anyhow::Context;
use clap::Subcommand;
use mysql_async::prelude::Queryable;
use tessera_topo::PhysicalShard;

#[derive(Subcommand, Debug)]
pub enum ShardCmd {
    /// Register a MySQL/MariaDB primary as a physical shard (checked before it is stored).
    Add {
        name: String,
        /// `host:port`
        #[arg(long)]
        mysql: String,
        #[arg(long)]
        user: String,
        /// Environment variable holding the password (read here, and by routers).
        #[arg(long)]
        password_env: Option<String>,
        /// Placement weight.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// The CA certificate (PEM file) that signed the server's certificate: every
        /// connection to it is then TLS, verified against this CA and the host name.
        #[arg(long)]
        tls_ca: Option<std::path::PathBuf>,
        /// The account routers serve applications with (the data path): it needs no
        /// privilege of its own; every keyspace's schemas are granted to it here and by each
        /// `vschema apply`. `--user` then stays the control plane's account (moves,
        /// verification, grants), which needs all privileges with GRANT OPTION.
        #[arg(long, requires = "data_password_env")]
        data_user: Option<String>,
        /// Environment variable holding the data account's password (read here, and by
        /// routers).
        #[arg(long, requires = "data_user")]
        data_password_env: Option<String>,
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// List physical shards with their logical shards.
    List {
        #[command(flatten)]
        topo: TopoFlags,
    },
    /// Remove a physical shard that holds no logical shards.
    Remove {
        name: String,
        #[command(flatten)]
        topo: TopoFlags,
    },
}

pub async fn run(c: ShardCmd) -> anyhow::Result<()> {
    match c {
        ShardCmd::Add {
            name,
            mysql,
            user,
            password_env,
            weight,
            tls_ca,
            data_user,
            data_password_env,
            topo,
        } => {
            let tls_ca = match tls_ca {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?,
                ),
                None => None,
            };
            let (host, port) = mysql
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
                .ok_or_else(|| anyhow::anyhow!("--mysql must be host:port, got {mysql}"))?;
            let ps = PhysicalShard {
                name: name.clone(),
                host,
                port,
                user,
                password: None,
                password_env,
                weight,
                tls_ca,
                data_account: data_user.map(|user| tessera_topo::DataAccount {
                    user,
                    password: None,
                    password_env: data_password_env,
                }),
            };
            let opts = tessera_router::backend::opts_for(&ps);
            let mut conn = tessera_shardmove::login(|| mysql_async::Conn::new(opts.clone()))
                .await
                .with_context(|| format!("connecting to {}", ps.address()))?;
            let (version, binlog): (String, String) = conn
                .query_first("SELECT @@version, @@log_bin")
                .await?
                .ok_or_else(|| anyhow::anyhow!("no answer from {}", ps.address()))?;
            let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
            conn.disconnect().await?;
            // The data account gets every keyspace's schemas before routers use it; then it
            // must log in and hold no privilege beyond them.
            let topo = topo.topo()?;
            let keyspaces: Vec<(String, bool)> = topo
                .snapshot()
                .await?
                .keyspaces
                .values()
                .map(|k| (k.vschema.keyspace.clone(), k.vschema.sharded))
                .collect();
            let keyspaces: Vec<(&str, bool)> =
                keyspaces.iter().map(|(k, s)| (k.as_str(), *s)).collect();
            super::keyspace::grant_data_account(&ps, &keyspaces).await?;
            let data_grants = match &ps.data_account {
                Some(d) => Some(data_account_grants(&ps, d).await?),
                None => None,
            };
            topo.put_physical_shard(&ps).await?;
            println!(
                "registered physical shard {name} at {}: version {version}, binlog {}",
                ps.address(),
                if binlog == "1" { "on" } else { "off" }
            );
            println!("control account {} (moves, verification, grants; needs all privileges with GRANT OPTION):", ps.user);
            for g in grants {
                println!("  {g}");
            }
            if let (Some(d), Some(g)) = (&ps.data_account, data_grants) {
                println!("data account {} (routers serve applications with it; the keyspaces' schemas only):", d.user);
                for g in g {
                    println!("  {g}");
                }
            }
            Ok(())
        }
        ShardCmd::List { topo } => {
            let t = topo.topo()?;
            let snap = t.snapshot().await?;
            // Measured sizes per keyspace (estimates from information_schema); a shard that
            // cannot be reached shows `?`.
            let mut sizes = std::collections::BTreeMap::new();
            for ks in snap.placements.keys() {
                if let Ok(m) = super::reshard::measure(&t, ks).await {
                    sizes.insert(ks.clone(), m);
                }
            }
            println!(
                "{:<12} {:<24} {:>6} {:>10} {:>12}  logical shards",
                "NAME", "ADDRESS", "WEIGHT", "ROWS", "BYTES"
            );
            for ps in snap.shards.values() {
                let mut held = Vec::new();
                let (mut rows, mut bytes, mut known) = (0u64, 0u64, true);
                for (ks, p) in &snap.placements {
                    let mine: Vec<String> = p
                        .shards
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| {
                            e.ps == ps.name || e.peer.as_deref() == Some(ps.name.as_str())
                        })
                        .map(|(i, e)| {
                            if e.state == tessera_topo::LogicalShardState::Serving {
                                i.to_string()
                            } else if e.ps == ps.name {
                                format!(
                                    "{i}({:?} -> {})",
                                    e.state,
                                    e.peer.as_deref().unwrap_or("?")
                                )
                            } else {
                                format!("{i}(copy, {:?})", e.state)
                            }
                        })
                        .collect();
                    for (i, e) in p.shards.iter().enumerate() {
                        if e.ps == ps.name {
                            match sizes.get(ks).and_then(|m| m.get(i)) {
                                Some((r, b)) => {
                                    rows += r;
                                    bytes += b;
                                }
                                None => known = false,
                            }
                        }
                    }
                    if !mine.is_empty() {
                        held.push(format!("{ks}: {}", mine.join(",")));
                    }
                }
                let (r, b) = if known {
                    (rows.to_string(), bytes.to_string())
                } else {
                    ("?".into(), "?".into())
                };
                println!(
                    "{:<12} {:<24} {:>6} {:>10} {:>12}  {}",
                    ps.name,
                    ps.address(),
                    ps.weight,
                    r,
                    b,
                    held.join("; ")
                );
            }
            Ok(())
        }
        ShardCmd::Remove { name, topo } => {
            let t = topo.topo()?;
            let snap = t.snapshot().await?;
            for (ks, p) in &snap.placements {
                let n = p
                    .shards
                    .iter()
                    .filter(|e| e.ps == name || e.peer.as_deref() == Some(name.as_str()))
                    .count();
                if n > 0 {
                    anyhow::bail!("physical shard {name} still holds (or is receiving) {n} logical shards of keyspace {ks}; move them first (tessera reshard)");
                }
            }
            let deleted = t
                .store()
                .delete(
                    &format!("/tessera/shards/{name}"),
                    tessera_topo::Condition::None,
                )
                .await?;
            if deleted.is_none() {
                anyhow::bail!("no physical shard {name}");
            }
            println!("removed physical shard {name}");
            Ok(())
        }
    }
}

impl ShardCmd {
    /// The topology flags of a command that changes something (recorded in the audit trail).
    pub fn audited(&self) -> Option<&TopoFlags> {
        match self {
            ShardCmd::Add { topo, .. } | ShardCmd::Remove { topo, .. } => Some(topo),
            ShardCmd::List { .. } => None,
        }
    }
}

/// Logs in as `d` on `ps` and returns its grants; refuses an account that holds a privilege
/// on the whole server (it would let applications past their keyspaces).
async fn data_account_grants(
    ps: &PhysicalShard,
    d: &tessera_topo::DataAccount,
) -> anyhow::Result<Vec<String>> {
    let (user, password) = ps.data_credentials();
    let opts =
        tessera_shardmove::server_opts(&ps.host, ps.port, &user, password, ps.tls_ca.as_deref());
    let mut conn = tessera_shardmove::login(|| mysql_async::Conn::new(opts.clone()))
        .await
        .with_context(|| {
            format!(
                "logging in to {} as the data account {}",
                ps.address(),
                d.user
            )
        })?;
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    conn.disconnect().await?;
    if let Some(g) = grants
        .iter()
        .find(|g| g.contains(" ON *.* ") && !g.starts_with("GRANT USAGE ON *.*"))
    {
        anyhow::bail!(
            "the data account {} holds privileges on the whole server ({g}); it should hold none of its own (Tessera grants it the keyspaces' schemas)",
            d.user
        );
    }
    Ok(grants)
}
