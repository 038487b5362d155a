//! SQL for the metadata store, shared by SQLite and Postgres.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use super::plan::AppendGroup;
use crate::clock::now_ms;

/// Errors with meaning for callers; anything else is an opaque database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("virtual cluster '{0}' does not exist (deleted?)")]
    UnknownCluster(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error(
        "node id {node_id} is held by a live agent at {holder} (last seen {seen_ms_ago} ms ago); \
         pick another --node-id or stop that agent"
    )]
    NodeIdTaken {
        node_id: i32,
        /// The holder's advertised `host:port`.
        holder: String,
        seen_ms_ago: i64,
    },
    #[error("node id {0} is invalid: node ids are 0 or more")]
    InvalidNodeId(i32),
    #[error("every node id is held by a live agent")]
    NoFreeNodeId,
    #[error(
        "could not lease a node id: other agents took the free one {0} times in a row; try again"
    )]
    NodeIdContended(u32),
    #[error("unsupported database url '{0}': use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("metadata database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: i64,
    pub cluster: String,
    pub name: String,
    pub uuid: Uuid,
    pub partitions: i32,
    /// Only the configs set on the topic; defaults live in `topic_config`.
    pub configs: BTreeMap<String, String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub next_offset: i64,
    pub log_start_offset: i64,
    /// The first offset of the oldest open transaction, or the high watermark: what a
    /// read_committed consumer may read up to.
    pub last_stable_offset: i64,
    /// The abort marker of the last aborted transaction (-1 for none): fetches from
    /// past it have no aborted transactions to list.
    pub last_aborted: i64,
}

/// Where a stored batch lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLocation {
    pub base_offset: i64,
    pub last_offset: i64,
    pub object_key: Arc<str>,
    pub object_size: u64,
    pub byte_offset: u64,
    pub byte_len: u32,
    pub max_timestamp: i64,
}

#[derive(Clone)]
pub(super) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A partition's state as read: partition, next offset, log start, the oldest open
/// transaction's first offset, the last abort marker.
type StateRow = (i64, i64, i64, Option<i64>, Option<i64>);

/// Reads [`StateRow`]s; each subquery is one probe of an index.
const STATE_SELECT: &str = "SELECT p.partition, p.next_offset, p.log_start_offset, \
     (SELECT MIN(t.first_offset) FROM txn_partitions t \
      WHERE t.topic_id = p.topic_id AND t.partition = p.partition AND t.first_offset IS NOT NULL), \
     (SELECT MAX(a.last_offset) FROM aborted_txns a \
      WHERE a.topic_id = p.topic_id AND a.partition = p.partition) \
     FROM partitions p";

fn state_from_row(r: StateRow) -> PartitionState {
    let (_, next_offset, log_start_offset, open, aborted) = r;
    PartitionState {
        next_offset,
        log_start_offset,
        last_stable_offset: open.map_or(next_offset, |o| o.min(next_offset)),
        last_aborted: aborted.unwrap_or(-1),
    }
}

/// A batch row as read: base and last offset, object key, byte offset and length, max
/// timestamp, object size.
type BatchRow = (i64, i64, String, i64, i64, i64, i64);

/// Parses [`Metadata::batches_from`]'s packed rows: fields split by char 31, rows by 30.
fn unpack_batch_rows(packed: &str) -> Result<Vec<BatchRow>, StoreError> {
    let bad = || {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "unreadable packed batch rows: {packed:.200}"
        )))
    };
    let mut out = Vec::new();
    for row in packed.split('\u{1e}') {
        let f: Vec<&str> = row.split('\u{1f}').collect();
        let [base, last, key, at, len, ts, size] = f[..] else {
            return Err(bad());
        };
        let int = |v: &str| v.parse::<i64>().map_err(|_| bad());
        out.push((
            int(base)?,
            int(last)?,
            key.to_string(),
            int(at)?,
            int(len)?,
            int(ts)?,
            int(size)?,
        ));
    }
    Ok(out)
}

/// One flushed segment file to commit.
pub struct SegmentCommit<'a> {
    pub object_key: &'a str,
    pub size_bytes: u64,
    pub groups: &'a [AppendGroup],
}

