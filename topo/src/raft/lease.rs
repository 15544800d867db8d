//! [`LeaseClock`]: lease deadlines, counted in Raft ticks and kept outside the replicated
//! state so that applying entries stays deterministic.
//!
//! Every node keeps the clock up to date as it applies grants, keep-alives and revocations,
//! but only the leader acts on it: when a deadline passes, the leader proposes
//! [`crate::kv::Op::RevokeLease`]. A node that becomes leader first gives every lease a fresh
//! full TTL, since it cannot know how long ago the previous leader last heard of them.

use crate::kv::Lease;
use std::collections::HashMap;
use std::time::Duration;

/// How many ticks a revocation may take to be applied before the leader proposes it again.
const REVOKE_RETRY_TICKS: u64 = 20;

/// Lease deadlines in ticks.
pub struct LeaseClock {
    tick: Duration,
    now: u64,
    deadlines: HashMap<i64, u64>,
    /// Leases whose revocation was proposed, with the tick it was proposed at.
    revoking: HashMap<i64, u64>,
}

impl LeaseClock {
    /// Returns an empty clock whose ticks last `tick`.
    pub fn new(tick: Duration) -> Self {
        LeaseClock {
            tick,
            now: 0,
            deadlines: HashMap::new(),
            revoking: HashMap::new(),
        }
    }

    fn ttl_ticks(&self, ttl_ms: u64) -> u64 {
        let tick_ms = (self.tick.as_millis() as u64).max(1);
        ttl_ms.div_ceil(tick_ms).max(1)
    }

    /// Advances the clock by one tick.
    pub fn tick(&mut self) {
        self.now += 1;
    }

    /// Starts (or restarts) a lease's full TTL from now.
    pub fn renew(&mut self, id: i64, ttl_ms: u64) {
        let deadline = self.now + self.ttl_ticks(ttl_ms);
        self.deadlines.insert(id, deadline);
        self.revoking.remove(&id);
    }

    /// Forgets a lease that is gone.
    pub fn forget(&mut self, id: i64) {
        self.deadlines.remove(&id);
        self.revoking.remove(&id);
    }

    /// Gives every lease a fresh full TTL and forgets any others (a new leader, or a new
    /// state from a snapshot).
    pub fn reset<'a>(&mut self, leases: impl Iterator<Item = &'a Lease>) {
        self.deadlines.clear();
        self.revoking.clear();
        for l in leases {
            self.renew(l.id, l.ttl_ms);
        }
    }

    /// Returns the leases whose deadline has passed and whose revocation is not already in
    /// flight, marking them as being revoked.
    pub fn take_expired(&mut self) -> Vec<i64> {
        let now = self.now;
        let mut out: Vec<i64> = self
            .deadlines
            .iter()
            .filter(|(id, d)| {
                **d <= now
                    && !matches!(self.revoking.get(id), Some(at) if now < at + REVOKE_RETRY_TICKS)
            })
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        for id in &out {
            self.revoking.insert(*id, now);
        }
        out
    }

    /// Returns how many leases are tracked.
    pub fn tracked(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_ttl_and_retries_revocation() {
        let mut c = LeaseClock::new(Duration::from_millis(100));
        c.renew(7, 250); // three ticks
        for _ in 0..2 {
            c.tick();
            assert!(c.take_expired().is_empty());
        }
        c.tick();
        assert_eq!(c.take_expired(), vec![7]);
        c.tick();
        assert!(c.take_expired().is_empty(), "revocation in flight");
        for _ in 0..REVOKE_RETRY_TICKS {
            c.tick();
        }
        assert_eq!(c.take_expired(), vec![7], "proposed again");
        c.forget(7);
        assert_eq!(c.tracked(), 0);
    }

    #[test]
    fn reset_gives_a_full_ttl() {
        let mut c = LeaseClock::new(Duration::from_millis(10));
        c.renew(1, 10);
        c.tick();
        c.tick();
        c.reset([Lease { id: 1, ttl_ms: 30 }].iter());
        c.tick();
        c.tick();
        assert!(c.take_expired().is_empty());
        c.tick();
        assert_eq!(c.take_expired(), vec![1]);
    }
}
