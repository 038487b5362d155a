//! `sluice-bench`: produce/consume throughput and latency benchmark for Sluice (or any
//! Kafka-compatible broker), using librdkafka through the `rdkafka` crate.
//!
//! Phases:
//! 1. optionally spawn `sluice serve` on ephemeral ports with a throw-away data directory,
//!    and sample its RSS from `/proc/PID/status` once per second;
//! 2. create the topic (AdminClient);
//! 3. produce `--records` payloads of `--record-bytes` bytes round-robin over the partitions
//!    with a `ThreadedProducer`, timing every record from enqueue to delivery report;
//! 4. consume everything back from the beginning with one `BaseConsumer` (manual `assign`),
//!    checking that every partition's offsets run contiguously from 0;
//! 5. print a summary table; exit non-zero on any error or missing record.
//!
//! Every wait is bounded by a timeout. See `bench/README.md` for how to run it.
//!
//! `sluice-bench overload ...` runs the overload benchmark instead (module `overload`);
//! `sluice-bench check-history FILE...` checks the history of a kill test (module `history`);
//! `sluice-bench scale` compares one agent with three on a shared database (module `scale`).
//! `sluice-bench kill-test ...` runs one: agents killed under load (module `killtest`).
//! `sluice-bench sync` measures a lone synchronous producer (module `sync`).
//!
//! Modules: `server` (spawned `sluice serve`), `rss` (memory/CPU from `/proc`), `topic`
//! (topic creation), `util` (size/duration parsing), `overload` (the overload benchmark),
//! `history` (kill-test histories: writer and checker), `killtest` (the kill-test driver).

mod consume;
mod history;
mod killtest;
mod overload;
mod rss;
mod scale;
mod server;
mod sync;
mod topic;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::consume::{consume_phase, ConsumeReport};
use crate::rss::{RssReport, RssSampler};
use crate::server::{Server, SpawnOptions};
use crate::topic::{create_topic, wait_for_topic};
use crate::util::{mib, parse_duration};

/// Bytes of extra random data beyond one payload; payloads are windows into this pool
/// so consecutive records differ without generating fresh random bytes per record.
const POOL_SLACK: usize = 64 * 1024;
/// How many error messages of one kind are printed before only counting.
const MAX_PRINTED_ERRORS: u64 = 10;
/// The default memory budget from DESIGN.md section 13.
const RSS_TARGET_MIB: f64 = 512.0;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-bench",
    version,
    about = "Produce/consume throughput and latency benchmark for Sluice (any Kafka broker works)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<BenchCommand>,

    #[command(flatten)]
    run: Args,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Overload benchmark (DESIGN.md section 7): measure the peak with a normal load, drive
    /// 10x that plus a fetch storm, drop back, and check memory, throughput, recovery and
    /// that every acknowledged record reads back.
    Overload(overload::OverloadArgs),
    /// Check the history of a kill test (JSON lines written by its producers and consumers):
    /// lost, duplicated, misplaced and unexpected records, ack and poll order, polls below a
    /// committed offset. Exits 1 on any violation.
    CheckHistory(history::CheckHistoryArgs),
    /// One agent vs three agents on one database and bucket: produce and consume
    /// throughput, end-to-end latency across agents, commit transactions, CPU and RSS.
    Scale(scale::ScaleArgs),
    /// Kill test: several agents on one database and bucket, producers and a consumer group
    /// working while agents are killed (SIGKILL) and restarted; every client writes a
    /// history, checked at the end, and the recovery after each kill is timed.
    KillTest(killtest::KillTestArgs),
    /// A lone synchronous producer: one record, wait for its acknowledgement, repeat;
    /// prints the acknowledgement latency percentiles and the objects written per second.
    Sync(sync::SyncArgs),
}

// The default benchmark: produce `--records` records, then consume them back.
#[derive(clap::Args, Debug)]
struct Args {
    /// Broker to benchmark (ignored when --spawn is given).
    #[arg(long, env = "SLUICE_BENCH_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,

    /// Path to a `sluice` binary: start `sluice serve` on ephemeral ports with a temporary
    /// data directory, benchmark it, and stop it at the end.
    #[arg(long, env = "SLUICE_BENCH_SPAWN", value_name = "PATH")]
    spawn: Option<PathBuf>,

    /// Bucket URL passed to the spawned server (memory://, file://..., s3://...).
    /// Omitted: the server's default (a folder under its data dir).
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,

