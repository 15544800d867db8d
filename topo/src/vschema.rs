//! The vschema: per keyspace, which tables are sharded, by which column and vindex, and
//! which are reference tables. Read from YAML; [`VSchema::validate`] names the bad field.

use crate::error::{Result, TopoError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest logical-shard count a keyspace may have.
pub const MAX_LOGICAL_SHARDS: u32 = 4096;

/// A keyspace's vschema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VSchema {
    /// The keyspace name the application sees (`USE name`).
    pub keyspace: String,
    /// Whether tables are spread over logical shards. Default: `false`.
    #[serde(default)]
    pub sharded: bool,
    /// Number of logical shards, a power of two (required when sharded; must be absent or 1
    /// when not). Fixed for the keyspace's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_shards: Option<u32>,
    /// The tables, by name. Default: none.
    #[serde(default)]
    pub tables: BTreeMap<String, TableSpec>,
    /// Tables of this (unsharded) keyspace that `tessera movetables` moves or moved to another
    /// keyspace, by name. Written by that command; default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved_tables: BTreeMap<String, MovedTable>,
}

/// A table moved by `tessera movetables`, and how far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedTable {
    /// The keyspace it moves to (which declares it).
    pub to: String,
    pub state: MoveState,
}

/// Where statements on a moved table go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Being copied: served by this keyspace.
    Copying,
    /// Cutting over (or back): statements on it wait.
    Switching,
    /// Served by the keyspace `to`.
    Moved,
}

/// How one table is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// `sharded` (the default in a sharded keyspace) or `reference`.
    #[serde(default, rename = "type")]
    pub kind: TableKind,
    /// The shard-key column (required for sharded tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<String>,
    /// The vindex that maps the shard key to a keyspace id. Default: `xxhash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vindex: Option<VindexKind>,
    /// The shard key's type, `integer` or `string`; it decides how literals of the other kind
    /// compare (MySQL compares a string with an integer column as a number). Default: `integer`
    /// for the `xxhash` and `numeric` vindexes, `string` for `unicode_loose_xxhash` and
    /// `binary_md5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
    /// An auto-increment column fed by a sequence (for sharded tables, whose logical shards
    /// cannot share MariaDB's own counter). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_increment: Option<AutoIncrement>,
    /// Lookup vindexes: secondary columns whose values are mapped to keyspace ids by a table
    /// in an unsharded keyspace, so that queries by them go to the logical shards that hold
    /// them and (for unique ones) a value is unique across every logical shard. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<LookupSpec>,
}

/// A lookup vindex of a sharded table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The looked-up column of the sharded table.
    pub column: String,
    /// The lookup table, `keyspace.table`, in an unsharded keyspace: one row per value
    /// `(<column>, keyspace_id)`. The router creates it when missing.
    pub table: String,
    /// Whether a value lives in at most one row across every logical shard (a duplicate gets
    /// 1062, as from MariaDB). Default: `true`.
    #[serde(default = "yes")]
    pub unique: bool,
    /// Kept up to date by every write but not yet used for routing or uniqueness, until
    /// `tessera vindex backfill` has filled it from the rows that existed before it and
    /// verified it (and clears this flag). Default: `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_only: bool,
}

fn yes() -> bool {
    true
}

impl LookupSpec {
    /// Returns (keyspace, table) of the lookup table.
    pub fn table_parts(&self) -> Option<(&str, &str)> {
        self.table
            .split_once('.')
            .filter(|(k, t)| !k.is_empty() && !t.is_empty() && !t.contains('.'))
    }
}

/// The type of a shard-key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Integer,
    String,
}

impl TableSpec {
    /// Returns the shard key's type, declared or implied by the vindex.
    pub fn shard_key_type(&self) -> KeyType {
        self.key_type
            .unwrap_or(match self.vindex.unwrap_or_default() {
                VindexKind::Xxhash | VindexKind::Numeric => KeyType::Integer,
                VindexKind::BinaryMd5 | VindexKind::UnicodeLooseXxhash => KeyType::String,
            })
    }
}

/// An auto-increment column and the sequence that feeds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoIncrement {
    pub column: String,
    /// The sequence table, `keyspace.table`, in an unsharded keyspace.
    pub sequence: String,
}

