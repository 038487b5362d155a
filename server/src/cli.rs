//! Command-line configuration: every flag is also an `SLUICE_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-compatible streaming platform with zero local disks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Kafka protocol and the HTTP endpoints (/metrics, /healthz).
    Serve(Box<ServeArgs>),
    /// Manage virtual clusters in the metadata database (until the console lands).
    #[command(subcommand)]
    Clusters(ClustersCommand),
    /// Manage API keys: the SASL credentials of a virtual cluster.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
}

/// Where the metadata database is, for the admin commands.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Folder for the embedded defaults.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// Metadata database [default: sqlite://<data-dir>/meta.db].
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The console's database (organisations for `--org`) [default: the metadata database].
    #[arg(long, env = "SLUICE_PLATFORM_DATABASE_URL")]
    pub platform_database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// Create a virtual cluster: its own namespace of topics, groups and offsets.
    Create {
        name: String,
        /// The organisation (name or id) whose console shows the cluster [default: the
        /// only organisation; required when there are several; with none, the cluster
        /// belongs to no organisation and is managed from here only].
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List virtual clusters.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Mint an API key for a cluster; the secret is printed once and never stored.
    Create {
        /// Cluster name or id.
        #[arg(long)]
        cluster: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a cluster's keys (never their secrets).
    List {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key: new connections with it are refused within seconds.
    Revoke {
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Who may use the Kafka port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaAuthArg {
    /// SASL optional: clients without credentials act in the built-in `default` cluster,
    /// clients that authenticate with an API key act in that key's virtual cluster.
    None,
    /// SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 with an API key, before anything else.
    Sasl,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Folder for the embedded defaults (SQLite file and bucket folder).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,

    /// Metadata database: sqlite://PATH or postgres://USER:PASS@HOST/DB
    /// [default: sqlite://<data-dir>/meta.db]
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// The console's database (users, organisations, invites, sessions): sqlite://PATH or
    /// postgres://… [default: the metadata database, --database-url]
    #[arg(long, env = "SLUICE_PLATFORM_DATABASE_URL")]
    pub platform_database_url: Option<String>,

    /// Bucket for segment files: file://PATH, memory:// or s3://BUCKET?endpoint=URL&region=R
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) [default: file://<data-dir>/bucket]
    #[arg(long, env = "SLUICE_BUCKET_URL")]
    pub bucket_url: Option<String>,

    /// Authentication on the Kafka port.
    #[arg(long, env = "SLUICE_KAFKA_AUTH", value_enum, default_value = "none")]
    pub kafka_auth: KafkaAuthArg,

    /// Address the plaintext Kafka listener (PLAINTEXT, SASL_PLAINTEXT) binds; `none`
    /// turns it off (then give --kafka-tls-addr).
    #[arg(long, env = "SLUICE_KAFKA_ADDR", default_value = "0.0.0.0:9092", value_parser = parse_listen_addr)]
    pub kafka_addr: ListenAddr,

    /// host:port clients are told to connect to [default: the bound address, localhost for 0.0.0.0]
    #[arg(long, env = "SLUICE_ADVERTISED_KAFKA_ADDR")]
    pub advertised_kafka_addr: Option<String>,

    /// Address of a Kafka TLS listener (SSL, SASL_SSL) beside the plaintext one; needs
    /// --tls-cert and --tls-key. --kafka-auth applies to it as to plaintext.
    #[arg(long, env = "SLUICE_KAFKA_TLS_ADDR")]
    pub kafka_tls_addr: Option<SocketAddr>,

    /// host:port clients of the TLS listener are told to connect to (every agent's TLS
    /// address is given to TLS clients) [default: the bound address, localhost for 0.0.0.0]
    #[arg(long, env = "SLUICE_ADVERTISED_KAFKA_TLS_ADDR")]
    pub advertised_kafka_tls_addr: Option<String>,

    /// PEM certificate chain (leaf first) of the Kafka TLS listener and the HTTPS port;
    /// reloaded when the file changes.
    #[arg(long, env = "SLUICE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); reloaded when it changes.
    #[arg(long, env = "SLUICE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): the Kafka TLS listener then requires a client certificate
    /// issued by one of them. A certificate whose subject CN is the id of a live API key
    /// acts as that key without SASL.
    #[arg(long, env = "SLUICE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Mark console cookies Secure: set it when the console is served over HTTPS (e.g.
    /// behind a TLS-terminating proxy).
    #[arg(long, env = "SLUICE_CONSOLE_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub console_secure_cookies: bool,

    /// Let anyone reach the console's sign-up and start an organisation. With false, only
    /// the first account signs up freely; everyone else needs an invite link.
    #[arg(long, env = "SLUICE_CONSOLE_OPEN_SIGNUP", default_value_t = true, action = clap::ArgAction::Set)]
    pub console_open_signup: bool,

    /// Require `Authorization: Bearer TOKEN` on /metrics (its labels name the topics and
    /// consumer groups of every cluster). Unset: /metrics is open with `--kafka-auth none`,
    /// and closed with `--kafka-auth sasl` unless --metrics-public is given.
    #[arg(long, env = "SLUICE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Serve /metrics to anyone even with `--kafka-auth sasl` and no --metrics-token (e.g.
    /// when only a private network reaches the HTTP port).
    #[arg(long, env = "SLUICE_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// Address the HTTP server (console, JSON API, /metrics, /healthz) binds.
    #[arg(long, env = "SLUICE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of an HTTPS server beside the HTTP one: the same console, API, /metrics and
    /// /healthz, with --tls-cert and --tls-key.
    #[arg(long, env = "SLUICE_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,

    /// Open HTTP and HTTPS connections (together) before new ones wait in the listen
    /// backlog.
    #[arg(long, env = "SLUICE_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,

    /// Time a client has to send a request's headers, from the moment the connection
    /// waits for them (so also the idle keep-alive timeout, and the TLS handshake's).
    #[arg(long, env = "SLUICE_HTTP_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// Time a client has to send a request's whole body, from the end of its headers.
    #[arg(long, env = "SLUICE_HTTP_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub http_body_timeout: Duration,

    /// Longest time produced data waits in the segment buffer before it is flushed (e.g.
    /// 250ms, 1s). Below that, the buffer is flushed as soon as the previous flush is done
    /// (group commit): a lone request waits only for its own flush.
    #[arg(long, env = "SLUICE_BATCH_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    pub batch_timeout: Duration,

    /// Shortest time between two flushes, which bounds the object PUTs per agent: `auto`
    /// is none on file:// and memory:// buckets and the batch timeout on s3://, where
    /// every request costs money (e.g. auto, 0ms, 100ms).
    #[arg(long, env = "SLUICE_BATCH_MIN_INTERVAL", default_value = "auto", value_parser = parse_min_interval)]
    pub batch_min_interval: MinInterval,

    /// Segment size that triggers a flush before the timeout (e.g. 8MiB, 512KiB, 1000000).
    #[arg(long, env = "SLUICE_MAX_FILE_BYTES", default_value = "8MiB", value_parser = parse_size)]
    pub max_file_bytes: u64,

    /// Create topics on first use (Metadata or Produce) with --default-partitions partitions.
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partition count of auto-created topics and of CreateTopics asking for -1.
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub default_partitions: i32,

    /// Largest request frame accepted; bigger ones close the connection.
    #[arg(long, env = "SLUICE_MAX_FRAME_BYTES", default_value = "100MiB", value_parser = parse_size)]
    pub max_frame_bytes: u64,

    /// The node id this agent announces; by default a free id is leased from the metadata
    /// database at start and given back at shutdown.
    #[arg(long, env = "SLUICE_NODE_ID", value_parser = clap::value_parser!(i32).range(0..=i32::MAX as i64))]
    pub node_id: Option<i32>,

    /// The availability zone of this agent (Kafka's broker.rack). Clients whose client.id
    /// contains `sluice_az=NAME` are given the agents of zone NAME when there are any.
    #[arg(long, env = "SLUICE_RACK")]
    pub rack: Option<String>,

    /// Agents of one group serve the same clients: Metadata from an agent lists only the
    /// live agents of its group.
    #[arg(long, env = "SLUICE_AGENT_GROUP", default_value = "default")]
    pub agent_group: String,

    /// What this agent does: any of produce, fetch, jobs, pipelines, console.
    #[arg(long, env = "SLUICE_ROLES", default_value = "produce,fetch,jobs,pipelines,console", value_parser = parse_roles)]
    pub roles: broker::config::Roles,

    /// An agent not heard from for this long is dead: it leaves Metadata and its groups
    /// move to a live agent.
    #[arg(long, env = "SLUICE_AGENT_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub agent_session_timeout: Duration,

    /// The longest the first rebalance of an empty consumer group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms); it ends sooner, see
    /// --group-initial-rebalance-quiet.
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY", default_value = "3s", value_parser = parse_duration)]
    pub group_initial_rebalance_delay: Duration,

    /// The first rebalance of an empty group ends once this passes without a new member
    /// joining, so members that start together are assigned in one rebalance without
    /// waiting out the whole delay. Set it to the delay for Kafka's rule (each new member
    /// extends the wait by the delay).
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_QUIET", default_value = "200ms", value_parser = parse_duration)]
    pub group_initial_rebalance_quiet: Duration,

    /// How often retention (retention.ms / retention.bytes) and the deletion of unreferenced
    /// segment objects run.
    #[arg(long, env = "SLUICE_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// How long a segment object is kept after no batch row references it any more (it
    /// was expired by retention or merged by compaction), so reads that found it just
    /// before still succeed.
    #[arg(long, env = "SLUICE_SEGMENT_DELETE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub segment_delete_grace: Duration,

    /// Size of the objects segment compaction writes: a partition's batches in segment
    /// files smaller than half of it are merged into objects of at most this size
    /// (e.g. 64MiB); 0 disables compaction.
    #[arg(long, env = "SLUICE_COMPACTION_TARGET_SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub compaction_target_size: u64,

    /// How often segment compaction runs.
    #[arg(long, env = "SLUICE_COMPACTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub compaction_interval: Duration,

    /// The longest transaction timeout a producer may ask for (`transaction.timeout.ms`;
    /// Kafka's `transaction.max.timeout.ms`): InitProducerId with a longer one is refused
    /// with INVALID_TRANSACTION_TIMEOUT.
    #[arg(long, env = "SLUICE_TRANSACTION_MAX_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub transaction_max_timeout: Duration,

    /// How often open transactions past their timeout are aborted (once per cluster).
    #[arg(long, env = "SLUICE_TRANSACTION_ABORT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub transaction_abort_interval: Duration,

    /// How often consumer-group lag (offset and time lag) is computed.
    #[arg(long, env = "SLUICE_LAG_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub lag_interval: Duration,

    /// Memory budget of the process; the read cache and the backpressure gates are sized
    /// from it [default: half of the memory available (cgroup limit or physical memory),
    /// at most 512MiB].
    #[arg(long, env = "SLUICE_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<u64>,

    /// Memory for the read-through cache of segment chunks [default: 15% of --memory-limit].
    #[arg(long, env = "SLUICE_READ_CACHE_BYTES", value_parser = parse_size)]
    pub read_cache_bytes: Option<u64>,

    /// Produce bytes in flight (read, not yet committed) before connections stop being
    /// read [default: 20% of --memory-limit].
    #[arg(long, env = "SLUICE_MAX_PRODUCE_INFLIGHT_BYTES", value_parser = parse_size)]
    pub max_produce_inflight_bytes: Option<u64>,

    /// Fetch response bytes in flight before fetches wait [default: 15% of --memory-limit].
    #[arg(long, env = "SLUICE_MAX_FETCH_INFLIGHT_BYTES", value_parser = parse_size)]
    pub max_fetch_inflight_bytes: Option<u64>,

    /// Open Kafka connections before new ones wait in the listen backlog.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Largest frame a connection may send before it has authenticated, with
    /// `--kafka-auth sasl` (Kafka's sasl.server.max.receive.size). Only ApiVersions and
    /// SASL requests are read before authentication; anything else closes the connection.
    #[arg(long, env = "SLUICE_SASL_MAX_RECEIVE_BYTES", default_value = "512KiB", value_parser = parse_size)]
    pub sasl_max_receive_bytes: u64,

    /// A Kafka connection with no request in flight and nothing read for this long is
    /// closed (Kafka's connections.max.idle.ms; e.g. 10m, 30s).
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX_IDLE", default_value = "10m", value_parser = parse_duration)]
    pub connections_max_idle: Duration,

    /// Members a consumer group may have, those being admitted included (Kafka's
    /// group.max.size); more get GROUP_MAX_SIZE_REACHED.
    #[arg(long, env = "SLUICE_GROUP_MAX_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub group_max_size: u32,
}

/// A listener address, or none (`none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

fn parse_listen_addr(s: &str) -> Result<ListenAddr, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(ListenAddr(None));
    }
    s.trim()
        .parse()
        .map(|a| ListenAddr(Some(a)))
        .map_err(|e| format!("'{s}' is not host:port or none: {e}"))
}

impl ServeArgs {
    /// The certificate files, checked against the listeners that need them.
    pub fn tls_files(&self) -> Result<Option<broker::tls::TlsFiles>, String> {
        let wants_tls = self.kafka_tls_addr.is_some() || self.https_addr.is_some();
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                if !wants_tls {
                    return Err(
                        "--tls-cert and --tls-key serve --kafka-tls-addr or --https-addr: give one"
                            .into(),
                    );
                }
                if self.tls_client_ca.is_some() && self.kafka_tls_addr.is_none() {
                    return Err(
                        "--tls-client-ca applies to the Kafka TLS listener: give --kafka-tls-addr"
                            .into(),
                    );
                }
                Ok(Some(broker::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                }))
            }
            (None, None) if !wants_tls && self.tls_client_ca.is_none() => Ok(None),
            (None, None) => Err(
                "--kafka-tls-addr, --https-addr and --tls-client-ca need --tls-cert and --tls-key"
                    .into(),
            ),
            _ => Err("give both --tls-cert and --tls-key".into()),
        }
    }
}

