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
}
