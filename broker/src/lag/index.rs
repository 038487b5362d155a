//! The per-partition timestamp index, as pure functions (DESIGN.md section 6).
//!
//! Each row says which offsets were committed during a span of whole minutes:
//! `(minute_start, base_offset, offset_count, minute_count)`. The produce commit adds to the
//! row of the current minute (the broker's clock, never a client timestamp); the merge job
//! folds old rows into coarser ones so the index stays small for long retention while recent
//! minutes keep full precision. An offset is dated by interpolating linearly inside the row
//! that holds it.

pub const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRow {
    /// Start of the first minute, in ms since the epoch (a multiple of 60 000).
    pub minute_start: i64,
    pub base_offset: i64,
    pub offset_count: i64,
    /// How many minutes the row spans (1 for a fresh row).
    pub minute_count: i64,
}

impl IndexRow {
    pub fn end_offset(&self) -> i64 {
        self.base_offset + self.offset_count
    }

    pub fn end_ms(&self) -> i64 {
        self.minute_start + self.minute_count * MINUTE_MS
    }
}

/// The minute a commit at `now_ms` belongs to.
pub fn minute_of(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(MINUTE_MS)
}

/// Estimates when `offset` was produced, from rows sorted by `minute_start`.
///
/// Inside a row, offsets are assumed evenly spread over the row's minutes. An offset
/// before the first row (its rows were merged away or expired) is dated at the first row's
/// start; one at or past the end of the index has not been produced yet (`None`).
pub fn estimate_produce_time(rows: &[IndexRow], offset: i64) -> Option<i64> {
    let first = rows.first()?;
    if offset < first.base_offset {
        return Some(first.minute_start);
    }
    let row = rows.iter().rev().find(|r| r.base_offset <= offset)?;
    if offset >= row.end_offset() {
        return None;
    }
    let fraction = (offset - row.base_offset) as f64 / row.offset_count.max(1) as f64;
    Some(row.minute_start + (fraction * (row.minute_count * MINUTE_MS) as f64) as i64)
}

/// How coarse rows of a given age become: fresh rows stay per minute, rows older than an
/// hour are folded into 15-minute rows, rows older than a day into hourly rows.
pub fn bucket_for_age(age_ms: i64) -> i64 {
    if age_ms < 60 * MINUTE_MS {
        MINUTE_MS
    } else if age_ms < 24 * 60 * MINUTE_MS {
        15 * MINUTE_MS
    } else {
        60 * MINUTE_MS
    }
}

/// Folds rows (sorted by `minute_start`) into coarser rows according to their age.
/// Returns `None` when nothing would change.
pub fn merge(rows: &[IndexRow], now_ms: i64) -> Option<Vec<IndexRow>> {
    let mut out: Vec<IndexRow> = Vec::with_capacity(rows.len());
    for r in rows {
        let bucket = bucket_for_age(now_ms - r.end_ms());
        let key = r.minute_start - r.minute_start.rem_euclid(bucket);
        match out.last_mut() {
            Some(last)
                if bucket > MINUTE_MS
                    && last.minute_start - last.minute_start.rem_euclid(bucket) == key
                    && last.end_offset() == r.base_offset =>
            {
                last.offset_count += r.offset_count;
                last.minute_count = (r.end_ms() - last.minute_start) / MINUTE_MS;
            }
            _ => out.push(*r),
        }
    }
    (out.len() != rows.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_040_000; // a whole minute

    fn row(minute: i64, base: i64, count: i64) -> IndexRow {
        IndexRow {
            minute_start: T0 + minute * MINUTE_MS,
            base_offset: base,
            offset_count: count,
            minute_count: 1,
        }
    }

    #[test]
    fn interpolates_inside_the_row() {
        let rows = [row(0, 0, 600), row(2, 600, 60)];
        assert_eq!(estimate_produce_time(&rows, 0), Some(T0));
        assert_eq!(
            estimate_produce_time(&rows, 300),
            Some(T0 + 30_000),
            "half-way through minute 0"
        );
        assert_eq!(
            estimate_produce_time(&rows, 630),
            Some(T0 + 2 * MINUTE_MS + 30_000)
        );
        assert_eq!(estimate_produce_time(&rows, 660), None, "not produced yet");
        assert_eq!(estimate_produce_time(&[], 5), None);
        assert_eq!(minute_of(T0 + 59_999), T0);
    }

    /// Builds the index the way the produce commit does from a synthetic stream with a
    /// bursty rate, then compares estimates with the true commit time of every offset.
    #[test]
    fn estimation_error_on_a_synthetic_stream() {
        let mut rows: Vec<IndexRow> = Vec::new();
        let mut truth: Vec<i64> = Vec::new(); // commit time of each offset
        let mut state = 7u64;
        let mut t = T0;
        for _flush in 0..(30 * 240) {
            // one flush every 250 ms for 30 minutes; rate varies 0..200 records per flush
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let minute_phase = ((t - T0) / MINUTE_MS) % 3;
            let n = if minute_phase == 2 {
                0
            } else {
                (state >> 33) as i64 % 200
            };
            if n > 0 {
                let base = truth.len() as i64;
                truth.extend(std::iter::repeat_n(t, n as usize));
                let m = minute_of(t);
                match rows.last_mut() {
                    Some(r) if r.minute_start == m => r.offset_count += n,
                    _ => rows.push(IndexRow {
                        minute_start: m,
                        base_offset: base,
                        offset_count: n,
                        minute_count: 1,
                    }),
                }
            }
            t += 250;
        }
        let errors: Vec<i64> = (0..truth.len())
            .step_by(7)
            .map(|o| (estimate_produce_time(&rows, o as i64).unwrap() - truth[o]).abs())
            .collect();
        let max = *errors.iter().max().unwrap();
        let mean = errors.iter().sum::<i64>() as f64 / errors.len() as f64;
        eprintln!(
            "time-lag estimation error over {} offsets: mean {:.0} ms, max {} ms",
            errors.len(),
            mean,
            max
        );
        assert!(max < MINUTE_MS, "never off by more than the row's minute");
        assert!(mean < 2_000.0, "on average within a couple of seconds");
    }

    #[test]
    fn merge_keeps_recent_rows_exact_and_folds_old_ones() {
        // Two hours of one row per minute, 10 offsets each.
        let rows: Vec<IndexRow> = (0..120).map(|m| row(m, m * 10, 10)).collect();
        let now = T0 + 120 * MINUTE_MS;
        let merged = merge(&rows, now).expect("old rows fold");
        // The last hour stays per minute, exactly as written.
        let recent: Vec<&IndexRow> = merged
            .iter()
            .filter(|r| now - r.end_ms() < 60 * MINUTE_MS)
            .collect();
        assert!(recent.len() >= 59);
        for r in &recent {
            assert_eq!(r.minute_count, 1);
            assert!(rows.contains(r), "recent rows are untouched");
        }
        assert!(
            merged.len() < 70,
            "older rows were folded: {}",
            merged.len()
        );
        // Offsets are still all covered, in order, without gaps.
        let mut next = 0;
        for r in &merged {
            assert_eq!(r.base_offset, next);
            next = r.end_offset();
        }
        assert_eq!(next, 1200);
        // Estimates in merged rows stay within the merged span.
        let t = estimate_produce_time(&merged, 55).unwrap();
        assert!((T0..T0 + 15 * MINUTE_MS).contains(&t));
        assert_eq!(merge(&merged, now), None, "merging is idempotent");
    }
}
