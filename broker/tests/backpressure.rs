//! The backpressure gate against a real listener: while the produce gate is closed a
//! connection's request is not read off the socket (the client's write blocks: TCP pushes
//! back), and it is read and answered once the gate opens. The fetch gate does not stall
//! producers.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use broker::{BrokerConfig, Metrics};
use common::{produce_frame, read_produce_response};
use tokio_util::sync::CancellationToken;

async fn start(dir: &std::path::Path) -> broker::Running {
    let mut config = BrokerConfig::for_tests(format!("sqlite://{}", dir.join("meta.db").display()));
    config.produce_inflight_bytes = 1 << 20;
    config.fetch_inflight_bytes = 1 << 20;
    broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_gate_stops_reading_and_an_open_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let addr = running.kafka_addr;
    let gate = running.broker.produce_gate().clone();

    // An established connection (a closed gate also pauses accepting new ones).
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&produce_frame("pushback", 1, 10, 0)).unwrap();
    assert_eq!(
        read_produce_response(&mut s).responses[0].partition_responses[0].error_code,
        0
    );

    // Close the gate: everything it has is held here.
    let held = gate
        .try_acquire(1 << 20)
        .expect("the gate is empty between requests");
    assert!(!gate.is_open());

    // 32 MiB cannot sit in loopback socket buffers: the write blocks until the broker reads.
    let frame = produce_frame("pushback", 1, 32 << 20, 0);
    let writer = std::thread::spawn(move || {
        s.write_all(&frame).unwrap();
        let written_at = Instant::now();
        (read_produce_response(&mut s), written_at)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.waiting() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gate.waiting(),
        1,
        "the request waits for the gate before its payload is read"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !writer.is_finished(),
        "the client's write is blocked: the broker is not reading"
    );

    let opened_at = Instant::now();
    drop(held);
    let (resp, written_at) = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert!(
        written_at >= opened_at,
        "the payload was read only after the gate opened"
    );
    // The batch is far over max.message.bytes: a clear refusal, after reading it.
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 10);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.inflight() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        gate.inflight(),
        0,
        "the request's bytes were released after its response"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_fetch_gate_does_not_stall_producers() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let addr = running.kafka_addr;
    let _fetch_full = running.broker.fetch_gate().try_acquire(1 << 20).unwrap();
    let frame = produce_frame("still-open", 1, 100, 0);
    let resp = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&frame).unwrap();
        read_produce_response(&mut s)
    })
    .await
    .unwrap();
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    running.shutdown().await;
}
