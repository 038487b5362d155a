//! End-to-end latency across agents: a producer pinned to agent 1 and a consumer pinned to
//! agent 2 (agent 1 when there is only one), both with the zone hint `sluice_az=zN` in their
//! `client.id`, so Metadata lists only that agent and every leader is shown there.
//!
//! Record k is due at start + k / rate; its payload starts with the wall-clock send time in
//! microseconds and its key is k. Per record the benchmark keeps the send time, the time of
//! its delivery report (ack: committed in the database by agent 1) and the time the consumer
//! got it from agent 2. From those: ack latency (ack − send), end-to-end latency
//! (receive − send) and cross-agent visibility (receive − ack): how long agent 2 took to
//! serve a record that agent 1 had committed. Records sent during the warm-up are left out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::cluster::{brokers_seen_by, Cluster};
use super::probe::{PhaseProbe, PhaseStats};
use super::produce::producer_config;
use super::wall_us;

pub(crate) struct E2eOptions<'a> {
    pub(crate) producer_bootstrap: &'a str,
    pub(crate) producer_zone: &'a str,
    pub(crate) consumer_bootstrap: &'a str,
    pub(crate) consumer_zone: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) partitions: i32,
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
    pub(crate) warmup: Duration,
    pub(crate) record_bytes: usize,
    pub(crate) linger_ms: u32,
    pub(crate) idempotence: bool,
    pub(crate) fetch_wait_ms: u32,
    pub(crate) batch_timeout: Duration,
}

pub(crate) struct E2eResult {
    pub(crate) producer_agent: String,
    pub(crate) consumer_agent: String,
    /// The agents Metadata showed the pinned producer and consumer.
    pub(crate) producer_sees: Vec<String>,
    pub(crate) consumer_sees: Vec<String>,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) received: u64,
    /// Records counted in the figures (sent after the warm-up, acked and received).
    pub(crate) measured: u64,
    /// Sorted microseconds.
    pub(crate) e2e_us: Vec<u64>,
    pub(crate) ack_us: Vec<u64>,
    pub(crate) visibility_us: Vec<u64>,
    /// Records the consumer got before the producer had their delivery report (counted as
    /// visibility 0).
    pub(crate) seen_before_ack: u64,
    pub(crate) achieved_rate: f64,
    pub(crate) phase: PhaseStats,
    pub(crate) failures: Vec<String>,
}

/// Per-record timestamps in wall-clock microseconds (0 = not yet).
struct Times {
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    /// The send time the consumer read from the payload.
    payload_sent: Vec<AtomicU64>,
    delivery_errors: AtomicU64,
    duplicates: AtomicU64,
}

impl Times {
    fn new(n: usize) -> Times {
        let v = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Times {
            sent: v(),
            acked: v(),
            received: v(),
            payload_sent: v(),
            delivery_errors: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }
    fn count(v: &[AtomicU64]) -> u64 {
        v.iter().filter(|t| t.load(Ordering::Relaxed) != 0).count() as u64
    }
}

struct Ctx {
    times: Arc<Times>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("e2e producer: client error: {error}: {reason}");
    }
}

impl ProducerContext for Ctx {
    /// The record's index k.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, k: usize) {
        let now = wall_us();
        match result {
            Ok(_) => {
                if let Some(t) = self.times.acked.get(k) {
                    t.store(now, Ordering::Relaxed);
                }
            }
            Err((e, _)) => {
                let n = self.times.delivery_errors.fetch_add(1, Ordering::Relaxed);
                if n < 5 {
                    eprintln!("e2e producer: delivery of record {k} failed: {e}");
                }
            }
        }
    }
}

