//! The consumers of the kill test: one group of `--consumers` members, each an rdkafka
//! `BaseConsumer` on its own thread, bootstrapped at a different agent, subscribed to the
//! topic with the eager round-robin assignor and manual commits, each writing its own
//! history.
//!
//! # History
//! - `assign` from the rebalance callback, with the member's whole new assignment;
//! - `poll` for every record `poll` returns;
//! - `commit` only after the broker confirmed the commit (every partition of it).
//!
//! About every 100 ms a member commits, synchronously and on its polling thread, the next
//! offset after the last record it polled on each partition it holds. A revocation or a new
//! assignment forgets the positions, so a member never commits a partition it no longer
//! holds (the coordinator would take it: Kafka does not check which member owns what), and
//! since rebalance callbacks run inside `poll` on the same thread, no rebalance can come
//! between reading the positions and committing them.
//!
//! Why not asynchronous commits and the commit callback: rust-rdkafka 0.38 submits manual
//! asynchronous commits without a reply queue, so `ConsumerContext::commit_callback` never
//! fires for them (fede1024/rust-rdkafka#856). A synchronous commit is bounded: librdkafka
//! gives up on a commit waiting for a coordinator after `session.timeout.ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::watch::{Counters, Watch};
use super::{history_error, now_ms};
use crate::history::History;

const COMMIT_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct ConsumerConfig {
    pub(crate) topic: String,
    pub(crate) group: String,
}

#[derive(Debug, Default)]
pub(crate) struct ConsumerSummary {
    pub(crate) name: String,
    pub(crate) polled: u64,
    pub(crate) commits: u64,
    pub(crate) commit_errors: u64,
    pub(crate) assignments: u64,
    pub(crate) poll_errors: u64,
    pub(crate) first_errors: Vec<String>,
}

/// The member's view of its assignment, touched by its callbacks and its poll loop (all on
/// the member's thread; the mutex only satisfies `&self` callbacks).
#[derive(Default)]
struct Track {
    assigned: BTreeSet<i32>,
    /// Next offset after the last polled record, per held partition.
    next: BTreeMap<i32, i64>,
    /// Last next offset the broker confirmed, per held partition.
    committed: BTreeMap<i32, i64>,
}

struct Ctx {
    name: String,
    group: String,
    topic: String,
    history: Arc<History>,
    counters: Arc<Counters>,
    track: Mutex<Track>,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    assignments: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Ctx {
    fn track(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_error(&self, text: String) {
        if let Ok(mut v) = self.first_errors.lock() {
            if v.len() < 5 {
                eprintln!("kill-test: {}: {text}", self.name);
                v.push(text);
            }
        }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        let mut v: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        v.sort_unstable();
        v
    }
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.note_error(format!("client error: {error}: {reason}"));
        }
    }
}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = self.partitions(tpl);
                {
                    let mut t = self.track();
                    t.assigned = partitions.iter().copied().collect();
                    t.next.clear();
                    t.committed.clear();
                }
                self.assignments.fetch_add(1, Ordering::Relaxed);
                Counters::add(&self.counters.rebalances);
                eprintln!(
                    "kill-test: {} assigned partitions {partitions:?}",
                    self.name
                );
                if let Err(e) =
                    self.history
                        .assign(&self.name, &self.group, &self.topic, &partitions)
                {
                    history_error(&self.counters, &self.name, &e);
                }
            }
            Rebalance::Revoke(_) => {
                let mut t = self.track();
                t.assigned.clear();
                t.next.clear();
                t.committed.clear();
            }
            Rebalance::Error(e) => self.note_error(format!("rebalance error: {e}")),
        }
    }
}