/// Parses `250ms`, `2s`, `1m` or a bare number of milliseconds.
pub fn parse_roles(s: &str) -> Result<broker::config::Roles, String> {
    broker::config::Roles::parse(s)
}

/// `--batch-min-interval`: a duration, or None for `auto`.
#[derive(Debug, Clone, Copy)]
pub struct MinInterval(pub Option<Duration>);

fn parse_min_interval(s: &str) -> Result<MinInterval, String> {
    if s.trim() == "auto" {
        return Ok(MinInterval(None));
    }
    parse_duration(s)
        .map(|d| MinInterval(Some(d)))
        .map_err(|e| format!("{e}, or auto"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 250ms or 2s"))?;
    match unit.trim() {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        other => Err(format!(
            "unknown duration unit '{other}' in '{s}': use ms, s or m"
        )),
    }
}

/// Parses `8MiB`, `512KiB`, `1GiB`, `10MB` or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 8MiB or 1000000"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}': use KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

/// A token no request can present: an HTTP header value cannot hold a newline. /metrics
/// asks for it when it must be closed and no token was set.
const NO_METRICS_TOKEN: &str = "\n/metrics is closed: set --metrics-token or --metrics-public";

impl ServeArgs {
    /// The token `/metrics` requires, if any: `--metrics-token` when set; otherwise, with
    /// `--kafka-auth sasl` (a server for several tenants) and without `--metrics-public`,
    /// one that cannot be sent, so `/metrics` answers 401 to everyone; otherwise none, and
    /// `/metrics` is open as before (`--kafka-auth none`, or `--metrics-public`).
    pub fn metrics_token_required(&self) -> Option<String> {
        match &self.metrics_token {
            Some(t) => Some(t.clone()),
            None if self.kafka_auth == KafkaAuthArg::Sasl && !self.metrics_public => {
                Some(NO_METRICS_TOKEN.to_string())
            }
            None => None,
        }
    }

    /// Whether `/metrics` is closed to everyone because no token was set (worth a warning).
    pub fn metrics_closed(&self) -> bool {
        self.metrics_token_required().as_deref() == Some(NO_METRICS_TOKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("40").unwrap(), Duration::from_millis(40));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn cli_parses_defaults() {
        let cli = Cli::try_parse_from(["sluice", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve parses as serve")
        };
        assert_eq!(a.kafka_addr.0.map(|a| a.port()), Some(9092));
        assert_eq!(a.http_max_connections, 1024);
        assert_eq!(a.http_header_timeout, Duration::from_secs(30));
        assert_eq!(a.tls_files(), Ok(None));
        assert!(a.auto_create_topics);
        assert_eq!(a.default_partitions, 1);
        let cli = Cli::try_parse_from([
            "sluice",
            "serve",
            "--auto-create-topics",
            "false",
            "--default-partitions",
            "3",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve parses as serve")
        };
        assert!(!a.auto_create_topics);
        assert_eq!(a.default_partitions, 3);
    }

    #[test]
    fn compaction_flags() {
        let cli = Cli::try_parse_from(["sluice", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve parses as serve")
        };
        assert_eq!(a.compaction_target_size, 64 << 20);
        assert_eq!(a.compaction_interval, Duration::from_secs(60));
        assert_eq!(a.segment_delete_grace, Duration::from_secs(30));
        let cli = Cli::try_parse_from([
            "sluice",
            "serve",
            "--compaction-target-size",
            "0",
            "--compaction-interval",
            "5s",
            "--segment-delete-grace",
            "2s",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("serve parses as serve")
        };
        assert_eq!(a.compaction_target_size, 0, "0 disables compaction");
        assert_eq!(a.compaction_interval, Duration::from_secs(5));
        assert_eq!(a.segment_delete_grace, Duration::from_secs(2));
    }

    #[test]
    fn tls_flags() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(["sluice", "serve"].iter().chain(args)).unwrap();
            let Command::Serve(a) = cli.command else {
                panic!("serve parses as serve")
            };
            a
        };
        let a = parse(&["--kafka-addr", "none", "--kafka-tls-addr", "127.0.0.1:9093"]);
        assert_eq!(a.kafka_addr, ListenAddr(None));
        assert!(a.tls_files().unwrap_err().contains("need --tls-cert"));
        let a = parse(&[
            "--kafka-tls-addr",
            "127.0.0.1:9093",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ]);
        let files = a.tls_files().unwrap().unwrap();
        assert_eq!(
            files.client_ca.as_deref(),
            Some(std::path::Path::new("ca.pem"))
        );
        let a = parse(&["--https-addr", "127.0.0.1:8443", "--tls-cert", "c.pem"]);
        assert!(a.tls_files().unwrap_err().contains("both"));
        let a = parse(&[
            "--https-addr",
            "127.0.0.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ]);
        assert!(a.tls_files().unwrap_err().contains("--kafka-tls-addr"));
        assert!(Cli::try_parse_from(["sluice", "serve", "--kafka-addr", "nowhere"]).is_err());
    }

    #[test]
    fn metrics_token_with_sasl() {
        let serve = |args: &[&str]| {
            let mut all = vec!["sluice", "serve"];
            all.extend_from_slice(args);
            let Command::Serve(a) = Cli::try_parse_from(all).unwrap().command else {
                panic!("serve parses as serve")
            };
            a
        };
        // --kafka-auth none: open unless a token is set, as before.
        assert_eq!(serve(&[]).metrics_token_required(), None);
        assert_eq!(
            serve(&["--metrics-token", "t0k"]).metrics_token_required(),
            Some("t0k".to_string())
        );
        // --kafka-auth sasl: closed without a token, unless --metrics-public.
        let closed = serve(&["--kafka-auth", "sasl"]);
        assert!(closed.metrics_closed());
        let token = closed.metrics_token_required().unwrap();
        assert!(
            axum::http::HeaderValue::from_str(&format!("Bearer {token}")).is_err(),
            "no request can carry the closed token"
        );
        assert_eq!(
            serve(&["--kafka-auth", "sasl", "--metrics-public"]).metrics_token_required(),
            None
        );
        assert_eq!(
            serve(&[
                "--kafka-auth",
                "sasl",
                "--metrics-token",
                "t0k",
                "--metrics-public"
            ])
            .metrics_token_required(),
            Some("t0k".to_string()),
            "an explicit token still applies"
        );
    }
}