pub(crate) fn run(opts: &E2eOptions<'_>, cluster: &Cluster) -> Result<E2eResult> {
    let n = (opts.rate * opts.seconds) as usize;
    let times = Arc::new(Times::new(n));
    let producer_id = format!("sluice-scale-e2e-producer-sluice_az={}", opts.producer_zone);
    let consumer_id = format!("sluice-scale-e2e-consumer-sluice_az={}", opts.consumer_zone);
    let producer_sees = brokers_seen_by(opts.producer_bootstrap, &producer_id)?;
    let consumer_sees = brokers_seen_by(opts.consumer_bootstrap, &consumer_id)?;
    let mut failures = Vec::new();
    for (who, sees, want) in [
        ("producer", &producer_sees, opts.producer_bootstrap),
        ("consumer", &consumer_sees, opts.consumer_bootstrap),
    ] {
        if sees.len() != 1 || sees[0] != want {
            failures.push(format!(
                "the zone hint did not pin the e2e {who} to {want}: Metadata listed {sees:?}"
            ));
        }
    }
    eprintln!(
        "e2e: producer at {} (Metadata shows {producer_sees:?}), consumer at {} (shows {consumer_sees:?}), \
         {} records/s for {}s",
        opts.producer_bootstrap, opts.consumer_bootstrap, opts.rate, opts.seconds
    );

    // --- consumer: positioned at the current end of every partition -------------------
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", opts.consumer_bootstrap)
        .set("client.id", &consumer_id)
        .set(
            "group.id",
            format!("sluice-scale-e2e-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", opts.fetch_wait_ms.to_string())
        .set("socket.nagle.disable", "true")
        .create()
        .context("creating the e2e consumer")?;
    let mut tpl = TopicPartitionList::with_capacity(opts.partitions as usize);
    for p in 0..opts.partitions {
        let (_, high) = consumer
            .fetch_watermarks(opts.topic, p, Duration::from_secs(10))
            .with_context(|| format!("e2e: ListOffsets of partition {p}"))?;
        tpl.add_partition_offset(opts.topic, p, Offset::Offset(high))
            .with_context(|| format!("adding partition {p}"))?;
    }
    consumer.assign(&tpl).context("e2e: assigning partitions")?;

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (times, stop) = (Arc::clone(&times), Arc::clone(&stop));
        thread::Builder::new()
            .name("e2e-consumer".to_string())
            .spawn(move || read_until_stopped(&consumer, &times, &stop))
            .map_err(|e| anyhow!("spawning the e2e consumer thread: {e}"))?
    };

    // --- producer ---------------------------------------------------------------------
    let outcome = produce_paced(opts, &producer_id, &times, cluster);
    // Let the consumer catch up with what was acknowledged (bounded), then stop it.
    let acked_now = Times::count(&times.acked);
    let catch_up = Instant::now() + opts.batch_timeout * 4 + Duration::from_secs(10);
    while Times::count(&times.received) < acked_now && Instant::now() < catch_up {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let (phase, achieved_rate) = outcome?;

    // --- figures ----------------------------------------------------------------------
    let warm_k = ((opts.warmup.as_secs_f64() * opts.rate as f64) as usize).min(n);
    let (mut e2e_us, mut ack_us, mut visibility_us) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen_before_ack = 0;
    let mut missing = 0u64;
    let mut unacked_received = 0u64;
    for k in 0..n {
        let s = times.sent[k].load(Ordering::Relaxed);
        let a = times.acked[k].load(Ordering::Relaxed);
        let r = times.received[k].load(Ordering::Relaxed);
        if a != 0 && r == 0 {
            missing += 1;
        }
        if a == 0 && r != 0 {
            unacked_received += 1;
        }
        if k < warm_k || s == 0 {
            continue;
        }
        if a != 0 {
            ack_us.push(a.saturating_sub(s));
        }
        // End-to-end from the send time carried in the payload.
        let ps = times.payload_sent[k].load(Ordering::Relaxed);
        if r != 0 && ps != 0 {
            e2e_us.push(r.saturating_sub(ps));
        }
        if a != 0 && r != 0 {
            if r < a {
                seen_before_ack += 1;
            }
            visibility_us.push(r.saturating_sub(a));
        }
    }
    e2e_us.sort_unstable();
    ack_us.sort_unstable();
    visibility_us.sort_unstable();
    let sent = Times::count(&times.sent);
    let acked = Times::count(&times.acked);
    let received = Times::count(&times.received);
    let duplicates = times.duplicates.load(Ordering::Relaxed);
    let errors = times.delivery_errors.load(Ordering::Relaxed);
    if sent != n as u64 {
        failures.push(format!("e2e: sent {sent} of {n} records"));
    }
    if errors > 0 || acked != sent {
        failures.push(format!(
            "e2e: {acked} of {sent} records acknowledged ({errors} delivery errors)"
        ));
    }
    if missing > 0 {
        failures.push(format!(
            "e2e: {missing} acknowledged records never reached the consumer on {}",
            opts.consumer_bootstrap
        ));
    }
    if duplicates > 0 {
        failures.push(format!("e2e: {duplicates} records received twice"));
    }
    if unacked_received > 0 {
        eprintln!("e2e: {unacked_received} records received whose delivery report never came");
    }
    Ok(E2eResult {
        producer_agent: opts.producer_bootstrap.to_string(),
        consumer_agent: opts.consumer_bootstrap.to_string(),
        producer_sees,
        consumer_sees,
        sent,
        acked,
        received,
        measured: visibility_us.len() as u64,
        e2e_us,
        ack_us,
        visibility_us,
        seen_before_ack,
        achieved_rate,
        phase,
        failures,
    })
}

/// Sends `rate * seconds` records at a steady pace; the phase probe covers the time after
/// the warm-up. Returns the probe's figures and the achieved send rate.
fn produce_paced(
    opts: &E2eOptions<'_>,
    client_id: &str,
    times: &Arc<Times>,
    cluster: &Cluster,
) -> Result<(PhaseStats, f64)> {
    let n = times.sent.len();
    let producer: ThreadedProducer<Ctx> = producer_config(
        opts.producer_bootstrap,
        client_id,
        opts.linger_ms,
        opts.idempotence,
        1_048_576,
        opts.record_bytes,
        Duration::from_secs(60),
    )
    .create_with_context(Ctx {
        times: Arc::clone(times),
    })
    .context("creating the e2e producer")?;
    crate::topic::wait_for_topic(
        producer.client(),
        opts.topic,
        opts.partitions,
        Duration::from_secs(30),
    )?;
    // The consumer has been polling meanwhile; give its first fetches a moment.
    thread::sleep(Duration::from_millis(500));

    let pool = super::payload_pool(opts.record_bytes + 4096);
    let mut payload = vec![0u8; opts.record_bytes];
    let warm_k = ((opts.warmup.as_secs_f64() * opts.rate as f64) as usize).min(n);
    let start = Instant::now();
    let mut probe = None;
    let mut last_progress = Instant::now();
    for k in 0..n {
        if k == warm_k {
            probe = Some((PhaseProbe::begin(cluster), Instant::now(), k));
        }
        let due =
            start + Duration::from_nanos((k as u128 * 1_000_000_000 / opts.rate as u128) as u64);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let at = (k * 977) % 4096;
        payload.copy_from_slice(&pool[at..at + opts.record_bytes]);
        let sent = wall_us();
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        times.sent[k].store(sent, Ordering::Relaxed);
        let key = (k as u64).to_be_bytes();
        let record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(opts.topic, k)
            .partition((k % opts.partitions as usize) as i32)
            .key(&key[..])
            .payload(&payload[..]);
        if let Err((e, _)) = producer.send(record) {
            bail!("e2e: enqueueing record {k}: {e}");
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!(
                "e2e: {} sent, {} acknowledged, {} received",
                k + 1,
                Times::count(&times.acked),
                Times::count(&times.received)
            );
        }
    }
    let (phase, rate) = match probe {
        Some((probe, at, k0)) => {
            let secs = at.elapsed().as_secs_f64().max(1e-6);
            (probe.end(cluster), (n - k0) as f64 / secs)
        }
        None => (PhaseStats::default(), 0.0),
    };
    // Delivery reports of the last records (bounded by the flush timeout).
    let _ = producer.flush(Duration::from_secs(30));
    Ok((phase, rate))
}

fn read_until_stopped(consumer: &BaseConsumer, times: &Times, stop: &AtomicBool) {
    let n = times.received.len();
    while !stop.load(Ordering::Relaxed) {
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let now = wall_us();
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("e2e consumer: {e}");
                continue;
            }
        };
        let Some(k) = m
            .key()
            .and_then(|key| <[u8; 8]>::try_from(key).ok())
            .map(|key| u64::from_be_bytes(key) as usize)
            .filter(|&k| k < n)
        else {
            eprintln!(
                "e2e consumer: record at partition {} offset {} has no valid key",
                m.partition(),
                m.offset()
            );
            continue;
        };
        let first = times.received[k]
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if !first {
            times.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(ts) = m
            .payload()
            .and_then(|p| p.get(..8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
        {
            times.payload_sent[k].store(u64::from_be_bytes(ts), Ordering::Relaxed);
        }
    }
}
