//! Membership over HTTP, beside the client API:
//!
//! | method and path | meaning |
//! |---|---|
//! | `GET /v1/members` | `{members: [{id, addr, voter}], leader}` as this node knows them |
//! | `POST /v1/members` `{id, addr}` | adds a voter; answers once the change is applied here |
//! | `DELETE /v1/members/{id}` | removes a voter; 503 (retry) when asked of the leader about itself |
//!
//! Errors use the client API's error body; the token, when set, is required as everywhere.

use super::store::RaftStore;
use crate::error::TopoError;
use crate::http::server::{authorize, error_response};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Body of `POST /v1/members`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddMember {
    pub id: u64,
    /// `host:port` the new node listens on.
    pub addr: String,
}

/// One member in `GET /v1/members`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub addr: Option<String>,
    pub voter: bool,
}

/// Answer of `GET /v1/members`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MembersResponse {
    pub members: Vec<Member>,
    pub leader: Option<u64>,
}

#[derive(Clone)]
struct Api {
    store: RaftStore,
    token: Option<Arc<str>>,
}

/// Returns the membership routes over `store`.
pub fn routes(store: RaftStore, token: Option<String>) -> Router {
    Router::new()
        .route("/v1/members", get(list).post(add))
        .route("/v1/members/{id}", delete(remove))
        .with_state(Api {
            store,
            token: token.map(Arc::from),
        })
}

async fn list(State(s): State<Api>, h: HeaderMap) -> Response {
    if let Err(r) = authorize(s.token.as_deref(), &h) {
        return r.into_response();
    }
    let st = s.store.node_status();
    let mut ids: Vec<u64> = st.voters.clone();
    ids.extend(
        st.peers
            .keys()
            .copied()
            .filter(|id| !st.voters.contains(id)),
    );
    ids.sort_unstable();
    let members = ids
        .into_iter()
        .map(|id| Member {
            id,
            addr: st.peers.get(&id).cloned(),
            voter: st.voters.contains(&id),
        })
        .collect();
    Json(MembersResponse {
        members,
        leader: st.leader,
    })
    .into_response()
}

async fn add(State(s): State<Api>, h: HeaderMap, Json(req): Json<AddMember>) -> Response {
    if let Err(r) = authorize(s.token.as_deref(), &h) {
        return r.into_response();
    }
    if req.addr.parse::<std::net::SocketAddr>().is_err() && !req.addr.contains(':') {
        return error_response(&TopoError::invalid("addr", "expected host:port"));
    }
    match s.store.add_member(req.id, &req.addr).await {
        Ok(()) => Json(serde_json::json!({ "id": req.id, "addr": req.addr })).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn remove(State(s): State<Api>, h: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(r) = authorize(s.token.as_deref(), &h) {
        return r.into_response();
    }
    match s.store.remove_member(id).await {
        Ok(()) => Json(serde_json::json!({ "id": id })).into_response(),
        Err(e) => error_response(&e),
    }
}
