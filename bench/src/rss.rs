//! Memory and CPU of a process, read from `/proc`: `VmRSS`/`VmHWM` sampled on a background
//! thread (overall peak and per-phase peak), and CPU time for utilisation per interval.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) struct RssStats {
    pid: u32,
    peak_rss_kb: AtomicU64,
    phase_peak_kb: AtomicU64,
    hwm_kb: AtomicU64,
    samples: AtomicU64,
}

impl RssStats {
    /// Reads /proc/PID/status once; false if the process is gone.
    pub(crate) fn sample(&self) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return false;
        };
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l[name.len()..].split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        if let Some(rss) = field("VmRSS:") {
            self.peak_rss_kb.fetch_max(rss, Ordering::Relaxed);
            self.phase_peak_kb.fetch_max(rss, Ordering::Relaxed);
            self.samples.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(hwm) = field("VmHWM:") {
            self.hwm_kb.fetch_max(hwm, Ordering::Relaxed);
        }
        true
    }

    /// Starts a phase; returns the current RSS in KiB.
    pub(crate) fn begin_phase(&self) -> Option<u64> {
        self.phase_peak_kb.store(0, Ordering::Relaxed);
        self.sample();
        Some(self.phase_peak_kb.load(Ordering::Relaxed)).filter(|&v| v > 0)
    }

    /// Ends a phase; returns the peak sampled RSS during it in KiB.
    pub(crate) fn end_phase(&self) -> Option<u64> {
        self.sample();
        Some(self.phase_peak_kb.load(Ordering::Relaxed)).filter(|&v| v > 0)
    }
}

pub(crate) struct RssSampler {
    pub(crate) stats: Arc<RssStats>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

pub(crate) struct RssReport {
    pub(crate) peak_rss_kb: u64,
    pub(crate) hwm_kb: u64,
    pub(crate) samples: u64,
}

impl RssSampler {
    /// Samples `pid` every `interval` on a background thread until `finish`.
    pub(crate) fn start(pid: u32, interval: Duration) -> RssSampler {
        let stats = Arc::new(RssStats {
            pid,
            peak_rss_kb: AtomicU64::new(0),
            phase_peak_kb: AtomicU64::new(0),
            hwm_kb: AtomicU64::new(0),
            samples: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stats = Arc::clone(&stats);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("rss-sampler".to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if !stats.sample() {
                            break;
                        }
                        // In short sleeps so `finish` returns quickly.
                        let next = Instant::now() + interval;
                        while !stop.load(Ordering::Relaxed) {
                            let now = Instant::now();
                            if now >= next {
                                break;
                            }
                            thread::sleep((next - now).min(Duration::from_millis(100)));
                        }
                    }
                })
                .ok()
        };
        RssSampler {
            stats,
            stop,
            handle,
        }
    }

    pub(crate) fn finish(mut self) -> RssReport {
        self.stats.sample();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        RssReport {
            peak_rss_kb: self.stats.peak_rss_kb.load(Ordering::Relaxed),
            hwm_kb: self.stats.hwm_kb.load(Ordering::Relaxed),
            samples: self.stats.samples.load(Ordering::Relaxed),
        }
    }
}

/// CPU time (user + system) of a process in clock ticks, from `/proc/<pid>/stat`; `pid` may
/// be `self`. Linux reports these in USER_HZ, which is 100 on every mainstream architecture.
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// Clock ticks per second of the values in `/proc/<pid>/stat` (USER_HZ).
pub(crate) const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may contain spaces, so fields are counted after the last ')': state is field 3,
/// utime field 14, stime field 15.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_stat_line() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 17 0 0 20 0 8 0 \
                    100 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line), Some(267));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_ticks("self").is_some());
    }
}
