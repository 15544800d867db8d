//! The router's admin HTTP endpoint: `/` (the live status page), `/overview` (what the page
//! shows, as JSON), `/status` (JSON), `/metrics` (Prometheus text), `/shadow/routing` and
//! `/shadow/results` (the shadow verifier's reports; `DELETE` resets them).
//! It binds to loopback unless configured otherwise.

use crate::metrics::Metrics;
use crate::topology::TopologyCache;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub results: Arc<crate::shadow::results::ResultShadow>,
    pub shadow: Arc<crate::shadow::routing::RoutingShadow>,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<TopologyCache>,
    pub overview: Arc<crate::overview::Overview>,
    pub listen: SocketAddr,
    pub id: String,
    /// The token a request that changes something must carry (`Authorization: Bearer …`);
    /// none: such requests are refused.
    pub token: Option<Arc<str>>,
}

/// Whether a request that changes state carries the admin token.
fn authorized(s: &AdminState, headers: &axum::http::HeaderMap) -> bool {
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    matches!((&s.token, sent), (Some(t), Some(sent)) if constant_time_eq(t.as_bytes(), sent.as_bytes()))
}

/// The answer to a change without the admin token.
fn unauthorized() -> axum::response::Response {
    (
        axum::http::StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": "this request changes state: send the admin token (Authorization: Bearer …)"})),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/overview", get(overview))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/shadow/routing", get(shadow_report).delete(shadow_reset))
        .route("/shadow/results", get(results_report).delete(results_reset))
        .with_state(state)
}

/// Copies what the topology cache says into the gauges.
pub(crate) fn refresh(s: &AdminState) {
    let t = s.cache.status();
    s.metrics.topo_connected.set(i64::from(t.connected));
    s.metrics
        .topo_revision
        .set(i64::try_from(t.revision).unwrap_or(i64::MAX));
    for (ks, e) in &t.epochs {
        s.metrics
            .epoch
            .with_label_values(&[ks.as_str()])
            .set(i64::try_from(*e).unwrap_or(i64::MAX));
    }
}

async fn status(State(s): State<AdminState>) -> impl IntoResponse {
    refresh(&s);
    let t = s.cache.status();
    Json(serde_json::json!({
        "id": s.id,
        "listen": s.listen.to_string(),
        "connections": s.metrics.connections.get(),
        "topology": t,
    }))
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    refresh(&s);
    let mut text = s.metrics.render();
    text.push_str(&s.overview.job_metrics().await);
    ([("content-type", "text/plain; version=0.0.4")], text)
}

async fn shadow_report(State(s): State<AdminState>) -> impl IntoResponse {
    Json(s.shadow.report())
}

async fn shadow_reset(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    s.shadow.reset();
    Json(serde_json::json!({})).into_response()
}

async fn results_report(State(s): State<AdminState>) -> impl IntoResponse {
    Json(s.results.report())
}

async fn results_reset(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    s.results.reset();
    Json(serde_json::json!({})).into_response()
}

/// The status page: one self-contained HTML file (no scripts fetched from elsewhere) that
/// polls `/overview`.
const PAGE: &str = include_str!("status.html");

async fn page() -> impl IntoResponse {
    ([("content-type", "text/html; charset=utf-8")], PAGE)
}

async fn overview(State(s): State<AdminState>) -> impl IntoResponse {
    refresh(&s);
    let me = serde_json::json!({
        "id": s.id,
        "listen": s.listen.to_string(),
        "connections": s.metrics.connections.get(),
        "topology": s.cache.status(),
    });
    let r = s.results.report();
    let shadow = serde_json::json!({
        "compared": r.compared,
        "matched": r.matched,
        "mismatched": r.mismatched,
        "mismatches": r.mismatches.iter().take(10).collect::<Vec<_>>(),
    });
    Json(s.overview.snapshot(me, shadow).await)
}
