//! Memory budget: how much the agent may use, and how it is split between the caches and
//! the backpressure gates.

/// Memory available to this process: the cgroup limit when one is set, else physical
/// memory. None when neither can be read.
pub fn detect_available_memory() -> Option<u64> {
    let cgroup_v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let cgroup_v1 = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    let from_cgroup = cgroup_v2
        .iter()
        .chain(cgroup_v1.iter())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        // v1 reports "no limit" as a huge number.
        .find(|v| *v < (1 << 60));
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    match (from_cgroup, physical) {
        (Some(c), Some(p)) => Some(c.min(p)),
        (c, p) => c.or(p),
    }
}

/// Budget used when `--memory-limit` is not given and memory is plentiful.
pub const DEFAULT_MEMORY_CAP: u64 = 512 << 20;

/// The default budget when `--memory-limit` is not given: half of what is available, at
/// most [`DEFAULT_MEMORY_CAP`] (the design's default footprint; large deployments raise it
/// with `--memory-limit`).
pub fn default_memory_limit() -> u64 {
    detect_available_memory()
        .map(|m| m / 2)
        .unwrap_or(DEFAULT_MEMORY_CAP)
        .min(DEFAULT_MEMORY_CAP)
}

/// How a memory budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Produce request bytes read and not yet answered (they are also copied into a
    /// segment buffer until the commit, so this share counts twice).
    pub produce_inflight: u64,
    /// Fetch response bytes built and not yet sent.
    pub fetch_inflight: u64,
    pub read_cache: u64,
    /// Other requests (everything but produce) read and not yet answered, counted at
    /// [`crate::server::DECODE_FACTOR`] times their frame size.
    pub request_inflight: u64,
}

impl Budget {
    /// Splits a memory limit: 20% produce (×2 with its segment copy), 15% fetch, 15% read
    /// cache, 5% other requests; the remaining ~25% covers the runtime, connections and
    /// metadata.
    pub fn from_limit(limit: u64) -> Budget {
        Budget {
            produce_inflight: limit / 5,
            fetch_inflight: limit * 3 / 20,
            read_cache: limit * 3 / 20,
            request_inflight: limit / 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_split_stays_inside_the_limit() {
        let b = Budget::from_limit(512 << 20);
        assert!(
            2 * b.produce_inflight + b.fetch_inflight + b.read_cache + b.request_inflight
                < 512 << 20
        );
        assert_eq!(b.read_cache, (512u64 << 20) * 3 / 20);
    }

    #[test]
    fn detects_some_memory_here() {
        let m = detect_available_memory().expect("linux exposes /proc/meminfo");
        assert!(m > 64 << 20);
        assert!(default_memory_limit() <= m);
    }
}
