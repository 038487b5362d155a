//! The agent: everything one broker process shares between connections, and its start-up
//! and shutdown order.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bucket::Bucket;
use crate::cache::ChunkCache;
use crate::config::BrokerConfig;
use crate::gate::Gate;
use crate::groups::Coordinator;
use crate::metrics::Metrics;
use crate::store::{Metadata, StoreError, TopicMeta};
use crate::writer::{SegmentWriter, WriterConfig};

/// The virtual cluster the plaintext listener serves.
pub const DEFAULT_CLUSTER: &str = "default";

const TOPIC_CACHE_TTL: Duration = Duration::from_secs(1);

/// (cluster, topic name) to the topic and when it was read.
type TopicCache = HashMap<(String, String), (Arc<TopicMeta>, Instant)>;

/// Shared state of one agent.
pub struct Broker {
    pub config: BrokerConfig,
    pub meta: Metadata,
    pub bucket: Bucket,
    pub cache: ChunkCache,
    pub writer: SegmentWriter,
    pub groups: Arc<Coordinator>,
    pub produce_gate: Arc<Gate>,
    /// Fetch responses being read at once: bounded to half the cores, so a fetch storm
    /// cannot take the CPU that producers need.
    pub fetch_readers: tokio::sync::Semaphore,
    /// API keys for SASL, cached.
    pub credentials: crate::auth::CredentialCache,
    pub fetch_gate: Arc<Gate>,
    /// The latest consumer-group lag, from the lag job.
    pub lag: crate::lag::job::LagBoard,
    pub metrics: Metrics,
    pub cluster_id: String,
    pub agent_id: String,
    /// Host and port announced in Metadata.
    pub advertised: (String, i32),
    commits: watch::Sender<u64>,
    topics: Mutex<TopicCache>,
}

/// Why a topic could not be resolved for a request.
#[derive(Debug)]
pub enum TopicLookup {
    Found(Arc<TopicMeta>),
    Missing,
}

