//! Records: reads one partition (or all) from the newest records, an offset or a time,
//! the way Fetch reads them, and decodes the batches for display.
//!
//! Batches are decoded on the blocking pool by [`super::decode`], with their decompressed
//! size capped at [`MAX_DECOMPRESSED_BATCH`]. A batch that is refused (past the cap,
//! damaged, an unknown codec) does not fail the read: it is shown as one entry at its base
//! offset whose `error` says why, and the records around it are shown as usual.

use bytes::BytesMut;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{topic_not_found, InspectError, MAX_READ_BYTES, MAX_RECORDS, PARTITION_READS};
use crate::state::Broker;
use crate::store::{BatchLocation, TopicMeta};

/// The most one batch may decompress to in the message browser; a batch past it is shown
/// as an error entry instead of its records.
pub const MAX_DECOMPRESSED_BATCH: usize = crate::decompress::DEFAULT_LIMIT;

/// The most decompressed bytes one read holds, all partitions together: many batches each
/// just under [`MAX_DECOMPRESSED_BATCH`] must not add up. A read that reaches it returns the
/// records decoded so far, as the byte cap does.
pub const MAX_DECOMPRESSED_READ: usize = MAX_DECOMPRESSED_BATCH;

/// The decompression budget of one read, shared by its partitions. A batch reserves up to
/// [`MAX_DECOMPRESSED_BATCH`] of it before it is inflated, is inflated with what it got as
/// its limit, and gives back what it did not use, so the budget holds however many
/// partitions decode at once.
pub(super) struct Budget(std::sync::atomic::AtomicUsize);

impl Budget {
    pub(super) fn new() -> Self {
        Budget(std::sync::atomic::AtomicUsize::new(MAX_DECOMPRESSED_READ))
    }

