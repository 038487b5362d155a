//! What a check of a history found, and how it is printed.

use std::fmt;

/// The kinds of violation, in the order they are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The history contradicts itself (a value sent twice, acked at two offsets, acked and
    /// failed, acked but never sent; two values at one offset of the final read): the
    /// other counts cannot be trusted.
    Inconsistent,
    Lost,
    WrongOffset,
    Duplicate,
    Unexpected,
    FailedPresent,
    AckOrder,
    PollOrder,
    PollMismatch,
    BelowCommit,
    BelowCommitAfterRebalance,
}

impl Kind {
    pub(crate) const ALL: [Kind; 11] = [
        Kind::Inconsistent,
        Kind::Lost,
        Kind::WrongOffset,
        Kind::Duplicate,
        Kind::Unexpected,
        Kind::FailedPresent,
        Kind::AckOrder,
        Kind::PollOrder,
        Kind::PollMismatch,
        Kind::BelowCommit,
        Kind::BelowCommitAfterRebalance,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Inconsistent => "inconsistent history (the log contradicts itself)",
            Kind::Lost => "lost writes (acked, not in the final read)",
            Kind::WrongOffset => "wrong offset (acked at one offset, read at another)",
            Kind::Duplicate => "duplicates (a value at more than one offset)",
            Kind::Unexpected => "unexpected (in the final read, never sent)",
            Kind::FailedPresent => "failed writes present in the final read",
            Kind::AckOrder => "ack order (a producer's acks not increasing per partition)",
            Kind::PollOrder => "poll order (a consumer's polls not increasing between assignments)",
            Kind::PollMismatch => "polls the final read disagrees with",
            Kind::BelowCommit => "re-delivered below a committed offset, no rebalance",
            Kind::BelowCommitAfterRebalance => "re-delivered after rebalance, below commit",
        }
    }
}

/// How often one kind of violation was found, with the first few examples.
#[derive(Clone, Debug, Default)]
pub(crate) struct Finding {
    pub(crate) count: u64,
    pub(crate) examples: Vec<String>,
}

impl Finding {
    pub(crate) const MAX_EXAMPLES: usize = 10;
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) events: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    /// Sent, neither acked nor failed.
    pub(crate) indeterminate: u64,
    pub(crate) polled: u64,
    pub(crate) distinct_polled: u64,
    pub(crate) commits: u64,
    pub(crate) assigns: u64,
    /// Records of the final read (each offset once).
    pub(crate) read: u64,
    /// Polls, commits and assignments without `ts_ms`: placed on the time line by the
    /// event before them in their file.
    pub(crate) untimed: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub(crate) files: usize,
    pub(crate) totals: Totals,
    /// Indexed by `Kind as usize`.
    pub(crate) findings: [Finding; Kind::ALL.len()],
    /// Per group: acked records of its topics it never polled (informational: a run may
    /// stop before the consumers catch up).
    pub(crate) unconsumed: Vec<(String, u64)>,
}

impl Report {
    #[cfg(test)] // the printing walks `findings` itself
    pub(crate) fn count(&self, kind: Kind) -> u64 {
        self.findings[kind as usize].count
    }

    pub(crate) fn violations(&self) -> u64 {
        self.findings.iter().map(|f| f.count).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(f, "history: {} events in {} file(s)", t.events, self.files)?;
        for (name, n) in [
            ("sent", t.sent),
            ("acked", t.acked),
            ("failed", t.failed),
            ("indeterminate", t.indeterminate),
            ("polled", t.polled),
            ("distinct polled", t.distinct_polled),
            ("commits", t.commits),
            ("assignments", t.assigns),
            ("final read", t.read),
        ] {
            writeln!(f, "  {name:<16} {n:>10}")?;
        }
        if t.untimed > 0 {
            writeln!(
                f,
                "  note: {} polls/commits/assignments carry no ts_ms; across clients they are \
                 ordered by the events before them in their files",
                t.untimed
            )?;
        }
        writeln!(f, "violations:")?;
        for kind in Kind::ALL {
            let finding = &self.findings[kind as usize];
            writeln!(f, "  {:<68} {:>8}", kind.label(), finding.count)?;
            for e in &finding.examples {
                writeln!(f, "      - {e}")?;
            }
            let more = finding.count.saturating_sub(finding.examples.len() as u64);
            if more > 0 {
                writeln!(f, "      ... and {more} more")?;
            }
        }
        writeln!(f, "informational:")?;
        if self.unconsumed.is_empty() {
            writeln!(f, "  no consumer group in the history")?;
        }
        for (group, n) in &self.unconsumed {
            writeln!(f, "  group {group}: {n} acked records never polled")?;
        }
        match self.violations() {
            0 => writeln!(f, "result: OK"),
            n => writeln!(f, "result: FAILED ({n} violations)"),
        }
    }
}
