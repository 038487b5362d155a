//! The producers of the kill test: each an idempotent rdkafka producer (`acks=all`,
//! bootstrap at every agent) on its own thread, sending unique values (`p1-000042`)
//! round-robin over the partitions at `--rate` records/s, and writing its own history.
//!
//! # History
//! `send` is written before the record is handed to the client, `ack` from the delivery
//! report (partition and offset as the broker assigned them). `fail` only when the record
//! surely never reached a broker: the client refused it (never enqueued), or the delivery
//! report carries a client-side error that librdkafka raises before sending (unknown
//! partition or topic, message too large). Anything else — a timeout, a lost connection, an
//! error after retries — leaves the send indeterminate: the broker may have written it.
//! A successful report without an offset (which librdkafka gives for a duplicate the broker
//! recognised) is counted but not written as an ack, since the checker needs the offset.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::watch::{Counters, Watch};
use super::{history_error, now_ms};
use crate::history::History;

/// How long a record may wait in the client (for a leader, retries) before it fails: long
/// enough that no kill fails a record.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the end of the run waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a send waits for room in a full client queue before the record is given up.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct ProducerConfig {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    /// Records per second.
    pub(crate) rate: u64,
}

/// What one producer did, for the summary.
#[derive(Debug, Default)]
pub(crate) struct ProducerSummary {
    pub(crate) name: String,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) acked_without_offset: u64,
    pub(crate) definite_failures: u64,
    pub(crate) delivery_errors: u64,
    /// Deliveries still outstanding after the final flush.
    pub(crate) unfinished: i32,
    pub(crate) first_errors: Vec<String>,
}

/// The value of record `seq` of producer `name`.
pub(crate) fn value_of(name: &str, seq: u64) -> String {
    format!("{name}-{seq:06}")
}

/// Errors of a delivery report that guarantee the record was not written: librdkafka
/// raises them locally, before any request carries the record.
fn definitely_not_written(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::MessageSizeTooLarge
    )
}

struct Ctx {
    name: String,
    index: usize,
    topic: String,
    history: Arc<History>,
    watch: Arc<Watch>,
    counters: Arc<Counters>,
    acked: AtomicU64,
    acked_without_offset: AtomicU64,
    definite_failures: AtomicU64,
    delivery_errors: AtomicU64,
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
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // Connection errors are expected while an agent is down; librdkafka retries.
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.note_error(format!("client error: {error}: {reason}"));
        }
    }
}

impl ProducerContext for Ctx {
    /// The record's sequence number within this producer.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let value = value_of(&self.name, seq as u64);
        match result {
            Ok(msg) if msg.offset() >= 0 => {
                let now = now_ms();
                self.acked.fetch_add(1, Ordering::Relaxed);
                Counters::add(&self.counters.acked);
                self.watch.on_ack(self.index, msg.partition(), now);
                if let Err(e) = self.history.ack(
                    &self.name,
                    &self.topic,
                    msg.partition(),
                    msg.offset(),
                    &value,
                ) {
                    history_error(&self.counters, &self.name, &e);
                }
            }
            Ok(msg) => {
                self.acked_without_offset.fetch_add(1, Ordering::Relaxed);
                self.note_error(format!(
                    "{value} acked on partition {} without an offset ({}); left indeterminate",
                    msg.partition(),
                    msg.offset()
                ));
            }
            Err((err, msg)) => {
                self.delivery_errors.fetch_add(1, Ordering::Relaxed);
                Counters::add(&self.counters.delivery_errors);
                let definite = err.rdkafka_error_code().is_some_and(definitely_not_written);
                self.note_error(format!(
                    "delivery of {value} to partition {} failed ({}): {err}",
                    msg.partition(),
                    if definite {
                        "not written"
                    } else {
                        "indeterminate"
                    }
                ));
                if definite {
                    self.definite_failures.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.history.fail(&self.name, &value, &err.to_string()) {
                        history_error(&self.counters, &self.name, &e);
                    }
                }
            }
        }
    }
}

