//! Start-up and shutdown of one agent: connects the stores, builds the shared
//! [`Broker`] state, binds the Kafka listener and spawns every long-running task on one
//! tracker, so that shutdown can wait for all of them.
//!
//! # Shutdown order
//! 1. stop accepting connections and reading requests;
//! 2. drain in-flight requests (their answers are written; bounded by
//!    [`crate::server::DRAIN_TIMEOUT`]);
//! 3. seal and commit buffered segments (acknowledged records are never left behind);
//! 4. stop the jobs (heartbeat, group ticker, lag, retention, and any task the binary adds
//!    through [`Running::spawn_job`]) and wait for them;
//! 5. give the node id up, so the agent leaves Metadata before the process exits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bucket::Bucket;
use crate::cache::ChunkCache;
use crate::config::BrokerConfig;
use crate::groups::Coordinator;
use crate::membership::{LoadSample, Membership};
use crate::metrics::Metrics;
use crate::state::Parts;
use crate::store::{Metadata, NewAgent};
use crate::writer::{SegmentWriter, WriterConfig};

pub use crate::session::DEFAULT_CLUSTER;
pub use crate::state::Broker;
pub use crate::topics::TopicLookup;

/// How long shutdown waits for the segment pipeline to commit what was buffered.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for the jobs to notice and return.
const JOBS_TIMEOUT: Duration = Duration::from_secs(5);

/// A started agent.
pub struct Running {
    pub broker: Arc<Broker>,
    /// The plaintext Kafka listener's address (the TLS one's when plaintext is off).
    pub kafka_addr: SocketAddr,
    /// The TLS Kafka listener's address, when there is one.
    pub kafka_tls_addr: Option<SocketAddr>,
    /// Stops the listener and the connections' read loops.
    accept_cancel: CancellationToken,
    /// Stops the segment writer's sealing timer (which seals what is left).
    flush_cancel: CancellationToken,
    /// Stops the upload/commit pipeline once the queued segments are committed.
    stop: CancellationToken,
    /// Stops the jobs.
    jobs_cancel: CancellationToken,
    accept: JoinHandle<()>,
    pipeline: JoinHandle<()>,
    jobs: TaskTracker,
}

impl Running {
    /// Runs `task` as a job of this agent: it gets a token that fires at step 4 of the
    /// shutdown, which then waits for it to return.
    pub fn spawn_job<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        spawn_named(&self.jobs, name, task(self.jobs_cancel.child_token()));
    }

    /// Shuts down in order (see the module doc) and returns when every task has stopped or
    /// its timeout passed.
    pub async fn shutdown(self) {
        self.accept_cancel.cancel();
        let _ = self.accept.await;
        tracing::info!("stopped accepting; in-flight requests drained");
        self.flush_cancel.cancel();
        self.broker.writer.flush().await;
        self.stop.cancel();
        if tokio::time::timeout(COMMIT_TIMEOUT, self.pipeline)
            .await
            .is_err()
        {
            tracing::warn!("segment pipeline did not finish within {COMMIT_TIMEOUT:?} of shutdown");
        } else {
            tracing::info!("buffered segments committed");
        }
        self.jobs_cancel.cancel();
        self.jobs.close();
        if tokio::time::timeout(JOBS_TIMEOUT, self.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!("jobs did not stop within {JOBS_TIMEOUT:?} of shutdown");
        } else {
            tracing::info!("jobs stopped");
        }
        // Last: other agents stop listing this one at their next refresh.
        self.broker.membership.leave().await;
    }
}

fn spawn_named<Fut>(tracker: &TaskTracker, name: &'static str, fut: Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    tracker.spawn(async move {
        fut.await;
        tracing::debug!(task = name, "task stopped");
    });
}

/// What the heartbeat reports: the byte counters and what the gates hold.
fn load_sampler(broker: &Arc<Broker>) -> impl Fn() -> LoadSample + Send {
    let b = broker.clone();
    move || LoadSample {
        produce_bytes: b.metrics.produce_bytes.get(),
        fetch_bytes: b.metrics.fetch_bytes.get(),
        inflight_bytes: b.produce_gate.inflight() + b.fetch_gate.inflight(),
    }
}

/// The host and port announced for a listener bound at `bound`: `configured` if given,
/// else the bound address (localhost for 0.0.0.0).
fn advertised(configured: Option<&str>, bound: SocketAddr) -> anyhow::Result<(String, i32)> {
    if let Some(a) = configured {
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

/// The bound Kafka listeners and what this agent announces for them.
struct KafkaListeners {
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<crate::tls::ServerTls>)>,
    /// The plaintext listener's address (the TLS one's without plaintext) and the host and
    /// port the agents table lists first.
    kafka_addr: SocketAddr,
    advertised: (String, i32),
    kafka_tls_addr: Option<SocketAddr>,
    advertised_tls: Option<(String, i32)>,
}

/// Binds the plaintext and TLS Kafka listeners the configuration asks for (at least one).
async fn bind_kafka(config: &BrokerConfig) -> anyhow::Result<KafkaListeners> {
    let plain = match config.kafka_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding Kafka listener on {addr}"))?,
        ),
        None => None,
    };
    let tls = match config.kafka_tls_addr {
        Some(addr) => {
            let files = config.tls.clone().context(
                "a Kafka TLS listener needs a certificate and key (--tls-cert, --tls-key)",
            )?;
            let tls = Arc::new(
                crate::tls::ServerTls::load(files, true, Vec::new())
                    .context("loading the TLS certificate")?,
            );
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding Kafka TLS listener on {addr}"))?;
            Some((listener, tls))
        }
        None => None,
    };
    let kafka_tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let advertised_tls = kafka_tls_addr
        .map(|bound| advertised(config.advertised_kafka_tls_addr.as_deref(), bound))
        .transpose()?;
    // With plaintext off, the agent's one address is its TLS one.
    let (kafka_addr, advertised) = match (&plain, kafka_tls_addr, &advertised_tls) {
        (Some(l), _, _) => {
            let bound = l.local_addr()?;
            (
                bound,
                advertised(config.advertised_kafka_addr.as_deref(), bound)?,
            )
        }
        (None, Some(bound), Some(a)) => (bound, a.clone()),
        _ => anyhow::bail!("no Kafka listener: give a plaintext or a TLS listener address"),
    };
    Ok(KafkaListeners {
        plain,
        tls,
        kafka_addr,
        advertised,
        kafka_tls_addr,
        advertised_tls,
    })
}