    /// --batch-timeout passed to the spawned server; also used for the latency target line.
    #[arg(long, default_value = "250ms")]
    batch_timeout: String,

    /// Extra argument for the spawned server (repeatable), e.g. --server-arg=--memory-limit=1GiB.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,

    /// Forward the spawned server's stdout/stderr to this program's stderr.
    #[arg(long)]
    server_log: bool,

    /// Keep the spawned server's temporary data directory.
    #[arg(long)]
    keep_data: bool,

    /// Seconds to wait for the spawned server's "sluice listening" line.
    #[arg(long, default_value_t = 60)]
    startup_timeout_secs: u64,

    /// Number of records to produce (and consume).
    #[arg(long, default_value_t = 500_000)]
    records: u64,

    /// Payload size of each record in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,

    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    partitions: i32,

    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,

    /// Producer acks (all, 1, 0).
    #[arg(long, default_value = "all")]
    acks: String,

    /// Producer compression.type (none, gzip, snappy, lz4, zstd).
    #[arg(long, default_value = "none")]
    compression: String,

    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_048_576)]
    batch_bytes: u32,

    /// Producer queue.buffering.max.messages (records waiting in the client).
    #[arg(long, default_value_t = 500_000)]
    queue_messages: u32,

    /// Target produce rate in records/s (0 = as fast as possible). Use about 80% of the
    /// unlimited rate to check the latency target.
    #[arg(long, default_value_t = 0)]
    rate: u64,

    /// Topic name (default: a fresh `sluice-bench-<time>-<pid>`). It must not exist yet.
    #[arg(long)]
    topic: Option<String>,

    /// Only produce.
    #[arg(long)]
    skip_consume: bool,

    /// Time limit of each phase (produce, consume) in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(BenchCommand::Overload(args)) => return overload::main(args),
        Some(BenchCommand::CheckHistory(args)) => return history::main(args),
        Some(BenchCommand::Scale(args)) => return scale::main(args),
        Some(BenchCommand::KillTest(args)) => return killtest::main(args),
        Some(BenchCommand::Sync(args)) => return sync::main(args),
        None => {}
    }
    let args = cli.run;
    match run(&args) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("\nFAILED:");
            for f in &failures {
                eprintln!("  - {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("sluice-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the whole benchmark. Hard setup errors are `Err`; measurement problems (lost records,
/// delivery errors, gaps) are returned as a list of failures after the summary is printed.
fn run(args: &Args) -> Result<Vec<String>> {
    if args.record_bytes == 0 {
        bail!("--record-bytes must be at least 1");
    }
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let mut failures = Vec::new();

    // --- optional server -----------------------------------------------------------------
    let mut server = None;
    let mut sampler = None;
    let bootstrap = match &args.spawn {
        Some(path) => {
            let (srv, kafka, http) = Server::spawn(&SpawnOptions {
                path: path.clone(),
                batch_timeout: args.batch_timeout.clone(),
                bucket_url: args.bucket_url.clone(),
                extra_args: args.server_args.clone(),
                forward_log: args.server_log,
                keep_data: args.keep_data,
                startup_timeout: Duration::from_secs(args.startup_timeout_secs),
                data_dir: None,
                log_file: None,
            })?;
            eprintln!(
                "spawned {} (pid {}) kafka={} http={} data-dir={}",
                path.display(),
                srv.pid,
                kafka,
                http.as_deref().unwrap_or("?"),
                srv.data_dir.display()
            );
            sampler = Some(RssSampler::start(srv.pid, Duration::from_secs(1)));
            server = Some(srv);
            kafka
        }
        None => args.bootstrap.clone(),
    };

    let topic = args.topic.clone().unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("sluice-bench-{secs}-{}", std::process::id())
    });
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    eprintln!(
        "bootstrap={bootstrap} topic={topic} records={} record-bytes={} partitions={} \
         linger-ms={} acks={} compression={} rate={} librdkafka={librdkafka_version}",
        args.records,
        args.record_bytes,
        args.partitions,
        args.linger_ms,
        args.acks,
        args.compression,
        if args.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", args.rate)
        },
    );

    // --- topic ---------------------------------------------------------------------------
    create_topic(&bootstrap, &topic, args.partitions, Duration::from_secs(30))?;

    // --- produce -------------------------------------------------------------------------
    let rss_before = sampler.as_ref().map(|s| s.stats.begin_phase());
    let produce = produce_phase(args, &bootstrap, &topic)?;
    let rss_produce = sampler.as_ref().map(|s| s.stats.end_phase());
    if produce.errors > 0 {
        failures.push(format!(
            "{} produce delivery errors (first: {})",
            produce.errors,
            produce
                .first_errors
                .first()
                .map(String::as_str)
                .unwrap_or("?")
        ));
    }
    if produce.delivered != args.records {
        failures.push(format!(
            "only {} of {} records acknowledged by the broker",
            produce.delivered, args.records
        ));
    }

    // --- consume -------------------------------------------------------------------------
    let mut consume = None;
    let mut rss_consume = None;
    if !args.skip_consume {
        if let Some(s) = &sampler {
            s.stats.begin_phase();
        }
        let c = consume_phase(args, &bootstrap, &topic, produce.delivered)?;
        rss_consume = sampler.as_ref().map(|s| s.stats.end_phase());
        failures.extend(c.failures.iter().cloned());
        consume = Some(c);
    }

    // --- server health and memory ------------------------------------------------------
    if let Some(srv) = server.as_mut() {
        if let Some(status) = srv.exited() {
            failures.push(format!(
                "the spawned server exited during the benchmark ({status})"
            ));
            srv.print_tail();
        }
    }
    let rss = sampler.map(|s| s.finish());

    print_summary(
        args,
        &bootstrap,
        &topic,
        &produce,
        consume.as_ref(),
        rss.as_ref(),
        rss_before.flatten(),
        rss_produce.flatten(),
        rss_consume.flatten(),
    );

    if let Some(mut srv) = server {
        srv.stop();
    }
    Ok(failures)
}