/// The metadata store handle; cheap to clone.
#[derive(Clone)]
pub struct Metadata {
    pub(super) db: Db,
}

type TopicRow = (i64, String, String, String, i64, i64);

/// The tables whose rows belong to one topic (by `topic_id`), deleted with it.
pub(super) const TOPIC_ROW_TABLES: [&str; 5] = [
    "batches",
    "producer_state",
    "timestamp_index",
    "partitions",
    "topic_configs",
];

/// Opens a SQLite pool with the settings every store on the file shares (the cluster
/// metadata and the console's platform data may live in one file): WAL, FULL sync (a
/// committed flush, and so an acked record, survives a power cut), a busy timeout long
/// enough to wait out another writer's commit, foreign keys on. Connections are not pinged
/// when taken from the pool: a connection to a local file does not go stale, and the ping
/// is a hand-off to the connection's thread and back before every query or transaction.
pub async fn open_sqlite(url: &str, max_connections: u32) -> Result<SqlitePool, sqlx::Error> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .connect_with(opts)
        .await
}

/// Opens a Postgres pool whose callers wait up to 30 s for a free connection.
pub async fn open_postgres(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let opts = PgConnectOptions::from_str(url)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
}

impl Metadata {
    /// Connects and migrates. `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("sqlite:") {
            let pool = open_sqlite(url, 8).await?;
            let mut migrator = sqlx::migrate!("../migrations/sqlite");
            // The console's migrations share the table (see the module doc).
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            Db::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = open_postgres(url, 16).await?;
            let mut migrator = sqlx::migrate!("../migrations/postgres");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        Ok(Metadata { db })
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// The cluster id, created on first start and stable afterwards.
    pub async fn cluster_id(&self) -> Result<String, StoreError> {
        let fresh = Uuid::new_v4().simple().to_string();
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "INSERT INTO cluster_info (key, value) VALUES ('cluster_id', $1) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&fresh)
            .execute(pool)
            .await?;
            let (id,): (String,) =
                sqlx::query_as("SELECT value FROM cluster_info WHERE key = 'cluster_id'")
                    .fetch_one(pool)
                    .await?;
            Ok(id)
        })
    }

    pub async fn create_topic(
        &self,
        cluster: &str,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicMeta, StoreError> {
        let uuid = Uuid::new_v4();
        let now = now_ms();
        let map_exists = |e: sqlx::Error| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::TopicExists(name.to_string())
            }
            _ => StoreError::Database(e),
        };
        let id = with_pool!(self, |pool, lock, DB| {
            let mut tx = pool.begin().await?;
            // A topic lives in an existing cluster: a client still connected to a cluster
            // being deleted cannot create one in it. The row stays locked until the topic
            // is committed (a concurrent delete waits for it and removes the topic too).
            if cluster != crate::session::DEFAULT_CLUSTER {
                let exists: Option<(String,)> = sqlx::query_as(&format!(
                    "SELECT id FROM virtual_clusters WHERE id = $1{lock}"
                ))
                .bind(cluster)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Err(StoreError::UnknownCluster(cluster.to_string()));
                }
            }
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO topics (cluster, name, topic_uuid, partition_count, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(cluster)
            .bind(name)
            .bind(uuid.to_string())
            .bind(partitions as i64)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_exists)?;
            insert_partitions!(tx, id, 0, partitions);
            for (k, v) in configs {
                sqlx::query("INSERT INTO topic_configs (topic_id, key, value) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await.map_err(map_exists)?;
            id
        });
        Ok(TopicMeta {
            id,
            cluster: cluster.to_string(),
            name: name.to_string(),
            uuid,
            partitions,
            configs: configs.clone(),
            created_at_ms: now,
        })
    }

    pub async fn topic(&self, cluster: &str, name: &str) -> Result<Option<TopicMeta>, StoreError> {
        let row: Option<TopicRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT id, cluster, name, topic_uuid, partition_count, created_at_ms \
                 FROM topics WHERE cluster = $1 AND name = $2",
            )
            .bind(cluster)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        self.with_configs(row).await
    }

    pub async fn topic_by_uuid(
        &self,
        cluster: &str,
        uuid: Uuid,
    ) -> Result<Option<TopicMeta>, StoreError> {
        let row: Option<TopicRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT id, cluster, name, topic_uuid, partition_count, created_at_ms \
                 FROM topics WHERE cluster = $1 AND topic_uuid = $2",
            )
            .bind(cluster)
            .bind(uuid.to_string())
            .fetch_optional(pool)
            .await?
        });
        self.with_configs(row).await
    }

    async fn with_configs(&self, row: Option<TopicRow>) -> Result<Option<TopicMeta>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let configs: Vec<(String, String)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as("SELECT key, value FROM topic_configs WHERE topic_id = $1")
                .bind(row.0)
                .fetch_all(pool)
                .await?
        });
        Ok(Some(topic_from_row(row, configs.into_iter().collect())))
    }

    pub async fn list_topics(&self, cluster: &str) -> Result<Vec<TopicMeta>, StoreError> {
        let (rows, configs): (Vec<TopicRow>, Vec<(i64, String, String)>) =
            with_pool!(self, |pool, _lock, _db| {
                let rows = sqlx::query_as(
                    "SELECT id, cluster, name, topic_uuid, partition_count, created_at_ms \
                     FROM topics WHERE cluster = $1 ORDER BY name",
                )
                .bind(cluster)
                .fetch_all(pool)
                .await?;
                let configs = sqlx::query_as(
                    "SELECT c.topic_id, c.key, c.value FROM topic_configs c \
                     JOIN topics t ON t.id = c.topic_id WHERE t.cluster = $1",
                )
                .bind(cluster)
                .fetch_all(pool)
                .await?;
                (rows, configs)
            });
        let mut by_topic: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in configs {
            by_topic.entry(id).or_default().insert(k, v);
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let c = by_topic.remove(&r.0).unwrap_or_default();
                topic_from_row(r, c)
            })
            .collect())
    }

    /// Deletes a topic with its partitions, batch rows and configs. Segment objects stay
    /// until the cleanup job finds them unreferenced.
    pub async fn delete_topic(&self, cluster: &str, name: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            let id: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM topics WHERE cluster = $1 AND name = $2")
                    .bind(cluster)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((id,)) = id else { return Ok(false) };
            for table in TOPIC_ROW_TABLES {
                sqlx::query(&format!("DELETE FROM {table} WHERE topic_id = $1"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM topics WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM group_offsets WHERE cluster = $1 AND topic = $2")
                .bind(cluster)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Grows a topic to `new_count` partitions.
    pub async fn create_partitions(&self, topic_id: i64, new_count: i32) -> Result<(), StoreError> {
        with_pool!(self, |pool, lock, DB| {
            let mut tx = pool.begin().await?;
            let current: Option<(i64,)> = sqlx::query_as(&format!(
                "SELECT partition_count FROM topics WHERE id = $1{lock}"
            ))
            .bind(topic_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((current,)) = current else {
                return Err(StoreError::UnknownTopic(topic_id.to_string()));
            };
            let current = current as i32;
            if new_count <= current {
                return Err(StoreError::InvalidPartitions(format!(
                    "topic has {current} partitions; the new count {new_count} must be larger"
                )));
            }
            insert_partitions!(tx, topic_id, current, new_count);
            sqlx::query("UPDATE topics SET partition_count = $1 WHERE id = $2")
                .bind(new_count as i64)
                .bind(topic_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Replaces (`replace = true`) or edits a topic's configs: `set` upserts, `remove` deletes.
    pub async fn alter_topic_configs(
        &self,
        topic_id: i64,
        replace: bool,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            if replace {
                sqlx::query("DELETE FROM topic_configs WHERE topic_id = $1")
                    .bind(topic_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for key in remove {
                sqlx::query("DELETE FROM topic_configs WHERE topic_id = $1 AND key = $2")
                    .bind(topic_id)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            for (k, v) in set {
                sqlx::query(
                    "INSERT INTO topic_configs (topic_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (topic_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(topic_id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn partition_state(
        &self,
        topic_id: i64,
        partition: i32,
    ) -> Result<Option<PartitionState>, StoreError> {
        let row: Option<StateRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "{STATE_SELECT} WHERE p.topic_id = $1 AND p.partition = $2"
            ))
            .bind(topic_id)
            .bind(partition as i64)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(state_from_row))
    }

    /// Every partition's state of one topic, in one query (a fetch reads them per round).
    pub async fn partition_states(
        &self,
        topic_id: i64,
    ) -> Result<HashMap<i32, PartitionState>, StoreError> {
        let rows: Vec<StateRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!("{STATE_SELECT} WHERE p.topic_id = $1"))
                .bind(topic_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| (r.0 as i32, state_from_row(r)))
            .collect())
    }

    /// Batches from the one holding `offset` onwards, in offset order, at most `limit`.
    pub async fn batches_from(
        &self,
        topic_id: i64,
        partition: i32,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<BatchLocation>, StoreError> {
        let rows: Vec<BatchRow> = match &self.db {
            // SQLite hands each result row from its worker thread to the caller through a
            // channel, a thread wake-up per row: under a consumer reading 1 MiB per partition
            // that was most of a fetch's time. One aggregated row carries them all.
            Db::Sqlite(pool) => {
                let packed: Option<String> = sqlx::query_scalar(
                    "SELECT group_concat(r, char(30)) FROM ( \
                       SELECT b.base_offset || char(31) || b.last_offset || char(31) || \
                              f.object_key || char(31) || b.byte_offset || char(31) || \
                              b.byte_len || char(31) || b.max_timestamp || char(31) || \
                              f.size_bytes AS r \
                       FROM batches b JOIN segment_files f ON f.id = b.file_id \
                       WHERE b.topic_id = $1 AND b.partition = $2 AND b.base_offset >= \
                         COALESCE((SELECT MAX(base_offset) FROM batches \
                                   WHERE topic_id = $1 AND partition = $2 \
                                     AND base_offset <= $3), 0) \
                       ORDER BY b.base_offset LIMIT $4)",
                )
                .bind(topic_id)
                .bind(partition as i64)
                .bind(offset)
                .bind(limit)
                .fetch_one(pool)
                .await?;
                let mut rows = packed
                    .as_deref()
                    .map(unpack_batch_rows)
                    .transpose()?
                    .unwrap_or_default();
                // group_concat's order is the subquery's in practice, not by contract.
                rows.sort_unstable_by_key(|r| r.0);
                rows
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT b.base_offset, b.last_offset, f.object_key, b.byte_offset, \
                            b.byte_len, b.max_timestamp, f.size_bytes \
                     FROM batches b JOIN segment_files f ON f.id = b.file_id \
                     WHERE b.topic_id = $1 AND b.partition = $2 AND b.base_offset >= \
                       COALESCE((SELECT MAX(base_offset) FROM batches \
                                 WHERE topic_id = $1 AND partition = $2 \
                                   AND base_offset <= $3), 0) \
                     ORDER BY b.base_offset LIMIT $4",
                )
                .bind(topic_id)
                .bind(partition as i64)
                .bind(offset)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        let mut keys: HashMap<String, Arc<str>> = HashMap::new();
        Ok(rows
            .into_iter()
            .filter(|r| r.1 >= offset)
            .map(
                |(base_offset, last_offset, key, byte_offset, byte_len, max_timestamp, size)| {
                    let object_key = keys
                        .entry(key)
                        .or_insert_with_key(|k| Arc::from(k.as_str()))
                        .clone();
                    BatchLocation {
                        base_offset,
                        last_offset,
                        object_key,
                        object_size: size as u64,
                        byte_offset: byte_offset as u64,
                        byte_len: byte_len as u32,
                        max_timestamp,
                    }
                },
            )
            .collect())
    }

    /// At most `limit` batches that start before `before`, the newest of them, in offset
    /// order: for reading a partition backwards (the message browser's older pages).
    pub async fn batches_before(
        &self,
        topic_id: i64,
        partition: i32,
        before: i64,
        limit: i64,
    ) -> Result<Vec<BatchLocation>, StoreError> {
        let mut rows: Vec<BatchRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT b.base_offset, b.last_offset, f.object_key, b.byte_offset, \
                        b.byte_len, b.max_timestamp, f.size_bytes \
                 FROM batches b JOIN segment_files f ON f.id = b.file_id \
                 WHERE b.topic_id = $1 AND b.partition = $2 AND b.base_offset < $3 \
                 ORDER BY b.base_offset DESC LIMIT $4",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.reverse();
        let mut keys: HashMap<String, Arc<str>> = HashMap::new();
        Ok(rows
            .into_iter()
            .map(
                |(base_offset, last_offset, key, byte_offset, byte_len, max_timestamp, size)| {
                    let object_key = keys
                        .entry(key)
                        .or_insert_with_key(|k| Arc::from(k.as_str()))
                        .clone();
                    BatchLocation {
                        base_offset,
                        last_offset,
                        object_key,
                        object_size: size as u64,
                        byte_offset: byte_offset as u64,
                        byte_len: byte_len as u32,
                        max_timestamp,
                    }
                },
            )
            .collect())
    }

    /// The first batch whose max timestamp is at or after `timestamp`: (base offset, max
    /// timestamp). Exact to the batch, as Kafka's own index is.
    pub async fn offset_for_timestamp(
        &self,
        topic_id: i64,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT base_offset, max_timestamp FROM batches \
                 WHERE topic_id = $1 AND partition = $2 AND max_timestamp >= $3 \
                 ORDER BY base_offset LIMIT 1",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .bind(timestamp)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The batch holding the largest timestamp: (base offset, max timestamp).
    pub async fn max_timestamp_offset(
        &self,
        topic_id: i64,
        partition: i32,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT base_offset, max_timestamp FROM batches \
                 WHERE topic_id = $1 AND partition = $2 \
                 ORDER BY max_timestamp DESC, base_offset ASC LIMIT 1",
            )
            .bind(topic_id)
            .bind(partition as i64)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Allocates a producer id (or bumps the epoch of a transactional id / of a producer
    /// that asks to keep its id), returning (id, epoch).
    pub async fn init_producer_id(
        &self,
        cluster: &str,
        transactional_id: Option<&str>,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16), StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, lock, _db| {
            let mut tx = pool.begin().await?;
            let existing: Option<(i64, i64)> = match (transactional_id, current) {
                (Some(tid), _) => {
                    sqlx::query_as(&format!(
                        "SELECT id, epoch FROM producer_ids WHERE cluster = $1 AND transactional_id = $2{lock}"
                    ))
                    .bind(cluster)
                    .bind(tid)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                (None, Some((pid, _))) => {
                    sqlx::query_as(&format!(
                        "SELECT id, epoch FROM producer_ids WHERE id = $1 AND cluster = $2{lock}"
                    ))
                    .bind(pid)
                    .bind(cluster)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                (None, None) => None,
            };
            let result = match existing {
                Some((id, epoch)) if epoch < i16::MAX as i64 - 1 => {
                    sqlx::query(
                        "UPDATE producer_ids SET epoch = $1, updated_at_ms = $2 WHERE id = $3",
                    )
                    .bind(epoch + 1)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    (id, (epoch + 1) as i16)
                }
                other => {
                    if other.is_some() {
                        // The epoch is exhausted: retire the old id and hand out a new one.
                        sqlx::query("UPDATE producer_ids SET transactional_id = NULL WHERE cluster = $1 AND transactional_id = $2")
                            .bind(cluster)
                            .bind(transactional_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO producer_ids (cluster, transactional_id, epoch, updated_at_ms) \
                         VALUES ($1, $2, 0, $3) RETURNING id",
                    )
                    .bind(cluster)
                    .bind(transactional_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    (id, 0)
                }
            };
            tx.commit().await?;
            Ok(result)
        })
    }
}

fn topic_from_row(r: TopicRow, configs: BTreeMap<String, String>) -> TopicMeta {
    TopicMeta {
        id: r.0,
        cluster: r.1,
        name: r.2,
        uuid: Uuid::parse_str(&r.3).unwrap_or_default(),
        partitions: r.4 as i32,
        configs,
        created_at_ms: r.5,
    }
}
