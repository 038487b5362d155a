//! Key compaction (`cleanup.policy=compact`) through whole passes against a real agent
//! (memory bucket): records produced through the Kafka port, passes run by hand, the log
//! read back from the start through the console's record reader (the rows and bytes the
//! Fetch path serves). On SQLite always and on Postgres when `SLUICE_TEST_POSTGRES_URL`
//! is set.
//!
//! On Postgres the tests share one database and a pass looks at every compacted topic in
//! it, so the tests of this file take turns ([`TURN`]) and assert only on their own
//! topics.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use broker::inspect::{self, ReadFrom};
use broker::key_compaction::run_once;
use broker::{Broker, BrokerConfig, Metrics, Running};
use bytes::{Bytes, BytesMut};
use common::{read_produce_response, records_frame};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

static TURN: Mutex<()> = Mutex::const_new(());

const DEFAULT: &str = "default";

/// A record as read back: offset, key, value.
type Row = (i64, Option<String>, Option<String>);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

struct Agent {
    running: Running,
    _dir: Option<tempfile::TempDir>,
}

impl Agent {
    fn broker(&self) -> Arc<Broker> {
        self.running.broker.clone()
    }

    fn addr(&self) -> SocketAddr {
        self.running.kafka_addr
    }
}

async fn start_on(database_url: String, dir: Option<tempfile::TempDir>) -> Agent {
    let mut config = BrokerConfig::for_tests(database_url);
    // Passes are run by hand.
    config.retention_interval = Duration::from_secs(3600);
    config.compaction_interval = Duration::from_secs(3600);
    let running = broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    Agent { running, _dir: dir }
}

async fn create(b: &Broker, configs: &[(&str, &str)]) -> (String, i64) {
    let name = unique("compacted");
    let configs: BTreeMap<String, String> = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let t = b
        .meta()
        .create_topic(DEFAULT, &name, 1, &configs)
        .await
        .unwrap();
    (name, t.id)
}

fn record(i: usize, key: Option<&str>, value: Option<&str>) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: i as i32,
        timestamp: 1_700_000_000_000 + i as i64,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        headers: Default::default(),
        delete_horizon: false,
    }
}

fn send(addr: SocketAddr, frame: Vec<u8>) -> i64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&frame).unwrap();
    let resp = read_produce_response(&mut s);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce refused");
    p.base_offset
}

/// Produces one batch of (key, value) records to partition 0; returns its base offset.
async fn produce(
    addr: SocketAddr,
    topic: &str,
    records: &[(Option<&str>, Option<&str>)],
    compression: Compression,
) -> i64 {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| record(i, *k, *v))
        .collect();
    let frame = records_frame(topic, 0, &records, compression);
    tokio::task::spawn_blocking(move || send(addr, frame))
        .await
        .unwrap()
}

/// Every record of partition 0 from the start, in offset order.
async fn read_all(b: &Broker, topic: &str) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let mut from = 0;
    loop {
        let page = inspect::read_records(b, DEFAULT, topic, 0, ReadFrom::Offset(from), 500)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        from = last.offset + 1;
        let text =
            |v: &Option<Vec<u8>>| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
        out.extend(
            page.iter()
                .map(|r| (r.offset, text(&r.key), text(&r.value))),
        );
    }
}

fn now() -> i64 {
    broker::clock::now_ms()
}

/// The records that must survive compaction of `log` whose batch starting at `head` is
/// the partition's last: the last of each key, every null-key record, the whole head.
fn expected(log: &[Row], head: i64) -> Vec<Row> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (offset, key, _) in log {
        if let Some(k) = key {
            last.insert(k.as_str(), *offset);
        }
    }
    log.iter()
        .filter(|(offset, key, _)| {
            *offset >= head || key.as_deref().is_none_or(|k| last[k] == *offset)
        })
        .cloned()
        .collect()
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

