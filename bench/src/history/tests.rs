//! One clean history, and for every check a variant of it that violates exactly that check.

use std::io::Cursor;
use std::sync::Arc;
use std::thread;

use serde_json::json;

use super::check;
use super::event::{Event, Input, Line};
use super::report::{Kind, Report};
use super::writer::History;

const T: &str = "t";
const G: &str = "g";

fn send(client: &str, partition: i32, value: &str) -> String {
    json!({"type": "send", "client": client, "topic": T, "partition": partition, "value": value})
        .to_string()
}

fn ack(client: &str, partition: i32, offset: i64, value: &str) -> String {
    json!({"type": "ack", "client": client, "topic": T, "partition": partition,
           "offset": offset, "value": value})
    .to_string()
}

fn fail(client: &str, value: &str) -> String {
    json!({"type": "fail", "client": client, "value": value, "error": "INVALID_RECORD"}).to_string()
}

fn poll(ts: i64, client: &str, partition: i32, offset: i64, value: &str) -> String {
    json!({"type": "poll", "client": client, "group": G, "topic": T, "partition": partition,
           "offset": offset, "value": value, "ts_ms": ts})
    .to_string()
}

fn commit(ts: i64, client: &str, partition: i32, offset: i64) -> String {
    json!({"type": "commit", "client": client, "group": G, "topic": T, "partition": partition,
           "offset": offset, "ts_ms": ts})
    .to_string()
}

fn assign(ts: i64, client: &str, partitions: &[i32]) -> String {
    json!({"type": "assign", "client": client, "group": G, "topic": T,
           "partitions": partitions, "ts_ms": ts})
    .to_string()
}

fn read(partition: i32, offset: i64, value: &str) -> String {
    json!({"type": "read", "topic": T, "partition": partition, "offset": offset, "value": value})
        .to_string()
}

/// The files of a run.
struct Run {
    producer: Vec<String>,
    c1: Vec<String>,
    c2: Vec<String>,
    read: Vec<String>,
}

/// A run with nothing wrong: one producer on two partitions (one send indeterminate, one
/// failed), consumer c1 polls, commits and loses both partitions to c2 in a rebalance, c2
/// resumes from the commits (and re-reads partition 1 offset 0, which c1 never committed).
fn clean() -> Run {
    Run {
        producer: vec![
            send("p1", 0, "v0"),
            ack("p1", 0, 0, "v0"),
            send("p1", 1, "v2"),
            ack("p1", 1, 0, "v2"),
            send("p1", 0, "v1"),
            ack("p1", 0, 1, "v1"),
            send("p1", 1, "v3"),
            ack("p1", 1, 1, "v3"),
            send("p1", 0, "v4"),
            send("p1", 1, "v5"),
            fail("p1", "v5"),
        ],
        c1: vec![
            assign(100, "c1", &[0, 1]),
            poll(110, "c1", 0, 0, "v0"),
            poll(120, "c1", 0, 1, "v1"),
            commit(130, "c1", 0, 2),
            poll(140, "c1", 1, 0, "v2"),
            assign(150, "c1", &[]),
        ],
        c2: vec![
            assign(160, "c2", &[0, 1]),
            poll(170, "c2", 0, 2, "v4"),
            poll(180, "c2", 1, 0, "v2"),
            poll(190, "c2", 1, 1, "v3"),
            commit(200, "c2", 1, 2),
        ],
        read: vec![
            read(0, 0, "v0"),
            read(0, 1, "v1"),
            read(0, 2, "v4"),
            read(1, 0, "v2"),
            read(1, 1, "v3"),
        ],
    }
}

fn input_of(files: &[(&str, &[String])]) -> Input {
    let mut input = Input::default();
    for (name, lines) in files {
        let text = lines.join("\n");
        input
            .add_file(name, Cursor::new(text))
            .expect("test histories are well-formed");
    }
    input
}

impl Run {
    fn check(&self) -> Report {
        check(&input_of(&[
            ("producer", &self.producer),
            ("c1", &self.c1),
            ("c2", &self.c2),
            ("read", &self.read),
        ]))
    }
}