/// Starts member number `index` (0-based), named `c{index+1}`, bootstrapped at `bootstrap`,
/// writing `dir/c{n}.jsonl`. It runs until `stop` is set, then commits a last time.
pub(crate) fn start(
    index: usize,
    bootstrap: &str,
    cfg: &ConsumerConfig,
    dir: &Path,
    watch: Arc<Watch>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Result<(String, JoinHandle<ConsumerSummary>)> {
    let name = format!("c{}", index + 1);
    let path = dir.join(format!("{name}.jsonl"));
    let history =
        Arc::new(History::create(&path).with_context(|| format!("creating {}", path.display()))?);
    let ctx = Ctx {
        name: name.clone(),
        group: cfg.group.clone(),
        topic: cfg.topic.clone(),
        history: Arc::clone(&history),
        counters: Arc::clone(&counters),
        track: Mutex::new(Track::default()),
        commits: AtomicU64::new(0),
        commit_errors: AtomicU64::new(0),
        assignments: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    };
    let consumer: BaseConsumer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &cfg.group)
        .set("client.id", format!("kill-test-{name}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "roundrobin")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "30000")
        .set("fetch.wait.max.ms", "200")
        .create_with_context(ctx)
        .with_context(|| format!("creating consumer {name}"))?;
    consumer
        .subscribe(&[&cfg.topic])
        .with_context(|| format!("{name}: subscribing to {}", cfg.topic))?;
    let cfg_group = cfg.group.clone();
    let cfg_topic = cfg.topic.clone();
    let thread_name = name.clone();
    let handle = thread::Builder::new()
        .name(format!("kill-{name}"))
        .spawn(move || {
            let mut polled = 0u64;
            let mut poll_errors = 0u64;
            let mut last_commit = Instant::now();
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(msg)) => {
                        let now = now_ms();
                        let (partition, offset) = (msg.partition(), msg.offset());
                        let value = msg
                            .payload()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or_default();
                        let record_ms = msg.timestamp().to_millis().unwrap_or(0);
                        polled += 1;
                        Counters::add(&counters.polled);
                        if let Err(e) = history.poll(
                            &thread_name,
                            &cfg_group,
                            &cfg_topic,
                            partition,
                            offset,
                            &value,
                        ) {
                            history_error(&counters, &thread_name, &e);
                        }
                        watch.on_poll(partition, offset, record_ms, now);
                        let mut t = consumer.context().track();
                        if t.assigned.contains(&partition) {
                            t.next.insert(partition, offset + 1);
                        }
                    }
                    Some(Err(e)) => {
                        poll_errors += 1;
                        // Lost connections are expected while an agent is down.
                        if !matches!(
                            e.rdkafka_error_code(),
                            Some(
                                RDKafkaErrorCode::BrokerTransportFailure
                                    | RDKafkaErrorCode::AllBrokersDown
                            )
                        ) {
                            consumer.context().note_error(format!("poll: {e}"));
                        }
                    }
                    None => {}
                }
                if last_commit.elapsed() >= COMMIT_EVERY {
                    last_commit = Instant::now();
                    commit(&consumer);
                }
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    last_flush = Instant::now();
                    if let Err(e) = history.flush() {
                        history_error(&counters, &thread_name, &e);
                    }
                }
            }
            // A last commit of what was polled.
            commit(&consumer);
            consumer.unsubscribe();
            let ctx = consumer.context();
            let summary = ConsumerSummary {
                name: thread_name.clone(),
                polled,
                commits: ctx.commits.load(Ordering::Relaxed),
                commit_errors: ctx.commit_errors.load(Ordering::Relaxed),
                assignments: ctx.assignments.load(Ordering::Relaxed),
                poll_errors,
                first_errors: ctx
                    .first_errors
                    .lock()
                    .map(|v| v.clone())
                    .unwrap_or_default(),
            };
            drop(consumer);
            if let Err(e) = history.flush() {
                history_error(&counters, &thread_name, &e);
            }
            summary
        })
        .context("spawning a consumer thread")?;
    Ok((name, handle))
}

/// Commits (synchronously) the positions that moved since the last confirmed commit and
/// writes them to the history when the broker confirmed every partition. Returns whether
/// a commit was confirmed.
fn commit(consumer: &BaseConsumer<Ctx>) -> bool {
    let ctx = consumer.context();
    let mut tpl = TopicPartitionList::new();
    let mut moved = Vec::new();
    {
        let t = ctx.track();
        for (&partition, &next) in &t.next {
            if t.committed.get(&partition) != Some(&next) {
                moved.push((partition, next));
            }
        }
    }
    for &(partition, next) in &moved {
        if let Err(e) = tpl.add_partition_offset(&ctx.topic, partition, Offset::Offset(next)) {
            ctx.note_error(format!("building a commit: {e}"));
            return false;
        }
    }
    if moved.is_empty() {
        return false;
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        ctx.commit_errors.fetch_add(1, Ordering::Relaxed);
        // Expected while the coordinator moves or the group rebalances.
        if !matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::RebalanceInProgress
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::CoordinatorLoadInProgress
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
            )
        ) {
            ctx.note_error(format!("commit failed: {e}"));
        }
        return false;
    }
    {
        let mut t = ctx.track();
        for &(partition, next) in &moved {
            if t.assigned.contains(&partition) {
                t.committed.insert(partition, next);
            }
        }
    }
    for (partition, next) in moved {
        ctx.commits.fetch_add(1, Ordering::Relaxed);
        Counters::add(&ctx.counters.commits);
        if let Err(e) = ctx
            .history
            .commit(&ctx.name, &ctx.group, &ctx.topic, partition, next)
        {
            history_error(&ctx.counters, &ctx.name, &e);
        }
    }
    true
}
