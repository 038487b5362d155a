//! `sluice-bench scale`: the same workload against one agent and against three agents that
//! share one metadata database and one bucket (DESIGN.md section 13, "scale-out").
//!
//! For each agent count of `--agents` (default `1,3`) it:
//! 1. starts that many `sluice serve` agents on a fresh SQLite file and `file://` directory
//!    (or the given `--database-url` / `--bucket-url`), each with its own data dir, ports
//!    and `--rack zN`, and waits until Metadata from agent 1 lists all of them (`cluster`);
//! 2. produces `--records` records with `--producers` idempotent librdkafka producers,
//!    producer i bootstrapping at agent i mod N (`produce`);
//! 3. reads them back with `--consumers` consumers, each assigned a share of the partitions
//!    and bootstrapping at a different agent, checking every record exactly once (`consume`);
//! 4. measures end-to-end latency from a producer pinned to agent 1 to a consumer pinned to
//!    agent 2 with the `sluice_az=` zone hint, at a steady rate (`e2e`);
//! 5. samples every agent's `/metrics` (commit transactions), CPU and RSS per phase (`probe`);
//! 6. prints one table per run and a summary comparing the runs (`report`).
//!
//! Exit status: 0 = every record of every phase arrived exactly once, 1 = a record was
//! missing or duplicated (or another measured failure, listed under `FAILED:`), 2 = setup
//! error (an agent did not start, a wait timed out).

mod cluster;
mod consume;
mod e2e;
pub(crate) mod probe;
mod produce;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::topic::create_topic;

use self::cluster::{Cluster, ClusterOptions};
use self::probe::PhaseStats;

#[derive(clap::Args, Debug)]
pub(crate) struct ScaleArgs {
    /// Agent counts to compare, one run each (e.g. 1,3 or 1,2,3).
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    agents: Vec<usize>,

    /// The `sluice` binary [default: `sluice` next to this program].
    #[arg(long, value_name = "PATH")]
    sluice: Option<PathBuf>,

    /// Shared metadata database (e.g. postgres://...) [default: a fresh SQLite file per run].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// Shared bucket (e.g. s3://...) [default: a fresh file:// directory per run].
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,

    /// --batch-timeout passed to every agent (also the base of the visibility bound).
    #[arg(long, default_value = "250ms")]
    batch_timeout: String,

    /// Extra argument for every agent (repeatable), e.g. --server-arg=--memory-limit=1GiB.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,

    /// Forward the agents' output to stderr.
    #[arg(long)]
    server_log: bool,

    /// Keep the agents' data directories and the shared temporary directory.
    #[arg(long)]
    keep_data: bool,

    /// Partitions of the throughput topic.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    partitions: i32,

    /// Producers of the throughput phase (producer i bootstraps at agent i mod N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    producers: u32,

    /// Consumers of the consume phase (each gets a share of the partitions).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    consumers: u32,

    /// Records produced in the throughput phase, over all producers.
    #[arg(long, default_value_t = 300_000)]
    records: u64,

    /// Payload bytes per record (throughput and end-to-end phases).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,

    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,

    /// Producer enable.idempotence (both producing phases).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotence: bool,

    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_048_576)]
    batch_bytes: u32,

    /// Records per second of the end-to-end phase.
    #[arg(long, default_value_t = 500)]
    e2e_rate: u64,

    /// Length of the end-to-end phase in seconds.
    #[arg(long, default_value_t = 20)]
    e2e_seconds: u64,

    /// Records sent in the first seconds of the end-to-end phase are left out of its
    /// latency figures (connections, first fetches).
    #[arg(long, default_value_t = 1)]
    e2e_warmup_secs: u64,

    /// fetch.wait.max.ms of the end-to-end consumer (librdkafka's default): a long poll the
    /// agent must cut short when another agent commits.
    #[arg(long, default_value_t = 500)]
    e2e_fetch_wait_ms: u32,

    /// Time limit of each phase in seconds.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,

    /// Seconds to wait for each agent's "sluice listening" line and for membership.
    #[arg(long, default_value_t = 60)]
    startup_timeout_secs: u64,
}

