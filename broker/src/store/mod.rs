//! The cluster metadata store: topics, partitions, segment files, batch rows, producers,
//! committed offsets, lag history and lag alert rules, the virtual clusters with their API
//! keys, and the agent registry and job leases. Nothing
//! here knows about console users: their accounts live in the console's own store.
//!
//! One API over two SQL backends (SQLite embedded, Postgres shared). Each query is written
//! once in portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`) and compiled for
//! both pools through the `with_pool!` dispatch.
//!
//! # Consistency
//! * A segment is committed by one transaction ([`Metadata::commit_segment`]): the file row,
//!   every batch row, the partition heads and the producer states change together or not
//!   at all. On Postgres the partition rows are locked (`FOR UPDATE`) in a fixed order, so
//!   agents committing to the same partitions serialise without deadlocks; SQLite takes
//!   its write lock up front (`BEGIN IMMEDIATE`).
//! * Offsets come only from `partitions.next_offset` inside that transaction, so they have
//!   no gaps and no duplicates whatever the number of agents.
//! * Compaction ([`Metadata::swap_compacted`]) only repoints batch rows to a merged file, in
//!   one transaction and only where each still points at its old file; offsets, lengths and
//!   timestamps never change.
//! * Key compaction ([`Metadata::swap_key_compacted`]) replaces rewritten batch rows in one
//!   transaction, only where each still points where the pass read it; the offsets of
//!   the records that stay never change (rows narrow to them, gaps appear).
//!
//! # Migrations
//! `migrations/sqlite` and `migrations/postgres`, versions below 1000. The console applies
//! its own migrations (versions from 1001) to the same or another database; sqlx keeps
//! both in one `_sqlx_migrations` table, so this migrator ignores versions it does not
//! know (also the retired `0005_console_accounts` of databases created before the split).

// The dispatch macros come first so that every submodule below can use them.
/// Runs `$body` once per backend with `$pool` bound to the concrete pool, `$lock` to the
/// row-lock suffix of that dialect and `$db` to its sqlx database type.
macro_rules! with_pool {
    ($self:expr, |$pool:ident, $lock:ident, $db:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite($pool) => {
                #[allow(unused, non_camel_case_types)]
                type $db = sqlx::Sqlite;
                #[allow(unused)]
                let $lock = "";
                $body
            }
            Db::Postgres($pool) => {
                #[allow(unused, non_camel_case_types)]
                type $db = sqlx::Postgres;
                #[allow(unused)]
                let $lock = " FOR UPDATE";
                $body
            }
        }
    };
}

/// Begins a write transaction: SQLite takes its write lock at once so two writers never
/// deadlock upgrading read locks.
/// Inserts partition rows `from..to` of a topic inside transaction `$tx`.
macro_rules! insert_partitions {
    ($tx:ident, $topic_id:expr, $from:expr, $to:expr) => {
        for p in $from..$to {
            sqlx::query("INSERT INTO partitions (topic_id, partition) VALUES ($1, $2)")
                .bind($topic_id)
                .bind(p as i64)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

macro_rules! begin_write {
    (sqlite $pool:ident) => {
        $pool.begin_with("BEGIN IMMEDIATE")
    };
}

/// Appends `$records` ((key, batch) pairs from [`crate::offsets_topic`]) of group `$group`
/// to the internal offsets topic of `$cluster` inside transaction `$tx` (`$lock` the
/// row-lock suffix), creating the topic on first use. An older record of the same key is
/// deleted, so the topic stays compacted.
macro_rules! append_offsets_topic {
    ($tx:ident, $lock:expr, $cluster:expr, $group:expr, $records:expr, $now:expr) => {{
        let records: Vec<(bytes::Bytes, bytes::Bytes)> = $records;
        if !records.is_empty() {
            use crate::offsets_topic::{NAME, PARTITIONS};
            let created = sqlx::query(
                "INSERT INTO topics (cluster, name, topic_uuid, partition_count, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster, name) DO NOTHING",
            )
            .bind($cluster)
            .bind(NAME)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(PARTITIONS as i64)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
                == 1;
            let (topic_id,): (i64,) =
                sqlx::query_as("SELECT id FROM topics WHERE cluster = $1 AND name = $2")
                    .bind($cluster)
                    .bind(NAME)
                    .fetch_one(&mut *$tx)
                    .await?;
            if created {
                insert_partitions!($tx, topic_id, 0, PARTITIONS);
                sqlx::query(
                    "INSERT INTO topic_configs (topic_id, key, value) VALUES ($1, 'cleanup.policy', 'compact')",
                )
                .bind(topic_id)
                .execute(&mut *$tx)
                .await?;
            }
            let partition = crate::offsets_topic::partition_for($group) as i64;
            let (mut next,): (i64,) = sqlx::query_as(&format!(
                "SELECT next_offset FROM partitions WHERE topic_id = $1 AND partition = $2{}",
                $lock
            ))
            .bind(topic_id)
            .bind(partition)
            .fetch_one(&mut *$tx)
            .await?;
            for (key, batch) in &records {
                sqlx::query(
                    "DELETE FROM inline_batches WHERE topic_id = $1 AND partition = $2 AND record_key = $3",
                )
                .bind(topic_id)
                .bind(partition)
                .bind(key.as_ref())
                .execute(&mut *$tx)
                .await?;
                sqlx::query(
                    "INSERT INTO inline_batches (topic_id, partition, base_offset, record_key, data, \
                     committed_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(topic_id)
                .bind(partition)
                .bind(next)
                .bind(key.as_ref())
                .bind(batch.as_ref())
                .bind($now)
                .execute(&mut *$tx)
                .await?;
                next += 1;
            }
            sqlx::query("UPDATE partitions SET next_offset = $1 WHERE topic_id = $2 AND partition = $3")
                .bind(next)
                .bind(topic_id)
                .bind(partition)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

mod acls;
mod agents;
mod alerts;
mod clusters;
mod commit;
mod compaction;
mod credentials;
mod holds;
mod inspect;
mod key_compaction;
mod lag;
mod offsets;
pub mod plan;
mod retention;
mod snapshots;
mod sql;
mod txn;
mod watch;

pub use acls::ClientQuota;
pub use agents::{AgentInfo, AgentLoad, NewAgent};
pub use clusters::VirtualCluster;
pub use compaction::{CompactedFile, CompactionCandidate, CompactionRow, MovedBatch, SwapDone};
pub use credentials::{ApiKeyInfo, Credential};
pub use holds::{GroupHold, HoldState};
pub use inspect::{GroupTopicLag, PartitionStats, TopicStats};
pub use key_compaction::{
    KeyCompactionRow, KeyCompactionState, KeyCompactionSwap, KeyCompactionTopic, ReplacedRow,
    RewrittenBatch,
};
pub use lag::GroupPosition;
pub use offsets::CommittedOffset;
pub use snapshots::{GroupSnapshot, PublishedGroup, SnapshotMember};
pub use sql::{
    open_postgres, open_sqlite, BatchLocation, Metadata, PartitionState, SegmentCommit, StoreError,
    TopicMeta,
};
pub use txn::{
    EndOutcome, EndTxn, InitTxn, MarkerFile, TxnInfo, TxnOffset, TxnPartition, TxnState,
};
pub use watch::{CommitListener, COMMIT_CHANNEL};
