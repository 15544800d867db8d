//! Merging per-shard results in the router: a streaming merge-sort for `ORDER BY`, and
//! group folding for aggregates, `GROUP BY`, `HAVING` and `DISTINCT`.
//!
//! Values are compared as MariaDB compares them: integers and decimals exactly (as scaled
//! 128-bit integers), floating point as `f64`, temporal values by their fixed-width text (TIME
//! by its signed length), strings by their collation's `WEIGHT_STRING`, and NULL first.

use crate::error::SqlError;
use crate::planner::merge::{Agg, Col, HavingCond, MergeMode, MergeSpec, SortKey};
use crate::wire::codec::Cursor;
use crate::wire::resultset::ColumnDef;
use sqlparser::ast::BinaryOperator;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Where each value of an encoded row lies (None for NULL).
pub type Spans = Vec<Option<(usize, usize)>>;

/// Splits an encoded text row into its values.
pub fn split_row(row: &[u8], ncols: usize) -> Option<Vec<Option<(usize, usize)>>> {
    let mut out = Vec::with_capacity(ncols);
    let mut c = Cursor::new(row);
    let mut pos = 0usize;
    for _ in 0..ncols {
        let before = c.remaining();
        if row.get(pos) == Some(&0xfb) {
            c.u8()?;
            out.push(None);
        } else {
            let v = c.lenenc_str()?;
            let start = pos + (before - c.remaining()) - v.len();
            out.push(Some((start, start + v.len())));
        }
        pos = row.len() - c.remaining();
    }
    Some(out)
}

/// How values of a column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exact,
    Float,
    Text,
    Time,
    /// Strings: by weight when there is one, else by bytes.
    Str,
    /// Binary strings: by bytes.
    Bytes,
}

/// Returns the comparison kind of a column type.
pub fn kind_of(column_type: u8) -> Kind {
    match column_type {
        0 | 1 | 2 | 3 | 8 | 9 | 13 | 246 => Kind::Exact,
        4 | 5 => Kind::Float,
        7 | 10 | 12 | 14 | 17 | 18 => Kind::Text,
        11 | 19 => Kind::Time,
        _ => Kind::Str,
    }
}

/// Returns the comparison kind of a column.
pub fn column_kind(d: &ColumnDef) -> Kind {
    match kind_of(d.column_type) {
        Kind::Str if d.charset == 63 => Kind::Bytes,
        k => k,
    }
}

/// A decimal as a mantissa and a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    pub m: i128,
    pub scale: u32,
}

impl Dec {
    pub fn parse(s: &[u8]) -> Option<Dec> {
        let s = std::str::from_utf8(s).ok()?.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (ip, fp) = s.split_once('.').unwrap_or((s, ""));
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        let mut m: i128 = 0;
        for ch in ip.bytes().chain(fp.bytes()) {
            if !ch.is_ascii_digit() {
                return None;
            }
            m = m.checked_mul(10)?.checked_add(i128::from(ch - b'0'))?;
        }
        Some(Dec {
            m: if neg { -m } else { m },
            scale: fp.len() as u32,
        })
    }

    pub fn rescale(self, scale: u32) -> Option<Dec> {
        if scale < self.scale {
            return None;
        }
        let f = 10i128.checked_pow(scale - self.scale)?;
        Some(Dec {
            m: self.m.checked_mul(f)?,
            scale,
        })
    }

