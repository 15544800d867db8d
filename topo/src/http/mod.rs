//! The topology service's HTTP/JSON API (documented in `docs/topology.md`) and its client.

pub mod client;
pub mod server;

use crate::error::TopoError;
use crate::store::{Condition, KeyValue, WatchEvent};
use serde::{Deserialize, Serialize};

/// Body of `PUT /v1/kv`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: String,
    pub value: String,
    /// Write only if the key's mod revision equals this (0: only if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mod_revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

impl PutRequest {
    pub(crate) fn cond(&self) -> Condition {
        self.mod_revision
            .map_or(Condition::None, Condition::ModRevision)
    }
}

/// Answer of writes: the new revision (absent for a delete of an absent key).
#[derive(Debug, Serialize, Deserialize)]
pub struct RevisionResponse {
    pub revision: Option<u64>,
}

/// Answer of `GET /v1/list`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListResponse {
    pub kvs: Vec<KeyValue>,
    pub revision: u64,
}

/// Answer of `GET /v1/watch`: the events after `after`, possibly none if the poll timed out.
#[derive(Debug, Serialize, Deserialize)]
pub struct WatchResponse {
    pub events: Vec<WatchEvent>,
}

/// Body of `POST /v1/lease`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub ttl_ms: u64,
}

/// Answer of `POST /v1/lease`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub id: i64,
}

/// An error as the API reports it, mapping one-to-one onto [`TopoError`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `conflict`, `compacted`, `lease_not_found`, `not_found`, `invalid`, `unavailable`,
    /// `unauthorized` or `internal`.
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

impl ErrorBody {
    /// Returns the HTTP status and body for an error.
    pub fn from_error(e: &TopoError) -> (u16, ErrorBody) {
        let mut b = ErrorBody {
            error: String::new(),
            message: e.to_string(),
            key: None,
            expected: None,
            found: None,
            lease: None,
        };
        let status = match e {
            TopoError::Conflict {
                key,
                expected,
                found,
            } => {
                b.key = Some(key.clone());
                b.expected = Some(*expected);
                b.found = Some(*found);
                b.error = "conflict".into();
                409
            }
            TopoError::Compacted { requested, oldest } => {
                b.expected = Some(*requested);
                b.found = Some(*oldest);
                b.error = "compacted".into();
                410
            }
            TopoError::LeaseNotFound(id) => {
                b.lease = Some(*id);
                b.error = "lease_not_found".into();
                404
            }
            TopoError::NotFound(_) => {
                b.error = "not_found".into();
                404
            }
            TopoError::Invalid { .. } => {
                b.error = "invalid".into();
                400
            }
            TopoError::Unavailable(_) | TopoError::Closed => {
                b.error = "unavailable".into();
                503
            }
            _ => {
                b.error = "internal".into();
                500
            }
        };
        (status, b)
    }

    /// Turns an API error back into a [`TopoError`].
    pub fn into_error(self) -> TopoError {
        match self.error.as_str() {
            "conflict" => TopoError::Conflict {
                key: self.key.unwrap_or_default(),
                expected: self.expected.unwrap_or(0),
                found: self.found.unwrap_or(0),
            },
            "compacted" => TopoError::Compacted {
                requested: self.expected.unwrap_or(0),
                oldest: self.found.unwrap_or(0),
            },
            "lease_not_found" => TopoError::LeaseNotFound(self.lease.unwrap_or(0)),
            "not_found" => TopoError::NotFound(self.message),
            "invalid" => TopoError::Invalid {
                what: "request".into(),
                message: self.message,
            },
            "unavailable" => TopoError::Unavailable(self.message),
            _ => TopoError::Unavailable(format!("{}: {}", self.error, self.message)),
        }
    }
}