/// Asserts that `kind` was found `n` times and nothing else was.
fn assert_only(report: &Report, kind: Kind, n: u64) {
    for k in Kind::ALL {
        let want = if k == kind { n } else { 0 };
        assert_eq!(report.count(k), want, "{k:?} in\n{report}");
    }
}

fn assert_clean(report: &Report) {
    assert_eq!(report.violations(), 0, "{report}");
}

#[test]
fn a_clean_history_passes_with_its_totals() {
    let report = clean().check();
    assert_clean(&report);
    let t = &report.totals;
    assert_eq!(
        (t.sent, t.acked, t.failed, t.indeterminate),
        (6, 4, 1, 1),
        "{report}"
    );
    assert_eq!(
        (t.polled, t.distinct_polled, t.commits, t.assigns, t.read),
        (6, 5, 2, 3, 5)
    );
    assert_eq!(t.untimed, 0);
    assert_eq!(report.unconsumed, vec![("g".to_string(), 0)]);
    let text = report.to_string();
    assert!(text.contains("result: OK"), "{text}");
    assert!(
        text.contains("group g: 0 acked records never polled"),
        "{text}"
    );
}

#[test]
fn the_time_line_follows_ts_ms_not_the_file_order() {
    let run = clean();
    let report = check(&input_of(&[
        ("read", &run.read),
        ("c2", &run.c2),
        ("c1", &run.c1),
        ("producer", &run.producer),
    ]));
    assert_clean(&report);
}

#[test]
fn lost_write() {
    let mut run = clean();
    run.producer.push(send("p1", 0, "v6"));
    run.producer.push(ack("p1", 0, 3, "v6"));
    let report = run.check();
    assert_only(&report, Kind::Lost, 1);
    assert!(report.findings[Kind::Lost as usize].examples[0].contains("v6 acked at t/0@3"));
    // Never polled either, which is only informational.
    assert_eq!(report.unconsumed, vec![("g".to_string(), 1)]);
}

#[test]
fn wrong_offset() {
    let mut run = clean();
    run.producer.push(send("p1", 0, "v6"));
    run.producer.push(ack("p1", 0, 3, "v6"));
    run.read.push(read(0, 4, "v6"));
    assert_only(&run.check(), Kind::WrongOffset, 1);
}

#[test]
fn duplicate() {
    let mut run = clean();
    run.read.push(read(0, 3, "v1"));
    let report = run.check();
    assert_only(&report, Kind::Duplicate, 1);
    let example = &report.findings[Kind::Duplicate as usize].examples[0];
    assert!(example.contains("t/0@1, t/0@3"), "{example}");
}

#[test]
fn an_indeterminate_send_read_twice_is_a_duplicate_and_once_is_fine() {
    let mut run = clean();
    assert_clean(&run.check()); // v4 (indeterminate) is read once
    run.read.push(read(1, 2, "v4"));
    assert_only(&run.check(), Kind::Duplicate, 1);
}

#[test]
fn unexpected() {
    let mut run = clean();
    run.read.push(read(0, 3, "x9"));
    assert_only(&run.check(), Kind::Unexpected, 1);
}

#[test]
fn failed_write_present() {
    let mut run = clean();
    run.read.push(read(1, 2, "v5"));
    assert_only(&run.check(), Kind::FailedPresent, 1);
}

#[test]
fn ack_order() {
    let mut run = clean();
    run.producer.push(send("p1", 0, "v6"));
    run.producer.push(send("p1", 0, "v7"));
    run.producer.push(ack("p1", 0, 4, "v7"));
    run.producer.push(ack("p1", 0, 3, "v6"));
    run.read.push(read(0, 3, "v6"));
    run.read.push(read(0, 4, "v7"));
    assert_only(&run.check(), Kind::AckOrder, 1);
}

#[test]
fn poll_order() {
    let mut run = clean();
    // c1 goes back to offset 0 before committing anything, without a new assignment.
    run.c1.insert(3, poll(125, "c1", 0, 0, "v0"));
    assert_only(&run.check(), Kind::PollOrder, 1);
}

