//! Log retention and garbage collection of segment files.

use std::collections::HashSet;

use super::sql::{Db, Metadata, StoreError};

/// (topic id, partition count) rows and (topic id, key, value) config rows.
type TopicsAndConfigs = (Vec<(i64, i64)>, Vec<(i64, String, String)>);

impl Metadata {
    /// Every topic of every cluster: (topic id, partitions, configs set on it).
    pub async fn all_topics_for_jobs(
        &self,
    ) -> Result<Vec<(i64, i32, Vec<(String, String)>)>, StoreError> {
        let (topics, configs): TopicsAndConfigs = with_pool!(self, |pool, _lock, _db| {
            let topics = sqlx::query_as("SELECT id, partition_count FROM topics ORDER BY id")
                .fetch_all(pool)
                .await?;
            let configs = sqlx::query_as("SELECT topic_id, key, value FROM topic_configs")
                .fetch_all(pool)
                .await?;
            (topics, configs)
        });
        Ok(topics
            .into_iter()
            .map(|(id, n)| {
                let set = configs
                    .iter()
                    .filter(|(t, _, _)| *t == id)
                    .map(|(_, k, v)| (k.clone(), v.clone()))
                    .collect();
                (id, n as i32, set)
            })
            .collect())
    }

    /// The first offset whose batch has a timestamp at or after `cutoff_ms` (None: none).
    pub async fn first_offset_at_or_after(
        &self,
        topic_id: i64,
        partition: i32,
        cutoff_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: (Option<i64>,) = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as("SELECT MIN(base_offset) FROM batches WHERE topic_id = $1 AND partition = $2 AND max_timestamp >= $3")
                .bind(topic_id)
                .bind(partition as i64)
                .bind(cutoff_ms)
                .fetch_one(pool)
                .await?
        });
        Ok(row.0)
    }

    /// Where the log must start so that at most `limit` bytes of batches remain (None: it
    /// already fits).
    pub async fn start_for_size_limit(
        &self,
        topic_id: i64,
        partition: i32,
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (total,): (Option<i64>,) = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as("SELECT CAST(SUM(byte_len) AS BIGINT) FROM batches WHERE topic_id = $1 AND partition = $2")
                .bind(topic_id)
                .bind(partition as i64)
                .fetch_one(pool)
                .await?
        });
        let mut excess = total.unwrap_or(0) - limit;
        if excess <= 0 {
            return Ok(None);
        }
        let mut from = -1i64;
        loop {
            let rows: Vec<(i64, i64)> = with_pool!(self, |pool, _lock, _db| {
                sqlx::query_as(
                    "SELECT last_offset, byte_len FROM batches WHERE topic_id = $1 AND partition = $2 \
                     AND base_offset > $3 ORDER BY base_offset LIMIT 5000",
                )
                .bind(topic_id)
                .bind(partition as i64)
                .bind(from)
                .fetch_all(pool)
                .await?
            });
            if rows.is_empty() {
                return Ok(Some(from + 1));
            }
            for (last, len) in rows {
                excess -= len;
                from = last;
                if excess <= 0 {
                    return Ok(Some(last + 1));
                }
            }
        }
    }

    /// Moves a partition's log start forward to `new_start` (never backwards, never past
    /// its end) and drops the batch rows and index rows below it. Returns the batch rows
    /// removed.
    pub async fn advance_log_start(
        &self,
        topic_id: i64,
        partition: i32,
        new_start: i64,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(
                "UPDATE partitions SET log_start_offset = $3 \
                 WHERE topic_id = $1 AND partition = $2 AND log_start_offset < $3 AND $3 <= next_offset",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(new_start)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(0);
            }
            let removed = sqlx::query(
                "DELETE FROM batches WHERE topic_id = $1 AND partition = $2 AND last_offset < $3",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(new_start)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM timestamp_index WHERE topic_id = $1 AND partition = $2 AND base_offset + offset_count <= $3",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(new_start)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Segment files created before `before_ms` that no batch row references any more.
    pub async fn unreferenced_files(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT f.id, f.object_key FROM segment_files f WHERE f.created_at_ms < $1 \
                 AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.file_id = f.id) ORDER BY f.id LIMIT 10000",
            )
            .bind(before_ms)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Forgets a segment file whose object was deleted (only while still unreferenced).
    pub async fn delete_file_row(&self, id: i64) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query("DELETE FROM segment_files WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.file_id = $1)")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Which of `keys` are known segment files.
    pub async fn known_object_keys(&self, keys: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut known = HashSet::new();
        for chunk in keys.chunks(500) {
            let rows: Vec<(String,)> = with_pool!(self, |pool, _lock, DB| {
                let mut qb = sqlx::QueryBuilder::<DB>::new(
                    "SELECT object_key FROM segment_files WHERE object_key IN (",
                );
                let mut sep = qb.separated(", ");
                for k in chunk {
                    sep.push_bind(k);
                }
                qb.push(")");
                qb.build_query_as().fetch_all(pool).await?
            });
            known.extend(rows.into_iter().map(|(k,)| k));
        }
        Ok(known)
    }
}