/// Starts producer number `index` (0-based), named `p{index+1}`, writing `dir/p{n}.jsonl`.
/// It runs until `stop` is set, then waits for its outstanding deliveries.
pub(crate) fn start(
    index: usize,
    cfg: &ProducerConfig,
    dir: &Path,
    watch: Arc<Watch>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Result<(String, JoinHandle<ProducerSummary>)> {
    let name = format!("p{}", index + 1);
    let path = dir.join(format!("{name}.jsonl"));
    let history =
        Arc::new(History::create(&path).with_context(|| format!("creating {}", path.display()))?);
    let ctx = Ctx {
        name: name.clone(),
        index,
        topic: cfg.topic.clone(),
        history: Arc::clone(&history),
        watch,
        counters: Arc::clone(&counters),
        acked: AtomicU64::new(0),
        acked_without_offset: AtomicU64::new(0),
        definite_failures: AtomicU64::new(0),
        delivery_errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    };
    let producer: ThreadedProducer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("client.id", format!("kill-test-{name}"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .set("request.timeout.ms", "15000")
        .set("socket.nagle.disable", "true")
        .create_with_context(ctx)
        .with_context(|| format!("creating producer {name}"))?;
    crate::topic::wait_for_topic(
        producer.client(),
        &cfg.topic,
        cfg.partitions,
        Duration::from_secs(30),
    )?;
    let topic = cfg.topic.clone();
    let partitions = cfg.partitions.max(1) as u64;
    let rate = cfg.rate.max(1);
    let thread_name = name.clone();
    let handle = thread::Builder::new()
        .name(format!("kill-{name}"))
        .spawn(move || {
            let mut sent = 0u64;
            let mut definite_refusals = 0u64;
            let start = Instant::now();
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // Open-loop pacing: record `sent` is due at start + sent / rate.
                let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    thread::sleep((due - now).min(Duration::from_millis(50)));
                    continue;
                }
                let seq = sent;
                sent += 1;
                let value = value_of(&thread_name, seq);
                let partition = (seq % partitions) as i32;
                if let Err(e) = history.send(&thread_name, &topic, partition, &value) {
                    history_error(&counters, &thread_name, &e);
                }
                Counters::add(&counters.sent);
                if let Err(error) = send_one(&producer, &topic, partition, seq, &value, &stop) {
                    // Never handed to the client: surely not written.
                    definite_refusals += 1;
                    producer
                        .context()
                        .note_error(format!("{value} refused by the client: {error}"));
                    if let Err(e) = history.fail(&thread_name, &value, &error) {
                        history_error(&counters, &thread_name, &e);
                    }
                }
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    last_flush = Instant::now();
                    if let Err(e) = history.flush() {
                        history_error(&counters, &thread_name, &e);
                    }
                }
            }
            if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
                producer
                    .context()
                    .note_error(format!("flush after {FLUSH_TIMEOUT:?}: {e}"));
            }
            let unfinished = producer.in_flight_count();
            let ctx = producer.context();
            let summary = ProducerSummary {
                name: thread_name.clone(),
                sent,
                acked: ctx.acked.load(Ordering::Relaxed),
                acked_without_offset: ctx.acked_without_offset.load(Ordering::Relaxed),
                definite_failures: ctx.definite_failures.load(Ordering::Relaxed)
                    + definite_refusals,
                delivery_errors: ctx.delivery_errors.load(Ordering::Relaxed),
                unfinished,
                first_errors: ctx
                    .first_errors
                    .lock()
                    .map(|v| v.clone())
                    .unwrap_or_default(),
            };
            drop(producer);
            if let Err(e) = history.flush() {
                history_error(&counters, &thread_name, &e);
            }
            summary
        })
        .context("spawning a producer thread")?;
    Ok((name, handle))
}

/// Hands one record to the client, waiting while its queue is full. `Err` (with the
/// reason) when the client refused it for good: it was never enqueued.
fn send_one(
    producer: &ThreadedProducer<Ctx>,
    topic: &str,
    partition: i32,
    seq: u64,
    value: &str,
    stop: &AtomicBool,
) -> Result<(), String> {
    let give_up = Instant::now() + QUEUE_FULL_TIMEOUT;
    let mut record: BaseRecord<'_, str, str, usize> =
        BaseRecord::with_opaque_to(topic, seq as usize)
            .partition(partition)
            .key(value)
            .payload(value)
            .timestamp(now_ms());
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rejected)) => {
                if Instant::now() > give_up {
                    return Err(format!(
                        "client queue full for {QUEUE_FULL_TIMEOUT:?} (stop requested: {})",
                        stop.load(Ordering::Relaxed)
                    ));
                }
                thread::sleep(Duration::from_millis(10));
                record = rejected;
            }
            Err((e, _)) => return Err(e.to_string()),
        }
    }
}