#[test]
fn polls_may_restart_after_an_assignment() {
    let mut run = clean();
    run.c1.insert(3, assign(122, "c1", &[0, 1]));
    run.c1.insert(4, poll(125, "c1", 0, 0, "v0"));
    assert_clean(&run.check());
}

#[test]
fn poll_the_final_read_disagrees_with() {
    let mut run = clean();
    run.c2[3] = poll(190, "c2", 1, 1, "v2");
    let report = run.check();
    assert_only(&report, Kind::PollMismatch, 1);
    let example = &report.findings[Kind::PollMismatch as usize].examples[0];
    assert!(example.contains("the final read has v3 there"), "{example}");
}

#[test]
fn redelivery_below_commit_without_rebalance() {
    let mut run = clean();
    // A zombie member of the group, never assigned anything, polls below c1's commit.
    let zombie = vec![poll(135, "c3", 0, 1, "v1")];
    let report = check(&input_of(&[
        ("producer", &run.producer),
        ("c1", &run.c1),
        ("c3", &zombie),
        ("c2", &run.c2),
        ("read", &run.read),
    ]));
    assert_only(&report, Kind::BelowCommit, 1);
    // The same poll before the commit is fine.
    run.c1.insert(3, poll(125, "c1", 0, 1, "v1"));
    let report = run.check();
    assert_only(&report, Kind::PollOrder, 1);
}

#[test]
fn redelivery_after_rebalance_below_commit() {
    let mut run = clean();
    // c2 is assigned partition 0 after c1 committed 2, yet starts at offset 1.
    run.c2.insert(1, poll(165, "c2", 0, 1, "v1"));
    let report = run.check();
    assert_only(&report, Kind::BelowCommitAfterRebalance, 1);
    let example = &report.findings[Kind::BelowCommitAfterRebalance as usize].examples[0];
    assert!(
        example.contains("committed 2 (c1:4), assigned again at c2:1"),
        "{example}"
    );
}

#[test]
fn a_newer_smaller_commit_decides() {
    // Commits of 5 then 3: a poll of 4 is below the older commit only, whose rebalance
    // status counts; a poll of 2 is below the newer one.
    let lines = vec![
        assign(10, "c1", &[0]),
        commit(20, "c1", 0, 5),
        assign(30, "c1", &[0]),
        commit(40, "c1", 0, 3),
        poll(50, "c1", 0, 4, "a"),
        poll(60, "c1", 0, 2, "b"),
    ];
    let read = vec![read(0, 2, "b"), read(0, 4, "a")];
    let mut producer = vec![send("p", 0, "a"), send("p", 0, "b")];
    producer.push(ack("p", 0, 2, "b"));
    producer.push(ack("p", 0, 4, "a"));
    let report = check(&input_of(&[
        ("producer", &producer),
        ("c1", &lines),
        ("read", &read),
    ]));
    assert_eq!(report.count(Kind::BelowCommitAfterRebalance), 1, "{report}");
    assert_eq!(report.count(Kind::BelowCommit), 1, "{report}");
    // 4 then 2 without an assignment in between.
    assert_eq!(report.count(Kind::PollOrder), 1, "{report}");
    assert_eq!(report.violations(), 3, "{report}");
}

#[test]
fn inconsistent_history() {
    let mut run = clean();
    run.producer.push(send("p1", 0, "v4"));
    let report = run.check();
    assert_only(&report, Kind::Inconsistent, 1);
    assert_eq!(report.totals.indeterminate, 1);

    let mut run = clean();
    run.producer.push(fail("p1", "v0"));
    assert_only(&run.check(), Kind::Inconsistent, 1);

    let mut run = clean();
    run.read.push(read(0, 0, "v1"));
    let report = run.check();
    assert_eq!(report.count(Kind::Inconsistent), 1, "{report}");
}

#[test]
fn examples_stop_at_ten_and_the_count_goes_on() {
    let mut run = clean();
    for i in 0..25 {
        run.read.push(read(2, i, &format!("x{i}")));
    }
    let report = run.check();
    assert_only(&report, Kind::Unexpected, 25);
    assert_eq!(
        report.findings[Kind::Unexpected as usize].examples.len(),
        10
    );
    let text = report.to_string();
    assert!(text.contains("... and 15 more"), "{text}");
    assert!(text.contains("result: FAILED (25 violations)"), "{text}");
}

