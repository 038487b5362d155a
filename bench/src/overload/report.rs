//! The per-second table, the summary, and the pass/fail verdict of the overload benchmark.
//!
//! Definitions used in the summary:
//! * MB/s = acknowledged payload bytes / 1e6 / s (the key is not counted).
//! * peak = mean MB/s of the normal phase after `--warmup-secs`.
//! * overload throughput = mean MB/s of the overload phase after `--settle-secs`.
//! * latency = client accepted the record -> delivery report, per record; a second's
//!   percentiles are over the records acknowledged in that second.
//! * recovered = the first second after the drop from which `--recovery-stable-secs`
//!   seconds in a row have the normal producers' p99 under the threshold.

use super::hist::Hist;
use super::load::{FetchWindow, GroupWindow};
use super::scrape::Gauges;
use super::verify::VerifyReport;
use super::{OverloadArgs, Settings};
use crate::rss::RssReport;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Normal,
    Overload,
    Recovery,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Normal => "normal",
            Phase::Overload => "overload",
            Phase::Recovery => "recovery",
        }
    }
}

/// One second of the run.
pub(crate) struct Row {
    /// Seconds since the load started (end of this window).
    pub(crate) t: u64,
    pub(crate) phase: Phase,
    /// Actual length of the window.
    pub(crate) secs: f64,
    pub(crate) normal: GroupWindow,
    pub(crate) overload: GroupWindow,
    pub(crate) fetch: FetchWindow,
    /// Peak RSS sampled during the window, KiB.
    pub(crate) rss_kb: Option<u64>,
    /// CPU utilisation in percent of one core.
    pub(crate) server_cpu: Option<f64>,
    pub(crate) bench_cpu: Option<f64>,
    pub(crate) gauges: Option<Gauges>,
}

impl Row {
    fn acked(&self) -> u64 {
        self.normal.acked + self.overload.acked
    }

    fn acked_bytes(&self) -> u64 {
        self.normal.acked_bytes + self.overload.acked_bytes
    }

    fn mb_per_sec(&self) -> f64 {
        self.acked_bytes() as f64 / 1e6 / self.secs.max(1e-9)
    }

    fn all_hist(&self) -> Hist {
        let mut h = self.normal.hist.clone();
        h.merge(&self.overload.hist);
        h
    }
}

/// A throughput figure.
#[derive(Clone, Copy, Default)]
pub(crate) struct Rate {
    pub(crate) mb_per_sec: f64,
    pub(crate) records_per_sec: f64,
}

/// Sums over a set of rows.
#[derive(Default)]
struct Agg {
    n: usize,
    secs: f64,
    acked: u64,
    acked_bytes: u64,
    offered: u64,
    fetch_bytes: u64,
    all: Hist,
    normal: Hist,
    best_mb: Option<f64>,
    worst_mb: Option<f64>,
    worst_p99_ms: Option<f64>,
    rss_kb: Option<u64>,
}

impl Agg {
    fn of<'r>(rows: impl IntoIterator<Item = &'r Row>) -> Agg {
        let mut a = Agg::default();
        for r in rows {
            a.n += 1;
            a.secs += r.secs;
            a.acked += r.acked();
            a.acked_bytes += r.acked_bytes();
            a.offered += r.normal.offered + r.overload.offered;
            a.fetch_bytes += r.fetch.bytes;
            let h = r.all_hist();
            a.worst_p99_ms = max_opt(a.worst_p99_ms, h.ms(0.99));
            a.all.merge(&h);
            a.normal.merge(&r.normal.hist);
            let mb = r.mb_per_sec();
            a.best_mb = Some(a.best_mb.map_or(mb, |b| b.max(mb)));
            a.worst_mb = Some(a.worst_mb.map_or(mb, |w| w.min(mb)));
            a.rss_kb = a.rss_kb.max(r.rss_kb);
        }
        a
    }

    fn rate(&self) -> Rate {
        let secs = self.secs.max(1e-9);
        Rate {
            mb_per_sec: self.acked_bytes as f64 / 1e6 / secs,
            records_per_sec: self.acked as f64 / secs,
        }
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn opt_mib(v: Option<f64>) -> String {
    opt(v.map(|b| b / MIB), 1)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
    Info,
}

impl Status {
    fn tag(self) -> &'static str {
        match self {
            Status::Pass => "[PASS]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[SKIP]",
            Status::Info => "[INFO]",
        }
    }
}

