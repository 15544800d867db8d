//! Unique keys of sharded tables, read from the schema, and whether each holds the shard key.
//!
//! A unique key (the primary key included) that does not contain the shard key is unique
//! only within one logical shard: two rows with the same value can live on two logical
//! shards. `REPLACE`, `INSERT IGNORE` and `INSERT … ON DUPLICATE KEY UPDATE` act on the row
//! their new row conflicts with, which on such a table may live on another logical shard than
//! the one the new row goes to: the router would insert a second row where MariaDB replaces,
//! ignores or updates the first. [`UniqueKeyCache::check`] refuses those statements on such
//! tables; `tessera vschema apply` and `show` report the keys.

use crate::error::SqlError;
use crate::planner::Conflict;
use crate::sql::quote_ident;
use crate::topology::RoutingTable;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the keys read from a table's schema are trusted before they are read again, for
/// DDL that did not go through this router (DDL through it forgets its keyspace's keys at
/// once).
pub const UNIQUE_KEYS_TTL: Duration = Duration::from_secs(5);

/// One unique key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// `PRIMARY` for the primary key.
    pub name: String,
    pub columns: Vec<String>,
}

impl UniqueKey {
    /// Whether the key holds column `col` (names compare case-insensitively, as MariaDB's).
    pub fn contains(&self, col: &str) -> bool {
        self.columns.iter().any(|c| c.eq_ignore_ascii_case(col))
    }

    /// The key as `NAME (a, b)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.columns.join(", "))
    }
}

/// Reads the unique keys of `schema.table` (none when the table does not exist).
///
/// # Errors
/// The server's error.
pub async fn read<Q: Queryable>(
    conn: &mut Q,
    schema: &str,
    table: &str,
) -> Result<Vec<UniqueKey>, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await?;
    let mut keys: Vec<UniqueKey> = Vec::new();
    for (name, col) in rows {
        match keys.last_mut() {
            Some(k) if k.name == name => k.columns.push(col),
            _ => keys.push(UniqueKey {
                name,
                columns: vec![col],
            }),
        }
    }
    Ok(keys)
}

/// Returns the keys that hold neither `shard_key` nor a column of `lookups` (columns with a
/// serving unique lookup vindex, unique across every logical shard).
pub fn uncovered(keys: &[UniqueKey], shard_key: &str, lookups: &[String]) -> Vec<UniqueKey> {
    keys.iter()
        .filter(|k| !k.contains(shard_key) && !lookups.iter().any(|c| k.contains(c)))
        .cloned()
        .collect()
}

/// What the router read of each `(keyspace, table)`'s schema, with when: trusted for
/// [`UNIQUE_KEYS_TTL`], forgotten for a keyspace after DDL through the router.
pub struct TableCache<T> {
    entries: Mutex<HashMap<(String, String), (Instant, T)>>,
}

impl<T> Default for TableCache<T> {
    fn default() -> Self {
        TableCache {
            entries: Mutex::default(),
        }
    }
}

impl<T: Clone> TableCache<T> {
    /// What was read of `table` less than [`UNIQUE_KEYS_TTL`] ago.
    pub fn fresh(&self, keyspace: &str, table: &str) -> Option<T> {
        let key = (keyspace.to_string(), table.to_ascii_lowercase());
        self.lock()
            .get(&key)
            .filter(|(at, _)| at.elapsed() < UNIQUE_KEYS_TTL)
            .map(|(_, v)| v.clone())
    }

    /// Keeps what was just read of `table`.
    pub fn put(&self, keyspace: &str, table: &str, v: T) {
        let key = (keyspace.to_string(), table.to_ascii_lowercase());
        self.lock().insert(key, (Instant::now(), v));
    }

