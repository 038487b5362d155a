//! Offset lag and time lag of consumer groups (DESIGN.md section 6).
//!
//! Time lag = now − (when the first unconsumed record was produced), dated from Sluice's own
//! timestamp index ([`index`]). It keeps growing while a consumer is stuck, even after
//! producers stop, and is 0 when the group has consumed everything. [`compute`] is pure;
//! [`job`] runs it periodically, keeps a bounded history and feeds `/metrics`; after each
//! pass it evaluates the lag alert rules of [`alerts`] (webhooks on firing and resolving).

pub mod alerts;
pub mod index;
pub mod job;
mod webhook;

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;

use index::{estimate_produce_time, IndexRow};

/// Lag of one group on one partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub offset_lag: i64,
    pub time_lag_seconds: f64,
}

/// Lag of one partition at `now_ms`, given the committed offset, the log end offset and the
/// partition's index rows.
pub fn compute(now_ms: i64, committed: i64, log_end: i64, rows: &[IndexRow]) -> (i64, f64) {
    // A committed offset below 0 (stored before commits were checked) counts as 0.
    let offset_lag = log_end.saturating_sub(committed.max(0)).max(0);
    if offset_lag == 0 {
        return (0, 0.0);
    }
    let time_lag_ms = match estimate_produce_time(rows, committed.max(0)) {
        Some(produced) => (now_ms - produced).max(0),
        // Records exist but the index has no row for them (written before the index
        // existed): report no time lag rather than a made-up one.
        None => 0,
    };
    (offset_lag, time_lag_ms as f64 / 1000.0)
}

/// A group's lag at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLag {
    pub computed_at_ms: i64,
    pub max_time_lag_seconds: f64,
    pub total_offset_lag: i64,
    pub partitions: Vec<PartitionLag>,
}

/// The latest lag of every group, as the last pass computed it.
#[derive(Default)]
pub struct LagBoard {
    groups: RwLock<HashMap<(String, String), GroupLag>>,
}

impl LagBoard {
    pub fn get(&self, cluster: &str, group: &str) -> Option<GroupLag> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(cluster.to_string(), group.to_string()))
            .cloned()
    }

    /// A group's max time lag as the last pass computed it (without copying its
    /// partitions).
    pub fn max_time_lag(&self, cluster: &str, group: &str) -> Option<f64> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(cluster.to_string(), group.to_string()))
            .map(|g| g.max_time_lag_seconds)
    }

    pub(crate) fn replace(&self, all: HashMap<(String, String), GroupLag>) {
        *self.groups.write().unwrap_or_else(|p| p.into_inner()) = all;
    }
}

#[cfg(test)]
mod tests {
    use super::index::MINUTE_MS;
    use super::*;

    const T0: i64 = 1_700_000_040_000;

    fn rows() -> Vec<IndexRow> {
        (0..10)
            .map(|m| IndexRow {
                minute_start: T0 + m * MINUTE_MS,
                base_offset: m * 100,
                offset_count: 100,
                minute_count: 1,
            })
            .collect()
    }

    #[test]
    fn caught_up_consumer_reads_zero() {
        assert_eq!(compute(T0 + 3_600_000, 1000, 1000, &rows()), (0, 0.0));
    }

    #[test]
    fn stuck_consumer_keeps_growing_after_producers_stop() {
        let r = rows();
        // Producers stopped at minute 10; the consumer is stuck at offset 250 (minute 2.5).
        let (lag1, t1) = compute(T0 + 11 * MINUTE_MS, 250, 1000, &r);
        let (lag2, t2) = compute(T0 + 20 * MINUTE_MS, 250, 1000, &r);
        assert_eq!((lag1, lag2), (750, 750), "offset lag stays flat");
        assert_eq!(t1, (11.0 - 2.5) * 60.0);
        assert_eq!(t2, (20.0 - 2.5) * 60.0, "time lag grows with the clock");
    }
}
