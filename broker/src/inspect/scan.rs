//! Scans for the message browser: pages of records, newest first or oldest first, through a
//! filter evaluated while the partitions are read, with cursors to page on.
//!
//! A page reads each partition in its direction (backwards from an end for the newest
//! records, forwards from a start for an offset or a time), keeps the records the filter
//! accepts, and stops at `limit` matches, at the page's byte budget or at the log's edge.
//! Without a filter the budget is [`MAX_READ_BYTES`] of batches, as a plain read; with one
//! it is [`SCAN_BYTES`], so a search through a large log ends in bounded time and says how
//! far it got: its `next` cursor continues the scan from there.
//!
//! # Cursors
//! A [`Cursor`] is a direction and one position per partition: for newer pages the offset
//! to read from, for older pages the offset to read below. A page's `older` and `newer`
//! cursors lie just past what it covered on either side, so paging never skips a record
//! and never shows one twice; `next` is the cursor in the page's own direction, None when
//! that direction has nothing more (older: every partition scanned to its log start;
//! newer: to its log end when it was read).

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::records::{decode_batch, find_topic, Budget};
use super::{InspectError, ReadFrom, RecordView, MAX_READ_BYTES, MAX_RECORDS, PARTITION_READS};
use crate::state::Broker;
use crate::store::TopicMeta;

/// A predicate over decoded records, run on each record a scan reads.
pub type RecordFilter = dyn Fn(&RecordView) -> bool + Send + Sync;

/// The batch bytes a filtered page may read, all partitions together.
pub const SCAN_BYTES: usize = 32 << 20;

/// The decoded bytes of the records one page returns (at least one record).
pub const PAGE_BYTES: usize = MAX_READ_BYTES;

/// Batch rows asked from the store at a time.
const ROWS: i64 = 64;

/// Where a page continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Newer records (read forwards from each position) or older (backwards, below it).
    pub newer: bool,
    /// (partition, offset), sorted by partition.
    pub positions: Vec<(i32, i64)>,
}

impl Cursor {
    /// `n` or `o`, then `partition_offset` pairs joined by `-`: `n0_120-1_98`. Only URL-safe
    /// characters, so it goes into links as is.
    pub fn encode(&self) -> String {
        let mut s = String::from(if self.newer { "n" } else { "o" });
        for (i, (p, o)) in self.positions.iter().enumerate() {
            if i > 0 {
                s.push('-');
            }
            s.push_str(&format!("{p}_{o}"));
        }
        s
    }

    /// Parses [`Cursor::encode`]'s form; a plain message for anything else.
    pub fn decode(s: &str) -> Result<Cursor, InspectError> {
        let bad = || {
            InspectError::Invalid(
                "This page link is damaged (its cursor does not parse): start again from the newest records."
                    .to_string(),
            )
        };
        if s.len() > 256 * 1024 {
            return Err(bad());
        }
        let newer = match s.as_bytes().first() {
            Some(b'n') => true,
            Some(b'o') => false,
            _ => return Err(bad()),
        };
        let mut positions = Vec::new();
        let rest = &s[1..];
        if !rest.is_empty() {
            for pair in rest.split('-') {
                let (p, o) = pair.split_once('_').ok_or_else(bad)?;
                let p: i32 = p.parse().map_err(|_| bad())?;
                let o: i64 = o.parse().map_err(|_| bad())?;
                if p < 0 || o < 0 || positions.len() >= crate::topic_config::MAX_PARTITIONS as usize
                {
                    return Err(bad());
                }
                positions.push((p, o));
            }
        }
        positions.sort_unstable();
        positions.dedup_by_key(|x| x.0);
        Ok(Cursor { newer, positions })
    }
}

/// Where a page starts.
#[derive(Debug, Clone)]
pub enum ScanStart {
    From(ReadFrom),
    Cursor(Cursor),
}

