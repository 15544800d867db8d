//! Ids for auto-increment columns fed by sequences, taken in cached blocks.

use super::core::Engine;

use crate::error::SqlError;
use crate::sql::quote_ident;
use mysql_async::prelude::Queryable;

impl Engine {
    /// Takes `n` consecutive ids from a sequence, refilling the cached block when it runs out:
    /// one short transaction on the sequence's keyspace moves `next_id` on by `max(n, cache)`.
    ///
    /// # Errors
    /// 1105 when the sequence is missing or its physical shard is down.
    pub async fn take_ids(&self, keyspace: &str, table: &str, n: u64) -> Result<u64, SqlError> {
        let mut cache = self.sequences.lock().await;
        let entry = cache
            .entry((keyspace.to_string(), table.to_string()))
            .or_insert((0, 0));
        if entry.1.saturating_sub(entry.0) >= n {
            let first = entry.0;
            entry.0 += n;
            return Ok(first);
        }
        let rt = self.topo.table();
        let ks = rt.keyspace(keyspace).ok_or_else(|| {
            SqlError::router(format!("sequence keyspace {keyspace} does not exist"))
        })?;
        let ps = ks
            .placement
            .first()
            .ok_or_else(|| SqlError::router("sequence keyspace without placement"))?;
        let pool = self.backends.pool_of(&rt, ps)?;
        let mut conn = pool.get_conn().await?;
        let name = format!("{}.{}", quote_ident(&ks.schema(0)), quote_ident(table));
        let map = |e: mysql_async::Error| {
            SqlError::shard(
                &pool.name,
                &pool.addr,
                format!("sequence {keyspace}.{table}: {e}"),
            )
        };
        conn.query_drop("START TRANSACTION").await.map_err(map)?;
        let row: Option<(u64, u64)> = conn
            .query_first(format!(
                "SELECT next_id, cache FROM {name} WHERE id = 0 FOR UPDATE"
            ))
            .await
            .map_err(map)?;
        let Some((next, cache_size)) = row else {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(SqlError::router(format!(
                "sequence {keyspace}.{table} has no row with id = 0; create it with INSERT INTO {keyspace}.{table} (id, next_id, cache) VALUES (0, 1, 1000)"
            )));
        };
        let take = n.max(cache_size).max(1);
        conn.query_drop(format!(
            "UPDATE {name} SET next_id = next_id + {take} WHERE id = 0"
        ))
        .await
        .map_err(map)?;
        conn.query_drop("COMMIT").await.map_err(map)?;
        *entry = (next + n, next + take);
        Ok(next)
    }
}
