//! Timestamp index rows and lag history.

use super::sql::{Db, Metadata, StoreError};
use crate::lag::index::IndexRow;

type RowTuple = (i64, i64, i64, i64);

fn row(r: RowTuple) -> IndexRow {
    IndexRow {
        minute_start: r.0,
        base_offset: r.1,
        offset_count: r.2,
        minute_count: r.3,
    }
}

/// One committed offset of any group, with where its partition ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPosition {
    pub cluster: String,
    pub group_id: String,
    pub topic: String,
    pub topic_id: i64,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
}

impl Metadata {
    /// A partition's index rows in time order.
    pub async fn index_rows(
        &self,
        topic_id: i64,
        partition: i32,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let rows: Vec<RowTuple> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT minute_start, base_offset, offset_count, minute_count FROM timestamp_index \
                 WHERE topic_id = $1 AND partition = $2 ORDER BY minute_start",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// When (broker clock) the batch holding `offset` was committed, while its row exists.
    pub async fn batch_commit_time(
        &self,
        topic_id: i64,
        partition: i32,
        offset: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT last_offset, committed_at_ms FROM batches \
                 WHERE topic_id = $1 AND partition = $2 AND base_offset <= $3 \
                 ORDER BY base_offset DESC LIMIT 1",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(offset)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.filter(|(last, _)| *last >= offset).map(|(_, at)| at))
    }

    /// Index rows from the one holding `offset` onwards (what dating that offset needs).
    pub async fn index_rows_from(
        &self,
        topic_id: i64,
        partition: i32,
        offset: i64,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let rows: Vec<RowTuple> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT minute_start, base_offset, offset_count, minute_count FROM timestamp_index \
                 WHERE topic_id = $1 AND partition = $2 AND minute_start >= COALESCE( \
                   (SELECT MAX(minute_start) FROM timestamp_index \
                    WHERE topic_id = $1 AND partition = $2 AND base_offset <= $3), 0) \
                 ORDER BY minute_start LIMIT 2",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(offset)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// Partitions having index rows that end before `before_ms` (merge candidates).
    pub async fn partitions_with_old_index_rows(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(i64, i32)>, StoreError> {
        let rows: Vec<(i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT DISTINCT topic_id, partition FROM timestamp_index WHERE minute_start < $1",
            )
            .bind(before_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(t, p)| (t, p as i32)).collect())
    }

    /// Replaces a partition's rows older than `through_ms` (inclusive of rows starting
    /// before it) with `merged`, in one transaction.
    pub async fn replace_index_rows(
        &self,
        topic_id: i64,
        partition: i32,
        old: &[IndexRow],
        merged: &[IndexRow],
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            for r in old {
                sqlx::query("DELETE FROM timestamp_index WHERE topic_id = $1 AND partition = $2 AND minute_start = $3")
                    .bind(topic_id)
                    .bind(partition as i64)
                    .bind(r.minute_start)
                    .execute(&mut *tx)
                    .await?;
            }
            for r in merged {
                sqlx::query(
                    "INSERT INTO timestamp_index (topic_id, partition, minute_start, base_offset, offset_count, \
                     minute_count) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(topic_id)
                .bind(partition as i64)
                .bind(r.minute_start)
                .bind(r.base_offset)
                .bind(r.offset_count)
                .bind(r.minute_count)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every committed offset of every group whose topic still exists, with the log end.
    pub async fn group_positions(&self) -> Result<Vec<GroupPosition>, StoreError> {
        let rows: Vec<(String, String, String, i64, i64, i64, i64)> = with_pool!(
            self,
            |pool, _lock, _db| {
                sqlx::query_as(
                "SELECT o.cluster, o.group_id, o.topic, t.id, o.partition, o.committed_offset, p.next_offset \
                 FROM group_offsets o \
                 JOIN topics t ON t.cluster = o.cluster AND t.name = o.topic \
                 JOIN partitions p ON p.topic_id = t.id AND p.partition = o.partition \
                 ORDER BY o.cluster, o.group_id, o.topic, o.partition",
            )
            .fetch_all(pool)
            .await?
            }
        );
        Ok(rows
            .into_iter()
            .map(|r| GroupPosition {
                cluster: r.0,
                group_id: r.1,
                topic: r.2,
                topic_id: r.3,
                partition: r.4 as i32,
                committed_offset: r.5,
                log_end_offset: r.6,
            })
            .collect())
    }

    /// Records a group's lag for a minute (the latest value of the minute wins).
    pub async fn record_lag(
        &self,
        cluster: &str,
        group: &str,
        minute_start: i64,
        max_time_lag_ms: i64,
        offset_lag: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "INSERT INTO lag_history (cluster, group_id, minute_start, max_time_lag_ms, offset_lag) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster, group_id, minute_start) DO UPDATE SET \
                 max_time_lag_ms = excluded.max_time_lag_ms, offset_lag = excluded.offset_lag",
            )
            .bind(cluster)
            .bind(group)
            .bind(minute_start)
            .bind(max_time_lag_ms)
            .bind(offset_lag)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// A group's lag history since `since_ms`: (minute, max time lag ms, offset lag).
    pub async fn lag_history(
        &self,
        cluster: &str,
        group: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT minute_start, max_time_lag_ms, offset_lag FROM lag_history \
                 WHERE cluster = $1 AND group_id = $2 AND minute_start >= $3 ORDER BY minute_start",
            )
            .bind(cluster)
            .bind(group)
            .bind(since_ms)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Drops history older than `before_ms`.
    pub async fn prune_lag_history(&self, before_ms: i64) -> Result<u64, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(
                sqlx::query("DELETE FROM lag_history WHERE minute_start < $1")
                    .bind(before_ms)
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}
