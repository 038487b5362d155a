//! The consumers of the kill test: one group of `--consumers` members, each an rdkafka
//! `BaseConsumer` on its own thread, bootstrapped at a different agent, subscribed to the
//! topic with the eager round-robin assignor and manual commits, each writing its own
//! history.
//!
//! # History
//! - `assign` from the rebalance callback, with the member's whole new assignment;
//! - `poll` for every record `poll` returns;
//! - `commit` from the commit callback, for the partitions the broker confirmed.
//!
//! What is committed is chosen by the member: after writing a record's `poll` it stores the
//! record's offset (`enable.auto.offset.store=false`, `store_offset_from_message`), and
//! librdkafka commits the stored offsets of the current assignment every 100 ms on its own
//! thread (`enable.auto.commit=true`, `auto.commit.interval.ms=100`); it also commits them
//! before a revocation and drops them for revoked partitions, so a member never commits a
//! partition it no longer holds. Results arrive through `commit_callback` during `poll`.
//!
//! Why not commits from the polling thread: rust-rdkafka 0.38 submits manual asynchronous
//! commits without a reply queue, so `commit_callback` never fires for them
//! (fede1024/rust-rdkafka#856); and a synchronous commit blocks `poll` while the coordinator
//! is gone, which also blocks the rebalance callback the new coordinator waits for, so the
//! commit waits until `session.timeout.ms` runs out: a stall of about 11 s after every
//! coordinator kill that measures the driver, not the broker.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
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

struct Ctx {
    name: String,
    group: String,
    topic: String,
    history: Arc<History>,
    counters: Arc<Counters>,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    assignments: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Ctx {
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
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => self.note_error(format!("rebalance error: {e}")),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // A failed request may still have committed some partitions: write none.
            if !matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::NoOffset)) {
                self.commit_errors.fetch_add(1, Ordering::Relaxed);
            }
            // Expected while the coordinator moves or the group rebalances.
            if !matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::NoOffset
                        | RDKafkaErrorCode::NotCoordinator
                        | RDKafkaErrorCode::RebalanceInProgress
                        | RDKafkaErrorCode::IllegalGeneration
                        | RDKafkaErrorCode::UnknownMemberId
                        | RDKafkaErrorCode::CoordinatorNotAvailable
                        | RDKafkaErrorCode::CoordinatorLoadInProgress
                        | RDKafkaErrorCode::OperationTimedOut
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::BrokerTransportFailure
                )
            ) {
                self.note_error(format!("commit failed: {e}"));
            }
            return;
        }
        for e in offsets.elements_for_topic(&self.topic) {
            let (Ok(()), Offset::Offset(next)) = (e.error(), e.offset()) else {
                continue;
            };
            self.commits.fetch_add(1, Ordering::Relaxed);
            Counters::add(&self.counters.commits);
            if let Err(err) =
                self.history
                    .commit(&self.name, &self.group, &self.topic, e.partition(), next)
            {
                history_error(&self.counters, &self.name, &err);
            }
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
        commits: AtomicU64::new(0),
        commit_errors: AtomicU64::new(0),
        assignments: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    };
    let consumer: BaseConsumer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &cfg.group)
        .set("client.id", format!("kill-test-{name}"))
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            COMMIT_EVERY.as_millis().to_string(),
        )
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
                        // The record is processed: its offset may be committed.
                        if let Err(e) = consumer.store_offset_from_message(&msg) {
                            consumer
                                .context()
                                .note_error(format!("storing offset {offset} of {partition}: {e}"));
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
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    last_flush = Instant::now();
                    if let Err(e) = history.flush() {
                        history_error(&counters, &thread_name, &e);
                    }
                }
            }
            // Serve the results of the last automatic commits.
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                consumer.poll(Duration::from_millis(50));
            }
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
