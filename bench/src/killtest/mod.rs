//! `sluice-bench kill-test`: several agents on one database and one bucket, producers and a
//! consumer group working against them, agents killed with SIGKILL and started again; every
//! client writes a history, which the checker of [`crate::history`] judges at the end.
//!
//! Modules: `cluster` (the agents: start, kill, restart), `probe` (raw Metadata and
//! FindCoordinator to one chosen agent), `producer` and `consumer` (the clients and their
//! histories), `watch` (what the clients report live: counters, first ack/poll after a
//! kill), `scenario` (whom to kill and when, the measurements around a kill), `final_read`
//! (every partition read back at the end), `report` (timings, bounds, printing).
//!
//! # A run
//! 1. start `--agents` agents (node ids 1..N, racks z1..zN, own data dirs) and wait until
//!    each one's Metadata lists all of them; create the topic;
//! 2. start the group's members (bootstrapped at different agents), then the producers;
//!    wait until records are acked and polled;
//! 3. `--kills` kills spaced evenly over `--duration`, each followed by a restart after
//!    `--restart-after` and the measurements of [`report`];
//! 4. stop the producers (waiting for their outstanding deliveries), let the group catch
//!    up to the high watermarks (bounded), stop it;
//! 5. read every partition back through a live agent, run the checker, print its report,
//!    the timings and a summary line.
//!
//! Exit 0 when the checker found no violation and every timing bound held, 1 otherwise
//! (also when the run could not be carried out). Every wait is bounded.

mod cluster;
mod consumer;
mod final_read;
mod probe;
mod producer;
mod report;
mod scenario;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use self::cluster::{Cluster, ClusterConfig};
use self::report::Bounds;
use self::scenario::{Plan, Rng};
use self::watch::{Counters, Watch};
use crate::history::{check, Input};
use crate::util::parse_duration;

/// Whom to kill.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// The group's coordinator (as FindCoordinator names it).
    Coordinator,
    /// An agent leading partitions the producers write; not the coordinator when another
    /// leader can be chosen.
    Producer,
    /// Any live agent.
    Random,
}

#[derive(clap::Args, Debug)]
pub(crate) struct KillTestArgs {
    /// The `sluice` binary [default: `sluice` next to this program, else target/debug/sluice].
    #[arg(long, value_name = "PATH")]
    sluice: Option<PathBuf>,

    /// Number of agents (at least 2: one must survive each kill).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=32))]
    agents: u32,

    /// Metadata database shared by the agents [default: a SQLite file in the run's temp dir].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// Bucket shared by the agents [default: a file:// folder in the run's temp dir]. An
    /// s3:// URL without a key prefix gets a unique one (runs sharing a bucket stay apart).
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,

    /// Whom to kill.
    #[arg(long, value_enum, default_value = "coordinator")]
    scenario: Scenario,

    /// Number of kills, spaced evenly over --duration.
    #[arg(long, default_value_t = 1)]
    kills: u32,

    /// Total time of the workload (e.g. 40s, 5m) [default: 20s x (kills + 1)].
    #[arg(long, value_parser = duration_arg)]
    duration: Option<Duration>,

    /// --agent-session-timeout passed to the agents.
    #[arg(long, default_value = "3s", value_parser = duration_text)]
    session_timeout: String,

    /// Partitions of the test topic.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,

    /// Number of producers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    producers: u32,

    /// Members of the consumer group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    consumers: u32,

    /// Records per second per producer.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    rate: u64,

    /// Folder for the history files (and copies of the agents' logs) [default: the run's temp dir].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// --batch-timeout passed to the agents.
    #[arg(long, default_value = "20ms", value_parser = duration_text)]
    batch_timeout: String,

    /// Delay between a kill and the restart of the killed agent (same flags, data dir and
    /// node id).
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    restart_after: Duration,

    /// Seed of the victim choice (random scenario, or several candidates) [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,