async fn keeps_the_last_record_per_key(a: &Agent) {
    let b = a.broker();
    // The third pass below rewrites a little new data over a compacted log.
    let (topic, topic_id) = create(
        &b,
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    // 30 requests of 20 updates over 20 keys, in every codec; one null-key record.
    let mut head = 0;
    for round in 0..30usize {
        let keys: Vec<String> = (0..20)
            .map(|j| format!("k{}", (round * 3 + j * j) % 20))
            .collect();
        let values: Vec<String> = (0..20).map(|j| format!("r{round}-{j}")).collect();
        let mut batch: Vec<(Option<&str>, Option<&str>)> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
            .collect();
        if round == 10 {
            batch.push((None, Some("no key")));
        }
        head = produce(a.addr(), &topic, &batch, CODECS[round % CODECS.len()]).await;
    }
    let before = read_all(&b, &topic).await;
    assert_eq!(before.len(), 601);
    let want = expected(&before, head);
    assert!(want.len() < 60, "{} records survive", want.len());
    let keys: std::collections::HashSet<_> = want.iter().filter_map(|r| r.1.clone()).collect();
    assert_eq!(keys.len(), 20, "every key survives");

    let report = run_once(&b, now()).await.unwrap();
    assert!(
        report.records_removed >= (before.len() - want.len()) as u64,
        "{report:?}"
    );
    assert!(report.objects_written >= 1 && report.partitions_cleaned >= 1);
    let after = read_all(&b, &topic).await;
    assert_eq!(
        after, want,
        "the last record of each key, at its own offset, plus the head batch"
    );
    let state = b
        .meta()
        .partition_state(topic_id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.log_start_offset, state.next_offset),
        (0, 601),
        "heads untouched"
    );

    // Nothing new: a second pass leaves the topic as it is.
    let rows = b.meta().batches_from(topic_id, 0, 0, 1_000).await.unwrap();
    run_once(&b, now()).await.unwrap();
    assert_eq!(
        b.meta().batches_from(topic_id, 0, 0, 1_000).await.unwrap(),
        rows
    );

    // More updates: the old head is compacted now, against the new keys.
    let mut log = after;
    for round in 30..33usize {
        let k = format!("k{round}");
        let batch = [
            (Some("k0"), Some("latest")),
            (Some(k.as_str()), Some("new")),
        ];
        head = produce(a.addr(), &topic, &batch, Compression::None).await;
        log.push((head, Some("k0".into()), Some("latest".into())));
        log.push((head + 1, Some(k), Some("new".into())));
    }
    run_once(&b, now()).await.unwrap();
    assert_eq!(read_all(&b, &topic).await, expected(&log, head));

    let metrics = b.render_metrics();
    for name in [
        "sluice_key_compaction_records_removed_total",
        "sluice_key_compaction_bytes_rewritten_total",
        "sluice_key_compaction_objects_written_total",
    ] {
        assert!(metrics.contains(name), "{name} is exported");
    }
    assert!(b.metrics().key_compaction_records_removed.get() >= report.records_removed);
    // Rewritten objects live under their own prefix; replaced ones are unreferenced.
    let rows = b.meta().batches_from(topic_id, 0, 0, 1_000).await.unwrap();
    assert!(rows
        .iter()
        .any(|r| r.object_key.starts_with("segments/key-compacted/")));
    assert!(!b
        .meta()
        .unreferenced_files(i64::MAX)
        .await
        .unwrap()
        .is_empty());
}

async fn tombstones_outlive_delete_retention(a: &Agent) {
    let b = a.broker();
    let (quick, _) = create(
        &b,
        &[
            ("cleanup.policy", "compact,delete"),
            ("delete.retention.ms", "0"),
            ("retention.ms", "-1"),
        ],
    )
    .await;
    let (slow, _) = create(&b, &[("cleanup.policy", "compact")]).await;
    for topic in [&quick, &slow] {
        let values: Vec<(Option<&str>, Option<&str>)> = ["k0", "k1", "k2", "k3", "k4"]
            .iter()
            .map(|k| (Some(*k), Some("v")))
            .collect();
        produce(a.addr(), topic, &values, Compression::Lz4).await;
        produce(
            a.addr(),
            topic,
            &[(Some("k0"), None), (Some("k1"), None)],
            Compression::None,
        )
        .await;
        produce(
            a.addr(),
            topic,
            &[(Some("k9"), Some("head"))],
            Compression::None,
        )
        .await;
    }
    let tombstones_kept: Vec<Row> = vec![
        (2, Some("k2".into()), Some("v".into())),
        (3, Some("k3".into()), Some("v".into())),
        (4, Some("k4".into()), Some("v".into())),
        (5, Some("k0".into()), None),
        (6, Some("k1".into()), None),
        (7, Some("k9".into()), Some("head".into())),
    ];
    // The first pass cleans the tombstones: they stay whatever delete.retention.ms says.
    run_once(&b, now()).await.unwrap();
    assert_eq!(read_all(&b, &quick).await, tombstones_kept);
    assert_eq!(read_all(&b, &slow).await, tombstones_kept);
    // The next pass removes them where delete.retention.ms has passed (0 ms), only there.
    run_once(&b, now()).await.unwrap();
    let gone: Vec<Row> = tombstones_kept
        .iter()
        .filter(|r| r.2.is_some())
        .cloned()
        .collect();
    assert_eq!(read_all(&b, &quick).await, gone);
    assert_eq!(read_all(&b, &slow).await, tombstones_kept);
    // A day later the default retention (one day) has passed too.
    run_once(&b, now() + 86_400_001).await.unwrap();
    assert_eq!(read_all(&b, &slow).await, gone);
}

