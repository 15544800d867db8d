//! The tables of a logical-shard schema as a move sees them: columns and primary keys, the
//! names of Tessera's auxiliary objects, creating a schema like another, and primary keys
//! written into checkpoints.

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

/// Prefix of every auxiliary object Tessera creates in a logical-shard schema.
pub const AUX_PREFIX: &str = "_tessera_";

/// Most placeholders one statement may carry.
pub(crate) const MAX_PARAMS: usize = 60_000;

/// Quotes an identifier with backticks.
pub fn qi(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Returns the name of an auxiliary object for `table` (journal table, triggers), at most 64
/// characters and stable for the table.
pub fn aux_name(kind: &str, table: &str) -> String {
    let name = format!("{AUX_PREFIX}{kind}_{table}");
    if name.len() <= 64 {
        return name;
    }
    // FNV-1a keeps long names distinct and stable.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in table.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // Room for the prefix, the kind, two underscores and 16 hex digits.
    let mut cut = 64usize.saturating_sub(AUX_PREFIX.len() + kind.len() + 2 + 16);
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{AUX_PREFIX}{kind}_{}_{h:016x}", &table[..cut])
}

/// One table of a logical-shard schema, as the copier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    pub name: String,
    /// Stored (not generated) columns, in table order.
    pub columns: Vec<String>,
    /// Primary-key columns, in key order.
    pub pk: Vec<String>,
    /// Positions of the primary-key columns in `columns`.
    pub pk_pos: Vec<usize>,
}

impl TableMeta {
    /// The journal table's name.
    pub fn journal(&self) -> String {
        aux_name("j", &self.name)
    }

    pub fn cols_sql(&self) -> String {
        self.columns
            .iter()
            .map(|c| qi(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn pk_sql(&self) -> String {
        let v: Vec<String> = self.pk.iter().map(|c| qi(c)).collect();
        if v.len() == 1 {
            v[0].clone()
        } else {
            format!("({})", v.join(", "))
        }
    }

    /// The primary-key columns, comma-separated (for `ORDER BY`).
    pub(crate) fn pk_order(&self) -> String {
        self.pk.iter().map(|c| qi(c)).collect::<Vec<_>>().join(", ")
    }

    pub fn tuple(&self) -> String {
        if self.pk.len() == 1 {
            "?".into()
        } else {
            format!("({})", vec!["?"; self.pk.len()].join(", "))
        }
    }

    /// `pk IN (?, …)` for `n` keys.
    pub fn pk_in(&self, n: usize) -> String {
        format!(
            "{} IN ({})",
            self.pk_sql(),
            vec![self.tuple(); n].join(", ")
        )
    }

    /// A 64-bit digest of one row: the CRC-32 (high half) and CRC-32C (low half) of its
    /// columns joined with a separator and their NULL flags. Chunks combine the digests with
    /// `BIT_XOR`, which is order-independent (and cannot cancel within a table: no two rows
    /// share a key). `pt-table-checksum` digests rows with the CRC-32 of the same kind of
    /// string; the second CRC doubles the bits for a little more work.
    pub(crate) fn row_hash_sql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| qi(c)).collect();
        let nulls: Vec<String> = cols.iter().map(|c| format!("ISNULL({c})")).collect();
        let row = format!(
            "CONCAT_WS(CHAR(31), {}, CONCAT({}))",
            cols.join(", "),
            nulls.join(", ")
        );
        format!("((CRC32({row}) << 32) | CRC32C({row}))")
    }

    /// The primary key of a row read with [`TableMeta::columns`].
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.pk_pos
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or(Value::NULL))
            .collect()
    }
}

/// A key as a comparable string (SQL literal form).
pub fn key_string(k: &[Value]) -> String {
    k.iter()
        .map(|v| v.as_sql(false))
        .collect::<Vec<_>>()
        .join(",")
}

/// Lists the base tables of `schema` (leaving out Tessera's own) with columns and primary
/// keys.
///
/// # Errors
/// Query failures; a table without a primary key (moves copy tables in key order).
pub async fn load_tables(conn: &mut Conn, schema: &str) -> Result<Vec<TableMeta>> {
    let names: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (schema,),
        )
        .await?;
    let mut out = Vec::new();
    for name in names {
        if name.starts_with(AUX_PREFIX) {
            continue;
        }
        out.push(table_meta(conn, schema, &name).await?);
    }
    Ok(out)
}

