//! The load generators of the overload benchmark: producer threads (one rdkafka
//! `ThreadedProducer`, hence its own connections, per thread) and fetch-storm consumer threads.
//!
//! Records follow the self-describing format of `records`. A delivery report yields
//! (partition, offset, key), which `AckLog` stores as runs of consecutive offsets and
//! sequence numbers: a few bytes per produced batch instead of per record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset};

use super::hist::{AtomicHist, Hist};
use super::records::{all_from_beginning, consumer_config, decode_key, encode_key, Payloads};
use super::verify::AckLog;

/// Error messages printed per client (and per group) before only counting.
const MAX_PRINTED: u64 = 3;
/// Records handed to the client between checks of the clock and the stop flag.
const CHUNK: u64 = 256;

// =========================================================================================
// Counters
// =========================================================================================

/// Counters of one group of producers (normal or overload), drained once per second.
#[derive(Default)]
pub(crate) struct GroupStats {
    /// Records the load wanted to send: for paced producers every record that fell due
    /// (whether or not the client queue had room), for unpaced ones what the client took.
    offered: AtomicU64,
    /// Records the client accepted into its queue.
    enqueued: AtomicU64,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    /// Delivery reports with an error, other than purges.
    failed: AtomicU64,
    /// Records purged from the client queue when the load was dropped (never sent).
    purged: AtomicU64,
    hist: AtomicHist,
    printed: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

/// One second (or the tail) of a group's counters.
#[derive(Clone, Default)]
pub(crate) struct GroupWindow {
    pub(crate) offered: u64,
    pub(crate) enqueued: u64,
    pub(crate) acked: u64,
    pub(crate) acked_bytes: u64,
    pub(crate) failed: u64,
    pub(crate) purged: u64,
    /// Produce latency, send to delivery report, of the records acked in the window.
    pub(crate) hist: Hist,
}

impl GroupWindow {
    pub(crate) fn add(&mut self, o: &GroupWindow) {
        self.offered += o.offered;
        self.enqueued += o.enqueued;
        self.acked += o.acked;
        self.acked_bytes += o.acked_bytes;
        self.failed += o.failed;
        self.purged += o.purged;
        self.hist.merge(&o.hist);
    }
}

impl GroupStats {
    pub(crate) fn take(&self) -> GroupWindow {
        GroupWindow {
            offered: self.offered.swap(0, Ordering::Relaxed),
            enqueued: self.enqueued.swap(0, Ordering::Relaxed),
            acked: self.acked.swap(0, Ordering::Relaxed),
            acked_bytes: self.acked_bytes.swap(0, Ordering::Relaxed),
            failed: self.failed.swap(0, Ordering::Relaxed),
            purged: self.purged.swap(0, Ordering::Relaxed),
            hist: self.hist.take(),
        }
    }

    pub(crate) fn first_errors(&self) -> Vec<String> {
        self.first_errors
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn note_error(&self, text: String) {
        let n = self.printed.fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            eprintln!("{text}");
            if let Ok(mut v) = self.first_errors.lock() {
                v.push(text);
            }
        }
    }
}

/// Counters of the fetch storm, drained once per second.
#[derive(Default)]
pub(crate) struct FetchStats {
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Times a fetcher reached the end of a partition and went back to its beginning.
    rewinds: AtomicU64,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct FetchWindow {
    #[allow(dead_code)] // kept for the per-second table's future records/s column
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) rewinds: u64,
}

impl FetchStats {
    pub(crate) fn take(&self) -> FetchWindow {
        FetchWindow {
            records: self.records.swap(0, Ordering::Relaxed),
            bytes: self.bytes.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            rewinds: self.rewinds.swap(0, Ordering::Relaxed),
        }
    }
}

// =========================================================================================
// Producers
// =========================================================================================

/// How one producer thread behaves.
#[derive(Clone)]
pub(crate) struct ProducerPlan {
    pub(crate) id: u32,
    pub(crate) label: &'static str,
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    /// Records per second, open loop (records that fall due while the client queue is full
    /// are dropped and counted as offered); `None` = as fast as the client queue takes them.
    pub(crate) rate: Option<f64>,
    /// When the pacing schedule starts (records fall due from here on, so the time spent
    /// creating the client counts as offered load too).
    pub(crate) schedule_start: Instant,
    /// Records sent to one partition before moving to the next (1 = round-robin).
    pub(crate) burst: usize,
    pub(crate) linger_ms: u32,
    pub(crate) batch_bytes: u32,
    /// Client queue (queue.buffering.max.kbytes).
    pub(crate) queue_kib: u32,
    /// On stop, drop what is still queued in the client instead of delivering it.
    pub(crate) purge_on_stop: bool,
    /// How long to wait for in-flight deliveries after stopping.
    pub(crate) drain_timeout: Duration,
    /// message.timeout.ms
    pub(crate) message_timeout: Duration,
    /// The thread stops by itself at this time even if never told to.
    pub(crate) hard_deadline: Instant,
}

pub(crate) struct ProducerOutcome {
    pub(crate) acks: AckLog,
    /// Successful delivery reports whose key or partition did not match what was sent.
    pub(crate) bad_reports: u64,
    pub(crate) client_errors: u64,
    /// Why the producer could not start, or did not drain in time.
    pub(crate) problem: Option<String>,
}

struct LoadContext {
    id: u32,
    label: &'static str,
    base: Instant,
    group: Arc<GroupStats>,
    acks: Mutex<AckLog>,
    bad_reports: AtomicU64,
    client_errors: AtomicU64,
}

impl ClientContext for LoadContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.client_errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_PRINTED {
            eprintln!(
                "{} producer {}: client error: {error}: {reason}",
                self.label, self.id
            );
        }
    }
}

