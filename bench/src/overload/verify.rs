//! "Every acknowledged record is readable afterwards": what the broker acknowledged, kept
//! compactly, and the read-back check.
//!
//! A delivery report says record (producer, partition, seq) sits at `offset`. Consecutive
//! reports of one producer for one partition usually continue a run (offset + 1, seq + 1), so
//! `AckLog` keeps runs, not records. `AckIndex` merges every producer's runs per partition
//! and rejects offsets acknowledged twice. `Checker` then compares what a consumer reads
//! from offset 0 with the index: the record at each acknowledged offset must carry the key
//! that was acknowledged there and the payload derived from that key.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::ClientContext;

use super::records::{all_from_beginning, consumer_config, decode_key, encode_key, Payloads};

/// Problems printed in detail before only counting.
const MAX_DETAILS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Offset of the first record.
    pub(crate) offset: i64,
    /// Sequence number of the first record.
    pub(crate) seq: u64,
    pub(crate) len: u32,
    pub(crate) producer: u32,
}

impl Run {
    fn end(&self) -> i64 {
        self.offset + i64::from(self.len)
    }
}

/// One producer's acknowledged records, per partition, as runs.
pub(crate) struct AckLog {
    runs: Vec<Vec<Run>>,
}

impl AckLog {
    pub(crate) fn new(partitions: usize) -> AckLog {
        AckLog {
            runs: vec![Vec::new(); partitions],
        }
    }

    /// Records an acknowledgement; false if the partition or offset is out of range.
    pub(crate) fn push(&mut self, producer: u32, partition: i32, offset: i64, seq: u64) -> bool {
        let Some(runs) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.runs.get_mut(p))
        else {
            return false;
        };
        if offset < 0 {
            return false;
        }
        if let Some(last) = runs.last_mut() {
            if last.producer == producer
                && last.end() == offset
                && last.seq + u64::from(last.len) == seq
                && last.len < u32::MAX
            {
                last.len += 1;
                return true;
            }
        }
        runs.push(Run {
            offset,
            seq,
            len: 1,
            producer,
        });
        true
    }

    #[cfg(test)]
    fn run_count(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }
}

/// Every producer's acknowledgements, per partition, sorted by offset.
pub(crate) struct AckIndex {
    runs: Vec<Vec<Run>>,
    pub(crate) total: u64,
    /// Offsets acknowledged to two different records (or twice).
    pub(crate) double_acks: u64,
    pub(crate) details: Vec<String>,
}

impl AckIndex {
    pub(crate) fn build(partitions: usize, logs: impl IntoIterator<Item = AckLog>) -> AckIndex {
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); partitions];
        for log in logs {
            for (p, r) in log.runs.into_iter().enumerate() {
                if let Some(dst) = runs.get_mut(p) {
                    dst.extend(r);
                }
            }
        }
        let mut total = 0;
        let mut double_acks = 0;
        let mut details = Vec::new();
        for (p, r) in runs.iter_mut().enumerate() {
            r.sort_unstable_by_key(|run| run.offset);
            total += r.iter().map(|run| u64::from(run.len)).sum::<u64>();
            for w in r.windows(2) {
                if w[0].end() > w[1].offset {
                    let overlap = (w[0].end().min(w[1].end()) - w[1].offset) as u64;
                    double_acks += overlap;
                    if details.len() < MAX_DETAILS {
                        details.push(format!(
                            "partition {p}: offsets {}..{} acknowledged to producer {} and to producer {}",
                            w[1].offset,
                            w[0].end().min(w[1].end()),
                            w[0].producer,
                            w[1].producer
                        ));
                    }
                }
            }
        }
        AckIndex {
            runs,
            total,
            double_acks,
            details,
        }
    }

    pub(crate) fn partitions(&self) -> usize {
        self.runs.len()
    }

    pub(crate) fn run_count(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }
}

/// What the read-back found.
#[derive(Default, Debug)]
pub(crate) struct VerifyCounts {
    /// Acknowledged records read back at their offset with the right key and payload.
    pub(crate) verified: u64,
    /// Acknowledged offsets that held another record, or a corrupted one.
    pub(crate) mismatched: u64,
    /// Records at offsets nobody acknowledged (failed or purged deliveries that were
    /// written anyway, or client retries): allowed.
    pub(crate) unacked_present: u64,
    /// Offsets skipped by the consumer (a gap between consecutive records).
    pub(crate) gaps: u64,
    pub(crate) details: Vec<String>,
}

