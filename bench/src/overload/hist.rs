//! Latency histograms with bounded memory: log-linear buckets over microseconds (32 linear
//! sub-buckets per power of two, so a reported percentile is within ~3% of the true value).
//! `AtomicHist` is filled concurrently by delivery callbacks and drained once per second
//! into a plain `Hist`, which can be merged and queried.

use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the number of linear sub-buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values are clamped to u32 microseconds (~71 minutes), so the highest bit is 31.
const BUCKETS: usize = (SUB + (32 - SUB_BITS as u64) * SUB) as usize;

fn bucket_of(us: u64) -> usize {
    let v = us.min(u64::from(u32::MAX));
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let top = v >> shift; // in SUB..2*SUB
    (SUB + u64::from(shift) * SUB + (top - SUB)) as usize
}

/// A representative value (the middle) of bucket `i`, in microseconds.
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let k = i - SUB;
    let shift = k / SUB;
    let top = SUB + k % SUB;
    let low = top << shift;
    let width = 1u64 << shift;
    low + width / 2
}

#[derive(Clone)]
pub(crate) struct Hist {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl Hist {
    #[cfg(test)]
    pub(crate) fn record(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    pub(crate) fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// Nearest-rank percentile in microseconds; `q` in 0..=1. `None` when empty.
    pub(crate) fn percentile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Never report more than the largest value seen.
                return Some(value_of(i).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// Percentile in milliseconds.
    pub(crate) fn ms(&self, q: f64) -> Option<f64> {
        self.percentile_us(q).map(|us| us as f64 / 1000.0)
    }

    pub(crate) fn max_ms(&self) -> Option<f64> {
        (self.total > 0).then_some(self.max_us as f64 / 1000.0)
    }
}

/// A histogram that many threads record into; `take` drains it.
pub(crate) struct AtomicHist {
    counts: Vec<AtomicU64>,
    max_us: AtomicU64,
}

impl Default for AtomicHist {
    fn default() -> Self {
        AtomicHist {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

impl AtomicHist {
    pub(crate) fn record(&self, us: u64) {
        self.counts[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Moves the counts into a `Hist` and resets them. A value recorded concurrently lands
    /// in this snapshot or the next one, never in neither.
    pub(crate) fn take(&self) -> Hist {
        let mut h = Hist::default();
        for (dst, src) in h.counts.iter_mut().zip(&self.counts) {
            let c = src.swap(0, Ordering::Relaxed);
            *dst = c;
            h.total += c;
        }
        h.max_us = self.max_us.swap(0, Ordering::Relaxed);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        let values: [u64; 11] = [0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 20, 1 << 32];
        for v in values.map(|v| v.min(u64::from(u32::MAX))) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket of {v} went backwards");
            assert!(b < BUCKETS);
            last = b;
            let rep = value_of(b) as f64;
            let err = (rep - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 0.04, "value {v}: bucket value {rep} is {err} off");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_and_merge() {
        let mut a = Hist::default();
        for us in 1..=1000 {
            a.record(us * 1000);
        }
        let p50 = a.percentile_us(0.5).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "p50 {p50}");
        let p99 = a.percentile_us(0.99).unwrap() as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.04, "p99 {p99}");
        let p100 = a.percentile_us(1.0).unwrap();
        assert!((960_000..=1_000_000).contains(&p100), "p100 {p100}");

        let at = AtomicHist::default();
        at.record(5);
        at.record(7);
        let b = at.take();
        assert_eq!(b.count(), 2);
        assert_eq!(at.take().count(), 0);
        a.merge(&b);
        assert_eq!(a.count(), 1002);
        assert_eq!(Hist::default().percentile_us(0.5), None);
    }
}
