//! The broker's part of the configuration, filled in by the `sluice` binary.

use std::net::SocketAddr;
use std::time::Duration;

/// Who may use the Kafka port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KafkaAuth {
    /// SASL optional: a connection that does not authenticate acts in the built-in
    /// `default` cluster; one that authenticates with an API key acts in that key's cluster.
    #[default]
    None,
    /// SASL (PLAIN, SCRAM-SHA-256/512) with an API key before anything else.
    Sasl,
}

/// What an agent does (`--roles`): serve produce and/or fetch traffic, run the jobs
/// (retention, lag, index merge), run pipelines, serve the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<String>);

impl Roles {
    pub const PRODUCE: &'static str = "produce";
    pub const FETCH: &'static str = "fetch";
    pub const JOBS: &'static str = "jobs";
    pub const PIPELINES: &'static str = "pipelines";
    pub const CONSOLE: &'static str = "console";
    pub const ALL: [&'static str; 5] = [
        Self::PRODUCE,
        Self::FETCH,
        Self::JOBS,
        Self::PIPELINES,
        Self::CONSOLE,
    ];

    /// Every role (the default).
    pub fn all() -> Self {
        Roles(Self::ALL.iter().map(|r| r.to_string()).collect())
    }

    /// Parses `produce,fetch,jobs`: known names only, at least one.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut roles: Vec<String> = Vec::new();
        for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !Self::ALL.contains(&r) {
                return Err(format!(
                    "unknown role '{r}'; roles are {}",
                    Self::ALL.join(", ")
                ));
            }
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_string());
            }
        }
        if roles.is_empty() {
            return Err(format!(
                "give at least one role of {}",
                Self::ALL.join(", ")
            ));
        }
        Ok(Roles(roles))
    }

    pub fn has(&self, role: &str) -> bool {
        self.0.iter().any(|r| r == role)
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub kafka_auth: KafkaAuth,
    pub database_url: String,
    pub bucket_url: String,
    /// The plaintext (PLAINTEXT and SASL_PLAINTEXT) listener; None turns it off.
    pub kafka_addr: Option<SocketAddr>,
    /// host:port announced to clients; derived from the bound address when None.
    pub advertised_kafka_addr: Option<String>,
    /// The TLS (SSL and SASL_SSL) listener; needs `tls`.
    pub kafka_tls_addr: Option<SocketAddr>,
    /// host:port announced to clients of the TLS listener; derived as for plaintext.
    pub advertised_kafka_tls_addr: Option<String>,
    /// Certificate, key and client CA of the TLS listener.
    pub tls: Option<crate::tls::TlsFiles>,
    pub batch_timeout: Duration,
    /// Shortest time between two segment flushes; None chooses by bucket kind: none on
    /// `file://` and `memory://` (group commit), the batch timeout on `s3://`.
    pub batch_min_interval: Option<Duration>,
    pub max_file_bytes: usize,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_frame_bytes: usize,
    pub read_cache_bytes: u64,
    /// Produce request bytes in flight before connections stop being read.
    pub produce_inflight_bytes: u64,
    /// Fetch response bytes in flight before fetches wait.
    pub fetch_inflight_bytes: u64,
    /// Bytes of other requests (not produce) in flight, counted at
    /// [`crate::server::DECODE_FACTOR`] times their frame size, before connections stop
    /// being read.
    pub request_inflight_bytes: u64,
    /// Open Kafka connections before accepting pauses.
    pub max_connections: usize,
    /// Largest frame an unauthenticated connection may send with `--kafka-auth sasl`
    /// (Kafka's sasl.server.max.receive.size); only ApiVersions and SASL frames are read
    /// before authentication.
    pub sasl_max_receive_bytes: usize,
    /// A connection with nothing in flight and no bytes read for this long is closed
    /// (Kafka's connections.max.idle.ms).
    pub connections_max_idle: Duration,
    /// Members a consumer group may have, pending ones included (Kafka's group.max.size).
    pub group_max_size: usize,
    /// Requests one connection may have in flight (read but not yet answered).
    pub max_inflight_per_connection: usize,
    /// The node id to lease; None leases the smallest free one.
    pub node_id: Option<i32>,
    /// Kafka's broker.rack: the availability zone of this agent.
    pub rack: Option<String>,
    /// Agents of one group serve the same clients (Metadata lists only them).
    pub agent_group: String,
    pub roles: Roles,
    /// An agent not heard from for this long is dead.
    pub agent_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    pub group_initial_rebalance_delay: Duration,
    /// The first rebalance ends once this passes without a new member.
    pub group_initial_rebalance_quiet: Duration,
    /// How often the lag job computes consumer-group lag.
    pub lag_interval: Duration,
    /// How often retention and segment garbage collection run.
    pub retention_interval: Duration,
    /// How long a segment file stays in the bucket after no batch row references it (so a
    /// fetch that resolved its rows just before can still read it); it is also kept for two
    /// collection passes at least.
    pub segment_delete_grace: Duration,
    /// Size of the objects compaction writes; files below half of it are merged. 0
    /// disables compaction.
    pub compaction_target_size: u64,
    /// How often compaction runs.
    pub compaction_interval: Duration,
    /// The longest `transaction.timeout.ms` a producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`).
    pub transaction_max_timeout: Duration,
    /// How often open transactions past their timeout are looked for and aborted.
    pub transaction_abort_interval: Duration,
}

impl BrokerConfig {
    /// Defaults suitable for tests: in-memory everything, ephemeral port, short timeout.
    pub fn for_tests(database_url: String) -> Self {
        BrokerConfig {
            kafka_auth: KafkaAuth::None,
            database_url,
            bucket_url: "memory://".to_string(),
            kafka_addr: Some("127.0.0.1:0".parse().expect("valid literal address")),
            advertised_kafka_addr: None,
            kafka_tls_addr: None,
            advertised_kafka_tls_addr: None,
            tls: None,
            batch_timeout: Duration::from_millis(10),
            batch_min_interval: None,
            max_file_bytes: 8 << 20,
            auto_create_topics: true,
            default_partitions: 1,
            max_frame_bytes: 100 << 20,
            read_cache_bytes: 64 << 20,
            produce_inflight_bytes: 256 << 20,
            fetch_inflight_bytes: 256 << 20,
            request_inflight_bytes: 64 << 20,
            max_connections: 10_000,
            sasl_max_receive_bytes: 512 << 10,
            connections_max_idle: Duration::from_secs(600),
            group_max_size: 1000,
            max_inflight_per_connection: 64,
            node_id: None,
            rack: None,
            agent_group: "default".to_string(),
            roles: Roles::all(),
            agent_session_timeout: Duration::from_secs(10),
            group_initial_rebalance_delay: Duration::from_millis(0),
            group_initial_rebalance_quiet: Duration::from_millis(0),
            lag_interval: Duration::from_secs(15),
            retention_interval: Duration::from_secs(60),
            segment_delete_grace: Duration::from_secs(30),
            compaction_target_size: 64 << 20,
            compaction_interval: Duration::from_secs(60),
            transaction_max_timeout: Duration::from_secs(900),
            transaction_abort_interval: Duration::from_secs(1),
        }
    }
}