/// One page of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    /// Newest first for older pages (and the newest records), oldest first otherwise.
    pub records: Vec<RecordView>,
    pub newest_first: bool,
    /// The following page in this page's direction; None at the end.
    pub next: Option<Cursor>,
    /// Records older than this page; None when the page reaches every log start.
    pub older: Option<Cursor>,
    /// Records newer than this page (for the live tail too).
    pub newer: Option<Cursor>,
    /// Records the scan read (before the filter).
    pub scanned_records: u64,
    /// Batch bytes the scan read.
    pub scanned_bytes: u64,
    /// The byte budget (or the page's byte cap) ended the page before `limit` records:
    /// `next` continues where it stopped.
    pub stopped_by_bytes: bool,
}

/// What one partition's part of a page covered.
struct Part {
    partition: i32,
    /// Matches in offset order.
    records: Vec<RecordView>,
    /// The lowest offset covered (backwards: the next older page reads below it).
    lo: i64,
    /// The offset after the highest covered (forwards: the next newer page reads from it).
    hi: i64,
    log_start: i64,
    log_end: i64,
    scanned: u64,
    bytes: u64,
    stopped_by_bytes: bool,
}

/// One page of records of `topic` (one partition or all), from `start`, through `filter`.
pub async fn scan(
    broker: &Broker,
    cluster: &str,
    topic: &str,
    partition: Option<i32>,
    start: ScanStart,
    limit: usize,
    filter: Option<Arc<RecordFilter>>,
) -> Result<ScanPage, InspectError> {
    let topic = find_topic(broker, cluster, topic).await?;
    if let Some(p) = partition {
        if !(0..topic.partitions).contains(&p) {
            return Err(InspectError::NotFound(format!(
                "topic '{}' has {} partition(s); partition {p} does not exist",
                topic.name, topic.partitions
            )));
        }
    }
    let limit = limit.clamp(1, MAX_RECORDS);
    let partitions: Vec<i32> = match partition {
        Some(p) => vec![p],
        None => (0..topic.partitions).collect(),
    };
    let states = broker.meta.partition_states(topic.id).await?;
    let bounds = |p: i32| {
        states
            .get(&p)
            .map(|s| (s.log_start_offset, s.next_offset))
            .unwrap_or((0, 0))
    };
    // Each partition's start: its position, and for a read by time the time to reach.
    let (newer, starts): (bool, Vec<(i32, i64, Option<i64>)>) = match &start {
        ScanStart::Cursor(c) => {
            // Positions are sorted by partition (Cursor::decode).
            let at = |p: i32| {
                c.positions
                    .binary_search_by_key(&p, |x| x.0)
                    .ok()
                    .map(|i| c.positions[i].1)
            };
            let starts = partitions
                .iter()
                .map(|&p| {
                    let (s, e) = bounds(p);
                    // A partition the cursor does not name (added since): from its edge.
                    let pos = at(p).unwrap_or(if c.newer { s } else { e });
                    (p, pos.clamp(s, e.max(s)), None)
                })
                .collect();
            (c.newer, starts)
        }
        ScanStart::From(ReadFrom::Newest) => (
            false,
            partitions.iter().map(|&p| (p, bounds(p).1, None)).collect(),
        ),
        ScanStart::From(ReadFrom::Offset(o)) => (
            true,
            partitions
                .iter()
                .map(|&p| {
                    let (s, e) = bounds(p);
                    (p, (*o).clamp(s, e.max(s)), None)
                })
                .collect(),
        ),
        ScanStart::From(ReadFrom::Timestamp(t)) => {
            let mut starts = Vec::with_capacity(partitions.len());
            for &p in &partitions {
                let (s, e) = bounds(p);
                let pos = match broker.meta.offset_for_timestamp(topic.id, p, *t).await? {
                    Some((offset, _)) => offset.clamp(s, e.max(s)),
                    None => e,
                };
                starts.push((p, pos, Some(*t)));
            }
            (true, starts)
        }
    };
    let total_bytes = if filter.is_some() {
        SCAN_BYTES
    } else {
        MAX_READ_BYTES
    };
    // Shared by the partitions (each still reads at least one batch, as Fetch does).
    let byte_cap = total_bytes / partitions.len().max(1);
    let budget = &Budget::new();
    let topic = &topic;
    let parts: Vec<Part> = stream::iter(starts)
        .map(|(p, pos, min_ts)| {
            let (s, e) = bounds(p);
            let filter = filter.clone();
            async move {
                let filter = filter.as_ref();
                let mut part = Part {
                    partition: p,
                    records: Vec::new(),
                    lo: pos,
                    hi: pos,
                    log_start: s,
                    log_end: e,
                    scanned: 0,
                    bytes: 0,
                    stopped_by_bytes: false,
                };
                if newer {
                    forwards(
                        broker, topic, &mut part, limit, byte_cap, filter, min_ts, budget,
                    )
                    .await?;
                } else {
                    backwards(broker, topic, &mut part, limit, byte_cap, filter, budget).await?;
                }
                Ok::<Part, InspectError>(part)
            }
        })
        .buffered(PARTITION_READS)
        .try_collect()
        .await?;
    Ok(merge(parts, newer, limit))
}