    pub fn compare(self, o: Dec) -> Ordering {
        let s = self.scale.max(o.scale);
        match (self.rescale(s), o.rescale(s)) {
            (Some(a), Some(b)) => a.m.cmp(&b.m),
            _ => self
                .to_f64()
                .partial_cmp(&o.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    pub fn checked_add(self, o: Dec) -> Option<Dec> {
        let s = self.scale.max(o.scale);
        let (a, b) = (self.rescale(s)?, o.rescale(s)?);
        Some(Dec {
            m: a.m.checked_add(b.m)?,
            scale: s,
        })
    }

    fn to_f64(self) -> f64 {
        self.m as f64 / 10f64.powi(self.scale as i32)
    }

    pub fn format(self) -> String {
        let neg = self.m < 0;
        let digits = self.m.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let s = if scale == 0 {
            digits
        } else if digits.len() > scale {
            format!(
                "{}.{}",
                &digits[..digits.len() - scale],
                &digits[digits.len() - scale..]
            )
        } else {
            format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
        };
        if neg {
            format!("-{s}")
        } else {
            s
        }
    }
}

fn time_micros(s: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(s).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = main.split(':');
    let h: i128 = parts.next()?.parse().ok()?;
    let m: i128 = parts.next()?.parse().ok()?;
    let sec: i128 = parts.next()?.parse().ok()?;
    let f: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").get(..6)?.parse().ok()?
    };
    let v = ((h * 60 + m) * 60 + sec) * 1_000_000 + f;
    Some(if neg { -v } else { v })
}

/// Compares two values of one column (None = NULL, which sorts first).
pub fn compare(
    kind: Kind,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    wa: Option<&[u8]>,
    wb: Option<&[u8]>,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match kind {
            Kind::Exact => match (Dec::parse(x), Dec::parse(y)) {
                (Some(p), Some(q)) => p.compare(q),
                _ => {
                    // A literal like 1e2: compare as doubles.
                    let p: Option<f64> = std::str::from_utf8(x)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    let q: Option<f64> = std::str::from_utf8(y)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match (p, q) {
                        (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
                        _ => x.cmp(y),
                    }
                }
            },
            Kind::Float => {
                let p: f64 = std::str::from_utf8(x)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                let q: f64 = std::str::from_utf8(y)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                p.partial_cmp(&q).unwrap_or_else(|| x.cmp(y))
            }
            Kind::Text | Kind::Bytes => x.cmp(y),
            Kind::Time => match (time_micros(x), time_micros(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.cmp(y),
            },
            Kind::Str => match (wa, wb) {
                (Some(p), Some(q)) => p.cmp(q),
                _ => x.cmp(y),
            },
        },
    }
}

/// Refuses sort and group keys on strings with a NO PAD collation: the router's weights drop
/// trailing spaces, which such collations count.
///
/// # Errors
/// 1235 naming the shape.
pub fn check_keys(defs: &[ColumnDef], layout: &Layout, spec: &MergeSpec) -> Result<(), SqlError> {
    let keys: Vec<&SortKey> = match &spec.mode {
        MergeMode::Sorted { keys } => keys.iter().collect(),
        MergeMode::Aggregate { group, order, .. } => group.iter().chain(order.iter()).collect(),
    };
    for k in keys {
        let i = layout.idx(k.col);
        // ENUM and SET sort by their index, which the router does not see.
        if matches!(defs[i].column_type, 247 | 248) || defs[i].flags & (0x100 | 0x800) != 0 {
            return Err(SqlError::unsupported(
                "ORDER BY, GROUP BY or DISTINCT on an ENUM or SET column across logical shards",
            ));
        }
        // MariaDB numbers its NO PAD collations from 1024.
        if layout.kinds[i] == Kind::Str && defs[i].charset >= 1024 {
            return Err(SqlError::unsupported(
                "ORDER BY, GROUP BY or DISTINCT on a NO PAD collation string across logical shards",
            ));
        }
    }
    Ok(())
}

/// Column positions and kinds for a result of `total` columns.
pub struct Layout {
    pub total: usize,
    pub hidden: usize,
    pub kinds: Vec<Kind>,
}

impl Layout {
    pub fn new(defs: &[ColumnDef], spec: &MergeSpec) -> Result<Layout, SqlError> {
        let total = defs.len();
        if total < spec.hidden || spec.visible.is_some_and(|v| v + spec.hidden != total) {
            return Err(SqlError::router("unexpected column count from a shard"));
        }
        Ok(Layout {
            total,
            hidden: spec.hidden,
            kinds: defs.iter().map(column_kind).collect(),
        })
    }

    pub fn idx(&self, c: Col) -> usize {
        match c {
            Col::Item(i) => i,
            Col::Hidden(j) => self.total - self.hidden + j,
        }
    }

    pub fn visible(&self) -> usize {
        self.total - self.hidden
    }
}

fn val<'r>(row: &'r [u8], cols: &[Option<(usize, usize)>], i: usize) -> Option<&'r [u8]> {
    cols.get(i).copied().flatten().map(|(s, e)| &row[s..e])
}

/// Compares two rows by `keys`.
pub fn cmp_rows(
    l: &Layout,
    keys: &[SortKey],
    a: &[u8],
    ac: &[Option<(usize, usize)>],
    b: &[u8],
    bc: &[Option<(usize, usize)>],
) -> Ordering {
    for k in keys {
        let i = l.idx(k.col);
        let w = k.weight.map(|w| l.idx(w));
        let o = compare(
            l.kinds[i],
            val(a, ac, i),
            val(b, bc, i),
            w.and_then(|w| val(a, ac, w)),
            w.and_then(|w| val(b, bc, w)),
        );
        let o = if k.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Returns the byte length of the first `n` values of an encoded row.
pub fn prefix_len(cols: &[Option<(usize, usize)>], row: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    match cols.get(n - 1) {
        Some(Some((_, e))) => *e,
        Some(None) => {
            // A NULL is one byte (0xfb) just after the previous value.
            let prev = if n >= 2 {
                prefix_len(cols, row, n - 1)
            } else {
                0
            };
            prev + 1
        }
        None => row.len(),
    }
}

/// One merged group.
struct Group {
    row: Vec<u8>,
    cols: Vec<Option<(usize, usize)>>,
    acc: Vec<Acc>,
}

#[derive(Clone)]
enum Acc {
    Any,
    Count(i128),
    Sum(Option<Dec>),
    Pick {
        v: Option<Vec<u8>>,
        w: Option<Vec<u8>>,
        seen: bool,
    },
    Avg {
        sum: Option<Dec>,
        count: i128,
    },
    /// The distinct values seen (collation weights for strings, canonical numbers).
    Distinct(std::collections::HashSet<Vec<u8>>),
}

/// The bytes that identify a value of `kind` in a group key or a distinct set: numbers
/// canonical (1 and 1.0 are one value), anything else as it is.
fn canonical(kind: Kind, b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if kind == Kind::Exact {
        if let Some(d) = Dec::parse(b) {
            let mut m = d.m;
            let mut s = d.scale;
            while s > 0 && m % 10 == 0 {
                m /= 10;
                s -= 1;
            }
            return std::borrow::Cow::Owned(format!("{m}e{s}").into_bytes());
        }
    }
    std::borrow::Cow::Borrowed(b)
}

/// What makes a column's value equal to another's in a group key or a distinct set: a
/// string's collation weight (`weight`), a number in canonical form, anything else as it is;
/// `None` for NULL.
fn identity<'r>(
    layout: &Layout,
    row: &'r [u8],
    cols: &[Option<(usize, usize)>],
    col: Col,
    weight: Option<Col>,
) -> Option<std::borrow::Cow<'r, [u8]>> {
    let i = layout.idx(col);
    let kind = layout.kinds[i];
    if kind == Kind::Str {
        weight
            .and_then(|w| val(row, cols, layout.idx(w)))
            .or(val(row, cols, i))
            .map(std::borrow::Cow::Borrowed)
    } else {
        val(row, cols, i).map(|b| canonical(kind, b))
    }
}

/// Folds rows into groups and produces the merged rows (already encoded, visible columns).
pub struct Aggregator<'s> {
    spec: &'s MergeSpec,
    layout: Layout,
    defs: Vec<ColumnDef>,
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<Group>,
}

