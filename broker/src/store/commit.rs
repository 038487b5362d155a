//! The produce commit: one transaction per flush assigns offsets to every batch of the
//! flushed segments, checks idempotent sequences and records the files, with one statement
//! per table whatever the partition and producer count. With SQLite the reads go to the
//! database thread as one query and the writes as another (four round trips with BEGIN and
//! COMMIT, instead of one per statement: each is a thread hand-off, and on a busy machine
//! those cost more than the statements).

use std::collections::HashMap;

use sqlx::{Database, QueryBuilder, Row};

use super::plan::{self, AppendGroup, GroupOutcome, PartitionHead, ProducerEntry};
use super::sql::{Db, Metadata, SegmentCommit, StoreError};
use crate::clock::now_ms;

type Sqlite = sqlx::Sqlite;
type Postgres = sqlx::Postgres;

impl Metadata {
    /// Commits one flushed segment file: assigns offsets to every append group in order,
    /// checks idempotent sequences, and records the file and its batch rows, all in one
    /// transaction. Returns one outcome per group, in the groups' order.
    pub async fn commit_segment(
        &self,
        object_key: &str,
        size_bytes: u64,
        agent_id: &str,
        groups: &[AppendGroup],
    ) -> Result<Vec<GroupOutcome>, StoreError> {
        let mut out = self
            .commit_segments(
                agent_id,
                &[SegmentCommit {
                    object_key,
                    size_bytes,
                    groups,
                }],
            )
            .await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Commits several flushed segment files, in order, in one transaction (group commit:
    /// one durable write for all the segments that finished uploading meanwhile). Returns
    /// the outcomes of each segment's groups.
    pub async fn commit_segments(
        &self,
        agent_id: &str,
        segments: &[SegmentCommit<'_>],
    ) -> Result<Vec<Vec<GroupOutcome>>, StoreError> {
        let now = now_ms();
        // All groups in segment order; each remembers which file it lives in.
        let groups: Vec<AppendGroup> = segments
            .iter()
            .flat_map(|s| s.groups.iter().cloned())
            .collect();
        let group_segment: Vec<usize> = segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| std::iter::repeat_n(i, s.groups.len()))
            .collect();
        let groups = &groups[..];
        let mut partitions: Vec<(i64, i32)> =
            groups.iter().map(|g| (g.topic_id, g.partition)).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let mut producer_keys: Vec<(i64, i32, i64)> = groups
            .iter()
            .flat_map(|g| {
                g.batches
                    .iter()
                    .filter(|b| b.producer_id >= 0 && b.base_sequence >= 0)
                    .map(move |b| (g.topic_id, g.partition, b.producer_id))
            })
            .collect();
        producer_keys.sort_unstable();
        producer_keys.dedup();
        let mut txn_pids: Vec<i64> = groups
            .iter()
            .filter_map(|g| plan::txn_producer(g).map(|(pid, _)| pid))
            .collect();
        txn_pids.sort_unstable();
        txn_pids.dedup();

        macro_rules! commit_body {
            ($tx:ident, $lock:ident, $db:ident, $one_query:expr) => {{
                // Reads: the file rows (their ids), the partition heads and the producers'
                // states, told apart by their column counts.
                let mut reads = Script::<$db>::new($one_query);
                reads
                    .statement(
                        "INSERT INTO segment_files (object_key, size_bytes, agent_id, created_at_ms) ",
                    )
                    .push_values(segments, |mut row, seg| {
                        row.push_bind(seg.object_key)
                            .push_bind(seg.size_bytes as i64)
                            .push_bind(agent_id)
                            .push_bind(now);
                    })
                    .push(" RETURNING id, object_key");
                for chunk in partitions.chunks(500) {
                    reads
                        .statement(
                            "SELECT topic_id, partition, next_offset, log_start_offset FROM partitions \
                             WHERE (topic_id, partition) IN (",
                        )
                        .push_values(chunk, |mut row, &(topic_id, partition)| {
                            row.push_bind(topic_id).push_bind(partition as i64);
                        })
                        // Locked in key order, so agents committing the same partitions
                        // never deadlock (Postgres locks the rows after sorting them).
                        .push(") ORDER BY topic_id, partition")
                        .push($lock);
                }
                for chunk in producer_keys.chunks(500) {
                    reads
                        .statement(
                            "SELECT topic_id, partition, producer_id, epoch, last_sequence, recent \
                             FROM producer_state WHERE (topic_id, partition, producer_id) IN (",
                        )
                        .push_values(chunk, |mut row, &(topic_id, partition, producer_id)| {
                            row.push_bind(topic_id)
                                .push_bind(partition as i64)
                                .push_bind(producer_id);
                        })
                        .push(")");
                }
                let mut ids = HashMap::new();
                let mut heads = HashMap::new();
                let mut producers = HashMap::new();
                for mut qb in reads.into_queries() {
                    for row in qb.build().fetch_all(&mut *$tx).await? {
                        match row.len() {
                            2 => {
                                ids.insert(row.try_get::<String, _>(1)?, row.try_get::<i64, _>(0)?);
                            }
                            4 => {
                                heads.insert(
                                    (row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)? as i32),
                                    PartitionHead {
                                        next_offset: row.try_get(2)?,
                                        log_start_offset: row.try_get(3)?,
                                    },
                                );
                            }
                            _ => {
                                producers.insert(
                                    (
                                        row.try_get::<i64, _>(0)?,
                                        row.try_get::<i64, _>(1)? as i32,
                                        row.try_get::<i64, _>(2)?,
                                    ),
                                    ProducerEntry {
                                        epoch: row.try_get::<i64, _>(3)? as i16,
                                        last_sequence: row.try_get::<i64, _>(4)? as i32,
                                        recent: ProducerEntry::decode_recent(
                                            &row.try_get::<String, _>(5)?,
                                        ),
                                    },
                                );
                            }
                        }
                    }
                }
                let file_ids = segments
                    .iter()
                    .map(|seg| {
                        ids.get(seg.object_key).copied().ok_or_else(|| {
                            StoreError::Database(sqlx::Error::Protocol(format!(
                                "segment file {} was not inserted",
                                seg.object_key
                            )))
                        })
                    })
                    .collect::<Result<Vec<i64>, StoreError>>()?;
                // Transactional batches: their producers' transactions, read after the
                // partition locks, so a transaction that ended meanwhile is seen ended
                // (its zombie batch is refused, never placed after the marker).
                let mut refused = Vec::new();
                if !txn_pids.is_empty() {
                    let mut txns = HashMap::new();
                    let mut enrolled = std::collections::HashSet::new();
                    for chunk in txn_pids.chunks(500) {
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT id, epoch, txn_state FROM producer_ids WHERE id IN (",
                        );
                        let mut list = qb.separated(", ");
                        for pid in chunk {
                            list.push_bind(*pid);
                        }
                        qb.push(")");
                        for row in qb.build().fetch_all(&mut *$tx).await? {
                            txns.insert(
                                row.try_get::<i64, _>(0)?,
                                (
                                    row.try_get::<i64, _>(1)? as i16,
                                    row.try_get::<String, _>(2)? == "Ongoing",
                                ),
                            );
                        }
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT producer_id, topic_id, partition FROM txn_partitions \
                             WHERE producer_id IN (",
                        );
                        let mut list = qb.separated(", ");
                        for pid in chunk {
                            list.push_bind(*pid);
                        }
                        qb.push(")");
                        for row in qb.build().fetch_all(&mut *$tx).await? {
                            enrolled.insert((
                                row.try_get::<i64, _>(0)?,
                                row.try_get::<i64, _>(1)?,
                                row.try_get::<i64, _>(2)? as i32,
                            ));
                        }
                    }
                    refused = plan::txn_refusals(groups, &txns, &enrolled);
                }
                let planned = plan::plan_checked(groups, heads, producers, &refused);
                // Writes: heads, batch rows, the timestamp index and the producers' states.
                let mut writes = Script::<$db>::new($one_query);
                let mut heads: Vec<_> = planned.heads.iter().collect();
                heads.sort_unstable_by_key(|(k, _)| **k);
                for chunk in heads.chunks(500) {
                    writes
                        .statement("WITH v (topic_id, partition, next_offset) AS (")
                        .push_values(chunk, |mut row, ((topic_id, partition), head)| {
                            row.push_bind(*topic_id)
                                .push_bind(*partition as i64)
                                .push_bind(head.next_offset);
                        })
                        .push(
                            ") UPDATE partitions SET next_offset = v.next_offset FROM v \
                             WHERE partitions.topic_id = v.topic_id AND partitions.partition = v.partition",
                        );
                }
                // Batch rows in bulk: 12 binds a row, well under either backend's limit.
                for chunk in planned.rows.chunks(500) {
                    writes
                        .statement(
                            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, file_id, \
                             byte_offset, byte_len, record_count, max_timestamp, producer_id, \
                             transactional, committed_at_ms) ",
                        )
                        .push_values(chunk, |mut row, r| {
                            row.push_bind(r.topic_id)
                                .push_bind(r.partition as i64)
                                .push_bind(r.base_offset)
                                .push_bind(r.base_offset + r.batch.offset_count - 1)
                                .push_bind(file_ids[group_segment[r.group]])
                                .push_bind(r.batch.byte_offset as i64)
                                .push_bind(r.batch.byte_len as i64)
                                .push_bind(r.batch.record_count)
                                .push_bind(r.batch.max_timestamp)
                                .push_bind(r.batch.producer_id)
                                .push_bind(r.batch.transactional as i64)
                                .push_bind(now);
                        });
                }
                // Timestamp index: this flush's offsets were committed in the current minute.
                let mut spans: HashMap<(i64, i32), (i64, i64)> = HashMap::new();
                for r in &planned.rows {
                    let e = spans.entry((r.topic_id, r.partition)).or_insert((r.base_offset, 0));
                    e.0 = e.0.min(r.base_offset);
                    e.1 += r.batch.offset_count;
                }
                let minute = crate::lag::index::minute_of(now);
                let spans: Vec<_> = spans.into_iter().collect();
                for chunk in spans.chunks(500) {
                    writes
                        .statement(
                            "INSERT INTO timestamp_index (topic_id, partition, minute_start, base_offset, \
                             offset_count, minute_count) ",
                        )
                        .push_values(chunk, |mut row, ((topic_id, partition), (base, count))| {
                            row.push_bind(*topic_id)
                                .push_bind(*partition as i64)
                                .push_bind(minute)
                                .push_bind(*base)
                                .push_bind(*count)
                                .push_bind(1i64);
                        })
                        .push(
                            " ON CONFLICT (topic_id, partition, minute_start) DO UPDATE SET \
                             offset_count = timestamp_index.offset_count + excluded.offset_count",
                        );
                }
                // A transaction's first offset in a partition holds its last stable offset.
                let mut firsts: HashMap<(i64, i64, i32), i64> = HashMap::new();
                for r in planned.rows.iter().filter(|r| r.batch.transactional) {
                    let first = firsts
                        .entry((r.batch.producer_id, r.topic_id, r.partition))
                        .or_insert(r.base_offset);
                    *first = (*first).min(r.base_offset);
                }
                let firsts: Vec<_> = firsts.into_iter().collect();
                for chunk in firsts.chunks(500) {
                    writes
                        .statement("WITH v (producer_id, topic_id, partition, first_offset) AS (")
                        .push_values(chunk, |mut row, ((pid, topic_id, partition), first)| {
                            row.push_bind(*pid)
                                .push_bind(*topic_id)
                                .push_bind(*partition as i64)
                                .push_bind(*first);
                        })
                        .push(
                            ") UPDATE txn_partitions SET first_offset = v.first_offset FROM v \
                             WHERE txn_partitions.producer_id = v.producer_id \
                             AND txn_partitions.topic_id = v.topic_id \
                             AND txn_partitions.partition = v.partition \
                             AND txn_partitions.first_offset IS NULL",
                        );
                }
                let producers: Vec<_> = planned.producers.iter().collect();
                for chunk in producers.chunks(500) {
                    writes
                        .statement(
                            "INSERT INTO producer_state (topic_id, partition, producer_id, epoch, \
                             last_sequence, recent, updated_at_ms) ",
                        )
                        .push_values(chunk, |mut row, ((topic_id, partition, producer_id), entry)| {
                            row.push_bind(*topic_id)
                                .push_bind(*partition as i64)
                                .push_bind(*producer_id)
                                .push_bind(entry.epoch as i64)
                                .push_bind(entry.last_sequence as i64)
                                .push_bind(entry.encode_recent())
                                .push_bind(now);
                        })
                        .push(
                            " ON CONFLICT (topic_id, partition, producer_id) DO UPDATE SET \
                             epoch = excluded.epoch, last_sequence = excluded.last_sequence, \
                             recent = excluded.recent, updated_at_ms = excluded.updated_at_ms",
                        );
                }
                for mut qb in writes.into_queries() {
                    qb.build().execute(&mut *$tx).await?;
                }
                planned.outcomes
            }};
        }

        let outcomes = match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = begin_write!(sqlite pool).await?;
                let lock = "";
                let outcomes = commit_body!(tx, lock, Sqlite, true);
                tx.commit().await?;
                outcomes
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let lock = " FOR UPDATE";
                let outcomes = commit_body!(tx, lock, Postgres, false);
                // Delivered to every listening agent when (and only if) this commits.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::COMMIT_CHANNEL)
                    .bind(agent_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                outcomes
            }
        };
        // Hand each segment its own groups' outcomes.
        let mut per_segment: Vec<Vec<GroupOutcome>> = segments
            .iter()
            .map(|s| Vec::with_capacity(s.groups.len()))
            .collect();
        for (outcome, seg) in outcomes.into_iter().zip(group_segment) {
            per_segment[seg].push(outcome);
        }
        Ok(per_segment)
    }
}

/// The statements of one phase of a commit: with `one_query` they are joined into one query
/// (SQLite runs them in order, binding the parameters of each in turn); otherwise each is its
/// own query (Postgres binds parameters one statement at a time).
struct Script<'a, DB: Database> {
    done: Vec<QueryBuilder<'a, DB>>,
    current: Option<QueryBuilder<'a, DB>>,
    one_query: bool,
}

impl<'a, DB: Database> Script<'a, DB> {
    fn new(one_query: bool) -> Self {
        Script {
            done: Vec::new(),
            current: None,
            one_query,
        }
    }

    /// Starts the next statement with `sql`; returns the builder to complete it with.
    fn statement(&mut self, sql: &str) -> &mut QueryBuilder<'a, DB> {
        match self.current.take() {
            Some(mut qb) if self.one_query => {
                qb.push("; ").push(sql);
                self.current = Some(qb);
            }
            previous => {
                self.done.extend(previous);
                self.current = Some(QueryBuilder::new(sql));
            }
        }
        self.current.as_mut().expect("just set")
    }

    /// The queries to run, in order.
    fn into_queries(mut self) -> Vec<QueryBuilder<'a, DB>> {
        self.done.extend(self.current.take());
        self.done
    }
}
