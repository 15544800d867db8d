//! Router configuration, read from YAML. Unknown fields are rejected; [`RouterConfig::validate`]
//! names the bad field.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A router's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Where applications connect. Default: `127.0.0.1:15306`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The version string sent to clients. Default: `5.5.5-10.11.99-MariaDB-Tessera` (the `5.5.5-` prefix is how MariaDB servers announce themselves; clients strip it).
    #[serde(default = "default_version")]
    pub server_version: String,
    /// The authentication plugin offered first: `mysql_native_password` (default) or
    /// `caching_sha2_password`. Either is accepted from clients.
    #[serde(default = "default_plugin")]
    pub auth_plugin: String,
    /// Users allowed to connect. At least one.
    pub users: Vec<UserConfig>,
    /// Where the topology lives.
    #[serde(default)]
    pub topo: TopoConfig,
    /// Most client connections at once; more are refused with error 1040. Default: 2000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Backend connection pools.
    #[serde(default)]
    pub backend: BackendConfig,
    /// The keyspace a session starts in when the client names none. Default: none.
    #[serde(default)]
    pub default_keyspace: Option<String>,
    /// The admin HTTP endpoint (`/status`, `/metrics`); `null` turns it off.
    /// Default: `127.0.0.1:15000`.
    #[serde(default = "default_admin")]
    pub admin_listen: Option<SocketAddr>,
    /// How long a write to a logical shard being cut over waits for the flip before it fails
    /// with the retriable error 1205 (ms). Default: 3000.
    #[serde(default = "default_hold")]
    pub cutover_hold_ms: u64,
    /// Most writes waiting for cutovers at once; more fail at once with 1205. Default: 10000.
    #[serde(default = "default_max_held")]
    pub max_held_writes: usize,
    /// Bound (s) on each lock wait of a transaction that spans physical shards, which can
    /// deadlock across servers where no server sees it; 0 leaves the servers' own
    /// `innodb_lock_wait_timeout`. Default: 2.
    #[serde(default = "default_multi_wait")]
    pub multi_shard_lock_wait_s: u64,
    /// Most rows a read that MariaDB finishes over gathered rows may gather from the logical
    /// shards (a statement that needs more is refused, naming this bound). Default: 200000.
    #[serde(default = "default_gather_rows")]
    pub max_gather_rows: u64,
    /// The query log (JSON lines), off unless set.
    #[serde(default)]
    pub query_log: Option<QueryLogConfig>,
    /// TLS for client connections (`mariadb --ssl`, drivers' `ssl` options), off unless set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Refuse logins that did not switch to TLS (needs `tls`). Default: false.
    #[serde(default)]
    pub require_secure_transport: bool,
    /// How long (ms) a new client connection may take from the router's greeting to the end
    /// of its login, TLS handshake included; past it the socket is closed and counted
    /// (`tessera_router_handshake_timeouts_total`). Default: 10000 (MariaDB's
    /// `connect_timeout` of 10 s).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// How long (s) a session may stay idle between statements before the router closes it,
    /// as MariaDB closes it; a session's own `SET wait_timeout` overrides it. Default: 28800
    /// (MariaDB's `wait_timeout`).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout_s: u64,
    /// [`RouterConfig::wait_timeout_s`] for clients that say they are interactive
    /// (`CLIENT_INTERACTIVE`: the `mariadb` CLI at a terminal), as MariaDB's
    /// `interactive_timeout`. Default: 28800.
    #[serde(default = "default_wait_timeout")]
    pub interactive_timeout_s: u64,
}

fn default_handshake_timeout() -> u64 {
    10_000
}

fn default_wait_timeout() -> u64 {
    28_800
}

/// MariaDB's largest `wait_timeout` (a year, in seconds).
const MAX_WAIT_TIMEOUT_S: u64 = 31_536_000;

/// The router's certificate for client connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (the router's certificate first).
    pub cert: std::path::PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

fn default_gather_rows() -> u64 {
    200_000
}

fn default_multi_wait() -> u64 {
    2
}

