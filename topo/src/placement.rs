//! Where logical shards go: a consistent-hash ring of physical shards with bounded load.
//!
//! Each physical shard stands on the ring with virtual nodes in proportion to its weight.
//! A logical shard goes to the first physical shard along the ring from its own hash that
//! still has room (at most `ceil(1.25 × fair share)`), so shards stay even while adding or
//! removing one physical shard moves only about `L/N` logical shards.

use consistent_hash::{DefaultHash, Node, StaticHashRing};

/// Virtual nodes per unit of weight.
const VNODES_PER_WEIGHT: usize = 128;

/// Returns, for each logical shard `0..count` of `keyspace`, the name of the physical shard
/// the ring assigns it to. `shards` are `(name, weight)` pairs; weight 0 takes nothing.
/// Returns an empty vector when no shard has weight.
pub fn assign(keyspace: &str, count: u32, shards: &[(String, u32)]) -> Vec<String> {
    let total: u64 = shards.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let nodes = shards
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(name, w)| Node::new(name.clone()).quantity(VNODES_PER_WEIGHT * (*w as usize)));
    let ring = StaticHashRing::new(DefaultHash, nodes);
    let capacity = |w: u32| -> u64 {
        let fair = u64::from(count) * u64::from(w);
        // ceil(1.25 * count * w / total), and at least 1
        ((fair * 5).div_ceil(total * 4)).max(1)
    };
    let mut load: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let weights: std::collections::HashMap<&str, u32> =
        shards.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let mut out = Vec::with_capacity(count as usize);
    for ls in 0..count {
        let key = (keyspace, ls);
        let mut chosen = None;
        for node in ring.calc_candidates(&key) {
            let name = node.key.as_str();
            let used = load.get(name).copied().unwrap_or(0);
            if used < capacity(weights.get(name).copied().unwrap_or(0)) {
                chosen = Some(name.to_string());
                break;
            }
        }
        // Capacities add up to more than `count`, so some shard always has room; fall back to
        // the ring's first choice only if rounding ever says otherwise.
        let name = chosen
            .or_else(|| ring.calc_candidates(&key).next().map(|n| n.key.clone()))
            .unwrap_or_default();
        *load
            .entry(
                shards
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(n, _)| n.as_str()),
            )
            .or_insert(0) += 1;
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<(String, u32)> {
        (0..n).map(|i| (format!("ps{i}"), 1)).collect()
    }

    #[test]
    fn even_and_stable() {
        let a = assign("demo", 64, &names(4));
        assert_eq!(a.len(), 64);
        for i in 0..4 {
            let c = a.iter().filter(|n| **n == format!("ps{i}")).count();
            assert!((8..=20).contains(&c), "ps{i} has {c}");
        }
        assert_eq!(a, assign("demo", 64, &names(4)), "deterministic");
        let b = assign("demo", 64, &names(5));
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(moved <= 64 / 5 + 8, "adding a shard moved {moved}");
        let new = b.iter().filter(|n| *n == "ps4").count();
        assert!(new >= 6, "new shard got {new}, moved {moved}");
    }
}
