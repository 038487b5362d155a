//! The internal `__consumer_offsets` topic: offset commits as records in Kafka's own
//! binary format, for tools that read the topic instead of asking OffsetFetch (Burrow,
//! lag exporters, kafka-consumer-groups-style scripts).
//!
//! SQL stays the source of truth (`group_offsets`); each change to it appends the
//! matching records, in the same transaction, to this topic's 50 partitions (a group's
//! records go to Java's `abs(group.hashCode()) % 50`, as Kafka places them). The records
//! live in the metadata database (`inline_batches`, one record per batch), not in the
//! bucket: they are small, and a newer record of a key deletes the older one at once, so
//! the topic is always compacted. Clients may read it, never write it.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const NAME: &str = "__consumer_offsets";
/// Kafka's default `offsets.topic.num.partitions`.
pub const PARTITIONS: i32 = 50;

/// Whether clients may not write (or create, delete) the topic named `name`.
pub fn is_internal(name: &str) -> bool {
    name == NAME
}

/// The partition holding a group's records: Java's `String.hashCode` over UTF-16 units,
/// made non-negative as Kafka's `Utils.abs` does, modulo the partition count.
pub fn partition_for(group: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % PARTITIONS
}

fn put_string(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

/// An offset commit's key (version 1, what Kafka 3.x writes): group, topic, partition.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + group.len() + topic.len());
    b.put_i16(1);
    put_string(&mut b, group);
    put_string(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

/// An offset commit's value (version 3): offset, leader epoch, metadata, commit time.
pub fn offset_value(offset: i64, leader_epoch: i32, metadata: &str, commit_ms: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + metadata.len());
    b.put_i16(3);
    b.put_i64(offset);
    b.put_i32(leader_epoch);
    put_string(&mut b, metadata);
    b.put_i64(commit_ms);
    b.freeze()
}

/// One record batch holding one record (a null value is a tombstone).
pub fn record_batch(key: Bytes, value: Option<Bytes>, timestamp: i64) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key),
        value,
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::with_capacity(128);
    RecordBatchEncoder::encode(
        &mut buf,
        std::slice::from_ref(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("one uncompressed record always encodes");
    buf.freeze()
}

/// The records an offset change appends: (key, batch) per partition, in order.
/// `offsets` holds (topic, partition, Some((offset, leader epoch, metadata))) for a
/// commit and None for a deletion (a tombstone).
pub fn offset_records(
    group: &str,
    offsets: impl IntoIterator<Item = (String, i32, Option<(i64, i32, Option<String>)>)>,
    now: i64,
) -> Vec<(Bytes, Bytes)> {
    offsets
        .into_iter()
        .map(|(topic, partition, commit)| {
            let key = offset_key(group, &topic, partition);
            let value = commit.map(|(offset, epoch, metadata)| {
                offset_value(offset, epoch, metadata.as_deref().unwrap_or(""), now)
            });
            (key.clone(), record_batch(key, value, now))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn partitions_match_java_string_hash_code() {
        // "group".hashCode() = 98629247, % 50 = 47; "" hashes to 0.
        assert_eq!(partition_for("group"), 98629247 % 50);
        assert_eq!(partition_for(""), 0);
        // A negative hash is made positive first: "polygenelubricants" hashes to i32::MIN.
        assert_eq!(partition_for("polygenelubricants"), 0);
        for g in ["orders", "a-very-long-consumer-group-name-0123456789", "é"] {
            assert!((0..PARTITIONS).contains(&partition_for(g)));
        }
    }

    #[test]
    fn records_are_kafkas_layout() {
        let records = offset_records(
            "g",
            [
                ("t".to_string(), 3, Some((42, 5, Some("m".to_string())))),
                ("t".to_string(), 4, None),
            ],
            1_700_000_000_000,
        );
        let (key, batch) = &records[0];
        assert_eq!(
            key.as_ref(),
            [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3].as_slice()
        );
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        let value = set.records[0].value.clone().unwrap();
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(i64::from_be_bytes(value[2..10].try_into().unwrap()), 42);
        assert_eq!(i32::from_be_bytes(value[10..14].try_into().unwrap()), 5);
        assert_eq!(&value[14..17], &[0, 1, b'm']);
        let mut buf = records[1].1.clone();
        assert!(RecordBatchDecoder::decode(&mut buf).unwrap().records[0]
            .value
            .is_none());
    }
}
