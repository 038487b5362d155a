//! `sluice-bench overload`: the proof for DESIGN.md section 7 ("backpressure, not collapse").
//!
//! Timeline (one row of the table per second):
//! 1. **normal**: `--normal-producers` unpaced producers; the mean acked MB/s after
//!    `--warmup-secs` is the *peak*, their p99 the *normal p99*.
//! 2. **overload**: the normal producers keep running; `--overload-producers` paced producers
//!    offer `--overload-factor` x the peak (open loop: records that fall due while a client
//!    queue is full are counted as offered and dropped), with 1 MiB batches, plus
//!    `--fetchers` consumers that read every partition from the beginning, over and over.
//! 3. **recovery**: overload producers purge their client queues and stop, fetchers stop;
//!    the normal producers go on. Recovery time = seconds until the normal producers' 1-s
//!    p99 is back under max(2 x normal p99, batch timeout + 50 ms) and stays there.
//! 4. **verify**: every acknowledged record must be readable at its offset with its content
//!    (`verify`).
//!
//! Each second it also samples the agent's RSS (every 100 ms, peak per second), its CPU, the
//! benchmark's own CPU, and the agent's backpressure gauges from `/metrics` (`scrape`).
//! Modules: `load` (producers, fetchers), `records` (record format and the read-everything
//! consumer setup shared by `load` and `verify`), `hist` (latency histograms), `verify`
//! (acknowledgement index and read-back), `scrape` (/metrics), `report` (table, summary,
//! pass/fail).

mod hist;
mod load;
mod records;
mod report;
mod scrape;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use self::load::{
    spawn_fetcher, spawn_producer, FetchStats, FetcherOutcome, FetcherPlan, GroupStats,
    GroupWindow, ProducerOutcome, ProducerPlan, ProducerShared,
};
use self::records::Payloads;
use self::report::{Phase, Report, Row};
use self::scrape::Scraper;
use self::verify::AckIndex;
use crate::rss::{cpu_ticks, RssSampler, CLOCK_TICKS_PER_SEC};
use crate::server::{Server, SpawnOptions};
use crate::topic::{create_topic, wait_for_topic};
use crate::util::{parse_duration, parse_size};

#[derive(clap::Args, Debug)]
pub(crate) struct OverloadArgs {
    /// Broker to load (ignored when --spawn is given).
    #[arg(long, env = "SLUICE_BENCH_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,

    /// Path to a `sluice` binary: start `sluice serve` with --memory-limit on ephemeral ports
    /// and a temporary data directory, load it, and stop it at the end.
    #[arg(long, env = "SLUICE_BENCH_SPAWN", value_name = "PATH")]
    spawn: Option<PathBuf>,

    /// Memory budget: passed to the spawned server as --memory-limit and checked against its
    /// RSS. `none` passes nothing (then the memory criterion is skipped).
    #[arg(long, default_value = "512MiB", value_name = "SIZE")]
    memory_limit: String,

    /// RSS allowed above the budget for the runtime (binary, allocator, thread stacks).
    #[arg(long, default_value = "32MiB", value_name = "SIZE")]
    rss_allowance: String,

    /// Bucket URL for the spawned server (memory://, file://...). Omitted: the server's
    /// default, a folder under its data dir. With memory:// the bucket's contents count in
    /// the RSS, so the memory criterion says little.
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,

    /// --batch-timeout passed to the spawned server; the recovery threshold is at least this
    /// plus 50 ms.
    #[arg(long, default_value = "250ms")]
    batch_timeout: String,

    /// Extra argument for the spawned server (repeatable), e.g. --server-arg=--max-connections=64.
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

    /// host:port of an external broker's HTTP listener, for /metrics (spawned: automatic).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,

    /// PID of an external broker, to sample its RSS and CPU (spawned: automatic).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Topic name (default: a fresh `sluice-overload-<time>-<pid>`). It must not exist yet.
    #[arg(long)]
    topic: Option<String>,

    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,

    /// Payload size of each record in bytes (at least 1; the key adds 16).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,

    /// Producers of the normal load (each its own client and connections), unpaced.
    #[arg(long, default_value_t = 2)]
    normal_producers: u32,

    /// Producers added for the overload, paced to offer --overload-factor x the peak.
    #[arg(long, default_value_t = 24)]
    overload_producers: u32,

    /// Consumers of the fetch storm during the overload.
    #[arg(long, default_value_t = 8)]
    fetchers: u32,