impl AutoIncrement {
    /// Returns (keyspace, table) of the sequence.
    pub fn sequence_parts(&self) -> Option<(&str, &str)> {
        self.sequence
            .split_once('.')
            .filter(|(k, t)| !k.is_empty() && !t.is_empty() && !t.contains('.'))
    }
}

/// Table kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Rows spread over logical shards by shard key.
    #[default]
    Sharded,
    /// Small, read-mostly, copied to every physical shard.
    Reference,
    /// A sequence (in an unsharded keyspace): one row `(id = 0, next_id, cache)` from which
    /// routers take blocks of ids.
    Sequence,
}

/// The functions from a shard-key value to a 64-bit keyspace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VindexKind {
    /// xxHash64 of the value's bytes (integers as 8 big-endian bytes). Any type.
    #[default]
    Xxhash,
    /// The unsigned 64-bit value itself.
    Numeric,
    /// The first 8 bytes of MD5 of the value's bytes.
    BinaryMd5,
    /// xxHash64 of the value folded for case and accents, for `*_ci` string keys.
    UnicodeLooseXxhash,
}

impl VindexKind {
    /// Returns the name used in vschema files.
    pub fn name(self) -> &'static str {
        match self {
            VindexKind::Xxhash => "xxhash",
            VindexKind::Numeric => "numeric",
            VindexKind::BinaryMd5 => "binary_md5",
            VindexKind::UnicodeLooseXxhash => "unicode_loose_xxhash",
        }
    }
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl VSchema {
    /// Parses and validates a vschema from YAML text.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] naming the bad field (YAML errors carry the line and column).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let v: VSchema =
            serde_yaml::from_str(text).map_err(|e| TopoError::invalid("vschema", e.to_string()))?;
        v.validate()?;
        Ok(v)
    }

    /// Returns the number of logical shards (1 for an unsharded keyspace).
    pub fn logical_shard_count(&self) -> u32 {
        if self.sharded {
            self.logical_shards.unwrap_or(1)
        } else {
            1
        }
    }

    /// Returns the table's spec, if declared.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.get(name)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] whose message starts with the dotted path of the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: String, msg: String| {
            Err(TopoError::invalid("vschema", format!("{field}: {msg}")))
        };
        if !valid_identifier(&self.keyspace) {
            return bad(
                "keyspace".into(),
                format!(
                    "{:?} must be 1-48 characters of a-z, 0-9 and _, not starting with a digit",
                    self.keyspace
                ),
            );
        }
        match (self.sharded, self.logical_shards) {
            (true, None) => {
                return bad(
                    "logical_shards".into(),
                    "required when sharded is true (a power of two, e.g. 64)".into(),
                )
            }
            (true, Some(n)) if n == 0 || !n.is_power_of_two() || n > MAX_LOGICAL_SHARDS => {
                return bad(
                    "logical_shards".into(),
                    format!("{n} is not a power of two between 1 and {MAX_LOGICAL_SHARDS}"),
                )
            }
            (false, Some(n)) if n != 1 => {
                return bad(
                    "logical_shards".into(),
                    format!("{n} given but the keyspace is not sharded (set sharded: true)"),
                )
            }
            _ => {}
        }
        for (name, m) in &self.moved_tables {
            if self.sharded {
                return bad(
                    format!("moved_tables.{name}"),
                    "only tables of an unsharded keyspace are moved away".into(),
                );
            }
            if !valid_identifier(&m.to) || m.to == self.keyspace {
                return bad(
                    format!("moved_tables.{name}.to"),
                    format!("{:?} is not another keyspace", m.to),
                );
            }
        }
        for (name, t) in &self.tables {
            let field = format!("tables.{name}");
            if name.is_empty() || name.len() > 64 || name.contains('`') || name.contains('.') {
                return bad(field, "not a valid table name".into());
            }
            if let Some(a) = &t.auto_increment {
                if t.kind != TableKind::Sharded || !self.sharded {
                    return bad(
                        format!("{field}.auto_increment"),
                        "only sharded tables take ids from a sequence".into(),
                    );
                }
                if a.column.is_empty() || a.column.contains('`') {
                    return bad(
                        format!("{field}.auto_increment.column"),
                        "not a valid column name".into(),
                    );
                }
                if a.sequence_parts().is_none() {
                    return bad(
                        format!("{field}.auto_increment.sequence"),
                        format!("{:?} must be keyspace.table", a.sequence),
                    );
                }
            }
            for (i, l) in t.lookups.iter().enumerate() {
                let lf = format!("{field}.lookups[{i}]");
                if t.kind != TableKind::Sharded || !self.sharded {
                    return bad(lf, "only sharded tables have lookup vindexes".into());
                }
                if l.column.is_empty() || l.column.contains('`') {
                    return bad(format!("{lf}.column"), "not a valid column name".into());
                }
                if t.shard_key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(&l.column))
                {
                    return bad(
                        format!("{lf}.column"),
                        "the shard key routes by itself; a lookup is for another column".into(),
                    );
                }
                if t.lookups[..i]
                    .iter()
                    .any(|o| o.column.eq_ignore_ascii_case(&l.column))
                {
                    return bad(
                        format!("{lf}.column"),
                        "a second lookup of the column".into(),
                    );
                }
                match l.table_parts() {
                    Some((k, lt)) if valid_identifier(k) && !lt.contains('`') => {
                        if k == self.keyspace {
                            return bad(
                                format!("{lf}.table"),
                                "the lookup table belongs in an unsharded keyspace, not this one"
                                    .into(),
                            );
                        }
                    }
                    _ => {
                        return bad(
                            format!("{lf}.table"),
                            format!("{:?} must be keyspace.table", l.table),
                        )
                    }
                }
            }
            match t.kind {
                TableKind::Sharded if self.sharded => match &t.shard_key {
                    None => {
                        return bad(
                            format!("{field}.shard_key"),
                            "required for a sharded table".into(),
                        )
                    }
                    Some(k) if k.is_empty() || k.contains('`') => {
                        return bad(
                            format!("{field}.shard_key"),
                            "not a valid column name".into(),
                        )
                    }
                    Some(_) => {}
                },
                TableKind::Sharded => {
                    if t.shard_key.is_some() || t.vindex.is_some() {
                        return bad(
                            format!("{field}.shard_key"),
                            "only tables of a sharded keyspace have a shard key".into(),
                        );
                    }
                }
                TableKind::Sequence => {
                    if self.sharded {
                        return bad(
                            format!("{field}.type"),
                            "sequences belong in an unsharded keyspace".into(),
                        );
                    }
                }
                TableKind::Reference => {
                    if !self.sharded {
                        return bad(
                            format!("{field}.type"),
                            "reference tables belong in a sharded keyspace".into(),
                        );
                    }
                    if t.shard_key.is_some() || t.vindex.is_some() {
                        return bad(
                            format!("{field}.shard_key"),
                            "a reference table has no shard key or vindex".into(),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = "keyspace: demo\nsharded: true\nlogical_shards: 64\ntables:\n  customer: { shard_key: customer_id, vindex: xxhash }\n  orders:   { shard_key: customer_id, vindex: xxhash }\n  country:  { type: reference }\n";

    #[test]
    fn parses_the_demo() {
        let v = VSchema::from_yaml(DEMO).expect("valid");
        assert_eq!(v.logical_shard_count(), 64);
        assert_eq!(
            v.table("country").map(|t| t.kind),
            Some(TableKind::Reference)
        );
    }

    #[test]
    fn rejects_non_power_of_two() {
        let e = VSchema::from_yaml(&DEMO.replace("64", "48")).expect_err("invalid");
        assert!(e.to_string().contains("logical_shards"), "{e}");
    }

    #[test]
    fn rejects_unknown_fields_and_vindexes() {
        let e = VSchema::from_yaml(&DEMO.replace(
            "shard_key: customer_id, vindex: xxhash }\n  orders",
            "shardkey: customer_id }\n  orders",
        ))
        .expect_err("invalid");
        assert!(e.to_string().contains("shardkey"), "{e}");
        let e = VSchema::from_yaml(
            &DEMO.replace("vindex: xxhash }\n  orders", "vindex: crc32 }\n  orders"),
        )
        .expect_err("invalid");
        assert!(e.to_string().contains("crc32"), "{e}");
    }

    #[test]
    fn rejects_missing_shard_key() {
        let e =
            VSchema::from_yaml("keyspace: k\nsharded: true\nlogical_shards: 4\ntables:\n  t: {}\n")
                .expect_err("invalid");
        assert!(e.to_string().contains("tables.t.shard_key"), "{e}");
    }
}
