//! Segment compaction with the real binary: many small flushes over three partitions are
//! merged into a few large objects while a consumer reads and producers keep producing;
//! every record is read exactly once and in order, the bucket's object count drops, and
//! everything still reads from the merged objects, also after a restart. Runs on Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set (CI sets it), with a `file://` bucket either way.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{consume, consumer, producer, Got, Server};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

const TOPIC: &str = "merged";
const PARTITIONS: i32 = 3;
/// Waves of produce: each wave sends a few records to every partition and waits for the
/// acks, so each wave is its own small segment file.
const WAVES: usize = 150;
const PER_WAVE: usize = 4;

type Log = BTreeMap<(i32, i64), String>;

fn segment_objects(bucket: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "seg") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(bucket, &mut n);
    n
}

/// Produces `WAVES` waves starting at wave `from`; returns what was acked where.
async fn produce_waves(p: &FutureProducer, from: usize) -> Log {
    let mut acked = Log::new();
    for wave in from..from + WAVES {
        let mut pending = Vec::new();
        for partition in 0..PARTITIONS {
            for i in 0..PER_WAVE {
                let value = format!("w{wave}-p{partition}-{i}-{}", "x".repeat(200));
                let f = p
                    .send_result(
                        FutureRecord::<str, str>::to(TOPIC)
                            .payload(&value)
                            .partition(partition),
                    )
                    .expect("queued");
                pending.push((value, f));
            }
        }
        for (value, f) in pending {
            let d = f.await.expect("delivered").expect("acked");
            acked.insert((d.partition, d.offset), value);
        }
    }
    acked
}

/// Checks that `got` holds every record of `log` exactly once, in offset order per
/// partition.
fn check_exactly_once(got: &[Got], log: &Log, what: &str) {
    for partition in 0..PARTITIONS {
        let read: Vec<(i64, String)> = got
            .iter()
            .filter(|g| g.partition == partition)
            .map(|g| {
                (
                    g.offset,
                    String::from_utf8(g.value.clone().unwrap_or_default()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, String)> = log
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .map(|((_, o), v)| (*o, v.clone()))
            .collect();
        assert_eq!(
            read.len(),
            want.len(),
            "{what}: partition {partition} read {} records, {} were produced",
            read.len(),
            want.len()
        );
        for (i, ((ro, rv), (wo, wv))) in read.iter().zip(&want).enumerate() {
            assert!(
                ro == wo && rv == wv,
                "{what}: partition {partition} record {i}: read ({ro}, {}) expected ({wo}, {})",
                &rv[..rv.len().min(16)],
                &wv[..wv.len().min(16)]
            );
        }
        assert_eq!(
            want.first().map(|w| w.0),
            Some(0),
            "{what}: offsets start at 0"
        );
        assert!(
            want.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "{what}: partition {partition} has no gap"
        );
    }
}

fn read_all(kafka: &str, want: usize, timeout: Duration) -> Vec<Got> {
    let c = consumer(
        kafka,
        &[
            // Small fetches: the read takes many rounds, spread over the compaction passes.
            ("message.max.bytes", "8192"),
            ("fetch.max.bytes", "16384"),
            ("max.partition.fetch.bytes", "4096"),
        ],
    );
    let from: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    consume(&c, TOPIC, &from, want, timeout)
}

/// An unlabelled counter on `/metrics` (0 when absent).
fn counter(server: &Server, name: &str) -> f64 {
    let (_, body) = common::http_get(&server.http, "/metrics");
    body.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_segments_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    // Postgres when the environment has it; the bucket stays a directory, to count objects.
    let db = common::test_database(dir.path());
    let mut server = Server::start(
        dir.path(),
        &[
            "--database-url",
            &db,
            "--default-partitions",
            "3",
            "--batch-timeout",
            "10ms",
            "--compaction-interval",
            "1s",
            "--compaction-target-size",
            "1MiB",
            "--retention-interval",
            "1s",
            "--segment-delete-grace",
            "2s",
        ],
    );
    let bucket = dir.path().join("data").join("bucket");
    let p = producer(&server.kafka, &[("enable.idempotence", "true")]);

    let started = Instant::now();
    let mut log = produce_waves(&p, 0).await;
    let first_produce = started.elapsed();
    let objects_before = segment_objects(&bucket);
    eprintln!("{objects_before} objects after {WAVES} waves ({first_produce:?})");
    assert!(
        objects_before >= WAVES / 2,
        "{objects_before} objects: the waves should make many small flushes"
    );

    // A consumer reads from the beginning while the first waves are being merged and more
    // are produced.
    let total = 2 * WAVES * PER_WAVE * PARTITIONS as usize;
    let reader = {
        let kafka = server.kafka.clone();
        std::thread::spawn(move || read_all(&kafka, total, Duration::from_secs(120)))
    };
    // Merges take only segments committed SETTLE_MS (5 s) ago; with group commit the first
    // waves are done in about 3 s, so wait for the first merge before the second half, or
    // the reader could finish before any merge.
    let waiting = Instant::now();
    while counter(&server, "sluice_compaction_objects_written_total") == 0.0
        && waiting.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log.extend(produce_waves(&p, WAVES).await);
    assert_eq!(log.len(), total);
    let objects_peak = segment_objects(&bucket);
    let got = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let written_while_reading = counter(&server, "sluice_compaction_objects_written_total");
    assert!(
        written_while_reading > 0.0,
        "merges happened while the consumer was reading"
    );
    check_exactly_once(&got, &log, "the consumer reading during compaction");

    // The merged inputs go once they are unreferenced for the grace period.
    let produced = Instant::now();
    let mut objects_after = segment_objects(&bucket);
    while objects_after > objects_before / 10 && produced.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        objects_after = segment_objects(&bucket);
    }
    let settled_in = produced.elapsed();
    let written = counter(&server, "sluice_compaction_objects_written_total");
    let merged = counter(&server, "sluice_compaction_segments_merged_total");
    let moved = counter(&server, "sluice_compaction_batches_moved_total");
    let bytes = counter(&server, "sluice_compaction_bytes_rewritten_total");
    let failures = counter(&server, "sluice_compaction_pass_failures_total");
    eprintln!(
        "objects: {objects_before} after the first waves, {objects_peak} after the second, \
         {objects_after} {settled_in:?} later; written {written} ({written_while_reading} while \
         the consumer read), merged {merged}, batches \
         moved {moved}, bytes {bytes}, pass failures {failures}"
    );
    assert!(
        objects_after <= objects_before / 10,
        "{objects_after} objects left of {} small flushes",
        2 * WAVES
    );
    assert!(
        written >= 3.0 && merged >= WAVES as f64,
        "{written} written, {merged} merged"
    );
    assert!(bytes > 0.0 && moved >= merged);
    assert_eq!(failures, 0.0, "no pass failed");

    // A fresh consumer reads everything again, now from the merged objects.
    let again = read_all(&server.kafka, total, Duration::from_secs(60));
    check_exactly_once(&again, &log, "a fresh consumer after compaction");

    // And after a restart.
    drop(p);
    server.restart();
    let after_restart = read_all(&server.kafka, total, Duration::from_secs(60));
    check_exactly_once(&after_restart, &log, "a fresh consumer after a restart");
    assert!(!server.log().contains("reading batch from bucket failed"));
}
