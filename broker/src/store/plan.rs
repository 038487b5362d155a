//! Offset assignment and idempotent-producer checks for one flush, as a pure function.
//!
//! The commit transaction reads the partition heads and producer states it needs, hands
//! them here together with the flush's append groups, and writes back what comes out. No
//! I/O happens here, so every rule is unit-tested directly.
//!
//! An *append group* is the record set one Produce request sent for one partition: it is
//! appended whole or not at all, and answered with the base offset of its first batch.

use std::collections::{HashMap, VecDeque};

use crate::codes::{
    INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, OUT_OF_ORDER_SEQUENCE_NUMBER,
    UNKNOWN_TOPIC_OR_PARTITION,
};

/// How many recent batches per producer and partition are remembered for deduplication
/// (Kafka clients keep at most five requests in flight when idempotent).
pub const RECENT_BATCHES: usize = 5;

pub type PartitionKey = (i64, i32);

/// One batch waiting in a segment file for its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBatch {
    pub byte_offset: u64,
    pub byte_len: u32,
    pub offset_count: i64,
    pub record_count: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_sequence: i32,
    pub transactional: bool,
}

/// All batches one request sent to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendGroup {
    pub topic_id: i64,
    pub partition: i32,
    pub batches: Vec<PendingBatch>,
}

/// Where a partition's log currently ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionHead {
    pub next_offset: i64,
    pub log_start_offset: i64,
}

/// What the broker remembers of an idempotent producer on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub last_sequence: i32,
    /// (first sequence, last sequence, base offset), oldest first.
    pub recent: VecDeque<(i32, i32, i64)>,
}

