//! The lag job: every interval, computes offset lag and time lag for every group and
//! partition with committed offsets, publishes them (metrics and [`LagBoard`]), records a
//! one-minute history for charts, and now and then folds old timestamp-index rows.
//!
//! Runs on agents with the `jobs` role (today: every agent). Each pass is independent, so
//! a failed pass is logged and the next one starts from scratch. After a pass the lag
//! alert rules are stepped ([`super::alerts::evaluate`]); their webhooks go out from a
//! background [`super::alerts::Notifier`] owned by this job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::index::{self, minute_of, MINUTE_MS};
use super::{compute, PartitionLag};
pub use super::{GroupLag, LagBoard};
use crate::clock::now_ms;
use crate::state::Broker;
use crate::store::{GroupPosition, StoreError};

/// History kept for charts (a little over a day at one-minute resolution).
pub const HISTORY_MS: i64 = 25 * 60 * MINUTE_MS;
/// Merge and prune once every this many passes.
const MAINTENANCE_EVERY: u64 = 20;

/// Time lags the index puts under this many seconds are refined from the batch row, one
/// indexed lookup per lagging partition (index-based dating is off by up to a minute).
const PRECISE_BELOW_SECONDS: f64 = 180.0;

/// Runs the lag job until `cancel` fires.
pub async fn run(broker: Arc<Broker>, interval: Duration, cancel: CancellationToken) {
    let mut passes: u64 = 0;
    // Lag alert webhooks are delivered in the background, never by the pass itself.
    let notifier = super::alerts::Notifier::start();
    // The first pass waits one interval too: nothing has lag at start-up. Once per
    // cluster: only the holder of the lease computes (and exports) lag.
    while broker.membership.next_pass("lag", interval, &cancel).await {
        passes += 1;
        let now = now_ms();
        if let Err(e) = run_once(&broker, now).await {
            tracing::warn!(error = %e, "lag pass failed; retrying next interval");
            continue;
        }
        // The board now holds this pass's lag: step the alert rules on it.
        if let Err(e) = super::alerts::evaluate(&broker, now, &notifier).await {
            tracing::warn!(error = %e, "lag alert evaluation failed; retrying next pass");
        }
        if passes % MAINTENANCE_EVERY == 1 {
            if let Err(e) = maintain(&broker, now).await {
                tracing::warn!(error = %e, "timestamp index maintenance failed");
            }
        }
    }
    notifier.shutdown().await;
}

/// Computes, publishes and records every group's lag at `now`.
pub async fn run_once(broker: &Broker, now: i64) -> Result<(), StoreError> {
    let positions = broker.meta.group_positions().await?;
    let groups = lags(broker, positions, now).await?;
    broker.metrics.publish_lag(&groups);
    let minute = minute_of(now);
    for ((cluster, group), lag) in &groups {
        broker
            .meta
            .record_lag(
                cluster,
                group,
                minute,
                (lag.max_time_lag_seconds * 1000.0) as i64,
                lag.total_offset_lag,
            )
            .await?;
    }
    broker.lag.replace(groups.into_iter().collect());
    Ok(())
}

/// One group's lag computed now, for an agent that does not run the lag job (the console
/// on any agent shows current lag; only the lease holder publishes and records it).
pub async fn group_lag_now(
    broker: &Broker,
    cluster: &str,
    group: &str,
    now: i64,
) -> Result<Option<GroupLag>, StoreError> {
    let positions = broker.meta.group_positions_of(cluster, group).await?;
    let mut groups = lags(broker, positions, now).await?;
    Ok(groups.remove(&(cluster.to_string(), group.to_string())))
}

/// The lag of every group that has a position in `positions` (ordered by group).
async fn lags(
    broker: &Broker,
    positions: Vec<GroupPosition>,
    now: i64,
) -> Result<BTreeMap<(String, String), GroupLag>, StoreError> {
    let mut groups: BTreeMap<(String, String), GroupLag> = BTreeMap::new();
    for p in positions {
        let rows = broker
            .meta
            .index_rows_from(p.topic_id, p.partition, p.committed_offset.max(0))
            .await?;
        let (offset_lag, mut time_lag) = compute(now, p.committed_offset, p.log_end_offset, &rows);
        // The index dates offsets to within their minute, which is coarse for a lag of
        // seconds: then the commit time of the batch itself gives the exact answer.
        if offset_lag > 0 && time_lag < PRECISE_BELOW_SECONDS {
            if let Some(at) = broker
                .meta
                .batch_commit_time(p.topic_id, p.partition, p.committed_offset.max(0))
                .await?
            {
                time_lag = (now - at).max(0) as f64 / 1000.0;
            }
        }
        let g = groups
            .entry((p.cluster.clone(), p.group_id.clone()))
            .or_insert_with(|| GroupLag {
                computed_at_ms: now,
                max_time_lag_seconds: 0.0,
                total_offset_lag: 0,
                partitions: Vec::new(),
            });
        g.max_time_lag_seconds = g.max_time_lag_seconds.max(time_lag);
        g.total_offset_lag += offset_lag;
        g.partitions.push(PartitionLag {
            topic: p.topic,
            partition: p.partition,
            committed_offset: p.committed_offset,
            log_end_offset: p.log_end_offset,
            offset_lag,
            time_lag_seconds: time_lag,
        });
    }
    Ok(groups)
}

/// Folds old index rows and prunes old history.
pub async fn maintain(broker: &Broker, now: i64) -> Result<(), StoreError> {
    let pruned = broker.meta.prune_lag_history(now - HISTORY_MS).await?;
    let mut folded = 0;
    for (topic_id, partition) in broker
        .meta
        .partitions_with_old_index_rows(now - 60 * MINUTE_MS)
        .await?
    {
        let rows = broker.meta.index_rows(topic_id, partition).await?;
        if let Some(merged) = index::merge(&rows, now) {
            // Only rows that changed are rewritten.
            let old: Vec<_> = rows
                .iter()
                .filter(|r| !merged.contains(r))
                .copied()
                .collect();
            let new: Vec<_> = merged
                .iter()
                .filter(|r| !rows.contains(r))
                .copied()
                .collect();
            broker
                .meta
                .replace_index_rows(topic_id, partition, &old, &new)
                .await?;
            folded += old.len();
        }
    }
    tracing::debug!(pruned, folded, "lag maintenance done");
    Ok(())
}
