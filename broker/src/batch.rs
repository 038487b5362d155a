//! Record batch headers (message format v2), read and patched without touching records.
//!
//! Sluice never decompresses or re-encodes records: a produced batch is stored byte for byte
//! and only its 61-byte header is read. The header's `baseOffset` is not covered by the CRC,
//! so the fetch path writes the assigned offset into a copy of those 8 bytes when it serves
//! the batch. The only header rewrite that touches CRC-covered bytes is `LogAppendTime`
//! (timestamp type bit and max timestamp), which recomputes the CRC once at produce time.

use bytes::{Bytes, BytesMut};

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field's payload starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;

const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Why a produced record set was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record set is truncated: {0}")]
    Truncated(&'static str),
    #[error("unsupported message format (magic {0}); only v2 record batches are accepted")]
    UnsupportedMagic(i8),
    #[error("record batch crc mismatch")]
    CrcMismatch,
    #[error(
        "record batch declares {0} records, which does not match its offset deltas or its records"
    )]
    BadRecordCount(i32),
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("record set holds no batch")]
    Empty,
}

impl BatchError {
    /// The Kafka error code a client should see.
    pub fn code(&self) -> i16 {
        match self {
            BatchError::TooLarge { .. } => 10,    // MESSAGE_TOO_LARGE
            BatchError::UnsupportedMagic(_) => 2, // CORRUPT_MESSAGE
            BatchError::CrcMismatch => 2,         // CORRUPT_MESSAGE
            BatchError::Truncated(_) => 87,       // INVALID_RECORD
            BatchError::BadRecordCount(_) => 87,  // INVALID_RECORD
            BatchError::Empty => 87,              // INVALID_RECORD
        }
    }
}

/// The fields of a v2 batch header that the broker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Idempotent producers set a producer id; plain ones send -1.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record in the batch (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// One batch cut out of a produced record set, bytes untouched.
#[derive(Debug, Clone)]
pub struct Batch {
    pub header: BatchHeader,
    pub bytes: Bytes,
}

impl Batch {
    /// Number of offsets the batch occupies (last offset delta + 1).
    pub fn offset_count(&self) -> i64 {
        self.header.last_offset_delta as i64 + 1
    }
}

/// Big-endian fields of a batch header (the caller has checked the length).
pub(crate) fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn read_header(b: &[u8]) -> BatchHeader {
    BatchHeader {
        attributes: be_i16(b, ATTRIBUTES_OFFSET),
        last_offset_delta: be_i32(b, LAST_OFFSET_DELTA_OFFSET),
        base_timestamp: be_i64(b, BASE_TIMESTAMP_OFFSET),
        max_timestamp: be_i64(b, MAX_TIMESTAMP_OFFSET),
        producer_id: be_i64(b, PRODUCER_ID_OFFSET),
        producer_epoch: be_i16(b, PRODUCER_EPOCH_OFFSET),
        base_sequence: be_i32(b, BASE_SEQUENCE_OFFSET),
        record_count: be_i32(b, RECORDS_COUNT_OFFSET),
    }
}

/// Reads a zig-zag varint (at most `max_bytes` long) at `*pos`.
fn varint(b: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = *b.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// Walks the records of an uncompressed batch: exactly `count` records, each framed by its
/// length, at offset deltas 0..count, filling the batch.
fn check_records(records: &[u8], count: i32) -> Result<(), BatchError> {
    let bad = || BatchError::BadRecordCount(count);
    let mut pos = 0usize;
    for expected_delta in 0..count as i64 {
        let len = varint(records, &mut pos, 5).ok_or_else(bad)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|end| *end <= records.len())
            .ok_or_else(bad)?;
        let mut at = pos + 1; // attributes
        varint(&records[..end], &mut at, 10).ok_or_else(bad)?; // timestamp delta
        if varint(&records[..end], &mut at, 5) != Some(expected_delta) {
            return Err(bad());
        }
        pos = end;
    }
    if pos != records.len() {
        return Err(bad());
    }
    Ok(())
}