pub(crate) fn main(args: &ScaleArgs) -> ExitCode {
    match run(args) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("\nFAILED:");
            for f in &failures {
                eprintln!("  - {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("sluice-bench scale: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What one run (one agent count) measured.
pub(crate) struct RunReport {
    pub(crate) agents: usize,
    pub(crate) topic: String,
    pub(crate) racks: Vec<String>,
    pub(crate) kafka_addrs: Vec<String>,
    /// Partitions led by each agent, from agent 1's Metadata.
    pub(crate) leaders: Vec<usize>,
    pub(crate) produce: produce::ProduceResult,
    pub(crate) consume: consume::ConsumeResult,
    pub(crate) e2e: e2e::E2eResult,
    pub(crate) produce_phase: PhaseStats,
    pub(crate) consume_phase: PhaseStats,
    pub(crate) e2e_phase: PhaseStats,
    pub(crate) failures: Vec<String>,
}

fn run(args: &ScaleArgs) -> Result<Vec<String>> {
    if args.agents.is_empty() || args.agents.contains(&0) {
        bail!("--agents needs counts of at least 1, e.g. 1,3");
    }
    if args.record_bytes < 8 {
        bail!("--record-bytes must be at least 8 (the end-to-end phase stores a timestamp)");
    }
    if args.records == 0 || args.e2e_rate == 0 || args.e2e_seconds == 0 {
        bail!("--records, --e2e-rate and --e2e-seconds must be at least 1");
    }
    let batch_timeout = crate::util::parse_duration(&args.batch_timeout)
        .with_context(|| format!("--batch-timeout {:?} is not a duration", args.batch_timeout))?;
    let sluice = match &args.sluice {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this program")?
            .with_file_name("sluice"),
    };
    if !sluice.exists() {
        bail!(
            "{} does not exist: build it (cargo build --release -p sluice) or pass --sluice PATH",
            sluice.display()
        );
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    eprintln!(
        "scale: agents={:?} sluice={} database={} bucket={} batch-timeout={} partitions={} \
         producers={} consumers={} idempotence={} records={} record-bytes={} e2e={}/s for {}s librdkafka={librdkafka}",
        args.agents,
        sluice.display(),
        args.database_url.as_deref().unwrap_or("fresh SQLite file per run"),
        args.bucket_url.as_deref().unwrap_or("fresh file:// directory per run"),
        args.batch_timeout,
        args.partitions,
        args.producers,
        args.consumers,
        args.idempotence,
        args.records,
        args.record_bytes,
        args.e2e_rate,
        args.e2e_seconds,
    );

    let mut reports = Vec::new();
    for &count in &args.agents {
        // Fresh topic names per run, so runs on a shared Postgres/S3 never see each other.
        let topic = format!("sluice-scale-{stamp}-{}-a{count}", std::process::id());
        let opts = ClusterOptions {
            sluice: sluice.clone(),
            count,
            database_url: args.database_url.clone(),
            bucket_url: args.bucket_url.clone(),
            batch_timeout: args.batch_timeout.clone(),
            extra_args: args.server_args.clone(),
            forward_log: args.server_log,
            keep_data: args.keep_data,
            startup_timeout: Duration::from_secs(args.startup_timeout_secs),
        };
        eprintln!("\n=== {count} agent(s) ===");
        let cluster = Cluster::start(&opts)?;
        let report = run_one(args, &cluster, &topic, batch_timeout);
        cluster.stop();
        let report = report?;
        report::print_run(&report, batch_timeout);
        reports.push(report);
    }
    report::print_summary(&reports, args, batch_timeout);

    let mut failures = Vec::new();
    for r in &reports {
        failures.extend(
            r.failures
                .iter()
                .map(|f| format!("{} agent(s): {f}", r.agents)),
        );
    }
    Ok(failures)
}

fn run_one(
    args: &ScaleArgs,
    cluster: &Cluster,
    topic: &str,
    batch_timeout: Duration,
) -> Result<RunReport> {
    let count = cluster.agents.len();
    let timeout = Duration::from_secs(args.timeout_secs);
    let first = cluster.agents[0].kafka.clone();
    create_topic(&first, topic, args.partitions, Duration::from_secs(30))?;
    let leaders = cluster.leaders(topic, args.partitions, Duration::from_secs(30))?;
    eprintln!("scale: partition leaders per agent (agent 1's Metadata): {leaders:?}");

    let bootstraps: Vec<String> = cluster.agents.iter().map(|a| a.kafka.clone()).collect();
    let mut failures = Vec::new();

    // --- produce ---------------------------------------------------------------------
    let (produce, produce_phase) = produce::run(
        &produce::ProduceOptions {
            bootstraps: &bootstraps,
            topic,
            partitions: args.partitions,
            producers: args.producers,
            records: args.records,
            record_bytes: args.record_bytes,
            linger_ms: args.linger_ms,
            idempotence: args.idempotence,
            batch_bytes: args.batch_bytes,
            timeout,
        },
        cluster,
    )?;
    failures.extend(produce.failures.iter().cloned());

    // --- consume ---------------------------------------------------------------------
    let (consume, consume_phase) = consume::run(
        &consume::ConsumeOptions {
            bootstraps: &bootstraps,
            topic,
            partitions: args.partitions,
            consumers: args.consumers,
            records: args.records,
            record_bytes: args.record_bytes,
            timeout,
        },
        cluster,
    )?;
    failures.extend(consume.failures.iter().cloned());

    // --- end-to-end ------------------------------------------------------------------
    let producer_agent = 0;
    let consumer_agent = if count >= 2 { 1 } else { 0 };
    let e2e = e2e::run(
        &e2e::E2eOptions {
            producer_bootstrap: &bootstraps[producer_agent],
            producer_zone: &cluster.agents[producer_agent].rack,
            consumer_bootstrap: &bootstraps[consumer_agent],
            consumer_zone: &cluster.agents[consumer_agent].rack,
            topic,
            partitions: args.partitions,
            rate: args.e2e_rate,
            seconds: args.e2e_seconds,
            warmup: Duration::from_secs(args.e2e_warmup_secs),
            record_bytes: args.record_bytes,
            linger_ms: args.linger_ms,
            idempotence: args.idempotence,
            fetch_wait_ms: args.e2e_fetch_wait_ms,
            batch_timeout,
        },
        cluster,
    )?;
    let e2e_phase = e2e.phase.clone();
    failures.extend(e2e.failures.iter().cloned());

    for (i, a) in cluster.agents.iter().enumerate() {
        if let Some(status) = a.exited() {
            failures.push(format!("agent {} exited during the run ({status})", i + 1));
        }
    }

    Ok(RunReport {
        agents: count,
        topic: topic.to_string(),
        racks: cluster.agents.iter().map(|a| a.rack.clone()).collect(),
        kafka_addrs: bootstraps,
        leaders,
        produce,
        consume,
        e2e,
        produce_phase,
        consume_phase,
        e2e_phase,
        failures,
    })
}

/// The value at quantile `q` of sorted microseconds, in milliseconds.
pub(crate) fn pct_ms(sorted_us: &[u64], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted_us[idx.min(sorted_us.len() - 1)] as f64 / 1000.0)
}

/// Wall-clock microseconds since the Unix epoch.
pub(crate) fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A pseudo-random payload pool (xorshift64*): payloads are windows into it, so records
/// differ without generating bytes per record.
pub(crate) fn payload_pool(len: usize) -> Vec<u8> {
    let mut pool = vec![0u8; len];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    for chunk in pool.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(pct_ms(&v, 0.5), Some(51.0));
        assert_eq!(pct_ms(&v, 0.99), Some(99.0));
        assert_eq!(pct_ms(&v, 1.0), Some(100.0));
        assert_eq!(pct_ms(&[], 0.5), None);
    }
}