impl ProducerContext for LoadContext {
    /// Nanoseconds since `base` when the client accepted the record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now_ns = self.base.elapsed().as_nanos() as u64;
        match result {
            Ok(m) => {
                self.group
                    .hist
                    .record(now_ns.saturating_sub(sent_ns as u64) / 1_000);
                self.group.acked.fetch_add(1, Ordering::Relaxed);
                self.group
                    .acked_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                let recorded = match m.key().and_then(decode_key) {
                    Some((producer, partition, seq))
                        if producer == self.id && partition == m.partition() =>
                    {
                        self.acks
                            .lock()
                            .map(|mut a| a.push(producer, partition, m.offset(), seq))
                            .unwrap_or(false)
                    }
                    _ => false,
                };
                if !recorded {
                    self.bad_reports.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => {
                self.group.purged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.group.failed.fetch_add(1, Ordering::Relaxed);
                self.group.note_error(format!(
                    "{} producer {}: delivery failed on partition {}: {e}",
                    self.label,
                    self.id,
                    m.partition()
                ));
            }
        }
    }
}

/// Everything a producer thread shares with the rest of the benchmark.
#[derive(Clone)]
pub(crate) struct ProducerShared {
    pub(crate) base: Instant,
    pub(crate) payloads: Arc<Payloads>,
    pub(crate) group: Arc<GroupStats>,
    pub(crate) stop: Arc<AtomicBool>,
}

pub(crate) fn spawn_producer(
    plan: ProducerPlan,
    shared: ProducerShared,
) -> std::io::Result<JoinHandle<ProducerOutcome>> {
    thread::Builder::new()
        .name(format!("{}-producer-{}", plan.label, plan.id))
        .spawn(move || run_producer(&plan, &shared))
}

fn producer_config(plan: &ProducerPlan) -> ClientConfig {
    // message.max.bytes bounds a whole ProduceRequest in librdkafka; keep it well above
    // batch.size.
    let max_message_bytes = (plan.batch_bytes as usize)
        .saturating_mul(4)
        .clamp(1_000_000, 100_000_000);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &plan.bootstrap)
        .set(
            "client.id",
            format!("sluice-overload-{}-{}", plan.label, plan.id),
        )
        .set("acks", "all")
        .set("compression.type", "none")
        .set("linger.ms", plan.linger_ms.to_string())
        .set("batch.size", plan.batch_bytes.to_string())
        .set("batch.num.messages", "1000000")
        .set("message.max.bytes", max_message_bytes.to_string())
        .set("queue.buffering.max.messages", "10000000")
        .set(
            "queue.buffering.max.kbytes",
            plan.queue_kib.max(1).to_string(),
        )
        .set(
            "message.timeout.ms",
            plan.message_timeout.as_millis().to_string(),
        )
        .set("request.timeout.ms", "60000")
        .set("socket.nagle.disable", "true")
        .set("enable.idempotence", "false");
    c
}