/// Compares consumed records with an `AckIndex`.
pub(crate) struct Checker<'a> {
    index: &'a AckIndex,
    payloads: &'a Payloads,
    /// Per partition: index of the first run that may still cover upcoming offsets.
    cursor: Vec<usize>,
    /// Per partition: the next offset expected from the consumer.
    next: Vec<i64>,
    /// Per partition: one past the last acknowledged offset.
    target: Vec<i64>,
    done: Vec<bool>,
    pub(crate) counts: VerifyCounts,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(index: &'a AckIndex, payloads: &'a Payloads) -> Checker<'a> {
        let target: Vec<i64> = index
            .runs
            .iter()
            .map(|r| r.iter().map(Run::end).max().unwrap_or(0))
            .collect();
        let done = target.iter().map(|&t| t == 0).collect();
        Checker {
            index,
            payloads,
            cursor: vec![0; index.runs.len()],
            next: vec![0; index.runs.len()],
            target,
            done,
            counts: VerifyCounts::default(),
        }
    }

    fn detail(&mut self, text: String) {
        if self.counts.details.len() < MAX_DETAILS {
            self.counts.details.push(text);
        }
    }

    pub(crate) fn on_record(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) {
        let Some(p) = usize::try_from(partition)
            .ok()
            .filter(|&p| p < self.index.runs.len())
        else {
            self.detail(format!("record from unknown partition {partition}"));
            return;
        };
        if self.done[p] || offset < self.next[p] {
            // Past what needs checking, or seen already (the client re-fetched).
            return;
        }
        if offset > self.next[p] {
            self.counts.gaps += 1;
        }
        self.next[p] = offset + 1;

        let index = self.index;
        let runs = &index.runs[p];
        let mut c = self.cursor[p];
        while c < runs.len() && runs[c].end() <= offset {
            c += 1;
        }
        self.cursor[p] = c;
        match runs.get(c).filter(|r| r.offset <= offset) {
            Some(run) => {
                let seq = run.seq + (offset - run.offset) as u64;
                let want_key = encode_key(run.producer, partition, seq);
                let key_ok = key == Some(&want_key[..]);
                let payload_ok =
                    key_ok && payload == Some(self.payloads.get(run.producer, partition, seq));
                if key_ok && payload_ok {
                    self.counts.verified += 1;
                } else {
                    self.counts.mismatched += 1;
                    let found = match key.and_then(decode_key) {
                        Some((pr, pa, sq)) => format!("record ({pr}, {pa}, {sq})"),
                        None => "a record with an unknown key".to_string(),
                    };
                    let what = if key_ok {
                        "a different payload"
                    } else {
                        found.as_str()
                    };
                    let text = format!(
                        "partition {partition} offset {offset}: acknowledged record ({}, {partition}, {seq}) but read {what}",
                        run.producer
                    );
                    self.detail(text);
                }
            }
            None => self.counts.unacked_present += 1,
        }
        if offset + 1 >= self.target[p] {
            self.done[p] = true;
        }
    }

    /// The consumer reached the end of `partition`: nothing more will come.
    pub(crate) fn on_eof(&mut self, partition: i32) {
        if let Some(p) = usize::try_from(partition)
            .ok()
            .filter(|&p| p < self.done.len())
        {
            if !self.done[p] {
                self.done[p] = true;
                let (next, target) = (self.next[p], self.target[p]);
                self.detail(format!(
                    "partition {partition}: log ends at offset {next}, but offsets up to {} were acknowledged",
                    target - 1
                ));
            }
        }
    }

    pub(crate) fn all_done(&self) -> bool {
        self.done.iter().all(|&d| d)
    }

    pub(crate) fn pending_partitions(&self) -> usize {
        self.done.iter().filter(|&&d| !d).count()
    }
}

pub(crate) struct VerifyReport {
    pub(crate) acked: u64,
    pub(crate) counts: VerifyCounts,
    pub(crate) consumer_errors: u64,
    pub(crate) timed_out: bool,
    pub(crate) elapsed: Duration,
    pub(crate) records_read: u64,
}

impl VerifyReport {
    /// Acknowledged records not read back intact.
    pub(crate) fn missing(&self) -> u64 {
        self.acked
            .saturating_sub(self.counts.verified + self.counts.mismatched)
    }

    pub(crate) fn ok(&self) -> bool {
        self.acked > 0 && self.counts.verified == self.acked && !self.timed_out
    }
}

struct VerifyContext;

impl ClientContext for VerifyContext {}
impl ConsumerContext for VerifyContext {}

