//! What the load generators and the verifier agree on: the record format and how a reader of
//! every partition is set up. Both `load` and `verify` build on this module; it knows
//! neither.
//!
//! Records are self-describing so that verification needs no copy of what was sent: the
//! 16-byte key is (producer id, partition, per-partition sequence number), and the payload is a
//! window of a fixed pseudo-random pool chosen by hashing that key.

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// Extra random bytes beyond one payload: payloads are windows into the pool.
const POOL_SLACK: usize = 64 * 1024;

// =========================================================================================
// Record format
// =========================================================================================

pub(crate) const KEY_LEN: usize = 16;

/// Key of a record: producer id, partition, sequence number within (producer, partition).
pub(crate) fn encode_key(producer: u32, partition: i32, seq: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..4].copy_from_slice(&producer.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn decode_key(k: &[u8]) -> Option<(u32, i32, u64)> {
    let k: &[u8; KEY_LEN] = k.try_into().ok()?;
    let producer = u32::from_be_bytes(k[..4].try_into().ok()?);
    let partition = i32::from_be_bytes(k[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(k[8..].try_into().ok()?);
    Some((producer, partition, seq))
}

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payload of every record, derived from its key.
pub(crate) struct Payloads {
    pool: Vec<u8>,
    record_bytes: usize,
}

impl Payloads {
    pub(crate) fn new(record_bytes: usize) -> Payloads {
        let mut pool = vec![0u8; record_bytes + POOL_SLACK];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in pool.chunks_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Payloads { pool, record_bytes }
    }

    pub(crate) fn get(&self, producer: u32, partition: i32, seq: u64) -> &[u8] {
        let h = mix(seq ^ mix((u64::from(producer) << 32) | u64::from(partition as u32)));
        let start = (h % POOL_SLACK as u64) as usize;
        &self.pool[start..start + self.record_bytes]
    }
}

// =========================================================================================
// Reading every partition
// =========================================================================================

/// A consumer config that reads explicitly assigned partitions, commits nothing, and asks
/// for big fetches. librdkafka needs a group.id for `assign`; no group is joined.
pub(crate) fn consumer_config(
    bootstrap: &str,
    client_id: &str,
    fetch_max_bytes: u32,
    partition_fetch_bytes: u32,
    queue_kib: u32,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("group.id", format!("{client_id}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set(
            "fetch.max.bytes",
            fetch_max_bytes.max(1_000_000).to_string(),
        )
        .set(
            "max.partition.fetch.bytes",
            partition_fetch_bytes.max(1).to_string(),
        )
        .set("queued.max.messages.kbytes", queue_kib.max(1).to_string())
        .set("fetch.wait.max.ms", "100")
        .set("socket.nagle.disable", "true");
    c
}

/// Assignment of every partition of `topic` at its beginning.
pub(crate) fn all_from_beginning(topic: &str, partitions: i32) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.max(0) as usize);
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = encode_key(7, 11, 123_456_789_012);
        assert_eq!(decode_key(&k), Some((7, 11, 123_456_789_012)));
        assert_eq!(decode_key(&k[..15]), None);
    }

    #[test]
    fn payloads_are_deterministic_and_differ() {
        let a = Payloads::new(1024);
        let b = Payloads::new(1024);
        assert_eq!(a.get(1, 2, 3), b.get(1, 2, 3));
        assert_eq!(a.get(1, 2, 3).len(), 1024);
        assert_ne!(a.get(1, 2, 3), a.get(1, 2, 4));
        assert_ne!(a.get(1, 2, 3), a.get(2, 2, 3));
    }
}
