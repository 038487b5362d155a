//! Producing one record from the console: encoded as a Kafka client would (one v2 batch,
//! uncompressed, no producer id), checked by the same rules as Produce (the topic's
//! `max.message.bytes`, `LogAppendTime`), and appended through the same writer, so the
//! answer comes once the record is committed, like an `acks=all` produce.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use super::records::find_topic;
use super::InspectError;
use crate::clock::now_ms;
use crate::state::Broker;
use crate::store::plan::GroupOutcome;
use crate::writer::PartitionAppend;
use crate::{batch, topic_config};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// None: by the key's hash as Kafka's default partitioner does, round robin without a
    /// key.
    pub partition: Option<i32>,
}

/// Where a produced record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), so a key lands in the partition a
/// Kafka producer would choose.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len() as u32;
    let mut h = SEED ^ len;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

static ROUND_ROBIN: AtomicU32 = AtomicU32::new(0);

/// Produces one record; the answer comes once it is committed.
pub async fn produce_record(
    broker: &Broker,
    cluster: &str,
    topic: &str,
    record: NewRecord,
) -> Result<Produced, InspectError> {
    let topic = find_topic(broker, cluster, topic).await?;
    if crate::offsets_topic::is_internal(&topic.name) {
        return Err(InspectError::Invalid(format!(
            "{} is written by the broker only (it mirrors the groups' committed offsets).",
            topic.name
        )));
    }
    let partition = match (record.partition, &record.key) {
        (Some(p), _) if (0..topic.partitions).contains(&p) => p,
        (Some(p), _) => {
            return Err(InspectError::Invalid(format!(
                "Topic '{}' has partitions 0 to {}; there is no partition {p}.",
                topic.name,
                topic.partitions - 1
            )))
        }
        (None, Some(k)) => partition_for_key(k, topic.partitions),
        (None, None) => {
            (ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % topic.partitions.max(1) as u32) as i32
        }
    };
    let mut headers = IndexMap::new();
    for (k, v) in record.headers {
        headers.insert(StrBytes::from_string(k), v.map(Bytes::from));
    }
    let rec = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: record.key.map(Bytes::from),
        value: record.value.map(Bytes::from),
        headers,
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[rec],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| InspectError::Invalid(format!("The record could not be encoded: {e}")))?;
    let max = topic_config::max_message_bytes(&topic.configs);
    let mut batches = batch::split_batches(&buf.freeze(), max).map_err(|e| {
        InspectError::Invalid(format!(
            "The record is refused: {e} (the topic's max.message.bytes is {max})."
        ))
    })?;
    if topic_config::log_append_time(&topic.configs) {
        let now = now_ms();
        batches = batches
            .iter()
            .map(|b| batch::stamp_log_append_time(b, now))
            .collect();
    }
    let rx = broker
        .writer
        .append(vec![PartitionAppend {
            topic_id: topic.id,
            topic_uuid: topic.uuid,
            partition,
            batches,
        }])
        .await
        .pop();
    let outcome = match rx {
        Some(rx) => rx.await.ok(),
        None => None,
    };
    match outcome {
        Some(GroupOutcome::Appended { base_offset, .. })
        | Some(GroupOutcome::Duplicate { base_offset, .. }) => {
            tracing::info!(
                cluster,
                topic = %topic.name,
                partition,
                offset = base_offset,
                "produced a record from the console"
            );
            Ok(Produced {
                partition,
                offset: base_offset,
            })
        }
        Some(GroupOutcome::Failed(code)) => Err(InspectError::Storage(format!(
            "The record was not stored (Kafka error code {code}); nothing was written, try again."
        ))),
        None => Err(InspectError::Storage(
            "The record was not stored: the agent is shutting down; try again.".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_partitioner() {
        // Values of the Java client's Utils.murmur2 for these inputs.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
        assert!((0..6).contains(&partition_for_key(b"order-17", 6)));
    }
}
