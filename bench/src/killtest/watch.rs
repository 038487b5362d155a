//! What the clients report to the driver while they run: counters for the progress lines,
//! the consumers' progress per partition (to wait for them to catch up), and the first ack
//! and poll after the latest kill (for the recovery timings).
//!
//! Lock-free: the clients' callbacks only touch atomics. A "first after the kill" slot keeps
//! a wall-clock time in ms; a value older than the current kill counts as unset, so arming a
//! new kill needs no reset and a callback racing with it cannot leave a wrong value behind
//! (it writes a time before the kill, which is ignored and overwritten).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    /// Delivery reports with an error (definite or not).
    pub(crate) delivery_errors: AtomicU64,
    pub(crate) polled: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) rebalances: AtomicU64,
    /// History lines that could not be written: the check would be meaningless.
    pub(crate) history_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Watch {
    /// Wall-clock ms of the latest kill; 0 before the first.
    kill_ms: AtomicI64,
    producer_ack: Vec<AtomicI64>,
    partition_ack: Vec<AtomicI64>,
    poll: AtomicI64,
    /// First poll of a record created (producer timestamp) after the kill.
    fresh_poll: AtomicI64,
    partition_fresh_poll: Vec<AtomicI64>,
    /// Per partition: the highest next offset any consumer of the group polled.
    polled_next: Vec<AtomicI64>,
}

/// The first-after-kill times for one kill, `None` where nothing happened yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct Since {
    pub(crate) producer_ack: Vec<Option<i64>>,
    pub(crate) partition_ack: Vec<Option<i64>>,
    pub(crate) poll: Option<i64>,
    pub(crate) fresh_poll: Option<i64>,
    pub(crate) partition_fresh_poll: Vec<Option<i64>>,
}

impl Since {
    /// When every slot was set (the latest of them), or `None` while one is unset.
    pub(crate) fn all(slots: &[Option<i64>]) -> Option<i64> {
        slots
            .iter()
            .try_fold(i64::MIN, |acc, s| s.map(|v| acc.max(v)))
    }
}

fn slots(n: usize) -> Vec<AtomicI64> {
    (0..n).map(|_| AtomicI64::new(0)).collect()
}

/// Sets `slot` to `now` unless it already holds a time at or after `kill`.
fn first_since(slot: &AtomicI64, kill: i64, now: i64) {
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        (cur < kill).then_some(now)
    });
}

fn read_since(slot: &AtomicI64, kill: i64) -> Option<i64> {
    let v = slot.load(Ordering::Relaxed);
    (kill > 0 && v >= kill).then_some(v)
}

impl Watch {
    pub(crate) fn new(producers: usize, partitions: usize) -> Watch {
        Watch {
            kill_ms: AtomicI64::new(0),
            producer_ack: slots(producers),
            partition_ack: slots(partitions),
            poll: AtomicI64::new(0),
            fresh_poll: AtomicI64::new(0),
            partition_fresh_poll: slots(partitions),
            polled_next: slots(partitions),
        }
    }

    /// A kill happens at `kill_ms` (wall clock): from now on the slots time this one.
    pub(crate) fn arm(&self, kill_ms: i64) {
        self.kill_ms.store(kill_ms, Ordering::Relaxed);
    }

    fn kill(&self) -> i64 {
        self.kill_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn on_ack(&self, producer: usize, partition: i32, now_ms: i64) {
        let kill = self.kill();
        if kill == 0 || now_ms < kill {
            return;
        }
        if let Some(slot) = self.producer_ack.get(producer) {
            first_since(slot, kill, now_ms);
        }
        if let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partition_ack.get(p))
        {
            first_since(slot, kill, now_ms);
        }
    }

    /// A consumer polled `offset` of `partition`, a record the producer stamped `record_ms`.
    pub(crate) fn on_poll(&self, partition: i32, offset: i64, record_ms: i64, now_ms: i64) {
        let Some(p) = usize::try_from(partition).ok() else {
            return;
        };
        if let Some(slot) = self.polled_next.get(p) {
            slot.fetch_max(offset + 1, Ordering::Relaxed);
        }
        let kill = self.kill();
        if kill == 0 || now_ms < kill {
            return;
        }
        first_since(&self.poll, kill, now_ms);
        if record_ms >= kill {
            first_since(&self.fresh_poll, kill, now_ms);
            if let Some(slot) = self.partition_fresh_poll.get(p) {
                first_since(slot, kill, now_ms);
            }
        }
    }

    /// The highest next offset the group polled, per partition.
    pub(crate) fn polled_next(&self) -> Vec<i64> {
        self.polled_next
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect()
    }

    /// The first-after times of the kill at `kill_ms`.
    pub(crate) fn since(&self, kill_ms: i64) -> Since {
        let read = |v: &[AtomicI64]| v.iter().map(|s| read_since(s, kill_ms)).collect();
        Since {
            producer_ack: read(&self.producer_ack),
            partition_ack: read(&self.partition_ack),
            poll: read_since(&self.poll, kill_ms),
            fresh_poll: read_since(&self.fresh_poll, kill_ms),
            partition_fresh_poll: read(&self.partition_fresh_poll),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ack_and_poll_after_each_kill() {
        let w = Watch::new(2, 2);
        w.on_ack(0, 0, 50); // before any kill: ignored
        w.arm(100);
        w.on_ack(0, 1, 90); // stamped before the kill
        w.on_ack(0, 1, 120);
        w.on_ack(0, 1, 130);
        w.on_poll(1, 7, 95, 125); // a record from before the kill
        w.on_poll(0, 3, 140, 150);
        let s = w.since(100);
        assert_eq!(s.producer_ack, vec![Some(120), None]);
        assert_eq!(s.partition_ack, vec![None, Some(120)]);
        assert_eq!(s.poll, Some(125));
        assert_eq!(s.fresh_poll, Some(150));
        assert_eq!(s.partition_fresh_poll, vec![Some(150), None]);
        assert_eq!(Since::all(&s.producer_ack), None);
        assert_eq!(w.polled_next(), vec![4, 8]);

        // The next kill starts from scratch without a reset.
        w.arm(200);
        assert_eq!(w.since(200).poll, None);
        w.on_ack(1, 0, 210);
        w.on_ack(0, 0, 220);
        let s = w.since(200);
        assert_eq!(s.producer_ack, vec![Some(220), Some(210)]);
        assert_eq!(Since::all(&s.producer_ack), Some(220));
    }
}
