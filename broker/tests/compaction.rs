//! Segment compaction: the store's swap (repoint, roll back on a mismatch, races with
//! retention and topic deletion) and whole passes against a real agent (memory bucket),
//! on SQLite always and on Postgres when `SLUICE_TEST_POSTGRES_URL` is set.
//!
//! On Postgres every test shares one database and a pass looks at every partition in it,
//! so the tests of this file take turns ([`TURN`]) and assert only on their own topics.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use broker::compaction::{run_once, SETTLE_MS};
use broker::retention::Collector;
use broker::store::plan::{AppendGroup, PendingBatch};
use broker::store::{CompactedFile, Metadata, MovedBatch};
use broker::{BrokerConfig, Metrics};
use bytes::{Bytes, BytesMut};
use common::{read_produce_response, records_frame};
use kafka_protocol::records::{Compression, Record, TimestampType};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

static TURN: Mutex<()> = Mutex::const_new(());

/// A fresh virtual cluster (topics are created only in clusters that exist).
async fn cluster(m: &Metadata) -> String {
    let name = format!("c-{}", uuid::Uuid::new_v4().simple());
    m.create_virtual_cluster("test-org", &name)
        .await
        .unwrap()
        .id
}

fn seg() -> String {
    format!("segments/test/{}", uuid::Uuid::new_v4().simple())
}

fn batch(n: i64, byte_offset: u64) -> PendingBatch {
    PendingBatch {
        byte_offset,
        byte_len: 100,
        offset_count: n,
        record_count: n,
        max_timestamp: 1,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        last_sequence: -1,
        transactional: false,
    }
}

fn group(topic_id: i64, partition: i32, n: i64) -> Vec<AppendGroup> {
    vec![AppendGroup {
        topic_id,
        partition,
        batches: vec![batch(n, 0)],
    }]
}

fn file<'a>(key: &'a str) -> CompactedFile<'a> {
    CompactedFile {
        object_key: key,
        size_bytes: 300,
        agent_id: "compactor",
        created_at_ms: broker::clock::now_ms(),
    }
}

/// Three one-batch files of partition 0 (the second also holds a batch of partition 1);
/// returns the topic id and the three keys.
async fn three_files(m: &Metadata) -> (i64, [String; 3]) {
    let t = m
        .create_topic(&cluster(m).await, "events", 2, &BTreeMap::new())
        .await
        .unwrap();
    let keys = [seg(), seg(), seg()];
    m.commit_segment(&keys[0], 100, "a", &group(t.id, 0, 5))
        .await
        .unwrap();
    let mut both = group(t.id, 0, 5);
    both.push(AppendGroup {
        topic_id: t.id,
        partition: 1,
        batches: vec![batch(3, 100)],
    });
    m.commit_segment(&keys[1], 200, "a", &both).await.unwrap();
    m.commit_segment(&keys[2], 100, "a", &group(t.id, 0, 5))
        .await
        .unwrap();
    (t.id, keys)
}

fn moves(rows: &[broker::store::CompactionRow]) -> Vec<MovedBatch> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| MovedBatch {
            base_offset: r.base_offset,
            old_file_id: r.file_id,
            new_byte_offset: i as u64 * 100,
        })
        .collect()
}