fn default_hold() -> u64 {
    3000
}

fn default_max_held() -> usize {
    10_000
}

fn default_admin() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 15000)))
}

/// A user allowed to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The password in clear (local use); prefer `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The password's stored form, as MariaDB's `PASSWORD()` writes it (`*` and 40 hex
    /// digits; `tessera router hash-password` prints it): the config then holds no password.
    /// Such a user logs in with `mysql_native_password` (a client that starts with
    /// `caching_sha2_password` is switched to it).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Whether the user may create and drop unsharded keyspaces with `CREATE DATABASE` and
    /// `DROP DATABASE`. Default: `true`.
    #[serde(default = "yes")]
    pub create_keyspaces: bool,
    /// Whether the user may log in only over TLS. Default: `false`.
    #[serde(default)]
    pub require_tls: bool,
    /// The keyspaces the user may use (`USE`, names in statements, `SHOW DATABASES`, a
    /// login's database). Default: all.
    #[serde(default)]
    pub keyspaces: Option<Vec<String>>,
    /// Whether the user may only read: writes, DDL, `CALL`, `LOAD DATA` and keyspace creation
    /// are refused (1290). Default: `false`.
    #[serde(default)]
    pub read_only: bool,
    /// Whether the user is an administrator: its statements that act on a whole database
    /// server or outside the keyspaces (`SET GLOBAL`, `FLUSH`, user and grant management,
    /// `mysql.*`, `LOAD_FILE`, …) run on the physical shard that holds its session's current
    /// unsharded keyspace instead of being refused, and it may kill any session. Default:
    /// `false`.
    #[serde(default)]
    pub admin: bool,
}

impl UserConfig {
    /// A user with a password in clear and the defaults for the rest.
    pub fn with_password(name: &str, password: Option<&str>) -> Self {
        UserConfig {
            name: name.to_string(),
            password: password.map(str::to_string),
            password_env: None,
            password_hash: None,
            create_keyspaces: true,
            require_tls: false,
            keyspaces: None,
            read_only: false,
            admin: false,
        }
    }

    /// What proves the user: its password, or the stored form of it.
    pub fn credential(&self) -> Credential {
        match self
            .password_hash
            .as_deref()
            .and_then(crate::wire::auth::parse_native_hash)
        {
            Some(h) => Credential::NativeHash(h),
            None => Credential::Clear(self.resolve_password()),
        }
    }

    /// The user's limits, for its sessions.
    pub fn grants(&self) -> Grants {
        Grants {
            keyspaces: self.keyspaces.clone().map(std::sync::Arc::new),
            read_only: self.read_only,
            admin: self.admin,
        }
    }
}

fn yes() -> bool {
    true
}

impl UserConfig {
    /// Returns the user's password ("" when neither field is set).
    pub fn resolve_password(&self) -> String {
        self.password
            .clone()
            .or_else(|| {
                self.password_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok())
            })
            .unwrap_or_default()
    }
}

/// Where the topology lives.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TopoConfig {
    /// Endpoints of the topology service (`host:port`). Default: `127.0.0.1:15999`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Environment variable with the shared token, if the service wants one.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The CA file the topology nodes' certificates chain to: `host:port` endpoints are then
    /// reached over HTTPS, verified against it. Without it, the CA that `$TESSERA_TOPO_CA`
    /// names or a running `tessera up` left (beside the token file) for these endpoints.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate and key for nodes that require one (mutual TLS).
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TopoConfig {
    /// The endpoints, or the local one when none is given.
    pub fn endpoints_or_default(&self) -> Vec<String> {
        if self.endpoints.is_empty() {
            vec!["127.0.0.1:15999".into()]
        } else {
            self.endpoints.clone()
        }
    }

    /// The TLS a client of the topology uses, as configured or found (see `tls_ca`).
    ///
    /// # Errors
    /// A file that cannot be read, or a certificate without its key.
    pub fn client_tls(&self) -> Result<Option<tessera_topo::tls::ClientTls>, ConfigError> {
        let bad = |field: &str, message: String| ConfigError {
            field: field.into(),
            message,
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "topo.tls_cert",
                    "tls_cert and tls_key go together".into(),
                ))
            }
        };
        match &self.tls_ca {
            Some(ca) => tessera_topo::tls::ClientTls::from_files(ca, identity)
                .map(Some)
                .map_err(|e| bad("topo.tls_ca", e.to_string())),
            None if identity.is_some() => Err(bad(
                "topo.tls_ca",
                "a client certificate needs the CA the nodes are verified against".into(),
            )),
            None => tessera_topo::tls::ClientTls::discover(&self.endpoints_or_default())
                .map_err(|e| bad("topo.tls_ca", e.to_string())),
        }
    }
}

