//! The agent's metrics, registered in one registry that `/metrics` exports.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Produce bytes appended to a segment buffer and not yet committed.
    pub produce_pending_bytes: IntGauge,
    /// Segment files sealed and not yet committed.
    pub segments_pending: IntGauge,
    pub segments_committed: IntCounter,
    pub segment_flush_seconds: Histogram,
    pub produce_bytes: IntCounter,
    pub produce_records: IntCounter,
    pub fetch_bytes: IntCounter,
    /// Fetch response bytes built and not yet written to a socket.
    pub fetch_inflight_bytes: IntGauge,
    pub read_cache_bytes: IntGauge,
    pub read_cache_misses: IntCounter,
    pub open_connections: IntGauge,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub protocol_errors: IntCounter,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let gauge = |n: &str, h: &str| reg(&r, IntGauge::new(n, h).expect("valid gauge"));
        let counter = |n: &str, h: &str| reg(&r, IntCounter::new(n, h).expect("valid counter"));
        Metrics {
            produce_pending_bytes: gauge(
                "sluice_produce_pending_bytes",
                "Produce bytes received but not yet committed",
            ),
            segments_pending: gauge(
                "sluice_segments_pending",
                "Segment files sealed but not yet committed",
            ),
            segments_committed: counter(
                "sluice_segments_committed_total",
                "Segment files committed",
            ),
            segment_flush_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "sluice_segment_flush_seconds",
                    "Time from sealing a segment to its metadata commit",
                ))
                .expect("valid histogram"),
            ),
            produce_bytes: counter("sluice_produce_bytes_total", "Record batch bytes produced"),
            produce_records: counter("sluice_produce_records_total", "Records produced"),
            fetch_bytes: counter(
                "sluice_fetch_bytes_total",
                "Record batch bytes served by fetch",
            ),
            fetch_inflight_bytes: gauge(
                "sluice_fetch_inflight_bytes",
                "Fetch response bytes built but not yet sent",
            ),
            read_cache_bytes: gauge("sluice_read_cache_bytes", "Bytes held by the read cache"),
            read_cache_misses: counter(
                "sluice_read_cache_misses_total",
                "Chunk reads that went to the bucket",
            ),
            open_connections: gauge("sluice_open_connections", "Open Kafka connections"),
            requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("sluice_kafka_requests_total", "Kafka requests by API"),
                    &["api"],
                )
                .expect("valid counter vec"),
            ),
            request_seconds: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_kafka_request_seconds",
                        "Kafka request latency by API",
                    ),
                    &["api"],
                )
                .expect("valid histogram vec"),
            ),
            protocol_errors: counter(
                "sluice_kafka_protocol_errors_total",
                "Connections closed for malformed, oversized or unknown requests",
            ),
            registry: r,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
