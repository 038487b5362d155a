//! Key compaction (`cleanup.policy=compact`): what a pass reads of a partition (where its
//! cleanable section ends, how dirty it is, its batch rows and aborted transactions), and
//! the swap that replaces rewritten batch rows.
//!
//! # Consistency
//! [`Metadata::swap_key_compacted`] is one transaction: it locks the partition row first
//! (Postgres `FOR UPDATE`, the order of the produce commit; SQLite takes its write lock
//! up front), checks that every row it replaces still has the base offset, file and byte
//! offset the pass read, then deletes them, inserts the rewritten rows pointing at the
//! new object, advances `cleaned_offset` and drops the aborted-transaction rows whose
//! markers went. If any row changed (retention, segment compaction, a deleted topic),
//! nothing changes and the caller drops its object. Offsets of the records that stay
//! never change; a rewritten row only narrows to the offsets it still holds.

use std::collections::BTreeMap;

use super::compaction::CompactedFile;
use super::sql::{Db, Metadata, StoreError};

/// A topic whose `cleanup.policy` mentions `compact`, with the configs set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCompactionTopic {
    pub topic_id: i64,
    pub topic_uuid: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// What a pass needs to decide whether a partition is due, read without locks (the swap
/// checks again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCompactionState {
    pub log_start_offset: i64,
    pub next_offset: i64,
    pub last_stable_offset: i64,
    /// Batches below it were compacted before (Kafka's first dirty offset).
    pub cleaned_offset: i64,
    /// Oldest commit time of a cleaned batch still holding a tombstone or a marker.
    pub tombstones_at_ms: Option<i64>,
    /// Where the cleanable section ends: the first batch that is the partition's last,
    /// at or past the last stable offset, or committed after the lag cutoff.
    pub cleanable_end: i64,
    /// Bytes of the batches below `cleanable_end`, and of those at or past `cleaned_offset`.
    pub cleanable_bytes: i64,
    pub dirty_bytes: i64,
    /// Commit time of the oldest dirty batch of the section.
    pub oldest_dirty_ms: Option<i64>,
}

/// One batch row as key compaction reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCompactionRow {
    pub base_offset: i64,
    pub last_offset: i64,
    pub file_id: i64,
    pub object_key: String,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub transactional: bool,
    pub control: bool,
    pub committed_at_ms: i64,
}

/// A rewritten batch: where it lies in the new object and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrittenBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub transactional: bool,
    pub control: bool,
    pub committed_at_ms: i64,
}

/// A row the swap replaces or deletes, as the pass read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacedRow {
    pub base_offset: i64,
    pub file_id: i64,
    pub byte_offset: u64,
}

/// One swap of a key compaction pass.
#[derive(Debug, Clone, Copy)]
pub struct KeyCompactionSwap<'a> {
    /// The object holding `rewritten` (None when only rows are dropped or nothing changed).
    pub file: Option<CompactedFile<'a>>,
    /// Rows to check and delete.
    pub replaced: &'a [ReplacedRow],
    /// Rows to insert (in `file`).
    pub rewritten: &'a [RewrittenBatch],
    /// Offsets of the markers dropped: their aborted-transaction rows go too.
    pub dropped_markers: &'a [i64],
    /// The pass's last swap sets where the cleaned part ends and its oldest tombstone.
    pub cleaned: Option<(i64, Option<i64>)>,
}