/// Merges the partitions' matches into one page of at most `limit` records and works out
/// the cursors, so that records dropped from the page are read again by the next one.
fn merge(mut parts: Vec<Part>, newer: bool, limit: usize) -> ScanPage {
    let mut all: Vec<(usize, RecordView)> = Vec::new();
    for (i, part) in parts.iter_mut().enumerate() {
        all.extend(
            std::mem::take(&mut part.records)
                .into_iter()
                .map(|r| (i, r)),
        );
    }
    let key = |r: &RecordView| (r.timestamp_ms, r.partition, r.offset);
    if newer {
        all.sort_by_key(|(_, r)| key(r));
    } else {
        all.sort_by_key(|(_, r)| std::cmp::Reverse(key(r)));
    }
    let dropped: Vec<(usize, RecordView)> = if all.len() > limit {
        all.split_off(limit)
    } else {
        Vec::new()
    };
    // Per partition: the offsets of its records on the page, and of those dropped.
    let mut kept_min = vec![i64::MAX; parts.len()];
    let mut kept_max = vec![i64::MIN; parts.len()];
    for (i, r) in &all {
        kept_min[*i] = kept_min[*i].min(r.offset);
        kept_max[*i] = kept_max[*i].max(r.offset);
    }
    let mut dropped_any = vec![false; parts.len()];
    for (i, _) in &dropped {
        dropped_any[*i] = true;
    }
    let mut older_pos = Vec::with_capacity(parts.len());
    let mut newer_pos = Vec::with_capacity(parts.len());
    let mut more_older = false;
    let mut more_newer = false;
    for (i, part) in parts.iter().enumerate() {
        let (lo, hi) = if newer {
            // Forwards from `lo`: the next page starts after the last record shown, or
            // where the scan stopped when none of this partition was shown.
            let hi = if kept_max[i] != i64::MIN {
                kept_max[i] + 1
            } else if dropped_any[i] {
                part.lo
            } else {
                part.hi
            };
            (part.lo, hi)
        } else {
            // Backwards from `hi`: the next page reads below the oldest record shown.
            let lo = if kept_min[i] != i64::MAX {
                kept_min[i]
            } else if dropped_any[i] {
                part.hi
            } else {
                part.lo
            };
            (lo, part.hi)
        };
        more_older |= lo > part.log_start;
        more_newer |= hi < part.log_end;
        older_pos.push((part.partition, lo));
        newer_pos.push((part.partition, hi));
    }
    let records: Vec<RecordView> = all.into_iter().map(|(_, r)| r).collect();
    let older = more_older.then_some(Cursor {
        newer: false,
        positions: older_pos,
    });
    let newer_cursor = Some(Cursor {
        newer: true,
        positions: newer_pos,
    });
    let next = if newer {
        more_newer.then(|| newer_cursor.clone()).flatten()
    } else {
        older.clone()
    };
    ScanPage {
        newest_first: !newer,
        next,
        older,
        newer: newer_cursor,
        scanned_records: parts.iter().map(|p| p.scanned).sum(),
        scanned_bytes: parts.iter().map(|p| p.bytes).sum(),
        stopped_by_bytes: parts.iter().any(|p| p.stopped_by_bytes) && records.len() < limit,
        records,
    }
}