/// Connects the stores, binds the Kafka listener and starts serving. `cancel` is the
/// root token: cancelling it stops accepting at once (as step 1 of [`Running::shutdown`]).
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
    let KafkaListeners {
        plain,
        tls,
        kafka_addr,
        advertised,
        kafka_tls_addr,
        advertised_tls,
    } = bind_kafka(&config).await?;
    let agent_id = uuid::Uuid::new_v4().simple().to_string();
    let cache = ChunkCache::new(bucket.clone(), config.read_cache_bytes, metrics.clone());
    let commits = Arc::new(crate::wakeups::Wakeups::default());
    let accept_cancel = cancel.child_token();
    // Not children of the root: they fire only when shutdown reaches their step.
    let flush_cancel = CancellationToken::new();
    let stop = CancellationToken::new();
    let jobs_cancel = CancellationToken::new();
    let (writer, pipeline) = SegmentWriter::start(
        WriterConfig {
            batch_timeout: config.batch_timeout,
            min_interval: config.batch_min_interval.unwrap_or(if bucket.is_remote() {
                config.batch_timeout
            } else {
                Duration::ZERO
            }),
            max_file_bytes: config.max_file_bytes,
            agent_id: agent_id.clone(),
        },
        meta.clone(),
        bucket.clone(),
        cache.clone(),
        metrics.clone(),
        commits.clone(),
        flush_cancel.clone(),
        stop.clone(),
    );
    tracing::info!(
        kafka = %kafka_addr,
        advertised = %format!("{}:{}", advertised.0, advertised.1),
        kafka_tls = ?kafka_tls_addr,
        metadata = meta.backend(),
        bucket = bucket.describe(),
        cluster_id = %cluster_id,
        "broker started"
    );
    let membership = Membership::join(
        meta.clone(),
        NewAgent {
            agent_id: agent_id.clone(),
            host: advertised.0.clone(),
            port: advertised.1,
            tls: advertised_tls.clone(),
            rack: config.rack.clone(),
            agent_group: config.agent_group.clone(),
            roles: config.roles.names().to_vec(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: crate::clock::now_ms(),
        },
        config.node_id,
        config.agent_session_timeout,
    )
    .await
    .context("joining the cluster (leasing a node id)")?;
    let groups = Coordinator::new(
        config.group_initial_rebalance_delay,
        config.group_initial_rebalance_quiet,
        config.group_max_size,
    );
    let broker = Arc::new(Broker::new(Parts {
        config,
        meta,
        bucket,
        cache,
        writer,
        groups,
        metrics,
        membership,
        cluster_id,
        agent_id,
        advertised,
        commits,
    }));
    let jobs = TaskTracker::new();
    spawn_named(
        &jobs,
        "heartbeat",
        broker
            .membership
            .clone()
            .run(load_sampler(&broker), jobs_cancel.child_token()),
    );
    spawn_named(
        &jobs,
        "commit watch",
        crate::commit_watch::run(broker.clone(), jobs_cancel.child_token()),
    );
    spawn_named(
        &jobs,
        "group ticker",
        broker.groups.clone().run_ticker(jobs_cancel.child_token()),
    );
    spawn_named(
        &jobs,
        "group holds",
        crate::group_holds::serve(broker.clone(), jobs_cancel.child_token()),
    );
    spawn_named(
        &jobs,
        "group snapshots",
        crate::group_snapshots::publish(broker.clone(), jobs_cancel.child_token()),
    );
    let runs_jobs = broker.config.roles.has(crate::config::Roles::JOBS);
    if runs_jobs {
        spawn_named(
            &jobs,
            "lag",
            crate::lag::job::run(
                broker.clone(),
                broker.config.lag_interval,
                jobs_cancel.child_token(),
            ),
        );
        spawn_named(
            &jobs,
            "retention",
            crate::retention::run(
                broker.clone(),
                broker.config.retention_interval,
                jobs_cancel.child_token(),
            ),
        );
        spawn_named(
            &jobs,
            "transaction timeouts",
            crate::txn::run_timeouts(broker.clone(), jobs_cancel.child_token()),
        );
        spawn_named(
            &jobs,
            "compaction",
            crate::compaction::run(broker.clone(), jobs_cancel.child_token()),
        );
        spawn_named(
            &jobs,
            "key compaction",
            crate::key_compaction::run(broker.clone(), jobs_cancel.child_token()),
        );
    }
    if let Some((_, certificates)) = &tls {
        spawn_named(
            &jobs,
            "tls reload",
            certificates.clone().watch(jobs_cancel.child_token()),
        );
    }
    let accept = tokio::spawn(crate::server::accept_loop(
        plain,
        tls,
        broker.clone(),
        accept_cancel.clone(),
    ));
    Ok(Running {
        broker,
        kafka_addr,
        kafka_tls_addr,
        accept_cancel,
        flush_cancel,
        stop,
        jobs_cancel,
        accept,
        pipeline,
        jobs,
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
