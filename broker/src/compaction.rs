//! Segment compaction (the `jobs` role): merges a partition's batches that live in small
//! segment files into large objects holding that partition only, so a catch-up read
//! touches a few large objects instead of thousands of small ones. This is physical
//! merging, not Kafka's key compaction (`cleanup.policy=compact`): every batch is kept.
//!
//! A pass, once per cluster (lease `compaction`), for every partition with settled batches
//! (committed more than [`SETTLE_MS`] ago) in at least two files smaller than half of
//! `--compaction-target-size`:
//! 1. [`Planner`] cuts the partition's rows, in offset order, into runs of consecutive
//!    batches in such small files, each run at most the target size (with its footer) and
//!    [`MAX_RUN_ROWS`] rows, spanning at least two files; a leading file much larger than
//!    the rest of its run is left out (so a slow partition's growing output is not
//!    rewritten for every few new batches: sizes grow geometrically, as in a tiered LSM).
//! 2. The run's bytes are read with ranged GETs (adjacent batches of one file coalesced,
//!    a few reads in flight) and copied byte for byte into a new segment object with the
//!    usual footer; memory is bounded by the target size.
//! 3. Upload, then one metadata transaction ([`Metadata::swap_compacted`]) records the new
//!    file and repoints each batch row only where it still points at the file it was
//!    copied from.
//!
//! # Consistency
//! * Readers never see a gap or a duplicate: offsets, lengths and timestamps of a row
//!   never change, only the (file, byte offset) its identical bytes are read from.
//! * Upload first, then the transaction. A crash in between leaves an object without a
//!   row, deleted by the retention job's orphan collection. A swap that finds a row moved
//!   (retention advanced the log start, another pass got there first, the topic was
//!   deleted) changes nothing, and the new object is deleted at once. A swap whose outcome
//!   is unknown (the database failed) keeps its object: if it did not commit, the object
//!   is an orphan and collected as such.
//! * Input files whose rows all moved are unreferenced; the garbage collector in
//!   [`crate::retention`] deletes them after two passes and `--segment-delete-grace`, so a
//!   fetch that resolved its rows just before the swap still reads them (and Fetch
//!   re-resolves its rows once if an object is gone anyway).
//!
//! [`Metadata::swap_compacted`]: crate::store::Metadata::swap_compacted

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::{HEADER_LEN, LOG_OVERHEAD};
use crate::clock::now_ms;
use crate::segment::SegmentBuilder;
use crate::state::Broker;
use crate::store::{CompactedFile, CompactionCandidate, CompactionRow, MovedBatch};

/// Batches committed this recently are left alone: tailing consumers read them from the
/// producer side's cache, and the next pass merges them with what came after.
pub const SETTLE_MS: i64 = 5_000;
/// Batch rows per merged object at most (bounds the planner's memory and the swap).
pub const MAX_RUN_ROWS: usize = 50_000;
/// Footer bytes per batch and fixed trailer bytes of a segment object.
const FOOTER_ENTRY: u64 = 44;
const FOOTER_TRAILER: u64 = 12;
/// Rows read per metadata query.
const PAGE_ROWS: i64 = 5_000;
/// Ranged reads in flight while a run is copied.
const READ_CONCURRENCY: usize = 4;
/// Partitions looked at per pass at most.
const MAX_PARTITIONS: i64 = 100_000;

/// Cuts a partition's rows (fed in offset order) into runs worth merging. Pure: no I/O.
pub struct Planner {
    target: u64,
    small_below: u64,
    settled_before: i64,
    open: Vec<CompactionRow>,
    open_bytes: u64,
}

impl Planner {
    /// Merged objects of at most `target` bytes, from files under half of it, of batches
    /// committed before `settled_before`.
    pub fn new(target: u64, settled_before: i64) -> Self {
        Planner {
            target,
            small_below: target / 2,
            settled_before,
            open: Vec::new(),
            open_bytes: 0,
        }
    }

    fn eligible(&self, r: &CompactionRow) -> bool {
        r.file_size < self.small_below && r.committed_at_ms < self.settled_before
    }

    /// Feeds the next row; returns a run that it completed, if one is worth merging.
    pub fn push(&mut self, row: CompactionRow) -> Option<Vec<CompactionRow>> {
        if !self.eligible(&row) {
            return self.finish();
        }
        let cost = row.byte_len + FOOTER_ENTRY;
        let full = !self.open.is_empty()
            && (self.open_bytes + cost + FOOTER_TRAILER > self.target
                || self.open.len() >= MAX_RUN_ROWS);
        let done = if full { self.finish() } else { None };
        self.open_bytes += cost;
        self.open.push(row);
        done
    }

