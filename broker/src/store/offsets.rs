//! Committed consumer-group offsets.

use super::sql::{Db, Metadata, StoreError};
use crate::clock::now_ms;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
}

type OffsetRow = (String, i64, i64, i64, Option<String>, i64);

fn from_row(r: OffsetRow) -> CommittedOffset {
    CommittedOffset {
        topic: r.0,
        partition: r.1 as i32,
        offset: r.2,
        leader_epoch: r.3 as i32,
        metadata: r.4,
        commit_time_ms: r.5,
    }
}

impl Metadata {
    /// Stores offsets for a group in one transaction (upserts).
    pub async fn commit_offsets(
        &self,
        cluster: &str,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let records = crate::offsets_topic::offset_records(
            group,
            offsets.iter().map(|o| {
                (
                    o.topic.clone(),
                    o.partition,
                    Some((o.offset, o.leader_epoch, o.metadata.clone())),
                )
            }),
            now,
        );
        with_pool!(self, |pool, lock, _db| {
            let mut tx = pool.begin().await?;
            for o in offsets {
                sqlx::query(
                    "INSERT INTO group_offsets (cluster, group_id, topic, partition, committed_offset, \
                     leader_epoch, metadata, commit_time_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (cluster, group_id, topic, partition) DO UPDATE SET \
                     committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch, \
                     metadata = excluded.metadata, commit_time_ms = excluded.commit_time_ms",
                )
                .bind(cluster)
                .bind(group)
                .bind(&o.topic)
                .bind(o.partition as i64)
                .bind(o.offset)
                .bind(o.leader_epoch as i64)
                .bind(&o.metadata)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            append_offsets_topic!(tx, lock, cluster, group, records, now);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every committed offset of a group.
    pub async fn group_offsets(
        &self,
        cluster: &str,
        group: &str,
    ) -> Result<Vec<CommittedOffset>, StoreError> {
        let rows: Vec<OffsetRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_time_ms \
                 FROM group_offsets WHERE cluster = $1 AND group_id = $2 ORDER BY topic, partition",
            )
            .bind(cluster)
            .bind(group)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Groups that have committed offsets in a cluster.
    pub async fn groups_with_offsets(&self, cluster: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT DISTINCT group_id FROM group_offsets WHERE cluster = $1 ORDER BY group_id",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// Deletes a group's offsets (all, or only those of `topic`'s `partitions`).
    pub async fn delete_group_offsets(
        &self,
        cluster: &str,
        group: &str,
        only: Option<(&str, &[i32])>,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, lock, _db| {
            let mut tx = pool.begin().await?;
            // The deleted offsets leave tombstones in the offsets topic.
            let gone: Vec<(String, i64)> = match only {
                None => {
                    sqlx::query_as(
                        "DELETE FROM group_offsets WHERE cluster = $1 AND group_id = $2 \
                         RETURNING topic, partition",
                    )
                    .bind(cluster)
                    .bind(group)
                    .fetch_all(&mut *tx)
                    .await?
                }
                Some((topic, partitions)) => {
                    let mut gone = Vec::new();
                    for p in partitions {
                        gone.extend(
                            sqlx::query_as::<_, (String, i64)>(
                                "DELETE FROM group_offsets WHERE cluster = $1 AND group_id = $2 \
                                 AND topic = $3 AND partition = $4 RETURNING topic, partition",
                            )
                            .bind(cluster)
                            .bind(group)
                            .bind(topic)
                            .bind(*p as i64)
                            .fetch_all(&mut *tx)
                            .await?,
                        );
                    }
                    gone
                }
            };
            let deleted = gone.len() as u64;
            let records = crate::offsets_topic::offset_records(
                group,
                gone.into_iter().map(|(t, p)| (t, p as i32, None)),
                now,
            );
            append_offsets_topic!(tx, lock, cluster, group, records, now);
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Inline batches of a partition (the offsets topic's) from `offset` up to `end`, at
    /// most `limit`: (base offset, batch bytes with base offset 0).
    pub async fn inline_batches_from(
        &self,
        topic_id: i64,
        partition: i32,
        offset: i64,
        end: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        Ok(with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT base_offset, data FROM inline_batches WHERE topic_id = $1 AND partition = $2 \
                 AND base_offset >= $3 AND base_offset < $4 ORDER BY base_offset LIMIT $5",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(offset)
            .bind(end)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
