//! Key compaction (the `jobs` role): for topics whose `cleanup.policy` includes
//! `compact`, keeps only the last record of each key, as Kafka's log cleaner does. Unlike
//! [`crate::compaction`] (which only merges small files) this changes what a reader sees:
//! superseded records, expired tombstones and aborted transactions' records go. Offsets of
//! the records that stay never change (gaps are normal in a compacted log).
//!
//! A pass, once per cluster (lease `key-compaction`), for every partition of such a topic:
//! 1. **Is it due?** The *cleanable section* is the run of batches from the start up to
//!    the first one that is the partition's last batch (the active head is never
//!    compacted), reaches the last stable offset, or was committed less than
//!    `min.compaction.lag.ms` ago. Its *dirty* part is what lies at or after
//!    `partitions.cleaned_offset`. A pass compacts when the dirty bytes are at least
//!    `min.cleanable.dirty.ratio` of the section's, when the oldest dirty batch is older
//!    than `max.compaction.lag.ms`, or when a cleaned tombstone or marker has outlived
//!    `delete.retention.ms` (`partitions.tombstones_at_ms`).
//! 2. **Key map.** The batches from the cleaned offset up to the last stable offset
//!    (head included: a key written later supersedes the section's copies) are read and
//!    every key's last offset noted, skipping aborted transactions' records. The read
//!    stops after [`MAX_INPUT_BYTES`] or [`MAX_MAP_KEYS`] keys; the section then ends
//!    there and the next pass continues. The map is the main memory cost: 16 bytes of
//!    key digest (SHA-256, truncated) and 8 of offset per key, about 32 bytes with the
//!    table's overhead, so 32 MiB at the key cap.
//! 3. **Rewrite.** The section's batches are read in windows of at most
//!    [`MAX_INPUT_BYTES`] and each record judged by [`record_fate`]: the last of its key,
//!    a null key (never dropped silently) or a young tombstone stays; a superseded record,
//!    an aborted transaction's record and a tombstone older than `delete.retention.ms`
//!    that an earlier pass already cleaned go. Markers go like such tombstones (their
//!    transaction's data in the section is gone by then: aborted data goes at once,
//!    committed data needs no marker), and with an abort marker its `aborted_txns` row.
//!    A batch that loses records is re-encoded (same producer, epoch, sequence of its
//!    first kept record, flags and compression; base offset = its first kept record,
//!    last offset = its last kept record: the encoder sets lastOffsetDelta from the
//!    records); a batch left empty disappears; untouched batches stay where they are.
//! 4. **Swap.** A window's rewritten batches go into one new object, then one metadata
//!    transaction ([`Metadata::swap_key_compacted`]) replaces their rows, only if every
//!    replaced row still points where it did. The last window also advances
//!    `cleaned_offset` to the section's end.
//!
//! # Consistency
//! * Object first, then the transaction. A crash in between leaves an orphan the
//!   retention job's collector deletes. A swap that finds a row changed (retention,
//!   segment compaction, topic deletion) changes nothing; the partition waits for the
//!   next pass and the object is deleted at once (or left to the collector if that fails).
//!   A swap whose outcome is unknown keeps its object (an orphan if it did not commit).
//! * Only rows that change are checked and replaced: an untouched batch that segment
//!   compaction moves meanwhile does not matter to the result.
//! * Replaced objects become unreferenced; [`crate::retention`]'s collector deletes them
//!   after its grace, so a fetch that resolved its rows just before still reads them.
//! * `cleaned_offset` advances only when every window of the pass went through, so a
//!   tombstone is removed only by a pass after the one that first cleaned it.
//!
//! # Bounds
//! * Memory per pass: the key map (at most [`MAX_MAP_KEYS`], about 32 MiB) plus one
//!   window: its input (at most [`MAX_INPUT_BYTES`], or one larger batch) and its
//!   rewritten output (no larger than the input but for codec overhead), so about
//!   100–200 MiB at worst. Decoding runs on the blocking pool under the decompression
//!   bound, in parts of [`CPU_PART_BYTES`], each batch inflated to at most
//!   [`decompress::DEFAULT_LIMIT`].
//! * Reads per pass: the key map reads at most [`MAX_INPUT_BYTES`] of new data per
//!   partition (the next pass continues from where it stopped); the rewrite reads the
//!   section from the log start, cleaned part included (as Kafka's cleaner does: a key
//!   updated now may supersede a record cleaned long ago). A pass stops starting windows
//!   at its deadline (two intervals and a second, well inside its lease); a partition
//!   cut short there keeps its cleaned offset and is swept again next pass.
//!
//! [`Metadata::swap_key_compacted`]: crate::store::Metadata::swap_key_compacted

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::decompress;
use crate::segment::SegmentBuilder;
use crate::state::Broker;
use crate::store::{
    CompactedFile, KeyCompactionRow, KeyCompactionSwap, KeyCompactionTopic, ReplacedRow,
    RewrittenBatch,
};
use crate::topic_config;