fn run_producer(plan: &ProducerPlan, shared: &ProducerShared) -> ProducerOutcome {
    let parts = plan.partitions.max(1) as usize;
    let ctx = LoadContext {
        id: plan.id,
        label: plan.label,
        base: shared.base,
        group: Arc::clone(&shared.group),
        acks: Mutex::new(AckLog::new(parts)),
        bad_reports: AtomicU64::new(0),
        client_errors: AtomicU64::new(0),
    };
    let producer: ThreadedProducer<LoadContext> =
        match producer_config(plan).create_with_context(ctx) {
            Ok(p) => p,
            Err(e) => {
                return ProducerOutcome {
                    acks: AckLog::new(parts),
                    bad_reports: 0,
                    client_errors: 0,
                    problem: Some(format!(
                        "{} producer {}: creating the client failed: {e}",
                        plan.label, plan.id
                    )),
                }
            }
        };
    let ctx = Arc::clone(producer.context());
    let group = &shared.group;
    let now_ns = || shared.base.elapsed().as_nanos() as usize;

    let mut next_seq = vec![0u64; parts];
    let mut part = plan.id as usize % parts;
    let mut in_burst = 0usize;
    let burst = plan.burst.max(1);
    let start = plan.schedule_start;
    let mut scheduled: u64 = 0;
    let mut enqueue_errors: u64 = 0;

    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < plan.hard_deadline {
        let (due, cap) = match plan.rate {
            Some(rate) => {
                let due_total = (start.elapsed().as_secs_f64() * rate) as u64;
                if due_total <= scheduled {
                    let next = Duration::from_secs_f64((scheduled + 1) as f64 / rate);
                    let wait = next
                        .saturating_sub(start.elapsed())
                        .clamp(Duration::from_micros(50), Duration::from_millis(5));
                    thread::sleep(wait);
                    continue;
                }
                let due = due_total - scheduled;
                (due, due.min(CHUNK))
            }
            None => (CHUNK, CHUNK),
        };

        let mut sent = 0u64;
        let mut full = false;
        while sent < cap {
            let p = part;
            let seq = next_seq[p];
            let key = encode_key(plan.id, p as i32, seq);
            let record: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&plan.topic, now_ns())
                    .partition(p as i32)
                    .key(&key[..])
                    .payload(shared.payloads.get(plan.id, p as i32, seq));
            match producer.send(record) {
                Ok(()) => {
                    next_seq[p] += 1;
                    sent += 1;
                    in_burst += 1;
                    if in_burst >= burst {
                        in_burst = 0;
                        part = (part + 1) % parts;
                    }
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    full = true;
                    break;
                }
                Err((e, _)) => {
                    enqueue_errors += 1;
                    if enqueue_errors <= MAX_PRINTED {
                        eprintln!("{} producer {}: enqueue failed: {e}", plan.label, plan.id);
                    }
                    full = true;
                    break;
                }
            }
        }
        group.enqueued.fetch_add(sent, Ordering::Relaxed);
        let offered = match plan.rate {
            // Open loop: a record that fell due while the client queue was full is offered
            // load that was not taken, and it is not retried.
            Some(_) if full => due,
            _ => sent,
        };
        scheduled += offered;
        group.offered.fetch_add(offered, Ordering::Relaxed);
        if full {
            thread::sleep(Duration::from_millis(1));
        }
    }

    if plan.purge_on_stop {
        producer.purge(PurgeConfig::default().queue());
    }
    let mut problem = None;
    if let Err(e) = producer.flush(plan.drain_timeout) {
        problem = Some(format!(
            "{} producer {}: {} records still in flight {:?} after stopping ({e}); abandoned",
            plan.label,
            plan.id,
            producer.in_flight_count(),
            plan.drain_timeout
        ));
    }
    drop(producer);

    let acks = ctx
        .acks
        .lock()
        .map(|mut a| std::mem::replace(&mut *a, AckLog::new(parts)))
        .unwrap_or_else(|_| AckLog::new(parts));
    if enqueue_errors > 0 {
        problem.get_or_insert_with(|| {
            format!(
                "{} producer {}: {enqueue_errors} records refused by the client",
                plan.label, plan.id
            )
        });
    }
    ProducerOutcome {
        acks,
        bad_reports: ctx.bad_reports.load(Ordering::Relaxed),
        client_errors: ctx.client_errors.load(Ordering::Relaxed),
        problem,
    }
}

