//! Keyspaces as the subcommands set them up: applying a vschema (and creating its schemas),
//! and the unique keys of its tables that lack the shard key; the data account's grants.

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
                let lookups: Vec<String> = spec
                    .lookups
                    .iter()
                    .filter(|l| l.unique && !l.write_only)
                    .map(|l| l.column.clone())
                    .collect();
                for k in tessera_router::engine::unique_keys::uncovered(&keys, shard_key, &lookups)
                {
                    out.push(format!(
                        "table {table}: unique key {} does not contain the shard key {shard_key}: \
                         unique within each logical shard only; REPLACE, INSERT IGNORE and \
                         INSERT … ON DUPLICATE KEY UPDATE are refused on this table (a unique lookup \
                         vindex on a column of the key covers it)",
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
    let backends = tessera_router::backend::Backends::new(Default::default());
    let r = check_lookups(topo, v, &backends).await;
    if r.is_err() {
        backends.disconnect_all().await;
    }
    r?;
    let placement = topo.apply_vschema(v).await?;
    let snap = topo.snapshot().await?;
    // The data account of every physical shard (any may take a logical shard later) gets
    // the new keyspace's schemas before anything is created in them.
    for ps in snap.shards.values() {
        grant_data_account(ps, &[(v.keyspace.as_str(), v.sharded)]).await?;
    }
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let mut r = tessera_router::backend::create_keyspace_schemas(&rt, &v.keyspace, &backends).await;
    if r.is_ok() {
        r = make_lookup_tables(&rt, v, &backends).await;
    }
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

/// Refuses lookup vindexes that cannot serve: a lookup table outside an existing unsharded
/// keyspace, or a lookup declared serving (not `write_only`) on a table that already holds
/// rows, whose entries nothing has written (routing by it would miss them).
async fn check_lookups(
    topo: &tessera_topo::Topo,
    v: &tessera_topo::VSchema,
    backends: &tessera_router::backend::Backends,
) -> anyhow::Result<()> {
    let snap = topo.snapshot().await?;
    let rt = tessera_router::topology::RoutingTable::from_snapshot(&snap);
    let before = snap.keyspaces.get(&v.keyspace).map(|k| &k.vschema);
    for (table, spec) in &v.tables {
        for l in &spec.lookups {
            let field = format!("tables.{table}.lookups ({})", l.column);
            let Some((lk, _)) = l.table_parts() else {
                anyhow::bail!("{field}: {:?} must be keyspace.table", l.table);
            };
            match snap.keyspaces.get(lk) {
                None => anyhow::bail!(
                    "{field}: keyspace {lk} of the lookup table does not exist: apply a vschema \
                     for it (sharded: false) first"
                ),
                Some(k) if k.vschema.sharded => {
                    let lt = l.table_parts().map(|(_, t)| t).unwrap_or_default();
                    let by_column = k.vschema.tables.get(lt).is_some_and(|t| {
                        t.kind == tessera_topo::TableKind::Sharded
                            && t.shard_key
                                .as_deref()
                                .is_some_and(|c| c.eq_ignore_ascii_case(&l.column))
                    });
                    if !by_column {
                        anyhow::bail!(
                            "{field}: keyspace {lk} is sharded, so it must declare {lt} sharded by \
                             {} (shard_key: {})",
                            l.column,
                            l.column
                        );
                    }
                }
                Some(_) => {}
            }
            let served = before.and_then(|b| b.tables.get(table)).is_some_and(|t| {
                t.lookups
                    .iter()
                    .any(|o| o.column == l.column && o.table == l.table && !o.write_only)
            });
            if l.write_only || served {
                continue;
            }
            let rows =
                tessera_router::engine::lookup::table_has_rows(backends, &rt, &v.keyspace, table)
                    .await
                    .map_err(|e| anyhow::anyhow!("{field}: {}", e.message))?;
            if rows {
                anyhow::bail!(
                    "{field}: table {table} holds rows already, which its lookup table does not \
                     list: declare the lookup with write_only: true, apply, then run `tessera \
                     vindex backfill {}.{table} {}` (it fills the lookup table, verifies it and \
                     then routes by it)",
                    v.keyspace,
                    l.column
                );
            }
        }
    }
    Ok(())
}

/// Creates the lookup tables of the keyspace's tables that exist (the rest are made at their
/// first insert).
async fn make_lookup_tables(
    rt: &tessera_router::topology::RoutingTable,
    v: &tessera_topo::VSchema,
    backends: &tessera_router::backend::Backends,
) -> Result<(), tessera_router::error::SqlError> {
    let Some(ks) = rt.keyspace(&v.keyspace) else {
        return Ok(());
    };
    for (table, routing) in &ks.tables {
        let tessera_router::topology::TableRouting::Sharded { lookups, .. } = routing else {
            continue;
        };
        for l in lookups.iter() {
            match tessera_router::engine::lookup::ensure_table(backends, rt, &v.keyspace, table, l)
                .await
            {
                Ok(()) => {}
                Err(e) if e.code == 1146 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// [`tessera_router::backend::grant_data_account`], for the commands.
///
/// # Errors
/// As that function's, as text.
pub async fn grant_data_account(
    ps: &tessera_topo::PhysicalShard,
    keyspaces: &[(&str, bool)],
) -> anyhow::Result<()> {
    tessera_router::backend::grant_data_account(ps, keyspaces)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
