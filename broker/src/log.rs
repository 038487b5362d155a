//! Reads of a partition's log shared by the Kafka handlers (Fetch, ListOffsets) and the
//! console ([`crate::inspect`]), so both always see the same records and offsets.

use std::sync::Arc;

use bytes::BytesMut;

use crate::batch;
use crate::bucket::BucketError;
use crate::codes;
use crate::protocol::Pieces;
use crate::state::Broker;
use crate::store::{BatchLocation, StoreError, TopicMeta};

/// ListOffsets' special timestamps: the log end and the log start.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Appends one stored batch to `buf` through the chunk cache and writes its assigned base
/// offset into the copy (stored bytes keep the producer's 0). On failure `buf` is left as
/// it was.
pub async fn read_batch(
    broker: &Broker,
    row: &BatchLocation,
    buf: &mut BytesMut,
) -> Result<(), Arc<BucketError>> {
    let start = buf.len();
    if let Err(e) = broker
        .cache
        .read_into(
            &row.object_key,
            row.object_size,
            row.byte_offset,
            row.byte_len as u64,
            buf,
        )
        .await
    {
        buf.truncate(start);
        return Err(e);
    }
    batch::patch_base_offset(&mut buf[start..], row.base_offset);
    Ok(())
}

/// Appends one batch to `out` as slices of the cached object chunks, with its base offset
/// (the first 8 bytes, the only ones that differ from the stored object) in front.
pub async fn read_batch_pieces(
    broker: &Broker,
    row: &BatchLocation,
    out: &mut Pieces,
) -> Result<(), Arc<BucketError>> {
    let mut slices = Vec::with_capacity(2);
    broker
        .cache
        .slices(
            &row.object_key,
            row.object_size,
            row.byte_offset,
            row.byte_len as u64,
            &mut slices,
        )
        .await?;
    let base = row.base_offset.to_be_bytes();
    match slices.first() {
        Some((_, first)) if first.len() >= base.len() => {
            out.push_copy(&base);
            for (i, (chunk, range)) in slices.into_iter().enumerate() {
                let skip = if i == 0 { base.len() } else { 0 };
                out.push_slice(&chunk, range.start + skip..range.end);
            }
        }
        // The header is split over two chunks (or the row is shorter than a header).
        _ => {
            let mut whole = BytesMut::with_capacity(row.byte_len as usize);
            for (chunk, range) in &slices {
                whole.extend_from_slice(&chunk[range.clone()]);
            }
            if whole.len() < base.len() {
                return Err(Arc::new(BucketError::Corrupt(format!(
                    "a batch of {} bytes in {} is shorter than a batch header",
                    whole.len(),
                    row.object_key
                ))));
            }
            batch::patch_base_offset(&mut whole, row.base_offset);
            out.push_copy(&whole);
        }
    }
    Ok(())
}

/// ListOffsets' answer for one partition and timestamp (or [`LATEST`], [`EARLIEST`], …):
/// `Ok(Ok((offset, timestamp)))`, -1/-1 when no record is at or after the time;
/// `Ok(Err(code))` when the request is refused; `Err` when the store failed. Also used by
/// the console to reset group offsets.
pub async fn offset_at(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    timestamp: i64,
) -> Result<Result<(i64, i64), i16>, StoreError> {
    let Some(state) = broker.meta.partition_state(topic.id, partition).await? else {
        return Ok(Err(codes::UNKNOWN_TOPIC_OR_PARTITION));
    };
    Ok(Ok(match timestamp {
        LATEST | LATEST_TIERED => (state.next_offset, -1),
        EARLIEST | EARLIEST_LOCAL => (state.log_start_offset, -1),
        MAX_TIMESTAMP => broker
            .meta
            .max_timestamp_offset(topic.id, partition)
            .await?
            .unwrap_or((-1, -1)),
        t if t >= 0 => match broker
            .meta
            .offset_for_timestamp(topic.id, partition, t)
            .await?
        {
            Some((offset, ts)) => (offset.max(state.log_start_offset), ts),
            None => (-1, -1),
        },
        _ => return Ok(Err(codes::INVALID_REQUEST)),
    }))
}
