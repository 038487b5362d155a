//! Per-phase measurements of every agent: commit transactions per second from `/metrics`,
//! CPU from `/proc/PID/stat`, peak RSS from the agent's RSS sampler, and this program's own
//! CPU (the load generators share the machine with the agents).
//!
//! The commit counter is `sluice_commit_transactions_total` (metadata transactions that
//! committed segments). Older agents lack it; then `sluice_segments_committed_total` is used
//! and the report says so, since with group commit one transaction may carry several segments.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::cluster::Cluster;
use crate::rss::{cpu_ticks, CLOCK_TICKS_PER_SEC};

const COMMIT_TX: &str = "sluice_commit_transactions_total";
const SEGMENTS: &str = "sluice_segments_committed_total";
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The counters read from one agent's `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Counters {
    pub(crate) commit_tx: Option<f64>,
    pub(crate) segments: Option<f64>,
}

/// What one agent did during a phase.
#[derive(Clone, Debug, Default)]
pub(crate) struct AgentPhase {
    /// Commit transactions per second (or segments per second, see `fallback`).
    pub(crate) commits_per_s: Option<f64>,
    /// True when `sluice_commit_transactions_total` was missing and segments were counted.
    pub(crate) fallback: bool,
    pub(crate) segments_per_s: Option<f64>,
    /// CPU in % of one core over the phase.
    pub(crate) cpu_pct: Option<f64>,
    pub(crate) rss_peak_mib: Option<f64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PhaseStats {
    pub(crate) secs: f64,
    pub(crate) agents: Vec<AgentPhase>,
    /// This program's CPU in % of one core over the phase.
    pub(crate) bench_cpu_pct: Option<f64>,
}

impl PhaseStats {
    pub(crate) fn sum_cpu(&self) -> Option<f64> {
        sum(self.agents.iter().map(|a| a.cpu_pct))
    }
    pub(crate) fn sum_commits(&self) -> Option<f64> {
        sum(self.agents.iter().map(|a| a.commits_per_s))
    }
    pub(crate) fn max_rss(&self) -> Option<f64> {
        self.agents
            .iter()
            .filter_map(|a| a.rss_peak_mib)
            .reduce(f64::max)
    }
    pub(crate) fn any_fallback(&self) -> bool {
        self.agents.iter().any(|a| a.fallback)
    }
}

/// `None` if any value is missing.
fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.sum()
}

struct AgentStart {
    ticks: Option<u64>,
    counters: Option<Counters>,
}

/// The state at the start of a phase.
pub(crate) struct PhaseProbe {
    at: Instant,
    agents: Vec<AgentStart>,
    bench_ticks: Option<u64>,
}

impl PhaseProbe {
    pub(crate) fn begin(cluster: &Cluster) -> PhaseProbe {
        let agents = cluster
            .agents
            .iter()
            .map(|a| {
                a.sampler.stats.begin_phase();
                AgentStart {
                    ticks: cpu_ticks(&a.pid.to_string()),
                    counters: a.http.as_deref().and_then(scrape_logged),
                }
            })
            .collect();
        PhaseProbe {
            at: Instant::now(),
            agents,
            bench_ticks: cpu_ticks("self"),
        }
    }

    pub(crate) fn end(self, cluster: &Cluster) -> PhaseStats {
        let secs = self.at.elapsed().as_secs_f64().max(1e-6);
        let cpu = |before: Option<u64>, after: Option<u64>| -> Option<f64> {
            let (b, a) = (before?, after?);
            Some(a.saturating_sub(b) as f64 / CLOCK_TICKS_PER_SEC / secs * 100.0)
        };
        let agents = cluster
            .agents
            .iter()
            .zip(&self.agents)
            .map(|(a, start)| {
                let ticks = cpu_ticks(&a.pid.to_string());
                let rss_peak_mib = a.sampler.stats.end_phase().map(crate::util::mib);
                let now = a.http.as_deref().and_then(scrape_logged);
                let rate = |f: fn(&Counters) -> Option<f64>| -> Option<f64> {
                    let (b, e) = (f(start.counters.as_ref()?)?, f(now.as_ref()?)?);
                    Some((e - b).max(0.0) / secs)
                };
                let segments_per_s = rate(|c| c.segments);
                let (commits_per_s, fallback) = match rate(|c| c.commit_tx) {
                    Some(v) => (Some(v), false),
                    None => (segments_per_s, segments_per_s.is_some()),
                };
                AgentPhase {
                    commits_per_s,
                    fallback,
                    segments_per_s,
                    cpu_pct: cpu(start.ticks, ticks),
                    rss_peak_mib,
                }
            })
            .collect();
        PhaseStats {
            secs,
            agents,
            bench_cpu_pct: cpu(self.bench_ticks, cpu_ticks("self")),
        }
    }
}

fn scrape_logged(http: &str) -> Option<Counters> {
    match scrape(http) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("scale: reading http://{http}/metrics failed: {e:#}");
            None
        }
    }
}

/// Reads the commit counters from `http://addr/metrics`.
pub(crate) fn scrape(addr: &str) -> Result<Counters> {
    let body = http_get(addr, "/metrics")?;
    Ok(parse_counters(&body))
}

/// Sums each counter over its label sets; `None` when the name does not occur.
pub(crate) fn parse_counters(text: &str) -> Counters {
    let mut c = Counters::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(name_end) = line.find(|ch: char| ch == '{' || ch.is_whitespace()) else {
            continue;
        };
        let slot = match &line[..name_end] {
            COMMIT_TX => &mut c.commit_tx,
            SEGMENTS => &mut c.segments,
            _ => continue,
        };
        let rest = match line[name_end..].find('}') {
            Some(close) if line[name_end..].starts_with('{') => &line[name_end + close + 1..],
            _ => &line[name_end..],
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *slot = Some(slot.unwrap_or(0.0) + v);
        }
    }
    c
}

/// A minimal HTTP/1.1 GET with `Connection: close`, reading the body to the end
/// (content-length or chunked).
fn http_get(addr: &str, path: &str) -> Result<String> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, IO_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(64 << 20)
        .read_to_end(&mut raw)
        .context("reading the response")?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("malformed HTTP response from {addr}");
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200") {
        bail!("GET {path} on {addr}: {status}");
    }
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    if !chunked {
        return Ok(String::from_utf8_lossy(body).into_owned());
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        let data = &rest[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_summed_over_labels() {
        let text = "\
# HELP sluice_commit_transactions_total Metadata transactions
# TYPE sluice_commit_transactions_total counter
sluice_commit_transactions_total 17
sluice_segments_committed_total{cluster=\"a\"} 20
sluice_segments_committed_total{cluster=\"b\"} 5
sluice_commit_transactions_total_other 99
";
        let c = parse_counters(text);
        assert_eq!(c.commit_tx, Some(17.0));
        assert_eq!(c.segments, Some(25.0));
        assert_eq!(parse_counters("sluice_open_connections 3").commit_tx, None);
    }
}
