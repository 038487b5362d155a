//! Transaction state (KIP-98, migration 0016): the coordinator's view of each
//! transactional id (on its `producer_ids` row), the partitions and offsets of open
//! transactions, and the aborted ranges read_committed fetches list.
//!
//! # Consistency
//! * Every change to a transaction locks its `producer_ids` row first (SQLite: the write
//!   lock), so the requests of one transactional id serialise.
//! * Ending a transaction ([`Metadata::end_txn`]) is one SQL transaction: the markers'
//!   batch rows get their offsets, aborted ranges are recorded, the partitions leave the
//!   transaction (the last stable offset moves), pending offsets become committed offsets,
//!   and the state changes, together or not at all. It locks the partition rows before
//!   reading the transaction's partitions, in the same order as a produce commit, so the
//!   two never deadlock; a produce commit reads the transaction after locking its
//!   partitions, so a batch lands wholly before a marker or is refused.

use super::sql::{Db, Metadata, StoreError};
use crate::codes;

/// Kafka's transaction states that outlive a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "Ongoing" => TxnState::Ongoing,
            "CompleteCommit" => TxnState::CompleteCommit,
            "CompleteAbort" => TxnState::CompleteAbort,
            _ => TxnState::Empty,
        }
    }
}

/// One transactional id as its coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInfo {
    pub cluster: String,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i64,
    /// When the current (or last) transaction became Ongoing.
    pub started_at_ms: i64,
}

/// A partition of an open transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPartition {
    pub topic_id: i64,
    pub topic_uuid: String,
    pub topic_name: String,
    pub partition: i32,
    /// The transaction's first offset in the partition, once a batch landed.
    pub first_offset: Option<i64>,
}

/// The answer to InitProducerId for a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitTxn {
    /// The producer's id and its new epoch.
    Ready(i64, i16),
    /// A transaction is open: it must be aborted first (the caller does, then asks again).
    Ongoing(TxnInfo),
    Refused(i16),
}

/// The marker object of an ending transaction: one control batch per partition.
pub struct MarkerFile<'a> {
    pub object_key: &'a str,
    pub size_bytes: u64,
    pub agent_id: &'a str,
    /// (topic id, partition, byte offset, byte length), in (topic id, partition) order:
    /// exactly the transaction's partitions.
    pub batches: &'a [(i64, i32, u64, u32)],
}

/// Ends the transaction of a transactional id.
pub struct EndTxn<'a> {
    pub cluster: &'a str,
    pub transactional_id: &'a str,
    pub producer_id: i64,
    /// The epoch the transaction must have (the client's, or the one the coordinator saw).
    pub producer_epoch: i16,
    pub commit: bool,
    /// The epoch the producer has afterwards (above `producer_epoch` fences it).
    pub new_epoch: i16,
    /// None when the transaction has no partitions.
    pub markers: Option<MarkerFile<'a>>,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Ended now; the markers' offsets, in the marker file's order.
    Ended(Vec<i64>),
    /// A retry: the transaction had already ended this way.
    AlreadyEnded,
    /// The transaction's partitions or epoch changed since the markers were built.
    Changed,
    Refused(i16),
}

