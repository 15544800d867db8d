//! [`HttpStore`]: a [`Store`] that talks to topology nodes over the HTTP API, trying each
//! endpoint in turn and sticking to the last one that answered.

use super::*;
use crate::error::Result;
use crate::store::{Store, Watcher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one watch poll waits on the server.
const POLL_MS: u64 = 10_000;

/// A client of the topology service with endpoint failover.
#[derive(Clone)]
pub struct HttpStore {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    current: AtomicUsize,
    http: reqwest::Client,
    token: Option<String>,
}

impl HttpStore {
    /// Returns a clear-text client of `endpoints` (`host:port` or `http://host:port`).
    ///
    /// # Errors
    /// [`TopoError::Invalid`] when no endpoint is given.
    pub fn new(endpoints: &[String], token: Option<String>) -> Result<Self> {
        HttpStore::with_tls(endpoints, token, None)
    }

    /// Returns a client of `endpoints`; with `tls`, `host:port` means `https://host:port`,
    /// verified against its CA.
    ///
    /// # Errors
    /// [`TopoError::Invalid`] when no endpoint is given, or `tls` cannot be used.
    pub fn with_tls(
        endpoints: &[String],
        token: Option<String>,
        tls: Option<crate::tls::ClientTls>,
    ) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| crate::tls::url_of(e, tls.is_some()))
            .collect();
        if endpoints.is_empty() {
            return Err(TopoError::invalid(
                "endpoints",
                "at least one topology endpoint is needed",
            ));
        }
        let http = crate::tls::http_client(tls.as_ref())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_millis(POLL_MS + 5_000))
            .build()
            .map_err(|e| TopoError::Unavailable(e.to_string()))?;
        Ok(HttpStore {
            inner: Arc::new(Inner {
                endpoints,
                current: AtomicUsize::new(0),
                http,
                token,
            }),
        })
    }

    /// Returns the endpoints, as URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// Fetches `GET /v1/status` from every endpoint (an error text for those that fail).
    pub async fn status_all(
        &self,
    ) -> Vec<(String, std::result::Result<serde_json::Value, String>)> {
        let mut out = Vec::new();
        for ep in &self.inner.endpoints {
            let mut rb = self
                .inner
                .http
                .get(format!("{ep}/v1/status"))
                .timeout(Duration::from_secs(2));
            if let Some(t) = &self.inner.token {
                rb = rb.bearer_auth(t);
            }
            let r = match rb.send().await {
                Ok(resp) => resp
                    .json::<serde_json::Value>()
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            out.push((ep.clone(), r));
        }
        out
    }

    /// Sends a request built by `build` to each endpoint in turn until one answers.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let ep = &self.inner.endpoints[idx];
            let mut rb = build(&self.inner.http, ep);
            if let Some(t) = &self.inner.token {
                rb = rb.bearer_auth(t);
            }
            match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        self.inner.current.store(idx, Ordering::Relaxed);
                        return resp
                            .json::<T>()
                            .await
                            .map_err(|e| TopoError::Unavailable(format!("{ep}: bad answer: {e}")));
                    }
                    let body = resp
                        .json::<ErrorBody>()
                        .await
                        .map_err(|e| TopoError::Unavailable(format!("{ep}: HTTP {status}: {e}")))?;
                    if body.error == "unavailable" {
                        // This node cannot serve now (no leader, shutting down): try another.
                        last = format!("{ep}: {}", body.message);
                        continue;
                    }
                    if body.error == "unauthorized" {
                        return Err(TopoError::Unavailable(format!("{ep}: {}", body.message)));
                    }
                    self.inner.current.store(idx, Ordering::Relaxed);
                    return Err(body.into_error());
                }
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        Err(TopoError::Unavailable(last))
    }
}

#[derive(serde::Deserialize)]
struct Empty {}

#[derive(serde::Deserialize)]
struct Rev {
    revision: u64,
}

