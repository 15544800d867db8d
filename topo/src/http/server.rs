//! Serves any [`Store`] over HTTP/JSON.
//!
//! | method and path | meaning |
//! |---|---|
//! | `GET /v1/kv?key=K[&stale=true]` | one key (404 if absent) |
//! | `PUT /v1/kv` `{key, value, mod_revision?, lease?}` | write; 409 on a failed compare-and-set |
//! | `DELETE /v1/kv?key=K[&mod_revision=N]` | delete |
//! | `GET /v1/list?prefix=P[&stale=true]` | keys under a prefix, with the revision |
//! | `GET /v1/watch?prefix=P&after=R[&timeout_ms=T]` | long poll: changes after revision R; 410 if compacted |
//! | `POST /v1/lease` `{ttl_ms}` | grant a lease |
//! | `POST /v1/lease/{id}/keepalive`, `DELETE /v1/lease/{id}` | renew, revoke |
//! | `GET /v1/revision` | the store's revision |
//! | `GET /v1/status` | what the node says of itself |
//!
//! Reads are linearizable unless `stale=true` asks for the serving node's own view
//! ([`Store::get_stale`], [`Store::list_stale`]).
//!
//! When a token is configured, every request must carry `Authorization: Bearer TOKEN`.

use super::*;
use crate::store::Store;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

/// Longest a watch poll may wait.
const MAX_POLL: Duration = Duration::from_secs(30);

/// What `GET /v1/status` reports; a replicated store fills in its role and indexes.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    token: Option<Arc<str>>,
    status: StatusFn,
}

/// Returns the API's router over `store`.
pub fn router(store: Arc<dyn Store>, token: Option<String>, status: Option<StatusFn>) -> Router {
    let status = status.unwrap_or_else(|| Arc::new(|| serde_json::json!({"role": "single"})));
    let state = AppState {
        store,
        token: token.map(Arc::from),
        status,
    };
    Router::new()
        .route("/v1/kv", get(get_kv).put(put_kv).delete(delete_kv))
        .route("/v1/list", get(list))
        .route("/v1/watch", get(watch))
        .route("/v1/lease", post(grant))
        .route("/v1/lease/{id}/keepalive", post(keep_alive))
        .route("/v1/lease/{id}", axum::routing::delete(revoke))
        .route("/v1/revision", get(revision))
        .route("/v1/status", get(status_handler))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves: over TLS with `tls`, else in
/// clear text.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(cfg) => {
            axum::serve(crate::tls::TlsListener::new(listener, cfg)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Returns the API's error answer for `e`.
pub(crate) fn error_response(e: &TopoError) -> Response {
    err(e)
}

fn err(e: &TopoError) -> Response {
    let (status, body) = ErrorBody::from_error(e);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

fn check(state: &AppState, headers: &HeaderMap) -> Result<(), Unauthorized> {
    authorize(state.token.as_deref(), headers)
}

/// A request without the right bearer token; answers 401.
pub(crate) struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody {
                error: "unauthorized".into(),
                message: "missing or wrong bearer token".into(),
                key: None,
                expected: None,
                found: None,
                lease: None,
            }),
        )
            .into_response()
    }
}

/// Checks the bearer token, when one is configured.
pub(crate) fn authorize(token: Option<&str>, headers: &HeaderMap) -> Result<(), Unauthorized> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(token) {
        Ok(())
    } else {
        Err(Unauthorized)
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
    #[serde(default)]
    mod_revision: Option<u64>,
    #[serde(default)]
    stale: bool,
}

async fn get_kv(State(s): State<AppState>, h: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    let got = if q.stale {
        s.store.get_stale(&q.key).await
    } else {
        s.store.get(&q.key).await
    };
    match got {
        Ok(Some(kv)) => Json(kv).into_response(),
        Ok(None) => err(&TopoError::NotFound(q.key)),
        Err(e) => err(&e),
    }
}

async fn put_kv(State(s): State<AppState>, h: HeaderMap, Json(req): Json<PutRequest>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    match s
        .store
        .put(&req.key, &req.value, req.cond(), req.lease)
        .await
    {
        Ok(rev) => Json(RevisionResponse {
            revision: Some(rev),
        })
        .into_response(),
        Err(e) => err(&e),
    }
}

async fn delete_kv(State(s): State<AppState>, h: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    let cond = q
        .mod_revision
        .map_or(Condition::None, Condition::ModRevision);
    match s.store.delete(&q.key, cond).await {
        Ok(revision) => Json(RevisionResponse { revision }).into_response(),
        Err(e) => err(&e),
    }
}

#[derive(Deserialize)]
struct PrefixQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    stale: bool,
}

async fn list(State(s): State<AppState>, h: HeaderMap, Query(q): Query<PrefixQuery>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    let listed = if q.stale {
        s.store.list_stale(&q.prefix).await
    } else {
        s.store.list(&q.prefix).await
    };
    match listed {
        Ok((kvs, revision)) => Json(ListResponse { kvs, revision }).into_response(),
        Err(e) => err(&e),
    }
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(default)]
    prefix: String,
    after: u64,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

async fn watch(State(s): State<AppState>, h: HeaderMap, Query(q): Query<WatchQuery>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    let mut w = match s.store.watch(&q.prefix, q.after).await {
        Ok(w) => w,
        Err(e) => return err(&e),
    };
    let wait = q
        .timeout_ms
        .map_or(MAX_POLL, Duration::from_millis)
        .min(MAX_POLL);
    let mut events = Vec::new();
    match tokio::time::timeout(wait, w.recv()).await {
        Ok(Some(Ok(ev))) => events.push(ev),
        Ok(Some(Err(e))) => return err(&e),
        Ok(None) => {
            return err(&TopoError::Unavailable(
                "watch closed by the store; re-list".into(),
            ))
        }
        Err(_) => {}
    }
    // Take whatever else is already there, without waiting.
    while events.len() < 1000 {
        match w.try_recv() {
            Ok(Ok(ev)) => events.push(ev),
            _ => break,
        }
    }
    Json(WatchResponse { events }).into_response()
}

async fn grant(State(s): State<AppState>, h: HeaderMap, Json(req): Json<LeaseRequest>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    match s.store.grant_lease(req.ttl_ms).await {
        Ok(id) => Json(LeaseResponse { id }).into_response(),
        Err(e) => err(&e),
    }
}

async fn keep_alive(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    match s.store.keep_alive(id).await {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => err(&e),
    }
}

async fn revoke(State(s): State<AppState>, h: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    match s.store.revoke_lease(id).await {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => err(&e),
    }
}

async fn revision(State(s): State<AppState>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    match s.store.revision().await {
        Ok(revision) => Json(serde_json::json!({ "revision": revision })).into_response(),
        Err(e) => err(&e),
    }
}

async fn status_handler(State(s): State<AppState>, h: HeaderMap) -> Response {
    if let Err(r) = check(&s, &h) {
        return r.into_response();
    }
    Json((s.status)()).into_response()
}