#[test]
fn a_malformed_line_names_its_file_and_line() {
    let mut input = Input::default();
    let text = format!(
        "{}\n\n{{\"type\":\"send\",\"client\":\"p1\"",
        send("p1", 0, "v0")
    );
    let err = input
        .add_file("p1.jsonl", Cursor::new(text))
        .expect_err("a truncated line is an error");
    assert!(format!("{err:#}").contains("p1.jsonl:3"), "{err:#}");

    let err = Input::default()
        .add_file(
            "c.jsonl",
            Cursor::new(r#"{"type":"teleport","client":"c"}"#),
        )
        .expect_err("an unknown type is an error");
    assert!(format!("{err:#}").contains("c.jsonl:1"), "{err:#}");

    let err = Input::read_files(&["/nonexistent/history.jsonl"]).expect_err("no such file");
    assert!(
        format!("{err:#}").contains("/nonexistent/history.jsonl"),
        "{err:#}"
    );
}

#[test]
fn events_without_ts_and_with_extra_fields_are_read() {
    let mut input = Input::default();
    let text = r#"{"type":"commit","client":"c","group":"g","topic":"t","partition":0,"offset":3,"extra":1}"#;
    input.add_file("c", Cursor::new(text)).expect("valid line");
    assert_eq!(input.entries[0].ts_ms, None);
    assert_eq!(input.entries[0].at.line, 1);
    let report = check(&input);
    assert_eq!(report.totals.untimed, 1);
    assert!(report.to_string().contains("carry no ts_ms"));
}

#[test]
fn the_writer_writes_what_the_reader_reads() {
    let history = History::new(Vec::new());
    history.send("p1", T, 3, "p1-000042").expect("write");
    history.ack("p1", T, 3, 1234, "p1-000042").expect("write");
    history
        .fail("p1", "p1-000043", "MESSAGE_TOO_LARGE")
        .expect("write");
    history
        .poll("c2", G, T, 3, 1234, "p1-000042")
        .expect("write");
    history.commit("c2", G, T, 3, 1235).expect("write");
    history.assign("c2", G, T, &[0, 3]).expect("write");
    history.read(T, 3, 1234, "p1-000042").expect("write");
    let bytes = history.into_inner().expect("flush");
    let text = String::from_utf8(bytes).expect("utf-8");
    let first = text.lines().next().expect("a line");
    assert!(
        first.starts_with(
            r#"{"type":"send","client":"p1","topic":"t","partition":3,"value":"p1-000042","ts_ms":"#
        ),
        "{first}"
    );
    let mut input = Input::default();
    input.add_file("h", Cursor::new(text)).expect("readable");
    assert_eq!(input.entries.len(), 7);
    assert!(input.entries.iter().all(|e| e.ts_ms.is_some()));
    assert_eq!(
        input.entries[5].event,
        Event::Assign {
            client: "c2".into(),
            group: G.into(),
            topic: T.into(),
            partitions: vec![0, 3],
        }
    );
    let report = check(&input);
    assert_eq!((report.totals.sent, report.totals.acked), (1, 1));
    assert_clean(&report);
}

#[test]
fn the_writer_is_shared_by_threads_and_flushes_on_drop() {
    let path = std::env::temp_dir().join(format!(
        "sluice-history-{}-{:?}.jsonl",
        std::process::id(),
        thread::current().id()
    ));
    {
        let history = Arc::new(History::create(&path).expect("create"));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let history = Arc::clone(&history);
                thread::spawn(move || {
                    for i in 0..250 {
                        history
                            .send(&format!("p{w}"), T, 0, &format!("p{w}-{i}"))
                            .expect("write");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer thread");
        }
        // Dropped here without an explicit flush.
    }
    let text = std::fs::read_to_string(&path).expect("read back");
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Line> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole lines"))
        .collect();
    assert_eq!(lines.len(), 1000);
}