/// Which of `records` the filter accepts, worked out on the blocking pool (a VRL program
/// is CPU work of unknown cost). A batch that cannot be shown is always listed: the person
/// browsing must know.
async fn accepted(
    filter: Option<&Arc<RecordFilter>>,
    records: Vec<RecordView>,
) -> Result<(Vec<RecordView>, Vec<bool>), InspectError> {
    let Some(f) = filter else {
        let all = vec![true; records.len()];
        return Ok((records, all));
    };
    let f = f.clone();
    tokio::task::spawn_blocking(move || {
        let flags = records
            .iter()
            .map(|r| r.error.is_some() || f(r))
            .collect::<Vec<bool>>();
        (records, flags)
    })
    .await
    .map_err(|e| InspectError::Storage(format!("the filter could not run: {e}")))
}

/// Reads `part` forwards from `part.lo` to its log end.
#[allow(clippy::too_many_arguments)]
async fn forwards(
    broker: &Broker,
    topic: &TopicMeta,
    part: &mut Part,
    limit: usize,
    byte_cap: usize,
    filter: Option<&Arc<RecordFilter>>,
    mut min_ts: Option<i64>,
    budget: &Budget,
) -> Result<(), InspectError> {
    let mut next = part.lo;
    let mut kept_bytes = 0usize;
    let _permit = broker.fetch_gate.acquire(2 * PAGE_BYTES as u64).await;
    'rows: while next < part.log_end {
        let rows = broker
            .meta
            .batches_from(topic.id, part.partition, next, ROWS)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if row.base_offset >= part.log_end {
                break 'rows;
            }
            if part.bytes > 0 && part.bytes + row.byte_len as u64 > byte_cap as u64 {
                part.stopped_by_bytes = true;
                break 'rows;
            }
            part.bytes += row.byte_len as u64;
            let Some(records) = decode_batch(broker, row, part.partition, budget).await? else {
                part.stopped_by_bytes = true;
                break 'rows;
            };
            let mut wanted = Vec::with_capacity(records.len());
            for r in records {
                if r.offset < next && r.error.is_none() {
                    continue;
                }
                if let Some(t) = min_ts {
                    // A read by time skips the records of its first batch that are older.
                    if r.timestamp_ms < t && r.error.is_none() {
                        continue;
                    }
                    min_ts = None;
                }
                wanted.push(r);
            }
            let (records, flags) = accepted(filter, wanted).await?;
            for (r, ok) in records.into_iter().zip(flags) {
                part.scanned += 1;
                if ok {
                    kept_bytes += r.decoded_len();
                    let offset = r.offset;
                    part.records.push(r);
                    if part.records.len() >= limit || kept_bytes >= PAGE_BYTES {
                        part.stopped_by_bytes = kept_bytes >= PAGE_BYTES;
                        next = offset + 1;
                        break 'rows;
                    }
                }
            }
            next = next.max(row.last_offset + 1);
        }
    }
    part.hi = next.min(part.log_end).max(part.lo);
    Ok(())
}