/// Backend pools, one per physical shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Most connections per physical shard. Default: 64.
    #[serde(default = "default_pool_max")]
    pub pool_max: usize,
    /// Connect timeout in milliseconds. Default: 2000.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            pool_max: default_pool_max(),
            connect_timeout_ms: default_connect_timeout(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15306))
}
fn default_version() -> String {
    "5.5.5-10.11.99-MariaDB-Tessera".into()
}
fn default_plugin() -> String {
    crate::wire::auth::NATIVE.into()
}
fn default_max_connections() -> usize {
    2000
}
fn default_pool_max() -> usize {
    64
}
fn default_connect_timeout() -> u64 {
    2000
}

/// A bad configuration, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid router config: {field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl RouterConfig {
    /// Parses and validates YAML.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (YAML errors carry line and column).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let c: RouterConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
            field: e.location().map_or_else(
                || "config".into(),
                |l| format!("line {} column {}", l.line(), l.column()),
            ),
            message: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| {
            Err(ConfigError {
                field: field.into(),
                message: message.into(),
            })
        };
        if self.users.is_empty() {
            return bad("users", "at least one user is needed");
        }
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() {
                return bad(&format!("users[{i}].name"), "must not be empty");
            }
            let given = [
                u.password.is_some(),
                u.password_env.is_some(),
                u.password_hash.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return bad(
                    &format!("users[{i}]"),
                    "give one of password, password_env and password_hash",
                );
            }
            if let Some(h) = &u.password_hash {
                if crate::wire::auth::parse_native_hash(h).is_none() {
                    return bad(
                        &format!("users[{i}].password_hash"),
                        "must be * and 40 hex digits, as PASSWORD() or `tessera router hash-password` writes it",
                    );
                }
            }
            if let Some(v) = &u.password_env {
                if std::env::var(v).is_err() {
                    return bad(
                        &format!("users[{i}].password_env"),
                        &format!("environment variable {v} is not set"),
                    );
                }
            }
        }
        if self.auth_plugin != crate::wire::auth::NATIVE
            && self.auth_plugin != crate::wire::auth::CACHING_SHA2
        {
            return bad(
                "auth_plugin",
                "must be mysql_native_password or caching_sha2_password",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.handshake_timeout_ms == 0 {
            return bad("handshake_timeout_ms", "must be at least 1");
        }
        if !(1..=MAX_WAIT_TIMEOUT_S).contains(&self.wait_timeout_s) {
            return bad(
                "wait_timeout_s",
                &format!("must be from 1 to {MAX_WAIT_TIMEOUT_S}, as MariaDB's wait_timeout"),
            );
        }
        if !(1..=MAX_WAIT_TIMEOUT_S).contains(&self.interactive_timeout_s) {
            return bad(
                "interactive_timeout_s",
                &format!(
                    "must be from 1 to {MAX_WAIT_TIMEOUT_S}, as MariaDB's interactive_timeout"
                ),
            );
        }
        if self.backend.pool_max == 0 {
            return bad("backend.pool_max", "must be at least 1");
        }
        if let Some(k) = &self.default_keyspace {
            if k.is_empty() {
                return bad("default_keyspace", "must not be empty");
            }
        }
        if self.tls.is_none() {
            if self.require_secure_transport {
                return bad(
                    "require_secure_transport",
                    "needs tls (a certificate and key)",
                );
            }
            if let Some(i) = self.users.iter().position(|u| u.require_tls) {
                return bad(
                    &format!("users[{i}].require_tls"),
                    "needs tls (a certificate and key)",
                );
            }
        }
        Ok(())
    }

    /// Returns the topology endpoints, defaulting to the local one.
    pub fn topo_endpoints(&self) -> Vec<String> {
        self.topo.endpoints_or_default()
    }
}

