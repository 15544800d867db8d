//! Keyspaces as the subcommands set them up: applying a vschema (and creating its schemas),
//! and the unique keys of its tables that lack the shard key.

/// Returns, per sharded table of `keyspace` that exists, a line for each unique key that does
/// not contain the table's shard key: unique within one logical shard only, and the reason
/// the router refuses `REPLACE`, `INSERT IGNORE` and `ON DUPLICATE KEY UPDATE` there.
///
/// # Errors
/// Topology or backend failures.
pub async fn uncovered_unique_keys(
    topo: &tessera_topo::Topo,
    keyspace: &str,
) -> anyhow::Result<Vec<String>> {
    let snap = topo.snapshot().await?;
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let Some(ks) = snap.keyspaces.get(keyspace) else {
        return Ok(Vec::new());
    };
    let backends = tessera_router::backend::Backends::new(Default::default());
    let mut out = Vec::new();
    let mut failed = None;
    for (table, spec) in &ks.vschema.tables {
        let (Some(shard_key), tessera_topo::TableKind::Sharded) = (&spec.shard_key, spec.kind)
        else {
            continue;
        };
        match tessera_router::engine::unique_keys::read_table(&backends, &rt, keyspace, table).await
        {
            Ok(keys) => {
                for k in tessera_router::engine::unique_keys::uncovered(&keys, shard_key) {
                    out.push(format!(
                        "table {table}: unique key {} does not contain the shard key {shard_key}: \
                         unique within each logical shard only; REPLACE, INSERT IGNORE and \
                         INSERT … ON DUPLICATE KEY UPDATE are refused on this table",
                        k.describe()
                    ));
                }
            }
            Err(e) => {
                failed = Some(format!("reading the keys of {table}: {}", e.message));
                break;
            }
        }
    }
    backends.disconnect_all().await;
    match failed {
        Some(f) => Err(anyhow::anyhow!(f)),
        None => Ok(out),
    }
}

/// Applies a vschema through `topo` and creates its schemas on the physical shards.
///
/// # Errors
/// Invalid vschema, topology or backend failures.
pub async fn apply_vschema(
    topo: &tessera_topo::Topo,
    v: &tessera_topo::VSchema,
) -> anyhow::Result<tessera_topo::Placement> {
    let placement = topo.apply_vschema(v).await?;
    let snap = topo.snapshot().await?;
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let backends = tessera_router::backend::Backends::new(Default::default());
    let r = tessera_router::backend::create_keyspace_schemas(&rt, &v.keyspace, &backends).await;
    backends.disconnect_all().await;
    r.map_err(|e| {
        anyhow::anyhow!(
            "creating schemas for keyspace {}: {}",
            v.keyspace,
            e.message
        )
    })?;
    Ok(placement)
}
