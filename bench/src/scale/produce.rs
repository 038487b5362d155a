//! The produce-throughput phase: `--producers` idempotent librdkafka producers, producer i
//! bootstrapping at agent i mod N, together sending records 0..`--records`.
//!
//! Record i goes from producer i mod P to partition i mod `--partitions` with the 8-byte key
//! i, so the consume phase knows how many records each partition must hold and which key
//! belongs where. Latency runs from the moment the client accepts a record to its delivery
//! report (acks=all: the record is in the bucket and committed in the database).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::cluster::Cluster;
use super::probe::{PhaseProbe, PhaseStats};
use crate::topic::wait_for_topic;

/// Extra pool bytes beyond one payload.
const POOL_SLACK: usize = 64 * 1024;
const MAX_PRINTED_ERRORS: u64 = 5;

pub(crate) struct ProduceOptions<'a> {
    pub(crate) bootstraps: &'a [String],
    pub(crate) topic: &'a str,
    pub(crate) partitions: i32,
    pub(crate) producers: u32,
    pub(crate) records: u64,
    pub(crate) record_bytes: usize,
    pub(crate) linger_ms: u32,
    pub(crate) idempotence: bool,
    pub(crate) batch_bytes: u32,
    pub(crate) timeout: Duration,
}

pub(crate) struct ProduceResult {
    pub(crate) delivered: u64,
    pub(crate) elapsed: Duration,
    pub(crate) payload_bytes: u64,
    /// Sorted ack latencies in microseconds.
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) failures: Vec<String>,
}

