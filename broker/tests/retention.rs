//! Retention and segment garbage collection against a real agent (memory bucket).

use std::collections::BTreeMap;
mod common;

use std::io::Write;
use std::net::TcpStream;

use broker::retention::{run_once, Collector};
use broker::{BrokerConfig, Metrics};
use bytes::Bytes;
use common::{produce_frame, read_produce_response};
use tokio_util::sync::CancellationToken;

/// Produces `n` records stamped `timestamp` as one batch; returns the base offset.
fn produce(addr: std::net::SocketAddr, topic: &str, n: usize, timestamp: i64) -> i64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&produce_frame(topic, n, 1000, timestamp))
        .unwrap();
    let resp = read_produce_response(&mut s);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_moves_the_log_start_and_collects_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        BrokerConfig::for_tests(format!("sqlite://{}", dir.path().join("meta.db").display()));
    config.retention_interval = std::time::Duration::from_secs(3600); // passes are run by hand
    let running = broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    let b = running.broker.clone();
    let addr = running.kafka_addr;
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "3600000".to_string());
    let timed = b
        .meta()
        .create_topic("default", "timed", 1, &configs)
        .await
        .unwrap();
    let mut configs = BTreeMap::new();
    configs.insert("retention.bytes".to_string(), "25000".to_string());
    let sized = b
        .meta()
        .create_topic("default", "sized", 1, &configs)
        .await
        .unwrap();
    let kept = b
        .meta()
        .create_topic("default", "kept", 1, &BTreeMap::new())
        .await
        .unwrap();

    let now = broker::clock::now_ms();
    let old = now - 3 * 3_600_000;
    tokio::task::spawn_blocking(move || {
        // Each produce is its own segment (the test's batch timeout is 10 ms).
        assert_eq!(produce(addr, "timed", 10, old), 0);
        assert_eq!(produce(addr, "timed", 10, old), 10);
        assert_eq!(produce(addr, "timed", 10, now), 20);
        for i in 0..5 {
            assert_eq!(produce(addr, "sized", 10, now), i * 10);
        }
        assert_eq!(produce(addr, "kept", 5, old), 0);
    })
    .await
    .unwrap();
    let old_files: Vec<String> = b
        .meta()
        .batches_from(timed.id, 0, 0, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.object_key.to_string())
        .collect();

    let mut collector = Collector::default();
    let report = run_once(&b, &mut collector, now).await.unwrap();
    assert_eq!(
        report.batches_expired,
        2 + 3,
        "two old batches of 'timed', three of 'sized'"
    );
    let t = b
        .meta()
        .partition_state(timed.id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.log_start_offset, t.next_offset),
        (20, 30),
        "the log starts at the first recent batch"
    );
    let s = b
        .meta()
        .partition_state(sized.id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.log_start_offset, 30,
        "about 25 kB remain: the last two batches"
    );
    assert_eq!(
        b.meta()
            .partition_state(kept.id, 0)
            .await
            .unwrap()
            .unwrap()
            .log_start_offset,
        0,
        "no retention set: kept"
    );
    assert!(b
        .meta()
        .batches_from(timed.id, 0, 0, 10)
        .await
        .unwrap()
        .iter()
        .all(|r| r.base_offset >= 20));

    // The old segments are deleted on the second pass, not the first.
    assert_eq!(report.files_deleted, 0);
    for key in &old_files {
        assert!(b.bucket().get(key).await.is_ok());
    }
    let second = run_once(&b, &mut collector, now).await.unwrap();
    assert!(second.files_deleted >= 2, "{second:?}");
    for key in &old_files {
        assert!(b.bucket().get(key).await.is_err(), "{key} was deleted");
    }
    // A retention pass never moves the start backwards or past the end.
    assert_eq!(
        run_once(&b, &mut collector, now)
            .await
            .unwrap()
            .batches_expired,
        0
    );

    // An object with no metadata row (a crash between upload and commit) is an orphan once
    // it is old enough.
    b.bucket()
        .put_new(
            "segments/crashed/000000000001-x.seg",
            Bytes::from_static(b"partial"),
        )
        .await
        .unwrap();
    run_once(&b, &mut collector, now).await.unwrap();
    assert!(
        b.bucket()
            .get("segments/crashed/000000000001-x.seg")
            .await
            .is_ok(),
        "too young to be called an orphan"
    );
    let later = now + broker::retention::ORPHAN_GRACE_MS + 60_000;
    let r = run_once(&b, &mut collector, later).await.unwrap();
    assert_eq!(r.orphans_deleted, 1);
    assert!(b
        .bucket()
        .get("segments/crashed/000000000001-x.seg")
        .await
        .is_err());
    running.shutdown().await;
}
