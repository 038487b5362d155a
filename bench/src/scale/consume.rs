//! The consume-throughput phase: `--consumers` consumers, consumer c bootstrapping at agent
//! c mod N and assigned partitions p with p mod C = c (manual assign from the beginning, no
//! group, no commits).
//!
//! Exactly once: each partition must yield offsets 0, 1, 2, ... with no gap, as many records
//! as the produce phase sent there (record i went to partition i mod partitions), every key
//! once, and the high watermark must equal that count (more would be duplicates).

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::Cluster;
use super::probe::{PhaseProbe, PhaseStats};

const MAX_PRINTED: usize = 10;

pub(crate) struct ConsumeOptions<'a> {
    pub(crate) bootstraps: &'a [String],
    pub(crate) topic: &'a str,
    pub(crate) partitions: i32,
    pub(crate) consumers: u32,
    pub(crate) records: u64,
    pub(crate) record_bytes: usize,
    pub(crate) timeout: Duration,
}

pub(crate) struct ConsumeResult {
    pub(crate) received: u64,
    pub(crate) payload_bytes: u64,
    /// From the common start to the last record of the slowest consumer.
    pub(crate) elapsed: Duration,
    pub(crate) failures: Vec<String>,
}

impl ConsumeResult {
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

struct Share {
    received: u64,
    payload_bytes: u64,
    last_record: Option<Instant>,
    failures: Vec<String>,
}

/// Records the produce phase sent to partition `p`.
fn expected_in(records: u64, partitions: u64, p: u64) -> u64 {
    records / partitions + u64::from(p < records % partitions)
}

/// Runs the phase; the returned probe figures cover the time from the common start to the
/// last consumer's end.
pub(crate) fn run(
    opts: &ConsumeOptions<'_>,
    cluster: &Cluster,
) -> Result<(ConsumeResult, PhaseStats)> {
    let consumers = opts.consumers.min(opts.partitions as u32).max(1);
    let barrier = Barrier::new(consumers as usize + 1);
    let start = Arc::new(Mutex::new(Instant::now()));
    eprintln!("consume: {} records by {consumers} consumers", opts.records);
    let (shares, phase): (Vec<Result<Share>>, PhaseStats) = thread::scope(|s| {
        let handles: Vec<_> = (0..consumers)
            .map(|c| {
                let bootstrap = &opts.bootstraps[c as usize % opts.bootstraps.len()];
                let (barrier, start) = (&barrier, Arc::clone(&start));
                thread::Builder::new()
                    .name(format!("consumer-{c}"))
                    .spawn_scoped(s, move || {
                        let mine: Vec<i32> = (0..opts.partitions)
                            .filter(|p| *p as u32 % consumers == c)
                            .collect();
                        let setup = setup_consumer(opts, c, bootstrap);
                        barrier.wait();
                        let consumer = setup?;
                        let begun = start.lock().map(|s| *s).unwrap_or_else(|_| Instant::now());
                        read_share(opts, c, &consumer, &mine, begun)
                    })
                    .map_err(|e| anyhow!("spawning consumer thread {c}: {e}"))
            })
            .collect();
        if let Ok(mut s) = start.lock() {
            *s = Instant::now();
        }
        barrier.wait();
        let probe = PhaseProbe::begin(cluster);
        let shares = handles
            .into_iter()
            .map(|h| {
                h.and_then(|h| {
                    h.join()
                        .map_err(|_| anyhow!("a consumer thread panicked"))?
                })
            })
            .collect();
        (shares, probe.end(cluster))
    });
    let begun = start.lock().map(|s| *s).unwrap_or_else(|_| Instant::now());

    let mut result = ConsumeResult {
        received: 0,
        payload_bytes: 0,
        elapsed: Duration::from_micros(1),
        failures: Vec::new(),
    };
    let mut last = begun;
    for (c, share) in shares.into_iter().enumerate() {
        let share = share.with_context(|| format!("consumer {c}"))?;
        result.received += share.received;
        result.payload_bytes += share.payload_bytes;
        if let Some(t) = share.last_record {
            last = last.max(t);
        }
        result.failures.extend(share.failures);
    }
    result.elapsed = last.duration_since(begun).max(Duration::from_micros(1));
    if result.received != opts.records {
        result.failures.push(format!(
            "consumed {} records, produced {}",
            result.received, opts.records
        ));
    }
    Ok((result, phase))
}

fn setup_consumer(opts: &ConsumeOptions<'_>, c: u32, bootstrap: &str) -> Result<BaseConsumer> {
    let name = format!("sluice-scale-consumer-{c}");
    // group.id is needed by librdkafka for assign(); nothing is committed.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", &name)
        .set("group.id", format!("{name}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "131072")
        .set("fetch.wait.max.ms", "100")
        .set("socket.nagle.disable", "true")
        .create()
        .with_context(|| format!("creating {name}"))?;
    // Connect before the clock starts: the first Metadata round trip is not throughput.
    consumer
        .fetch_metadata(Some(opts.topic), Duration::from_secs(10))
        .with_context(|| format!("{name}: Metadata"))?;
    Ok(consumer)
}

/// Assigns the partitions from the beginning (fetching starts now) and reads them.
fn read_share(
    opts: &ConsumeOptions<'_>,
    c: u32,
    consumer: &BaseConsumer,
    mine: &[i32],
    begun: Instant,
) -> Result<Share> {
    let parts = opts.partitions as u64;
    let expected: Vec<u64> = mine
        .iter()
        .map(|&p| expected_in(opts.records, parts, p as u64))
        .collect();
    let want: u64 = expected.iter().sum();
    let index_of = |p: i32| mine.iter().position(|&m| m == p);
    let mut next = vec![0i64; mine.len()];
    // Keys seen, one bit per record index (records of other partitions stay unset).
    let mut seen = vec![0u64; (opts.records as usize).div_ceil(64)];
    let mut share = Share {
        received: 0,
        payload_bytes: 0,
        last_record: None,
        failures: Vec::new(),
    };
    let (mut gaps, mut dups, mut misplaced, mut bad_size, mut errors) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut printed = 0usize;
    let mut note = |text: String| {
        printed += 1;
        if printed <= MAX_PRINTED {
            eprintln!("consumer {c}: {text}");
        }
    };
    let mut tpl = TopicPartitionList::with_capacity(mine.len());
    for &p in mine {
        tpl.add_partition_offset(opts.topic, p, Offset::Beginning)
            .with_context(|| format!("adding partition {p}"))?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    let deadline = begun + opts.timeout;
    while share.received < want && Instant::now() < deadline {
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                errors += 1;
                note(format!("error: {e}"));
                continue;
            }
            Some(Ok(m)) => m,
        };
        share.received += 1;
        share.last_record = Some(Instant::now());
        let p = m.partition();
        let Some(k) = index_of(p) else {
            misplaced += 1;
            note(format!("record from partition {p}, not assigned"));
            continue;
        };
        if m.offset() != next[k] {
            gaps += 1;
            note(format!(
                "partition {p}: offset {} where {} was next",
                m.offset(),
                next[k]
            ));
        }
        next[k] = m.offset() + 1;
        let len = m.payload().map_or(0, <[u8]>::len);
        share.payload_bytes += len as u64;
        if len != opts.record_bytes {
            bad_size += 1;
        }
        match m.key().and_then(|key| <[u8; 8]>::try_from(key).ok()) {
            Some(key) => {
                let i = u64::from_be_bytes(key);
                if i >= opts.records || i % parts != p as u64 {
                    misplaced += 1;
                    note(format!(
                        "partition {p} offset {}: key {i} does not belong here",
                        m.offset()
                    ));
                } else {
                    let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
                    if seen[word] & bit != 0 {
                        dups += 1;
                        note(format!(
                            "partition {p} offset {}: key {i} seen twice",
                            m.offset()
                        ));
                    }
                    seen[word] |= bit;
                }
            }
            None => {
                misplaced += 1;
                note(format!(
                    "partition {p} offset {}: no 8-byte key",
                    m.offset()
                ));
            }
        }
    }

    let f = &mut share.failures;
    if share.received < want {
        f.push(format!(
            "consumer {c}: read {} of {want} records within {:?}",
            share.received, opts.timeout
        ));
    }
    for (what, n) in [
        ("offset gaps or rewinds", gaps),
        ("duplicate keys", dups),
        (
            "records in the wrong partition or with a bad key",
            misplaced,
        ),
        ("payloads of the wrong size", bad_size),
        ("consumer errors", errors),
    ] {
        if n > 0 {
            f.push(format!("consumer {c}: {n} {what}"));
        }
    }
    for (k, &p) in mine.iter().enumerate() {
        if next[k] != expected[k] as i64 {
            f.push(format!(
                "partition {p}: read offsets 0..{}, expected 0..{}",
                next[k], expected[k]
            ));
        }
        match consumer.fetch_watermarks(opts.topic, p, Duration::from_secs(10)) {
            Ok((low, high)) if low == 0 && high == expected[k] as i64 => {}
            Ok((low, high)) => f.push(format!(
                "partition {p}: watermarks {low}..{high}, expected 0..{}",
                expected[k]
            )),
            Err(e) => f.push(format!("partition {p}: ListOffsets failed: {e}")),
        }
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_add_up() {
        let total: u64 = (0..12).map(|p| expected_in(300_001, 12, p)).sum();
        assert_eq!(total, 300_001);
        assert_eq!(expected_in(300_001, 12, 0), 25_001);
        assert_eq!(expected_in(300_001, 12, 1), 25_000);
    }
}
