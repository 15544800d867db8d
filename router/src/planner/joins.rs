//! How the tables of a `FROM` clause join: which name or alias stands for which table, and
//! whether every sharded table is joined to the others on equal shard keys of the same
//! vindex (then each logical shard answers for its own rows, as if alone).

use super::ast::{column_ref, ident_parts};
use super::resolve::{Resolved, TableRef};

use crate::error::SqlError;
use crate::topology::TableRouting;
use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, TableFactor, TableWithJoins,
};
use std::collections::{BTreeSet, HashMap};
use tessera_topo::{KeyType, VindexKind};

/// The tables of a `FROM` clause: name or alias -> table name, each table factor as the name
/// the statement refers to it by (its alias, else its name) with its table, and the
/// conjuncts of the joins' `ON` conditions.
#[derive(Default)]
pub(super) struct FromJoins<'e> {
    pub(super) aliases: HashMap<String, String>,
    pub(super) factors: Vec<(String, String)>,
    pub(super) join_eqs: Vec<&'e Expr>,
}

/// Reads `from`; 1235 for `JOIN … USING` (whose columns the router does not resolve).
pub(super) fn from_joins<'e>(from: &'e [TableWithJoins]) -> Result<FromJoins<'e>, SqlError> {
    let mut out = FromJoins::default();
    for twj in from {
        let mut factors = vec![&twj.relation];
        for j in &twj.joins {
            factors.push(&j.relation);
            let constraint = match &j.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::StraightJoin(c) => Some(c),
                _ => None,
            };
            match constraint {
                Some(JoinConstraint::On(e)) => super::ast::conjuncts(e, &mut out.join_eqs),
                Some(JoinConstraint::Using(_)) => {
                    return Err(SqlError::unsupported(
                        "JOIN ... USING over sharded tables (write the ON condition)",
                    ))
                }
                _ => {}
            }
        }
        for f in factors {
            if let TableFactor::Table { name, alias, .. } = f {
                if let Some(t) = ident_parts(name).and_then(|p| p.last().map(|i| i.value.clone())) {
                    out.aliases.insert(t.clone(), t.clone());
                    let called = alias.as_ref().map_or(t.clone(), |a| a.name.value.clone());
                    out.factors.push((called, t.clone()));
                    if let Some(a) = alias {
                        out.aliases.insert(a.name.value.clone(), t);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The sharded table whose shard key column `e` is (qualified by a name or alias of
/// `aliases`, or unqualified when only one sharded table has a shard key of that name), with
/// its vindex and key type.
pub(super) fn shard_key_of(
    r: &Resolved<'_>,
    aliases: &HashMap<String, String>,
    e: &Expr,
) -> Option<(String, (VindexKind, KeyType))> {
    let (qual, col) = column_ref(e)?;
    let candidates: Vec<&TableRef> = r
        .sharded()
        .filter(|t| match &qual {
            Some(q) => aliases.get(q).is_some_and(|n| *n == t.name),
            None => true,
        })
        .filter(|t| matches!(&t.routing, TableRouting::Sharded { shard_key, .. } if shard_key.eq_ignore_ascii_case(&col)))
        .collect();
    let names: BTreeSet<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
    if names.len() != 1 {
        return None;
    }
    match &candidates[0].routing {
        TableRouting::Sharded {
            vindex, key_type, ..
        } => Some((candidates[0].name.clone(), (*vindex, *key_type))),
        _ => None,
    }
}

/// The sharded table factor of `from` whose shard key column `e` is, by the name the statement
/// calls it (its alias, else its name), with the key's vindex and key type: qualified by that
/// name, or (unless `qualified`) unqualified when one factor alone has a shard key of that
/// name.
pub(super) fn factor_key(
    r: &Resolved<'_>,
    from: &FromJoins<'_>,
    e: &Expr,
    qualified: bool,
) -> Option<(String, (VindexKind, KeyType))> {
    let (qual, col) = column_ref(e)?;
    if qualified && qual.is_none() {
        return None;
    }
    let mut found = from.factors.iter().filter_map(|(called, table)| {
        if qual.as_ref().is_some_and(|q| q != called) {
            return None;
        }
        match &r.sharded().find(|t| t.name == *table)?.routing {
            TableRouting::Sharded {
                shard_key,
                vindex,
                key_type,
                ..
            } if shard_key.eq_ignore_ascii_case(&col) => {
                Some((called.clone(), (*vindex, *key_type)))
            }
            _ => None,
        }
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Whether every sharded table factor of `from` (each occurrence of a table counts: a table
/// joined with itself is two) is joined to the others by equalities (among `eqs`) of shard
/// keys with the same vindex and key type — then the rows that join are on one logical shard.
/// False when a sharded table of `r` is not one of `from`'s factors, apart from `elsewhere`
/// occurrences the caller found co-located already (in subqueries it checked), or two factors
/// go by one name.
pub(super) fn co_located<'e>(
    r: &Resolved<'_>,
    from: &FromJoins<'_>,
    elsewhere: usize,
    eqs: impl Iterator<Item = &'e &'e Expr>,
) -> bool {
    let sharded_table = |name: &str| r.sharded().find(|t| t.name == name);
    let instances: Vec<&(String, String)> = from
        .factors
        .iter()
        .filter(|(_, t)| sharded_table(t).is_some())
        .collect();
    let names: BTreeSet<&str> = instances.iter().map(|(n, _)| n.as_str()).collect();
    if r.sharded().count() != instances.len() + elsewhere || names.len() != instances.len() {
        return false;
    }
    if instances.len() <= 1 {
        return true;
    }
    let factor_key = |e: &Expr| factor_key(r, from, e, false);
    let mut uf: HashMap<String, String> = names
        .iter()
        .map(|n| (n.to_string(), n.to_string()))
        .collect();
    fn find(uf: &HashMap<String, String>, x: &str) -> String {
        let mut cur = x.to_string();
        while let Some(p) = uf.get(&cur) {
            if *p == cur {
                break;
            }
            cur = p.clone();
        }
        cur
    }
    for e in eqs {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = e
        {
            if let (Some((a, va)), Some((b, vb))) = (factor_key(left), factor_key(right)) {
                if va == vb {
                    let (ra, rb) = (find(&uf, &a), find(&uf, &b));
                    uf.insert(ra, rb);
                }
            }
        }
    }
    let roots: BTreeSet<String> = names.iter().map(|n| find(&uf, n)).collect();
    roots.len() == 1
}
