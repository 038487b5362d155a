//! The pure half of key compaction: the rules that decide what stays ([`record_fate`],
//! [`marker_dropped`], [`is_due`]), the offset map, and decoding and re-encoding one
//! stored batch ([`judge`]). No I/O: unit-tested here, driven by [`super`] (which runs
//! the CPU-heavy parts on the blocking pool).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use sha2::{Digest, Sha256};

use crate::batch::{be_i16, be_i32, be_i64, HEADER_LEN, LOG_OVERHEAD};
use crate::decompress::{self, Codec};
use crate::store::{KeyCompactionRow, KeyCompactionState};
use crate::topic_config;

const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const BASE_SEQUENCE_OFFSET: usize = 53;
const CRC_OFFSET: usize = 17;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;

// ---------------------------------------------------------------------------------------
// Pure rules: no I/O.
// ---------------------------------------------------------------------------------------

/// A topic's compaction settings, Kafka's defaults where unset or unreadable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub min_lag_ms: i64,
    pub max_lag_ms: i64,
    pub dirty_ratio: f64,
    pub delete_retention_ms: i64,
}

impl Settings {
    pub fn from_configs(configs: &BTreeMap<String, String>) -> Self {
        let long = |key: &str, default: i64| {
            topic_config::get(configs, key)
                .trim()
                .parse::<i64>()
                .unwrap_or(default)
        };
        Settings {
            min_lag_ms: long("min.compaction.lag.ms", 0).max(0),
            max_lag_ms: long("max.compaction.lag.ms", i64::MAX).max(1),
            dirty_ratio: topic_config::get(configs, "min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(0.5),
            delete_retention_ms: long("delete.retention.ms", 86_400_000).max(0),
        }
    }
}

/// Whether a `cleanup.policy` value asks for compaction.
pub fn compacts(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "compact")
}

/// Whether a partition in `state` is due for a pass at `now`.
pub fn is_due(state: &KeyCompactionState, s: &Settings, now: i64) -> bool {
    if state.cleanable_bytes <= 0 {
        return false;
    }
    let dirty = state.dirty_bytes > 0
        && (state.dirty_bytes as f64 >= s.dirty_ratio * state.cleanable_bytes as f64
            || state
                .oldest_dirty_ms
                .is_some_and(|t| now.saturating_sub(t) >= s.max_lag_ms));
    let expired = state
        .tombstones_at_ms
        .is_some_and(|t| now.saturating_sub(t) >= s.delete_retention_ms);
    dirty || expired
}

/// A key's digest in the offset map: SHA-256 cut to 128 bits, so two keys collide with
/// negligible odds (a collision would drop a live record) and keys of any size cost 16
/// bytes.
pub type KeyDigest = [u8; 16];

