//! Hand-written codecs for request versions the kafka-protocol crate no longer decodes but
//! real clients still send (shared/COMPAT.md): ListOffsets v0, used by sarama 1.22 and by
//! monitoring tools such as Burrow.
//!
//! Element counts are checked against the bytes left in the frame before anything is
//! reserved, so a hostile count cannot make the decoder allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};
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
