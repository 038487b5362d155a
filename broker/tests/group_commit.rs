//! When the segment buffer is flushed (broker/src/writer.rs): as soon as the flushes before
//! it are done (group commit), never sooner than `--batch-min-interval` after the previous
//! one, at the latest after `--batch-timeout`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use broker::{BrokerConfig, Metrics};
use tokio_util::sync::CancellationToken;

use common::{produce_frame, read_produce_response, start};

/// Sends `n` one-record requests one after another on one connection; the time of each ack.
fn produce_sequentially(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (0..n)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&produce_frame("orders", 1, 100, 0)).unwrap();
            let r = read_produce_response(&mut s);
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            t.elapsed()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_waits_for_its_own_flush_not_the_batch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let running = start(dir.path(), |c| {
        c.batch_timeout = Duration::from_secs(10);
        c.bucket_url = bucket;
    })
    .await;
    let addr = running.kafka_addr;
    let acks = tokio::task::spawn_blocking(move || produce_sequentially(addr, 10))
        .await
        .unwrap();
    // With a fixed timer each ack would take 10 s; group commit answers after one flush.
    let slowest = acks.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(2),
        "acks took {acks:?} with a 10 s batch timeout"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_min_interval_bounds_flushes_whatever_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let mut config =
        BrokerConfig::for_tests(format!("sqlite://{}", dir.path().join("meta.db").display()));
    config.batch_timeout = Duration::from_millis(300);
    config.batch_min_interval = Some(Duration::from_millis(300));
    let running = broker::start(config, metrics.clone(), CancellationToken::new())
        .await
        .unwrap();
    let addr = running.kafka_addr;
    // Warm up (topic creation), then eight connections produce as fast as acks allow.
    tokio::task::spawn_blocking(move || produce_sequentially(addr, 1))
        .await
        .unwrap();
    let before = metrics.segments_committed.get();
    let started = Instant::now();
    let senders: Vec<_> = (0..8)
        .map(|_| tokio::task::spawn_blocking(move || produce_sequentially(addr, 6)))
        .collect();
    let mut slowest = Duration::ZERO;
    for s in senders {
        slowest = slowest.max(*s.await.unwrap().iter().max().unwrap());
    }
    let elapsed = started.elapsed();
    let flushes = metrics.segments_committed.get() - before;
    // 48 requests at most one flush per 300 ms: each flush carries several of them.
    let allowed = (elapsed.as_millis() / 300) as u64 + 1;
    assert!(
        flushes <= allowed,
        "{flushes} flushes in {elapsed:?} with a 300 ms minimum interval"
    );
    assert!(flushes < 48, "requests shared flushes ({flushes} for 48)");
    // The latency bound: the interval (also the timeout here) plus the flush itself.
    assert!(
        slowest < Duration::from_millis(300 + 700),
        "the slowest ack took {slowest:?}"
    );
    running.shutdown().await;
}
