//! Placement planning: the moves that bring a keyspace's placement to the ring's assignment.

use serde::Serialize;
use tessera_topo::{LogicalShardState, Placement, TopoSnapshot};

/// One planned move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMove {
    pub ls: u32,
    pub from: String,
    pub to: String,
    /// Measured size, when known.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

/// Returns the moves that bring `keyspace` to the consistent-hash ring's assignment over the
/// registered physical shards (by weight). Logical shards in a move are left alone.
///
/// `sizes` holds measured `(rows, bytes)` per logical shard, when known. With `balance_size`,
/// the plan then evens out bytes: while the largest physical shard holds more than the
/// smallest by more than one logical shard's worth, it moves the logical shard that best closes
/// the gap, at most `max_extra` extra moves.
///
/// # Errors
/// An unknown keyspace or one without placement.
pub fn plan_moves(
    snap: &TopoSnapshot,
    keyspace: &str,
    sizes: &[(u64, u64)],
    balance_size: bool,
    max_extra: usize,
) -> anyhow::Result<Vec<PlannedMove>> {
    let ks = snap
        .keyspaces
        .get(keyspace)
        .ok_or_else(|| anyhow::anyhow!("unknown keyspace {keyspace}"))?;
    let placement: &Placement = snap
        .placements
        .get(keyspace)
        .ok_or_else(|| anyhow::anyhow!("keyspace {keyspace} has no placement"))?;
    let weights: Vec<(String, u32)> = snap
        .shards
        .values()
        .map(|s| (s.name.clone(), s.weight))
        .collect();
    let count = ks.vschema.logical_shard_count();
    let target = tessera_topo::placement::assign(keyspace, count, &weights);
    if target.is_empty() {
        anyhow::bail!("no physical shard has weight > 0");
    }
    let mut to: Vec<String> = placement.shards.iter().map(|e| e.ps.clone()).collect();
    for (ls, e) in placement.shards.iter().enumerate() {
        if e.state == LogicalShardState::Serving {
            if let Some(t) = target.get(ls) {
                to[ls] = t.clone();
            }
        }
    }
    if balance_size && !sizes.is_empty() {
        for _ in 0..max_extra {
            let mut per: std::collections::BTreeMap<&str, u64> = snap
                .shards
                .values()
                .filter(|s| s.weight > 0)
                .map(|s| (s.name.as_str(), 0))
                .collect();
            for (ls, ps) in to.iter().enumerate() {
                *per.entry(ps.as_str()).or_insert(0) += sizes.get(ls).map_or(0, |s| s.1);
            }
            let (Some((&big, &bmax)), Some((&small, &smin))) = (
                per.iter().max_by_key(|(_, b)| **b),
                per.iter().min_by_key(|(_, b)| **b),
            ) else {
                break;
            };
            let gap = bmax - smin;
            // The logical shard on `big` whose size is closest to half the gap.
            let best = to
                .iter()
                .enumerate()
                .filter(|(ls, ps)| {
                    ps.as_str() == big && placement.shards[*ls].state == LogicalShardState::Serving
                })
                .map(|(ls, _)| (ls, sizes.get(ls).map_or(0, |s| s.1)))
                .filter(|(_, b)| *b > 0 && *b < gap)
                .min_by_key(|(_, b)| (gap / 2).abs_diff(*b));
            match best {
                Some((ls, _)) => to[ls] = small.to_string(),
                None => break,
            }
        }
    }
    Ok(placement
        .shards
        .iter()
        .enumerate()
        .filter(|(ls, e)| e.ps != to[*ls])
        .map(|(ls, e)| PlannedMove {
            ls: ls as u32,
            from: e.ps.clone(),
            to: to[ls].clone(),
            rows: sizes.get(ls).map(|s| s.0),
            bytes: sizes.get(ls).map(|s| s.1),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_topo::{Keyspace, PhysicalShard, PlacementEntry, VSchema};

    fn snap(shards: &[&str], placed_on: &[&str]) -> TopoSnapshot {
        let mut s = TopoSnapshot::default();
        for n in shards {
            s.shards.insert(
                n.to_string(),
                PhysicalShard {
                    name: n.to_string(),
                    host: "127.0.0.1".into(),
                    port: 1,
                    user: "u".into(),
                    password: None,
                    password_env: None,
                    weight: 1,
                    tls_ca: None,
                    data_account: None,
                },
            );
        }
        let v = VSchema::from_yaml("keyspace: k\nsharded: true\nlogical_shards: 64\n").expect("v");
        let weights: Vec<(String, u32)> = placed_on.iter().map(|n| (n.to_string(), 1)).collect();
        let p = tessera_topo::placement::assign("k", 64, &weights);
        s.placements.insert(
            "k".into(),
            Placement {
                keyspace: "k".into(),
                epoch: 1,
                shards: p.into_iter().map(PlacementEntry::serving).collect(),
            },
        );
        s.keyspaces.insert("k".into(), Keyspace { vschema: v });
        s
    }

    #[test]
    fn adding_a_shard_moves_only_what_the_ring_reassigns() {
        let s = snap(&["ps0", "ps1", "ps2"], &["ps0", "ps1"]);
        let moves = plan_moves(&s, "k", &[], false, 0).expect("plan");
        // About a third of 64 go to the new shard; the bounded-load ring may shift a few
        // between the old ones.
        let to_new = moves.iter().filter(|m| m.to == "ps2").count();
        assert!((15..=27).contains(&to_new), "{moves:?}");
        assert!(moves.len() - to_new <= 6, "{moves:?}");
        // Already balanced: nothing to do.
        let s = snap(&["ps0", "ps1"], &["ps0", "ps1"]);
        assert!(plan_moves(&s, "k", &[], false, 0).expect("plan").is_empty());
    }

    #[test]
    fn balance_by_size_moves_big_shards_to_small_ones() {
        let s = snap(&["ps0", "ps1"], &["ps0", "ps1"]);
        let p = &s.placements["k"];
        let sizes: Vec<(u64, u64)> = p
            .shards
            .iter()
            .map(|e| if e.ps == "ps0" { (10, 1000) } else { (1, 10) })
            .collect();
        let moves = plan_moves(&s, "k", &sizes, true, 8).expect("plan");
        assert!(!moves.is_empty());
        assert!(moves.iter().all(|m| m.from == "ps0" && m.to == "ps1"));
        assert!(moves.len() <= 8);
    }
}