async fn swap_repoints_rows(m: &Metadata) {
    let (t, keys) = three_files(m).await;
    let cands = m
        .compaction_candidates(1 << 20, i64::MAX, 1_000_000)
        .await
        .unwrap();
    let mine: Vec<_> = cands.iter().filter(|c| c.topic_id == t).collect();
    assert_eq!(mine.len(), 1, "partition 0 only: partition 1 has one file");
    assert_eq!((mine[0].partition, mine[0].first_small_offset), (0, 0));
    assert!(
        m.compaction_candidates(100, i64::MAX, 1_000_000)
            .await
            .unwrap()
            .iter()
            .all(|c| c.topic_id != t),
        "no file is below 100 bytes"
    );
    assert!(
        m.compaction_candidates(150, i64::MAX, 1_000_000)
            .await
            .unwrap()
            .iter()
            .any(|c| c.topic_id == t && c.partition == 0),
        "the two 100-byte files are small below 150"
    );
    assert!(
        m.compaction_candidates(1 << 20, 0, 1_000_000)
            .await
            .unwrap()
            .iter()
            .all(|c| c.topic_id != t),
        "nothing was committed before time 0"
    );

    let rows = m.compaction_rows(t, 0, 0, 100).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (
                r.base_offset,
                r.last_offset,
                r.object_key.as_str(),
                r.file_size
            ))
            .collect::<Vec<_>>(),
        vec![
            (0, 4, keys[0].as_str(), 100),
            (5, 9, keys[1].as_str(), 200),
            (10, 14, keys[2].as_str(), 100)
        ]
    );
    assert_eq!(
        m.compaction_rows(t, 0, 5, 1).await.unwrap()[0].base_offset,
        5
    );

    let merged = seg();
    let done = m
        .swap_compacted(t, 0, file(&merged), &moves(&rows))
        .await
        .unwrap()
        .expect("every row still points at its old file");
    assert_eq!(
        done.files_released, 2,
        "the first and last file; the middle one still holds partition 1"
    );
    let after = m.batches_from(t, 0, 0, 10).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|r| (
                r.base_offset,
                r.last_offset,
                &*r.object_key,
                r.byte_offset,
                r.byte_len,
                r.object_size
            ))
            .collect::<Vec<_>>(),
        vec![
            (0, 4, merged.as_str(), 0, 100, 300),
            (5, 9, merged.as_str(), 100, 100, 300),
            (10, 14, merged.as_str(), 200, 100, 300)
        ],
        "same offsets and lengths, new file and positions"
    );
    assert_eq!(
        &*m.batches_from(t, 1, 0, 10).await.unwrap()[0].object_key,
        keys[1]
    );
    let unref: HashSet<String> = m
        .unreferenced_files(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert!(unref.contains(&keys[0]) && unref.contains(&keys[2]));
    assert!(!unref.contains(&keys[1]) && !unref.contains(&merged));
    let s = m.partition_state(t, 0).await.unwrap().unwrap();
    assert_eq!(
        (s.log_start_offset, s.next_offset),
        (0, 15),
        "heads untouched"
    );
}

async fn a_mismatched_row_rolls_back(m: &Metadata) {
    let (t, keys) = three_files(m).await;
    let rows = m.compaction_rows(t, 0, 0, 100).await.unwrap();
    let mut wrong = moves(&rows);
    wrong[2].old_file_id = wrong[0].old_file_id; // as if another pass had moved it
    let merged = seg();
    assert!(m
        .swap_compacted(t, 0, file(&merged), &wrong)
        .await
        .unwrap()
        .is_none());
    let after = m.batches_from(t, 0, 0, 10).await.unwrap();
    assert_eq!(
        after.iter().map(|r| &*r.object_key).collect::<Vec<_>>(),
        keys.iter().map(String::as_str).collect::<Vec<_>>(),
        "no row moved"
    );
    assert!(
        m.known_object_keys(std::slice::from_ref(&merged))
            .await
            .unwrap()
            .is_empty(),
        "the new file row was rolled back"
    );
    // Rows are matched within their partition: partition 1 has no batch at offset 5.
    let other = moves(&rows[1..2]);
    assert_eq!(other[0].base_offset, 5);
    assert!(m
        .swap_compacted(t, 1, file(&seg()), &other)
        .await
        .unwrap()
        .is_none());
}

async fn rows_under_retention_and_deletion_race(m: &Metadata) {
    let (t, keys) = three_files(m).await;
    let rows = m.compaction_rows(t, 0, 0, 100).await.unwrap();
    // Retention expires the first batch after the pass read the rows.
    assert_eq!(m.advance_log_start(t, 0, 5).await.unwrap(), 1);
    let merged = seg();
    assert!(
        m.swap_compacted(t, 0, file(&merged), &moves(&rows))
            .await
            .unwrap()
            .is_none(),
        "a row retention removed fails the swap"
    );
    let after = m.batches_from(t, 0, 0, 10).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|r| (r.base_offset, &*r.object_key))
            .collect::<Vec<_>>(),
        vec![(5, keys[1].as_str()), (10, keys[2].as_str())]
    );
    // The rows that are left still swap.
    let rest = moves(&rows[1..]);
    let done = m
        .swap_compacted(t, 0, file(&merged), &rest)
        .await
        .unwrap()
        .expect("the remaining rows point at their old files");
    assert_eq!(
        done.files_released, 1,
        "the last file; the middle one serves partition 1"
    );
    // Retention after a swap removes rows from the merged file: it becomes unreferenced.
    assert_eq!(m.advance_log_start(t, 0, 15).await.unwrap(), 2);
    assert!(m
        .unreferenced_files(i64::MAX)
        .await
        .unwrap()
        .iter()
        .any(|(_, k)| *k == merged));

    // A deleted topic's rows are gone: the swap changes nothing.
    let c = cluster(m).await;
    let d = m
        .create_topic(&c, "doomed", 1, &BTreeMap::new())
        .await
        .unwrap();
    m.commit_segment(&seg(), 100, "a", &group(d.id, 0, 1))
        .await
        .unwrap();
    m.commit_segment(&seg(), 100, "a", &group(d.id, 0, 1))
        .await
        .unwrap();
    let rows = m.compaction_rows(d.id, 0, 0, 100).await.unwrap();
    assert!(m.delete_topic(&c, "doomed").await.unwrap());
    let gone = seg();
    assert!(m
        .swap_compacted(d.id, 0, file(&gone), &moves(&rows))
        .await
        .unwrap()
        .is_none());
    assert!(m
        .known_object_keys(std::slice::from_ref(&gone))
        .await
        .unwrap()
        .is_empty());
}

