//! Printing: one block per run (phases and a per-agent table), then the summary comparing
//! the runs side by side with the ratio of the last to the first.

use std::time::Duration;

use super::probe::PhaseStats;
use super::{pct_ms, RunReport, ScaleArgs};

fn f(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".to_string(),
    }
}

fn lat(sorted_us: &[u64]) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms",
        f(pct_ms(sorted_us, 0.5), 1),
        f(pct_ms(sorted_us, 0.99), 1),
        f(pct_ms(sorted_us, 1.0), 1)
    )
}

fn verdict(v: Option<f64>, bound_ms: f64) -> String {
    match v {
        Some(v) if v <= bound_ms => format!("{v:.1} ms PASS"),
        Some(v) => format!("{v:.1} ms FAIL"),
        None => "- (no records)".to_string(),
    }
}

/// The acceptance bound of cross-agent visibility: one batch timeout plus 100 ms.
fn visibility_bound_ms(batch_timeout: Duration) -> f64 {
    batch_timeout.as_secs_f64() * 1000.0 + 100.0
}

fn commit_label(phase: &PhaseStats) -> &'static str {
    if phase.any_fallback() {
        "segments/s (no sluice_commit_transactions_total: sluice_segments_committed_total)"
    } else {
        "commit tx/s"
    }
}

pub(crate) fn print_run(r: &RunReport, batch_timeout: Duration) {
    let p = &r.produce;
    let c = &r.consume;
    let e = &r.e2e;
    println!();
    println!("--- {} agent(s), topic {} ---", r.agents, r.topic);
    println!(
        "produce: {} records in {:.2} s: {:.1} MB/s, {:.0} records/s; ack latency {}",
        p.delivered,
        p.elapsed.as_secs_f64(),
        p.mb_per_s(),
        p.records_per_s(),
        lat(&p.latencies_us)
    );
    println!(
        "consume: {} records in {:.2} s: {:.1} MB/s{}",
        c.received,
        c.elapsed.as_secs_f64(),
        c.mb_per_s(),
        if c.failures.is_empty() {
            ", every record exactly once"
        } else {
            ", NOT exactly once (see FAILED)"
        }
    );
    println!(
        "e2e: producer at {} (Metadata shows {:?}), consumer at {} (shows {:?}); \
         {} sent, {} acked, {} received, {} measured at {:.0} records/s",
        e.producer_agent,
        e.producer_sees,
        e.consumer_agent,
        e.consumer_sees,
        e.sent,
        e.acked,
        e.received,
        e.measured,
        e.achieved_rate
    );
    println!("  end-to-end (receive - send): {}", lat(&e.e2e_us));
    println!("  ack (delivery report - send): {}", lat(&e.ack_us));
    let bound = visibility_bound_ms(batch_timeout);
    let p99 = pct_ms(&e.visibility_us, 0.99);
    let max = pct_ms(&e.visibility_us, 1.0);
    println!(
        "  visibility (receive - ack): {}; bound batch timeout + 100 ms = {bound:.0} ms: \
         p99 {}, max {}{}",
        lat(&e.visibility_us),
        verdict(p99, bound),
        verdict(max, bound),
        if e.seen_before_ack > 0 {
            format!(
                " ({} records reached the consumer before their ack reached the producer: counted as 0)",
                e.seen_before_ack
            )
        } else {
            String::new()
        }
    );
    println!(
        "  {:<6} {:<5} {:<21} {:>7} | {:>26} | {:>14} | {:>26}",
        "agent", "rack", "kafka", "leaders", "produce", "consume", "e2e"
    );
    println!(
        "  {:<6} {:<5} {:<21} {:>7} | {:>7} {:>6} {:>5} {:>5} | {:>5} {:>8} | {:>7} {:>6} {:>5} {:>5}",
        "", "", "", "", "tx/s", "seg/s", "cpu%", "MiB", "cpu%", "MiB", "tx/s", "seg/s", "cpu%", "MiB"
    );
    for i in 0..r.agents {
        let ph = |s: &PhaseStats| s.agents.get(i).cloned().unwrap_or_default();
        let (a, b, d) = (ph(&r.produce_phase), ph(&r.consume_phase), ph(&r.e2e_phase));
        println!(
            "  {:<6} {:<5} {:<21} {:>7} | {:>7} {:>6} {:>5} {:>5} | {:>5} {:>8} | {:>7} {:>6} {:>5} {:>5}",
            i + 1,
            r.racks[i],
            r.kafka_addrs[i],
            r.leaders.get(i).copied().unwrap_or(0),
            f(a.commits_per_s, 1),
            f(a.segments_per_s, 1),
            f(a.cpu_pct, 0),
            f(a.rss_peak_mib, 0),
            f(b.cpu_pct, 0),
            f(b.rss_peak_mib, 0),
            f(d.commits_per_s, 2),
            f(d.segments_per_s, 1),
            f(d.cpu_pct, 0),
            f(d.rss_peak_mib, 0),
        );
    }
    println!(
        "  phases measured: produce {:.1} s, consume {:.1} s, e2e {:.1} s; bench process CPU: \
         produce {}%, consume {}%, e2e {}%  (tx/s = {})",
        r.produce_phase.secs,
        r.consume_phase.secs,
        r.e2e_phase.secs,
        f(r.produce_phase.bench_cpu_pct, 0),
        f(r.consume_phase.bench_cpu_pct, 0),
        f(r.e2e_phase.bench_cpu_pct, 0),
        commit_label(&r.produce_phase)
    );
}

