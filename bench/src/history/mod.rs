//! `sluice-bench check-history`: checks the history of a test run in which producers and
//! consumers worked while agents were killed (in the spirit of Jepsen's Kafka workload).
//!
//! Modules: `event` (the line format, reading files), `check` (the checks, pure),
//! `report` (counts, examples, printing), `writer` (`History`, which test drivers append
//! events to).
//!
//! # Format
//!
//! JSON lines, one event a line, written by each client of the run (usually one file per
//! client; the files are read in the order given and taken as one history). Every event may
//! carry `"ts_ms"` (ms since the Unix epoch; `History` always writes it).
//!
//! ```text
//! {"type":"send","client":"p1","topic":"t","partition":3,"value":"p1-000042"}
//! {"type":"ack","client":"p1","topic":"t","partition":3,"offset":1234,"value":"p1-000042"}
//! {"type":"fail","client":"p1","value":"p1-000042","error":"..."}
//! {"type":"poll","client":"c2","group":"g","topic":"t","partition":3,"offset":1234,"value":"p1-000042"}
//! {"type":"commit","client":"c2","group":"g","topic":"t","partition":3,"offset":1235}
//! {"type":"assign","client":"c2","group":"g","topic":"t","partitions":[0,3]}
//! {"type":"read","topic":"t","partition":3,"offset":1234,"value":"p1-000042"}
//! ```
//!
//! `send`: a producer attempted a record; values are unique within a run. `ack`: the broker
//! acknowledged it at that offset. `fail`: a definite failure (the record was not written).
//! `poll`: a consumer received a record. `commit`: the broker confirmed the group's commit of
//! next offset `offset`. `assign`: a rebalance gave the consumer these partitions. `read`:
//! the final read of every partition from its start, at the end of the run.
//!
//! # Checks
//!
//! Violations (each counted, the first ten printed, any of them fails the run):
//! - **lost**: acked, not in the final read;
//! - **wrong offset**: acked at one offset, in the final read only at others;
//! - **duplicates**: a value at more than one offset of the final read;
//! - **unexpected**: a value in the final read that was never sent;
//! - **failed present**: a definite failure that is in the final read after all;
//! - **ack order**: one producer's acks for one partition not strictly increasing;
//! - **poll order**: one consumer's polls of one partition not strictly increasing between
//!   two of its assignments;
//! - **polls the final read disagrees with**: a poll of a value at an offset where the final
//!   read has another value, or nothing;
//! - **below commit**: after a group committed next offset N for a partition, a poll by the
//!   group of an offset below N; reported apart when the partition was assigned again within
//!   the group in between ("re-delivered after rebalance, below commit") — a committed offset
//!   must not go backwards either way;
//! - **inconsistent history**: the log contradicts itself (a value sent twice, acked at two
//!   offsets, acked and failed, acked but never sent, two values at one offset of the final
//!   read).
//!
//! Informational: per group, acked records of its topics it never polled (the run may stop
//! before the consumers catch up). Indeterminate sends (neither acked nor failed) may or may
//! not be in the final read; either is fine.
//!
//! # Order
//!
//! A client's own events are taken in the order it wrote them (its file's line order). The
//! commit check compares events of different clients, so it orders them by `ts_ms` (an event
//! without one takes the time of the event before it in its file); clocks of the clients
//! must agree to a few milliseconds, which they do when the clients share a machine.

mod check;
mod event;
mod report;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) use self::check::check;
pub(crate) use self::event::Input;
pub(crate) use self::writer::History;

#[derive(clap::Args, Debug)]
pub(crate) struct CheckHistoryArgs {
    /// History files (JSON lines), read in this order as one history.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Reads and checks the files: exit 0 when no violation was found, 1 when one was, 2 when a
/// file cannot be read or holds a malformed line.
pub(crate) fn main(args: &CheckHistoryArgs) -> ExitCode {
    let input = match Input::read_files(&args.files) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("sluice-bench check-history: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let report = check(&input);
    print!("{report}");
    if report.violations() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