    /// Offered load of the overload producers, as a multiple of the measured peak
    /// (records/s); the default leaves a margin over the required 10x.
    #[arg(long, default_value_t = 12.0)]
    overload_factor: f64,

    /// Length of the normal phase in seconds.
    #[arg(long, default_value_t = 10)]
    normal_secs: u64,

    /// Length of the overload phase in seconds.
    #[arg(long, default_value_t = 30)]
    overload_secs: u64,

    /// Length of the recovery phase in seconds.
    #[arg(long, default_value_t = 15)]
    recovery_secs: u64,

    /// First seconds of the normal phase left out of the peak and the normal p99.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,

    /// First seconds of the overload left out of its throughput (connection ramp-up).
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,

    /// linger.ms of the normal producers.
    #[arg(long, default_value_t = 5)]
    normal_linger_ms: u32,

    /// linger.ms of the overload producers.
    #[arg(long, default_value_t = 10)]
    overload_linger_ms: u32,

    /// batch.size of every producer in bytes.
    #[arg(long, default_value_t = 1_048_576)]
    batch_bytes: u32,

    /// Client queue of each normal producer in MiB (bounds the time records wait in the client).
    #[arg(long, default_value_t = 16)]
    normal_queue_mib: u32,

    /// Client queue of each overload producer in MiB.
    #[arg(long, default_value_t = 16)]
    overload_queue_mib: u32,

    /// Records a normal producer sends to one partition before moving on (1 = round-robin).
    #[arg(long, default_value_t = 1)]
    normal_burst: usize,

    /// Records an overload producer sends to one partition before moving on
    /// (0 = one full batch, batch.size / record size).
    #[arg(long, default_value_t = 0)]
    overload_burst: usize,

    /// fetch.max.bytes of the fetchers.
    #[arg(long, default_value_t = 52_428_800)]
    fetch_max_bytes: u32,

    /// max.partition.fetch.bytes of the fetchers.
    #[arg(long, default_value_t = 10_485_760)]
    partition_fetch_bytes: u32,

    /// queued.max.messages.kbytes of each fetcher in MiB (prefetch memory in this process).
    #[arg(long, default_value_t = 16)]
    fetch_queue_mib: u32,

    /// Required overload throughput as a fraction of the peak.
    #[arg(long, default_value_t = 0.8)]
    throughput_target: f64,

    /// Required recovery time in seconds.
    #[arg(long, default_value_t = 5.0)]
    recovery_target_secs: f64,

    /// Consecutive good seconds that count as recovered.
    #[arg(long, default_value_t = 3)]
    recovery_stable_secs: u64,

    /// How long stopped producers wait for their in-flight records.
    #[arg(long, default_value_t = 30)]
    drain_timeout_secs: u64,

    /// Time limit of the read-back check.
    #[arg(long, default_value_t = 600)]
    verify_timeout_secs: u64,
}