// =========================================================================================
// Produce phase
// =========================================================================================

/// Producer callbacks: delivery reports (latency, errors) and global client errors.
/// Runs on the `ThreadedProducer`'s polling thread.
struct ProduceContext {
    /// Time origin of the send timestamps carried in the delivery opaque.
    base: Instant,
    delivered: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds since `base` of the latest delivery report.
    last_delivery_ns: AtomicU64,
    /// Per-record latency, enqueue to delivery report, in microseconds.
    latencies_us: Mutex<Vec<u32>>,
    first_errors: Mutex<Vec<String>>,
    client_errors: AtomicU64,
}

impl ProduceContext {
    fn new(base: Instant, capacity: usize) -> Self {
        ProduceContext {
            base,
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::with_capacity(capacity)),
            first_errors: Mutex::new(Vec::new()),
            client_errors: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn finished(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }
}

impl ClientContext for ProduceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.client_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_PRINTED_ERRORS {
            eprintln!("producer: client error: {error}: {reason}");
        }
    }
}

impl ProducerContext for ProduceContext {
    /// Enqueue time in nanoseconds since `base`.
    type DeliveryOpaque = usize;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.now_ns();
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        match delivery_result {
            Ok(_) => {
                let us = now.saturating_sub(sent_ns as u64) / 1_000;
                let us = u32::try_from(us).unwrap_or(u32::MAX);
                if let Ok(mut v) = self.latencies_us.lock() {
                    v.push(us);
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((err, msg)) => {
                let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                let text = format!("partition {}: {err}", msg.partition());
                if n <= MAX_PRINTED_ERRORS {
                    eprintln!("producer: delivery failed: {text}");
                    if let Ok(mut v) = self.first_errors.lock() {
                        v.push(text);
                    }
                }
            }
        }
    }
}

struct ProduceReport {
    delivered: u64,
    errors: u64,
    first_errors: Vec<String>,
    elapsed: Duration,
    payload_bytes: u64,
    /// Sorted latencies in microseconds.
    latencies_us: Vec<u32>,
    queue_full_waits: u64,
}

fn produce_phase(args: &Args, bootstrap: &str, topic: &str) -> Result<ProduceReport> {
    let records = args.records;
    let record_bytes = args.record_bytes;
    let partitions = args.partitions as u64;
    // message.max.bytes bounds a whole ProduceRequest in librdkafka; keep it well above
    // batch.size and one record.
    let max_message_bytes = (args.batch_bytes as usize)
        .max(record_bytes + 4096)
        .saturating_mul(4)
        .clamp(1_000_000, 100_000_000);

    let base = Instant::now();
    let ctx = ProduceContext::new(base, records.min(50_000_000) as usize);
    let producer: ThreadedProducer<ProduceContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "sluice-bench-producer")
        .set("acks", args.acks.as_str())
        .set("compression.type", args.compression.as_str())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_bytes.to_string())
        .set("batch.num.messages", "1000000")
        .set("message.max.bytes", max_message_bytes.to_string())
        .set(
            "queue.buffering.max.messages",
            args.queue_messages.to_string(),
        )
        .set("queue.buffering.max.kbytes", "2097152")
        .set("message.timeout.ms", (args.timeout_secs * 1000).to_string())
        .set("request.timeout.ms", "30000")
        .set("socket.nagle.disable", "true")
        .set("enable.idempotence", "false")
        .create_with_context(ctx)
        .context("creating the producer")?;

    wait_for_topic(
        producer.client(),
        topic,
        args.partitions,
        Duration::from_secs(30),
    )?;

    // Random-ish payload pool (xorshift64*), so compression and the broker see realistic bytes.
    let mut pool = vec![0u8; record_bytes + POOL_SLACK];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    for chunk in pool.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }

    let ctx = Arc::clone(producer.context());
    let start_ns = ctx.now_ns();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_secs);
    let mut queue_full_waits: u64 = 0;
    let mut last_progress = Instant::now();

    for i in 0..records {
        if args.rate > 0 {
            // Open-loop pacing: record i is due at start + i / rate.
            let due = start
                + Duration::from_nanos(((i as u128) * 1_000_000_000 / args.rate as u128) as u64);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        let key = i.to_be_bytes();
        let partition = (i % partitions) as i32;
        let offset_in_pool = ((i as usize).wrapping_mul(4099)) % POOL_SLACK;
        let payload = &pool[offset_in_pool..offset_in_pool + record_bytes];
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, ctx.now_ns() as usize)
                .partition(partition)
                .key(&key[..])
                .payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rejected)) => {
                    queue_full_waits += 1;
                    if Instant::now() > deadline {
                        bail!(
                            "produce phase timed out after {}s with the client queue full \
                             ({} of {records} enqueued, {} acknowledged)",
                            args.timeout_secs,
                            i,
                            ctx.delivered.load(Ordering::Relaxed)
                        );
                    }
                    thread::sleep(Duration::from_micros(200));
                    // The clock starts when the client accepts the record.
                    record = rejected.delivery_opaque(ctx.now_ns() as usize);
                }
                Err((e, _)) => bail!("enqueueing record {i} failed: {e}"),
            }
        }
        if i % 1024 == 0 && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "produce: {} enqueued, {} acknowledged, {} errors, {:.1}s",
                i + 1,
                ctx.delivered.load(Ordering::Relaxed),
                ctx.errors.load(Ordering::Relaxed),
                start.elapsed().as_secs_f64()
            );
        }
    }

    // Wait for every delivery report (success or failure).
    while ctx.finished() < records {
        if Instant::now() > deadline {
            eprintln!(
                "produce: timed out after {}s waiting for delivery reports ({} of {records})",
                args.timeout_secs,
                ctx.finished()
            );
            break;
        }
        thread::sleep(Duration::from_millis(5));
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "produce: all enqueued, {} acknowledged, {} errors, {} in flight, {:.1}s",
                ctx.delivered.load(Ordering::Relaxed),
                ctx.errors.load(Ordering::Relaxed),
                producer.in_flight_count(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    if ctx.finished() >= records {
        if let Err(e) = producer.flush(Duration::from_secs(10)) {
            eprintln!("producer: flush: {e}");
        }
    }
    let end_ns = ctx
        .last_delivery_ns
        .load(Ordering::Relaxed)
        .max(start_ns + 1);
    let elapsed = if ctx.finished() >= records {
        Duration::from_nanos(end_ns - start_ns)
    } else {
        start.elapsed()
    };
    drop(producer);

    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let errors = ctx.errors.load(Ordering::Relaxed);
    let mut latencies_us = ctx
        .latencies_us
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    latencies_us.sort_unstable();
    let first_errors = ctx
        .first_errors
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    Ok(ProduceReport {
        delivered,
        errors,
        first_errors,
        elapsed,
        payload_bytes: delivered * record_bytes as u64,
        latencies_us,
        queue_full_waits,
    })
}

// =========================================================================================
// Consume phase
// =========================================================================================

/// Nearest-rank percentile of sorted values; `q` in 0..=1.
fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn fmt_ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "-".to_string(),
        |v| format!("{:.2}", f64::from(v) / 1000.0),
    )
}