/// What proves a user (see [`UserConfig::credential`]).
#[derive(Debug, Clone)]
pub enum Credential {
    Clear(String),
    /// `SHA1(SHA1(password))`.
    NativeHash([u8; 20]),
}

impl Credential {
    /// Whether `token`, sent with `plugin` for `scramble`, proves it.
    pub fn check(&self, plugin: &str, scramble: &[u8], token: &[u8]) -> bool {
        match self {
            Credential::Clear(pw) => {
                crate::wire::auth::check(plugin, pw.as_bytes(), scramble, token)
            }
            Credential::NativeHash(h) => {
                plugin == crate::wire::auth::NATIVE
                    && crate::wire::auth::check_native_hash(h, scramble, token)
            }
        }
    }
}

/// What a user may reach and do: its keyspaces (`None`: all) and whether it may only read.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub keyspaces: Option<std::sync::Arc<Vec<String>>>,
    pub read_only: bool,
    pub admin: bool,
}

impl Grants {
    /// Whether the user may use keyspace `ks`.
    pub fn may_use(&self, ks: &str) -> bool {
        self.keyspaces
            .as_ref()
            .is_none_or(|l| l.iter().any(|k| k == ks))
    }

    /// The refusal of keyspace `ks` to `user`, as MariaDB refuses a database (1044).
    pub fn denied(user: &str, ks: &str) -> crate::error::SqlError {
        crate::error::SqlError::new(
            1044,
            "42000",
            format!("Access denied for user '{user}' to database '{ks}'"),
        )
    }

    /// The refusal of a write to a read-only user (1290).
    pub fn read_only_refusal(user: &str) -> crate::error::SqlError {
        crate::error::SqlError::new(
            1290,
            "HY000",
            format!(
                "The MariaDB server is running with the read-only user '{user}' option so it cannot execute this statement"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bad_fields() {
        let e = RouterConfig::from_yaml("users: []\n").expect_err("bad");
        assert!(e.to_string().contains("users"), "{e}");
        let e = RouterConfig::from_yaml("users: [{name: a}]\nlisten: nope\n").expect_err("bad");
        assert!(e.to_string().contains("line"), "{e}");
        let e = RouterConfig::from_yaml("users: [{name: a}]\nlistn: 1\n").expect_err("bad");
        assert!(e.to_string().contains("listn"), "{e}");
        let ok = RouterConfig::from_yaml("users: [{name: a, password: b}]\n").expect("ok");
        assert_eq!(ok.listen.port(), 15306);
        assert_eq!(ok.handshake_timeout_ms, 10_000);
        assert_eq!(ok.wait_timeout_s, 28_800);
        assert_eq!(ok.interactive_timeout_s, 28_800);
        let e =
            RouterConfig::from_yaml("users: [{name: a}]\nwait_timeout_s: 0\n").expect_err("bad");
        assert!(e.to_string().contains("wait_timeout_s"), "{e}");
        let e = RouterConfig::from_yaml("users: [{name: a}]\nhandshake_timeout_ms: 0\n")
            .expect_err("bad");
        assert!(e.to_string().contains("handshake_timeout_ms"), "{e}");
    }
}

/// The query log's settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogConfig {
    /// The file JSON lines are appended to.
    pub path: std::path::PathBuf,
    /// Share of statements logged, 0.0 to 1.0. Default: 1.0.
    #[serde(default = "one")]
    pub sample_rate: f64,
    /// Statements at least this slow (ms) are always logged. Default: none.
    #[serde(default)]
    pub slow_ms: Option<u64>,
}

fn one() -> f64 {
    1.0
}