impl ProduceResult {
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
    pub(crate) fn records_per_s(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// Delivery reports of one producer (called on its polling thread).
struct Ctx {
    base: Instant,
    delivered: AtomicU64,
    errors: AtomicU64,
    last_delivery_ns: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
    name: String,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("{}: client error: {error}: {reason}", self.name);
    }
}

impl ProducerContext for Ctx {
    /// Nanoseconds since `base` when the client accepted the record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.base.elapsed().as_nanos() as u64;
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        match result {
            Ok(_) => {
                if let Ok(mut v) = self.latencies_us.lock() {
                    v.push(now.saturating_sub(sent_ns as u64) / 1000);
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= MAX_PRINTED_ERRORS {
                    eprintln!("{}: delivery failed: {e}", self.name);
                }
                if let Ok(mut f) = self.first_error.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The librdkafka settings of the benchmark producers (throughput and end-to-end).
pub(crate) fn producer_config(
    bootstrap: &str,
    client_id: &str,
    linger_ms: u32,
    idempotence: bool,
    batch_bytes: u32,
    record_bytes: usize,
    timeout: Duration,
) -> ClientConfig {
    let max_message_bytes = (batch_bytes as usize)
        .max(record_bytes + 4096)
        .saturating_mul(4)
        .clamp(1_000_000, 100_000_000);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("acks", "all")
        .set("enable.idempotence", idempotence.to_string())
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", batch_bytes.to_string())
        .set("batch.num.messages", "1000000")
        .set("message.max.bytes", max_message_bytes.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("request.timeout.ms", "30000")
        .set("socket.nagle.disable", "true");
    c
}

/// Runs the phase; the returned probe figures cover the time from the common start to the
/// last producer's end.
pub(crate) fn run(
    opts: &ProduceOptions<'_>,
    cluster: &Cluster,
) -> Result<(ProduceResult, PhaseStats)> {
    let p_count = opts.producers as u64;
    let base = Instant::now();
    let pool = payload_pool(opts.record_bytes);
    let start_barrier = Barrier::new(opts.producers as usize + 1);
    let started = Mutex::new(None::<Instant>);
    eprintln!(
        "produce: {} records by {} producers over {} partitions",
        opts.records, opts.producers, opts.partitions
    );

    let (outcomes, phase): (Vec<Result<Arc<Ctx>>>, PhaseStats) = thread::scope(|s| {
        let handles: Vec<_> = (0..p_count)
            .map(|j| {
                let bootstrap = &opts.bootstraps[(j as usize) % opts.bootstraps.len()];
                let (pool, start_barrier) = (&pool, &start_barrier);
                thread::Builder::new()
                    .name(format!("producer-{j}"))
                    .spawn_scoped(s, move || {
                        let setup = setup_producer(opts, j, bootstrap, base);
                        // Everyone meets at the barrier, even after a setup error.
                        start_barrier.wait();
                        let producer = setup?;
                        send_share(opts, j, &producer, pool)?;
                        Ok(Arc::clone(producer.context()))
                    })
                    .map_err(|e| anyhow!("spawning producer thread {j}: {e}"))
            })
            .collect();
        start_barrier.wait();
        if let Ok(mut s) = started.lock() {
            *s = Some(Instant::now());
        }
        let probe = PhaseProbe::begin(cluster);
        let outcomes = handles
            .into_iter()
            .map(|h| {
                h.and_then(|h| {
                    h.join()
                        .map_err(|_| anyhow!("a producer thread panicked"))?
                })
            })
            .collect();
        (outcomes, probe.end(cluster))
    });
    let start = started.into_inner().ok().flatten().unwrap_or(base);

    let mut failures = Vec::new();
    let mut delivered = 0;
    let mut last_ns = 0;
    let mut latencies = Vec::with_capacity(opts.records as usize);
    for (j, o) in outcomes.into_iter().enumerate() {
        let ctx = o.with_context(|| format!("producer {j}"))?;
        delivered += ctx.delivered.load(Ordering::Relaxed);
        last_ns = last_ns.max(ctx.last_delivery_ns.load(Ordering::Relaxed));
        let errors = ctx.errors.load(Ordering::Relaxed);
        if errors > 0 {
            let first = ctx.first_error.lock().ok().and_then(|f| f.clone());
            failures.push(format!(
                "producer {j}: {errors} delivery errors (first: {})",
                first.unwrap_or_default()
            ));
        }
        if let Ok(mut v) = ctx.latencies_us.lock() {
            latencies.append(&mut v);
        };
    }
    latencies.sort_unstable();
    if delivered != opts.records {
        failures.push(format!(
            "only {delivered} of {} records acknowledged",
            opts.records
        ));
    }
    let end = base + Duration::from_nanos(last_ns);
    let elapsed = end
        .saturating_duration_since(start)
        .max(Duration::from_micros(1));
    let result = ProduceResult {
        delivered,
        elapsed,
        payload_bytes: delivered * opts.record_bytes as u64,
        latencies_us: latencies,
        failures,
    };
    Ok((result, phase))
}

fn setup_producer(
    opts: &ProduceOptions<'_>,
    j: u64,
    bootstrap: &str,
    base: Instant,
) -> Result<ThreadedProducer<Ctx>> {
    let name = format!("sluice-scale-producer-{j}");
    let ctx = Ctx {
        base,
        delivered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        latencies_us: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
        name: name.clone(),
    };
    let producer: ThreadedProducer<Ctx> = producer_config(
        bootstrap,
        &name,
        opts.linger_ms,
        opts.idempotence,
        opts.batch_bytes,
        opts.record_bytes,
        opts.timeout,
    )
    .create_with_context(ctx)
    .with_context(|| format!("creating {name}"))?;
    wait_for_topic(
        producer.client(),
        opts.topic,
        opts.partitions,
        Duration::from_secs(30),
    )?;
    Ok(producer)
}

/// Sends records j, j+P, j+2P, ... and waits for all their delivery reports.
fn send_share(
    opts: &ProduceOptions<'_>,
    j: u64,
    producer: &ThreadedProducer<Ctx>,
    pool: &[u8],
) -> Result<()> {
    let p_count = opts.producers as u64;
    let ctx = producer.context();
    let deadline = Instant::now() + opts.timeout;
    let share = (j..opts.records).step_by(p_count as usize).count() as u64;
    let mut last_progress = Instant::now();
    for i in (j..opts.records).step_by(p_count as usize) {
        let key = i.to_be_bytes();
        let at = ((i as usize).wrapping_mul(4099)) % POOL_SLACK;
        let payload = &pool[at..at + opts.record_bytes];
        let now_ns = || ctx.base.elapsed().as_nanos() as usize;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(opts.topic, now_ns())
                .partition((i % opts.partitions as u64) as i32)
                .key(&key[..])
                .payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if Instant::now() > deadline {
                        bail!("timed out with the client queue full");
                    }
                    thread::sleep(Duration::from_micros(200));
                    // The clock starts when the client accepts the record.
                    record = back.delivery_opaque(now_ns());
                }
                Err((e, _)) => bail!("enqueueing record {i}: {e}"),
            }
        }
        if j == 0 && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "produce: producer 0 has {} of {share} acknowledged",
                ctx.delivered.load(Ordering::Relaxed)
            );
        }
    }
    while ctx.delivered.load(Ordering::Relaxed) + ctx.errors.load(Ordering::Relaxed) < share {
        if Instant::now() > deadline {
            eprintln!(
                "produce: producer {j} timed out waiting for delivery reports ({} in flight)",
                producer.in_flight_count()
            );
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = producer.flush(Duration::from_secs(5));
    Ok(())
}

fn payload_pool(record_bytes: usize) -> Vec<u8> {
    super::payload_pool(record_bytes + POOL_SLACK)
}