/// Produces one batch of `n` records (values `tag-i`) to a partition; returns its base
/// offset. Each call is its own segment file (the test batch timeout is 10 ms).
fn produce(addr: std::net::SocketAddr, topic: &str, partition: i32, n: usize, tag: usize) -> i64 {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_000 + tag as i64,
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}-{}", "v".repeat(80)))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&records_frame(
        topic,
        partition,
        &records,
        Compression::None,
    ))
    .unwrap();
    let resp = read_produce_response(&mut s);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

/// Every stored batch of a partition as Fetch would serve it (base offsets patched in).
async fn served(b: &broker::Broker, topic_id: i64, partition: i32) -> Vec<(i64, Vec<u8>)> {
    let rows = b
        .meta()
        .batches_from(topic_id, partition, 0, 10_000)
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        let mut buf = BytesMut::new();
        broker::log::read_batch(b, &r, &mut buf).await.unwrap();
        out.push((r.base_offset, buf.to_vec()));
    }
    out
}

async fn a_pass_merges_small_files_and_the_collector_deletes_them(url: String) {
    let mut config = BrokerConfig::for_tests(url);
    // Passes are run by hand.
    config.retention_interval = Duration::from_secs(3600);
    config.compaction_interval = Duration::from_secs(3600);
    let running = broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    let b = running.broker.clone();
    let addr = running.kafka_addr;
    let topic = format!("merge-{}", uuid::Uuid::new_v4().simple());
    let t = b
        .meta()
        .create_topic("default", &topic, 2, &BTreeMap::new())
        .await
        .unwrap();
    let name = topic.clone();
    tokio::task::spawn_blocking(move || {
        for i in 0..40 {
            for p in 0..2 {
                assert_eq!(produce(addr, &name, p, 10, i), i as i64 * 10);
            }
        }
    })
    .await
    .unwrap();
    let before = [served(&b, t.id, 0).await, served(&b, t.id, 1).await];
    let old_keys: HashSet<String> = b
        .bucket()
        .list("segments/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(old_keys.len() >= 80, "{} objects", old_keys.len());
    let batch_len = before[0][0].1.len() as u64;

    // Room for about 14 batches a merged object: 40 batches make 3 objects per partition.
    let target = 14 * (batch_len + 44) + 12;
    let now = broker::clock::now_ms();
    let report = run_once(&b, target, now - 60_000, None).await.unwrap();
    assert_eq!(
        report.objects_written, 0,
        "nothing is settled a minute before it was made"
    );
    let report = run_once(&b, target, now + SETTLE_MS + 1, None)
        .await
        .unwrap();
    assert!(report.objects_written >= 4, "{report:?}");
    let after = [served(&b, t.id, 0).await, served(&b, t.id, 1).await];
    assert_eq!(
        after, before,
        "the same batches, bytes and offsets are served"
    );
    let (mut moved_rows, mut moved_bytes) = (0, 0);
    for p in 0..2 {
        let rows = b.meta().batches_from(t.id, p, 0, 1000).await.unwrap();
        let merged: HashSet<&str> = rows
            .iter()
            .filter(|r| r.object_key.starts_with("segments/compacted/"))
            .map(|r| &*r.object_key)
            .collect();
        let moved: Vec<_> = rows
            .iter()
            .filter(|r| merged.contains(&*r.object_key))
            .collect();
        // Runs are cut at the target size: a lone last batch stays where it is.
        assert!(
            moved.len() >= 39,
            "partition {p}: {} of 40 batches moved",
            moved.len()
        );
        moved_rows += moved.len() as u64;
        moved_bytes += moved.iter().map(|r| r.byte_len as u64).sum::<u64>();
        assert!(
            (3..=4).contains(&merged.len()),
            "partition {p}: {} merged objects",
            merged.len()
        );
        for key in &merged {
            let object = b.bucket().get(key).await.unwrap();
            assert!(
                object.len() as u64 <= target,
                "{key}: {} bytes",
                object.len()
            );
            let footer = broker::segment::read_footer(&object).expect("a segment footer");
            assert!(footer.iter().all(|e| e.partition == p && e.topic == t.uuid));
        }
    }
    let metrics = b.render_metrics();
    for name in [
        "sluice_compaction_objects_written_total",
        "sluice_compaction_segments_merged_total",
        "sluice_compaction_batches_moved_total",
        "sluice_compaction_bytes_rewritten_total",
        "sluice_compaction_pass_failures_total",
    ] {
        assert!(metrics.contains(name), "{name} is exported");
    }
    assert_eq!(
        b.metrics().compaction_segments_merged.get(),
        moved_rows,
        "each input file held one batch"
    );
    assert_eq!(b.metrics().compaction_batches_moved.get(), moved_rows);
    assert_eq!(b.metrics().compaction_bytes_rewritten.get(), moved_bytes);

    // Merged outputs are large enough now: a second pass leaves this topic alone.
    let keys_now = |rows: Vec<broker::store::BatchLocation>| {
        rows.into_iter()
            .map(|r| r.object_key.to_string())
            .collect::<Vec<_>>()
    };
    let rows_before = keys_now(b.meta().batches_from(t.id, 0, 0, 1000).await.unwrap());
    run_once(&b, target, now + SETTLE_MS + 1, None)
        .await
        .unwrap();
    assert_eq!(
        keys_now(b.meta().batches_from(t.id, 0, 0, 1000).await.unwrap()),
        rows_before
    );

    // The inputs are deleted only after two passes and the grace period.
    let mut collector = Collector::with_grace(Duration::from_secs(30));
    let bucket_keys = || async {
        b.bucket()
            .list("segments/")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<HashSet<String>>()
    };
    collector.collect(&b, now).await.unwrap();
    collector.collect(&b, now + 1_000).await.unwrap();
    let kept = bucket_keys().await;
    assert!(
        old_keys.iter().all(|k| kept.contains(k)),
        "two passes within the grace delete nothing"
    );
    collector.collect(&b, now + 31_000).await.unwrap();
    let left = bucket_keys().await;
    let old_left = old_keys.iter().filter(|k| left.contains(*k)).count();
    assert_eq!(
        old_left as u64,
        old_keys.len() as u64 - moved_rows,
        "only the small objects still referenced are left"
    );
    assert!(left.len() <= 8, "{} objects left", left.len());
    assert_eq!(
        [served(&b, t.id, 0).await, served(&b, t.id, 1).await],
        before,
        "still served from the merged objects"
    );
    // A reader holding rows resolved before the swap finds the old object gone; the fetch
    // path keys its second look-up on this.
    let gone = old_keys.iter().find(|k| !left.contains(*k)).unwrap();
    assert!(b
        .bucket()
        .get_range(gone, 0..1)
        .await
        .unwrap_err()
        .is_not_found());
    running.shutdown().await;
}

async fn sqlite() -> (Metadata, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    (Metadata::connect(&url).await.unwrap(), dir)
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the compaction tests did not run");
    }
    url
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    let (m, _dir) = super::sqlite().await;
                    super::$name(&m).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    let Some(url) = super::postgres_url() else { return };
                    let m = super::Metadata::connect(&url).await.expect("SLUICE_TEST_POSTGRES_URL is reachable");
                    super::$name(&m).await;
                }
            )*
        }
    };
}

on_both!(
    swap_repoints_rows,
    a_mismatched_row_rolls_back,
    rows_under_retention_and_deletion_race,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_on_sqlite() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    a_pass_merges_small_files_and_the_collector_deletes_them(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_on_postgres() {
    let _turn = TURN.lock().await;
    let Some(url) = postgres_url() else { return };
    a_pass_merges_small_files_and_the_collector_deletes_them(url).await;
}
