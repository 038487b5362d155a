//! Read-only aggregates for the console's views of a virtual cluster ([`crate::inspect`]).
//!
//! Each query covers a whole cluster (or a whole topic / group) at once, so a page costs a
//! fixed number of round trips whatever the number of topics. Sums are cast to BIGINT:
//! Postgres' `SUM(bigint)` is NUMERIC, which does not decode as `i64`.

use super::lag::GroupPosition;
use super::sql::{Db, Metadata, StoreError};

/// A topic with its totals, as the topic list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    pub name: String,
    pub partitions: i32,
    pub created_at_ms: i64,
    /// Sum over partitions of `next_offset - log_start_offset`.
    pub records: i64,
    /// Bytes of the batches still in the log.
    pub size_bytes: i64,
    /// Offsets committed in the timestamp-index minutes of the asked window.
    pub recent_offsets: i64,
}

/// One partition's bounds and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: i32,
    pub log_start_offset: i64,
    pub next_offset: i64,
    pub size_bytes: i64,
}

/// The topics a group has committed offsets for, with its offset lag on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopicLag {
    pub group_id: String,
    pub topic: String,
    /// Sum over the topic's committed partitions of `max(0, log end - committed)`.
    pub offset_lag: i64,
}

type StatsRow = (String, i64, i64, i64, i64, i64);

impl Metadata {
    /// Every topic of `cluster` with its record count, size and the offsets committed in
    /// index minutes starting in `[since_ms, until_ms)`, sorted by name. One query.
    pub async fn topic_stats(
        &self,
        cluster: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<TopicStats>, StoreError> {
        let rows: Vec<StatsRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT t.name, t.partition_count, t.created_at_ms, \
                        COALESCE(p.records, 0), COALESCE(b.bytes, 0), COALESCE(i.recent, 0) \
                 FROM topics t \
                 LEFT JOIN (SELECT p.topic_id, \
                                   CAST(SUM(p.next_offset - p.log_start_offset) AS BIGINT) AS records \
                            FROM partitions p JOIN topics t2 ON t2.id = p.topic_id \
                            WHERE t2.cluster = $1 GROUP BY p.topic_id) p ON p.topic_id = t.id \
                 LEFT JOIN (SELECT b.topic_id, CAST(SUM(b.byte_len) AS BIGINT) AS bytes \
                            FROM batches b JOIN topics t3 ON t3.id = b.topic_id \
                            WHERE t3.cluster = $1 GROUP BY b.topic_id) b ON b.topic_id = t.id \
                 LEFT JOIN (SELECT x.topic_id, CAST(SUM(x.offset_count) AS BIGINT) AS recent \
                            FROM timestamp_index x JOIN topics t4 ON t4.id = x.topic_id \
                            WHERE t4.cluster = $1 AND x.minute_start >= $2 AND x.minute_start < $3 \
                            GROUP BY x.topic_id) i ON i.topic_id = t.id \
                 WHERE t.cluster = $1 ORDER BY t.name",
            )
            .bind(cluster)
            .bind(since_ms)
            .bind(until_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| TopicStats {
                name: r.0,
                partitions: r.1 as i32,
                created_at_ms: r.2,
                records: r.3,
                size_bytes: r.4,
                recent_offsets: r.5,
            })
            .collect())
    }

    /// Bounds and size of every partition of a topic, in partition order. One query.
    pub async fn partition_stats(&self, topic_id: i64) -> Result<Vec<PartitionStats>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT p.partition, p.log_start_offset, p.next_offset, COALESCE(b.bytes, 0) \
                 FROM partitions p \
                 LEFT JOIN (SELECT partition, CAST(SUM(byte_len) AS BIGINT) AS bytes \
                            FROM batches WHERE topic_id = $1 GROUP BY partition) b \
                   ON b.partition = p.partition \
                 WHERE p.topic_id = $1 ORDER BY p.partition",
            )
            .bind(topic_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| PartitionStats {
                partition: r.0 as i32,
                log_start_offset: r.1,
                next_offset: r.2,
                size_bytes: r.3,
            })
            .collect())
    }

    /// Every (group, topic) of `cluster` with committed offsets and the group's offset lag
    /// on that topic, sorted by group then topic. One query. The lag formula is
    /// [`crate::lag::compute`]'s; offsets of partitions that no longer exist count 0.
    pub async fn group_topic_lags(&self, cluster: &str) -> Result<Vec<GroupTopicLag>, StoreError> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT o.group_id, o.topic, CAST(COALESCE(SUM(CASE \
                   WHEN p.next_offset > o.committed_offset THEN p.next_offset - o.committed_offset \
                   ELSE 0 END), 0) AS BIGINT) \
                 FROM group_offsets o \
                 LEFT JOIN topics t ON t.cluster = o.cluster AND t.name = o.topic \
                 LEFT JOIN partitions p ON p.topic_id = t.id AND p.partition = o.partition \
                 WHERE o.cluster = $1 \
                 GROUP BY o.group_id, o.topic ORDER BY o.group_id, o.topic",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(group_id, topic, offset_lag)| GroupTopicLag {
                group_id,
                topic,
                offset_lag,
            })
            .collect())
    }

    /// One group's committed offsets on existing partitions, with where each partition
    /// ends, sorted by topic then partition. One query.
    pub async fn group_positions_of(
        &self,
        cluster: &str,
        group: &str,
    ) -> Result<Vec<GroupPosition>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT o.topic, t.id, o.partition, o.committed_offset, p.next_offset \
                 FROM group_offsets o \
                 JOIN topics t ON t.cluster = o.cluster AND t.name = o.topic \
                 JOIN partitions p ON p.topic_id = t.id AND p.partition = o.partition \
                 WHERE o.cluster = $1 AND o.group_id = $2 \
                 ORDER BY o.topic, o.partition",
            )
            .bind(cluster)
            .bind(group)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| GroupPosition {
                cluster: cluster.to_string(),
                group_id: group.to_string(),
                topic: r.0,
                topic_id: r.1,
                partition: r.2 as i32,
                committed_offset: r.3,
                log_end_offset: r.4,
            })
            .collect())
    }
}
