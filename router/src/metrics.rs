//! The router's Prometheus metrics, one registry per router (no process-wide globals).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Everything a router counts.
pub struct Metrics {
    pub registry: Registry,
    /// Statements by route kind, keyspace and outcome (`ok` / `error`).
    pub queries: IntCounterVec,
    /// Statement latency in seconds, by route kind.
    pub latency: HistogramVec,
    /// Client connections open now.
    pub connections: IntGauge,
    /// Client connections accepted, and refused for being over the limit.
    pub accepted: IntCounterVec,
    /// Errors sent to clients, by MySQL error number.
    pub errors: IntCounterVec,
    /// Whether the topology watch is live (1) or the router serves from its cache (0).
    pub topo_connected: IntGauge,
    /// The topology revision served.
    pub topo_revision: IntGauge,
    /// The placement epoch served, by keyspace.
    pub epoch: prometheus::IntGaugeVec,
    /// Result-shadow comparisons by outcome (`match`, `mismatch`, `skipped_*`, `ignored`).
    pub shadow_results: IntCounterVec,
    /// Statements checked by the routing shadow, by candidate route kind.
    pub shadow_routes: IntCounterVec,
    /// Commands whose handling panicked (each answered with an error, its connection closed).
    pub panics: prometheus::IntCounter,
    /// Logins refused (wrong password, unknown user, clear text where TLS is required).
    pub login_failures: prometheus::IntCounter,
    /// Client connections closed for not finishing greeting and login within
    /// `handshake_timeout_ms`.
    pub handshake_timeouts: prometheus::IntCounter,
    /// Sessions closed for staying idle longer than their `wait_timeout`.
    pub idle_timeouts: prometheus::IntCounter,
}

impl Metrics {
    /// Builds the metrics and registers them.
    ///
    /// # Panics
    /// Never: the names are fixed and distinct.
    pub fn new() -> Self {
        let registry = Registry::new();
        let queries = IntCounterVec::new(
            Opts::new(
                "tessera_router_queries_total",
                "Statements by route kind, keyspace and outcome",
            ),
            &["route", "keyspace", "outcome"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tessera_router_query_seconds",
                "Statement latency by route kind",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let connections = IntGauge::new("tessera_router_connections", "Client connections open")
            .expect("valid metric");
        let accepted = IntCounterVec::new(
            Opts::new(
                "tessera_router_connections_total",
                "Client connections by outcome (accepted, refused)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "tessera_router_errors_total",
                "Errors sent to clients by MySQL error number",
            ),
            &["code"],
        )
        .expect("valid metric");
        let topo_connected = IntGauge::new(
            "tessera_router_topo_connected",
            "1 when the topology watch is live",
        )
        .expect("valid metric");
        let topo_revision =
            IntGauge::new("tessera_router_topo_revision", "Topology revision served")
                .expect("valid metric");
        let epoch = prometheus::IntGaugeVec::new(
            Opts::new("tessera_router_placement_epoch", "Placement epoch served"),
            &["keyspace"],
        )
        .expect("valid metric");
        let shadow_results = IntCounterVec::new(
            Opts::new(
                "tessera_shadow_results_total",
                "Result-shadow comparisons by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let shadow_routes = IntCounterVec::new(
            Opts::new(
                "tessera_shadow_routes_total",
                "Statements checked by the routing shadow, by route on the candidate",
            ),
            &["route"],
        )
        .expect("valid metric");
        let panics = prometheus::IntCounter::new(
            "tessera_router_panics_total",
            "Client commands whose handling panicked (answered with an error, connection closed)",
        )
        .expect("valid metric");
        let login_failures = prometheus::IntCounter::new(
            "tessera_router_login_failures_total",
            "Client logins refused (each answered with 1045; repeated ones from one address are slowed down)",
        )
        .expect("valid metric");
        let handshake_timeouts = prometheus::IntCounter::new(
            "tessera_router_handshake_timeouts_total",
            "Client connections closed for not finishing greeting and login within handshake_timeout_ms",
        )
        .expect("valid metric");
        let idle_timeouts = prometheus::IntCounter::new(
            "tessera_router_idle_timeouts_total",
            "Sessions closed for staying idle between statements longer than their wait_timeout",
        )
        .expect("valid metric");
        for c in [
            Box::new(queries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(handshake_timeouts.clone()),
            Box::new(idle_timeouts.clone()),
            Box::new(panics.clone()),
            Box::new(login_failures.clone()),
            Box::new(latency.clone()),
            Box::new(connections.clone()),
            Box::new(accepted.clone()),
            Box::new(errors.clone()),
            Box::new(topo_connected.clone()),
            Box::new(topo_revision.clone()),
            Box::new(epoch.clone()),
            Box::new(shadow_results.clone()),
            Box::new(shadow_routes.clone()),
        ] {
            registry.register(c).expect("distinct metric names");
        }
        Metrics {
            registry,
            queries,
            latency,
            connections,
            accepted,
            errors,
            topo_connected,
            topo_revision,
            epoch,
            shadow_results,
            shadow_routes,
            panics,
            login_failures,
            handshake_timeouts,
            idle_timeouts,
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let enc = prometheus::TextEncoder::new();
        enc.encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