/// Checks that a batch holds the records it claims. Uncompressed records are walked (cheap:
/// one varint per record). Compressed ones are trusted while the count is below the
/// compressed size (a record takes at least one compressed byte in any realistic batch);
/// a batch claiming more records than it has bytes is decompressed, with a cap, and
/// walked: Sluice does not decompress what producers send otherwise.
fn check_record_count(header: &BatchHeader, records: &[u8]) -> Result<(), BatchError> {
    let bad = || BatchError::BadRecordCount(header.record_count);
    match crate::decompress::Codec::from_attributes(header.attributes) {
        Ok(None) => check_records(records, header.record_count),
        Ok(Some(_)) if (header.record_count as usize) <= records.len() => Ok(()),
        Ok(Some(codec)) => {
            let plain =
                crate::decompress::decompress(codec, records, crate::decompress::DEFAULT_LIMIT)
                    .map_err(|_| bad())?;
            check_records(&plain, header.record_count)
        }
        Err(_) => Err(bad()),
    }
}

/// Splits a produced record set into batches, checking framing, magic, CRC and size.
///
/// `max_batch_bytes` is the topic's `max.message.bytes`, compared with the whole batch size
/// (log overhead included), as Kafka does.
pub fn split_batches(records: &Bytes, max_batch_bytes: usize) -> Result<Vec<Batch>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let buf = records.as_ref();
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated("batch length prefix"));
        }
        let batch_len = be_i32(rest, 8);
        if batch_len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Truncated("batch shorter than its header"));
        }
        let total = LOG_OVERHEAD + batch_len as usize;
        if rest.len() < MAGIC_OFFSET + 1 {
            return Err(BatchError::Truncated("batch header"));
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if total > max_batch_bytes {
            return Err(BatchError::TooLarge {
                size: total,
                limit: max_batch_bytes,
            });
        }
        if rest.len() < total {
            return Err(BatchError::Truncated("batch body"));
        }
        let bytes = &rest[..total];
        let crc = u32::from_be_bytes([
            bytes[CRC_OFFSET],
            bytes[CRC_OFFSET + 1],
            bytes[CRC_OFFSET + 2],
            bytes[CRC_OFFSET + 3],
        ]);
        if crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]) != crc {
            return Err(BatchError::CrcMismatch);
        }
        let header = read_header(bytes);
        // A producer's batch holds `record_count` records at offset deltas 0, 1, ...: the
        // batch takes exactly that many offsets (a claimed last offset delta of 2^31-1 on
        // one record would move the partition's next offset by 2^31).
        if header.record_count < 1 || header.last_offset_delta != header.record_count - 1 {
            return Err(BatchError::BadRecordCount(header.record_count));
        }
        check_record_count(&header, &bytes[HEADER_LEN..])?;
        out.push(Batch {
            header,
            bytes: records.slice(pos..pos + total),
        });
        pos += total;
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

/// Rewrites a batch for a `LogAppendTime` topic: sets the timestamp type bit and the max
/// timestamp to the broker's append time, then recomputes the CRC.
pub fn stamp_log_append_time(batch: &Batch, now_ms: i64) -> Batch {
    let mut b = BytesMut::from(batch.bytes.as_ref());
    let attributes = batch.header.attributes | TIMESTAMP_TYPE_BIT;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let bytes = b.freeze();
    Batch {
        header: read_header(&bytes),
        bytes,
    }
}

