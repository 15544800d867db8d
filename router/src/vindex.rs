//! Vindexes: functions from a shard-key value to a 64-bit keyspace id, and from a keyspace
//! id to its logical shard.

use md5::{Digest, Md5};
use tessera_topo::VindexKind;
use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh64::xxh64;

/// A shard-key value as it appears in SQL: an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Int(i128),
    Bytes(Vec<u8>),
}

/// Why a value cannot be mapped by a vindex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VindexError {
    #[error("the numeric vindex needs an unsigned 64-bit integer, got {0}")]
    NotUnsigned(String),
}

impl KeyValue {
    /// Returns the canonical bytes that hash-based vindexes hash: an integer (or a string
    /// that is an integer, as MySQL compares them) as 8 big-endian bytes, a string as is.
    fn canonical(&self) -> Vec<u8> {
        match self {
            KeyValue::Int(i) => (*i as u64).to_be_bytes().to_vec(),
            KeyValue::Bytes(b) => b.clone(),
        }
    }
}

/// Returns the keyspace id of `v` under `kind`.
///
/// # Errors
/// [`VindexError`] when the value does not fit the vindex.
pub fn keyspace_id(kind: VindexKind, v: &KeyValue) -> Result<u64, VindexError> {
    Ok(match kind {
        VindexKind::Xxhash => xxh64(&v.canonical(), 0),
        VindexKind::Numeric => match v {
            KeyValue::Int(i) if *i >= 0 && *i <= i128::from(u64::MAX) => *i as u64,
            KeyValue::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| VindexError::NotUnsigned(String::from_utf8_lossy(b).into_owned()))?,
            KeyValue::Int(i) => return Err(VindexError::NotUnsigned(i.to_string())),
        },
        VindexKind::BinaryMd5 => {
            let d = Md5::digest(v.canonical());
            let mut a = [0u8; 8];
            a.copy_from_slice(&d[..8]);
            u64::from_be_bytes(a)
        }
        VindexKind::UnicodeLooseXxhash => xxh64(&loose(&v.canonical()), 0),
    })
}

/// Folds a string for case- and accent-insensitive comparison, as `*_unicode_ci` collations
/// do for the common cases: NFKD decomposition, combining marks dropped, lower case, trailing
/// spaces dropped (PAD SPACE).
fn loose(b: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(b);
    // utf8mb4_general_ci's own equivalences that decomposition does not give.
    let s: String = s
        .chars()
        .map(|c| match c {
            'ß' => 's',
            'ı' => 'i',
            _ => c,
        })
        .collect();
    let folded: String = s
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded.trim_end_matches(' ').as_bytes().to_vec()
}

/// Returns the logical shard (of `count`, a power of two) that owns `keyspace_id`: the top
/// `log2(count)` bits.
pub fn logical_shard(keyspace_id: u64, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    let bits = count.trailing_zeros();
    (keyspace_id >> (64 - bits)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_shard_uses_top_bits() {
        assert_eq!(logical_shard(0, 64), 0);
        assert_eq!(logical_shard(u64::MAX, 64), 63);
        assert_eq!(logical_shard(0x0400_0000_0000_0000, 64), 1);
        assert_eq!(logical_shard(12345, 1), 0);
    }

    #[test]
    fn numeric_is_identity() {
        assert_eq!(keyspace_id(VindexKind::Numeric, &KeyValue::Int(7)), Ok(7));
        assert!(keyspace_id(VindexKind::Numeric, &KeyValue::Int(-1)).is_err());
    }

    #[test]
    fn integer_strings_hash_like_integers_only_for_numeric() {
        let a = keyspace_id(VindexKind::Xxhash, &KeyValue::Int(42)).expect("ok");
        let b = keyspace_id(VindexKind::Xxhash, &KeyValue::Int(42)).expect("ok");
        assert_eq!(a, b);
    }

    #[test]
    fn loose_folds_case_and_accents() {
        let k = |s: &str| {
            keyspace_id(
                VindexKind::UnicodeLooseXxhash,
                &KeyValue::Bytes(s.as_bytes().to_vec()),
            )
        };
        assert_eq!(k("Élan"), k("elan"));
        assert_eq!(k("abc "), k("ABC"));
        assert_ne!(k("abc"), k("abd"));
    }
}
