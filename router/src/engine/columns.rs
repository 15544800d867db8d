//! The columns of sharded and reference tables, in the table's order, read from the schema:
//! an `INSERT … VALUES` without a column list (what `mariadb-dump` writes) needs them to find
//! the shard key among its values.

use super::unique_keys::UNIQUE_KEYS_TTL;
use crate::error::SqlError;
use crate::sql::quote_ident;
use crate::topology::{RoutingTable, TableRouting};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The columns of each `(keyspace, table)` read so far, with when they were read.
type Entries = HashMap<(String, String), (Instant, Vec<String>)>;

/// Column lists of the tables the router has needed them for; trusted for
/// [`UNIQUE_KEYS_TTL`], forgotten for a keyspace after DDL through the router.
#[derive(Default)]
pub struct ColumnCache {
    entries: Mutex<Entries>,
}

impl ColumnCache {
    /// The columns of `table` of sharded `keyspace`, in order (from logical shard 0's schema,
    /// or the reference schema for a reference table).
    ///
    /// # Errors
    /// 1146 when the table does not exist, 1105 when its physical shard cannot answer.
    pub async fn columns(
        &self,
        backends: &crate::backend::Backends,
        rt: &RoutingTable,
        keyspace: &str,
        table: &str,
    ) -> Result<Vec<String>, SqlError> {
        let key = (keyspace.to_string(), table.to_ascii_lowercase());
        if let Some((at, cols)) = self.lock().get(&key) {
            if at.elapsed() < UNIQUE_KEYS_TTL {
                return Ok(cols.clone());
            }
        }
        let ks = rt
            .keyspace(keyspace)
            .ok_or_else(|| SqlError::unknown_database(keyspace))?;
        let schema = match ks.table(table) {
            Some(TableRouting::Reference) => ks.reference_schema(),
            _ => ks.schema(0),
        };
        let (pool, mut conn) = super::unique_keys::shard0_conn(backends, rt, ks).await?;
        let cols: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema.as_str(), table),
            )
            .await
            .map_err(|e| {
                SqlError::shard(
                    &pool.name,
                    &pool.addr,
                    format!(
                        "reading the columns of {}.{}: {e}",
                        quote_ident(keyspace),
                        quote_ident(table)
                    ),
                )
            })?;
        if cols.is_empty() {
            return Err(SqlError::unknown_table(keyspace, table));
        }
        self.lock().insert(key, (Instant::now(), cols.clone()));
        Ok(cols)
    }

    /// Forgets the columns of every table of `keyspace` (after DDL there).
    pub fn forget_keyspace(&self, keyspace: &str) {
        self.lock().retain(|(ks, _), _| ks != keyspace);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