impl<'s> Aggregator<'s> {
    /// # Errors
    /// 1235 for sums of floating-point columns (their result would depend on summation order).
    pub fn new(spec: &'s MergeSpec, defs: Vec<ColumnDef>) -> Result<Self, SqlError> {
        let layout = Layout::new(&defs, spec)?;
        check_keys(&defs, &layout, spec)?;
        if let MergeMode::Aggregate { aggs, having, .. } = &spec.mode {
            for h in having {
                let i = layout.idx(h.col);
                if !matches!(layout.kinds[i], Kind::Exact | Kind::Float) {
                    return Err(SqlError::unsupported(
                        "HAVING on a non-numeric aggregate across logical shards",
                    ));
                }
            }
            for (i, a) in aggs.iter().enumerate() {
                if matches!(a, Agg::Sum | Agg::Avg { .. }) && layout.kinds[i] != Kind::Exact {
                    return Err(SqlError::unsupported(
                        "SUM or AVG of floating-point or non-numeric values across logical shards (the result would depend on summation order)",
                    ));
                }
            }
        }
        Ok(Aggregator {
            spec,
            layout,
            defs,
            index: HashMap::new(),
            groups: Vec::new(),
        })
    }

    fn parts(&self) -> (&[SortKey], &[Agg], &[HavingCond], &[SortKey]) {
        match &self.spec.mode {
            MergeMode::Aggregate {
                group,
                aggs,
                having,
                order,
                ..
            } => (group, aggs, having, order),
            MergeMode::Sorted { .. } => (&[], &[], &[], &[]),
        }
    }

