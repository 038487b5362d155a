//! The agent's shared state: what every connection, handler and job of one broker process
//! uses (stores, caches, the segment writer, the group coordinator, gates, metrics).
//!
//! It sits low in the module graph: it knows the components it holds, and nothing that
//! uses it (handlers, jobs, the listener, start-up in [`crate::agent`]). Fields are
//! private to the crate; other crates get the few narrow methods below, and the console
//! goes through [`crate::inspect`].

use std::sync::Arc;

use crate::acl::AclCache;
use crate::auth::{CredentialCache, FailureDelay};
use crate::bucket::Bucket;
use crate::cache::ChunkCache;
use crate::config::BrokerConfig;
use crate::gate::Gate;
use crate::groups::Coordinator;
use crate::lag::LagBoard;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::quota::Quotas;
use crate::store::{Metadata, StoreError};
use crate::topics::{BuiltinDefaults, Topics};
use crate::wakeups::Wakeups;
use crate::writer::SegmentWriter;

/// Shared state of one agent.
pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) meta: Metadata,
    pub(crate) bucket: Bucket,
    pub(crate) cache: ChunkCache,
    pub(crate) writer: SegmentWriter,
    pub(crate) groups: Arc<Coordinator>,
    pub(crate) produce_gate: Arc<Gate>,
    pub(crate) fetch_gate: Arc<Gate>,
    /// Every other request's bytes (times the decode factor) until it is answered.
    pub(crate) request_gate: Arc<Gate>,
    /// Fetch responses being read at once: bounded to half the cores, so a fetch storm
    /// cannot take the CPU that producers need.
    pub(crate) fetch_readers: tokio::sync::Semaphore,
    /// API keys for SASL, cached.
    pub(crate) credentials: CredentialCache,
    /// Delays refused SASL answers per address.
    pub(crate) sasl_failures: FailureDelay,
    /// Each cluster's ACLs, cached.
    pub(crate) acls: AclCache,
    /// Client quotas per key (cached) and this agent's rate buckets.
    pub(crate) quotas: Quotas,
    /// The latest consumer-group lag, from the lag job.
    pub(crate) lag: LagBoard,
    pub(crate) metrics: Metrics,
    pub(crate) topics: Topics,
    /// This agent's node id and the live agents of the cluster.
    pub(crate) membership: Arc<Membership>,
    pub(crate) cluster_id: String,
    pub(crate) agent_id: String,
    /// Host and port announced in Metadata.
    pub(crate) advertised: (String, i32),
    commits: Arc<Wakeups>,
}

/// What [`Broker::new`] puts together (built by [`crate::agent::start`]).
pub(crate) struct Parts {
    pub config: BrokerConfig,
    pub meta: Metadata,
    pub bucket: Bucket,
    pub cache: ChunkCache,
    pub writer: SegmentWriter,
    pub groups: Arc<Coordinator>,
    pub metrics: Metrics,
    pub membership: Arc<Membership>,
    pub cluster_id: String,
    pub agent_id: String,
    pub advertised: (String, i32),
    pub commits: Arc<Wakeups>,
}

impl Broker {
    pub(crate) fn new(p: Parts) -> Self {
        let gate = |name: &'static str, bytes: u64| {
            Gate::new(name, bytes, Some(p.metrics.gate_gauges(name, bytes)))
        };
        let produce_gate = gate("produce", p.config.produce_inflight_bytes);
        let fetch_gate = gate("fetch", p.config.fetch_inflight_bytes);
        let request_gate = gate("request", p.config.request_inflight_bytes);
        let topics = Topics::new(
            p.meta.clone(),
            BuiltinDefaults {
                auto_create_topics: p.config.auto_create_topics,
                default_partitions: p.config.default_partitions,
            },
        );
        Broker {
            credentials: CredentialCache::new(p.meta.clone()),
            sasl_failures: FailureDelay::default(),
            acls: AclCache::new(p.meta.clone()),
            quotas: Quotas::new(p.meta.clone()),
            fetch_readers: tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get() / 2)
                    .unwrap_or(1)
                    .max(1),
            ),
            lag: LagBoard::default(),
            produce_gate,
            fetch_gate,
            request_gate,
            topics,
            config: p.config,
            meta: p.meta,
            bucket: p.bucket,
            cache: p.cache,
            writer: p.writer,
            groups: p.groups,
            metrics: p.metrics,
            membership: p.membership,
            cluster_id: p.cluster_id,
            agent_id: p.agent_id,
            advertised: p.advertised,
            commits: p.commits,
        }
    }

    /// Which topics commits touched: wakes long-polling fetches.
    pub fn commits(&self) -> &Wakeups {
        &self.commits
    }

    /// Wakes the long-polling fetches (another agent committed).
    pub(crate) fn wake_fetches(&self) {
        self.commits.remote_commit();
    }

    /// The agent's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The cluster metadata store (for the admin command line and tests; the console goes
    /// through [`crate::inspect`]).
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    pub fn groups(&self) -> &Arc<Coordinator> {
        &self.groups
    }

    pub fn produce_gate(&self) -> &Arc<Gate> {
        &self.produce_gate
    }

    pub fn fetch_gate(&self) -> &Arc<Gate> {
        &self.fetch_gate
    }

    pub fn request_gate(&self) -> &Arc<Gate> {
        &self.request_gate
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus text of this agent's metrics, group gauges refreshed first.
    pub fn render_metrics(&self) -> String {
        self.metrics.publish_groups(&self.groups.snapshot());
        self.metrics.render()
    }

    /// The latest consumer-group lag, as the lag job computed it.
    pub fn lag(&self) -> &LagBoard {
        &self.lag
    }

    /// The cached API-key credentials of the Kafka port.
    pub fn credentials(&self) -> &CredentialCache {
        &self.credentials
    }

    /// host:port clients bootstrap from (announced in Metadata).
    pub fn advertised(&self) -> String {
        format!("{}:{}", self.advertised.0, self.advertised.1)
    }

    /// This process's id: it names the segment objects it writes.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// This agent's node id and the live agents of the cluster.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// The cluster id clients see in Metadata.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Whether the metadata database answers.
    pub async fn healthy(&self) -> Result<(), StoreError> {
        self.meta.cluster_id().await.map(|_| ())
    }
}