struct Row {
    name: &'static str,
    values: Vec<Option<f64>>,
    decimals: usize,
}

pub(crate) fn print_summary(reports: &[RunReport], args: &ScaleArgs, batch_timeout: Duration) {
    if reports.is_empty() {
        return;
    }
    let mean = |v: Option<f64>, n: usize| v.map(|v| v / n as f64);
    let each = |get: &dyn Fn(&RunReport) -> Option<f64>| -> Vec<Option<f64>> {
        reports.iter().map(get).collect()
    };
    let row = |name, decimals, values| Row {
        name,
        values,
        decimals,
    };
    let rows = vec![
        row("produce MB/s", 1, each(&|r| Some(r.produce.mb_per_s()))),
        row(
            "produce records/s",
            0,
            each(&|r| Some(r.produce.records_per_s())),
        ),
        row(
            "produce ack p50 ms",
            1,
            each(&|r| pct_ms(&r.produce.latencies_us, 0.5)),
        ),
        row(
            "produce ack p99 ms",
            1,
            each(&|r| pct_ms(&r.produce.latencies_us, 0.99)),
        ),
        row(
            "produce ack max ms",
            1,
            each(&|r| pct_ms(&r.produce.latencies_us, 1.0)),
        ),
        row("consume MB/s", 1, each(&|r| Some(r.consume.mb_per_s()))),
        row(
            "e2e p50 ms (agent 1 -> 2)",
            1,
            each(&|r| pct_ms(&r.e2e.e2e_us, 0.5)),
        ),
        row("e2e p99 ms", 1, each(&|r| pct_ms(&r.e2e.e2e_us, 0.99))),
        row("e2e max ms", 1, each(&|r| pct_ms(&r.e2e.e2e_us, 1.0))),
        row(
            "e2e producer ack p50 ms",
            1,
            each(&|r| pct_ms(&r.e2e.ack_us, 0.5)),
        ),
        row(
            "e2e producer ack p99 ms",
            1,
            each(&|r| pct_ms(&r.e2e.ack_us, 0.99)),
        ),
        row(
            "visibility p50 ms (recv-ack)",
            1,
            each(&|r| pct_ms(&r.e2e.visibility_us, 0.5)),
        ),
        row(
            "visibility p99 ms",
            1,
            each(&|r| pct_ms(&r.e2e.visibility_us, 0.99)),
        ),
        row(
            "visibility max ms",
            1,
            each(&|r| pct_ms(&r.e2e.visibility_us, 1.0)),
        ),
        row(
            "commit tx/s per agent, produce",
            1,
            each(&|r| mean(r.produce_phase.sum_commits(), r.agents)),
        ),
        row(
            "commit tx/s all agents, produce",
            1,
            each(&|r| r.produce_phase.sum_commits()),
        ),
        row(
            "commit tx/s per agent, e2e",
            2,
            each(&|r| mean(r.e2e_phase.sum_commits(), r.agents)),
        ),
        row(
            "commit tx/s all agents, e2e",
            2,
            each(&|r| r.e2e_phase.sum_commits()),
        ),
        row(
            "agents CPU % (sum), produce",
            0,
            each(&|r| r.produce_phase.sum_cpu()),
        ),
        row(
            "agents CPU % (sum), consume",
            0,
            each(&|r| r.consume_phase.sum_cpu()),
        ),
        row(
            "agents CPU % (sum), e2e",
            0,
            each(&|r| r.e2e_phase.sum_cpu()),
        ),
        row(
            "bench CPU %, produce",
            0,
            each(&|r| r.produce_phase.bench_cpu_pct),
        ),
        row(
            "peak RSS MiB per agent, produce",
            0,
            each(&|r| r.produce_phase.max_rss()),
        ),
        row(
            "peak RSS MiB per agent, consume",
            0,
            each(&|r| r.consume_phase.max_rss()),
        ),
        row(
            "peak RSS MiB per agent, e2e",
            0,
            each(&|r| r.e2e_phase.max_rss()),
        ),
    ];
    let first = reports[0].agents;
    let last = reports[reports.len() - 1].agents;
    println!();
    println!(
        "=== summary: {} (batch timeout {}, {} partitions, {} producers, {} consumers, idempotence {}, {} x {} B, e2e {}/s) ===",
        reports
            .iter()
            .map(|r| format!("{} agent(s)", r.agents))
            .collect::<Vec<_>>()
            .join(" vs "),
        args.batch_timeout,
        args.partitions,
        args.producers,
        args.consumers,
        args.idempotence,
        args.records,
        args.record_bytes,
        args.e2e_rate
    );
    let mut header = format!("{:<34}", "metric");
    for r in reports {
        header.push_str(&format!(" {:>10}", format!("{} agent", r.agents)));
    }
    if reports.len() > 1 {
        header.push_str(&format!(" {:>8}", format!("{last}/{first}")));
    }
    println!("{header}");
    for row in &rows {
        let mut line = format!("{:<34}", row.name);
        for v in &row.values {
            line.push_str(&format!(" {:>10}", f(*v, row.decimals)));
        }
        if reports.len() > 1 {
            let ratio = match (row.values[0], row.values[row.values.len() - 1]) {
                (Some(a), Some(b)) if a > 0.0 => Some(b / a),
                _ => None,
            };
            line.push_str(&format!(" {:>8}", f(ratio, 2)));
        }
        println!("{line}");
    }
    let fallback = reports
        .iter()
        .any(|r| r.produce_phase.any_fallback() || r.e2e_phase.any_fallback());
    println!(
        "visibility bound (a fetch on one agent sees records committed by another within one \
         batch timeout + 100 ms): {:.0} ms",
        visibility_bound_ms(batch_timeout)
    );
    if fallback {
        println!(
            "note: the agents do not export sluice_commit_transactions_total; the tx/s rows \
             count sluice_segments_committed_total (segments, not transactions)"
        );
    }
    println!(
        "note: besides the commit transactions, membership adds about two small queries per \
         agent per second (heartbeat + live-agent list)."
    );
    println!(
        "note: on this {}-core machine the agents and the load generators share the same cores \
         (three agents share the same two cores on a 2-core machine), so the ratio shows the \
         overhead of the cluster, not scaling.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