    /// Adds one encoded row.
    ///
    /// # Errors
    /// Malformed rows and arithmetic overflow.
    pub fn add(&mut self, row: Vec<u8>) -> Result<(), SqlError> {
        let cols = split_row(&row, self.layout.total)
            .ok_or_else(|| SqlError::router("malformed row from a shard"))?;
        let mut key = Vec::new();
        let (group, aggs, _, _) = self.parts();
        for k in group {
            match identity(&self.layout, &row, &cols, k.col, k.weight) {
                None => key.push(0),
                Some(b) => {
                    key.push(1);
                    key.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    key.extend_from_slice(&b);
                }
            }
        }
        let aggs: Vec<Agg> = aggs.to_vec();
        let gi = match self.index.get(&key) {
            Some(g) => *g,
            None => {
                let acc = aggs
                    .iter()
                    .map(|a| match a {
                        Agg::Any => Acc::Any,
                        Agg::Count => Acc::Count(0),
                        Agg::Sum => Acc::Sum(None),
                        Agg::Min { .. } | Agg::Max { .. } => Acc::Pick {
                            v: None,
                            w: None,
                            seen: false,
                        },
                        Agg::Avg { .. } => Acc::Avg {
                            sum: None,
                            count: 0,
                        },
                        Agg::CountDistinct { .. } => Acc::Distinct(Default::default()),
                    })
                    .collect();
                self.groups.push(Group {
                    row: row.clone(),
                    cols: cols.clone(),
                    acc,
                });
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let overflow =
            || SqlError::unsupported("aggregates beyond 38 digits across logical shards");
        for (i, a) in aggs.iter().enumerate() {
            let v = val(&row, &cols, i);
            let kind = self.layout.kinds[i];
            let g = &mut self.groups[gi];
            match (a, &mut g.acc[i]) {
                (Agg::Count, Acc::Count(c)) => {
                    let n = v.and_then(Dec::parse).map_or(0, |d| d.m);
                    *c = c.checked_add(n).ok_or_else(overflow)?;
                }
                (Agg::Sum, Acc::Sum(s)) => {
                    if let Some(d) = v.and_then(Dec::parse) {
                        *s = Some(match s {
                            Some(x) => x.checked_add(d).ok_or_else(overflow)?,
                            None => d,
                        });
                    }
                }
                (Agg::Min { weight } | Agg::Max { weight }, Acc::Pick { v: pv, w: pw, seen }) => {
                    let wi = self.layout.idx(*weight);
                    let w = val(&row, &cols, wi);
                    if v.is_some() {
                        let better = if !*seen || pv.is_none() {
                            true
                        } else {
                            let o = compare(kind, v, pv.as_deref(), w, pw.as_deref());
                            if matches!(a, Agg::Min { .. }) {
                                o == Ordering::Less
                            } else {
                                o == Ordering::Greater
                            }
                        };
                        if better {
                            *pv = v.map(<[u8]>::to_vec);
                            *pw = w.map(<[u8]>::to_vec);
                        }
                    }
                    *seen = true;
                }
                (Agg::Avg { count }, Acc::Avg { sum, count: c }) => {
                    if let Some(d) = v.and_then(Dec::parse) {
                        *sum = Some(match sum {
                            Some(x) => x.checked_add(d).ok_or_else(overflow)?,
                            None => d,
                        });
                    }
                    let ci = self.layout.idx(*count);
                    let n = val(&row, &cols, ci).and_then(Dec::parse).map_or(0, |d| d.m);
                    *c = c.checked_add(n).ok_or_else(overflow)?;
                }
                // 1 for a shard's group of one non-NULL value, 0 for NULL.
                (Agg::CountDistinct { value, weight }, Acc::Distinct(set))
                    if v.and_then(Dec::parse).is_some_and(|d| d.m > 0) =>
                {
                    if let Some(k) = identity(&self.layout, &row, &cols, *value, Some(*weight)) {
                        set.insert(k.into_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Returns the column definitions the client sees.
    pub fn columns(&self) -> Vec<ColumnDef> {
        let (_, aggs, _, _) = self.parts();
        let mut defs: Vec<ColumnDef> = self.defs[..self.layout.visible()].to_vec();
        for (i, a) in aggs.iter().enumerate() {
            if let Agg::Avg { .. } = a {
                let d = &mut defs[i];
                d.column_type = 246;
                d.decimals = (u32::from(d.decimals) + 4).min(38) as u8;
                d.length = d.length.saturating_add(4);
            }
        }
        defs
    }

    /// Finishes: merged values, `HAVING`, order, `LIMIT`; returns encoded rows.
    ///
    /// # Errors
    /// Arithmetic overflow.
    pub fn finish(self) -> Result<Vec<Vec<u8>>, SqlError> {
        let (group, aggs, having, order) = self.parts();
        let (group, aggs, having, order) = (
            group.to_vec(),
            aggs.to_vec(),
            having.to_vec(),
            order.to_vec(),
        );
        let empty_row = matches!(
            self.spec.mode,
            MergeMode::Aggregate {
                empty_row: true,
                ..
            }
        );
        let visible = self.layout.visible();
        let defs = self.columns();
        // Each group's output values (visible) plus the weights needed for ordering.
        struct Out {
            vals: Vec<Option<Vec<u8>>>,
            src: Group,
        }
        let mut outs = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let mut vals = Vec::with_capacity(visible);
            for (i, a) in aggs.iter().enumerate() {
                let v: Option<Vec<u8>> = match (&g.acc[i], a) {
                    (Acc::Count(c), _) => Some(c.to_string().into_bytes()),
                    (Acc::Sum(s), _) => s.map(|d| d.format().into_bytes()),
                    (Acc::Pick { v, .. }, _) => v.clone(),
                    (Acc::Avg { sum, count }, _) => match (sum, *count) {
                        (Some(s), c) if c > 0 => {
                            let scale = u32::from(defs[i].decimals);
                            let s = s.rescale(scale + 1).ok_or_else(|| {
                                SqlError::unsupported("AVG beyond 38 digits across logical shards")
                            })?;
                            // Round half away from zero, as MariaDB does for decimals.
                            let q = s.m / c;
                            let r = if q >= 0 { (q + 5) / 10 } else { (q - 5) / 10 };
                            Some(Dec { m: r, scale }.format().into_bytes())
                        }
                        _ => None,
                    },
                    (Acc::Any, _) => val(&g.row, &g.cols, i).map(<[u8]>::to_vec),
                    (Acc::Distinct(set), _) => Some(set.len().to_string().into_bytes()),
                };
                vals.push(v);
            }
            outs.push(Out { vals, src: g });
        }
        // No row from any shard, no GROUP BY: the one row of empty aggregates.
        if outs.is_empty() && empty_row {
            let vals = aggs
                .iter()
                .map(|a| match a {
                    Agg::Count | Agg::CountDistinct { .. } => Some(b"0".to_vec()),
                    _ => None,
                })
                .collect();
            outs.push(Out {
                vals,
                src: Group {
                    row: Vec::new(),
                    cols: vec![None; self.layout.total],
                    acc: Vec::new(),
                },
            });
        }
        // HAVING.
        outs.retain(|o| {
            having.iter().all(|h| {
                let i = match h.col {
                    Col::Item(i) => i,
                    Col::Hidden(_) => return false,
                };
                let Some(v) = o.vals[i].as_deref() else {
                    return false;
                };
                let kind = if defs[i].column_type == 4 || defs[i].column_type == 5 {
                    Kind::Float
                } else {
                    Kind::Exact
                };
                let c = compare(kind, Some(v), Some(h.value.as_bytes()), None, None);
                match h.op {
                    BinaryOperator::Eq => c == Ordering::Equal,
                    BinaryOperator::NotEq => c != Ordering::Equal,
                    BinaryOperator::Lt => c == Ordering::Less,
                    BinaryOperator::LtEq => c != Ordering::Greater,
                    BinaryOperator::Gt => c == Ordering::Greater,
                    BinaryOperator::GtEq => c != Ordering::Less,
                    _ => false,
                }
            })
        });
        // ORDER BY (or, for GROUP BY, the group keys ascending, as MariaDB sorts groups).
        let keys: Vec<SortKey> = if order.is_empty() {
            group.clone()
        } else {
            order
        };
        let layout = &self.layout;
        if !keys.is_empty() {
            let weight_of = |o: &Out, k: &SortKey| -> Option<Vec<u8>> {
                let i = layout.idx(k.col);
                match (k.col, aggs.get(i)) {
                    (Col::Item(_), Some(Agg::Min { .. } | Agg::Max { .. })) => {
                        match &o.src.acc[i] {
                            Acc::Pick { w, .. } => w.clone(),
                            _ => None,
                        }
                    }
                    _ => k
                        .weight
                        .map(|w| layout.idx(w))
                        .and_then(|w| val(&o.src.row, &o.src.cols, w))
                        .map(<[u8]>::to_vec),
                }
            };
            let value_of = |o: &Out, k: &SortKey| -> Option<Vec<u8>> {
                match k.col {
                    Col::Item(i) => o.vals[i].clone(),
                    Col::Hidden(_) => {
                        val(&o.src.row, &o.src.cols, layout.idx(k.col)).map(<[u8]>::to_vec)
                    }
                }
            };
            let kind_of_key = |k: &SortKey| -> Kind {
                match k.col {
                    Col::Item(i) => column_kind(&defs[i]),
                    Col::Hidden(_) => layout.kinds[layout.idx(k.col)],
                }
            };
            outs.sort_by(|a, b| {
                for k in &keys {
                    let o = compare(
                        kind_of_key(k),
                        value_of(a, k).as_deref(),
                        value_of(b, k).as_deref(),
                        weight_of(a, k).as_deref(),
                        weight_of(b, k).as_deref(),
                    );
                    let o = if k.desc { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        let (skip, take) = self.spec.limit.unwrap_or((0, u64::MAX));
        let mut rows = Vec::new();
        for o in outs
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(take).unwrap_or(usize::MAX))
        {
            let mut buf = Vec::new();
            for v in &o.vals {
                crate::wire::resultset::put_text_value(&mut buf, v.as_deref());
            }
            rows.push(buf);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let a = Dec::parse(b"-1.50").expect("dec");
        let b = Dec::parse(b"2").expect("dec");
        assert_eq!(a.checked_add(b).expect("sum").format(), "0.50");
        assert_eq!(a.compare(b), Ordering::Less);
        assert_eq!(Dec::parse(b"0.001").expect("d").format(), "0.001");
        assert_eq!(
            compare(Kind::Exact, Some(b"10"), Some(b"9"), None, None),
            Ordering::Greater
        );
        assert_eq!(
            compare(
                Kind::Time,
                Some(b"-01:00:00"),
                Some(b"00:30:00"),
                None,
                None
            ),
            Ordering::Less
        );
        assert_eq!(
            compare(Kind::Str, Some(b"a"), None, None, None),
            Ordering::Greater
        );
    }

    #[test]
    fn rows_split_and_prefix() {
        let mut r = Vec::new();
        crate::wire::resultset::put_text_value(&mut r, Some(b"ab"));
        crate::wire::resultset::put_text_value(&mut r, None);
        crate::wire::resultset::put_text_value(&mut r, Some(b"c"));
        let cols = split_row(&r, 3).expect("split");
        assert_eq!(cols, vec![Some((1, 3)), None, Some((5, 6))]);
        assert_eq!(prefix_len(&cols, &r, 2), 4);
        assert_eq!(prefix_len(&cols, &r, 1), 3);
        assert!(split_row(&r, 4).is_none());
    }
}