    /// Closes the open run; returns it if it is worth merging.
    pub fn finish(&mut self) -> Option<Vec<CompactionRow>> {
        self.open_bytes = 0;
        worth_merging(std::mem::take(&mut self.open))
    }
}

/// Drops leading files that hold more than twice the bytes of the rest of the run, then
/// keeps the run only if it spans two files or more.
fn worth_merging(mut run: Vec<CompactionRow>) -> Option<Vec<CompactionRow>> {
    loop {
        let first_file = run.first()?.file_id;
        let lead = run.iter().take_while(|r| r.file_id == first_file).count();
        let lead_bytes: u64 = run[..lead].iter().map(|r| r.byte_len).sum();
        let rest_bytes: u64 = run[lead..].iter().map(|r| r.byte_len).sum();
        if lead == run.len() {
            return None;
        }
        if lead_bytes > 2 * rest_bytes {
            run.drain(..lead);
            continue;
        }
        return Some(run);
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub objects_written: u64,
    pub batches_moved: u64,
    pub files_released: u64,
    pub bytes_rewritten: u64,
    pub swaps_abandoned: u64,
    pub runs_failed: u64,
}

/// One compaction pass over every partition, merging into objects of at most `target`
/// bytes; stops starting new merges after `deadline`.
pub async fn run_once(
    broker: &Broker,
    target: u64,
    now: i64,
    deadline: Option<Instant>,
) -> anyhow::Result<PassReport> {
    let mut report = PassReport::default();
    let settled_before = now - SETTLE_MS;
    let candidates = broker
        .meta
        .compaction_candidates(target / 2, settled_before, MAX_PARTITIONS)
        .await
        .context("listing partitions to compact")?;
    for cand in candidates {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        compact_partition(broker, &cand, target, settled_before, deadline, &mut report).await?;
    }
    let m = &broker.metrics;
    m.compaction_objects_written.inc_by(report.objects_written);
    m.compaction_batches_moved.inc_by(report.batches_moved);
    m.compaction_segments_merged.inc_by(report.files_released);
    m.compaction_bytes_rewritten.inc_by(report.bytes_rewritten);
    m.compaction_swaps_abandoned.inc_by(report.swaps_abandoned);
    Ok(report)
}

async fn compact_partition(
    broker: &Broker,
    cand: &CompactionCandidate,
    target: u64,
    settled_before: i64,
    deadline: Option<Instant>,
    report: &mut PassReport,
) -> anyhow::Result<()> {
    let topic = Uuid::parse_str(&cand.topic_uuid).context("reading a topic uuid")?;
    let mut planner = Planner::new(target, settled_before);
    let mut from = cand.first_small_offset;
    'pages: loop {
        let rows = broker
            .meta
            .compaction_rows(cand.topic_id, cand.partition, from, PAGE_ROWS)
            .await
            .context("reading batch rows to compact")?;
        let full = rows.len() as i64 == PAGE_ROWS;
        for row in rows {
            from = row.last_offset + 1;
            let settled = row.committed_at_ms < settled_before;
            if let Some(run) = planner.push(row) {
                if !merge(broker, topic, cand, run, report).await {
                    return Ok(());
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(());
                }
            }
            if !settled {
                // Everything after this row is newer still.
                break 'pages;
            }
        }
        if !full {
            break;
        }
    }
    if let Some(run) = planner.finish() {
        merge(broker, topic, cand, run, report).await;
    }
    Ok(())
}

/// Merges one run, counting the outcome; false when it failed (the partition is skipped
/// for the rest of the pass).
async fn merge(
    broker: &Broker,
    topic: Uuid,
    cand: &CompactionCandidate,
    run: Vec<CompactionRow>,
    report: &mut PassReport,
) -> bool {
    match merge_run(broker, topic, cand, &run).await {
        Ok(Merged::Swapped {
            files_released,
            bytes,
        }) => {
            report.objects_written += 1;
            report.batches_moved += run.len() as u64;
            report.files_released += files_released;
            report.bytes_rewritten += bytes;
            true
        }
        Ok(Merged::Abandoned) => {
            report.swaps_abandoned += 1;
            true
        }
        Err(e) => {
            report.runs_failed += 1;
            tracing::warn!(
                error = format!("{e:#}"),
                topic_id = cand.topic_id,
                partition = cand.partition,
                first_offset = run.first().map(|r| r.base_offset),
                "merging segments failed; the partition waits for the next pass"
            );
            false
        }
    }
}

enum Merged {
    Swapped { files_released: u64, bytes: u64 },
    Abandoned,
}

/// A ranged read covering adjacent batches `rows` of one object.
struct Span<'a> {
    key: &'a str,
    start: u64,
    end: u64,
    rows: std::ops::Range<usize>,
}

