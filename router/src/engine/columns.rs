//! The columns of sharded and reference tables, in the table's order, read from the schema:
//! an `INSERT … VALUES` without a column list (what `mariadb-dump` writes) needs them to find
//! the shard key among its values.

use super::unique_keys::TableCache;
use crate::error::SqlError;
use crate::sql::quote_ident;
use crate::topology::{RoutingTable, TableRouting};
use mysql_async::prelude::Queryable;

/// Column lists of the tables the router has needed them for (see [`TableCache`]).
#[derive(Default)]
pub struct ColumnCache {
    cols: TableCache<Vec<String>>,
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
        if let Some(cols) = self.cols.fresh(keyspace, table) {
            return Ok(cols);
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
        self.cols.put(keyspace, table, cols.clone());
        Ok(cols)
    }

    /// Forgets the columns of every table of `keyspace` (after DDL there).
    pub fn forget_keyspace(&self, keyspace: &str) {
        self.cols.forget_keyspace(keyspace);
    }
}