mod rules;

pub use rules::{
    compacts, digest, is_due, marker_dropped, note_records, record_fate, AbortedRanges, BatchFacts,
    Fate, KeyDigest, OffsetMap, RecordFacts, Rules, Settings,
};
use rules::{decode, facts, judge, record_facts, Judge, Outcome};

/// Batch bytes read per partition and pass for the key map, and per rewrite window.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;
/// Keys in the map at most (about 32 MiB of memory).
pub const MAX_MAP_KEYS: usize = 1 << 20;
/// Rows read per metadata query.
const PAGE_ROWS: i64 = 5_000;
/// Stored bytes decoded per blocking call at most (a part holds one batch at least).
const CPU_PART_BYTES: u64 = 4 << 20;
/// Ranged reads in flight.
const READ_CONCURRENCY: usize = 4;

// ---------------------------------------------------------------------------------------
// The pass.
// ---------------------------------------------------------------------------------------

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyCompactionReport {
    /// Partitions whose pass went through to the end (cleaned offset advanced).
    pub partitions_cleaned: u64,
    pub batches_rewritten: u64,
    pub batches_removed: u64,
    pub records_removed: u64,
    pub markers_removed: u64,
    /// Stored bytes of the batches rewritten or removed.
    pub bytes_rewritten: u64,
    pub objects_written: u64,
    pub swaps_abandoned: u64,
    pub partitions_failed: u64,
}

/// One key compaction pass over every partition of every compacted topic at `now`.
pub async fn run_once(broker: &Broker, now: i64) -> anyhow::Result<KeyCompactionReport> {
    pass(broker, now, &|| false).await
}

async fn pass(
    broker: &Broker,
    now: i64,
    stop: &(dyn Fn() -> bool + Sync),
) -> anyhow::Result<KeyCompactionReport> {
    let mut report = KeyCompactionReport::default();
    let topics = broker
        .meta
        .key_compaction_topics()
        .await
        .context("listing compacted topics")?;
    'topics: for topic in topics {
        if !compacts(topic_config::get(&topic.configs, "cleanup.policy")) {
            continue;
        }
        let settings = Settings::from_configs(&topic.configs);
        for partition in 0..topic.partitions {
            if stop() {
                break 'topics;
            }
            if let Err(e) =
                compact_partition(broker, &topic, partition, &settings, now, stop, &mut report)
                    .await
            {
                report.partitions_failed += 1;
                tracing::warn!(
                    error = format!("{e:#}"),
                    topic_id = topic.topic_id,
                    partition,
                    "key compaction of a partition failed; it waits for the next pass"
                );
            }
        }
    }
    let m = &broker.metrics;
    m.key_compaction_records_removed
        .inc_by(report.records_removed);
    m.key_compaction_bytes_rewritten
        .inc_by(report.bytes_rewritten);
    m.key_compaction_objects_written
        .inc_by(report.objects_written);
    m.key_compaction_swaps_abandoned
        .inc_by(report.swaps_abandoned);
    Ok(report)
}

/// Rows of `[from, before)` in pages, cut into windows of at most [`MAX_INPUT_BYTES`]
/// (at least one row each).
struct Windows {
    topic_id: i64,
    partition: i32,
    from: i64,
    before: i64,
    page: std::collections::VecDeque<KeyCompactionRow>,
    exhausted: bool,
}

impl Windows {
    fn new(topic_id: i64, partition: i32, from: i64, before: i64) -> Self {
        Windows {
            topic_id,
            partition,
            from,
            before,
            page: Default::default(),
            exhausted: false,
        }
    }