/// Adjacent batches of one file become one read.
fn coalesce(run: &[CompactionRow]) -> Vec<Span<'_>> {
    let mut spans: Vec<Span<'_>> = Vec::new();
    for (i, r) in run.iter().enumerate() {
        if let Some(last) = spans.last_mut() {
            if run[last.rows.start].file_id == r.file_id && last.end == r.byte_offset {
                last.end += r.byte_len;
                last.rows.end = i + 1;
                continue;
            }
        }
        spans.push(Span {
            key: &r.object_key,
            start: r.byte_offset,
            end: r.byte_offset + r.byte_len,
            rows: i..i + 1,
        });
    }
    spans
}

/// The checks a stored batch passes cheaply: a v2 header whose length field matches the
/// row's length.
fn looks_like_batch(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as i64
            == bytes.len() as i64 - LOG_OVERHEAD as i64
        && bytes[16] == 2
}

async fn merge_run(
    broker: &Broker,
    topic: Uuid,
    cand: &CompactionCandidate,
    run: &[CompactionRow],
) -> anyhow::Result<Merged> {
    let data_len: u64 = run.iter().map(|r| r.byte_len).sum();
    let mut builder = SegmentBuilder::with_capacity(
        (data_len + run.len() as u64 * FOOTER_ENTRY + FOOTER_TRAILER) as usize,
    );
    let spans = coalesce(run);
    // Owned futures, collected first: a stream over borrowing closures is not `Send`
    // enough for a spawned task.
    let reads: Vec<_> = spans
        .iter()
        .map(|s| {
            let (bucket, key, range) = (broker.bucket.clone(), s.key.to_string(), s.start..s.end);
            async move {
                bucket
                    .get_range(&key, range.clone())
                    .await
                    .with_context(|| format!("reading {}..{} of {key}", range.start, range.end))
            }
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(READ_CONCURRENCY);
    let mut moved = Vec::with_capacity(run.len());
    for span in &spans {
        let bytes: Bytes = reads.next().await.expect("one read per span")?;
        anyhow::ensure!(
            bytes.len() as u64 == span.end - span.start,
            "{} is shorter than its batch rows say",
            span.key
        );
        for r in &run[span.rows.clone()] {
            let at = (r.byte_offset - span.start) as usize;
            let batch = &bytes[at..at + r.byte_len as usize];
            anyhow::ensure!(
                looks_like_batch(batch),
                "the batch at offset {} in {} is not a record batch",
                r.base_offset,
                span.key
            );
            let new_byte_offset = builder.push(
                topic,
                cand.partition,
                batch,
                r.record_count,
                r.max_timestamp,
            );
            moved.push(MovedBatch {
                base_offset: r.base_offset,
                old_file_id: r.file_id,
                new_byte_offset,
            });
        }
    }
    drop(reads);
    let object = builder.finish();
    let size_bytes = object.len() as u64;
    let key = format!(
        "segments/compacted/{topic}/{}/{:020}-{}.seg",
        cand.partition,
        run[0].base_offset,
        Uuid::new_v4().simple()
    );
    broker
        .bucket
        .put_new(&key, object)
        .await
        .with_context(|| format!("uploading merged segment {key}"))?;
    let file = CompactedFile {
        object_key: &key,
        size_bytes,
        agent_id: &broker.agent_id,
        created_at_ms: now_ms(),
    };
    // On a database error the swap may have committed: keep the object (an orphan if not).
    let swapped = broker
        .meta
        .swap_compacted(cand.topic_id, cand.partition, file, &moved)
        .await
        .with_context(|| format!("swapping in merged segment {key}"))?;
    match swapped {
        Some(done) => Ok(Merged::Swapped {
            files_released: done.files_released,
            bytes: data_len,
        }),
        None => {
            tracing::info!(
                topic_id = cand.topic_id,
                partition = cand.partition,
                %key,
                "batch rows moved during the merge; dropping the merged segment"
            );
            broker
                .bucket
                .delete(&key)
                .await
                .with_context(|| format!("deleting abandoned merged segment {key}"))?;
            Ok(Merged::Abandoned)
        }
    }
}

/// Runs compaction passes until `cancel` fires (returns at once when the target size is
/// 0: compaction disabled).
pub async fn run(broker: Arc<Broker>, cancel: CancellationToken) {
    let target = broker.config.compaction_target_size;
    let interval = broker.config.compaction_interval;
    if target == 0 {
        tracing::info!("segment compaction disabled (--compaction-target-size 0)");
        return;
    }
    // A pass stops starting merges well before its lease (3 intervals + 5 s) could lapse.
    let budget = interval * 2 + Duration::from_secs(1);
    while broker
        .membership
        .next_pass("compaction", interval, &cancel)
        .await
    {
        let deadline = Instant::now() + budget;
        match run_once(&broker, target, now_ms(), Some(deadline)).await {
            Ok(r) => {
                if r.runs_failed > 0 {
                    broker.metrics.compaction_pass_failures.inc();
                }
                if r != PassReport::default() {
                    tracing::info!(
                        objects_written = r.objects_written,
                        batches_moved = r.batches_moved,
                        files_released = r.files_released,
                        bytes_rewritten = r.bytes_rewritten,
                        swaps_abandoned = r.swaps_abandoned,
                        runs_failed = r.runs_failed,
                        "compaction pass"
                    );
                }
            }
            Err(e) => {
                broker.metrics.compaction_pass_failures.inc();
                tracing::warn!(
                    error = format!("{e:#}"),
                    "compaction pass failed; retrying next interval"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(base: i64, file: i64, file_size: u64, len: u64, at: i64) -> CompactionRow {
        CompactionRow {
            base_offset: base,
            last_offset: base,
            file_id: file,
            object_key: format!("segments/f{file}"),
            file_size,
            byte_offset: 0,
            byte_len: len,
            record_count: 1,
            max_timestamp: 0,
            committed_at_ms: at,
        }
    }

    fn plan(planner: &mut Planner, rows: Vec<CompactionRow>) -> Vec<Vec<i64>> {
        let mut out: Vec<Vec<i64>> = rows
            .into_iter()
            .filter_map(|r| planner.push(r))
            .map(|run| run.iter().map(|r| r.base_offset).collect())
            .collect();
        out.extend(
            planner
                .finish()
                .map(|run| run.iter().map(|r| r.base_offset).collect()),
        );
        out
    }

    #[test]
    fn runs_stop_at_large_files_and_new_batches() {
        let mut p = Planner::new(10_000, 100);
        let runs = plan(
            &mut p,
            vec![
                row(0, 1, 100, 50, 0),
                row(1, 2, 100, 50, 0),
                row(2, 9, 6_000, 50, 0), // a large file breaks the run
                row(3, 3, 100, 50, 0),   // alone: not worth it
                row(4, 9, 6_000, 50, 0),
                row(5, 4, 100, 50, 0),
                row(6, 5, 100, 50, 0),
                row(7, 6, 100, 50, 100), // not settled yet
                row(8, 7, 100, 50, 0),
            ],
        );
        assert_eq!(runs, vec![vec![0, 1], vec![5, 6]]);
    }

    #[test]
    fn one_file_is_never_rewritten_alone() {
        let mut p = Planner::new(10_000, 100);
        let runs = plan(&mut p, vec![row(0, 1, 100, 50, 0), row(1, 1, 100, 50, 0)]);
        assert!(runs.is_empty());
    }

    #[test]
    fn runs_are_cut_at_the_target_size() {
        // 1000-byte target: each batch costs 300 + 44 footer bytes, so two fit.
        let mut p = Planner::new(1_000, 100);
        let rows = (0..5).map(|i| row(i, i, 300, 300, 0)).collect();
        let runs = plan(&mut p, rows);
        assert_eq!(runs, vec![vec![0, 1], vec![2, 3]], "the last one is alone");
        for r in &runs {
            let size: u64 = r.len() as u64 * (300 + FOOTER_ENTRY) + FOOTER_TRAILER;
            assert!(size <= 1_000);
        }
    }

    #[test]
    fn a_big_leading_file_waits_for_enough_new_data() {
        let mut p = Planner::new(100_000, 100);
        // A 9000-byte merged output, then three 1000-byte files: left out.
        let mut rows = vec![row(0, 1, 9_000, 9_000, 0)];
        rows.extend((1..4).map(|i| row(i, 10 + i, 1_000, 1_000, 0)));
        assert_eq!(plan(&mut p, rows), vec![vec![1, 2, 3]]);
        // Once the rest holds half of it, it is merged too.
        let mut rows = vec![row(0, 1, 9_000, 9_000, 0)];
        rows.extend((1..6).map(|i| row(i, 10 + i, 1_000, 1_000, 0)));
        assert_eq!(plan(&mut p, rows), vec![vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn adjacent_batches_of_a_file_are_read_together() {
        let mut rows = vec![
            row(0, 1, 100, 10, 0),
            row(1, 1, 100, 20, 0),
            row(2, 2, 100, 10, 0),
            row(3, 1, 100, 10, 0),
        ];
        rows[1].byte_offset = 10;
        rows[3].byte_offset = 60; // a gap: another partition's batch sits between
        let spans = coalesce(&rows);
        let got: Vec<_> = spans
            .iter()
            .map(|s| (s.key, s.start, s.end, s.rows.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("segments/f1", 0, 30, 0..2),
                ("segments/f2", 0, 10, 2..3),
                ("segments/f1", 60, 70, 3..4),
            ]
        );
    }
}