    /// Takes up to one batch's cap; 0 when the budget is spent.
    fn reserve(&self) -> usize {
        use std::sync::atomic::Ordering;
        let mut taken = 0;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                taken = left.min(MAX_DECOMPRESSED_BATCH);
                Some(left - taken)
            });
        taken
    }

    fn give_back(&self, bytes: usize) {
        self.0.fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadFrom {
    /// The last records of the partition.
    Newest,
    /// From this offset on (clamped to the log start).
    Offset(i64),
    /// From the first record with a timestamp at or after this time (ms), as ListOffsets
    /// by time finds it.
    Timestamp(i64),
}

/// One record, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (the broker's append time on `LogAppendTime` topics).
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Set on an entry that stands for a whole batch that is not shown (from `offset` to
    /// the batch's last offset): why, for the person browsing. Key, value and headers are
    /// empty then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordView {
    /// The bytes of key, value and headers this record holds.
    pub fn decoded_len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

/// Up to `limit` (at most [`MAX_RECORDS`]) records of one partition in offset order.
/// Transaction markers are skipped.
pub async fn read_records(
    broker: &Broker,
    cluster: &str,
    topic: &str,
    partition: i32,
    from: ReadFrom,
    limit: usize,
) -> Result<Vec<RecordView>, InspectError> {
    let topic = find_topic(broker, cluster, topic).await?;
    if !(0..topic.partitions).contains(&partition) {
        return Err(InspectError::NotFound(format!(
            "topic '{}' has {} partitions; partition {partition} does not exist",
            topic.name, topic.partitions
        )));
    }
    read_partition(
        broker,
        &topic,
        partition,
        from,
        limit.min(MAX_RECORDS),
        MAX_READ_BYTES,
        &Budget::new(),
    )
    .await
}

pub(super) async fn find_topic(
    broker: &Broker,
    cluster: &str,
    name: &str,
) -> Result<std::sync::Arc<TopicMeta>, InspectError> {
    broker
        .topics
        .get(cluster, name)
        .await?
        .ok_or_else(|| topic_not_found(name))
}

/// Up to `limit` records across every partition of a topic: for [`ReadFrom::Newest`] the
/// newest by timestamp, newest first; otherwise each partition read from the same offset
/// or time, merged oldest first by timestamp. The byte budget is shared by the partitions.
pub async fn read_records_all_partitions(
    broker: &Broker,
    cluster: &str,
    topic: &str,
    from: ReadFrom,
    limit: usize,
) -> Result<Vec<RecordView>, InspectError> {
    let topic = find_topic(broker, cluster, topic).await?;
    let limit = limit.min(MAX_RECORDS);
    let byte_cap = MAX_READ_BYTES / topic.partitions.max(1) as usize;
    let topic = &topic;
    let budget = &Budget::new();
    let per_partition: Vec<Vec<RecordView>> = stream::iter(0..topic.partitions)
        .map(|p| read_partition(broker, topic, p, from, limit, byte_cap, budget))
        .buffered(PARTITION_READS)
        .try_collect()
        .await?;
    let mut all: Vec<RecordView> = per_partition.into_iter().flatten().collect();
    let key = |r: &RecordView| (r.timestamp_ms, r.partition, r.offset);
    if from == ReadFrom::Newest {
        all.sort_by_key(|r| std::cmp::Reverse(key(r)));
    } else {
        all.sort_by_key(key);
    }
    all.truncate(limit);
    Ok(all)
}

/// Reads one partition: at most `limit` records and `byte_cap` bytes of batches (at least
/// one batch), and compressed batches while the read's decompression `budget` lasts.
async fn read_partition(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    from: ReadFrom,
    limit: usize,
    byte_cap: usize,
    budget: &Budget,
) -> Result<Vec<RecordView>, InspectError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let Some(state) = broker.meta.partition_state(topic.id, partition).await? else {
        return Err(InspectError::NotFound(format!(
            "partition {partition} of topic '{}' does not exist",
            topic.name
        )));
    };
    let (start, end) = (state.log_start_offset, state.next_offset);
    // The first offset wanted, and for a read by time the time records must reach.
    let (first, min_timestamp) = match from {
        ReadFrom::Newest => ((end - limit as i64).max(start), None),
        ReadFrom::Offset(offset) => (offset.max(start), None),
        ReadFrom::Timestamp(t) => {
            match broker
                .meta
                .offset_for_timestamp(topic.id, partition, t)
                .await?
            {
                Some((offset, _)) => (offset.max(start), Some(t)),
                None => return Ok(Vec::new()),
            }
        }
    };
    if first >= end {
        return Ok(Vec::new());
    }
    // Every batch holds at least one offset: the newest `limit` offsets lie in at most
    // `limit + 1` batches. Reading forward, transaction markers may sit between data
    // batches, so ask for more rows (only the needed ones are read from the bucket).
    let rows = match from {
        ReadFrom::Newest => limit as i64 + 1,
        _ => 2 * limit as i64 + 1,
    };
    let mut rows = broker
        .meta
        .batches_from(topic.id, partition, first, rows)
        .await?;
    if from == ReadFrom::Newest {
        // Keep the newest batches that fit the byte budget (at least the last one).
        let mut bytes = 0usize;
        let keep = rows
            .iter()
            .rev()
            .take_while(|r| {
                bytes += r.byte_len as usize;
                bytes <= byte_cap
            })
            .count()
            .max(1);
        rows.drain(..rows.len().saturating_sub(keep));
    }
    // Raw batches and their decoded copies both count against the fetch gate.
    let _permit = broker.fetch_gate.acquire(2 * byte_cap as u64).await;
    let mut out: Vec<RecordView> = Vec::new();
    let mut read = 0usize;
    let mut reached_time = min_timestamp.is_none();
    for row in &rows {
        if out.len() >= limit || (read > 0 && read + row.byte_len as usize > byte_cap) {
            break;
        }
        read += row.byte_len as usize;
        let Some(records) = decode_batch(broker, row, partition, budget).await? else {
            break; // the read's decompression budget is spent
        };
        for record in records {
            // A refused batch's entry stands at its base offset, which may lie before
            // `first`: it is shown all the same (it covers `first`).
            if record.offset < first && record.error.is_none() {
                continue;
            }
            if !reached_time {
                // Skip the records of the first batch that are older than the time asked.
                match min_timestamp {
                    Some(t) if record.timestamp_ms < t => continue,
                    _ => reached_time = true,
                }
            }
            out.push(record);
        }
    }
    if from == ReadFrom::Newest {
        let excess = out.len().saturating_sub(limit);
        out.drain(..excess);
    } else {
        out.truncate(limit);
    }
    Ok(out)
}

/// Reads one stored batch through the cache and decodes its records (any compression
/// codec, decompressed on the blocking pool under [`MAX_DECOMPRESSED_BATCH`]); a
/// transaction marker decodes to no records, a batch that cannot be shown to one entry
/// with its `error` set.
///
/// A compressed batch first reserves its cap from the read's `budget`: None when the
/// budget is spent (the read stops there, like at its byte cap).
pub(super) async fn decode_batch(
    broker: &Broker,
    row: &BatchLocation,
    partition: i32,
    budget: &Budget,
) -> Result<Option<Vec<RecordView>>, InspectError> {
    let mut buf = BytesMut::with_capacity(row.byte_len as usize);
    if let Err(e) = crate::log::read_batch(broker, row, &mut buf).await {
        tracing::error!(error = %e, key = %row.object_key, "reading batch from bucket failed");
        return Err(InspectError::Storage(format!(
            "records at offset {} could not be read from the bucket: {e}",
            row.base_offset
        )));
    }
    let bytes = buf.freeze();
    let compressed = bytes.len() > 22 && i16::from_be_bytes([bytes[21], bytes[22]]) & 0x7 != 0;
    // A compressed batch inflates into at most what it reserved of the read's budget.
    let limit = if compressed {
        budget.reserve()
    } else {
        MAX_DECOMPRESSED_BATCH
    };
    if limit == 0 {
        return Ok(None);
    }
    let append_time = row.max_timestamp;
    let decoded = crate::decompress::run_blocking(move || {
        Ok(super::decode::decode_batch(
            &bytes,
            partition,
            append_time,
            limit,
        ))
    })
    .await;
    if compressed {
        let used = match &decoded {
            Ok(Ok(records)) => records.iter().map(RecordView::decoded_len).sum(),
            _ => 0,
        };
        budget.give_back(limit.saturating_sub(used));
        let over = matches!(
            &decoded,
            Ok(Err(super::decode::BatchProblem::Decompress(
                crate::decompress::DecompressError::TooLarge { .. }
            )))
        );
        if over && limit < MAX_DECOMPRESSED_BATCH {
            // Past what is left of the read's budget, not past the batch cap: the read
            // ends here, as at its byte cap; the batch shows on a narrower read.
            return Ok(None);
        }
    }
    let problem = match decoded {
        Ok(Ok(records)) => return Ok(Some(records)),
        Ok(Err(problem)) => problem.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(
        partition,
        base_offset = row.base_offset,
        problem = %problem,
        "batch not shown in the message browser"
    );
    Ok(Some(vec![RecordView {
        partition,
        offset: row.base_offset,
        timestamp_ms: row.max_timestamp,
        key: None,
        value: None,
        headers: Vec::new(),
        error: Some(format!(
            "Offsets {} to {} are not shown: {problem}.",
            row.base_offset, row.last_offset
        )),
    }]))
}
