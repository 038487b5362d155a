//! Crash safety and graceful shutdown: SIGKILL or SIGTERM in the middle of a produce stream
//! loses no acknowledged record, and SIGTERM exits promptly.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{consume, consumer, producer, Server};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

type Acked = HashMap<(i32, i64), String>;

/// Produces to the 3-partition topic "crash" until 3000 records are acked, then runs `stop`
/// while more are in flight; returns what was acked and how many were sent.
async fn produce_then(server: &mut Server, stop: impl FnOnce(&mut Server)) -> (Acked, u64) {
    let acked: Arc<Mutex<HashMap<(i32, i64), String>>> = Arc::default();
    let p = producer(
        &server.kafka,
        &[
            ("acks", "all"),
            ("message.timeout.ms", "5000"),
            ("retries", "0"),
        ],
    );
    let mut pending = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    // Produce until a few thousand records are acked, then queue a burst more and stop the
    // broker at once, so that some are surely in flight (acknowledgements follow the load:
    // without the burst, a fast broker may have acked everything sent by then).
    let mut burst = 0;
    while acked.lock().unwrap().len() < 3000 || burst < 2000 {
        if acked.lock().unwrap().len() >= 3000 {
            burst += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "producing stalled"
        );
        let value = format!("record-{i}");
        let record = FutureRecord::to("crash")
            .key("k")
            .payload(&value)
            .partition((i % 3) as i32);
        match p.send_result(record) {
            Ok(f) => {
                let acked = acked.clone();
                pending.push(tokio::spawn(async move {
                    if let Ok(Ok(d)) = f.await {
                        acked.lock().unwrap().insert((d.partition, d.offset), value);
                    }
                }));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        i += 1;
        if burst == 0 && i.is_multiple_of(200) {
            tokio::task::yield_now().await;
        }
    }
    stop(server);
    let sent = i;
    for t in pending {
        let _ = t.await;
    }
    drop(p);
    let acked = acked.lock().unwrap().clone();
    (acked, sent)
}

/// Reads every stored record of "crash" and checks that each acked one is at its acked
/// offset; returns what is stored.
fn check_acked_readable(server: &Server, acked: &Acked) -> HashMap<(i32, i64), String> {
    let c = consumer(&server.kafka, &[]);
    // Read everything stored: records committed but not yet acked at the kill count too.
    let stored_total: i64 = (0..3)
        .map(|p| {
            c.fetch_watermarks("crash", p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum();
    assert!(stored_total as usize >= acked.len());
    let got = consume(
        &c,
        "crash",
        &[
            (0, Offset::Beginning),
            (1, Offset::Beginning),
            (2, Offset::Beginning),
        ],
        stored_total as usize,
        Duration::from_secs(60),
    );
    let stored: HashMap<(i32, i64), String> = got
        .into_iter()
        .map(|g| {
            (
                (g.partition, g.offset),
                String::from_utf8(g.value.unwrap()).unwrap(),
            )
        })
        .collect();
    for (at, value) in acked {
        assert_eq!(
            stored.get(at),
            Some(value),
            "acked record at {at:?} is readable with the same offset"
        );
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_keeps_every_acked_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--default-partitions", "3"]);
    let (acked, sent) = produce_then(&mut server, |s| s.kill9()).await;
    assert!(
        acked.len() >= 3000 && (acked.len() as u64) < sent,
        "some records were in flight at the kill"
    );

    server.restart();
    let stored = check_acked_readable(&server, &acked);

    // Offsets continue without gaps after the restart.
    let p = producer(&server.kafka, &[("acks", "all")]);
    let high = stored
        .keys()
        .filter(|(p, _)| *p == 0)
        .map(|(_, o)| *o)
        .max()
        .unwrap_or(-1);
    let d = p
        .send(
            FutureRecord::to("crash")
                .key("k")
                .payload("after")
                .partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(d.offset > high, "new offsets come after everything stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_commits_acked_records_and_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    // A long batch timeout: at the signal, records sit in the open segment and only the
    // shutdown's flush can commit them.
    let mut server = Server::start(
        dir.path(),
        &["--default-partitions", "3", "--batch-timeout", "200ms"],
    );
    let mut exited_after = None;
    let (acked, _sent) = produce_then(&mut server, |s| {
        exited_after = s.terminate(Duration::from_secs(10));
    })
    .await;
    let took = exited_after.expect("sluice exits within 10 s of SIGTERM");
    assert!(acked.len() >= 3000);
    let log = server.log();
    assert!(
        log.contains("buffered segments committed") && log.contains("jobs stopped"),
        "shutdown went through every step; log:\n{log}"
    );
    eprintln!(
        "exited {took:?} after SIGTERM with {} records acked",
        acked.len()
    );

    server.start_again();
    check_acked_readable(&server, &acked);
}