/// Reads `part` backwards from below `part.hi` to its log start, keeping the newest matches.
async fn backwards(
    broker: &Broker,
    topic: &TopicMeta,
    part: &mut Part,
    limit: usize,
    byte_cap: usize,
    filter: Option<&Arc<RecordFilter>>,
    budget: &Budget,
) -> Result<(), InspectError> {
    let mut below = part.hi;
    let mut kept_bytes = 0usize;
    // Newest first while reading; put in offset order at the end.
    let mut found: Vec<RecordView> = Vec::new();
    let _permit = broker.fetch_gate.acquire(2 * PAGE_BYTES as u64).await;
    'rows: while below > part.log_start {
        let rows = broker
            .meta
            .batches_before(topic.id, part.partition, below, ROWS.min(limit as i64 + 1))
            .await?;
        if rows.is_empty() {
            below = part.log_start;
            break;
        }
        for row in rows.iter().rev() {
            if part.bytes > 0 && part.bytes + row.byte_len as u64 > byte_cap as u64 {
                part.stopped_by_bytes = true;
                break 'rows;
            }
            part.bytes += row.byte_len as u64;
            let Some(mut records) = decode_batch(broker, row, part.partition, budget).await? else {
                part.stopped_by_bytes = true;
                break 'rows;
            };
            records.retain(|r| r.offset < below || r.error.is_some());
            let (records, flags) = accepted(filter, records).await?;
            for (r, ok) in records.into_iter().zip(flags).rev() {
                part.scanned += 1;
                if ok {
                    kept_bytes += r.decoded_len();
                    let offset = r.offset;
                    found.push(r);
                    if found.len() >= limit || kept_bytes >= PAGE_BYTES {
                        part.stopped_by_bytes = kept_bytes >= PAGE_BYTES && found.len() < limit;
                        below = offset;
                        break 'rows;
                    }
                }
            }
            below = row.base_offset.max(part.log_start).min(below);
        }
    }
    part.lo = below.max(part.log_start).min(part.hi);
    found.reverse();
    part.records = found;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            newer: true,
            positions: vec![(0, 120), (1, 98)],
        };
        assert_eq!(c.encode(), "n0_120-1_98");
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let o = Cursor {
            newer: false,
            positions: vec![],
        };
        assert_eq!(Cursor::decode(&o.encode()).unwrap(), o);
        for junk in [
            "",
            "x0_1",
            "n0_",
            "n_1",
            "n0_-1",
            "n-1_3",
            "n0_1-",
            "n0_99999999999999999999",
        ] {
            assert!(Cursor::decode(junk).is_err(), "{junk}");
        }
    }

    fn rec(partition: i32, offset: i64, ts: i64) -> RecordView {
        RecordView {
            partition,
            offset,
            timestamp_ms: ts,
            key: None,
            value: None,
            headers: Vec::new(),
            error: None,
        }
    }

    fn part(partition: i32, records: Vec<RecordView>, lo: i64, hi: i64, end: i64) -> Part {
        Part {
            partition,
            records,
            lo,
            hi,
            log_start: 0,
            log_end: end,
            scanned: 0,
            bytes: 0,
            stopped_by_bytes: false,
        }
    }

    #[test]
    fn older_pages_resume_below_the_oldest_record_shown() {
        // Partition 0 found offsets 7..10 (ts 70..), partition 1 found 3..5 (ts 10..).
        let p0 = part(0, (7..10).map(|o| rec(0, o, o * 10)).collect(), 7, 10, 10);
        let p1 = part(1, (3..5).map(|o| rec(1, o, o)).collect(), 3, 5, 5);
        let page = merge(vec![p0, p1], false, 3);
        assert!(page.newest_first);
        let shown: Vec<_> = page
            .records
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(shown, vec![(0, 9), (0, 8), (0, 7)]);
        // Partition 1's records were dropped: its older position stays at its top.
        let older = page.older.unwrap();
        assert_eq!(older.positions, vec![(0, 7), (1, 5)]);
        assert_eq!(page.next.unwrap(), older);
        assert_eq!(page.newer.unwrap().positions, vec![(0, 10), (1, 5)]);
    }

    #[test]
    fn newer_pages_resume_after_the_last_record_shown_and_end_at_the_log_end() {
        let p0 = part(0, vec![rec(0, 2, 1), rec(0, 3, 5)], 2, 4, 4);
        let p1 = part(1, vec![rec(1, 0, 2)], 0, 9, 9);
        let page = merge(vec![p0, p1], true, 2);
        let shown: Vec<_> = page
            .records
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(shown, vec![(0, 2), (1, 0)]);
        let next = page.next.unwrap();
        // Partition 0's offset 3 was dropped: read again; partition 1 after offset 0.
        assert_eq!(next.positions, vec![(0, 3), (1, 1)]);
        let p0 = part(0, vec![], 4, 4, 4);
        let page = merge(vec![p0], true, 2);
        assert!(page.next.is_none(), "at the log end");
        assert_eq!(page.newer.unwrap().positions, vec![(0, 4)]);
        assert_eq!(page.older.unwrap().positions, vec![(0, 4)]);
    }
}