type RowTuple = (
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// Rows per statement: 13 binds a row at most, under either backend's limit.
const CHUNK: usize = 500;

impl Metadata {
    /// Every topic (of every cluster) whose `cleanup.policy` includes `compact`.
    pub async fn key_compaction_topics(&self) -> Result<Vec<KeyCompactionTopic>, StoreError> {
        type Rows = (Vec<(i64, String, i64)>, Vec<(i64, String, String)>);
        let (topics, configs): Rows = with_pool!(self, |pool, _lock, _db| {
            let topics = sqlx::query_as(
                "SELECT t.id, t.topic_uuid, t.partition_count FROM topics t \
                 JOIN topic_configs c ON c.topic_id = t.id \
                 WHERE c.key = 'cleanup.policy' AND c.value LIKE '%compact%' ORDER BY t.id",
            )
            .fetch_all(pool)
            .await?;
            let configs = sqlx::query_as(
                "SELECT topic_id, key, value FROM topic_configs WHERE topic_id IN \
                 (SELECT topic_id FROM topic_configs \
                  WHERE key = 'cleanup.policy' AND value LIKE '%compact%')",
            )
            .fetch_all(pool)
            .await?;
            (topics, configs)
        });
        let mut by_topic: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
        for (id, k, v) in configs {
            by_topic.entry(id).or_default().insert(k, v);
        }
        Ok(topics
            .into_iter()
            .map(|(topic_id, topic_uuid, n)| KeyCompactionTopic {
                topic_id,
                topic_uuid,
                partitions: n as i32,
                configs: by_topic.remove(&topic_id).unwrap_or_default(),
            })
            .collect())
    }

    /// A partition's compaction state, counting batches committed after `lag_cutoff_ms`
    /// as too recent to clean. None when the partition does not exist or holds no batch.
    pub async fn key_compaction_state(
        &self,
        topic_id: i64,
        partition: i32,
        lag_cutoff_ms: i64,
    ) -> Result<Option<KeyCompactionState>, StoreError> {
        let Some(head) = self.partition_state(topic_id, partition).await? else {
            return Ok(None);
        };
        type Marks = Option<(i64, Option<i64>)>;
        type Ends = (Option<i64>, Option<i64>);
        let (marks, ends): (Marks, Ends) = with_pool!(self, |pool, _lock, _db| {
            let marks = sqlx::query_as(
                "SELECT cleaned_offset, tombstones_at_ms FROM partitions \
                 WHERE topic_id = $1 AND partition = $2",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .fetch_optional(pool)
            .await?;
            let ends = sqlx::query_as(
                "SELECT MAX(base_offset), \
                        MIN(CASE WHEN committed_at_ms > $3 THEN base_offset END) \
                 FROM batches WHERE topic_id = $1 AND partition = $2",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(lag_cutoff_ms)
            .fetch_one(pool)
            .await?;
            (marks, ends)
        });
        let (Some((cleaned_offset, tombstones_at_ms)), (Some(last_base), first_recent)) =
            (marks, ends)
        else {
            return Ok(None);
        };
        let cleanable_end = head
            .last_stable_offset
            .min(last_base)
            .min(first_recent.unwrap_or(i64::MAX));
        let (cleanable, dirty, oldest): (Option<i64>, Option<i64>, Option<i64>) = with_pool!(
            self,
            |pool, _lock, _db| {
                sqlx::query_as(
                    "SELECT CAST(SUM(byte_len) AS BIGINT), \
                            CAST(SUM(CASE WHEN base_offset >= $4 THEN byte_len ELSE 0 END) AS BIGINT), \
                            MIN(CASE WHEN base_offset >= $4 THEN committed_at_ms END) \
                     FROM batches WHERE topic_id = $1 AND partition = $2 AND base_offset < $3",
                )
                .bind(topic_id)
                .bind(partition as i64)
                .bind(cleanable_end)
                .bind(cleaned_offset)
                .fetch_one(pool)
                .await?
            }
        );
        Ok(Some(KeyCompactionState {
            log_start_offset: head.log_start_offset,
            next_offset: head.next_offset,
            last_stable_offset: head.last_stable_offset,
            cleaned_offset,
            tombstones_at_ms,
            cleanable_end,
            cleanable_bytes: cleanable.unwrap_or(0),
            dirty_bytes: dirty.unwrap_or(0),
            oldest_dirty_ms: oldest,
        }))
    }

    /// A partition's batch rows with base offset in `[from, before)`, in offset order, at
    /// most `limit`.
    pub async fn key_compaction_rows(
        &self,
        topic_id: i64,
        partition: i32,
        from: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<KeyCompactionRow>, StoreError> {
        let rows: Vec<RowTuple> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT b.base_offset, b.last_offset, b.file_id, f.object_key, b.byte_offset, \
                        b.byte_len, b.record_count, b.max_timestamp, b.producer_id, \
                        b.transactional, b.control, b.committed_at_ms \
                 FROM batches b JOIN segment_files f ON f.id = b.file_id \
                 WHERE b.topic_id = $1 AND b.partition = $2 AND b.base_offset >= $3 \
                   AND b.base_offset < $4 \
                 ORDER BY b.base_offset LIMIT $5",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(from)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| KeyCompactionRow {
                base_offset: r.0,
                last_offset: r.1,
                file_id: r.2,
                object_key: r.3,
                byte_offset: r.4.max(0) as u64,
                byte_len: r.5.max(0) as u64,
                record_count: r.6 as i32,
                max_timestamp: r.7,
                producer_id: r.8,
                transactional: r.9 != 0,
                control: r.10 != 0,
                committed_at_ms: r.11,
            })
            .collect())
    }

    /// The aborted transactions of a partition that start before `before`: (producer id,
    /// first offset, last offset = the abort marker), by first offset.
    pub async fn key_compaction_aborted(
        &self,
        topic_id: i64,
        partition: i32,
        before: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT producer_id, first_offset, last_offset FROM aborted_txns \
                 WHERE topic_id = $1 AND partition = $2 AND first_offset < $3 \
                 ORDER BY first_offset",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(before)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Applies one swap of a key compaction pass, all or nothing: Ok(false) when a row to
    /// replace changed or the partition is gone (nothing changed; the caller deletes its
    /// object).
    pub async fn swap_key_compacted(
        &self,
        topic_id: i64,
        partition: i32,
        swap: KeyCompactionSwap<'_>,
    ) -> Result<bool, StoreError> {
        macro_rules! swap_body {
            ($tx:ident, $db:ty, $lock:expr) => {{
                let locked: Option<(i64,)> = sqlx::query_as(&format!(
                    "SELECT cleaned_offset FROM partitions WHERE topic_id = $1 AND partition = $2{}",
                    $lock
                ))
                .bind(topic_id)
                .bind(partition as i64)
                .fetch_optional(&mut *$tx)
                .await?;
                if locked.is_none() {
                    $tx.rollback().await?;
                    return Ok(false);
                }
                let mut unchanged = 0i64;
                for chunk in swap.replaced.chunks(CHUNK) {
                    // VALUES columns are column1.. on both backends.
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM batches b, (");
                    qb.push_values(chunk, |mut row, r| {
                        row.push_bind(r.base_offset)
                            .push_bind(r.file_id)
                            .push_bind(r.byte_offset as i64);
                    });
                    qb.push(") AS v WHERE b.topic_id = ")
                        .push_bind(topic_id)
                        .push(" AND b.partition = ")
                        .push_bind(partition as i64)
                        .push(
                            " AND b.base_offset = v.column1 AND b.file_id = v.column2 \
                             AND b.byte_offset = v.column3",
                        );
                    let (n,): (i64,) = qb.build_query_as().fetch_one(&mut *$tx).await?;
                    unchanged += n;
                }
                if unchanged != swap.replaced.len() as i64 {
                    $tx.rollback().await?;
                    return Ok(false);
                }
                for chunk in swap.replaced.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM batches WHERE topic_id = ");
                    qb.push_bind(topic_id)
                        .push(" AND partition = ")
                        .push_bind(partition as i64)
                        .push(" AND base_offset IN (");
                    let mut sep = qb.separated(", ");
                    for r in chunk {
                        sep.push_bind(r.base_offset);
                    }
                    qb.push(")");
                    qb.build().execute(&mut *$tx).await?;
                }
                if let Some(file) = swap.file {
                    let (file_id,): (i64,) = sqlx::query_as(
                        "INSERT INTO segment_files (object_key, size_bytes, agent_id, created_at_ms) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(file.object_key)
                    .bind(file.size_bytes as i64)
                    .bind(file.agent_id)
                    .bind(file.created_at_ms)
                    .fetch_one(&mut *$tx)
                    .await?;
                    for chunk in swap.rewritten.chunks(CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, \
                             file_id, byte_offset, byte_len, record_count, max_timestamp, \
                             producer_id, transactional, committed_at_ms, control) ",
                        );
                        qb.push_values(chunk, |mut row, b| {
                            row.push_bind(topic_id)
                                .push_bind(partition as i64)
                                .push_bind(b.base_offset)
                                .push_bind(b.last_offset)
                                .push_bind(file_id)
                                .push_bind(b.byte_offset as i64)
                                .push_bind(b.byte_len as i64)
                                .push_bind(b.record_count as i64)
                                .push_bind(b.max_timestamp)
                                .push_bind(b.producer_id)
                                .push_bind(b.transactional as i64)
                                .push_bind(b.committed_at_ms)
                                .push_bind(b.control as i64);
                        });
                        qb.build().execute(&mut *$tx).await?;
                    }
                }
                for chunk in swap.dropped_markers.chunks(CHUNK) {
                    let mut qb =
                        sqlx::QueryBuilder::<$db>::new("DELETE FROM aborted_txns WHERE topic_id = ");
                    qb.push_bind(topic_id)
                        .push(" AND partition = ")
                        .push_bind(partition as i64)
                        .push(" AND last_offset IN (");
                    let mut sep = qb.separated(", ");
                    for offset in chunk {
                        sep.push_bind(*offset);
                    }
                    qb.push(")");
                    qb.build().execute(&mut *$tx).await?;
                }
                if let Some((cleaned, tombstones_at)) = swap.cleaned {
                    sqlx::query(
                        "UPDATE partitions SET tombstones_at_ms = $3, cleaned_offset = \
                         CASE WHEN cleaned_offset < $4 THEN $4 ELSE cleaned_offset END \
                         WHERE topic_id = $1 AND partition = $2",
                    )
                    .bind(topic_id)
                    .bind(partition as i64)
                    .bind(tombstones_at)
                    .bind(cleaned)
                    .execute(&mut *$tx)
                    .await?;
                }
                $tx.commit().await?;
                Ok(true)
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = begin_write!(sqlite pool).await?;
                swap_body!(tx, sqlx::Sqlite, "")
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                swap_body!(tx, sqlx::Postgres, " FOR UPDATE")
            }
        }
    }
}