/// The columns and primary key of `schema.name`.
///
/// # Errors
/// Query failures; a table that does not exist, or has no primary key (moves copy tables in
/// primary-key order).
pub async fn table_meta(conn: &mut Conn, schema: &str, name: &str) -> Result<TableMeta> {
    let columns: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION",
            (schema, name),
        )
        .await?;
    if columns.is_empty() {
        bail!("table {schema}.{name} does not exist");
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE \
             TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (schema, name),
        )
        .await?;
    if pk.is_empty() {
        bail!("table {schema}.{name} has no primary key; moves copy tables in primary-key order, so every table moved needs one");
    }
    let pk_pos = pk
        .iter()
        .map(|c| {
            columns
                .iter()
                .position(|x| x == c)
                .ok_or_else(|| anyhow!("{schema}.{name}: primary-key column {c} is generated; such keys cannot be copied"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TableMeta {
        name: name.to_string(),
        columns,
        pk,
        pk_pos,
    })
}

/// Creates `dst_schema` on the target with the definitions of `tables` from `src_schema`
/// (idempotent: tables that exist are left as they are).
///
/// # Errors
/// Query failures.
pub async fn create_schema_like(
    src: &mut Conn,
    dst: &mut Conn,
    src_schema: &str,
    dst_schema: &str,
    tables: &[TableMeta],
) -> Result<()> {
    dst.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", qi(dst_schema)))
        .await?;
    for t in tables {
        let row: Option<(String, String)> = src
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                qi(src_schema),
                qi(&t.name)
            ))
            .await?;
        let (_, ddl) = row.ok_or_else(|| anyhow!("no definition for {src_schema}.{}", t.name))?;
        let ddl = ddl.replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1);
        dst.query_drop(format!("USE {}", qi(dst_schema))).await?;
        dst.query_drop(ddl)
            .await
            .with_context(|| format!("creating {dst_schema}.{}", t.name))?;
    }
    Ok(())
}

/// Encodes a key for a checkpoint.
pub fn encode_key(k: &[Value]) -> String {
    let parts: Vec<String> = k
        .iter()
        .map(|v| match v {
            Value::NULL => "n".into(),
            Value::Int(i) => format!("i{i}"),
            Value::UInt(u) => format!("u{u}"),
            Value::Float(f) => format!("f{}", f.to_bits()),
            Value::Double(f) => format!("d{}", f.to_bits()),
            Value::Bytes(b) => format!("b{}", hex(b)),
            Value::Date(y, mo, d, h, mi, s, us) => format!("D{y},{mo},{d},{h},{mi},{s},{us}"),
            Value::Time(neg, d, h, mi, s, us) => {
                format!("T{},{d},{h},{mi},{s},{us}", u8::from(*neg))
            }
        })
        .collect();
    serde_json::to_string(&parts).unwrap_or_default()
}

/// Decodes a key written by [`encode_key`].
///
/// # Errors
/// A malformed checkpoint.
pub fn decode_key(s: &str) -> Result<Vec<Value>> {
    let parts: Vec<String> =
        serde_json::from_str(s).with_context(|| format!("bad checkpoint key {s:?}"))?;
    let bad = || anyhow!("bad checkpoint key {s:?}");
    parts
        .iter()
        .map(|p| {
            let (tag, rest) = p.split_at(p.len().min(1));
            let nums = |n: usize| -> Result<Vec<u64>> {
                let v: Vec<u64> = rest
                    .split(',')
                    .map(|x| x.parse::<u64>().map_err(|_| bad()))
                    .collect::<Result<_>>()?;
                if v.len() != n {
                    return Err(bad());
                }
                Ok(v)
            };
            Ok(match tag {
                "n" => Value::NULL,
                "i" => Value::Int(rest.parse().map_err(|_| bad())?),
                "u" => Value::UInt(rest.parse().map_err(|_| bad())?),
                "f" => Value::Float(f32::from_bits(rest.parse().map_err(|_| bad())?)),
                "d" => Value::Double(f64::from_bits(rest.parse().map_err(|_| bad())?)),
                "b" => Value::Bytes(unhex(rest).ok_or_else(bad)?),
                "D" => {
                    let v = nums(7)?;
                    Value::Date(
                        v[0] as u16,
                        v[1] as u8,
                        v[2] as u8,
                        v[3] as u8,
                        v[4] as u8,
                        v[5] as u8,
                        v[6] as u32,
                    )
                }
                "T" => {
                    let v = nums(6)?;
                    Value::Time(
                        v[0] != 0,
                        v[1] as u32,
                        v[2] as u8,
                        v[3] as u8,
                        v[4] as u8,
                        v[5] as u32,
                    )
                }
                _ => return Err(bad()),
            })
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip() {
        let k = vec![
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Bytes(b"a'b\x00".to_vec()),
            Value::Double(0.1),
            Value::Date(2024, 2, 29, 23, 59, 58, 123456),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::NULL,
        ];
        assert_eq!(decode_key(&encode_key(&k)).expect("decodes"), k);
        assert!(decode_key("[\"x1\"]").is_err());
        assert!(decode_key("nope").is_err());
    }

    #[test]
    fn aux_names_fit() {
        assert_eq!(aux_name("j", "orders"), "_tessera_j_orders");
        let long = "t".repeat(64);
        let n = aux_name("ju", &long);
        assert!(n.len() <= 64, "{n}");
        assert_ne!(n, aux_name("ju", &"t".repeat(63)));
    }
}