#[allow(clippy::too_many_arguments)]
fn print_summary(
    args: &Args,
    bootstrap: &str,
    topic: &str,
    produce: &ProduceReport,
    consume: Option<&ConsumeReport>,
    rss: Option<&RssReport>,
    rss_before_kb: Option<u64>,
    rss_produce_kb: Option<u64>,
    rss_consume_kb: Option<u64>,
) {
    println!();
    println!("=== sluice-bench summary ===");
    println!(
        "{} records x {} B over {} partitions, acks={}, linger.ms={}, compression={}, batch.size={}, rate={}",
        args.records,
        args.record_bytes,
        args.partitions,
        args.acks,
        args.linger_ms,
        args.compression,
        args.batch_bytes,
        if args.rate == 0 { "max".to_string() } else { format!("{}/s", args.rate) },
    );
    match &args.spawn {
        Some(path) => println!(
            "server: spawned {} at {bootstrap}, bucket {}, batch-timeout {}",
            path.display(),
            args.bucket_url.as_deref().unwrap_or("(server default)"),
            args.batch_timeout
        ),
        None => println!("server: {bootstrap} (external)"),
    }
    println!("topic: {topic}");
    println!();
    println!(
        "{:<8} {:>10} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "phase",
        "records",
        "secs",
        "records/s",
        "MB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors"
    );
    let secs = produce.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{:<8} {:>10} {:>9.3} {:>12.0} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "produce",
        produce.delivered,
        secs,
        produce.delivered as f64 / secs,
        produce.payload_bytes as f64 / 1e6 / secs,
        fmt_ms(percentile(&produce.latencies_us, 0.50)),
        fmt_ms(percentile(&produce.latencies_us, 0.90)),
        fmt_ms(percentile(&produce.latencies_us, 0.99)),
        fmt_ms(produce.latencies_us.last().copied()),
        produce.errors,
    );
    match consume {
        Some(c) => {
            let secs = c.elapsed.as_secs_f64().max(1e-9);
            println!(
                "{:<8} {:>10} {:>9.3} {:>12.0} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
                "consume",
                c.received,
                secs,
                c.received as f64 / secs,
                c.payload_bytes as f64 / 1e6 / secs,
                "-",
                "-",
                "-",
                "-",
                c.failures.len(),
            );
        }
        None => println!("consume  (skipped)"),
    }
    println!();
    println!("MB/s = payload bytes / 1e6 / s; produce latency = enqueue in the client -> delivery report.");
    if produce.queue_full_waits > 0 {
        println!(
            "note: the client queue was full {} times (latency includes time queued in the client; \
             use --rate to measure latency below saturation)",
            produce.queue_full_waits
        );
    }
    if let Some(c) = consume {
        if c.order_warnings > 0 {
            println!(
                "note: {} records sat at a different offset than produced (client retries can reorder)",
                c.order_warnings
            );
        }
    }

    if let Some(bt) = parse_duration(&args.batch_timeout) {
        if let Some(p99) = percentile(&produce.latencies_us, 0.99) {
            let limit = bt + Duration::from_millis(50);
            let p99 = Duration::from_micros(u64::from(p99));
            println!(
                "latency target p99 <= batch-timeout + 50 ms = {} ms: {} (p99 {:.2} ms; the target applies at 80% of peak, see --rate)",
                limit.as_millis(),
                if p99 <= limit { "met" } else { "NOT met" },
                p99.as_secs_f64() * 1000.0
            );
        }
    }

    if let Some(r) = rss {
        let fmt =
            |kb: Option<u64>| kb.map_or_else(|| "-".to_string(), |v| format!("{:.1}", mib(v)));
        println!(
            "server RSS MiB: before produce {}, peak during produce {}, peak during consume {}, \
             peak sampled {:.1} ({} samples), VmHWM {:.1}",
            fmt(rss_before_kb),
            fmt(rss_produce_kb),
            fmt(rss_consume_kb),
            mib(r.peak_rss_kb),
            r.samples,
            mib(r.hwm_kb)
        );
        let peak = mib(r.peak_rss_kb.max(r.hwm_kb));
        println!(
            "memory target RSS < {RSS_TARGET_MIB:.0} MiB (default limits): {}",
            if peak < RSS_TARGET_MIB {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