/// Writes `base_offset` into the first 8 bytes of a stored batch (not covered by the CRC).
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes `n` records into one v2 batch with the crate's encoder (what clients send).
    pub fn encode_batch(n: usize, producer_id: i64, base_sequence: i32) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: if producer_id >= 0 { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch only while sequences advance.
                sequence: base_sequence.max(0) + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encoding a test batch should work");
        buf.freeze()
    }

    #[test]
    fn splits_and_reads_headers() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&encode_batch(3, -1, -1));
        all.extend_from_slice(&encode_batch(2, 7, 3));
        let all = all.freeze();
        let batches = split_batches(&all, 1 << 20).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].header.record_count, 3);
        assert_eq!(batches[0].offset_count(), 3);
        assert!(!batches[0].header.is_idempotent());
        assert_eq!(batches[1].header.producer_id, 7);
        assert_eq!(batches[1].header.base_sequence, 3);
        assert_eq!(batches[1].header.last_sequence(), 4);
    }

    /// Overwrites a CRC-covered i32 field and fixes the CRC, as a forger would.
    fn forge_i32(batch: &Bytes, at: usize, value: i32) -> Bytes {
        let mut b = BytesMut::from(batch.as_ref());
        b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn offsets_a_batch_claims_must_match_its_records() {
        let one = encode_batch(1, -1, -1);
        // One record claiming a last offset delta of 2^31-1 (it would move the next offset
        // by 2^31), with or without a matching record count.
        let delta = forge_i32(&one, LAST_OFFSET_DELTA_OFFSET, i32::MAX);
        assert!(matches!(
            split_batches(&delta, 1 << 20),
            Err(BatchError::BadRecordCount(1))
        ));
        let both = forge_i32(&delta, RECORDS_COUNT_OFFSET, i32::MIN + 1);
        assert!(split_batches(&both, 1 << 20).is_err());
        let both = forge_i32(
            &forge_i32(&one, LAST_OFFSET_DELTA_OFFSET, 1_000_000),
            RECORDS_COUNT_OFFSET,
            1_000_001,
        );
        assert_eq!(
            split_batches(&both, 1 << 20).unwrap_err(),
            BatchError::BadRecordCount(1_000_001)
        );
        // Fewer records claimed than the batch holds.
        let three = encode_batch(3, -1, -1);
        let fewer = forge_i32(
            &forge_i32(&three, LAST_OFFSET_DELTA_OFFSET, 1),
            RECORDS_COUNT_OFFSET,
            2,
        );
        assert!(split_batches(&fewer, 1 << 20).is_err());
        assert_eq!(split_batches(&three, 1 << 20).unwrap()[0].offset_count(), 3);
    }

    /// `n` tiny records in one zstd batch (records section compressed here, header fixed).
    fn zstd_batch(n: usize) -> Bytes {
        let plain = encode_batch(n, -1, -1);
        let records = zstd::encode_all(&plain[HEADER_LEN..], 19).unwrap();
        let mut b = BytesMut::from(&plain[..HEADER_LEN]);
        b.extend_from_slice(&records);
        let batch_len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&batch_len.to_be_bytes());
        let attributes = be_i16(&b, ATTRIBUTES_OFFSET) | 4;
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn compressed_batches_claiming_more_records_than_bytes_are_decompressed_and_counted() {
        let five = zstd_batch(5);
        assert_eq!(split_batches(&five, 1 << 20).unwrap()[0].offset_count(), 5);
        // Five records claiming a million: decompressed, counted, refused.
        let forged = forge_i32(
            &forge_i32(&five, LAST_OFFSET_DELTA_OFFSET, 999_999),
            RECORDS_COUNT_OFFSET,
            1_000_000,
        );
        assert_eq!(
            split_batches(&forged, 1 << 20).unwrap_err(),
            BatchError::BadRecordCount(1_000_000)
        );
    }

    #[test]
    fn rejects_bad_input() {
        let one = encode_batch(3, -1, -1);
        assert!(matches!(
            split_batches(&one.slice(..30), 1 << 20),
            Err(BatchError::Truncated(_))
        ));
        assert!(matches!(
            split_batches(&one, 20),
            Err(BatchError::TooLarge { .. })
        ));
        let mut corrupt = BytesMut::from(one.as_ref());
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(
            split_batches(&corrupt.freeze(), 1 << 20).unwrap_err(),
            BatchError::CrcMismatch
        );
        let mut old = BytesMut::from(one.as_ref());
        old[MAGIC_OFFSET] = 1;
        assert_eq!(
            split_batches(&old.freeze(), 1 << 20).unwrap_err(),
            BatchError::UnsupportedMagic(1)
        );
        assert_eq!(
            split_batches(&Bytes::new(), 1 << 20).unwrap_err(),
            BatchError::Empty
        );
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let one = encode_batch(2, -1, -1);
        let batch = split_batches(&one, 1 << 20).unwrap().remove(0);
        let stamped = stamp_log_append_time(&batch, 42);
        assert_eq!(stamped.header.max_timestamp, 42);
        assert!(stamped.header.attributes & TIMESTAMP_TYPE_BIT != 0);
        split_batches(&stamped.bytes, 1 << 20).expect("crc must still match");
    }

    #[test]
    fn patches_base_offset_outside_crc() {
        let one = encode_batch(2, -1, -1);
        let mut b = BytesMut::from(one.as_ref());
        patch_base_offset(&mut b, 1234);
        let b = b.freeze();
        assert_eq!(be_i64(&b, 0), 1234);
        split_batches(&b, 1 << 20).expect("crc does not cover the base offset");
    }
}