/// A pending transactional offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Runs `$body` in one write transaction bound to `$tx`, with `$lock` the row-lock suffix;
/// it commits when the body completes (an early `return` or `?` rolls back).
macro_rules! txn_write {
    ($self:expr, |$tx:ident, $lock:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite(pool) => {
                let mut $tx = begin_write!(sqlite pool).await?;
                #[allow(unused)]
                let $lock = "";
                let out = $body;
                $tx.commit().await?;
                out
            }
            Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                #[allow(unused)]
                let $lock = " FOR UPDATE";
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

type TxnRow = (i64, i64, String);

/// Checks a request's producer id and epoch against the stored transaction.
fn check(row: Option<&TxnRow>, producer_id: i64, epoch: i16) -> Result<(), i16> {
    match row {
        None => Err(codes::INVALID_PRODUCER_ID_MAPPING),
        Some((id, _, _)) if *id != producer_id => Err(codes::INVALID_PRODUCER_ID_MAPPING),
        Some((_, e, _)) if *e != epoch as i64 => Err(codes::PRODUCER_FENCED),
        Some(_) => Ok(()),
    }
}

const SELECT_TXN: &str =
    "SELECT id, epoch, txn_state FROM producer_ids WHERE cluster = $1 AND transactional_id = $2";

impl Metadata {
    /// The coordinator's view of one transactional id.
    pub async fn txn(
        &self,
        cluster: &str,
        transactional_id: &str,
    ) -> Result<Option<TxnInfo>, StoreError> {
        let row: Option<(i64, i64, String, i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT id, epoch, txn_state, txn_timeout_ms, txn_started_at_ms FROM producer_ids \
                 WHERE cluster = $1 AND transactional_id = $2",
            )
            .bind(cluster)
            .bind(transactional_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(id, epoch, state, timeout_ms, started_at_ms)| TxnInfo {
                cluster: cluster.to_string(),
                transactional_id: transactional_id.to_string(),
                producer_id: id,
                producer_epoch: epoch as i16,
                state: TxnState::parse(&state),
                timeout_ms,
                started_at_ms,
            }),
        )
    }

    /// Every transactional id of a cluster (or of every cluster), for ListTransactions
    /// and DescribeTransactions.
    pub async fn txns(&self, cluster: &str) -> Result<Vec<TxnInfo>, StoreError> {
        let rows: Vec<(String, i64, i64, String, i64, i64)> =
            with_pool!(self, |pool, _lock, _db| {
                sqlx::query_as(
                "SELECT transactional_id, id, epoch, txn_state, txn_timeout_ms, txn_started_at_ms \
                 FROM producer_ids WHERE cluster = $1 AND transactional_id IS NOT NULL \
                 ORDER BY transactional_id",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await?
            });
        Ok(rows
            .into_iter()
            .map(
                |(tid, id, epoch, state, timeout_ms, started_at_ms)| TxnInfo {
                    cluster: cluster.to_string(),
                    transactional_id: tid,
                    producer_id: id,
                    producer_epoch: epoch as i16,
                    state: TxnState::parse(&state),
                    timeout_ms,
                    started_at_ms,
                },
            )
            .collect())
    }

    /// InitProducerId for a transactional id: a new producer id, or the stored one with its
    /// epoch bumped (fencing every older instance), unless a transaction is open.
    /// `current` is the id and epoch a producer asks to keep (KIP-360).
    pub async fn init_txn_producer(
        &self,
        cluster: &str,
        transactional_id: &str,
        timeout_ms: i64,
        current: Option<(i64, i16)>,
        now: i64,
    ) -> Result<InitTxn, StoreError> {
        Ok(txn_write!(self, |tx, lock| {
            let row: Option<TxnRow> = sqlx::query_as(&format!("{SELECT_TXN}{lock}"))
                .bind(cluster)
                .bind(transactional_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let (Some(row), Some((pid, epoch))) = (&row, current) {
                if let Err(code) = check(Some(row), pid, epoch) {
                    return Ok(InitTxn::Refused(code));
                }
            }
            match row {
                Some((id, epoch, state)) if TxnState::parse(&state) == TxnState::Ongoing => {
                    InitTxn::Ongoing(TxnInfo {
                        cluster: cluster.to_string(),
                        transactional_id: transactional_id.to_string(),
                        producer_id: id,
                        producer_epoch: epoch as i16,
                        state: TxnState::Ongoing,
                        timeout_ms,
                        started_at_ms: 0,
                    })
                }
                Some((id, epoch, _)) if epoch < i16::MAX as i64 - 1 => {
                    sqlx::query(
                        "UPDATE producer_ids SET epoch = $1, txn_state = 'Empty', txn_timeout_ms = $2, \
                         updated_at_ms = $3 WHERE id = $4",
                    )
                    .bind(epoch + 1)
                    .bind(timeout_ms)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    InitTxn::Ready(id, (epoch + 1) as i16)
                }
                other => {
                    if other.is_some() {
                        // The epoch is exhausted: retire the old id and hand out a new one.
                        sqlx::query(
                            "UPDATE producer_ids SET transactional_id = NULL \
                             WHERE cluster = $1 AND transactional_id = $2",
                        )
                        .bind(cluster)
                        .bind(transactional_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO producer_ids (cluster, transactional_id, epoch, updated_at_ms, \
                         txn_state, txn_timeout_ms) VALUES ($1, $2, 0, $3, 'Empty', $4) RETURNING id",
                    )
                    .bind(cluster)
                    .bind(transactional_id)
                    .bind(now)
                    .bind(timeout_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    InitTxn::Ready(id, 0)
                }
            }
        }))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction becomes Ongoing (its timeout
    /// starts) and the partitions join it.
    pub async fn add_txn_partitions(
        &self,
        cluster: &str,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(i64, i32)],
        now: i64,
    ) -> Result<Result<(), i16>, StoreError> {
        Ok(txn_write!(self, |tx, lock| {
            let row: Option<TxnRow> = sqlx::query_as(&format!("{SELECT_TXN}{lock}"))
                .bind(cluster)
                .bind(transactional_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Err(code) = check(row.as_ref(), producer_id, epoch) {
                return Ok(Err(code));
            }
            let state = row
                .map(|r| TxnState::parse(&r.2))
                .unwrap_or(TxnState::Empty);
            if state != TxnState::Ongoing {
                sqlx::query(
                    "UPDATE producer_ids SET txn_state = 'Ongoing', txn_started_at_ms = $1, \
                     updated_at_ms = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(producer_id)
                .execute(&mut *tx)
                .await?;
            }
            for &(topic_id, partition) in partitions {
                sqlx::query(
                    "INSERT INTO txn_partitions (producer_id, topic_id, partition) VALUES ($1, $2, $3) \
                     ON CONFLICT (producer_id, topic_id, partition) DO NOTHING",
                )
                .bind(producer_id)
                .bind(topic_id)
                .bind(partition as i64)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }))
    }

    /// The partitions of a producer's open transaction, in (topic id, partition) order.
    pub async fn txn_partitions(&self, producer_id: i64) -> Result<Vec<TxnPartition>, StoreError> {
        let rows: Vec<(i64, i64, Option<i64>, String, String)> =
            with_pool!(self, |pool, _lock, _db| {
                sqlx::query_as(
                    "SELECT p.topic_id, p.partition, p.first_offset, t.topic_uuid, t.name \
                 FROM txn_partitions p JOIN topics t ON t.id = p.topic_id \
                 WHERE p.producer_id = $1 ORDER BY p.topic_id, p.partition",
                )
                .bind(producer_id)
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(
                |(topic_id, partition, first_offset, topic_uuid, topic_name)| TxnPartition {
                    topic_id,
                    topic_uuid,
                    topic_name,
                    partition: partition as i32,
                    first_offset,
                },
            )
            .collect())
    }

    /// TxnOffsetCommit: offsets held by the open transaction until it ends.
    pub async fn txn_offset_commit(
        &self,
        cluster: &str,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[TxnOffset],
    ) -> Result<Result<(), i16>, StoreError> {
        Ok(txn_write!(self, |tx, lock| {
            let row: Option<TxnRow> = sqlx::query_as(&format!("{SELECT_TXN}{lock}"))
                .bind(cluster)
                .bind(transactional_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Err(code) = check(row.as_ref(), producer_id, epoch) {
                return Ok(Err(code));
            }
            if row.map(|r| TxnState::parse(&r.2)) != Some(TxnState::Ongoing) {
                return Ok(Err(codes::INVALID_TXN_STATE));
            }
            for o in offsets {
                sqlx::query(
                    "INSERT INTO txn_offsets (producer_id, cluster, group_id, topic, partition, \
                     committed_offset, leader_epoch, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (producer_id, group_id, topic, partition) DO UPDATE SET \
                     committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch, \
                     metadata = excluded.metadata",
                )
                .bind(producer_id)
                .bind(cluster)
                .bind(group)
                .bind(&o.topic)
                .bind(o.partition as i64)
                .bind(o.offset)
                .bind(o.leader_epoch as i64)
                .bind(&o.metadata)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }))
    }

    /// The partitions of a group with offsets an open transaction has not committed yet
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them).
    pub async fn pending_txn_offsets(
        &self,
        cluster: &str,
        group: &str,
    ) -> Result<Vec<(String, i32)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT DISTINCT topic, partition FROM txn_offsets WHERE cluster = $1 AND group_id = $2",
            )
            .bind(cluster)
            .bind(group)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(t, p)| (t, p as i32)).collect())
    }

    /// Ends a transaction (EndTxn, an abort on timeout or on a new producer instance): see
    /// the module's consistency notes.
    pub async fn end_txn(&self, end: &EndTxn<'_>) -> Result<EndOutcome, StoreError> {
        let expected: Vec<(i64, i32)> = end
            .markers
            .as_ref()
            .map(|m| m.batches.iter().map(|b| (b.0, b.1)).collect())
            .unwrap_or_default();
        macro_rules! end_body {
            ($tx:ident, $lock:ident) => {{
                let row: Option<TxnRow> = sqlx::query_as(&format!("{SELECT_TXN}{}", $lock))
                    .bind(end.cluster)
                    .bind(end.transactional_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if let Err(code) = check(row.as_ref(), end.producer_id, end.producer_epoch) {
                    return Ok(EndOutcome::Refused(code));
                }
                match row.map(|r| TxnState::parse(&r.2)).unwrap_or(TxnState::Empty) {
                    TxnState::Ongoing => {}
                    TxnState::CompleteCommit if end.commit => return Ok(EndOutcome::AlreadyEnded),
                    TxnState::CompleteAbort if !end.commit => return Ok(EndOutcome::AlreadyEnded),
                    _ => return Ok(EndOutcome::Refused(codes::INVALID_TXN_STATE)),
                }
                // The partition rows first (the produce commit's order), then the
                // transaction's partitions as they stand under those locks.
                let mut heads = Vec::with_capacity(expected.len());
                for &(topic_id, partition) in &expected {
                    let head: Option<(i64,)> = sqlx::query_as(&format!(
                        "SELECT next_offset FROM partitions WHERE topic_id = $1 AND partition = $2{}",
                        $lock
                    ))
                    .bind(topic_id)
                    .bind(partition as i64)
                    .fetch_optional(&mut *$tx)
                    .await?;
                    heads.push(head.map(|h| h.0));
                }
                let current: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT topic_id, partition, first_offset FROM txn_partitions \
                     WHERE producer_id = $1 ORDER BY topic_id, partition",
                )
                .bind(end.producer_id)
                .fetch_all(&mut *$tx)
                .await?;
                let same = current.len() == expected.len()
                    && current
                        .iter()
                        .zip(&expected)
                        .all(|(c, e)| c.0 == e.0 && c.1 as i32 == e.1)
                    && heads.iter().all(Option::is_some);
                if !same {
                    return Ok(EndOutcome::Changed);
                }
                let mut offsets = Vec::with_capacity(expected.len());
                if let Some(m) = &end.markers {
                    let (file_id,): (i64,) = sqlx::query_as(
                        "INSERT INTO segment_files (object_key, size_bytes, agent_id, created_at_ms) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(m.object_key)
                    .bind(m.size_bytes as i64)
                    .bind(m.agent_id)
                    .bind(end.now)
                    .fetch_one(&mut *$tx)
                    .await?;
                    let minute = crate::lag::index::minute_of(end.now);
                    for ((&(topic_id, partition, byte_offset, byte_len), head), c) in
                        m.batches.iter().zip(&heads).zip(&current)
                    {
                        let offset = head.unwrap_or_default();
                        offsets.push(offset);
                        sqlx::query(
                            "UPDATE partitions SET next_offset = $1 WHERE topic_id = $2 AND partition = $3",
                        )
                        .bind(offset + 1)
                        .bind(topic_id)
                        .bind(partition as i64)
                        .execute(&mut *$tx)
                        .await?;
                        sqlx::query(
                            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, file_id, \
                             byte_offset, byte_len, record_count, max_timestamp, producer_id, \
                             transactional, committed_at_ms, control) \
                             VALUES ($1, $2, $3, $3, $4, $5, $6, 1, $7, $8, 1, $7, 1)",
                        )
                        .bind(topic_id)
                        .bind(partition as i64)
                        .bind(offset)
                        .bind(file_id)
                        .bind(byte_offset as i64)
                        .bind(byte_len as i64)
                        .bind(end.now)
                        .bind(end.producer_id)
                        .execute(&mut *$tx)
                        .await?;
                        sqlx::query(
                            "INSERT INTO timestamp_index (topic_id, partition, minute_start, base_offset, \
                             offset_count, minute_count) VALUES ($1, $2, $3, $4, 1, 1) \
                             ON CONFLICT (topic_id, partition, minute_start) DO UPDATE SET \
                             offset_count = timestamp_index.offset_count + 1",
                        )
                        .bind(topic_id)
                        .bind(partition as i64)
                        .bind(minute)
                        .bind(offset)
                        .execute(&mut *$tx)
                        .await?;
                        if let (false, Some(first)) = (end.commit, c.2) {
                            sqlx::query(
                                "INSERT INTO aborted_txns (topic_id, partition, producer_id, \
                                 first_offset, last_offset) VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(topic_id)
                            .bind(partition as i64)
                            .bind(end.producer_id)
                            .bind(first)
                            .bind(offset)
                            .execute(&mut *$tx)
                            .await?;
                        }
                    }
                }
                sqlx::query("DELETE FROM txn_partitions WHERE producer_id = $1")
                    .bind(end.producer_id)
                    .execute(&mut *$tx)
                    .await?;
                if end.commit {
                    // The offsets topic gets the records of the offsets this commit makes.
                    let pending: Vec<(String, String, i64, i64, i64, Option<String>)> =
                        sqlx::query_as(
                            "SELECT group_id, topic, partition, committed_offset, leader_epoch, metadata \
                             FROM txn_offsets WHERE producer_id = $1 ORDER BY group_id",
                        )
                        .bind(end.producer_id)
                        .fetch_all(&mut *$tx)
                        .await?;
                    let mut groups: Vec<(String, Vec<(String, i32, Option<(i64, i32, Option<String>)>)>)> =
                        Vec::new();
                    for (group, topic, partition, offset, epoch, metadata) in pending {
                        let entry = (topic, partition as i32, Some((offset, epoch as i32, metadata)));
                        match groups.last_mut() {
                            Some((g, list)) if *g == group => list.push(entry),
                            _ => groups.push((group, vec![entry])),
                        }
                    }
                    for (group, list) in groups {
                        let records = crate::offsets_topic::offset_records(&group, list, end.now);
                        append_offsets_topic!($tx, $lock, end.cluster, group.as_str(), records, end.now);
                    }
                    sqlx::query(
                        "INSERT INTO group_offsets (cluster, group_id, topic, partition, committed_offset, \
                         leader_epoch, metadata, commit_time_ms) \
                         SELECT cluster, group_id, topic, partition, committed_offset, leader_epoch, \
                                metadata, $2 FROM txn_offsets WHERE producer_id = $1 \
                         ON CONFLICT (cluster, group_id, topic, partition) DO UPDATE SET \
                         committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch, \
                         metadata = excluded.metadata, commit_time_ms = excluded.commit_time_ms",
                    )
                    .bind(end.producer_id)
                    .bind(end.now)
                    .execute(&mut *$tx)
                    .await?;
                }
                sqlx::query("DELETE FROM txn_offsets WHERE producer_id = $1")
                    .bind(end.producer_id)
                    .execute(&mut *$tx)
                    .await?;
                let state = if end.commit {
                    TxnState::CompleteCommit
                } else {
                    TxnState::CompleteAbort
                };
                sqlx::query(
                    "UPDATE producer_ids SET txn_state = $1, epoch = $2, updated_at_ms = $3 WHERE id = $4",
                )
                .bind(state.as_str())
                .bind(end.new_epoch as i64)
                .bind(end.now)
                .bind(end.producer_id)
                .execute(&mut *$tx)
                .await?;
                EndOutcome::Ended(offsets)
            }};
        }
        let outcome = match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = begin_write!(sqlite pool).await?;
                let lock = "";
                let out = end_body!(tx, lock);
                tx.commit().await?;
                out
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let lock = " FOR UPDATE";
                let out = end_body!(tx, lock);
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::COMMIT_CHANNEL)
                    .bind(end.markers.as_ref().map(|m| m.agent_id).unwrap_or(""))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                out
            }
        };
        Ok(outcome)
    }

    /// Forgets aborted transactions whose records retention (or DeleteRecords) removed:
    /// no fetch can reach them any more. Returns how many went.
    pub async fn prune_aborted_txns(&self) -> Result<u64, StoreError> {
        Ok(with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "DELETE FROM aborted_txns WHERE last_offset < (SELECT p.log_start_offset \
                 FROM partitions p WHERE p.topic_id = aborted_txns.topic_id \
                 AND p.partition = aborted_txns.partition)",
            )
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Open transactions past their timeout, at most `limit`.
    pub async fn timed_out_txns(&self, now: i64, limit: i64) -> Result<Vec<TxnInfo>, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64, i64)> = with_pool!(
            self,
            |pool, _lock, _db| {
                sqlx::query_as(
                "SELECT cluster, transactional_id, id, epoch, txn_timeout_ms, txn_started_at_ms \
                 FROM producer_ids WHERE txn_state = 'Ongoing' AND txn_started_at_ms + txn_timeout_ms < $1 \
                 ORDER BY txn_started_at_ms LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
            }
        );
        Ok(rows
            .into_iter()
            .map(
                |(cluster, tid, id, epoch, timeout_ms, started_at_ms)| TxnInfo {
                    cluster,
                    transactional_id: tid,
                    producer_id: id,
                    producer_epoch: epoch as i16,
                    state: TxnState::Ongoing,
                    timeout_ms,
                    started_at_ms,
                },
            )
            .collect())
    }

    /// Aborted transactions of a partition that may hold records in `[from, to]`:
    /// (producer id, first offset), by first offset.
    pub async fn aborted_txns(
        &self,
        topic_id: i64,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT producer_id, first_offset FROM aborted_txns \
                 WHERE topic_id = $1 AND partition = $2 AND last_offset >= $3 AND first_offset <= $4 \
                 ORDER BY first_offset LIMIT 10000",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

impl Metadata {
    /// The producers that wrote to a partition (idempotent or transactional), for
    /// DescribeProducers: (producer id, epoch, last sequence, last write time, the open
    /// transaction's first offset or -1).
    pub async fn partition_producers(
        &self,
        topic_id: i64,
        partition: i32,
    ) -> Result<Vec<(i64, i16, i32, i64, i64)>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64, Option<i64>)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT s.producer_id, s.epoch, s.last_sequence, s.updated_at_ms, \
                        (SELECT t.first_offset FROM txn_partitions t WHERE t.producer_id = s.producer_id \
                         AND t.topic_id = s.topic_id AND t.partition = s.partition) \
                 FROM producer_state s WHERE s.topic_id = $1 AND s.partition = $2 \
                 ORDER BY s.producer_id LIMIT 10000",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(pid, epoch, seq, at, first)| {
                (pid, epoch as i16, seq as i32, at, first.unwrap_or(-1))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_producer_and_epoch() {
        let row = (7, 3, "Ongoing".to_string());
        assert_eq!(check(None, 7, 3), Err(codes::INVALID_PRODUCER_ID_MAPPING));
        assert_eq!(
            check(Some(&row), 8, 3),
            Err(codes::INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(check(Some(&row), 7, 2), Err(codes::PRODUCER_FENCED));
        assert_eq!(check(Some(&row), 7, 4), Err(codes::PRODUCER_FENCED));
        assert_eq!(check(Some(&row), 7, 3), Ok(()));
        assert_eq!(TxnState::parse("CompleteAbort"), TxnState::CompleteAbort);
        assert_eq!(
            TxnState::parse(TxnState::Ongoing.as_str()),
            TxnState::Ongoing
        );
    }
}
