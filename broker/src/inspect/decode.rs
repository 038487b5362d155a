//! Decoding one stored batch (message format v2) into records for display, without trusting
//! any count or length the batch claims: the records section is inflated through
//! [`crate::decompress`] (capped), and the record parser reserves memory only for what the
//! bytes at hand can hold. Pure functions over bytes; the caller runs them on the blocking
//! pool.

use super::RecordView;
use crate::batch::HEADER_LEN;
use crate::decompress::{self, Codec, DecompressError};

const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const RECORDS_COUNT_OFFSET: usize = 57;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const CONTROL_BIT: i16 = 1 << 5;
/// The smallest record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count of one byte each.
const MIN_RECORD: usize = 7;
/// The smallest header: key length and value length of one byte each.
const MIN_HEADER: usize = 2;

/// Why a batch is not shown; the message is for the person browsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchProblem {
    #[error("{0}")]
    Decompress(#[from] DecompressError),
    #[error("the batch does not decode: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> BatchProblem {
    BatchProblem::Malformed(what.into())
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The records of one batch whose first 8 bytes hold its assigned base offset. Control
/// batches (transaction markers) give none. `append_time` is the batch's max timestamp as
/// stored, shown for `LogAppendTime` batches. The decompressed records may take at most
/// `limit` bytes.
pub fn decode_batch(
    bytes: &[u8],
    partition: i32,
    append_time: i64,
    limit: usize,
) -> Result<Vec<RecordView>, BatchProblem> {
    if bytes.len() < HEADER_LEN {
        return Err(malformed("shorter than a batch header"));
    }
    if bytes[MAGIC_OFFSET] != 2 {
        return Err(malformed(format!(
            "message format v{} (only v2 is shown)",
            bytes[MAGIC_OFFSET] as i8
        )));
    }
    let crc = u32::from_be_bytes([
        bytes[CRC_OFFSET],
        bytes[CRC_OFFSET + 1],
        bytes[CRC_OFFSET + 2],
        bytes[CRC_OFFSET + 3],
    ]);
    if crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]) != crc {
        return Err(malformed("crc mismatch (the stored bytes are damaged)"));
    }
    let attributes = be_i16(bytes, ATTRIBUTES_OFFSET);
    if attributes & CONTROL_BIT != 0 {
        return Ok(Vec::new());
    }
    let base_offset = be_i64(bytes, 0);
    let base_timestamp = be_i64(bytes, BASE_TIMESTAMP_OFFSET);
    let log_append = attributes & TIMESTAMP_TYPE_BIT != 0;
    let count = be_i32(bytes, RECORDS_COUNT_OFFSET);
    if count < 0 {
        return Err(malformed(format!("claims {count} records")));
    }
    let body = &bytes[HEADER_LEN..];
    let inflated;
    let records = match Codec::from_attributes(attributes)? {
        None => body,
        Some(codec) => {
            inflated = decompress::decompress(codec, body, limit)?;
            &inflated[..]
        }
    };
    let mut r = Reader { b: records, at: 0 };
    // Believe the count only as far as the bytes can hold records.
    let mut out = Vec::with_capacity((count as usize).min(records.len() / MIN_RECORD));
    for i in 0..count {
        let record = r
            .record(base_offset, base_timestamp)
            .map_err(|e| malformed(format!("record {i} of {count}: {e}")))?;
        out.push(RecordView {
            partition,
            timestamp_ms: if log_append {
                append_time
            } else {
                record.timestamp
            },
            ..record.view
        });
    }
    Ok(out)
}

struct Decoded {
    view: RecordView,
    timestamp: i64,
}

/// A cursor over the records section.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.at).ok_or("truncated")?;
        self.at += 1;
        Ok(v)
    }

    /// A zigzag varlong of at most 10 bytes.
    fn varlong(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
    }

    /// `n` bytes, or nothing for a length of -1.
    fn bytes(&mut self, what: &str) -> Result<Option<&'a [u8]>, String> {
        let n = self.varint()?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        if n > self.left() {
            return Err(format!("{what} of {n} bytes, {} left", self.left()));
        }
        let b: &'a [u8] = self.b;
        let v = &b[self.at..self.at + n];
        self.at += n;
        Ok(Some(v))
    }

    fn record(&mut self, base_offset: i64, base_timestamp: i64) -> Result<Decoded, String> {
        let len = self.varint()?;
        if len < 0 || len as usize > self.left() {
            return Err(format!("record length {len}, {} bytes left", self.left()));
        }
        let end = self.at + len as usize;
        let mut r = Reader {
            b: &self.b[..end],
            at: self.at,
        };
        let _attributes = r.byte()?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.bytes("key")?.map(<[u8]>::to_vec);
        let value = r.bytes("value")?.map(<[u8]>::to_vec);
        let n_headers = r.varint()?;
        if n_headers < 0 {
            return Err(format!("{n_headers} headers"));
        }
        let mut headers = Vec::with_capacity((n_headers as usize).min(r.left() / MIN_HEADER));
        for _ in 0..n_headers {
            let k = r.bytes("header key")?.unwrap_or_default();
            let v = r.bytes("header value")?.map(<[u8]>::to_vec);
            headers.push((String::from_utf8_lossy(k).into_owned(), v));
        }
        self.at = end;
        Ok(Decoded {
            view: RecordView {
                partition: 0,
                offset: base_offset.saturating_add(i64::from(offset_delta)),
                timestamp_ms: 0,
                key,
                value,
                headers,
                error: None,
            },
            timestamp: base_timestamp.saturating_add(timestamp_delta),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    fn batch(compression: Compression, n: i64) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i % 2 == 0).then(|| Bytes::from(vec![b'v'; 100])),
                headers: IndexMap::from_iter([(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"x")),
                )]),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let mut v = buf.to_vec();
        assert_eq!(be_i32(&v, 8) as usize + 12, v.len(), "one batch");
        v[..8].copy_from_slice(&100i64.to_be_bytes());
        v
    }

    #[test]
    fn decodes_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let got = decode_batch(&batch(c, 5), 3, 0, 1 << 20).unwrap();
            assert_eq!(got.len(), 5, "{c:?}");
            assert_eq!(got[4].offset, 104);
            assert_eq!(got[4].partition, 3);
            assert_eq!(got[4].timestamp_ms, 1_700_000_000_004);
            assert_eq!(got[2].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(got[2].value.as_deref().map(<[u8]>::len), Some(100));
            assert_eq!(got[1].value, None);
            assert_eq!(got[0].headers, vec![("h".to_string(), Some(b"x".to_vec()))]);
        }
    }

    #[test]
    fn a_lying_count_or_length_is_an_error() {
        let mut b = batch(Compression::None, 2);
        // Claim two billion records: no reservation of that size, an error at the end.
        b[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let err = decode_batch(&b, 0, 0, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("record 2 of 2147483647"), "{err}");
        // Every truncation is an error, never a panic.
        let whole = batch(Compression::Gzip, 3);
        for cut in 0..whole.len() {
            assert!(decode_batch(&whole[..cut], 0, 0, 1 << 20).is_err());
        }
    }

    #[test]
    fn the_limit_applies_to_the_records_section() {
        let err = decode_batch(&batch(Compression::Zstd, 50), 0, 0, 1024).unwrap_err();
        assert!(err.to_string().contains("limit of 1 KiB"), "{err}");
    }
}
