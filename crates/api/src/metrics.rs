//! Prometheus metrics: requests by route template, method and status; a latency histogram;
//! the database pool; jobs by status; long-poll waiters. Served as text at `GET /metrics`.
//!
//! Every label has a bounded set of values, so no client can grow the exposition: the route
//! is a route template of the service (or `unmatched`), the method one of the standard
//! methods (or `other`), the status a three-digit code.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use asyncstatus_domain::JobStatus;
use asyncstatus_persistence::PoolState;

/// Request latency buckets, in seconds: sub-millisecond reads up to a full long-poll.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    pool_checkouts: IntGaugeVec,
    jobs: IntGaugeVec,
    waiters: IntGauge,
    database_up: IntGauge,
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: prometheus::Result<T>,
) -> prometheus::Result<T> {
    let collector = collector?;
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("asyncstatus".into()), None)?;
        let r = &registry;
        Ok(Metrics {
            requests: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests answered, by route template, method and status.",
                    ),
                    &["route", "method", "status"],
                ),
            )?,
            latency: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Time to answer, by route template and method.",
                    )
                    .buckets(BUCKETS.to_vec()),
                    &["route", "method"],
                ),
            )?,
            pool: registered(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "db_pool_connections",
                        "Database pool connections: size (the most), open, idle, in_use.",
                    ),
                    &["state"],
                ),
            )?,
            pool_checkouts: registered(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "db_pool_checkouts",
                        "Pool checkouts since start that waited for a connection, or timed out.",
                    ),
                    &["outcome"],
                ),
            )?,
            jobs: registered(
                r,
                IntGaugeVec::new(
                    Opts::new("jobs", "Jobs in the database, by status."),
                    &["status"],
                ),
            )?,
            waiters: registered(
                r,
                IntGauge::new(
                    "longpoll_waiters",
                    "Requests waiting on a job now (Prefer: wait).",
                ),
            )?,
            database_up: registered(
                r,
                IntGauge::new(
                    "database_up",
                    "1 when the last scrape could query the database.",
                ),
            )?,
            registry,
        })
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let code = itoa_status(status);
        self.requests
            .with_label_values(&[route, method, code.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The text exposition, with gauges read now. `jobs` is `None` when the database could
    /// not be queried.
    pub fn render(
        &self,
        pool: PoolState,
        jobs: Option<&[(JobStatus, i64)]>,
        waiters: usize,
    ) -> String {
        let in_use = pool.connections.saturating_sub(pool.idle);
        for (state, value) in [
            ("size", pool.size),
            ("open", pool.connections),
            ("idle", pool.idle),
            ("in_use", in_use),
        ] {
            self.pool.with_label_values(&[state]).set(i64::from(value));
        }
        for (outcome, value) in [("waited", pool.waits), ("timed_out", pool.timeouts)] {
            self.pool_checkouts
                .with_label_values(&[outcome])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.database_up.set(i64::from(jobs.is_some()));
        for (status, count) in jobs.unwrap_or_default() {
            self.jobs.with_label_values(&[status.as_str()]).set(*count);
        }
        self.waiters.set(i64::try_from(waiters).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The methods counted by name (RFC 9110's and PATCH); any other token is `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The method label: the method when it is a standard one, else `other`.
fn method_label(method: &str) -> &str {
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// A status code as text without allocating through `format!` on the hot path.
fn itoa_status(status: u16) -> String {
    let mut s = String::with_capacity(3);
    s.push(char::from(b'0' + (status / 100 % 10) as u8));
    s.push(char::from(b'0' + (status / 10 % 10) as u8));
    s.push(char::from(b'0' + (status % 10) as u8));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_pool_jobs_and_waiters() {
        let m = Metrics::new().unwrap();
        m.observe("/api/4.0/async_status/{id}", "GET", 200, 0.002);
        m.observe("/api/4.0/async_status/{id}", "GET", 404, 0.001);
        let pool = PoolState {
            size: 8,
            connections: 3,
            idle: 1,
            waits: 4,
            timeouts: 1,
        };
        let text = m.render(
            pool,
            Some(&[(JobStatus::Pending, 2), (JobStatus::Failed, 1)]),
            7,
        );
        for line in [
            r#"asyncstatus_http_requests_total{method="GET",route="/api/4.0/async_status/{id}",status="200"} 1"#,
            r#"asyncstatus_http_requests_total{method="GET",route="/api/4.0/async_status/{id}",status="404"} 1"#,
            r#"asyncstatus_http_request_duration_seconds_count{method="GET",route="/api/4.0/async_status/{id}"} 2"#,
            r#"asyncstatus_db_pool_connections{state="in_use"} 2"#,
            r#"asyncstatus_db_pool_checkouts{outcome="timed_out"} 1"#,
            r#"asyncstatus_jobs{status="PENDING"} 2"#,
            "asyncstatus_longpoll_waiters 7",
            "asyncstatus_database_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert_eq!(itoa_status(503), "503");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = Metrics::new().unwrap();
        for method in ["FOO", "BAR", "get", "PROPFIND"] {
            m.observe("unmatched", method, 405, 0.001);
        }
        m.observe("unmatched", "PATCH", 405, 0.001);
        let pool = PoolState {
            size: 1,
            connections: 1,
            idle: 1,
            waits: 0,
            timeouts: 0,
        };
        let text = m.render(pool, None, 0);
        let line =
            r#"asyncstatus_http_requests_total{method="other",route="unmatched",status="405"} 4"#;
        assert!(text.lines().any(|l| l == line), "{text}");
        assert!(text.contains(r#"method="PATCH""#));
        assert!(!text.contains("PROPFIND") && !text.contains(r#"method="get""#));
    }
}
