//! Transaction markers: the control batches that end a transaction in each of its
//! partitions (message format v2, one record whose key names COMMIT or ABORT).
//!
//! The stored bytes carry base offset 0: as for every batch, the fetch path patches the
//! assigned offset in when it serves the batch (the CRC does not cover it).

use bytes::{BufMut, Bytes, BytesMut};

/// Attributes of a marker: transactional (bit 4) and control (bit 5), no compression.
const MARKER_ATTRIBUTES: i16 = (1 << 4) | (1 << 5);
/// Control record types (the key's second field).
pub const ABORT: i16 = 0;
pub const COMMIT: i16 = 1;

/// One control batch ending a transaction of `producer_id`/`producer_epoch`.
pub fn encode(producer_id: i64, producer_epoch: i16, commit: bool, timestamp: i64) -> Bytes {
    // The record: key = (version 0, type), value = (version 0, coordinator epoch 0).
    let mut record = BytesMut::with_capacity(16);
    record.put_i8(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, 4); // key length
    record.put_i16(0);
    record.put_i16(if commit { COMMIT } else { ABORT });
    put_varint(&mut record, 6); // value length
    record.put_i16(0);
    record.put_i32(0);
    put_varint(&mut record, 0); // headers
    let mut body = BytesMut::with_capacity(64);
    body.put_i16(MARKER_ATTRIBUTES);
    body.put_i32(0); // last offset delta
    body.put_i64(timestamp); // base timestamp
    body.put_i64(timestamp); // max timestamp
    body.put_i64(producer_id);
    body.put_i16(producer_epoch);
    body.put_i32(-1); // base sequence: markers carry none
    body.put_i32(1); // record count
    put_varint(&mut body, record.len() as i64);
    body.extend_from_slice(&record);
    let mut out = BytesMut::with_capacity(body.len() + 21);
    out.put_i64(0); // base offset, patched when served
    out.put_i32((body.len() + 9) as i32); // batch length: leader epoch, magic, crc, body
    out.put_i32(0); // partition leader epoch
    out.put_i8(2); // magic
    out.put_u32(crc32c::crc32c(&body));
    out.extend_from_slice(&body);
    out.freeze()
}

/// Whether a control record key says COMMIT (Some(true)), ABORT (Some(false)), or neither.
pub fn decode_key(key: &[u8]) -> Option<bool> {
    match key {
        [0, 0, 0, 1] => Some(true),
        [0, 0, 0, 0] => Some(false),
        _ => None,
    }
}

/// Kafka's zig-zag varint.
fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_decode_as_control_records() {
        for commit in [true, false] {
            let bytes = encode(42, 3, commit, 1_700_000_000_000);
            // Our own header reader accepts it (CRC, lengths).
            let batches = crate::batch::split_batches(&bytes, 1 << 20).expect("valid batch");
            assert_eq!(batches.len(), 1);
            let h = &batches[0].header;
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (42, 3, 1)
            );
            // And a client's decoder reads the control record.
            let mut buf = bytes.clone();
            let set = RecordBatchDecoder::decode(&mut buf).expect("decodes");
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            assert_eq!(decode_key(r.key.as_deref().unwrap()), Some(commit));
            assert_eq!(r.value.as_deref().map(|v| v.len()), Some(6));
        }
    }
}