/// Reads every partition from offset 0 until all acknowledged offsets were seen (or the
/// partition ends, or `timeout` passes) and checks them.
pub(crate) fn verify(
    bootstrap: &str,
    topic: &str,
    index: &AckIndex,
    payloads: &Payloads,
    timeout: Duration,
) -> Result<VerifyReport> {
    let start = Instant::now();
    let deadline = start + timeout;
    let consumer: BaseConsumer<VerifyContext> = consumer_config(
        bootstrap,
        "sluice-overload-verify",
        52_428_800,
        10_485_760,
        65_536,
    )
    .create_with_context(VerifyContext)
    .context("creating the verifying consumer")?;
    let partitions = i32::try_from(index.partitions()).context("partition count")?;
    consumer
        .assign(&all_from_beginning(topic, partitions)?)
        .context("assigning partitions to the verifying consumer")?;

    let mut checker = Checker::new(index, payloads);
    let mut consumer_errors = 0u64;
    let mut records_read = 0u64;
    let mut last_progress = Instant::now();
    while !checker.all_done() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records_read += 1;
                checker.on_record(m.partition(), m.offset(), m.key(), m.payload());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => checker.on_eof(p),
            Some(Err(e)) => {
                consumer_errors += 1;
                if consumer_errors <= MAX_DETAILS as u64 {
                    eprintln!("verify: consumer error: {e}");
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!(
                "verify: {} of {} acknowledged records checked, {} partitions to go, {:.0}s",
                checker.counts.verified + checker.counts.mismatched,
                index.total,
                checker.pending_partitions(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let timed_out = !checker.all_done();
    drop(consumer);
    Ok(VerifyReport {
        acked: index.total,
        counts: checker.counts,
        consumer_errors,
        timed_out,
        elapsed: start.elapsed(),
        records_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(partitions: usize, producer: u32, acks: &[(i32, i64, u64)]) -> AckLog {
        let mut log = AckLog::new(partitions);
        for &(p, off, seq) in acks {
            assert!(log.push(producer, p, off, seq));
        }
        log
    }

    #[test]
    fn runs_compress_consecutive_acks() {
        let mut log = AckLog::new(2);
        for i in 0..1000 {
            assert!(log.push(1, 0, 10 + i, i as u64));
        }
        assert_eq!(log.run_count(), 1);
        assert!(log.push(1, 0, 2000, 1000)); // offset jump: a new run
        assert!(log.push(1, 1, 0, 0));
        assert_eq!(log.run_count(), 3);
        assert!(!log.push(1, 2, 0, 0));
        assert!(!log.push(1, -1, 0, 0));
    }

    #[test]
    fn index_detects_double_acks() {
        let a = log_of(1, 1, &[(0, 0, 0), (0, 1, 1), (0, 2, 2)]);
        let b = log_of(1, 2, &[(0, 2, 0), (0, 3, 1)]);
        let idx = AckIndex::build(1, [a, b]);
        assert_eq!(idx.total, 5);
        assert_eq!(idx.double_acks, 1);
        assert_eq!(idx.run_count(), 2);
    }

    #[test]
    fn checker_accepts_good_and_flags_bad_records() {
        let payloads = Payloads::new(64);
        // producer 1 -> partition 0 offsets 0..3 (seq 0..3); producer 2 -> offsets 4..6
        // (offset 3 unacknowledged); partition 1 has acks up to offset 1.
        let a = log_of(2, 1, &[(0, 0, 0), (0, 1, 1), (0, 2, 2)]);
        let b = log_of(2, 2, &[(0, 4, 0), (0, 5, 1), (1, 0, 0), (1, 1, 1)]);
        let idx = AckIndex::build(2, [a, b]);
        let mut c = Checker::new(&idx, &payloads);
        let rec =
            |pr: u32, pa: i32, sq: u64| (encode_key(pr, pa, sq), payloads.get(pr, pa, sq).to_vec());

        for (off, (pr, sq)) in [
            (0, (1, 0)),
            (1, (1, 1)),
            (1, (1, 1)),
            (2, (1, 2)),
            (3, (1, 9)),
            (4, (2, 0)),
        ] {
            let (k, v) = rec(pr, 0, sq);
            c.on_record(0, off, Some(&k), Some(&v));
        }
        // offset 5 holds the wrong payload
        let (k, _) = rec(2, 0, 1);
        c.on_record(0, 5, Some(&k), Some(&[0u8; 64]));
        assert!(!c.all_done());
        // partition 1 ends after offset 0: offset 1 is missing
        let (k, v) = rec(2, 1, 0);
        c.on_record(1, 0, Some(&k), Some(&v));
        c.on_eof(1);
        assert!(c.all_done());

        assert_eq!(c.counts.verified, 5);
        assert_eq!(c.counts.mismatched, 1);
        assert_eq!(c.counts.unacked_present, 1);
        assert_eq!(c.counts.gaps, 0);
        let report = VerifyReport {
            acked: idx.total,
            counts: c.counts,
            consumer_errors: 0,
            timed_out: false,
            elapsed: Duration::ZERO,
            records_read: 0,
        };
        assert_eq!(report.acked, 7);
        assert_eq!(report.missing(), 1);
        assert!(!report.ok());
    }
}
