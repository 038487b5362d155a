//! Segment compaction: finding partitions whose batches live in small files, and swapping
//! a run of batch rows over to the object that now holds their bytes.
//!
//! # Consistency
//! [`Metadata::swap_compacted`] inserts the new file row and repoints every moved batch row
//! in one transaction, each only while it still points at the file it was copied from.
//! If any row no longer does (retention moved the log start, another pass moved it, the
//! topic was deleted), nothing changes and the caller deletes the object it uploaded.
//! Offsets, lengths and timestamps of a row never change: readers see the same log.

use super::sql::{Db, Metadata, StoreError};

/// A partition worth compacting: at least two small files hold its settled batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionCandidate {
    pub topic_id: i64,
    pub topic_uuid: String,
    pub partition: i32,
    /// The first offset that lives in a small file (where a pass starts reading rows).
    pub first_small_offset: i64,
}

/// One batch row as the compaction planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionRow {
    pub base_offset: i64,
    pub last_offset: i64,
    pub file_id: i64,
    pub object_key: String,
    pub file_size: u64,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub committed_at_ms: i64,
}

/// A batch row to repoint: identified by its base offset and the file it was copied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedBatch {
    pub base_offset: i64,
    pub old_file_id: i64,
    /// Where the batch starts in the new object.
    pub new_byte_offset: u64,
}

/// The new object of a swap.
#[derive(Debug, Clone, Copy)]
pub struct CompactedFile<'a> {
    pub object_key: &'a str,
    pub size_bytes: u64,
    pub agent_id: &'a str,
    pub created_at_ms: i64,
}

/// What a swap that went through did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapDone {
    pub file_id: i64,
    /// Input files that no batch row references any more (the garbage collector's to delete).
    pub files_released: u64,
}

type RowTuple = (i64, i64, i64, String, i64, i64, i64, i64, i64, i64);

/// Rows repointed per statement: 3 binds a row.
const SWAP_CHUNK: usize = 500;

impl Metadata {
    /// Partitions with batches committed before `before_ms` in at least two distinct files
    /// smaller than `small_below` bytes, in (topic, partition) order, at most `limit`.
    pub async fn compaction_candidates(
        &self,
        small_below: u64,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<CompactionCandidate>, StoreError> {
        let rows: Vec<(i64, String, i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT b.topic_id, t.topic_uuid, b.partition, MIN(b.base_offset) \
                 FROM batches b JOIN segment_files f ON f.id = b.file_id \
                 JOIN topics t ON t.id = b.topic_id \
                 WHERE f.size_bytes < $1 AND b.committed_at_ms < $2 \
                 GROUP BY b.topic_id, t.topic_uuid, b.partition \
                 HAVING COUNT(DISTINCT b.file_id) >= 2 \
                 ORDER BY b.topic_id, b.partition LIMIT $3",
            )
            .bind(small_below.min(i64::MAX as u64) as i64)
            .bind(before_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(topic_id, topic_uuid, partition, first)| CompactionCandidate {
                    topic_id,
                    topic_uuid,
                    partition: partition as i32,
                    first_small_offset: first,
                },
            )
            .collect())
    }

    /// A partition's batch rows with base offset at or after `from`, in offset order, at
    /// most `limit`, with the size of the file each lives in.
    pub async fn compaction_rows(
        &self,
        topic_id: i64,
        partition: i32,
        from: i64,
        limit: i64,
    ) -> Result<Vec<CompactionRow>, StoreError> {
        let rows: Vec<RowTuple> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT b.base_offset, b.last_offset, b.file_id, f.object_key, f.size_bytes, \
                        b.byte_offset, b.byte_len, b.record_count, b.max_timestamp, b.committed_at_ms \
                 FROM batches b JOIN segment_files f ON f.id = b.file_id \
                 WHERE b.topic_id = $1 AND b.partition = $2 AND b.base_offset >= $3 \
                 ORDER BY b.base_offset LIMIT $4",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| CompactionRow {
                base_offset: r.0,
                last_offset: r.1,
                file_id: r.2,
                object_key: r.3,
                file_size: r.4.max(0) as u64,
                byte_offset: r.5.max(0) as u64,
                byte_len: r.6.max(0) as u64,
                record_count: r.7 as i32,
                max_timestamp: r.8,
                committed_at_ms: r.9,
            })
            .collect())
    }

    /// Records `file` and repoints every row of `moved` (of one partition) to it, all or
    /// nothing: Ok(None) when some row no longer points at its old file (nothing changed;
    /// the caller deletes the new object).
    pub async fn swap_compacted(
        &self,
        topic_id: i64,
        partition: i32,
        file: CompactedFile<'_>,
        moved: &[MovedBatch],
    ) -> Result<Option<SwapDone>, StoreError> {
        if moved.is_empty() {
            return Ok(None);
        }
        let mut old_files: Vec<i64> = moved.iter().map(|m| m.old_file_id).collect();
        old_files.sort_unstable();
        old_files.dedup();
        macro_rules! swap_body {
            ($tx:ident, $db:ty) => {{
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
                let mut updated = 0u64;
                for chunk in moved.chunks(SWAP_CHUNK) {
                    // VALUES columns are column1.. on both backends.
                    let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE batches SET file_id = ");
                    qb.push_bind(file_id)
                        .push(", byte_offset = v.column3 FROM (");
                    qb.push_values(chunk, |mut row, m| {
                        row.push_bind(m.base_offset)
                            .push_bind(m.old_file_id)
                            .push_bind(m.new_byte_offset as i64);
                    });
                    qb.push(") AS v WHERE batches.topic_id = ")
                        .push_bind(topic_id)
                        .push(" AND batches.partition = ")
                        .push_bind(partition as i64)
                        .push(
                            " AND batches.base_offset = v.column1 AND batches.file_id = v.column2",
                        );
                    updated += qb.build().execute(&mut *$tx).await?.rows_affected();
                }
                if updated != moved.len() as u64 {
                    $tx.rollback().await?;
                    return Ok(None);
                }
                let mut files_released = 0u64;
                for chunk in old_files.chunks(SWAP_CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT COUNT(*) FROM segment_files f WHERE NOT EXISTS \
                         (SELECT 1 FROM batches b WHERE b.file_id = f.id) AND f.id IN (",
                    );
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                    let (n,): (i64,) = qb.build_query_as().fetch_one(&mut *$tx).await?;
                    files_released += n as u64;
                }
                $tx.commit().await?;
                Ok(Some(SwapDone {
                    file_id,
                    files_released,
                }))
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = begin_write!(sqlite pool).await?;
                swap_body!(tx, sqlx::Sqlite)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                swap_body!(tx, sqlx::Postgres)
            }
        }
    }
}
