//! The agent's metrics, registered in one registry that `/metrics` exports.

use std::collections::BTreeMap;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::groups::state::Phase;
use crate::lag::GroupLag;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Produce bytes appended to a segment buffer and not yet committed.
    pub produce_pending_bytes: IntGauge,
    /// Segment files sealed and not yet committed.
    pub segments_pending: IntGauge,
    pub segments_committed: IntCounter,
    /// Metadata transactions that committed segments (one may carry several: group commit).
    pub commit_transactions: IntCounter,
    pub segment_flush_seconds: Histogram,
    pub segment_upload_seconds: Histogram,
    pub segment_commit_seconds: Histogram,
    pub produce_bytes: IntCounter,
    pub produce_records: IntCounter,
    pub fetch_bytes: IntCounter,
    pub read_cache_bytes: IntGauge,
    pub read_cache_misses: IntCounter,
    pub open_connections: IntGauge,
    pub requests: IntCounterVec,
    /// Transactions ended, by result (commit, abort).
    pub transactions: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub protocol_errors: IntCounter,
    pub idle_connections_closed: IntCounter,
    pub revoked_connections_closed: IntCounter,
    pub sasl_failures: IntCounter,
    pub retention_batches_deleted: IntCounter,
    pub segments_deleted: IntCounter,
    /// Input segment files compaction left unreferenced (merged away).
    pub compaction_segments_merged: IntCounter,
    pub compaction_batches_moved: IntCounter,
    pub compaction_objects_written: IntCounter,
    pub compaction_bytes_rewritten: IntCounter,
    /// Merges given up because a row moved meanwhile (retention, a deleted topic).
    pub compaction_swaps_abandoned: IntCounter,
    pub compaction_pass_failures: IntCounter,
    /// Key compaction (`cleanup.policy=compact`): records dropped (superseded, expired
    /// tombstones, aborted, markers), input bytes of the batches it rewrote or dropped,
    /// objects written, swaps given up, failed passes.
    pub key_compaction_records_removed: IntCounter,
    pub key_compaction_bytes_rewritten: IntCounter,
    pub key_compaction_objects_written: IntCounter,
    pub key_compaction_swaps_abandoned: IntCounter,
    pub key_compaction_pass_failures: IntCounter,
    pub group_time_lag: GaugeVec,
    pub group_offset_lag: IntGaugeVec,
    pub group_max_time_lag: GaugeVec,
    pub group_max_offset_lag: IntGaugeVec,
    pub group_generation: IntGaugeVec,
    pub group_members: IntGaugeVec,
    pub group_state: IntGaugeVec,
    pub gate_inflight: IntGaugeVec,
    pub gate_waiting: IntGaugeVec,
    pub gate_limit: IntGaugeVec,
    /// 1 while the accept loop waits for a gate to open or a connection slot.
    pub accept_paused: IntGauge,
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
            commit_transactions: counter(
                "sluice_commit_transactions_total",
                "Metadata transactions that committed segment files (group commit: one may carry several)",
            ),
            segment_flush_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "sluice_segment_flush_seconds",
                    "Time from sealing a segment to its metadata commit",
                ))
                .expect("valid histogram"),
            ),
            segment_upload_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "sluice_segment_upload_seconds",
                    "Time to write one segment object to the bucket, retries included",
                ))
                .expect("valid histogram"),
            ),
            segment_commit_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "sluice_segment_commit_seconds",
                    "Time of one metadata transaction committing uploaded segments",
                ))
                .expect("valid histogram"),
            ),
            produce_bytes: counter("sluice_produce_bytes_total", "Record batch bytes produced"),
            produce_records: counter("sluice_produce_records_total", "Records produced"),
            fetch_bytes: counter(
                "sluice_fetch_bytes_total",
                "Record batch bytes served by fetch",
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
            transactions: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "sluice_transactions_total",
                        "Transactions ended, by result (commit or abort, timeouts included)",
                    ),
                    &["result"],
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
            idle_connections_closed: counter(
                "sluice_kafka_idle_connections_closed_total",
                "Connections closed after --connections-max-idle without traffic",
            ),
            revoked_connections_closed: counter(
                "sluice_kafka_revoked_connections_closed_total",
                "Connections closed because their API key was revoked or its cluster deleted",
            ),
            sasl_failures: counter(
                "sluice_kafka_sasl_failures_total",
                "SASL authentications refused",
            ),
            retention_batches_deleted: counter(
                "sluice_retention_batches_deleted_total",
                "Batch rows removed by retention",
            ),
            segments_deleted: counter(
                "sluice_segments_deleted_total",
                "Segment objects deleted from the bucket (unreferenced or orphaned)",
            ),
            compaction_segments_merged: counter(
                "sluice_compaction_segments_merged_total",
                "Segment files left unreferenced by compaction (their batches moved to a merged object)",
            ),
            compaction_batches_moved: counter(
                "sluice_compaction_batches_moved_total",
                "Batch rows compaction repointed to a merged object",
            ),
            compaction_objects_written: counter(
                "sluice_compaction_objects_written_total",
                "Merged objects compaction wrote and committed",
            ),
            compaction_bytes_rewritten: counter(
                "sluice_compaction_bytes_rewritten_total",
                "Record batch bytes compaction copied into merged objects",
            ),
            compaction_swaps_abandoned: counter(
                "sluice_compaction_swaps_abandoned_total",
                "Merges rolled back because a batch row changed meanwhile (retention, topic deletion)",
            ),
            compaction_pass_failures: counter(
                "sluice_compaction_pass_failures_total",
                "Compaction passes that stopped on an error",
            ),
            key_compaction_records_removed: counter(
                "sluice_key_compaction_records_removed_total",
                "Records key compaction removed (superseded, expired tombstones, aborted, markers)",
            ),
            key_compaction_bytes_rewritten: counter(
                "sluice_key_compaction_bytes_rewritten_total",
                "Stored batch bytes key compaction rewrote or dropped",
            ),
            key_compaction_objects_written: counter(
                "sluice_key_compaction_objects_written_total",
                "Objects of rewritten batches key compaction wrote and committed",
            ),
            key_compaction_swaps_abandoned: counter(
                "sluice_key_compaction_swaps_abandoned_total",
                "Key compaction swaps rolled back because a batch row changed meanwhile",
            ),
            key_compaction_pass_failures: counter(
                "sluice_key_compaction_pass_failures_total",
                "Key compaction passes in which a partition failed or the pass stopped on an error",
            ),
            group_time_lag: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_time_lag_seconds",
                        "Now minus the produce time of the group's first unconsumed record",
                    ),
                    &["cluster", "group", "topic", "partition"],
                )
                .expect("valid gauge vec"),
            ),
            group_offset_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_offset_lag",
                        "Log end offset minus committed offset",
                    ),
                    &["cluster", "group", "topic", "partition"],
                )
                .expect("valid gauge vec"),
            ),
            group_max_time_lag: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_max_time_lag_seconds",
                        "The largest time lag over the group's partitions",
                    ),
                    &["cluster", "group"],
                )
                .expect("valid gauge vec"),
            ),
            group_max_offset_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_max_offset_lag",
                        "The largest offset lag over the group's partitions",
                    ),
                    &["cluster", "group"],
                )
                .expect("valid gauge vec"),
            ),
            group_generation: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_generation_id",
                        "Current generation of the group",
                    ),
                    &["cluster", "group"],
                )
                .expect("valid gauge vec"),
            ),
            group_members: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("sluice_consumer_group_members", "Members of the group"),
                    &["cluster", "group"],
                )
                .expect("valid gauge vec"),
            ),
            group_state: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "sluice_consumer_group_state",
                        "1 for the group's current state",
                    ),
                    &["cluster", "group", "state"],
                )
                .expect("valid gauge vec"),
            ),
            gate_inflight: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("sluice_gate_inflight_bytes", "Bytes held by requests in flight, per backpressure gate"),
                    &["gate"],
                )
                .expect("valid gauge vec"),
            ),
            gate_waiting: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("sluice_gate_waiting", "Requests waiting for their gate to open"),
                    &["gate"],
                )
                .expect("valid gauge vec"),
            ),
            gate_limit: reg(
                &r,
                IntGaugeVec::new(Opts::new("sluice_gate_limit_bytes", "Byte budget of each gate"), &["gate"])
                    .expect("valid gauge vec"),
            ),
            accept_paused: gauge(
                "sluice_accept_paused",
                "1 while new connections are not accepted (a gate is closed or the connection limit is reached)",
            ),
            registry: r,
        }
    }

    /// Gauges for one gate.
    /// Counts one ended transaction.
    pub fn transactions_ended(&self, commit: bool) {
        let result = if commit { "commit" } else { "abort" };
        self.transactions.with_label_values(&[result]).inc();
    }

    pub fn gate_gauges(&self, gate: &str, limit: u64) -> crate::gate::GateGauges {
        self.gate_limit.with_label_values(&[gate]).set(limit as i64);
        crate::gate::GateGauges {
            inflight: self.gate_inflight.with_label_values(&[gate]),
            waiting: self.gate_waiting.with_label_values(&[gate]),
        }
    }

    /// Replaces the lag series with a fresh pass (groups that vanished disappear).
    pub fn publish_lag(&self, groups: &BTreeMap<(String, String), GroupLag>) {
        self.group_time_lag.reset();
        self.group_offset_lag.reset();
        self.group_max_time_lag.reset();
        self.group_max_offset_lag.reset();
        for ((cluster, group), lag) in groups {
            let mut max_offset_lag = 0;
            for p in &lag.partitions {
                let partition = p.partition.to_string();
                let labels = [
                    cluster.as_str(),
                    group.as_str(),
                    p.topic.as_str(),
                    partition.as_str(),
                ];
                self.group_time_lag
                    .with_label_values(&labels)
                    .set(p.time_lag_seconds);
                self.group_offset_lag
                    .with_label_values(&labels)
                    .set(p.offset_lag);
                max_offset_lag = max_offset_lag.max(p.offset_lag);
            }
            self.group_max_time_lag
                .with_label_values(&[cluster, group])
                .set(lag.max_time_lag_seconds);
            self.group_max_offset_lag
                .with_label_values(&[cluster, group])
                .set(max_offset_lag);
        }
    }

    /// Replaces the membership series with the coordinator's current view.
    pub fn publish_groups(&self, groups: &[(String, String, i32, usize, Phase)]) {
        self.group_generation.reset();
        self.group_members.reset();
        self.group_state.reset();
        for (cluster, group, generation, members, phase) in groups {
            self.group_generation
                .with_label_values(&[cluster, group])
                .set(*generation as i64);
            self.group_members
                .with_label_values(&[cluster, group])
                .set(*members as i64);
            self.group_state
                .with_label_values(&[cluster.as_str(), group.as_str(), phase.name()])
                .set(1);
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
