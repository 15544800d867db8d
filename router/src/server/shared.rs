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
