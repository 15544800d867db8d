//! What every connection task of a router shares.

use crate::config::RouterConfig;
use crate::engine::Engine;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

pub(super) struct Shared {
    pub(super) cfg: RouterConfig,
    pub(super) overview: Arc<crate::overview::Overview>,
    pub(super) plans: crate::planner::cache::PlanCache,
    pub(super) engine: Engine,
    pub(super) next_id: AtomicU32,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    pub(super) shadow: Arc<crate::shadow::routing::RoutingShadow>,
    pub(super) results: Arc<crate::shadow::results::ResultShadow>,
    /// The topology store (keyspaces made and dropped by `CREATE`/`DROP DATABASE`).
    pub(super) topo: tessera_topo::Topo,
    /// TLS for clients, when the config gives a certificate.
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Recent failed logins per client address.
    pub(super) failed_logins: FailedLogins,
}

/// Failed logins per client address, to slow down password guessing: after
/// [`FailedLogins::FREE`] failures in a row from one address (forgotten after
/// [`FailedLogins::MEMORY`] without one), each of its next logins waits a quarter second per
/// failure more, at most [`FailedLogins::MAX_DELAY`], before its answer — a right password
/// too, so that the wait says nothing. A success from the address forgets them.
#[derive(Default)]
pub(super) struct FailedLogins {
    by_addr:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl FailedLogins {
    const FREE: u32 = 3;
    const MEMORY: std::time::Duration = std::time::Duration::from_secs(600);
    const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(5);
    /// Addresses remembered at most (the oldest are forgotten first).
    const MAX_ADDRS: usize = 10_000;

    /// How long a login from `ip` waits before its answer.
    pub(super) fn delay(&self, ip: std::net::IpAddr) -> std::time::Duration {
        let m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&ip) {
            Some((n, at)) if at.elapsed() < Self::MEMORY && *n > Self::FREE => {
                (std::time::Duration::from_millis(250) * (n - Self::FREE)).min(Self::MAX_DELAY)
            }
            _ => std::time::Duration::ZERO,
        }
    }

    pub(super) fn failed(&self, ip: std::net::IpAddr) {
        let mut m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX_ADDRS && !m.contains_key(&ip) {
            if let Some(oldest) = m.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                m.remove(&oldest);
            }
        }
        let e = m.entry(ip).or_insert((0, std::time::Instant::now()));
        if e.1.elapsed() >= Self::MEMORY {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = std::time::Instant::now();
    }

    pub(super) fn succeeded(&self, ip: std::net::IpAddr) {
        let mut m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&ip);
    }
}

/// Answers OK with the session's status.
pub(super) async fn ok(
    io: &mut crate::wire::PacketIo,
    session: &crate::session::Session,
) -> Result<(), crate::error::SqlError> {
    io.write_packet(&crate::wire::resultset::ok(
        0,
        0,
        session.status_flags(),
        0,
        "",
        false,
    ))
    .await
    .map_err(crate::error::io_err)
}