    /// Keep the agents' data (database, bucket folder) of a passing run; a failing run
    /// always keeps it.
    #[arg(long)]
    keep_data: bool,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("not a duration: {s:?} (e.g. 500ms, 3s, 5m)"))
}

/// Checks a duration but keeps its text, to pass it on to the agents as given.
fn duration_text(s: &str) -> Result<String, String> {
    duration_arg(s).map(|_| s.to_string())
}

/// Wall clock in ms since the Unix epoch (the histories' `ts_ms`).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A history line could not be written: counted (the run fails), the first few printed.
pub(crate) fn history_error(counters: &Counters, client: &str, e: &std::io::Error) {
    let n = counters.history_errors.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 5 {
        eprintln!("kill-test: {client}: writing the history failed: {e}");
    }
}

/// `s3://BUCKET?query` gets the key prefix `prefix`; a URL that has one, or is no S3 URL,
/// is kept.
pub(crate) fn with_unique_prefix(url: &str, prefix: &str) -> String {
    let Some(rest) = url.strip_prefix("s3://") else {
        return url.to_string();
    };
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (bucket, path) = base.split_once('/').unwrap_or((base, ""));
    if !path.trim_matches('/').is_empty() {
        return url.to_string();
    }
    match query {
        Some(q) => format!("s3://{bucket}/{prefix}?{q}"),
        None => format!("s3://{bucket}/{prefix}"),
    }
}

fn default_sluice() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sluice")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/debug/sluice"))
}

