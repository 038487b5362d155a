//! Hand-written codecs for request versions the kafka-protocol crate no longer decodes but
//! real clients still send (shared/COMPAT.md): ListOffsets v0 and OffsetCommit v0/v1, used
//! by sarama 1.22 and by monitoring tools such as Burrow.
//!
//! Element counts are checked against the bytes left in the frame before anything is
//! reserved, so a hostile count cannot make the decoder allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    GroupId, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn need(buf: &Bytes, n: usize) -> Result<(), String> {
    if buf.remaining() < n {
        Err(format!(
            "truncated: needed {n} more bytes, {} left",
            buf.remaining()
        ))
    } else {
        Ok(())
    }
}

/// An array count that cannot exceed what the frame could hold (`min_elem` bytes each).
fn count(buf: &mut Bytes, min_elem: usize) -> Result<usize, String> {
    need(buf, 4)?;
    let n = buf.get_i32();
    if n < 0 {
        return Ok(0); // null array
    }
    let n = n as usize;
    if n.saturating_mul(min_elem) > buf.remaining() {
        return Err(format!(
            "array of {n} elements cannot fit in {} bytes",
            buf.remaining()
        ));
    }
    Ok(n)
}

fn string(buf: &mut Bytes) -> Result<StrBytes, String> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len < 0 {
        return Err("null topic name".to_string());
    }
    need(buf, len as usize)?;
    StrBytes::from_utf8(buf.split_to(len as usize))
        .map_err(|e| format!("topic name is not utf-8: {e}"))
}

fn nullable_string(buf: &mut Bytes) -> Result<Option<StrBytes>, String> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len < 0 {
        return Ok(None);
    }
    need(buf, len as usize)?;
    StrBytes::from_utf8(buf.split_to(len as usize))
        .map(Some)
        .map_err(|e| format!("string is not utf-8: {e}"))
}

/// Decodes an OffsetCommit v0 or v1 body into the v2 request shape. v0 commits from
/// outside the group protocol (generation -1); v1 carries the generation and member id that
/// JoinGroup handed out, and a per-partition timestamp that Kafka has ignored since 0.10.
/// The v2 response layout equals v0/v1's, so responses are encoded as v2.
pub fn decode_offset_commit_v0_v1(
    mut buf: Bytes,
    version: i16,
) -> Result<OffsetCommitRequest, String> {
    let group_id = string(&mut buf)?;
    let (generation, member_id) = if version >= 1 {
        need(&buf, 4)?;
        let generation = buf.get_i32();
        (generation, string(&mut buf)?)
    } else {
        (-1, StrBytes::default())
    };
    let topics_n = count(&mut buf, 6)?;
    let mut topics = Vec::with_capacity(topics_n);
    for _ in 0..topics_n {
        let name = string(&mut buf)?;
        let min_partition = if version >= 1 { 22 } else { 14 };
        let parts_n = count(&mut buf, min_partition)?;
        let mut partitions = Vec::with_capacity(parts_n);
        for _ in 0..parts_n {
            need(&buf, 12)?;
            let partition_index = buf.get_i32();
            let committed_offset = buf.get_i64();
            if version >= 1 {
                need(&buf, 8)?;
                let _timestamp = buf.get_i64();
            }
            let committed_metadata = nullable_string(&mut buf)?;
            partitions.push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_metadata(committed_metadata),
            );
        }
        topics.push(
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_topics(topics))
}

/// Decodes a ListOffsets v0 body into the v1 request shape (v0's `max_num_offsets` is
/// answered with at most one offset, as Kafka has done since 0.10.1).
pub fn decode_list_offsets_v0(mut buf: Bytes) -> Result<ListOffsetsRequest, String> {
    need(&buf, 4)?;
    let replica_id = buf.get_i32();
    let topics_n = count(&mut buf, 6)?;
    let mut topics = Vec::with_capacity(topics_n);
    for _ in 0..topics_n {
        let name = string(&mut buf)?;
        let parts_n = count(&mut buf, 16)?;
        let mut partitions = Vec::with_capacity(parts_n);
        for _ in 0..parts_n {
            need(&buf, 16)?;
            let partition_index = buf.get_i32();
            let timestamp = buf.get_i64();
            let _max_num_offsets = buf.get_i32();
            partitions.push(
                ListOffsetsPartition::default()
                    .with_partition_index(partition_index)
                    .with_timestamp(timestamp),
            );
        }
        topics.push(
            ListOffsetsTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(ListOffsetsRequest::default()
        .with_replica_id(replica_id.into())
        .with_topics(topics))
}

/// Encodes a ListOffsets response in the v0 layout: per partition an error code and an
/// array of offsets (empty when there is none).
pub fn encode_list_offsets_v0(resp: &ListOffsetsResponse, out: &mut BytesMut) {
    out.put_i32(resp.topics.len() as i32);
    for t in &resp.topics {
        out.put_i16(t.name.len() as i16);
        out.put_slice(t.name.as_bytes());
        out.put_i32(t.partitions.len() as i32);
        for p in &t.partitions {
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
            if p.error_code == 0 && p.offset >= 0 {
                out.put_i32(1);
                out.put_i64(p.offset);
            } else {
                out.put_i32(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };

    #[test]
    fn v0_round_trip_shapes() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(1);
        b.put_i16(3);
        b.put_slice(b"abc");
        b.put_i32(2);
        for (p, ts) in [(0, -1i64), (1, -2)] {
            b.put_i32(p);
            b.put_i64(ts);
            b.put_i32(1);
        }
        let req = decode_list_offsets_v0(b.freeze()).unwrap();
        assert_eq!(req.topics[0].name.as_str(), "abc");
        assert_eq!(req.topics[0].partitions[1].timestamp, -2);

        let resp =
            ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("abc")))
                .with_partitions(vec![ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_offset(42)])]);
        let mut out = BytesMut::new();
        encode_list_offsets_v0(&resp, &mut out);
        let mut o = out.freeze();
        assert_eq!(o.get_i32(), 1);
        assert_eq!(o.get_i16(), 3);
        o.advance(3);
        assert_eq!(o.get_i32(), 1);
        assert_eq!(
            (o.get_i32(), o.get_i16(), o.get_i32(), o.get_i64()),
            (0, 0, 1, 42)
        );
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(i32::MAX);
        assert!(decode_list_offsets_v0(b.freeze()).is_err());
        assert!(decode_list_offsets_v0(Bytes::from_static(&[0, 0])).is_err());
    }
}
