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