fn pass_fail(ok: bool) -> Status {
    if ok {
        Status::Pass
    } else {
        Status::Fail
    }
}

/// Everything the summary needs; `mod.rs` fills it in as the run goes.
pub(crate) struct Report<'a> {
    args: &'a OverloadArgs,
    cfg: &'a Settings,
    topic: String,
    bootstrap: String,
    pub(crate) rows: Vec<Row>,
    /// Deliveries reported after the last row (while the load drained).
    pub(crate) tail: GroupWindow,
    pub(crate) fetch_tail: FetchWindow,
    pub(crate) group_errors: Vec<String>,
    pub(crate) bad_reports: u64,
    pub(crate) client_errors: u64,
    pub(crate) load_problems: Vec<String>,
    pub(crate) server_exit: Option<String>,
    pub(crate) verify: Option<VerifyReport>,
    pub(crate) double_acks: u64,
    pub(crate) double_ack_details: Vec<String>,
    pub(crate) rss: Option<RssReport>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(
        args: &'a OverloadArgs,
        cfg: &'a Settings,
        topic: &str,
        bootstrap: &str,
    ) -> Report<'a> {
        Report {
            args,
            cfg,
            topic: topic.to_string(),
            bootstrap: bootstrap.to_string(),
            rows: Vec::new(),
            tail: GroupWindow::default(),
            fetch_tail: FetchWindow::default(),
            group_errors: Vec::new(),
            bad_reports: 0,
            client_errors: 0,
            load_problems: Vec::new(),
            server_exit: None,
            verify: None,
            double_acks: 0,
            double_ack_details: Vec::new(),
            rss: None,
        }
    }

    pub(crate) fn print_header(&self) {
        println!(
            "per second: MB/s and rec/s acknowledged; p50/p99 over records acknowledged in that \
             second (all producers), nP99 = normal producers only; offer = load offered by the \
             clients; fetch = fetch storm; RSS = agent peak in the second; cpu% of one core; \
             gates in MiB (in flight) and requests waiting; pend = produce bytes not yet \
             committed; cache = read cache; conns = open connections; paus = accept paused"
        );
        println!(
            "{:>4} {:<8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>5} {:>5} {:>6} {:>6} {:>6} {:>5} {:>5} {:>6} {:>5} {:>4}",
            "t", "phase", "MB/s", "rec/s", "p50 ms", "p99 ms", "nP99 ms", "offer", "fetch",
            "RSS MiB", "srv%", "cli%", "gateP", "gateF", "pend", "waitP", "waitF", "cache",
            "conns", "paus"
        );
    }

    pub(crate) fn print_row(&self, r: &Row) {
        let h = r.all_hist();
        let g = r.gauges.clone().unwrap_or_default();
        let secs = r.secs.max(1e-9);
        let offered_mb = (r.normal.offered + r.overload.offered) as f64
            * self.args.record_bytes as f64
            / 1e6
            / secs;
        println!(
            "{:>4} {:<8} {:>7.1} {:>8.0} {:>8} {:>8} {:>8} {:>8.1} {:>7.1} {:>7} {:>5} {:>5} {:>6} {:>6} {:>6} {:>5} {:>5} {:>6} {:>5} {:>4}",
            r.t,
            r.phase.label(),
            r.mb_per_sec(),
            r.acked() as f64 / secs,
            opt(h.ms(0.50), 1),
            opt(h.ms(0.99), 1),
            opt(r.normal.hist.ms(0.99), 1),
            offered_mb,
            r.fetch.bytes as f64 / 1e6 / secs,
            opt(r.rss_kb.map(|kb| kb as f64 / 1024.0), 1),
            opt(r.server_cpu, 0),
            opt(r.bench_cpu, 0),
            opt_mib(g.gate_inflight_produce),
            opt_mib(g.gate_inflight_fetch.or(g.fetch_inflight_bytes)),
            opt_mib(g.produce_pending_bytes),
            opt(g.gate_waiting_produce, 0),
            opt(g.gate_waiting_fetch, 0),
            opt_mib(g.read_cache_bytes),
            opt(g.open_connections, 0),
            opt(g.accept_paused, 0),
        );
    }

    fn phase_rows(&self, phase: Phase) -> impl Iterator<Item = &Row> + '_ {
        self.rows.iter().filter(move |r| r.phase == phase)
    }

    /// Rows of the normal phase that count for the peak.
    fn peak_rows(&self) -> impl Iterator<Item = &Row> + '_ {
        let warmup = self.args.warmup_secs;
        self.phase_rows(Phase::Normal).filter(move |r| r.t > warmup)
    }

    /// Rows of the overload phase that count for its throughput.
    fn steady_overload_rows(&self) -> Vec<&Row> {
        let start = self.args.normal_secs;
        let rows: Vec<&Row> = self.phase_rows(Phase::Overload).collect();
        let steady: Vec<&Row> = rows
            .iter()
            .copied()
            .filter(|r| r.t > start + self.args.settle_secs)
            .collect();
        if steady.is_empty() {
            rows
        } else {
            steady
        }
    }

    pub(crate) fn peak(&self) -> Rate {
        Agg::of(self.peak_rows()).rate()
    }

    fn recovery_threshold_ms(&self, normal_p99_ms: Option<f64>) -> f64 {
        let floor = (self.cfg.batch_timeout.as_secs_f64() + 0.050) * 1000.0;
        normal_p99_ms.map_or(floor, |p| (2.0 * p).max(floor))
    }

    /// Seconds after the drop until the normal producers' p99 stays under `threshold_ms`.
    fn recovery_secs(&self, threshold_ms: f64) -> Option<u64> {
        let good: Vec<bool> = self
            .phase_rows(Phase::Recovery)
            .map(|r| {
                r.normal.acked > 0 && r.normal.hist.ms(0.99).is_some_and(|p| p <= threshold_ms)
            })
            .collect();
        let stable = self.args.recovery_stable_secs.max(1) as usize;
        (0..good.len())
            .find(|&j| good[j..(j + stable).min(good.len())].iter().all(|&g| g))
            .map(|j| j as u64 + 1)
    }

    /// Seconds after the drop until throughput is back at the target fraction of the peak.
    fn throughput_recovery_secs(&self, peak_mb: f64) -> Option<u64> {
        self.phase_rows(Phase::Recovery)
            .position(|r| r.mb_per_sec() >= self.args.throughput_target * peak_mb)
            .map(|j| j as u64 + 1)
    }

    fn max_gauge(&self, phase: Phase, pick: impl Fn(&Gauges) -> Option<f64>) -> Option<f64> {
        self.phase_rows(phase)
            .filter_map(|r| r.gauges.as_ref().and_then(&pick))
            .fold(None, |acc, v| max_opt(acc, Some(v)))
    }

    /// "name max: normal X, overload Y, recovery Z", or `None` if the gauge was never seen.
    fn gauge_line(
        &self,
        name: &str,
        pick: &dyn Fn(&Gauges) -> Option<f64>,
        mib: bool,
    ) -> Option<String> {
        let n = self.max_gauge(Phase::Normal, pick);
        let o = self.max_gauge(Phase::Overload, pick);
        let r = self.max_gauge(Phase::Recovery, pick);
        if n.is_none() && o.is_none() && r.is_none() {
            return None;
        }
        let f = |v: Option<f64>| if mib { opt_mib(v) } else { opt(v, 0) };
        Some(format!(
            "{name}{} max: normal {}, overload {}, recovery {}",
            if mib { " (MiB)" } else { "" },
            f(n),
            f(o),
            f(r)
        ))
    }

    /// Prints the summary and the verdict; true if every criterion passed.
    pub(crate) fn print_summary(&self) -> bool {
        let a = self.args;
        let rb = a.record_bytes as f64;
        println!();
        println!("=== sluice-bench overload summary ===");
        match &a.spawn {
            Some(path) => println!(
                "server: spawned {} at {}, bucket {}, batch-timeout {}, memory-limit {}",
                path.display(),
                self.bootstrap,
                a.bucket_url.as_deref().unwrap_or("(server default)"),
                a.batch_timeout,
                a.memory_limit
            ),
            None => println!("server: {} (external)", self.bootstrap),
        }
        println!(
            "topic {}: {} partitions, {}-byte records with 16-byte keys, acks=all; normal: {} \
             producers (unpaced, linger {} ms, queue {} MiB); overload: {} producers offering \
             {}x the peak (linger {} ms, burst {} records, queue {} MiB), {} fetchers \
             (fetch.max.bytes {}, max.partition.fetch.bytes {})",
            self.topic,
            a.partitions,
            a.record_bytes,
            a.normal_producers,
            a.normal_linger_ms,
            a.normal_queue_mib,
            a.overload_producers,
            a.overload_factor,
            a.overload_linger_ms,
            self.cfg.overload_burst,
            a.overload_queue_mib,
            a.fetchers,
            a.fetch_max_bytes,
            a.partition_fetch_bytes
        );
        println!();
        println!(
            "{:<9} {:>5} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9}",
            "phase",
            "secs",
            "MB/s",
            "best",
            "worst",
            "records/s",
            "p50 ms",
            "p99 ms",
            "worst p99",
            "offer",
            "fetch",
            "RSS MiB"
        );
        for phase in [Phase::Normal, Phase::Overload, Phase::Recovery] {
            let g = Agg::of(self.phase_rows(phase));
            if g.n == 0 {
                println!("{:<9} (not reached)", phase.label());
                continue;
            }
            let rate = g.rate();
            let secs = g.secs.max(1e-9);
            println!(
                "{:<9} {:>5} {:>8.1} {:>8} {:>8} {:>10.0} {:>8} {:>8} {:>10} {:>9.1} {:>9.1} {:>9}",
                phase.label(),
                g.n,
                rate.mb_per_sec,
                opt(g.best_mb, 1),
                opt(g.worst_mb, 1),
                rate.records_per_sec,
                opt(g.all.ms(0.50), 1),
                opt(g.all.ms(0.99), 1),
                opt(g.worst_p99_ms, 1),
                g.offered as f64 * rb / 1e6 / secs,
                g.fetch_bytes as f64 / 1e6 / secs,
                opt(g.rss_kb.map(|kb| kb as f64 / 1024.0), 1),
            );
        }
        println!();

        let mut criteria: Vec<(Status, String)> = Vec::new();

        // Peak and normal latency.
        let peak_agg = Agg::of(self.peak_rows());
        let peak = peak_agg.rate();
        let normal_p99 = peak_agg.normal.ms(0.99);
        println!(
            "peak (normal phase, seconds {}..{}): {:.1} MB/s, {:.0} records/s (best second {} MB/s); \
             normal p50 {} ms, p99 {} ms",
            a.warmup_secs + 1,
            a.normal_secs,
            peak.mb_per_sec,
            peak.records_per_sec,
            opt(peak_agg.best_mb, 1),
            opt(peak_agg.normal.ms(0.50), 1),
            opt(normal_p99, 1)
        );

        // Memory.
        let budget = self.cfg.budget_bytes;
        let allowance = self.cfg.allowance_bytes as f64;
        let load_peak_kb = self.rows.iter().filter_map(|r| r.rss_kb).max();
        match (&self.rss, budget) {
            (Some(r), b) => {
                let peak_kb = r.peak_rss_kb.max(r.hwm_kb);
                let peak_mib = peak_kb as f64 / 1024.0;
                println!(
                    "agent memory: peak RSS {:.1} MiB sampled every 100 ms ({} samples; during the load {} MiB), \
                     VmHWM {:.1} MiB; budget {}",
                    r.peak_rss_kb as f64 / 1024.0,
                    r.samples,
                    opt(load_peak_kb.map(|kb| kb as f64 / 1024.0), 1),
                    r.hwm_kb as f64 / 1024.0,
                    b.map_or_else(
                        || "none".to_string(),
                        |b| format!("{:.0} MiB + {:.0} MiB allowance", b as f64 / MIB, allowance / MIB)
                    )
                );
                match b {
                    Some(b) => {
                        let limit_mib = (b as f64 + allowance) / MIB;
                        criteria.push((
                            pass_fail(peak_mib <= limit_mib),
                            format!(
                                "memory: peak RSS {peak_mib:.1} MiB (max of samples and VmHWM) <= budget {:.0} MiB + {:.0} MiB allowance ({:.0}% of the budget)",
                                b as f64 / MIB,
                                allowance / MIB,
                                peak_mib / (b as f64 / MIB) * 100.0
                            ),
                        ));
                    }
                    None => criteria.push((
                        Status::Skip,
                        format!("memory: no budget given (--memory-limit none); peak RSS {peak_mib:.1} MiB"),
                    )),
                }
            }
            (None, _) => criteria.push((
                Status::Skip,
                "memory: agent RSS not sampled (external broker without --server-pid)".to_string(),
            )),
        }

        // Throughput under overload.
        let over_all = Agg::of(self.phase_rows(Phase::Overload));
        let over_steady_rows = self.steady_overload_rows();
        let steady_first = over_steady_rows.first().map_or(0, |r| r.t - a.normal_secs);
        let over_steady = Agg::of(over_steady_rows.iter().copied());
        if over_all.n > 0 && peak.mb_per_sec > 0.0 {
            let ratio = over_steady.rate().mb_per_sec / peak.mb_per_sec;
            let ratio_all = over_all.rate().mb_per_sec / peak.mb_per_sec;
            let worst = over_steady.worst_mb.unwrap_or(0.0) / peak.mb_per_sec;
            criteria.push((
                pass_fail(ratio >= a.throughput_target),
                format!(
                    "throughput: {:.1} MB/s during overload (seconds {}..{} of it) = {:.0}% of the peak {:.1} MB/s (>= {:.0}%); \
                     all overload seconds {:.0}%, worst second {:.0}%",
                    over_steady.rate().mb_per_sec,
                    steady_first,
                    a.overload_secs,
                    ratio * 100.0,
                    peak.mb_per_sec,
                    a.throughput_target * 100.0,
                    ratio_all * 100.0,
                    worst * 100.0
                ),
            ));
            let offered = over_all.offered as f64 * rb / 1e6 / over_all.secs.max(1e-9);
            let factor = offered / peak.mb_per_sec;
            criteria.push((
                pass_fail(factor >= 10.0),
                format!(
                    "offered load during overload: {offered:.1} MB/s = {factor:.1}x the peak (>= 10x)"
                ),
            ));
            criteria.push((
                Status::Info,
                format!(
                    "latency during overload: p50 {} ms, p99 {} ms (worst second {} ms, max {} ms); \
                     normal producers p99 {} ms",
                    opt(over_all.all.ms(0.50), 1),
                    opt(over_all.all.ms(0.99), 1),
                    opt(over_all.worst_p99_ms, 1),
                    opt(over_all.all.max_ms(), 1),
                    opt(over_all.normal.ms(0.99), 1)
                ),
            ));
        } else {
            criteria.push((
                Status::Fail,
                "throughput: the overload phase was not reached or there was no peak".to_string(),
            ));
        }

        // Recovery.
        let threshold = self.recovery_threshold_ms(normal_p99);
        let per_second: Vec<String> = self
            .phase_rows(Phase::Recovery)
            .map(|r| opt(r.normal.hist.ms(0.99), 0))
            .collect();
        match self.recovery_secs(threshold) {
            Some(s) => criteria.push((
                pass_fail(s as f64 <= a.recovery_target_secs),
                format!(
                    "recovery: normal producers' p99 under {threshold:.0} ms (max of 2 x normal p99, batch timeout + 50 ms) \
                     from second {s} after the load dropped (<= {} s; {} s in a row); per-second p99 ms: {}",
                    a.recovery_target_secs,
                    a.recovery_stable_secs,
                    per_second.join(" ")
                ),
            )),
            None => criteria.push((
                Status::Fail,
                format!(
                    "recovery: normal producers' p99 never stayed under {threshold:.0} ms after the load dropped; \
                     per-second p99 ms: {}",
                    per_second.join(" ")
                ),
            )),
        }
        if peak.mb_per_sec > 0.0 {
            let t = self.throughput_recovery_secs(peak.mb_per_sec);
            criteria.push((
                Status::Info,
                format!(
                    "throughput back at >= {:.0}% of the peak {}",
                    a.throughput_target * 100.0,
                    t.map_or_else(
                        || "never during the recovery phase".to_string(),
                        |t| format!("in second {t} after the drop")
                    )
                ),
            ));
        }

        // Durability.
        match &self.verify {
            Some(v) => {
                let ok = v.ok() && self.double_acks == 0 && self.bad_reports == 0;
                let mut text = format!(
                    "acknowledged records readable: {}/{} read back intact in {:.1} s ({} records read; \
                     {} mismatched, {} missing, {} unacknowledged records also present, {} offset gaps",
                    v.counts.verified,
                    v.acked,
                    v.elapsed.as_secs_f64(),
                    v.records_read,
                    v.counts.mismatched,
                    v.missing(),
                    v.counts.unacked_present,
                    v.counts.gaps
                );
                if self.double_acks > 0 {
                    text.push_str(&format!(
                        ", {} offsets acknowledged twice",
                        self.double_acks
                    ));
                }
                if self.bad_reports > 0 {
                    text.push_str(&format!(
                        ", {} delivery reports with a wrong key or partition",
                        self.bad_reports
                    ));
                }
                if v.timed_out {
                    text.push_str(&format!(", timed out after {} s", a.verify_timeout_secs));
                }
                if v.consumer_errors > 0 {
                    text.push_str(&format!(", {} consumer errors", v.consumer_errors));
                }
                text.push(')');
                criteria.push((pass_fail(ok), text));
                for d in v.counts.details.iter().chain(&self.double_ack_details) {
                    println!("  verify: {d}");
                }
            }
            None => criteria.push((
                Status::Fail,
                "acknowledged records readable: not checked (server gone or verify could not run)"
                    .to_string(),
            )),
        }

        // Health of the run itself.
        criteria.push(match &self.server_exit {
            None => (Status::Pass, "agent stayed up".to_string()),
            Some(s) => (Status::Fail, format!("agent exited during the run: {s}")),
        });
        if self.load_problems.is_empty() {
            criteria.push((
                Status::Pass,
                "load generators ran and drained as planned".to_string(),
            ));
        } else {
            criteria.push((
                Status::Fail,
                format!("load generators: {}", self.load_problems.join("; ")),
            ));
        }
        let mut all = GroupWindow::default();
        for r in &self.rows {
            all.add(&r.normal);
            all.add(&r.overload);
        }
        all.add(&self.tail);
        criteria.push((
            Status::Info,
            format!(
                "client side: {} records acknowledged, {} delivery failures{}, {} purged from client queues \
                 at the drop, {} client errors",
                all.acked,
                all.failed,
                self.group_errors
                    .first()
                    .map_or_else(String::new, |e| format!(" (first: {e})")),
                all.purged,
                self.client_errors
            ),
        ));

        // Server gauges.
        let gauge_lines: Vec<String> = [
            self.gauge_line("gate produce in flight", &|g| g.gate_inflight_produce, true),
            self.gauge_line("gate fetch in flight", &|g| g.gate_inflight_fetch, true),
            self.gauge_line("gate produce waiting", &|g| g.gate_waiting_produce, false),
            self.gauge_line("gate fetch waiting", &|g| g.gate_waiting_fetch, false),
            self.gauge_line("produce pending", &|g| g.produce_pending_bytes, true),
            self.gauge_line("fetch in flight", &|g| g.fetch_inflight_bytes, true),
            self.gauge_line("read cache", &|g| g.read_cache_bytes, true),
            self.gauge_line("open connections", &|g| g.open_connections, false),
            self.gauge_line("accept paused", &|g| g.accept_paused, false),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !gauge_lines.is_empty() {
            let limits = self
                .rows
                .iter()
                .rev()
                .find_map(|r| r.gauges.as_ref())
                .map(|g| {
                    format!(
                        " (gate limits: produce {} MiB, fetch {} MiB)",
                        opt_mib(g.gate_limit_produce),
                        opt_mib(g.gate_limit_fetch)
                    )
                })
                .unwrap_or_default();
            println!("agent gauges{limits}:");
            for l in &gauge_lines {
                println!("  {l}");
            }
        }
        println!(
            "fetch storm: {:.1} MB total, {} rewinds to the beginning, {} errors",
            (self.rows.iter().map(|r| r.fetch.bytes).sum::<u64>() + self.fetch_tail.bytes) as f64
                / 1e6,
            self.rows.iter().map(|r| r.fetch.rewinds).sum::<u64>() + self.fetch_tail.rewinds,
            self.rows.iter().map(|r| r.fetch.errors).sum::<u64>() + self.fetch_tail.errors,
        );

        println!();
        println!("criteria (issue: overload benchmark; DESIGN.md section 7):");
        for (status, text) in &criteria {
            println!("  {} {text}", status.tag());
        }
        let failed = criteria.iter().filter(|(s, _)| *s == Status::Fail).count();
        if failed == 0 {
            println!("RESULT: PASS");
        } else {
            println!("RESULT: FAIL ({failed} criteria failed)");
        }
        failed == 0
    }
}
