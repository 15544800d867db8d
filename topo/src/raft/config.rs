//! [`RaftConfig`]: what one node of the replicated topology service needs to start.

use crate::error::{Result, TopoError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default Raft tick.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);
/// Default number of applied entries between two snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;

/// One node's configuration.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// This node's id: non-zero and unique in the cluster.
    pub id: u64,
    /// Every voter, this node included, with the address it listens on. An empty data
    /// directory is bootstrapped with exactly these voters; afterwards membership comes from
    /// the log, and these addresses only override remembered ones.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Where the client API and the peer routes are served. Loopback unless the operator
    /// says otherwise.
    pub listen: SocketAddr,
    /// Where the Raft log, hard state and snapshot live.
    pub data_dir: PathBuf,
    /// Bearer token required of clients and peers alike. Default: none.
    pub token: Option<String>,
    /// Serve HTTPS, and reach peers over it. Default: none (clear text).
    pub tls: Option<crate::tls::NodeTls>,
    /// The Raft tick: heartbeats every 2 ticks, elections after 10 to 20. Default 100 ms.
    pub tick: Duration,
    /// Applied entries between two snapshots (each snapshot compacts the log). Default 1000.
    pub snapshot_every: u64,
}

impl RaftConfig {
    /// Returns a configuration with the default tick and snapshot interval and no token.
    pub fn new(
        id: u64,
        peers: BTreeMap<u64, SocketAddr>,
        listen: SocketAddr,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        RaftConfig {
            id,
            peers,
            listen,
            data_dir: data_dir.into(),
            token: None,
            tls: None,
            tick: DEFAULT_TICK,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }

    /// Checks the configuration, naming the first bad field.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] with the field's name.
    pub fn validate(&self) -> Result<()> {
        if self.id == 0 {
            return Err(TopoError::invalid("raft.id", "must be non-zero"));
        }
        if !self.peers.contains_key(&self.id) {
            return Err(TopoError::invalid(
                "raft.peers",
                format!("must include this node ({})", self.id),
            ));
        }
        if self.peers.contains_key(&0) {
            return Err(TopoError::invalid("raft.peers", "0 is not a valid node id"));
        }
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return Err(TopoError::invalid(
                "raft.tick",
                format!("{:?} is outside 1 ms ..= 10 s", self.tick),
            ));
        }
        if self.snapshot_every == 0 {
            return Err(TopoError::invalid(
                "raft.snapshot_every",
                "must be at least 1",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(TopoError::invalid("raft.data_dir", "must be set"));
        }
        Ok(())
    }

    /// How long a request may wait for Raft before it fails as unavailable: 50 ticks, at
    /// least one second (five seconds at the default tick).
    pub fn request_timeout(&self) -> Duration {
        (self.tick * 50).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_field() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let mut c = RaftConfig::new(1, BTreeMap::from([(1, addr)]), addr, "/tmp/x");
        assert!(c.validate().is_ok());
        c.id = 2;
        match c.validate() {
            Err(TopoError::Invalid { what, .. }) => assert_eq!(what, "raft.peers"),
            other => panic!("{other:?}"),
        }
        c.id = 1;
        c.snapshot_every = 0;
        match c.validate() {
            Err(TopoError::Invalid { what, .. }) => assert_eq!(what, "raft.snapshot_every"),
            other => panic!("{other:?}"),
        }
    }
}
