//! Connection options for a physical shard, as its topology record describes it: every
//! component that connects to one (routers, the rebalancer, the CLI) uses these, so that a
//! shard whose record names a CA is reached over TLS by all of them.

use mysql_async::{OptsBuilder, SslOpts};

/// Options for the server at `host:port` with account `user`/`password`; with `tls_ca` (PEM),
/// TLS whose server certificate must be signed by it and valid for `host` (no other roots).
pub fn server_opts(
    host: &str,
    port: u16,
    user: &str,
    password: Option<String>,
    tls_ca: Option<&str>,
) -> OptsBuilder {
    let o = OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some(user.to_string()))
        .pass(password)
        .prefer_socket(false);
    match tls_ca {
        Some(ca) => o.ssl_opts(Some(
            SslOpts::default()
                .with_root_certs(vec![ca.as_bytes().to_vec().into()])
                .with_disable_built_in_roots(true),
        )),
        None => o,
    }
}

/// `ER_ACCESS_DENIED_ERROR`: a refused login.
const ACCESS_DENIED: u16 = 1045;

/// How many times a refused login is tried again (see [`login`]).
pub const REFUSED_LOGIN_RETRIES: u32 = 2;

/// Whether `e` is a refused login, which [`login`] tries again.
pub fn is_refused_login(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ACCESS_DENIED)
}

/// Logs in with `attempt` (a new connection, or a pool's), trying a refused login
/// [`REFUSED_LOGIN_RETRIES`] more times: mysql_common 0.37 (under mysql_async 0.37) drops a
/// trailing zero byte from a method switch's data, so a MariaDB `client_ed25519` login whose
/// nonce ends in 0 (one in 256) signs the wrong message and is refused; each new try gets a
/// new nonce. A wrong password costs three refused logins.
///
/// # Errors
/// The last attempt's error.
pub async fn login<F, Fut>(mut attempt: F) -> Result<mysql_async::Conn, mysql_async::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<mysql_async::Conn, mysql_async::Error>>,
{
    let mut refusals = 0;
    loop {
        match attempt().await {
            Err(e) if is_refused_login(&e) && refusals < REFUSED_LOGIN_RETRIES => refusals += 1,
            r => return r,
        }
    }
}
