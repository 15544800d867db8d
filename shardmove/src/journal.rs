//! The journal and the fence of a moving logical shard: triggers that record the primary key
//! of every changed row inside the writer's transaction, and triggers that reject writes to a
//! copy that no longer serves. Copy connections set `@tessera_copy`, which both recognise:
//! copies are neither journalled nor fenced.

use crate::table::{aux_name, qi, TableMeta};
use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Installs the journal on `schema`: per table, a journal table with the primary-key columns
/// (same types) and triggers that record the key of every inserted, updated (old and new key)
/// and deleted row inside the writer's transaction. Idempotent.
///
/// # Errors
/// Query failures (for example a metadata lock that `lock_wait_timeout` gave up on).
pub async fn install_journal(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    conn.query_drop(format!("USE {}", qi(schema))).await?;
    for t in tables {
        let pk: Vec<String> = t.pk.iter().map(|c| qi(c)).collect();
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (`_seq` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY) \
             SELECT {} FROM {} LIMIT 0",
            qi(&t.journal()),
            pk.join(", "),
            qi(&t.name)
        ))
        .await?;
        let ins = |side: &str| {
            format!(
                "INSERT INTO {} ({}) VALUES ({})",
                qi(&t.journal()),
                pk.join(", "),
                pk.iter()
                    .map(|c| format!("{side}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for (kind, event, body) in [
            ("ji", "INSERT", format!("{};", ins("NEW"))),
            ("jd", "DELETE", format!("{};", ins("OLD"))),
            ("ju", "UPDATE", format!("{}; {};", ins("OLD"), ins("NEW"))),
        ] {
            conn.query_drop(format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER {event} ON {} FOR EACH ROW \
                 IF @tessera_copy IS NULL THEN {body} END IF",
                qi(&aux_name(kind, &t.name)),
                qi(&t.name)
            ))
            .await
            .with_context(|| format!("journal trigger on {schema}.{}", t.name))?;
        }
    }
    Ok(())
}

/// Removes the journal triggers and journal tables from `schema`.
///
/// # Errors
/// Query failures.
pub async fn remove_journal(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    for t in tables {
        for kind in ["ji", "jd", "ju"] {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                qi(schema),
                qi(&aux_name(kind, &t.name))
            ))
            .await?;
        }
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {}.{}",
            qi(schema),
            qi(&t.journal())
        ))
        .await?;
    }
    Ok(())
}

/// Fences `schema`: triggers reject every write that is not a copy, with error 1205 (a
/// retriable error: the client retries and the router sends the retry where the logical shard
/// now lives). Idempotent.
///
/// # Errors
/// Query failures.
pub async fn install_fence(
    conn: &mut Conn,
    schema: &str,
    tables: &[TableMeta],
    what: &str,
) -> Result<()> {
    conn.query_drop(format!("USE {}", qi(schema))).await?;
    let msg =
        format!("tessera: {what} is fenced (logical shard moving or moved); retry the transaction")
            .replace('\'', "");
    for t in tables {
        for (kind, event) in [("fi", "INSERT"), ("fu", "UPDATE"), ("fd", "DELETE")] {
            conn.query_drop(format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE {event} ON {} FOR EACH ROW \
                 IF @tessera_copy IS NULL THEN SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1205, \
                 MESSAGE_TEXT = '{msg}'; END IF",
                qi(&aux_name(kind, &t.name)),
                qi(&t.name)
            ))
            .await
            .with_context(|| format!("fencing {schema}.{}", t.name))?;
        }
    }
    Ok(())
}

/// Removes the fence from `schema`.
///
/// # Errors
/// Query failures.
pub async fn remove_fence(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<()> {
    for t in tables {
        for kind in ["fi", "fu", "fd"] {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                qi(schema),
                qi(&aux_name(kind, &t.name))
            ))
            .await?;
        }
    }
    Ok(())
}

/// Rows waiting in `schema`'s journal.
///
/// # Errors
/// Query failures.
pub async fn journal_backlog(conn: &mut Conn, schema: &str, tables: &[TableMeta]) -> Result<u64> {
    let mut n = 0;
    for t in tables {
        let c: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {}.{}",
                qi(schema),
                qi(&t.journal())
            ))
            .await?;
        n += c.unwrap_or(0);
    }
    Ok(n)
}