impl ProducerEntry {
    pub fn encode_recent(&self) -> String {
        self.recent
            .iter()
            .map(|(f, l, o)| format!("{f}:{l}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn decode_recent(s: &str) -> VecDeque<(i32, i32, i64)> {
        s.split(',')
            .filter_map(|item| {
                let mut it = item.split(':');
                Some((
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

/// The answer for one append group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOutcome {
    /// Newly appended at `base_offset`.
    Appended {
        base_offset: i64,
        log_start_offset: i64,
    },
    /// A retry of batches already stored: answered with their original offset.
    Duplicate {
        base_offset: i64,
        log_start_offset: i64,
    },
    /// Refused with a Kafka error code; nothing of the group is stored.
    Failed(i16),
}

/// A batch row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    /// Index of the append group (in the planner's input) the batch belongs to.
    pub group: usize,
    pub topic_id: i64,
    pub partition: i32,
    pub base_offset: i64,
    pub batch: PendingBatch,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub outcomes: Vec<GroupOutcome>,
    pub rows: Vec<PlannedBatch>,
    /// Partitions whose `next_offset` moved, with the new head.
    pub heads: HashMap<PartitionKey, PartitionHead>,
    /// Producer entries to upsert, keyed by (topic, partition, producer id).
    pub producers: HashMap<(i64, i32, i64), ProducerEntry>,
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Checks one idempotent batch against the producer's entry.
/// Returns `Ok(None)` to append, `Ok(Some(offset))` for a duplicate, `Err(code)` to refuse.
fn check_sequence(entry: Option<&ProducerEntry>, b: &PendingBatch) -> Result<Option<i64>, i16> {
    let Some(entry) = entry else {
        return if b.base_sequence == 0 {
            Ok(None)
        } else {
            Err(OUT_OF_ORDER_SEQUENCE_NUMBER)
        };
    };
    if b.producer_epoch < entry.epoch {
        return Err(INVALID_PRODUCER_EPOCH);
    }
    if b.producer_epoch > entry.epoch {
        return if b.base_sequence == 0 {
            Ok(None)
        } else {
            Err(OUT_OF_ORDER_SEQUENCE_NUMBER)
        };
    }
    if let Some((_, _, offset)) = entry
        .recent
        .iter()
        .find(|(f, l, _)| *f == b.base_sequence && *l == b.last_sequence)
    {
        return Ok(Some(*offset));
    }
    if b.base_sequence == next_sequence(entry.last_sequence) {
        Ok(None)
    } else {
        Err(OUT_OF_ORDER_SEQUENCE_NUMBER)
    }
}

/// Assigns offsets to every group in order.
///
/// `heads` holds every partition that exists (a group for a missing one fails with
/// UNKNOWN_TOPIC_OR_PARTITION); `producers` holds the stored entries for the idempotent
/// producers involved. Groups are evaluated against a scratch copy, so a group either lands
/// whole or leaves no trace.
pub fn plan(
    groups: &[AppendGroup],
    heads: HashMap<PartitionKey, PartitionHead>,
    producers: HashMap<(i64, i32, i64), ProducerEntry>,
) -> Plan {
    plan_checked(groups, heads, producers, &[])
}

/// [`plan`], with some groups refused up front (`refused[i]`, e.g. by
/// [`txn_refusals`]); a shorter slice refuses nothing past its end.
pub fn plan_checked(
    groups: &[AppendGroup],
    mut heads: HashMap<PartitionKey, PartitionHead>,
    mut producers: HashMap<(i64, i32, i64), ProducerEntry>,
    refused: &[Option<i16>],
) -> Plan {
    let mut out = Plan::default();
    for (group_index, group) in groups.iter().enumerate() {
        if let Some(Some(code)) = refused.get(group_index) {
            out.outcomes.push(GroupOutcome::Failed(*code));
            continue;
        }
        let key = (group.topic_id, group.partition);
        let Some(head) = heads.get(&key).copied() else {
            out.outcomes
                .push(GroupOutcome::Failed(UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        let mut next = head.next_offset;
        let mut rows = Vec::with_capacity(group.batches.len());
        let mut touched: Vec<((i64, i32, i64), ProducerEntry)> = Vec::new();
        let mut outcome = None;
        let mut duplicate_of = None;
        for b in &group.batches {
            if b.producer_id >= 0 && b.base_sequence >= 0 {
                let pkey = (group.topic_id, group.partition, b.producer_id);
                let current = touched
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == pkey)
                    .map(|(_, e)| e)
                    .or_else(|| producers.get(&pkey));
                match check_sequence(current, b) {
                    Err(code) => {
                        outcome = Some(GroupOutcome::Failed(code));
                        break;
                    }
                    Ok(Some(offset)) => {
                        duplicate_of.get_or_insert(offset);
                        continue;
                    }
                    Ok(None) => {
                        let mut entry = match current {
                            Some(e) if e.epoch == b.producer_epoch => e.clone(),
                            _ => ProducerEntry {
                                epoch: b.producer_epoch,
                                last_sequence: -1,
                                recent: VecDeque::new(),
                            },
                        };
                        entry.last_sequence = b.last_sequence;
                        entry
                            .recent
                            .push_back((b.base_sequence, b.last_sequence, next));
                        while entry.recent.len() > RECENT_BATCHES {
                            entry.recent.pop_front();
                        }
                        touched.push((pkey, entry));
                    }
                }
            }
            rows.push(PlannedBatch {
                group: group_index,
                topic_id: group.topic_id,
                partition: group.partition,
                base_offset: next,
                batch: b.clone(),
            });
            next += b.offset_count;
        }
        if let Some(failed) = outcome {
            out.outcomes.push(failed);
            continue;
        }
        let log_start_offset = head.log_start_offset;
        if rows.is_empty() {
            // Every batch was a retry of a stored one.
            out.outcomes.push(GroupOutcome::Duplicate {
                base_offset: duplicate_of.unwrap_or(head.next_offset),
                log_start_offset,
            });
            continue;
        }
        out.outcomes.push(GroupOutcome::Appended {
            base_offset: duplicate_of.unwrap_or(rows[0].base_offset),
            log_start_offset,
        });
        let new_head = PartitionHead {
            next_offset: next,
            log_start_offset,
        };
        heads.insert(key, new_head);
        out.heads.insert(key, new_head);
        for (pkey, entry) in touched {
            producers.insert(pkey, entry.clone());
            out.producers.insert(pkey, entry);
        }
        out.rows.extend(rows);
    }
    out
}

/// The first transactional batch of each group: (producer id, epoch), if any.
pub fn txn_producer(group: &AppendGroup) -> Option<(i64, i16)> {
    group
        .batches
        .iter()
        .find(|b| b.transactional)
        .map(|b| (b.producer_id, b.producer_epoch))
}

/// Which groups with transactional batches a commit refuses: the producer's epoch must be
/// its transaction's (INVALID_PRODUCER_EPOCH: a newer instance fenced it) and the
/// partition must be in its open transaction (INVALID_TXN_STATE).
/// `txns` holds (epoch, whether Ongoing) per producer id; `enrolled` the
/// (producer id, topic id, partition) of open transactions.
pub fn txn_refusals(
    groups: &[AppendGroup],
    txns: &HashMap<i64, (i16, bool)>,
    enrolled: &std::collections::HashSet<(i64, i64, i32)>,
) -> Vec<Option<i16>> {
    groups
        .iter()
        .map(|g| {
            let (pid, epoch) = txn_producer(g)?;
            match txns.get(&pid) {
                None => Some(INVALID_PRODUCER_EPOCH),
                Some((e, _)) if *e != epoch => Some(INVALID_PRODUCER_EPOCH),
                Some((_, ongoing)) if !ongoing => Some(INVALID_TXN_STATE),
                Some(_) if !enrolled.contains(&(pid, g.topic_id, g.partition)) => {
                    Some(INVALID_TXN_STATE)
                }
                Some(_) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(n: i64) -> PendingBatch {
        PendingBatch {
            byte_offset: 0,
            byte_len: 100,
            offset_count: n,
            record_count: n,
            max_timestamp: 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_sequence: -1,
            transactional: false,
        }
    }

    fn idem(pid: i64, epoch: i16, first: i32, n: i32) -> PendingBatch {
        PendingBatch {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first,
            last_sequence: first + n - 1,
            ..plain(n as i64)
        }
    }

    fn group(partition: i32, batches: Vec<PendingBatch>) -> AppendGroup {
        AppendGroup {
            topic_id: 1,
            partition,
            batches,
        }
    }

    fn heads(n: i32) -> HashMap<PartitionKey, PartitionHead> {
        (0..n)
            .map(|p| {
                (
                    (1, p),
                    PartitionHead {
                        next_offset: 0,
                        log_start_offset: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn assigns_contiguous_offsets_per_partition() {
        let groups = vec![
            group(0, vec![plain(3), plain(2)]),
            group(1, vec![plain(4)]),
            group(0, vec![plain(1)]),
        ];
        let p = plan(&groups, heads(2), HashMap::new());
        assert_eq!(
            p.outcomes,
            vec![
                GroupOutcome::Appended {
                    base_offset: 0,
                    log_start_offset: 0
                },
                GroupOutcome::Appended {
                    base_offset: 0,
                    log_start_offset: 0
                },
                GroupOutcome::Appended {
                    base_offset: 5,
                    log_start_offset: 0
                },
            ]
        );
        let offsets: Vec<_> = p
            .rows
            .iter()
            .map(|r| (r.partition, r.base_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 0), (0, 3), (1, 0), (0, 5)]);
        assert_eq!(p.heads[&(1, 0)].next_offset, 6);
        assert_eq!(p.heads[&(1, 1)].next_offset, 4);
    }

    #[test]
    fn unknown_partition_fails_alone() {
        let groups = vec![group(5, vec![plain(1)]), group(0, vec![plain(1)])];
        let p = plan(&groups, heads(1), HashMap::new());
        assert_eq!(
            p.outcomes[0],
            GroupOutcome::Failed(UNKNOWN_TOPIC_OR_PARTITION)
        );
        assert!(matches!(p.outcomes[1], GroupOutcome::Appended { .. }));
        assert_eq!(p.rows.len(), 1);
    }

    #[test]
    fn idempotent_retries_are_answered_with_original_offsets() {
        let groups = vec![
            group(0, vec![idem(7, 0, 0, 3)]),
            group(0, vec![idem(7, 0, 3, 2)]),
            // retry of the first batch, in the same flush
            group(0, vec![idem(7, 0, 0, 3)]),
        ];
        let p = plan(&groups, heads(1), HashMap::new());
        assert_eq!(
            p.outcomes[2],
            GroupOutcome::Duplicate {
                base_offset: 0,
                log_start_offset: 0
            }
        );
        assert_eq!(p.rows.len(), 2);
        let entry = &p.producers[&(1, 0, 7)];
        assert_eq!(entry.last_sequence, 4);

        // a later flush sees the stored state
        let stored = p.producers.clone();
        let mut h = heads(1);
        h.insert((1, 0), p.heads[&(1, 0)]);
        let again = plan(
            &[group(0, vec![idem(7, 0, 3, 2)])],
            h.clone(),
            stored.clone(),
        );
        assert_eq!(
            again.outcomes[0],
            GroupOutcome::Duplicate {
                base_offset: 3,
                log_start_offset: 0
            }
        );
        assert!(again.rows.is_empty());
        let next = plan(&[group(0, vec![idem(7, 0, 5, 1)])], h, stored);
        assert_eq!(
            next.outcomes[0],
            GroupOutcome::Appended {
                base_offset: 5,
                log_start_offset: 0
            }
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused_without_side_effects() {
        let first = plan(
            &[group(0, vec![idem(7, 1, 0, 2)])],
            heads(1),
            HashMap::new(),
        );
        let stored = first.producers.clone();
        let mut h = heads(1);
        h.insert((1, 0), first.heads[&(1, 0)]);

        let gap = plan(
            &[group(0, vec![idem(7, 1, 5, 1)])],
            h.clone(),
            stored.clone(),
        );
        assert_eq!(
            gap.outcomes[0],
            GroupOutcome::Failed(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert!(gap.rows.is_empty() && gap.heads.is_empty() && gap.producers.is_empty());

        let stale = plan(
            &[group(0, vec![idem(7, 0, 2, 1)])],
            h.clone(),
            stored.clone(),
        );
        assert_eq!(
            stale.outcomes[0],
            GroupOutcome::Failed(INVALID_PRODUCER_EPOCH)
        );

        let bumped = plan(
            &[group(0, vec![idem(7, 2, 0, 1)])],
            h.clone(),
            stored.clone(),
        );
        assert!(matches!(bumped.outcomes[0], GroupOutcome::Appended { .. }));
        assert_eq!(bumped.producers[&(1, 0, 7)].epoch, 2);

        let fresh_nonzero = plan(&[group(0, vec![idem(9, 0, 4, 1)])], h, stored);
        assert_eq!(
            fresh_nonzero.outcomes[0],
            GroupOutcome::Failed(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn recent_list_round_trips_and_is_bounded() {
        let mut groups = Vec::new();
        for i in 0..8 {
            groups.push(group(0, vec![idem(3, 0, i, 1)]));
        }
        let p = plan(&groups, heads(1), HashMap::new());
        let entry = &p.producers[&(1, 0, 3)];
        assert_eq!(entry.recent.len(), RECENT_BATCHES);
        let decoded = ProducerEntry::decode_recent(&entry.encode_recent());
        assert_eq!(decoded, entry.recent);
    }

    #[test]
    fn transactional_batches_need_their_open_transaction() {
        let txn = |pid, epoch| PendingBatch {
            transactional: true,
            ..idem(pid, epoch, 0, 1)
        };
        let groups = vec![
            group(0, vec![txn(5, 1)]), // enrolled, right epoch
            group(1, vec![txn(5, 1)]), // not enrolled
            group(0, vec![txn(5, 0)]), // a fenced instance
            group(0, vec![txn(6, 0)]), // transaction ended
            group(0, vec![txn(9, 0)]), // unknown producer
            group(0, vec![plain(1)]),  // not transactional
        ];
        let txns = HashMap::from([(5, (1, true)), (6, (0, false))]);
        let enrolled = std::collections::HashSet::from([(5, 1, 0), (6, 1, 0)]);
        let refused = txn_refusals(&groups, &txns, &enrolled);
        assert_eq!(
            refused,
            vec![
                None,
                Some(INVALID_TXN_STATE),
                Some(INVALID_PRODUCER_EPOCH),
                Some(INVALID_TXN_STATE),
                Some(INVALID_PRODUCER_EPOCH),
                None
            ]
        );
        let p = plan_checked(&groups, heads(2), HashMap::new(), &refused);
        assert!(matches!(
            p.outcomes[0],
            GroupOutcome::Appended { base_offset: 0, .. }
        ));
        assert_eq!(p.outcomes[1], GroupOutcome::Failed(INVALID_TXN_STATE));
        assert!(matches!(
            p.outcomes[5],
            GroupOutcome::Appended { base_offset: 1, .. }
        ));
        assert_eq!(p.rows.len(), 2);
    }
}