pub(crate) fn main(args: &OverloadArgs) -> ExitCode {
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluice-bench overload: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Checked settings derived from the arguments.
pub(crate) struct Settings {
    pub(crate) budget_bytes: Option<u64>,
    pub(crate) allowance_bytes: u64,
    pub(crate) batch_timeout: Duration,
    pub(crate) overload_burst: usize,
}

fn settings(args: &OverloadArgs) -> Result<Settings> {
    if args.record_bytes == 0 {
        bail!("--record-bytes must be at least 1");
    }
    if args.normal_producers == 0 {
        bail!("--normal-producers must be at least 1 (they measure the peak and the recovery)");
    }
    if args.normal_secs <= args.warmup_secs {
        bail!("--normal-secs must be larger than --warmup-secs");
    }
    if args.overload_secs == 0 || args.recovery_secs == 0 {
        bail!("--overload-secs and --recovery-secs must be at least 1");
    }
    if !(args.overload_factor.is_finite() && args.overload_factor > 0.0) {
        bail!("--overload-factor must be a positive number");
    }
    let budget_bytes = match args.memory_limit.trim() {
        "none" | "" => None,
        s => Some(parse_size(s).with_context(|| format!("--memory-limit {s:?} is not a size"))?),
    };
    let allowance_bytes = parse_size(&args.rss_allowance)
        .with_context(|| format!("--rss-allowance {:?} is not a size", args.rss_allowance))?;
    let batch_timeout = parse_duration(&args.batch_timeout)
        .with_context(|| format!("--batch-timeout {:?} is not a duration", args.batch_timeout))?;
    let overload_burst = match args.overload_burst {
        0 => (args.batch_bytes as usize / (args.record_bytes + 70)).max(1),
        n => n,
    };
    Ok(Settings {
        budget_bytes,
        allowance_bytes,
        batch_timeout,
        overload_burst,
    })
}

/// Sleeps until `at` (no-op if it has passed).
fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// Joins the threads that finish before `deadline`; returns their results and how many
/// did not finish in time or panicked.
fn join_until<T>(handles: Vec<JoinHandle<T>>, deadline: Instant) -> (Vec<T>, usize) {
    let mut pending = handles;
    let mut done = Vec::new();
    let mut lost = 0;
    loop {
        let (finished, rest): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(JoinHandle::is_finished);
        for h in finished {
            match h.join() {
                Ok(v) => done.push(v),
                Err(_) => lost += 1,
            }
        }
        pending = rest;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    (done, lost + pending.len())
}

/// CPU utilisation (100 = one core) between two samples of clock ticks.
fn cpu_percent(prev: Option<u64>, now: Option<u64>, secs: f64) -> Option<f64> {
    let (a, b) = (prev?, now?);
    (secs > 0.0).then_some(b.saturating_sub(a) as f64 / CLOCK_TICKS_PER_SEC / secs * 100.0)
}

fn run(args: &OverloadArgs) -> Result<bool> {
    let cfg = settings(args)?;

    // --- broker ----------------------------------------------------------------------
    let mut server = None;
    let mut server_pid = args.server_pid;
    let mut metrics_addr = args.metrics_addr.clone();
    let bootstrap = match &args.spawn {
        Some(path) => {
            let mut extra_args = Vec::new();
            if let Some(limit) = cfg.budget_bytes {
                extra_args.push(format!("--memory-limit={limit}"));
            }
            extra_args.extend(args.server_args.iter().cloned());
            let (srv, kafka, http) = Server::spawn(&SpawnOptions {
                path: path.clone(),
                batch_timeout: args.batch_timeout.clone(),
                bucket_url: args.bucket_url.clone(),
                extra_args,
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
            server_pid = Some(srv.pid);
            metrics_addr = metrics_addr.or(http);
            server = Some(srv);
            kafka
        }
        None => args.bootstrap.clone(),
    };
    if args
        .bucket_url
        .as_deref()
        .is_some_and(|u| u.starts_with("memory:"))
    {
        eprintln!(
            "warning: with a memory:// bucket every produced byte stays in the agent's memory; \
             its RSS grows with the data and the memory criterion is not meaningful"
        );
    }
    let sampler = server_pid.map(|pid| RssSampler::start(pid, Duration::from_millis(100)));
    let scraper = metrics_addr.map(|a| Scraper::start(a, Duration::from_secs(1)));

    // --- topic -----------------------------------------------------------------------
    let topic = args.topic.clone().unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("sluice-overload-{secs}-{}", std::process::id())
    });
    create_topic(&bootstrap, &topic, args.partitions, Duration::from_secs(30))?;
    {
        let probe: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("client.id", "sluice-overload-probe")
            .create()
            .context("creating the metadata client")?;
        wait_for_topic(
            probe.client(),
            &topic,
            args.partitions,
            Duration::from_secs(30),
        )?;
    }
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    eprintln!(
        "bootstrap={bootstrap} topic={topic} partitions={} record-bytes={} normal-producers={} \
         overload-producers={} fetchers={} factor={} librdkafka={librdkafka_version}",
        args.partitions,
        args.record_bytes,
        args.normal_producers,
        args.overload_producers,
        args.fetchers,
        args.overload_factor
    );

    // --- load ------------------------------------------------------------------------
    let total_secs = args.normal_secs + args.overload_secs + args.recovery_secs;
    let drain = Duration::from_secs(args.drain_timeout_secs);
    let base = Instant::now();
    // No load thread outlives this, whatever happens to the main loop.
    let hard_deadline = base + Duration::from_secs(total_secs) + drain + Duration::from_secs(30);
    let payloads = Arc::new(Payloads::new(args.record_bytes));
    let normal_stats = Arc::new(GroupStats::default());
    let overload_stats = Arc::new(GroupStats::default());
    let fetch_stats = Arc::new(FetchStats::default());
    let normal_stop = Arc::new(AtomicBool::new(false));
    let overload_stop = Arc::new(AtomicBool::new(false));
    let fetch_stop = Arc::new(AtomicBool::new(false));
    // Record latency above the client-side message timeout is impossible; keep it bounded.
    let message_timeout = Duration::from_secs(120);

    let producer_plan = |id: u32, label: &'static str| ProducerPlan {
        id,
        label,
        bootstrap: bootstrap.clone(),
        topic: topic.clone(),
        partitions: args.partitions,
        rate: None,
        schedule_start: base,
        burst: args.normal_burst,
        linger_ms: args.normal_linger_ms,
        batch_bytes: args.batch_bytes,
        queue_kib: args.normal_queue_mib.saturating_mul(1024),
        purge_on_stop: false,
        drain_timeout: drain,
        message_timeout,
        hard_deadline,
    };

    let mut normal_handles = Vec::new();
    for id in 0..args.normal_producers {
        let shared = ProducerShared {
            base,
            payloads: Arc::clone(&payloads),
            group: Arc::clone(&normal_stats),
            stop: Arc::clone(&normal_stop),
        };
        normal_handles.push(
            spawn_producer(producer_plan(id, "normal"), shared)
                .context("starting a producer thread")?,
        );
    }
    let mut overload_handles: Vec<JoinHandle<ProducerOutcome>> = Vec::new();
    let mut fetch_handles: Vec<JoinHandle<FetcherOutcome>> = Vec::new();

    let mut report = Report::new(args, &cfg, &topic, &bootstrap);
    report.print_header();
    let t0 = Instant::now();
    let mut prev_tick = t0;
    let mut cpu_prev = (
        server_pid.and_then(|p| cpu_ticks(&p.to_string())),
        cpu_ticks("self"),
    );
    if let Some(s) = &sampler {
        s.stats.begin_phase();
    }
    let mut server_exit = None;
    let mut load_problems: Vec<String> = Vec::new();
    let overload_start = args.normal_secs;
    let overload_end = args.normal_secs + args.overload_secs;

    for tick in 1..=total_secs {
        sleep_until(t0 + Duration::from_secs(tick));
        let now = Instant::now();
        let secs = now.duration_since(prev_tick).as_secs_f64();
        prev_tick = now;
        let cpu_now = (
            server_pid.and_then(|p| cpu_ticks(&p.to_string())),
            cpu_ticks("self"),
        );
        let rss_kb = sampler.as_ref().and_then(|s| {
            let peak = s.stats.end_phase();
            s.stats.begin_phase();
            peak
        });
        let row = Row {
            t: tick,
            phase: if tick <= overload_start {
                Phase::Normal
            } else if tick <= overload_end {
                Phase::Overload
            } else {
                Phase::Recovery
            },
            secs,
            normal: normal_stats.take(),
            overload: overload_stats.take(),
            fetch: fetch_stats.take(),
            rss_kb,
            server_cpu: cpu_percent(cpu_prev.0, cpu_now.0, secs),
            bench_cpu: cpu_percent(cpu_prev.1, cpu_now.1, secs),
            gauges: scraper
                .as_ref()
                .and_then(|s| s.latest(Duration::from_millis(2500))),
        };
        cpu_prev = cpu_now;
        report.print_row(&row);
        report.rows.push(row);

        if let Some(srv) = server.as_mut() {
            if let Some(status) = srv.exited() {
                eprintln!("the server exited during the benchmark ({status})");
                srv.print_tail();
                server_exit = Some(status);
                break;
            }
        }

        if tick == overload_start {
            let peak = report.peak();
            if peak.records_per_sec <= 0.0 {
                load_problems.push(
                    "no records were acknowledged during the normal phase: nothing to overload"
                        .to_string(),
                );
                break;
            }
            let offered_total = args.overload_factor * peak.records_per_sec;
            let per_producer = offered_total / f64::from(args.overload_producers.max(1));
            eprintln!(
                "peak {:.1} MB/s ({:.0} records/s); overload: {} producers at {:.0} records/s each \
                 (offered {:.1} MB/s), {} fetchers",
                peak.mb_per_sec,
                peak.records_per_sec,
                args.overload_producers,
                per_producer,
                offered_total * args.record_bytes as f64 / 1e6,
                args.fetchers
            );
            for i in 0..args.overload_producers {
                let mut plan = producer_plan(args.normal_producers + i, "overload");
                plan.rate = Some(per_producer);
                plan.schedule_start = now;
                plan.burst = cfg.overload_burst;
                plan.linger_ms = args.overload_linger_ms;
                plan.queue_kib = args.overload_queue_mib.saturating_mul(1024);
                plan.purge_on_stop = true;
                let shared = ProducerShared {
                    base,
                    payloads: Arc::clone(&payloads),
                    group: Arc::clone(&overload_stats),
                    stop: Arc::clone(&overload_stop),
                };
                match spawn_producer(plan, shared) {
                    Ok(h) => overload_handles.push(h),
                    Err(e) => load_problems.push(format!("starting an overload producer: {e}")),
                }
            }
            for id in 0..args.fetchers {
                let plan = FetcherPlan {
                    id,
                    bootstrap: bootstrap.clone(),
                    topic: topic.clone(),
                    partitions: args.partitions,
                    fetch_max_bytes: args.fetch_max_bytes,
                    partition_fetch_bytes: args.partition_fetch_bytes,
                    queue_kib: args.fetch_queue_mib.saturating_mul(1024),
                    hard_deadline,
                };
                match spawn_fetcher(plan, Arc::clone(&fetch_stop), Arc::clone(&fetch_stats)) {
                    Ok(h) => fetch_handles.push(h),
                    Err(e) => load_problems.push(format!("starting a fetcher: {e}")),
                }
            }
        }
        if tick == overload_end {
            // Drop the load: overload producers purge their client queues and stop.
            overload_stop.store(true, Ordering::Relaxed);
            fetch_stop.store(true, Ordering::Relaxed);
        }
    }

    // --- stop the load ---------------------------------------------------------------
    overload_stop.store(true, Ordering::Relaxed);
    fetch_stop.store(true, Ordering::Relaxed);
    normal_stop.store(true, Ordering::Relaxed);
    eprintln!("stopping the load (waiting up to {drain:?} for in-flight records)");
    let join_deadline = Instant::now() + drain + Duration::from_secs(15);
    let mut outcomes = Vec::new();
    for (what, handles) in [("normal", normal_handles), ("overload", overload_handles)] {
        let (done, lost) = join_until(handles, join_deadline);
        if lost > 0 {
            load_problems.push(format!(
                "{lost} {what} producer threads did not finish (their acknowledgements are not verified)"
            ));
        }
        outcomes.extend(done);
    }
    let (fetchers_done, fetchers_lost) = join_until(fetch_handles, join_deadline);
    if fetchers_lost > 0 {
        load_problems.push(format!("{fetchers_lost} fetcher threads did not finish"));
    }
    // Deliveries reported after the last row.
    let mut tail = GroupWindow::default();
    tail.add(&normal_stats.take());
    tail.add(&overload_stats.take());
    report.tail = tail;
    report.group_errors = [normal_stats.first_errors(), overload_stats.first_errors()].concat();
    report.fetch_tail = fetch_stats.take();
    for o in &outcomes {
        if let Some(p) = &o.problem {
            load_problems.push(p.clone());
        }
        report.bad_reports += o.bad_reports;
        report.client_errors += o.client_errors;
    }
    for f in &fetchers_done {
        if let Some(p) = &f.problem {
            load_problems.push(p.clone());
        }
        report.client_errors += f.client_errors;
    }
    report.load_problems = load_problems;
    report.server_exit = server_exit.clone();

    // --- verify ----------------------------------------------------------------------
    let index = AckIndex::build(
        args.partitions as usize,
        outcomes.into_iter().map(|o| o.acks),
    );
    eprintln!(
        "verify: {} acknowledged records in {} runs; reading the topic back",
        index.total,
        index.run_count()
    );
    if server_exit.is_none() {
        match verify::verify(
            &bootstrap,
            &topic,
            &index,
            &payloads,
            Duration::from_secs(args.verify_timeout_secs),
        ) {
            Ok(v) => report.verify = Some(v),
            Err(e) => report
                .load_problems
                .push(format!("verify failed to run: {e:#}")),
        }
    }
    report.double_acks = index.double_acks;
    report.double_ack_details = index.details.clone();

    if let Some(srv) = server.as_mut() {
        if let Some(status) = srv.exited() {
            if report.server_exit.is_none() {
                srv.print_tail();
                report.server_exit = Some(status);
            }
        }
    }
    drop(scraper);
    report.rss = sampler.map(RssSampler::finish);
    let passed = report.print_summary();
    if let Some(mut srv) = server {
        srv.stop();
    }
    Ok(passed)
}
