//! Peer messaging: Raft messages travel between nodes as batches in HTTP POSTs to
//! `/raft/message`, on the same listener as the client API.
//!
//! A batch body is a sequence of `| len: u32 LE | protobuf eraftpb::Message |`. When the
//! node has a token, peers send it as `Authorization: Bearer TOKEN` like any client.
//!
//! Each peer has its own queue and sending task, so a slow or dead peer delays only itself.
//! A failed POST reports the peer unreachable to the node (Raft then probes it gently
//! instead of streaming to it) and drops what was queued: Raft resends whatever matters.

use super::node::{NodeMsg, NodeSender, Outbox};
use crate::http::server::authorize;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The path peers POST message batches to.
pub const MESSAGE_PATH: &str = "/raft/message";

/// Largest batch body accepted (a snapshot travels in one message).
const MAX_BODY: usize = 256 << 20;

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;

/// Messages per POST at most.
const BATCH: usize = 512;

/// How long a POST may take; a snapshot gets longer.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Encodes messages as a batch body.
pub fn encode_batch(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        match m.write_to_bytes() {
            Ok(b) => {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(&b);
            }
            Err(e) => tracing::error!(error = %e, "raft message not encodable; dropped"),
        }
    }
    out
}

/// Decodes a batch body.
///
/// # Errors
/// A message text when the body is cut short or a message does not parse.
pub fn decode_batch(mut body: &[u8]) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return Err("batch cut inside a length".into());
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&body[..4]);
        let len = u32::from_le_bytes(len) as usize;
        body = &body[4..];
        if body.len() < len {
            return Err(format!("message of {len} bytes cut at {}", body.len()));
        }
        let m = Message::parse_from_bytes(&body[..len]).map_err(|e| e.to_string())?;
        out.push(m);
        body = &body[len..];
    }
    Ok(out)
}

struct Peer {
    addr: String,
    tx: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The HTTP transport: one queue and one sending task per peer. Dropping it stops them.
pub struct HttpTransport {
    rt: tokio::runtime::Handle,
    client: reqwest::Client,
    token: Option<Arc<str>>,
    /// Peers are reached over HTTPS.
    tls: bool,
    node: NodeSender,
    peers: HashMap<u64, Peer>,
}

impl HttpTransport {
    /// Returns a transport whose tasks run on `rt` and report back to `node`; with `tls`,
    /// peers are reached over HTTPS, verified against its CA, presenting its certificate.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        rt: tokio::runtime::Handle,
        token: Option<String>,
        tls: Option<&crate::tls::ClientTls>,
        node: NodeSender,
    ) -> Result<Self, crate::TopoError> {
        let client = crate::tls::http_client(tls)?
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| crate::TopoError::Unavailable(e.to_string()))?;
        Ok(HttpTransport {
            rt,
            client,
            token: token.map(Arc::from),
            tls: tls.is_some(),
            node,
            peers: HashMap::new(),
        })
    }
}

impl Outbox for HttpTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let Some(peer) = self.peers.get(&to) else {
                tracing::debug!(to, "no address for raft peer; message dropped");
                let _ = self.node.send(NodeMsg::Unreachable(to));
                continue;
            };
            if peer.tx.try_send(m).is_err() {
                let _ = self.node.send(NodeMsg::Unreachable(to));
            }
        }
    }

    fn set_peer(&mut self, id: u64, addr: Option<String>) {
        let Some(addr) = addr else {
            self.peers.remove(&id);
            return;
        };
        if self.peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        let url = format!("{}{MESSAGE_PATH}", crate::tls::url_of(&addr, self.tls));
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let task = self.rt.spawn(deliver(
            id,
            url,
            self.client.clone(),
            self.token.clone(),
            rx,
            self.node.clone(),
        ));
        tracing::debug!(peer = id, addr = %addr, "raft peer address set");
        self.peers.insert(id, Peer { addr, tx, task });
    }
}

/// Sends one peer's queue, batch by batch, until the queue closes.
async fn deliver(
    id: u64,
    url: String,
    client: reqwest::Client,
    token: Option<Arc<str>>,
    mut rx: mpsc::Receiver<Message>,
    node: NodeSender,
) {
    let mut healthy = true;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let snapshot = batch
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let mut rb = client
            .post(&url)
            .timeout(if snapshot {
                SNAPSHOT_TIMEOUT
            } else {
                SEND_TIMEOUT
            })
            .body(encode_batch(&batch));
        if let Some(t) = &token {
            rb = rb.bearer_auth(t);
        }
        let res = match rb.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => {
                if !healthy {
                    tracing::info!(peer = id, "raft peer reachable again");
                    healthy = true;
                }
                if snapshot {
                    let _ = node.send(NodeMsg::SnapshotSent { to: id, ok: true });
                }
            }
            Err(e) => {
                if healthy {
                    tracing::warn!(peer = id, url = %url, error = %e, "raft peer unreachable");
                    healthy = false;
                } else {
                    tracing::debug!(peer = id, error = %e, "raft peer still unreachable");
                }
                let _ = node.send(NodeMsg::Unreachable(id));
                if snapshot {
                    let _ = node.send(NodeMsg::SnapshotSent { to: id, ok: false });
                }
                while rx.try_recv().is_ok() {}
                // Do not spin on a dead peer; Raft's own retries come at tick pace anyway.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[derive(Clone)]
struct Inbound {
    node: NodeSender,
    token: Option<Arc<str>>,
}

/// Returns the routes peers talk to: `POST /raft/message`.
pub fn routes(node: NodeSender, token: Option<String>) -> Router {
    Router::new()
        .route(MESSAGE_PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Inbound {
            node,
            token: token.map(Arc::from),
        })
}

async fn receive(State(s): State<Inbound>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(s.token.as_deref(), &headers) {
        return r.into_response();
    }
    let msgs = match decode_batch(&body) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "malformed raft message batch");
            return (StatusCode::BAD_REQUEST, e).into_response();
        }
    };
    for m in msgs {
        if s.node.send(NodeMsg::Raft(Box::new(m))).is_err() {
            return (StatusCode::SERVICE_UNAVAILABLE, "raft node stopped").into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_reject_garbage() {
        let mut a = Message::default();
        a.set_msg_type(MessageType::MsgHeartbeat);
        a.to = 2;
        a.from = 1;
        a.term = 5;
        let mut b = a.clone();
        b.set_msg_type(MessageType::MsgAppend);
        b.index = 42;
        let body = encode_batch(&[a.clone(), b.clone()]);
        assert_eq!(decode_batch(&body).expect("decode"), vec![a, b]);
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
        assert!(decode_batch(&[1, 0]).is_err());
    }
}
