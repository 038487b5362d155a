//! Retention and garbage collection (the `jobs` role).
//!
//! * Retention: for every topic whose `cleanup.policy` includes `delete`, the log start
//!   moves past batches older than `retention.ms` (by their max timestamp, as Kafka judges
//!   segments) and past the oldest batches while the partition holds more than
//!   `retention.bytes`. Their batch rows go; reads below the new start get
//!   OFFSET_OUT_OF_RANGE, and ListOffsets earliest answers the new start.
//! * Garbage collection: a segment file that no batch row references any more (retention
//!   expired its batches, or compaction moved them to a merged object) is deleted from the
//!   bucket once it has been seen unreferenced on two passes in a row *and* for at least
//!   the grace period (`--segment-delete-grace`), so a fetch that resolved its rows just
//!   before can still read it whatever the interval; then its row is dropped. Objects that never got a row (a crash between upload and commit) are deleted
//!   once they are older than [`ORPHAN_GRACE_MS`].
//!
//! # Crash consistency
//! Object first, then row: a crash in between leaves a row without object, which the next
//! pass deletes again (a missing object counts as deleted).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::state::Broker;
use crate::topic_config;

/// An object with no metadata row is an orphan once it is this old.
pub const ORPHAN_GRACE_MS: i64 = 15 * 60 * 1000;

/// Unreferenced files seen by earlier passes, with the time each was first seen so.
/// `Collector::default()` has no grace: two passes suffice (tests run passes by hand).
#[derive(Default)]
pub struct Collector {
    candidates: HashMap<i64, i64>,
    grace_ms: i64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub batches_expired: u64,
    pub files_deleted: u64,
    pub orphans_deleted: u64,
}

fn parse(configs: &BTreeMap<String, String>, key: &str) -> i64 {
    topic_config::get(configs, key).parse().unwrap_or(-1)
}

/// Applies retention to every topic at `now`.
pub async fn enforce_retention(broker: &Broker, now: i64) -> anyhow::Result<u64> {
    let mut expired = 0;
    for (topic_id, partitions, configs) in broker.meta.all_topics_for_jobs().await? {
        let configs: BTreeMap<String, String> = configs.into_iter().collect();
        if !topic_config::get(&configs, "cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "delete")
        {
            continue;
        }
        let retention_ms = parse(&configs, "retention.ms");
        let retention_bytes = parse(&configs, "retention.bytes");
        if retention_ms < 0 && retention_bytes < 0 {
            continue;
        }
        for partition in 0..partitions {
            let Some(head) = broker.meta.partition_state(topic_id, partition).await? else {
                continue;
            };
            let mut start = head.log_start_offset;
            if retention_ms >= 0 {
                let kept = broker
                    .meta
                    .first_offset_at_or_after(topic_id, partition, now - retention_ms)
                    .await?;
                start = start.max(kept.unwrap_or(head.next_offset));
            }
            if retention_bytes >= 0 {
                if let Some(s) = broker
                    .meta
                    .start_for_size_limit(topic_id, partition, retention_bytes)
                    .await?
                {
                    start = start.max(s);
                }
            }
            if start > head.log_start_offset {
                expired += broker
                    .meta
                    .advance_log_start(topic_id, partition, start.min(head.next_offset))
                    .await?;
            }
        }
    }
    Ok(expired)
}

impl Collector {
    /// A collector that keeps unreferenced files for at least `grace`.
    pub fn with_grace(grace: Duration) -> Self {
        Collector {
            candidates: HashMap::new(),
            grace_ms: grace.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// Deletes segment files unreferenced on two passes and for the grace period, and old
    /// orphan objects.
    pub async fn collect(&mut self, broker: &Broker, now: i64) -> anyhow::Result<(u64, u64)> {
        // The grace is counted from when a pass first saw the file unreferenced, so any
        // age qualifies here.
        let unreferenced = broker.meta.unreferenced_files(i64::MAX).await?;
        let mut deleted = 0;
        let mut still = HashMap::new();
        for (id, key) in unreferenced {
            match self.candidates.get(&id) {
                Some(&seen) if now.saturating_sub(seen) >= self.grace_ms => {}
                Some(&seen) => {
                    still.insert(id, seen);
                    continue;
                }
                None => {
                    still.insert(id, now);
                    continue;
                }
            }
            broker.bucket.delete(&key).await?;
            broker.meta.delete_file_row(id).await?;
            deleted += 1;
        }
        self.candidates = still;

        let mut orphans = 0;
        let old: Vec<String> = broker
            .bucket
            .list("segments/")
            .await?
            .into_iter()
            .filter(|(_, modified)| now - modified > ORPHAN_GRACE_MS)
            .map(|(k, _)| k)
            .collect();
        let known = broker.meta.known_object_keys(&old).await?;
        for key in old.iter().filter(|k| !known.contains(*k)) {
            broker.bucket.delete(key).await?;
            orphans += 1;
        }
        Ok((deleted, orphans))
    }
}

/// One retention + collection pass.
pub async fn run_once(
    broker: &Broker,
    collector: &mut Collector,
    now: i64,
) -> anyhow::Result<PassReport> {
    let batches_expired = enforce_retention(broker, now).await?;
    let (files_deleted, orphans_deleted) = collector.collect(broker, now).await?;
    broker
        .metrics
        .retention_batches_deleted
        .inc_by(batches_expired);
    broker
        .metrics
        .segments_deleted
        .inc_by(files_deleted + orphans_deleted);
    Ok(PassReport {
        batches_expired,
        files_deleted,
        orphans_deleted,
    })
}

/// Runs retention and garbage collection until `cancel` fires.
pub async fn run(broker: Arc<Broker>, interval: Duration, cancel: CancellationToken) {
    let mut collector = Collector::with_grace(broker.config.segment_delete_grace);
    // Once per cluster: only the holder of the lease expires and collects.
    while broker
        .membership
        .next_pass("retention", interval, &cancel)
        .await
    {
        match run_once(&broker, &mut collector, now_ms()).await {
            Ok(r) if r != PassReport::default() => tracing::info!(
                batches_expired = r.batches_expired,
                files_deleted = r.files_deleted,
                orphans_deleted = r.orphans_deleted,
                "retention pass"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; retrying next interval")
            }
        }
    }
}