async fn young_records_wait_for_the_min_lag(a: &Agent) {
    let b = a.broker();
    let (topic, topic_id) = create(
        &b,
        &[
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "3600000"),
        ],
    )
    .await;
    for i in 0..4 {
        let v = format!("v{i}");
        produce(
            a.addr(),
            &topic,
            &[(Some("k"), Some(&v)), (Some("j"), Some(&v))],
            Compression::None,
        )
        .await;
    }
    let before = read_all(&b, &topic).await;
    let rows = b.meta().batches_from(topic_id, 0, 0, 100).await.unwrap();
    run_once(&b, now()).await.unwrap();
    assert_eq!(
        read_all(&b, &topic).await,
        before,
        "nothing is an hour old yet"
    );
    assert_eq!(
        b.meta().batches_from(topic_id, 0, 0, 100).await.unwrap(),
        rows
    );
    run_once(&b, now() + 3_600_001).await.unwrap();
    assert_eq!(read_all(&b, &topic).await, expected(&before, 6));
}

/// A Produce v9 frame of a transactional batch.
fn txn_frame(topic: &str, txn_id: &str, pid: i64, epoch: i16, records: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: true,
            producer_id: pid,
            producer_epoch: epoch,
            ..record(i, Some(k), Some(v))
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let req = ProduceRequest::default()
        .with_transactional_id(Some(StrBytes::from_string(txn_id.to_string()).into()))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.freeze()))])]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(common::CORRELATION_ID)
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .unwrap();
    req.encode(&mut buf, 9).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

async fn aborted_transactions_are_removed(a: &Agent) {
    let b = a.broker();
    let (topic, topic_id) = create(
        &b,
        &[("cleanup.policy", "compact"), ("delete.retention.ms", "0")],
    )
    .await;
    produce(
        a.addr(),
        &topic,
        &[(Some("k0"), Some("a")), (Some("k1"), Some("a"))],
        Compression::None,
    )
    .await;
    let txn_id = unique("txn");
    let (pid, epoch) = broker::txn::init(&b, DEFAULT, &txn_id, 60_000, None)
        .await
        .unwrap();
    b.meta()
        .add_txn_partitions(DEFAULT, &txn_id, pid, epoch, &[(topic_id, 0)], now())
        .await
        .unwrap()
        .unwrap();
    let frame = txn_frame(
        &topic,
        &txn_id,
        pid,
        epoch,
        &[("k0", "aborted"), ("k2", "aborted")],
    );
    let at = tokio::task::spawn_blocking({
        let addr = a.addr();
        move || send(addr, frame)
    })
    .await
    .unwrap();
    assert_eq!(at, 2);
    let open = b.meta().txn(DEFAULT, &txn_id).await.unwrap().unwrap();
    broker::txn::end(&b, &open, false, epoch).await.unwrap();
    produce(
        a.addr(),
        &topic,
        &[(Some("k9"), Some("head"))],
        Compression::None,
    )
    .await;
    assert_eq!(
        b.meta()
            .key_compaction_aborted(topic_id, 0, i64::MAX)
            .await
            .unwrap(),
        vec![(pid, 2, 4)],
        "the abort marker is offset 4"
    );
    let kept: Vec<Row> = vec![
        (0, Some("k0".into()), Some("a".into())),
        (1, Some("k1".into()), Some("a".into())),
        (5, Some("k9".into()), Some("head".into())),
    ];

    run_once(&b, now()).await.unwrap();
    assert_eq!(
        read_all(&b, &topic).await,
        kept,
        "the aborted records are gone and superseded nothing"
    );
    let bases = |rows: Vec<broker::store::BatchLocation>| {
        rows.iter().map(|r| r.base_offset).collect::<Vec<_>>()
    };
    assert_eq!(
        bases(b.meta().batches_from(topic_id, 0, 0, 100).await.unwrap()),
        [0, 4, 5],
        "the marker stays until a later pass"
    );
    run_once(&b, now()).await.unwrap();
    assert_eq!(read_all(&b, &topic).await, kept);
    assert_eq!(
        bases(b.meta().batches_from(topic_id, 0, 0, 100).await.unwrap()),
        [0, 5]
    );
    assert!(
        b.meta()
            .key_compaction_aborted(topic_id, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty(),
        "the aborted transaction's row went with its marker"
    );
}

async fn sqlite() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    start_on(url, Some(dir)).await
}

async fn postgres() -> Option<Agent> {
    let Ok(url) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the key compaction tests did not run"
        );
        return None;
    };
    Some(start_on(url, None).await)
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    let a = super::sqlite().await;
                    super::$name(&a).await;
                    a.running.shutdown().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    let Some(a) = super::postgres().await else { return };
                    super::$name(&a).await;
                    a.running.shutdown().await;
                }
            )*
        }
    };
}

on_both!(
    keeps_the_last_record_per_key,
    tombstones_outlive_delete_retention,
    young_records_wait_for_the_min_lag,
    aborted_transactions_are_removed,
);