pub(crate) fn main(args: &KillTestArgs) -> ExitCode {
    match run(args) {
        Ok(failures) if failures.is_empty() => {
            println!("kill-test: PASSED");
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            println!("kill-test: FAILED");
            for f in &failures {
                println!("  - {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("sluice-bench kill-test: error: {e:#}");
            println!("kill-test: FAILED (the run could not be carried out: {e:#})");
            ExitCode::from(1)
        }
    }
}

/// Sets the flag when dropped, so that an early return stops the client threads.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The run; `Ok` holds the failures (empty: passed).
fn run(args: &KillTestArgs) -> Result<Vec<String>> {
    let sluice = args.sluice.clone().unwrap_or_else(default_sluice);
    if !sluice.is_file() {
        bail!(
            "no sluice binary at {} (build it with `cargo build -p sluice` or pass --sluice)",
            sluice.display()
        );
    }
    let session_timeout =
        parse_duration(&args.session_timeout).ok_or_else(|| anyhow!("bad --session-timeout"))?;
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(20) * (args.kills + 1));
    if duration < Duration::from_secs(5) {
        bail!("--duration must be at least 5s");
    }
    let stamp = format!(
        "{}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        std::process::id()
    );
    let run_dir = std::env::temp_dir().join(format!("sluice-kill-{stamp}"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let out = args.out.clone().unwrap_or_else(|| run_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", run_dir.join("meta.db").display()));
    let bucket_url = match &args.bucket_url {
        Some(url) => with_unique_prefix(url, &format!("kill-{stamp}")),
        None => format!("file://{}", run_dir.join("bucket").display()),
    };
    let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
    let topic = format!("kill-{stamp}");
    let group = format!("kill-group-{stamp}");
    eprintln!(
        "kill-test: scenario={:?} kills={} duration={:.0}s agents={} partitions={} producers={} rate={}/s consumers={} session-timeout={} batch-timeout={} restart-after={:?} seed={seed}",
        args.scenario,
        args.kills,
        duration.as_secs_f64(),
        args.agents,
        args.partitions,
        args.producers,
        args.rate,
        args.consumers,
        args.session_timeout,
        args.batch_timeout,
        args.restart_after,
    );
    eprintln!(
        "kill-test: database={} bucket={} run dir={}",
        redact(&database_url),
        bucket_url.split('?').next().unwrap_or(&bucket_url),
        run_dir.display()
    );

    let mut cluster = Cluster::start(&ClusterConfig {
        sluice,
        agents: args.agents as usize,
        database_url,
        bucket_url,
        session_timeout: args.session_timeout.clone(),
        batch_timeout: args.batch_timeout.clone(),
        run_dir: run_dir.clone(),
    })?;
    let outcome = drive(
        args,
        &mut cluster,
        &out,
        &topic,
        &group,
        duration,
        session_timeout,
        seed,
    );
    let crashed = cluster.crashed();
    cluster.stop();
    let mut failures = crashed;
    let passed = match &outcome {
        Ok(f) => f.is_empty() && failures.is_empty(),
        Err(_) => false,
    };
    // The agents' logs go with the histories.
    for (i, a) in cluster.agents.iter().enumerate() {
        if out != run_dir {
            let to = out.join(format!("agent{}.log", i + 1));
            if let Err(e) = std::fs::copy(&a.log_file, &to) {
                eprintln!("kill-test: copying {}: {e}", a.log_file.display());
            }
        }
    }
    if passed && !args.keep_data {
        for a in &cluster.agents {
            if out == run_dir {
                // Keep the log next to the histories; drop the rest of the data dir.
                remove_all_but(&a.data_dir, &a.log_file);
            } else {
                let _ = std::fs::remove_dir_all(&a.data_dir);
            }
        }
        let _ = std::fs::remove_dir_all(run_dir.join("bucket"));
        for f in ["meta.db", "meta.db-wal", "meta.db-shm"] {
            let _ = std::fs::remove_file(run_dir.join(f));
        }
        if out != run_dir {
            let _ = std::fs::remove_dir(&run_dir);
        }
    } else {
        eprintln!("kill-test: agents' data kept in {}", run_dir.display());
    }
    let mut result = outcome?;
    result.append(&mut failures);
    Ok(result)
}

fn remove_all_but(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == keep {
            continue;
        }
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

/// The database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Clients, kills, the end of the run, the check. `Ok` holds the failures.
#[allow(clippy::too_many_arguments)]
fn drive(
    args: &KillTestArgs,
    cluster: &mut Cluster,
    out: &Path,
    topic: &str,
    group: &str,
    duration: Duration,
    session_timeout: Duration,
    seed: u64,
) -> Result<Vec<String>> {
    crate::topic::create_topic(
        &cluster.bootstrap(),
        topic,
        args.partitions,
        Duration::from_secs(30),
    )?;
    let watch = Arc::new(Watch::new(
        args.producers as usize,
        args.partitions as usize,
    ));
    let counters = Arc::new(Counters::default());

    // The group first, so that it has formed when the first records arrive.
    let consumers_stop = Arc::new(AtomicBool::new(false));
    let _consumers_guard = StopOnDrop(Arc::clone(&consumers_stop));
    let ccfg = consumer::ConsumerConfig {
        topic: topic.to_string(),
        group: group.to_string(),
    };
    let mut consumers = Vec::new();
    for i in 0..args.consumers as usize {
        let at = &cluster.agents[i % cluster.agents.len()].kafka;
        consumers.push(consumer::start(
            i,
            at,
            &ccfg,
            out,
            Arc::clone(&watch),
            Arc::clone(&counters),
            Arc::clone(&consumers_stop),
        )?);
    }
    let producers_stop = Arc::new(AtomicBool::new(false));
    let _producers_guard = StopOnDrop(Arc::clone(&producers_stop));
    let pcfg = producer::ProducerConfig {
        bootstrap: cluster.bootstrap(),
        topic: topic.to_string(),
        partitions: args.partitions,
        rate: args.rate,
    };
    let mut producers = Vec::new();
    for i in 0..args.producers as usize {
        producers.push(producer::start(
            i,
            &pcfg,
            out,
            Arc::clone(&watch),
            Arc::clone(&counters),
            Arc::clone(&producers_stop),
        )?);
    }
    let start = Instant::now();
    let progress_stop = Arc::new(AtomicBool::new(false));
    let _progress_guard = StopOnDrop(Arc::clone(&progress_stop));
    let progress = spawn_progress(Arc::clone(&counters), Arc::clone(&progress_stop), start)?;

    // Healthy before the first kill: records acked and polled.
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    while Counters::get(&counters.acked) == 0 || Counters::get(&counters.polled) == 0 {
        if Instant::now() > warm_deadline {
            bail!(
                "no record acked and polled within 60s of the start (acked {}, polled {}): the cluster is not working before any kill",
                Counters::get(&counters.acked),
                Counters::get(&counters.polled)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }

    let bounds = Bounds::new(session_timeout);
    let plan = Plan {
        scenario: args.scenario,
        kills: args.kills,
        duration,
        restart_after: args.restart_after,
        session_timeout,
        bounds: &bounds,
        topic,
        group,
    };
    let mut rng = Rng::new(seed);
    let kills = scenario::run(cluster, &watch, &plan, &mut rng, start)?;

    // --- the end ------------------------------------------------------------------------
    eprintln!("kill-test: stopping the producers (waiting for outstanding deliveries)");
    producers_stop.store(true, Ordering::Relaxed);
    let producer_summaries = join_all(producers)?;
    let reader_at = cluster
        .survivor(None)
        .ok_or_else(|| anyhow!("no live agent at the end"))?
        .kafka
        .clone();
    let high = final_read::high_watermarks(&reader_at, topic, args.partitions)?;
    let caught_up = wait_caught_up(&watch, &high, Duration::from_secs(30));
    eprintln!(
        "kill-test: the group {} the high watermarks {high:?}; stopping it",
        if caught_up {
            "reached"
        } else {
            "did NOT reach (within 30s)"
        }
    );
    consumers_stop.store(true, Ordering::Relaxed);
    let consumer_summaries = join_all(consumers)?;
    progress_stop.store(true, Ordering::Relaxed);
    let _ = progress.join();

    eprintln!("kill-test: final read of every partition through {reader_at}");
    let read = final_read::run(&reader_at, topic, args.partitions, out)?;

    // --- the check ---------------------------------------------------------------------
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend((1..=args.producers).map(|i| out.join(format!("p{i}.jsonl"))));
    files.extend((1..=args.consumers).map(|i| out.join(format!("c{i}.jsonl"))));
    files.push(out.join("read.jsonl"));
    let input = Input::read_files(&files)?;
    let report = check(&input);
    println!();
    println!("=== kill-test history check ===");
    print!("{report}");
    println!();
    println!("=== kill-test clients ===");
    for p in &producer_summaries {
        println!(
            "{}: sent {} acked {} acked-without-offset {} definite-failures {} delivery-errors {} unfinished {}",
            p.name, p.sent, p.acked, p.acked_without_offset, p.definite_failures, p.delivery_errors, p.unfinished
        );
        for e in &p.first_errors {
            println!("    {e}");
        }
    }
    for c in &consumer_summaries {
        println!(
            "{}: polled {} commits {} commit-errors {} assignments {} poll-errors {}",
            c.name, c.polled, c.commits, c.commit_errors, c.assignments, c.poll_errors
        );
        for e in &c.first_errors {
            println!("    {e}");
        }
    }
    println!(
        "final read: {} records, high watermarks {:?}, {} offsets skipped",
        read.records, read.high_watermarks, read.gaps
    );
    println!();
    println!("=== kill-test timings (since each SIGKILL) ===");
    for k in &kills {
        println!("{}", k.line());
    }
    println!("{}", report::timing_summary(&kills));

    let mut failures = Vec::new();
    if report.violations() > 0 {
        failures.push(format!(
            "the history check found {} violation(s)",
            report.violations()
        ));
    }
    failures.extend(kills.iter().flat_map(|k| k.failures(&bounds)));
    let history_errors = Counters::get(&counters.history_errors);
    if history_errors > 0 {
        failures.push(format!(
            "{history_errors} history lines could not be written"
        ));
    }
    let unfinished: i32 = producer_summaries.iter().map(|p| p.unfinished).sum();
    if unfinished > 0 {
        failures.push(format!(
            "{unfinished} deliveries still outstanding after the producers' final flush"
        ));
    }
    let t = &report.totals;
    println!();
    println!(
        "kill-test summary: scenario={:?} sent={} acked={} indeterminate={} failed={} polled={} final-read={} commits={} kills={} violations={} bound-failures={}",
        args.scenario,
        t.sent,
        t.acked,
        t.indeterminate,
        t.failed,
        t.polled,
        t.read,
        t.commits,
        kills.len(),
        report.violations(),
        kills.iter().map(|k| k.failures(&bounds).len()).sum::<usize>(),
    );
    println!(
        "kill-test: histories in {} (check again: sluice-bench check-history {}/p*.jsonl {}/c*.jsonl {}/read.jsonl)",
        out.display(),
        out.display(),
        out.display(),
        out.display()
    );
    Ok(failures)
}

/// How long the end of the run waits for a client thread to finish (a producer's flush is
/// bounded by 75 s).
const CLIENT_STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// Joins client threads, each within `CLIENT_STOP_TIMEOUT`; a panicked or stuck one is an
/// error (a stuck thread is left behind: librdkafka gives no way to interrupt it).
fn join_all<T>(handles: Vec<(String, JoinHandle<T>)>) -> Result<Vec<T>> {
    let deadline = Instant::now() + CLIENT_STOP_TIMEOUT;
    let mut out = Vec::with_capacity(handles.len());
    for (name, h) in handles {
        while !h.is_finished() {
            if Instant::now() > deadline {
                bail!("client {name} did not stop within {CLIENT_STOP_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
        out.push(h.join().map_err(|_| anyhow!("client {name} panicked"))?);
    }
    Ok(out)
}

/// Waits until the group polled up to `high` on every partition.
fn wait_caught_up(watch: &Watch, high: &[i64], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let next = watch.polled_next();
        if next.iter().zip(high).all(|(n, h)| n >= h) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A line of counts every 5 s.
fn spawn_progress(
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    start: Instant,
) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("kill-progress".into())
        .spawn(move || {
            let mut next = start + Duration::from_secs(5);
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
                next += Duration::from_secs(5);
                let c = &counters;
                eprintln!(
                    "kill-test: {:>4.0}s sent={} acked={} delivery-errors={} polled={} commits={} assignments={}",
                    start.elapsed().as_secs_f64(),
                    Counters::get(&c.sent),
                    Counters::get(&c.acked),
                    Counters::get(&c.delivery_errors),
                    Counters::get(&c.polled),
                    Counters::get(&c.commits),
                    Counters::get(&c.rebalances),
                );
            }
        })
        .context("spawning the progress thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_get_a_unique_prefix_when_they_have_none() {
        let q = "endpoint=http://127.0.0.1:9000&region=us-east-1";
        assert_eq!(
            with_unique_prefix(&format!("s3://b?{q}"), "kill-1"),
            format!("s3://b/kill-1?{q}")
        );
        assert_eq!(with_unique_prefix("s3://b", "kill-1"), "s3://b/kill-1");
        assert_eq!(
            with_unique_prefix("s3://b/?x=1", "kill-1"),
            "s3://b/kill-1?x=1"
        );
        assert_eq!(
            with_unique_prefix(&format!("s3://b/mine?{q}"), "kill-1"),
            format!("s3://b/mine?{q}")
        );
        assert_eq!(
            with_unique_prefix("file:///tmp/x", "kill-1"),
            "file:///tmp/x"
        );
    }

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://postgres:secret@127.0.0.1:5432/db"),
            "postgres://postgres:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("sqlite:///tmp/meta.db"), "sqlite:///tmp/meta.db");
    }

    #[test]
    fn durations_keep_their_text() {
        assert_eq!(duration_text("3s").unwrap(), "3s");
        assert!(duration_text("soon").is_err());
    }
}