    /// Forgets every table of `keyspace` (after DDL there).
    pub fn forget_keyspace(&self, keyspace: &str) {
        self.lock().retain(|(ks, _), _| ks != keyspace);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, T)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The unique keys of the tables the router has checked.
#[derive(Default)]
pub struct UniqueKeyCache {
    keys: TableCache<Vec<UniqueKey>>,
}

impl UniqueKeyCache {
    /// Refuses `c` (a conflict-resolving write) on `keyspace` when a unique key of its table
    /// does not hold the shard key; reads the keys from the schema of logical shard 0 when
    /// they are not known or older than [`UNIQUE_KEYS_TTL`].
    ///
    /// # Errors
    /// 1235 naming the key, or 1105 when the keys cannot be read.
    pub async fn check(
        &self,
        backends: &crate::backend::Backends,
        rt: &RoutingTable,
        keyspace: &str,
        c: &Conflict,
    ) -> Result<(), SqlError> {
        let known = self
            .keys
            .fresh(keyspace, &c.table)
            .map(|keys| uncovered(&keys, &c.shard_key, &c.lookups));
        let bad = match known {
            Some(bad) => bad,
            None => {
                let keys = read_table(backends, rt, keyspace, &c.table).await?;
                let bad = uncovered(&keys, &c.shard_key, &c.lookups);
                self.keys.put(keyspace, &c.table, keys);
                bad
            }
        };
        match bad.first() {
            None => Ok(()),
            Some(k) => Err(refusal(c, k)),
        }
    }

    /// Forgets the keys of every table of `keyspace` (after DDL there).
    pub fn forget_keyspace(&self, keyspace: &str) {
        self.keys.forget_keyspace(keyspace);
    }
}

/// The error for a conflict-resolving write on a table whose key `k` lacks the shard key.
pub fn refusal(c: &Conflict, k: &UniqueKey) -> SqlError {
    SqlError::unsupported(format!(
        "{} on table {}: its unique key {} does not contain the shard key {}, so a row it \
         conflicts with may live on another logical shard (make the key contain {}, shard \
         the table by a column of the key, or declare a unique lookup vindex on a column of \
         the key)",
        c.action,
        c.table,
        k.describe(),
        c.shard_key,
        c.shard_key
    ))
}

/// Reads the unique keys of `table` in logical shard 0 of `keyspace`.
///
/// # Errors
/// 1049 for an unknown keyspace, 1105 when its physical shard cannot answer.
pub async fn read_table(
    backends: &crate::backend::Backends,
    rt: &RoutingTable,
    keyspace: &str,
    table: &str,
) -> Result<Vec<UniqueKey>, SqlError> {
    let ks = rt
        .keyspace(keyspace)
        .ok_or_else(|| SqlError::unknown_database(keyspace))?;
    let (pool, mut conn) = shard0_conn(backends, rt, ks).await?;
    read(&mut conn, &ks.schema(0), table).await.map_err(|e| {
        SqlError::shard(
            &pool.name,
            &pool.addr,
            format!(
                "reading the unique keys of {}.{}: {e}",
                quote_ident(keyspace),
                quote_ident(table)
            ),
        )
    })
}

/// A control-plane connection to the physical shard of `ks`'s logical shard 0 (which holds
/// its reference schema too), for reading its schema.
///
/// # Errors
/// 1105 when the keyspace has no placement or its physical shard cannot be reached.
pub async fn shard0_conn(
    backends: &crate::backend::Backends,
    rt: &RoutingTable,
    ks: &crate::topology::KeyspaceRouting,
) -> Result<(std::sync::Arc<crate::backend::ShardPool>, mysql_async::Conn), SqlError> {
    let ps = ks
        .placement
        .first()
        .ok_or_else(|| SqlError::router(format!("keyspace {} has no placement", ks.name)))?;
    let pool = backends.pool_of(rt, ps)?;
    let conn = pool.get_conn().await?;
    Ok((pool, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_without_the_shard_key_are_uncovered() {
        let keys = vec![
            UniqueKey {
                name: "PRIMARY".into(),
                columns: vec!["order_id".into()],
            },
            UniqueKey {
                name: "u".into(),
                columns: vec!["Customer_ID".into(), "ref".into()],
            },
        ];
        let bad = uncovered(&keys, "customer_id", &[]);
        assert!(uncovered(&keys, "customer_id", &["order_id".into()])
            .iter()
            .all(|k| k.name != "PRIMARY"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].describe(), "PRIMARY (order_id)");
        let c = Conflict {
            table: "orders".into(),
            shard_key: "customer_id".into(),
            action: "REPLACE",
            lookups: Vec::new(),
        };
        let e = refusal(&c, &bad[0]);
        assert_eq!(e.code, 1235);
        assert!(e.message.contains("PRIMARY (order_id)"), "{}", e.message);
    }
}