    /// The next window; empty once every row was handed out.
    async fn next(&mut self, broker: &Broker) -> anyhow::Result<Vec<KeyCompactionRow>> {
        let mut window = Vec::new();
        let mut bytes = 0u64;
        loop {
            if self.page.is_empty() && !self.exhausted {
                let rows = broker
                    .meta
                    .key_compaction_rows(
                        self.topic_id,
                        self.partition,
                        self.from,
                        self.before,
                        PAGE_ROWS,
                    )
                    .await
                    .context("reading batch rows to compact")?;
                self.exhausted = (rows.len() as i64) < PAGE_ROWS;
                if let Some(last) = rows.last() {
                    self.from = last.base_offset + 1;
                }
                self.page.extend(rows);
            }
            let Some(row) = self.page.front() else {
                return Ok(window);
            };
            if !window.is_empty() && bytes + row.byte_len > MAX_INPUT_BYTES {
                return Ok(window);
            }
            bytes += row.byte_len;
            window.extend(self.page.pop_front());
        }
    }
}

/// Reads the stored bytes of `rows` (adjacent batches of one object in one ranged read).
async fn read_rows(broker: &Broker, rows: &[KeyCompactionRow]) -> anyhow::Result<Vec<Bytes>> {
    let mut spans: Vec<(String, u64, u64, std::ops::Range<usize>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(last) = spans.last_mut() {
            if rows[last.3.start].file_id == r.file_id && last.2 == r.byte_offset {
                last.2 += r.byte_len;
                last.3.end = i + 1;
                continue;
            }
        }
        spans.push((
            r.object_key.clone(),
            r.byte_offset,
            r.byte_offset + r.byte_len,
            i..i + 1,
        ));
    }
    let reads: Vec<_> = spans
        .iter()
        .map(|(key, start, end, _)| {
            let (bucket, key, range) = (broker.bucket.clone(), key.clone(), *start..*end);
            async move {
                bucket
                    .get_range(&key, range.clone())
                    .await
                    .with_context(|| format!("reading {}..{} of {key}", range.start, range.end))
            }
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(READ_CONCURRENCY);
    let mut out = Vec::with_capacity(rows.len());
    for (key, start, end, members) in &spans {
        let bytes: Bytes = reads.next().await.context("one read per span")??;
        anyhow::ensure!(
            bytes.len() as u64 == end - start,
            "{key} is shorter than its batch rows say"
        );
        for r in &rows[members.clone()] {
            let at = (r.byte_offset - start) as usize;
            out.push(bytes.slice(at..at + r.byte_len as usize));
        }
    }
    Ok(out)
}

/// Cuts a window into parts of about [`CPU_PART_BYTES`] (at least one row each), so that
/// one blocking call holds a decompression slot for tens of milliseconds, not seconds.
fn cpu_parts(rows: &[KeyCompactionRow]) -> Vec<std::ops::Range<usize>> {
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    let mut bytes = 0u64;
    for (i, r) in rows.iter().enumerate() {
        match parts.last_mut() {
            Some(p) if bytes + r.byte_len <= CPU_PART_BYTES => {
                p.end = i + 1;
                bytes += r.byte_len;
            }
            _ => {
                parts.push(i..i + 1);
                bytes = r.byte_len;
            }
        }
    }
    parts
}

/// Runs CPU work on the blocking pool, under the decompression bound.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    decompress::run_blocking(move || Ok(work()))
        .await
        .context("running compaction work on the blocking pool")?
}

async fn compact_partition(
    broker: &Broker,
    topic: &KeyCompactionTopic,
    partition: i32,
    settings: &Settings,
    now: i64,
    stop: &(dyn Fn() -> bool + Sync),
    report: &mut KeyCompactionReport,
) -> anyhow::Result<()> {
    let topic_id = topic.topic_id;
    let Some(state) = broker
        .meta
        .key_compaction_state(topic_id, partition, now.saturating_sub(settings.min_lag_ms))
        .await
        .context("reading the partition's compaction state")?
    else {
        return Ok(());
    };
    if !is_due(&state, settings, now) {
        return Ok(());
    }
    let uuid = Uuid::parse_str(&topic.topic_uuid).context("reading a topic uuid")?;
    let aborted = Arc::new(AbortedRanges::new(
        broker
            .meta
            .key_compaction_aborted(topic_id, partition, state.last_stable_offset)
            .await
            .context("reading aborted transactions")?,
    ));

    // The key map: from the cleaned offset to the last stable offset, within the budget.
    let map_start = state.cleaned_offset.max(state.log_start_offset);
    let mut map = OffsetMap::default();
    let mut scanned = 0u64;
    let mut map_end: Option<i64> = None;
    let mut windows = Windows::new(topic_id, partition, map_start, state.last_stable_offset);
    loop {
        let rows = windows.next(broker).await?;
        let Some(last) = rows.last() else { break };
        let last_offset = last.last_offset;
        scanned += rows.iter().map(|r| r.byte_len).sum::<u64>();
        let bytes = read_rows(broker, &rows).await?;
        for part in cpu_parts(&rows) {
            let (rows, bytes) = (rows[part.clone()].to_vec(), bytes[part].to_vec());
            let (ranges, cleaned) = (aborted.clone(), state.cleaned_offset);
            map = blocking(move || {
                for (row, b) in rows.iter().zip(&bytes) {
                    if row.control {
                        continue;
                    }
                    let (_, records) = decode(row, b)?;
                    let f = facts(row, cleaned);
                    note_records(records.iter().map(record_facts), &f, &mut map, &ranges);
                }
                Ok(map)
            })
            .await?;
        }
        if scanned >= MAX_INPUT_BYTES || map.len() >= MAX_MAP_KEYS {
            map_end = Some(last_offset + 1);
            break;
        }
    }
    let section_end = map_end.map_or(state.cleanable_end, |e| e.min(state.cleanable_end));

    let rules = Rules {
        now,
        delete_retention_ms: settings.delete_retention_ms,
    };
    let cx = Arc::new(Judge {
        map,
        aborted,
        rules,
        cleaned_offset: state.cleaned_offset,
    });
    let mut lingering: Option<i64> = None;
    let mut windows = Windows::new(topic_id, partition, 0, section_end);
    loop {
        let rows = windows.next(broker).await?;
        let last = windows.page.is_empty() && windows.exhausted;
        let bytes = read_rows(broker, &rows).await?;
        let mut judged = Vec::with_capacity(rows.len());
        for part in cpu_parts(&rows) {
            let (rows, bytes, cx) = (
                rows[part.clone()].to_vec(),
                bytes[part].to_vec(),
                cx.clone(),
            );
            judged.extend(
                blocking(move || {
                    rows.iter()
                        .zip(&bytes)
                        .map(|(row, b)| judge(row, b, &cx))
                        .collect::<anyhow::Result<Vec<Outcome>>>()
                })
                .await?,
            );
        }
        drop(bytes);
        for (row, outcome) in rows.iter().zip(&judged) {
            let lingers = match outcome {
                Outcome::Unchanged { lingers } | Outcome::Rewritten { lingers, .. } => *lingers,
                Outcome::Dropped { .. } => false,
            };
            if lingers {
                lingering =
                    Some(lingering.map_or(row.committed_at_ms, |t| t.min(row.committed_at_ms)));
            }
        }
        let cleaned = last.then(|| {
            // A section that ends before the old cleaned offset leaves tombstones past its
            // end unjudged: keep what was known of them.
            let at = if section_end >= state.cleaned_offset {
                lingering
            } else {
                match (lingering, state.tombstones_at_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            (section_end, at)
        });
        if !swap_window(
            broker, uuid, topic_id, partition, &rows, judged, cleaned, report,
        )
        .await?
        {
            return Ok(());
        }
        if last {
            report.partitions_cleaned += 1;
            return Ok(());
        }
        if stop() {
            return Ok(());
        }
    }
}

/// Writes a window's rewritten batches and swaps them in; false when the swap was given
/// up (a row changed meanwhile).
#[allow(clippy::too_many_arguments)]
async fn swap_window(
    broker: &Broker,
    uuid: Uuid,
    topic_id: i64,
    partition: i32,
    rows: &[KeyCompactionRow],
    judged: Vec<Outcome>,
    cleaned: Option<(i64, Option<i64>)>,
    report: &mut KeyCompactionReport,
) -> anyhow::Result<bool> {
    let mut builder = SegmentBuilder::default();
    let mut replaced = Vec::new();
    let mut rewritten = Vec::new();
    let mut dropped_markers = Vec::new();
    let (mut records_removed, mut bytes_in, mut removed_batches, mut markers) = (0, 0, 0, 0);
    for (row, outcome) in rows.iter().zip(judged) {
        let replace = ReplacedRow {
            base_offset: row.base_offset,
            file_id: row.file_id,
            byte_offset: row.byte_offset,
        };
        match outcome {
            Outcome::Unchanged { .. } => continue,
            Outcome::Dropped { records, marker } => {
                records_removed += records;
                removed_batches += 1;
                if marker {
                    markers += 1;
                    dropped_markers.push(row.base_offset);
                }
            }
            Outcome::Rewritten {
                bytes,
                base_offset,
                last_offset,
                record_count,
                removed,
                ..
            } => {
                records_removed += removed;
                let at = builder.push(uuid, partition, &bytes, record_count, row.max_timestamp);
                rewritten.push(RewrittenBatch {
                    base_offset,
                    last_offset,
                    byte_offset: at,
                    byte_len: bytes.len() as u64,
                    record_count,
                    max_timestamp: row.max_timestamp,
                    producer_id: row.producer_id,
                    transactional: row.transactional,
                    control: row.control,
                    committed_at_ms: row.committed_at_ms,
                });
            }
        }
        bytes_in += row.byte_len;
        replaced.push(replace);
    }
    if replaced.is_empty() && cleaned.is_none() {
        return Ok(true);
    }
    let key = rewritten.first().map(|b| {
        format!(
            "segments/key-compacted/{uuid}/{partition}/{:020}-{}.seg",
            b.base_offset,
            Uuid::new_v4().simple()
        )
    });
    let object = (!rewritten.is_empty()).then(|| builder.finish());
    if let (Some(key), Some(object)) = (&key, &object) {
        broker
            .bucket
            .put_new(key, object.clone())
            .await
            .with_context(|| format!("uploading compacted segment {key}"))?;
    }
    let file = key
        .as_deref()
        .zip(object.as_ref())
        .map(|(k, o)| CompactedFile {
            object_key: k,
            size_bytes: o.len() as u64,
            agent_id: &broker.agent_id,
            created_at_ms: now_ms(),
        });
    // On a database error the swap may have committed: keep the object (an orphan if not).
    let swapped = broker
        .meta
        .swap_key_compacted(
            topic_id,
            partition,
            KeyCompactionSwap {
                file,
                replaced: &replaced,
                rewritten: &rewritten,
                dropped_markers: &dropped_markers,
                cleaned,
            },
        )
        .await
        .context("swapping in compacted batches")?;
    if !swapped {
        report.swaps_abandoned += 1;
        tracing::info!(
            topic_id,
            partition,
            "batch rows changed during key compaction; the partition waits for the next pass"
        );
        if let Some(key) = &key {
            // Left to the orphan collector if this fails.
            if let Err(e) = broker.bucket.delete(key).await {
                tracing::warn!(error = %e, %key, "deleting an abandoned compacted segment failed");
            }
        }
        return Ok(false);
    }
    report.records_removed += records_removed;
    report.bytes_rewritten += bytes_in;
    report.batches_rewritten += rewritten.len() as u64;
    report.batches_removed += removed_batches;
    report.markers_removed += markers;
    report.objects_written += object.is_some() as u64;
    Ok(true)
}

/// Runs key compaction passes until `cancel` fires, one per `--compaction-interval`.
pub async fn run(broker: Arc<Broker>, cancel: CancellationToken) {
    let interval = broker.config.compaction_interval;
    // A pass stops starting windows well before its lease (3 intervals + 5 s) could lapse.
    let budget = interval * 2 + Duration::from_secs(1);
    while broker
        .membership
        .next_pass("key-compaction", interval, &cancel)
        .await
    {
        let deadline = Instant::now() + budget;
        let stop = || cancel.is_cancelled() || Instant::now() >= deadline;
        match pass(&broker, now_ms(), &stop).await {
            Ok(r) => {
                if r.partitions_failed > 0 {
                    broker.metrics.key_compaction_pass_failures.inc();
                }
                if r != KeyCompactionReport::default() {
                    tracing::info!(
                        partitions_cleaned = r.partitions_cleaned,
                        batches_rewritten = r.batches_rewritten,
                        batches_removed = r.batches_removed,
                        records_removed = r.records_removed,
                        markers_removed = r.markers_removed,
                        bytes_rewritten = r.bytes_rewritten,
                        objects_written = r.objects_written,
                        swaps_abandoned = r.swaps_abandoned,
                        partitions_failed = r.partitions_failed,
                        "key compaction pass"
                    );
                }
            }
            Err(e) => {
                broker.metrics.key_compaction_pass_failures.inc();
                tracing::warn!(
                    error = format!("{e:#}"),
                    "key compaction pass failed; retrying next interval"
                );
            }
        }
    }
}