#[async_trait::async_trait]
impl Store for HttpStore {
    async fn nodes(&self) -> Vec<(String, std::result::Result<serde_json::Value, String>)> {
        self.status_all().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self
            .call::<KeyValue>(|c, ep| c.get(format!("{ep}/v1/kv")).query(&[("key", key)]))
            .await
        {
            Ok(kv) => Ok(Some(kv)),
            Err(TopoError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_stale(&self, key: &str) -> Result<Option<KeyValue>> {
        match self
            .call::<KeyValue>(|c, ep| {
                c.get(format!("{ep}/v1/kv"))
                    .query(&[("key", key), ("stale", "true")])
            })
            .await
        {
            Ok(kv) => Ok(Some(kv)),
            Err(TopoError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        cond: Condition,
        lease: Option<i64>,
    ) -> Result<u64> {
        let req = PutRequest {
            key: key.to_string(),
            value: value.to_string(),
            mod_revision: match cond {
                Condition::None => None,
                Condition::ModRevision(r) => Some(r),
            },
            lease,
        };
        let r: RevisionResponse = self
            .call(|c, ep| c.put(format!("{ep}/v1/kv")).json(&req))
            .await?;
        r.revision
            .ok_or_else(|| TopoError::Unavailable("put answered without a revision".into()))
    }

    async fn delete(&self, key: &str, cond: Condition) -> Result<Option<u64>> {
        let r: RevisionResponse = self
            .call(|c, ep| {
                let rb = c.delete(format!("{ep}/v1/kv")).query(&[("key", key)]);
                match cond {
                    Condition::None => rb,
                    Condition::ModRevision(m) => rb.query(&[("mod_revision", m)]),
                }
            })
            .await?;
        Ok(r.revision)
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        let r: ListResponse = self
            .call(|c, ep| c.get(format!("{ep}/v1/list")).query(&[("prefix", prefix)]))
            .await?;
        Ok((r.kvs, r.revision))
    }

    async fn list_stale(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64)> {
        let r: ListResponse = self
            .call(|c, ep| {
                c.get(format!("{ep}/v1/list"))
                    .query(&[("prefix", prefix), ("stale", "true")])
            })
            .await?;
        Ok((r.kvs, r.revision))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher> {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::kv::WATCH_CHANNEL);
        let this = self.clone();
        let prefix = prefix.to_string();
        // The poll loop belongs to the returned receiver: it ends when the receiver is dropped.
        tokio::spawn(async move {
            let mut after = after_revision;
            loop {
                let poll = this.call::<WatchResponse>(|c, ep| {
                    c.get(format!("{ep}/v1/watch")).query(&[
                        ("prefix", prefix.as_str()),
                        ("after", &after.to_string()),
                        ("timeout_ms", &POLL_MS.to_string()),
                    ])
                });
                let res = tokio::select! {
                    r = poll => r,
                    _ = tx.closed() => return,
                };
                match res {
                    Ok(w) => {
                        for ev in w.events {
                            after = after.max(ev.revision);
                            if tx.send(Ok(ev)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e @ TopoError::Compacted { .. }) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        // Every endpoint failed: end the watch so the watcher knows topo is
                        // unreachable; it re-lists and watches again when topo is back.
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl_ms: u64) -> Result<i64> {
        let r: LeaseResponse = self
            .call(|c, ep| {
                c.post(format!("{ep}/v1/lease"))
                    .json(&LeaseRequest { ttl_ms })
            })
            .await?;
        Ok(r.id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<()> {
        let _: Empty = self
            .call(|c, ep| c.post(format!("{ep}/v1/lease/{lease}/keepalive")))
            .await?;
        Ok(())
    }

    async fn revoke_lease(&self, lease: i64) -> Result<()> {
        let _: Empty = self
            .call(|c, ep| c.delete(format!("{ep}/v1/lease/{lease}")))
            .await?;
        Ok(())
    }

    async fn revision(&self) -> Result<u64> {
        let r: Rev = self
            .call(|c, ep| c.get(format!("{ep}/v1/revision")))
            .await?;
        Ok(r.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn conformance_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let app = crate::http::server::router(store, Some("sekret".into()), None);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::server::serve(listener, app, None, async {
            let _ = stop_rx.await;
        }));
        // A dead endpoint first: the client must fail over to the live one.
        let client = HttpStore::new(
            &["127.0.0.1:1".to_string(), addr.to_string()],
            Some("sekret".into()),
        )
        .expect("client");
        crate::conformance::run(&client).await;
        let wrong = HttpStore::new(&[addr.to_string()], Some("nope".into())).expect("client");
        assert!(matches!(
            wrong.get("/x").await,
            Err(TopoError::Unavailable(_))
        ));
        let _ = stop_tx.send(());
        let _ = server.await;
    }
}
