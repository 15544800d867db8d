//! Shard-key values: literals as MariaDB compares them with the key's type, and the
//! logical shards a statement's `WHERE` pins.

use crate::vindex::{self, KeyValue};
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::MySqlDialect;
use std::collections::BTreeSet;
use tessera_topo::{KeyType, VindexKind};

/// A plain literal as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Int(i128),
    /// A number with a fraction or exponent, as written.
    Num(String),
    Str(String),
}

/// Returns a plain literal, or `None` for anything else (NULL, expressions, parameters).
pub(super) fn lit(e: &Expr) -> Option<Lit> {
    match e {
        Expr::Value(v) => lit_of_value(&v.value),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match lit(expr)? {
            Lit::Int(i) => Some(Lit::Int(-i)),
            Lit::Num(n) => Some(Lit::Num(format!("-{n}"))),
            Lit::Str(_) => None,
        },
        Expr::Nested(inner) => lit(inner),
        _ => None,
    }
}

/// A number or quoted string as a plain literal.
pub(super) fn lit_of_value(v: &Value) -> Option<Lit> {
    match v {
        Value::Number(n, _) => Some(
            n.parse::<i128>()
                .map_or_else(|_| Lit::Num(n.clone()), Lit::Int),
        ),
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(Lit::Str(s.clone())),
        _ => None,
    }
}

/// The logical shard of one key value.
pub(super) fn shard_of(v: VindexKind, kv: &KeyValue, count: u32) -> Option<u32> {
    vindex::keyspace_id(v, kv)
        .ok()
        .map(|id| vindex::logical_shard(id, count))
}

/// Converts a string to a number as MySQL does when comparing it with a number: leading
/// spaces skipped, the longest numeric prefix read (none: 0).
pub(super) fn mysql_str_to_f64(s: &str) -> f64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r']);
    let b = t.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && b.get(digits_start) == Some(&b'.')) {
        return 0.0;
    }
    let mut num_end = end;
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        let ds = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > ds {
            num_end = e;
        }
    }
    t[..num_end].parse().unwrap_or(0.0)
}

/// An integral number MySQL would compare equal to a key, if there is exactly one.
pub(super) fn exact_int(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i128)
}

/// Returns the shard-key value a literal stands for when compared with (or stored in) a key
/// column of `ty`, or `None` when no single value is meant (then the statement scatters).
pub(super) fn key_value(l: &Lit, ty: KeyType, storing: bool) -> Option<KeyValue> {
    match (ty, l) {
        (KeyType::Integer, Lit::Int(i)) => Some(KeyValue::Int(*i)),
        (KeyType::Integer, Lit::Num(n)) => exact_int(n.parse::<f64>().ok()?).map(KeyValue::Int),
        // Stored into an integer column, an integer string is taken exactly (beyond 2^53 too).
        (KeyType::Integer, Lit::Str(s)) if storing && s.trim().parse::<i128>().is_ok() => {
            s.trim().parse::<i128>().ok().map(KeyValue::Int)
        }
        (KeyType::Integer, Lit::Str(s)) => exact_int(mysql_str_to_f64(s)).map(KeyValue::Int),
        // Trailing spaces do not count in PAD SPACE comparisons.
        (KeyType::String, Lit::Str(s)) => {
            Some(KeyValue::Bytes(s.trim_end_matches(' ').as_bytes().to_vec()))
        }
        // A number compared with a string column compares as a number: '042' = 42.
        (KeyType::String, Lit::Int(i)) if storing => {
            Some(KeyValue::Bytes(i.to_string().into_bytes()))
        }
        (KeyType::String, Lit::Num(n)) if storing => Some(KeyValue::Bytes(n.clone().into_bytes())),
        (KeyType::String, _) => None,
    }
}

/// Returns the logical shard that one literal token (a number or a quoted string) routes a
/// key of `ty` to, as the planner would for `key = literal`; `None` when it names no single
/// value or is not one such token.
pub(crate) fn literal_ls(text: &str, vindex: VindexKind, ty: KeyType, count: u32) -> Option<u32> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let l = if !text.is_empty() && text.len() < 30 && text.bytes().all(|b| b.is_ascii_digit()) {
        // A plain decimal integer, without tokenizing it.
        Lit::Int(text.parse().ok()?)
    } else {
        let tokens = Tokenizer::new(&MySqlDialect {}, text).tokenize().ok()?;
        let value = match tokens.as_slice() {
            [Token::Number(n, long)] => Value::Number(n.clone(), *long),
            [Token::SingleQuotedString(s)] => Value::SingleQuotedString(s.clone()),
            [Token::DoubleQuotedString(s)] => Value::DoubleQuotedString(s.clone()),
            _ => return None,
        };
        lit_of_value(&value)?
    };
    shard_of(vindex, &key_value(&l, ty, false)?, count)
}

impl From<Lit> for super::plan::KeyLiteral {
    fn from(l: Lit) -> Self {
        match l {
            Lit::Int(i) => super::plan::KeyLiteral::Int(i),
            Lit::Num(n) => super::plan::KeyLiteral::Num(n),
            Lit::Str(s) => super::plan::KeyLiteral::Str(s),
        }
    }
}

/// Returns the value a literal stands for when compared with (or, `storing`, stored in) a
/// key column of `ty`; `None` when no single value is meant.
pub(crate) fn literal_key(
    l: &super::plan::KeyLiteral,
    ty: KeyType,
    storing: bool,
) -> Option<KeyValue> {
    let l = match l {
        super::plan::KeyLiteral::Int(i) => Lit::Int(*i),
        super::plan::KeyLiteral::Num(n) => Lit::Num(n.clone()),
        super::plan::KeyLiteral::Str(s) => Lit::Str(s.clone()),
    };
    key_value(&l, ty, storing)
}

/// Returns a literal's value for routing a key of `ty`.
pub(super) fn literal_for(e: &Expr, ty: KeyType) -> Option<KeyValue> {
    key_value(&lit(e)?, ty, false)
}

/// Returns the logical shards that rows matching `e` can live in, when the shard key decides
/// it: `key = literal`, `key IN (literals)`, `AND` (intersection of what its sides decide),
/// `OR` (union, when both sides decide). `None` when the shard key does not decide.
pub(super) fn key_set(
    e: &Expr,
    key: &dyn Fn(&Expr) -> Option<(VindexKind, KeyType)>,
    count: u32,
) -> Option<BTreeSet<u32>> {
    let of = |v: VindexKind, vals: &[KeyValue]| -> Option<BTreeSet<u32>> {
        vals.iter().map(|x| shard_of(v, x, count)).collect()
    };
    match e {
        Expr::Nested(inner) => key_set(inner, key, count),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (k, other) = match (key(left), key(right)) {
                (Some(k), _) => (k, right),
                (None, Some(k)) => (k, left),
                (None, None) => return None,
            };
            of(k.0, &[literal_for(other, k.1)?])
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let (v, ty) = key(expr)?;
            let vals: Vec<KeyValue> = list
                .iter()
                .map(|x| literal_for(x, ty))
                .collect::<Option<Vec<_>>>()?;
            of(v, &vals)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => match (key_set(left, key, count), key_set(right, key, count)) {
            (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut a = key_set(left, key, count)?;
            a.extend(key_set(right, key, count)?);
            Some(a)
        }
        _ => None,
    }
}
