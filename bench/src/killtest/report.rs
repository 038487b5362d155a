//! What a kill test measured, the bounds it must meet, and how it is printed.
//!
//! Per kill, in time since the SIGKILL:
//! - **gone**: the killed agent's process no longer listed in a survivor's Metadata
//!   (bound: session timeout + 3 s);
//! - **restarted**: the agent listening again (its restart may wait for its node-id lease to
//!   expire), and **listed again**: the survivor's Metadata lists the new process (bound:
//!   10 s after it listens);
//! - **producers acked**: every producer has an ack after the kill; **partitions acked**:
//!   every partition has one (so the killed agent's partitions moved); bound 30 s each;
//! - **group polled**: the group polls a record after the kill; **fresh polled**: it polls
//!   one produced after the kill; **all partitions fresh**: it polled such a record from
//!   every partition; bound 30 s each.

use std::fmt::Write as _;
use std::time::Duration;

pub(crate) struct Bounds {
    pub(crate) gone: Duration,
    pub(crate) recover: Duration,
    pub(crate) back_after_restart: Duration,
}

impl Bounds {
    pub(crate) fn new(session_timeout: Duration) -> Bounds {
        Bounds {
            gone: session_timeout + Duration::from_secs(3),
            recover: Duration::from_secs(30),
            back_after_restart: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
pub(crate) struct KillRecord {
    pub(crate) n: usize,
    pub(crate) node_id: i32,
    pub(crate) name: String,
    /// When the kill happened, since the clients started.
    pub(crate) at: Duration,
    pub(crate) coordinator: bool,
    pub(crate) led: Vec<i32>,
    pub(crate) gone: Option<Duration>,
    /// When the restarted agent was listening, and after how many attempts; or why not.
    pub(crate) restart: Result<(Duration, u32), String>,
    pub(crate) back: Option<Duration>,
    pub(crate) producers_acked: Option<Duration>,
    pub(crate) partitions_acked: Option<Duration>,
    pub(crate) polled: Option<Duration>,
    pub(crate) fresh_polled: Option<Duration>,
    pub(crate) partitions_fresh_polled: Option<Duration>,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_string(),
        |d| format!("{:.2}s", d.as_secs_f64()),
    )
}

impl KillRecord {
    /// One line with every number.
    pub(crate) fn line(&self) -> String {
        let mut s = format!(
            "kill {} at {:.1}s: node {} coordinator={} led={:?} gone={}",
            self.n,
            self.at.as_secs_f64(),
            self.node_id,
            if self.coordinator { "yes" } else { "no" },
            self.led,
            secs(self.gone)
        );
        match &self.restart {
            Ok((at, attempts)) => {
                let _ = write!(
                    s,
                    " restarted={} ({attempts} attempt{}) listed-again={}",
                    secs(Some(*at)),
                    if *attempts == 1 { "" } else { "s" },
                    secs(self.back)
                );
            }
            Err(_) => s.push_str(" restarted=FAILED"),
        }
        let _ = write!(
            s,
            " producers-acked={} partitions-acked={} group-polled={} fresh-polled={} all-partitions-fresh={}",
            secs(self.producers_acked),
            secs(self.partitions_acked),
            secs(self.polled),
            secs(self.fresh_polled),
            secs(self.partitions_fresh_polled)
        );
        s
    }

    /// The bounds this kill missed.
    pub(crate) fn failures(&self, b: &Bounds) -> Vec<String> {
        let mut out = Vec::new();
        let mut within = |what: &str, got: Option<Duration>, bound: Duration| match got {
            Some(d) if d <= bound => {}
            Some(d) => out.push(format!(
                "kill {} ({}): {what} took {:.2}s (bound {:.1}s)",
                self.n,
                self.name,
                d.as_secs_f64(),
                bound.as_secs_f64()
            )),
            None => out.push(format!(
                "kill {} ({}): {what} not seen (bound {:.1}s)",
                self.n,
                self.name,
                bound.as_secs_f64()
            )),
        };
        within("leaving a survivor's Metadata", self.gone, b.gone);
        within(
            "a new ack from every producer",
            self.producers_acked,
            b.recover,
        );
        within(
            "a new ack on every partition",
            self.partitions_acked,
            b.recover,
        );
        within("the group polling again", self.polled, b.recover);
        within(
            "the group polling a record produced after the kill",
            self.fresh_polled,
            b.recover,
        );
        within(
            "the group polling such a record from every partition",
            self.partitions_fresh_polled,
            b.recover,
        );
        match &self.restart {
            Ok((at, _)) => within(
                "the restarted agent being listed again",
                self.back,
                *at + b.back_after_restart,
            ),
            Err(e) => out.push(format!(
                "kill {} ({}): restart failed: {e}",
                self.n, self.name
            )),
        }
        out
    }
}

/// The spread of one timing over the kills: min / median / max.
pub(crate) fn spread(values: &[Option<Duration>]) -> String {
    let mut v: Vec<Duration> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_unstable();
    let missing = values.len() - v.len();
    let mut s = format!(
        "{:.2}/{:.2}/{:.2}s",
        v[0].as_secs_f64(),
        v[v.len() / 2].as_secs_f64(),
        v[v.len() - 1].as_secs_f64()
    );
    if missing > 0 {
        let _ = write!(s, " ({missing} never)");
    }
    s
}

/// Timings over all kills, min/median/max, for the summary.
pub(crate) fn timing_summary(kills: &[KillRecord]) -> String {
    let col =
        |f: fn(&KillRecord) -> Option<Duration>| spread(&kills.iter().map(f).collect::<Vec<_>>());
    format!(
        "timings min/median/max over {} kill(s): gone {}, restarted {}, listed-again {}, producers-acked {}, partitions-acked {}, group-polled {}, fresh-polled {}, all-partitions-fresh {}",
        kills.len(),
        col(|k| k.gone),
        col(|k| k.restart.as_ref().ok().map(|r| r.0)),
        col(|k| k.back),
        col(|k| k.producers_acked),
        col(|k| k.partitions_acked),
        col(|k| k.polled),
        col(|k| k.fresh_polled),
        col(|k| k.partitions_fresh_polled),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KillRecord {
        let s = |ms| Some(Duration::from_millis(ms));
        KillRecord {
            n: 1,
            node_id: 2,
            name: "agent2".into(),
            at: Duration::from_secs(20),
            coordinator: true,
            led: vec![1, 4],
            gone: s(1_600),
            restart: Ok((Duration::from_millis(3_200), 3)),
            back: s(4_100),
            producers_acked: s(50),
            partitions_acked: s(2_300),
            polled: s(10),
            fresh_polled: s(200),
            partitions_fresh_polled: s(5_400),
        }
    }

    #[test]
    fn a_quick_recovery_meets_every_bound() {
        let b = Bounds::new(Duration::from_secs(3));
        assert!(
            record().failures(&b).is_empty(),
            "{:?}",
            record().failures(&b)
        );
        let line = record().line();
        assert!(line.contains("gone=1.60s"), "{line}");
        assert!(line.contains("restarted=3.20s (3 attempts)"), "{line}");
    }

    #[test]
    fn slow_or_missing_steps_are_failures() {
        let b = Bounds::new(Duration::from_secs(3));
        let mut r = record();
        r.gone = Some(Duration::from_secs(7));
        r.partitions_fresh_polled = None;
        r.back = Some(Duration::from_secs(14)); // 10.8 s after listening
        let f = r.failures(&b);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("leaving a survivor's Metadata took 7.00s"));
        assert!(f[1].contains("from every partition not seen"));
        assert!(f[2].contains("listed again"));
        r.restart = Err("node id taken".into());
        assert!(r.failures(&b).iter().any(|f| f.contains("restart failed")));
    }

    #[test]
    fn spread_of_timings() {
        let d = |ms| Some(Duration::from_millis(ms));
        assert_eq!(
            spread(&[d(300), None, d(100), d(200)]),
            "0.10/0.20/0.30s (1 never)"
        );
        assert_eq!(spread(&[None]), "-");
    }
}