impl Broker {
    /// A receiver that changes after every segment commit (wakes long-polling fetches).
    pub fn subscribe_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Looks a topic up by name, through a short-lived cache.
    pub async fn topic(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, StoreError> {
        let key = (cluster.to_string(), name.to_string());
        if let Some((t, at)) = self.lock_topics().get(&key) {
            if at.elapsed() < TOPIC_CACHE_TTL {
                return Ok(Some(t.clone()));
            }
        }
        let found = self.meta.topic(cluster, name).await?.map(Arc::new);
        let mut cache = self.lock_topics();
        match &found {
            Some(t) => {
                cache.insert(key, (t.clone(), Instant::now()));
            }
            None => {
                cache.remove(&key);
            }
        }
        Ok(found)
    }

    /// Looks a topic up by name and creates it when auto-creation is on.
    pub async fn topic_or_create(
        &self,
        cluster: &str,
        name: &str,
        allow_create: bool,
    ) -> Result<TopicLookup, StoreError> {
        if let Some(t) = self.topic(cluster, name).await? {
            return Ok(TopicLookup::Found(t));
        }
        // The built-in cluster follows the agent's flags; a virtual cluster its own settings.
        let (auto_create, partitions) = if cluster == DEFAULT_CLUSTER {
            (
                self.config.auto_create_topics,
                self.config.default_partitions,
            )
        } else {
            match self.meta.virtual_cluster(cluster).await? {
                Some(vc) => (vc.auto_create_topics, vc.default_partitions.max(1)),
                None => (false, 1),
            }
        };
        if !(allow_create && auto_create)
            || crate::handlers::admin::validate_topic_name(name).is_err()
        {
            return Ok(TopicLookup::Missing);
        }
        match self
            .create_topic(cluster, name, partitions, &BTreeMap::new())
            .await
        {
            Ok(t) => {
                tracing::info!(
                    topic = name,
                    partitions = t.partitions,
                    "auto-created topic"
                );
                Ok(TopicLookup::Found(Arc::new(t)))
            }
            // Created concurrently by another request or agent: use that one.
            Err(StoreError::TopicExists(_)) => Ok(match self.topic(cluster, name).await? {
                Some(t) => TopicLookup::Found(t),
                None => TopicLookup::Missing,
            }),
            Err(e) => Err(e),
        }
    }

    /// Creates a topic with the defaults of its cluster filled in: a virtual cluster's
    /// default retention applies unless `retention.ms` is given. Every way of creating a
    /// topic (CreateTopics, auto-creation, the console) goes through here.
    pub async fn create_topic(
        &self,
        cluster: &str,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<crate::store::TopicMeta, StoreError> {
        let mut configs = configs.clone();
        if cluster != DEFAULT_CLUSTER && !configs.contains_key("retention.ms") {
            if let Some(vc) = self.meta.virtual_cluster(cluster).await? {
                configs.insert(
                    "retention.ms".to_string(),
                    vc.default_retention_ms.to_string(),
                );
            }
        }
        self.meta
            .create_topic(cluster, name, partitions, &configs)
            .await
    }

    /// Drops a cached topic after a local change.
    pub fn forget_topic(&self, cluster: &str, name: &str) {
        self.lock_topics()
            .remove(&(cluster.to_string(), name.to_string()));
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, TopicCache> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A started agent.
pub struct Running {
    pub broker: Arc<Broker>,
    pub kafka_addr: SocketAddr,
    cancel: CancellationToken,
    stop: CancellationToken,
    accept: JoinHandle<()>,
    pipeline: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, seals and commits what is buffered, then returns.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.accept.await;
        self.broker.writer.flush().await;
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(30), self.pipeline)
            .await
            .is_err()
        {
            tracing::warn!("segment pipeline did not finish within 30s of shutdown");
        }
    }
}

fn advertised(config: &BrokerConfig, bound: SocketAddr) -> anyhow::Result<(String, i32)> {
    if let Some(a) = &config.advertised_kafka_addr {
        let (host, port) = a
            .rsplit_once(':')
            .with_context(|| format!("advertised address '{a}' must be host:port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("advertised address '{a}' has a bad port"))?;
        return Ok((host.trim_matches(['[', ']']).to_string(), port as i32));
    }
    let host = if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    Ok((host, bound.port() as i32))
}

/// Connects the stores, binds the Kafka listener and starts serving.
pub async fn start(
    config: BrokerConfig,
    metrics: Metrics,
    cancel: CancellationToken,
) -> anyhow::Result<Running> {
    let meta = Metadata::connect(&config.database_url)
        .await
        .with_context(|| format!("opening metadata database {}", redact(&config.database_url)))?;
    let bucket = Bucket::open(&config.bucket_url).context("opening bucket")?;
    let cluster_id = meta.cluster_id().await.context("reading cluster id")?;
    let listener = TcpListener::bind(config.kafka_addr)
        .await
        .with_context(|| format!("binding Kafka listener on {}", config.kafka_addr))?;
    let kafka_addr = listener.local_addr()?;
    let advertised = advertised(&config, kafka_addr)?;
    let agent_id = uuid::Uuid::new_v4().simple().to_string();
    let cache = ChunkCache::new(bucket.clone(), config.read_cache_bytes, metrics.clone());
    let (commits, _) = watch::channel(0u64);
    let stop = CancellationToken::new();
    let (writer, pipeline) = SegmentWriter::start(
        WriterConfig {
            batch_timeout: config.batch_timeout,
            max_file_bytes: config.max_file_bytes,
            agent_id: agent_id.clone(),
        },
        meta.clone(),
        bucket.clone(),
        cache.clone(),
        metrics.clone(),
        commits.clone(),
        cancel.child_token(),
        stop.clone(),
    );
    tracing::info!(
        kafka = %kafka_addr,
        advertised = %format!("{}:{}", advertised.0, advertised.1),
        metadata = meta.backend(),
        bucket = bucket.describe(),
        cluster_id = %cluster_id,
        "broker started"
    );
    let produce_gate = Gate::new(
        "produce",
        config.produce_inflight_bytes,
        Some(metrics.gate_gauges("produce", config.produce_inflight_bytes)),
    );
    let fetch_gate = Gate::new(
        "fetch",
        config.fetch_inflight_bytes,
        Some(metrics.gate_gauges("fetch", config.fetch_inflight_bytes)),
    );
    let groups = Coordinator::new(config.group_initial_rebalance_delay);
    groups.start_ticker(cancel.child_token());
    let credentials = crate::auth::CredentialCache::new(meta.clone());
    let broker = Arc::new(Broker {
        config,
        meta,
        bucket,
        cache,
        writer,
        groups,
        produce_gate,
        fetch_gate,
        fetch_readers: tokio::sync::Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1),
        ),
        credentials,
        lag: Default::default(),
        metrics,
        cluster_id,
        agent_id,
        advertised,
        commits,
        topics: Mutex::new(HashMap::new()),
    });
    crate::lag::job::start(
        broker.clone(),
        broker.config.lag_interval,
        cancel.child_token(),
    );
    crate::retention::start(
        broker.clone(),
        broker.config.retention_interval,
        cancel.child_token(),
    );
    let accept = tokio::spawn(crate::server::accept_loop(
        listener,
        broker.clone(),
        cancel.clone(),
    ));
    Ok(Running {
        broker,
        kafka_addr,
        cancel,
        stop,
        accept,
        pipeline,
    })
}

/// Hides a password in a database url for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