pub fn digest(key: &[u8]) -> KeyDigest {
    let full = Sha256::digest(key);
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// The last offset of each key seen so far.
#[derive(Debug, Default)]
pub struct OffsetMap {
    latest: HashMap<KeyDigest, i64>,
}

impl OffsetMap {
    pub fn note(&mut self, key: &[u8], offset: i64) {
        let e = self.latest.entry(digest(key)).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&digest(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// A partition's aborted transactions: per producer, [first, last] ranges by first offset.
#[derive(Debug, Default)]
pub struct AbortedRanges {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedRanges {
    /// From (producer id, first offset, last offset) rows.
    pub fn new(rows: impl IntoIterator<Item = (i64, i64, i64)>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for (pid, first, last) in rows {
            by_producer.entry(pid).or_default().push((first, last));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedRanges { by_producer }
    }

    /// Whether `offset` written by `producer_id` belongs to an aborted transaction (one
    /// producer's transactions never overlap).
    pub fn contains(&self, producer_id: i64, offset: i64) -> bool {
        let Some(ranges) = self.by_producer.get(&producer_id) else {
            return false;
        };
        let at = ranges.partition_point(|r| r.0 <= offset);
        at > 0 && ranges[at - 1].1 >= offset
    }
}

/// What the rules look at in a record.
#[derive(Debug, Clone, Copy)]
pub struct RecordFacts<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// A null value.
    pub tombstone: bool,
}

/// What the rules look at in the batch holding a record.
#[derive(Debug, Clone, Copy)]
pub struct BatchFacts {
    pub producer_id: i64,
    pub transactional: bool,
    pub committed_at_ms: i64,
    /// Below the cleaned offset when the pass started: an earlier pass cleaned it.
    pub cleaned_before: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub now: i64,
    pub delete_retention_ms: i64,
}

impl Rules {
    /// Whether a cleaned batch's tombstones or marker have outlived `delete.retention.ms`.
    fn expired(&self, b: &BatchFacts) -> bool {
        b.cleaned_before && self.now.saturating_sub(b.committed_at_ms) >= self.delete_retention_ms
    }
}

/// What becomes of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    /// A tombstone kept until it has been cleaned once and is `delete.retention.ms` old.
    KeepTombstone,
    Superseded,
    ExpiredTombstone,
    Aborted,
}

impl Fate {
    pub fn kept(self) -> bool {
        matches!(self, Fate::Keep | Fate::KeepTombstone)
    }
}

fn aborted(b: &BatchFacts, offset: i64, ranges: &AbortedRanges) -> bool {
    b.transactional && ranges.contains(b.producer_id, offset)
}

/// Notes a data batch's records in the map (aborted transactions' records supersede
/// nothing).
pub fn note_records<'a>(
    records: impl IntoIterator<Item = RecordFacts<'a>>,
    b: &BatchFacts,
    map: &mut OffsetMap,
    ranges: &AbortedRanges,
) {
    for r in records {
        if let Some(key) = r.key {
            if !aborted(b, r.offset, ranges) {
                map.note(key, r.offset);
            }
        }
    }
}

/// Judges one record of the section against the map of later keys.
pub fn record_fate(
    r: &RecordFacts<'_>,
    b: &BatchFacts,
    map: &OffsetMap,
    ranges: &AbortedRanges,
    rules: &Rules,
) -> Fate {
    if aborted(b, r.offset, ranges) {
        return Fate::Aborted;
    }
    let Some(key) = r.key else {
        return Fate::Keep;
    };
    if map.latest(key).is_some_and(|last| last > r.offset) {
        return Fate::Superseded;
    }
    if !r.tombstone {
        Fate::Keep
    } else if rules.expired(b) {
        Fate::ExpiredTombstone
    } else {
        Fate::KeepTombstone
    }
}

/// Whether a marker (control batch) of the section goes.
pub fn marker_dropped(b: &BatchFacts, rules: &Rules) -> bool {
    rules.expired(b)
}

// ---------------------------------------------------------------------------------------
// Batch decoding and re-encoding (pure, CPU: run on the blocking pool).
// ---------------------------------------------------------------------------------------

/// A v2 header whose length field matches the stored length.
fn looks_like_batch(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && be_i32(bytes, 8) as i64 == bytes.len() as i64 - LOG_OVERHEAD as i64
        && bytes[16] == 2
}

/// A stored batch's records with their absolute offsets (the stored base offset may be 0
/// or the row's: the fetch path patches it in either way).
pub(super) fn decode(
    row: &KeyCompactionRow,
    bytes: &Bytes,
) -> anyhow::Result<(Compression, Vec<Record>)> {
    anyhow::ensure!(
        looks_like_batch(bytes),
        "the batch at offset {} is not a record batch",
        row.base_offset
    );
    let stored_base = be_i64(bytes, 0);
    let mut buf = bytes.clone();
    let inflate = |b: &mut Bytes, c: Compression| -> anyhow::Result<Bytes> {
        let codec = match c {
            Compression::None => return Ok(b.clone()),
            Compression::Gzip => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd => Codec::Zstd,
        };
        Ok(Bytes::from(decompress::decompress(
            codec,
            &b[..],
            decompress::DEFAULT_LIMIT,
        )?))
    };
    let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(inflate))
        .with_context(|| format!("decoding the batch at offset {}", row.base_offset))?;
    let mut records = set.records;
    for r in &mut records {
        r.offset = row.base_offset + (r.offset - stored_base);
    }
    Ok((set.compression, records))
}

/// Encodes the kept records of one input batch (`input` its stored bytes, `input_base`
/// the absolute offset of its first record, `kept` with absolute offsets) as one batch,
/// stored with base offset 0 like every produced batch: same producer, epoch, flags,
/// compression and timestamp type; base sequence that of the first kept record.
fn encode(
    input: &[u8],
    input_base: i64,
    compression: Compression,
    kept: Vec<Record>,
) -> anyhow::Result<Bytes> {
    let first = kept.first().context("encoding an empty batch")?.offset;
    let base_sequence = be_i32(input, BASE_SEQUENCE_OFFSET);
    let out_sequence = if base_sequence < 0 {
        -1
    } else {
        base_sequence.wrapping_add((first - input_base) as i32)
    };
    let count = kept.len();
    let records: Vec<Record> = kept
        .into_iter()
        .map(|mut r| {
            let delta = r.offset - first;
            r.offset = delta;
            // Offsets and sequences advance together, or the encoder splits the batch.
            r.sequence = out_sequence.wrapping_add(delta as i32);
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .context("re-encoding a compacted batch")?;
    anyhow::ensure!(
        looks_like_batch(&buf) && be_i32(&buf, 57) as usize == count,
        "the encoder split a compacted batch of {count} records"
    );
    // The encoder knows no timestamp type: a LogAppendTime batch keeps its type and its
    // append time (the max timestamp), and so its CRC is computed again.
    let attributes = be_i16(input, ATTRIBUTES_OFFSET);
    if attributes & TIMESTAMP_TYPE_BIT != 0 {
        let attrs = be_i16(&buf, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
        buf[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&input[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]);
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(buf.freeze())
}

pub(super) fn facts(row: &KeyCompactionRow, cleaned_offset: i64) -> BatchFacts {
    BatchFacts {
        producer_id: row.producer_id,
        transactional: row.transactional,
        committed_at_ms: row.committed_at_ms,
        cleaned_before: row.base_offset < cleaned_offset,
    }
}

pub(super) fn record_facts(r: &Record) -> RecordFacts<'_> {
    RecordFacts {
        offset: r.offset,
        key: r.key.as_deref(),
        tombstone: r.value.is_none(),
    }
}

/// What becomes of one batch of the section.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Stays as stored; `lingers`: it holds a tombstone or is a marker that a later pass
    /// removes.
    Unchanged {
        lingers: bool,
    },
    Dropped {
        records: u64,
        marker: bool,
    },
    Rewritten {
        bytes: Bytes,
        base_offset: i64,
        last_offset: i64,
        record_count: i32,
        removed: u64,
        lingers: bool,
    },
}

/// Everything a window's judgement reads.
pub(super) struct Judge {
    pub map: OffsetMap,
    pub aborted: Arc<AbortedRanges>,
    pub rules: Rules,
    pub cleaned_offset: i64,
}

pub(super) fn judge(row: &KeyCompactionRow, bytes: &Bytes, cx: &Judge) -> anyhow::Result<Outcome> {
    let b = facts(row, cx.cleaned_offset);
    if row.control {
        return Ok(if marker_dropped(&b, &cx.rules) {
            Outcome::Dropped {
                records: row.record_count.max(1) as u64,
                marker: true,
            }
        } else {
            Outcome::Unchanged { lingers: true }
        });
    }
    let (compression, records) = decode(row, bytes)?;
    let mut kept = Vec::with_capacity(records.len());
    let (mut removed, mut lingers) = (0u64, false);
    for r in records {
        let fate = record_fate(&record_facts(&r), &b, &cx.map, &cx.aborted, &cx.rules);
        if fate.kept() {
            lingers |= fate == Fate::KeepTombstone;
            kept.push(r);
        } else {
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok(Outcome::Unchanged { lingers });
    }
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return Ok(Outcome::Dropped {
            records: removed,
            marker: false,
        });
    };
    let (base_offset, last_offset, record_count) = (first.offset, last.offset, kept.len() as i32);
    Ok(Outcome::Rewritten {
        bytes: encode(bytes, row.base_offset, compression, kept)?,
        base_offset,
        last_offset,
        record_count,
        removed,
        lingers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn batch(cleaned_before: bool, committed_at_ms: i64) -> BatchFacts {
        BatchFacts {
            producer_id: -1,
            transactional: false,
            committed_at_ms,
            cleaned_before,
        }
    }

    fn rec(offset: i64, key: Option<&'static str>, tombstone: bool) -> RecordFacts<'static> {
        RecordFacts {
            offset,
            key: key.map(str::as_bytes),
            tombstone,
        }
    }

    fn rules(delete_retention_ms: i64) -> Rules {
        Rules {
            now: NOW,
            delete_retention_ms,
        }
    }

    #[test]
    fn the_last_record_of_a_key_wins() {
        let none = AbortedRanges::default();
        let b = batch(false, 0);
        let log = [
            rec(0, Some("a"), false),
            rec(1, Some("b"), false),
            rec(2, Some("a"), false),
            rec(3, None, false),
            rec(4, None, false),
        ];
        let mut map = OffsetMap::default();
        note_records(log, &b, &mut map, &none);
        // The head wrote "b" again later.
        note_records([rec(9, Some("b"), false)], &b, &mut map, &none);
        assert_eq!(map.len(), 2);
        let fates: Vec<Fate> = log
            .iter()
            .map(|r| record_fate(r, &b, &map, &none, &rules(0)))
            .collect();
        assert_eq!(
            fates,
            [
                Fate::Superseded,
                Fate::Superseded,
                Fate::Keep,
                Fate::Keep, // null keys are never dropped
                Fate::Keep,
            ]
        );
    }

    #[test]
    fn tombstones_go_after_a_cleaning_and_the_retention() {
        let none = AbortedRanges::default();
        let mut map = OffsetMap::default();
        let t = rec(5, Some("k"), true);
        note_records([t], &batch(false, 0), &mut map, &none);
        let fate = |map: &OffsetMap, cleaned_before, at, retention| {
            record_fate(
                &t,
                &batch(cleaned_before, at),
                map,
                &none,
                &rules(retention),
            )
        };
        assert_eq!(
            fate(&map, false, 0, 0),
            Fate::KeepTombstone,
            "first cleaned now: kept"
        );
        assert_eq!(fate(&map, true, 0, 0), Fate::ExpiredTombstone);
        assert_eq!(
            fate(&map, true, NOW - 10, 100),
            Fate::KeepTombstone,
            "too young"
        );
        assert_eq!(fate(&map, true, NOW - 100, 100), Fate::ExpiredTombstone);
        // A later value of the key supersedes a tombstone whatever its age.
        map.note(b"k", 7);
        assert_eq!(fate(&map, false, NOW, 1 << 40), Fate::Superseded);
        // Markers follow the tombstones' rule.
        assert!(!marker_dropped(&batch(false, 0), &rules(0)));
        assert!(marker_dropped(&batch(true, 0), &rules(0)));
        assert!(!marker_dropped(&batch(true, NOW - 1), &rules(10)));
    }

    #[test]
    fn aborted_records_go_and_supersede_nothing() {
        let ranges = AbortedRanges::new([(7, 10, 20), (7, 30, 35), (8, 0, 100)]);
        assert!(ranges.contains(7, 10) && ranges.contains(7, 20) && ranges.contains(7, 33));
        assert!(!ranges.contains(7, 21) && !ranges.contains(7, 9) && !ranges.contains(7, 36));
        assert!(!ranges.contains(9, 15));
        let txn = BatchFacts {
            producer_id: 7,
            transactional: true,
            committed_at_ms: 0,
            cleaned_before: false,
        };
        let plain = batch(false, 0);
        let mut map = OffsetMap::default();
        note_records([rec(1, Some("k"), false)], &plain, &mut map, &ranges);
        note_records([rec(12, Some("k"), false)], &txn, &mut map, &ranges);
        assert_eq!(map.latest(b"k"), Some(1), "the aborted write is not noted");
        let fate =
            |r: RecordFacts<'_>, b: &BatchFacts| record_fate(&r, b, &map, &ranges, &rules(0));
        assert_eq!(fate(rec(12, Some("k"), false), &txn), Fate::Aborted);
        assert_eq!(fate(rec(13, None, false), &txn), Fate::Aborted);
        assert_eq!(fate(rec(1, Some("k"), false), &plain), Fate::Keep);
        // A committed transaction of the same producer keeps its records.
        assert_eq!(fate(rec(25, None, false), &txn), Fate::Keep);
        // A non-transactional batch is never judged aborted.
        let idempotent = BatchFacts {
            transactional: false,
            ..txn
        };
        assert_eq!(fate(rec(15, None, false), &idempotent), Fate::Keep);
    }

    fn state(cleanable: i64, dirty: i64) -> KeyCompactionState {
        KeyCompactionState {
            log_start_offset: 0,
            next_offset: 100,
            last_stable_offset: 100,
            cleaned_offset: 50,
            tombstones_at_ms: None,
            cleanable_end: 90,
            cleanable_bytes: cleanable,
            dirty_bytes: dirty,
            oldest_dirty_ms: Some(NOW - 1_000),
        }
    }

    #[test]
    fn a_pass_is_due_by_ratio_age_or_expired_tombstones() {
        let s = Settings::from_configs(&BTreeMap::new());
        assert_eq!(
            s,
            Settings {
                min_lag_ms: 0,
                max_lag_ms: i64::MAX,
                dirty_ratio: 0.5,
                delete_retention_ms: 86_400_000,
            }
        );
        assert!(is_due(&state(100, 50), &s, NOW));
        assert!(!is_due(&state(100, 49), &s, NOW));
        assert!(!is_due(&state(0, 0), &s, NOW), "nothing cleanable");
        let old = Settings {
            max_lag_ms: 1_000,
            ..s
        };
        assert!(
            is_due(&state(100, 1), &old, NOW),
            "the dirty part is too old"
        );
        assert!(!is_due(&state(100, 0), &old, NOW));
        let mut tomb = state(100, 0);
        tomb.tombstones_at_ms = Some(NOW - 86_400_000);
        assert!(is_due(&tomb, &s, NOW));
        tomb.tombstones_at_ms = Some(NOW - 1);
        assert!(!is_due(&tomb, &s, NOW));

        let configs: BTreeMap<String, String> = [
            ("min.cleanable.dirty.ratio", "2"),
            ("min.compaction.lag.ms", "5"),
            ("delete.retention.ms", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Settings::from_configs(&configs);
        assert_eq!(
            (s.dirty_ratio, s.min_lag_ms, s.delete_retention_ms),
            (0.5, 5, 0)
        );
        assert!(compacts("compact") && compacts("delete, compact") && !compacts("delete"));
    }

    fn record(offset: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: 42,
            producer_epoch: 3,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            sequence: 100 + offset as i32,
            timestamp: 1_000 + offset,
            key: Some(Bytes::from(key.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        }
    }

    fn row(base_offset: i64, len: usize) -> KeyCompactionRow {
        KeyCompactionRow {
            base_offset,
            last_offset: base_offset + 4,
            file_id: 1,
            object_key: "segments/x".into(),
            byte_offset: 0,
            byte_len: len as u64,
            record_count: 5,
            max_timestamp: 1_004,
            producer_id: 42,
            transactional: false,
            control: false,
            committed_at_ms: 0,
        }
    }

    #[test]
    fn a_batch_is_reencoded_with_its_offsets_and_producer() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records: Vec<Record> = (0..5)
                .map(|i| record(i, &format!("k{}", i % 2), Some("v")))
                .collect();
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &records,
                &RecordEncodeOptions {
                    version: 2,
                    compression,
                },
            )
            .unwrap();
            let stored = buf.freeze();
            let r = row(200, stored.len());
            let (c, decoded) = decode(&r, &stored).unwrap();
            assert_eq!(c, compression);
            assert_eq!(
                decoded.iter().map(|r| r.offset).collect::<Vec<_>>(),
                [200, 201, 202, 203, 204]
            );
            // Keep offsets 201 and 203: base 201, sequences those of the input.
            let kept: Vec<Record> = decoded
                .into_iter()
                .filter(|r| r.offset == 201 || r.offset == 203)
                .collect();
            let out = encode(&stored, 200, compression, kept).unwrap();
            let mut again = out.clone();
            let set = RecordBatchDecoder::decode_with_custom_compression(
                &mut again,
                None::<fn(&mut Bytes, Compression) -> anyhow::Result<Bytes>>,
            )
            .unwrap();
            assert_eq!(set.compression, compression);
            let got: Vec<(i64, i32, i64, i16)> = set
                .records
                .iter()
                .map(|r| (r.offset, r.sequence, r.producer_id, r.producer_epoch))
                .collect();
            assert_eq!(got, [(0, 101, 42, 3), (2, 103, 42, 3)], "{compression:?}");
            assert_eq!(
                be_i32(&out, 23),
                2,
                "last offset delta spans the kept records"
            );
        }
    }

    #[test]
    fn log_append_time_survives_a_rewrite() {
        let records: Vec<Record> = (0..3).map(|i| record(i, "k", Some("v"))).collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let batch = crate::batch::split_batches(&buf.freeze(), 1 << 20).unwrap();
        let stamped = crate::batch::stamp_log_append_time(&batch[0], 77_777);
        let r = row(0, stamped.bytes.len());
        let (_, decoded) = decode(&r, &stamped.bytes).unwrap();
        let out = encode(&stamped.bytes, 0, Compression::None, decoded[2..].to_vec()).unwrap();
        let split =
            crate::batch::split_batches(&out, 1 << 20).expect("a valid batch, crc included");
        assert_eq!(split[0].header.max_timestamp, 77_777);
        assert_ne!(split[0].header.attributes & TIMESTAMP_TYPE_BIT, 0);
        assert_eq!(split[0].header.base_sequence, 102);
    }

    #[test]
    fn plain_producers_keep_no_sequence() {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                producer_id: -1,
                producer_epoch: -1,
                sequence: -1 + i as i32,
                ..record(i, "k", Some("v"))
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
        .unwrap();
        let stored = buf.freeze();
        assert_eq!(be_i32(&stored, BASE_SEQUENCE_OFFSET), -1);
        let r = row(10, stored.len());
        let (_, decoded) = decode(&r, &stored).unwrap();
        let kept = vec![decoded[1].clone(), decoded[3].clone()];
        let out = encode(&stored, 10, Compression::None, kept).unwrap();
        assert_eq!(be_i32(&out, BASE_SEQUENCE_OFFSET), -1);
        assert_eq!(be_i32(&out, 57), 2, "one batch of two records");
    }
}
