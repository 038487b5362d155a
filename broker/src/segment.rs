//! Segment files: the objects a flush writes.
//!
//! Layout: the produced batches back to back, byte for byte, then a footer that lists every
//! batch (topic uuid, partition, byte range, record count, max timestamp), then the entry
//! count and a magic trailer. The metadata rows are the source of truth for reads; the
//! footer makes an object self-describing for recovery tools and audits.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

pub const MAGIC: &[u8; 8] = b"SLSEG001";
const ENTRY_LEN: usize = 16 + 4 + 8 + 4 + 4 + 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterEntry {
    pub topic: Uuid,
    pub partition: i32,
    pub byte_offset: u64,
    pub byte_len: u32,
    pub record_count: i32,
    pub max_timestamp: i64,
}

/// Accumulates batches of many partitions into one object.
#[derive(Debug, Default)]
pub struct SegmentBuilder {
    data: BytesMut,
    entries: Vec<FooterEntry>,
}

impl SegmentBuilder {
    /// A builder with room for `capacity` bytes before it has to grow.
    pub fn with_capacity(capacity: usize) -> Self {
        SegmentBuilder {
            data: BytesMut::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends one batch and returns its byte offset in the object.
    pub fn push(
        &mut self,
        topic: Uuid,
        partition: i32,
        batch: &[u8],
        record_count: i32,
        max_timestamp: i64,
    ) -> u64 {
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(batch);
        self.entries.push(FooterEntry {
            topic,
            partition,
            byte_offset: offset,
            byte_len: batch.len() as u32,
            record_count,
            max_timestamp,
        });
        offset
    }

    /// The finished object.
    pub fn finish(mut self) -> Bytes {
        self.data.reserve(self.entries.len() * ENTRY_LEN + 12);
        for e in &self.entries {
            self.data.put_slice(e.topic.as_bytes());
            self.data.put_i32(e.partition);
            self.data.put_u64(e.byte_offset);
            self.data.put_u32(e.byte_len);
            self.data.put_i32(e.record_count);
            self.data.put_i64(e.max_timestamp);
        }
        self.data.put_u32(self.entries.len() as u32);
        self.data.put_slice(MAGIC);
        self.data.freeze()
    }
}

/// Reads the footer of a segment object.
pub fn read_footer(object: &[u8]) -> Option<Vec<FooterEntry>> {
    let n = object.len();
    if n < 12 || &object[n - 8..] != MAGIC {
        return None;
    }
    let count = u32::from_be_bytes(object[n - 12..n - 8].try_into().ok()?) as usize;
    let start = (n - 12).checked_sub(count.checked_mul(ENTRY_LEN)?)?;
    let mut buf = &object[start..n - 12];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut id = [0u8; 16];
        buf.copy_to_slice(&mut id);
        out.push(FooterEntry {
            topic: Uuid::from_bytes(id),
            partition: buf.get_i32(),
            byte_offset: buf.get_u64(),
            byte_len: buf.get_u32(),
            record_count: buf.get_i32(),
            max_timestamp: buf.get_i64(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trip() {
        let t = Uuid::new_v4();
        let mut b = SegmentBuilder::default();
        assert_eq!(b.push(t, 0, b"aaaa", 2, 10), 0);
        assert_eq!(b.push(t, 3, b"bbbbbb", 1, 20), 4);
        assert_eq!(b.len(), 10);
        let obj = b.finish();
        assert_eq!(&obj[4..10], b"bbbbbb");
        let footer = read_footer(&obj).unwrap();
        assert_eq!(footer.len(), 2);
        assert_eq!(footer[1].partition, 3);
        assert_eq!(footer[1].byte_offset, 4);
        assert_eq!(footer[1].byte_len, 6);
        assert!(read_footer(b"garbage").is_none());
    }
}