// =========================================================================================
// Fetch storm
// =========================================================================================

#[derive(Clone)]
pub(crate) struct FetcherPlan {
    pub(crate) id: u32,
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    pub(crate) fetch_max_bytes: u32,
    pub(crate) partition_fetch_bytes: u32,
    pub(crate) queue_kib: u32,
    pub(crate) hard_deadline: Instant,
}

pub(crate) struct FetcherOutcome {
    pub(crate) client_errors: u64,
    pub(crate) problem: Option<String>,
}

struct FetchContext {
    id: u32,
    client_errors: AtomicU64,
}

impl ClientContext for FetchContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.client_errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_PRINTED {
            eprintln!("fetcher {}: client error: {error}: {reason}", self.id);
        }
    }
}

impl ConsumerContext for FetchContext {}

pub(crate) fn spawn_fetcher(
    plan: FetcherPlan,
    stop: Arc<AtomicBool>,
    stats: Arc<FetchStats>,
) -> std::io::Result<JoinHandle<FetcherOutcome>> {
    thread::Builder::new()
        .name(format!("fetcher-{}", plan.id))
        .spawn(move || run_fetcher(&plan, &stop, &stats))
}

fn run_fetcher(plan: &FetcherPlan, stop: &AtomicBool, stats: &FetchStats) -> FetcherOutcome {
    let fail = |what: String| FetcherOutcome {
        client_errors: 0,
        problem: Some(format!("fetcher {}: {what}", plan.id)),
    };
    let ctx = FetchContext {
        id: plan.id,
        client_errors: AtomicU64::new(0),
    };
    let consumer: BaseConsumer<FetchContext> = match consumer_config(
        &plan.bootstrap,
        &format!("sluice-overload-fetch-{}", plan.id),
        plan.fetch_max_bytes,
        plan.partition_fetch_bytes,
        plan.queue_kib,
    )
    .create_with_context(ctx)
    {
        Ok(c) => c,
        Err(e) => return fail(format!("creating the consumer failed: {e}")),
    };
    match all_from_beginning(&plan.topic, plan.partitions) {
        Ok(tpl) => {
            if let Err(e) = consumer.assign(&tpl) {
                return fail(format!("assign failed: {e}"));
            }
        }
        Err(e) => return fail(format!("building the assignment failed: {e}")),
    }

    let (mut records, mut bytes, mut errors, mut rewinds) = (0u64, 0u64, 0u64, 0u64);
    let mut last_flush = Instant::now();
    let mut printed = 0u64;
    let flush = |records: &mut u64, bytes: &mut u64, errors: &mut u64, rewinds: &mut u64| {
        stats
            .records
            .fetch_add(std::mem::take(records), Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(std::mem::take(bytes), Ordering::Relaxed);
        stats
            .errors
            .fetch_add(std::mem::take(errors), Ordering::Relaxed);
        stats
            .rewinds
            .fetch_add(std::mem::take(rewinds), Ordering::Relaxed);
    };
    while !stop.load(Ordering::Relaxed) && Instant::now() < plan.hard_deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // Caught up with this partition: read it again from the start.
                match consumer.seek(&plan.topic, p, Offset::Beginning, Duration::from_secs(2)) {
                    Ok(()) => rewinds += 1,
                    Err(e) => {
                        errors += 1;
                        printed += 1;
                        if printed <= MAX_PRINTED {
                            eprintln!(
                                "fetcher {}: seek to the beginning of {p} failed: {e}",
                                plan.id
                            );
                        }
                    }
                }
            }
            Some(Err(e)) => {
                errors += 1;
                printed += 1;
                if printed <= MAX_PRINTED {
                    eprintln!("fetcher {}: {e}", plan.id);
                }
            }
        }
        if records >= 1024 || last_flush.elapsed() >= Duration::from_millis(50) {
            flush(&mut records, &mut bytes, &mut errors, &mut rewinds);
            last_flush = Instant::now();
        }
    }
    flush(&mut records, &mut bytes, &mut errors, &mut rewinds);
    let client_errors = consumer.context().client_errors.load(Ordering::Relaxed);
    drop(consumer);
    FetcherOutcome {
        client_errors,
        problem: None,
    }
}
