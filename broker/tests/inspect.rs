//! The console's API over a real agent (memory bucket): topics, records and groups.
//!
//! Runs on SQLite always and on Postgres when `SLUICE_TEST_POSTGRES_URL` is set. Records are
//! produced through the plaintext Kafka port, which serves the built-in `default` cluster,
//! so those tests name their topics and groups uniquely; the others use their own cluster.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use broker::groups::state::Join;
use broker::inspect::{self, InspectError, ReadFrom, RecordView, ResetTo};
use broker::{Broker, BrokerConfig, Metrics, Running};
use bytes::{BufMut, Bytes, BytesMut};
use common::{read_produce_response, records_frame};
use indexmap::IndexMap;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, TimestampType};
use tokio_util::sync::CancellationToken;

const DEFAULT: &str = "default";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A started agent; the temp dir holds the SQLite file when there is one.
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
    // Tests at once share the Postgres database: an agent group of its own keeps each
    // agent the coordinator of the groups its test joins directly.
    config.agent_group = unique("inspect");
    // Lag passes and retention are run by hand (or not at all).
    config.lag_interval = Duration::from_secs(3600);
    config.retention_interval = Duration::from_secs(3600);
    let running = broker::start(config, Metrics::new(), CancellationToken::new())
        .await
        .unwrap();
    Agent { running, _dir: dir }
}

async fn sqlite() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    start_on(url, Some(dir)).await
}

async fn postgres() -> Option<Agent> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").ok()?;
    Some(start_on(url, None).await)
}

/// A record for partition-local offset `i`.
fn record(
    i: i64,
    timestamp: i64,
    key: &str,
    value: &str,
    headers: &[(&str, Option<&str>)],
) -> Record {
    let mut h = IndexMap::new();
    for (k, v) in headers {
        h.insert(
            StrBytes::from_string(k.to_string()),
            v.map(|v| Bytes::from(v.to_string())),
        );
    }
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: i as i32,
        timestamp,
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: h,
        delete_horizon: false,
    }
}

/// Produces one batch through the Kafka port; returns the partition's error code.
async fn produce_code(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    records: Vec<Record>,
    compression: Compression,
) -> i16 {
    let frame = records_frame(topic, partition, &records, compression);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&frame).unwrap();
        read_produce_response(&mut s).responses[0].partition_responses[0].error_code
    })
    .await
    .unwrap()
}

/// Produces one batch through the Kafka port; returns its base offset.
async fn produce(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    records: Vec<Record>,
    compression: Compression,
) -> i64 {
    let frame = records_frame(topic, partition, &records, compression);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&frame).unwrap();
        let resp = read_produce_response(&mut s);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce failed");
        p.base_offset
    })
    .await
    .unwrap()
}

fn offsets(records: &[RecordView]) -> Vec<(i32, i64)> {
    records.iter().map(|r| (r.partition, r.offset)).collect()
}

fn text(b: &Option<Vec<u8>>) -> Option<&str> {
    b.as_deref().map(|b| std::str::from_utf8(b).unwrap())
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, InspectError>, contains: &str) {
    match r {
        Err(InspectError::Invalid(m)) => {
            assert!(m.contains(contains), "{m:?} mentions {contains:?}")
        }
        other => panic!("expected Invalid({contains}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, InspectError>) {
    assert!(
        matches!(r, Err(InspectError::NotFound(_))),
        "expected NotFound, got {r:?}"
    );
}

async fn topic_lifecycle(a: &Agent) {
    let b = a.broker();
    let c = b
        .meta()
        .create_virtual_cluster("test-org", &unique("c"))
        .await
        .unwrap()
        .id;
    inspect::create_topic(&b, &c, "orders", 3, &pairs(&[("retention.ms", "1000")]))
        .await
        .unwrap();
    match inspect::create_topic(&b, &c, "orders", 1, &[]).await {
        Err(InspectError::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The same rules as CreateTopics.
    assert_invalid(
        inspect::create_topic(&b, &c, "bad name", 1, &[]).await,
        "contains ' '",
    );
    assert_invalid(
        inspect::create_topic(&b, &c, "..", 1, &[]).await,
        "not a valid",
    );
    assert_invalid(
        inspect::create_topic(&b, &c, "t", 0, &[]).await,
        "partition count",
    );
    assert_invalid(
        inspect::create_topic(&b, &c, "t", 10_001, &[]).await,
        "partition count",
    );
    assert_invalid(
        inspect::create_topic(&b, &c, "t", 1, &pairs(&[("no.such", "1")])).await,
        "unknown topic config",
    );
    assert_invalid(
        inspect::create_topic(&b, &c, "t", 1, &pairs(&[("retention.ms", "soon")])).await,
        "invalid value",
    );
    assert_invalid(
        inspect::create_topic(
            &b,
            &c,
            "t",
            1,
            &pairs(&[("retention.ms", "1"), ("retention.ms", "2")]),
        )
        .await,
        "twice",
    );
    // A topic of the same name in another cluster is a different topic.
    let other = b
        .meta()
        .create_virtual_cluster("test-org", &unique("c"))
        .await
        .unwrap()
        .id;
    inspect::create_topic(&b, &other, "orders", 1, &[])
        .await
        .unwrap();
    inspect::create_topic(&b, &c, "audit", 1, &[])
        .await
        .unwrap();

    let list = inspect::topic_summaries(&b, &c).await.unwrap();
    let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["audit", "orders"],
        "sorted by name, this cluster only"
    );
    let orders = &list[1];
    assert_eq!(
        (orders.partitions, orders.records, orders.size_bytes),
        (3, 0, 0)
    );
    assert_eq!(orders.records_per_sec, 0.0);
    assert!(orders.created_at_ms > 0);

    let d = inspect::topic_detail(&b, &c, "orders").await.unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert!(d
        .partitions
        .iter()
        .enumerate()
        .all(|(i, p)| p.partition == i as i32
            && (p.start_offset, p.end_offset, p.size_bytes) == (0, 0, 0)));
    assert_eq!(d.configs, pairs(&[("retention.ms", "1000")]));
    let effective = |name: &str| {
        d.effective_configs
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.value.clone(), e.is_default))
            .unwrap()
    };
    assert_eq!(effective("retention.ms"), ("1000".to_string(), false));
    assert_eq!(effective("cleanup.policy"), ("delete".to_string(), true));
    assert!(!d.topic_uuid.is_empty());
    assert_not_found(inspect::topic_detail(&b, &c, "nope").await);

    // Alter: set one, delete another (back to its default).
    inspect::alter_topic_configs(
        &b,
        &c,
        "orders",
        &pairs(&[("cleanup.policy", "compact")]),
        &["retention.ms".to_string()],
    )
    .await
    .unwrap();
    let d = inspect::topic_detail(&b, &c, "orders").await.unwrap();
    assert_eq!(d.configs, pairs(&[("cleanup.policy", "compact")]));
    assert_invalid(
        inspect::alter_topic_configs(&b, &c, "orders", &pairs(&[("no.such", "1")]), &[]).await,
        "unknown topic config",
    );
    assert_invalid(
        inspect::alter_topic_configs(
            &b,
            &c,
            "orders",
            &pairs(&[("cleanup.policy", "shred")]),
            &[],
        )
        .await,
        "invalid value",
    );
    assert_invalid(
        inspect::alter_topic_configs(&b, &c, "orders", &[], &["no.such".to_string()]).await,
        "unknown topic config",
    );
    assert_invalid(
        inspect::alter_topic_configs(
            &b,
            &c,
            "orders",
            &pairs(&[("retention.ms", "5")]),
            &["retention.ms".to_string()],
        )
        .await,
        "both set and deleted",
    );
    assert_not_found(
        inspect::alter_topic_configs(&b, &c, "nope", &pairs(&[("retention.ms", "5")]), &[]).await,
    );
    let d = inspect::topic_detail(&b, &c, "orders").await.unwrap();
    assert_eq!(
        d.configs,
        pairs(&[("cleanup.policy", "compact")]),
        "refused changes left nothing behind"
    );

    inspect::delete_topic(&b, &c, "orders").await.unwrap();
    assert_not_found(inspect::delete_topic(&b, &c, "orders").await);
    assert_not_found(inspect::topic_detail(&b, &c, "orders").await);
    let names: Vec<String> = inspect::topic_summaries(&b, &c)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["audit"]);
    assert_eq!(
        inspect::topic_summaries(&b, &other).await.unwrap().len(),
        1,
        "the other cluster's topic stays"
    );
}

async fn read_records(a: &Agent) {
    let b = a.broker();
    let topic = unique("events");
    inspect::create_topic(&b, DEFAULT, &topic, 2, &[])
        .await
        .unwrap();
    let t0 = broker::clock::now_ms() - 60_000;
    let hdr: &[(&str, Option<&str>)] = &[("trace", Some("abc")), ("empty", None)];
    // Partition 0: offsets 0-2 plain, 3-5 compressed, 6 a transaction marker, 7-8 plain.
    let first: Vec<Record> = (0..3)
        .map(|i| record(i, t0 + i, &format!("k{i}"), &format!("v{i}"), hdr))
        .collect();
    assert_eq!(
        produce(a.addr(), &topic, 0, first, Compression::None).await,
        0
    );
    let zipped: Vec<Record> = (0..3)
        .map(|i| {
            record(
                i,
                t0 + 10 + i,
                &format!("k{}", i + 3),
                &format!("v{}", i + 3),
                &[],
            )
        })
        .collect();
    assert_eq!(
        produce(a.addr(), &topic, 0, zipped, Compression::Zstd).await,
        3
    );
    // A client may not write a marker; an empty committed transaction writes one (6).
    let mut forged = record(0, t0 + 15, "", "", &[]);
    forged.control = true;
    forged.transactional = true;
    assert_eq!(
        produce_code(a.addr(), &topic, 0, vec![forged], Compression::None).await,
        87 // INVALID_RECORD
    );
    let txn_id = unique("txn");
    let (pid, epoch) = broker::txn::init(&b, DEFAULT, &txn_id, 60_000, None)
        .await
        .unwrap();
    let topic_id = b.meta().topic(DEFAULT, &topic).await.unwrap().unwrap().id;
    b.meta()
        .add_txn_partitions(DEFAULT, &txn_id, pid, epoch, &[(topic_id, 0)], t0)
        .await
        .unwrap()
        .unwrap();
    let open = b.meta().txn(DEFAULT, &txn_id).await.unwrap().unwrap();
    broker::txn::end(&b, &open, true, epoch).await.unwrap();
    let last: Vec<Record> = (0..2)
        .map(|i| {
            record(
                i,
                t0 + 20 + i,
                &format!("k{}", i + 7),
                &format!("v{}", i + 7),
                &[],
            )
        })
        .collect();
    assert_eq!(
        produce(a.addr(), &topic, 0, last, Compression::Gzip).await,
        7
    );
    let p1: Vec<Record> = (0..2)
        .map(|i| record(i, t0 + 5 + 10 * i, &format!("p1-{i}"), "w", &[]))
        .collect();
    assert_eq!(produce(a.addr(), &topic, 1, p1, Compression::None).await, 0);

    let read = |partition, from, limit| {
        let b = b.clone();
        let topic = topic.clone();
        async move { inspect::read_records(&b, DEFAULT, &topic, partition, from, limit).await }
    };

    // Newest: the last offsets, markers skipped, in offset order.
    let newest = read(0, ReadFrom::Newest, 4).await.unwrap();
    assert_eq!(offsets(&newest), [(0, 5), (0, 7), (0, 8)]);
    let all = read(0, ReadFrom::Newest, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 7, 8]
    );
    let r0 = &all[0];
    assert_eq!((text(&r0.key), text(&r0.value)), (Some("k0"), Some("v0")));
    assert_eq!(r0.timestamp_ms, t0);
    assert_eq!(
        r0.headers,
        vec![
            ("trace".to_string(), Some(b"abc".to_vec())),
            ("empty".to_string(), None)
        ]
    );
    for r in &all {
        let expected = format!("k{}", r.offset);
        assert_eq!(
            text(&r.key),
            Some(expected.as_str()),
            "compressed batches decode too"
        );
    }

    // From an offset inside a compressed batch.
    let from4 = read(0, ReadFrom::Offset(4), 3).await.unwrap();
    assert_eq!(offsets(&from4), [(0, 4), (0, 5), (0, 7)]);
    assert_eq!(
        (text(&from4[0].value), from4[0].timestamp_ms),
        (Some("v4"), t0 + 11)
    );
    assert_eq!(
        offsets(&read(0, ReadFrom::Offset(-5), 2).await.unwrap()),
        [(0, 0), (0, 1)],
        "below the log start reads from the start"
    );
    assert!(read(0, ReadFrom::Offset(9), 10).await.unwrap().is_empty());
    assert!(read(0, ReadFrom::Offset(100), 10).await.unwrap().is_empty());

    // By time: the first record at or after it.
    let by_time = read(0, ReadFrom::Timestamp(t0 + 11), 10).await.unwrap();
    assert_eq!(offsets(&by_time), [(0, 4), (0, 5), (0, 7), (0, 8)]);
    assert!(read(0, ReadFrom::Timestamp(t0 + 1_000), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(read(0, ReadFrom::Newest, 0).await.unwrap().len(), 0);

    assert_not_found(read(2, ReadFrom::Newest, 10).await);
    assert_not_found(read(-1, ReadFrom::Newest, 10).await);
    assert_not_found(
        inspect::read_records(&b, DEFAULT, "no-such-topic", 0, ReadFrom::Newest, 1).await,
    );

    // Across partitions: newest by timestamp first.
    let merged = inspect::read_records_all_partitions(&b, DEFAULT, &topic, ReadFrom::Newest, 3)
        .await
        .unwrap();
    assert_eq!(offsets(&merged), [(0, 8), (0, 7), (1, 1)]);
    let merged =
        inspect::read_records_all_partitions(&b, DEFAULT, &topic, ReadFrom::Timestamp(t0 + 2), 3)
            .await
            .unwrap();
    assert_eq!(
        offsets(&merged),
        [(0, 2), (1, 0), (0, 3)],
        "oldest first from the time on"
    );

    // The topic's totals and partitions.
    let summary = inspect::topic_summaries(&b, DEFAULT)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == topic)
        .unwrap();
    assert_eq!(summary.records, 9 + 2, "offsets, markers included");
    assert!(summary.size_bytes > 0);
    let d = inspect::topic_detail(&b, DEFAULT, &topic).await.unwrap();
    assert_eq!(
        d.partitions
            .iter()
            .map(|p| (p.start_offset, p.end_offset))
            .collect::<Vec<_>>(),
        [(0, 9), (0, 2)]
    );
    assert_eq!(d.size_bytes, summary.size_bytes);
    assert!(d.partitions.iter().all(|p| p.size_bytes > 0));
}

async fn log_append_time_records(a: &Agent) {
    let b = a.broker();
    let topic = unique("stamped");
    inspect::create_topic(
        &b,
        DEFAULT,
        &topic,
        1,
        &pairs(&[("message.timestamp.type", "LogAppendTime")]),
    )
    .await
    .unwrap();
    let before = broker::clock::now_ms();
    produce(
        a.addr(),
        &topic,
        0,
        vec![record(0, 1_000, "k", "v", &[])],
        Compression::None,
    )
    .await;
    let got = inspect::read_records(&b, DEFAULT, &topic, 0, ReadFrom::Newest, 1)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].timestamp_ms >= before,
        "the broker's append time, not the producer's: {}",
        got[0].timestamp_ms
    );
}

/// Encodes consumer-protocol bytes: a version, then the message.
fn consumer_bytes(m: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    m.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

async fn groups_and_offset_resets(a: &Agent) {
    let b = a.broker();
    let topic = unique("orders");
    let other = unique("audit");
    let group = unique("billing");
    inspect::create_topic(&b, DEFAULT, &topic, 2, &[])
        .await
        .unwrap();
    inspect::create_topic(&b, DEFAULT, &other, 3, &[])
        .await
        .unwrap();
    let t0 = broker::clock::now_ms() - 60_000;
    // Partition 0: five batches of one record, one a millisecond; partition 1: one batch.
    for i in 0..5 {
        produce(
            a.addr(),
            &topic,
            0,
            vec![record(0, t0 + i, "k", "v", &[])],
            Compression::None,
        )
        .await;
    }
    let p1: Vec<Record> = (0..3)
        .map(|i| record(i, t0 + 10 + i, "k", "v", &[]))
        .collect();
    produce(a.addr(), &topic, 1, p1, Compression::None).await;

    assert!(!inspect::list_groups(&b, DEFAULT)
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == group));
    assert_not_found(inspect::group_detail(&b, DEFAULT, &group).await);

    // A group known only by its committed offsets.
    let commit = |partition, offset| broker::store::CommittedOffset {
        topic: topic.clone(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_time_ms: 0,
    };
    b.meta()
        .commit_offsets(DEFAULT, &group, &[commit(0, 2), commit(1, 3)])
        .await
        .unwrap();
    let listed = inspect::list_groups(&b, DEFAULT).await.unwrap();
    let g = listed.iter().find(|g| g.group_id == group).unwrap();
    assert_eq!(
        (
            g.state.as_str(),
            g.members,
            g.topics.clone(),
            g.total_offset_lag
        ),
        ("Empty", 0, vec![topic.clone()], Some(3))
    );
    assert_eq!(g.max_time_lag_seconds, None, "the lag job has not run yet");

    let d = inspect::group_detail(&b, DEFAULT, &group).await.unwrap();
    assert_eq!(
        (
            d.state.as_str(),
            d.protocol_type.as_str(),
            d.generation,
            d.members.len()
        ),
        ("Empty", "consumer", None, 0)
    );
    let rows: Vec<_> = d
        .partitions
        .iter()
        .map(|p| {
            (
                p.topic.as_str(),
                p.partition,
                p.committed_offset,
                p.log_end_offset,
                p.offset_lag,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [(topic.as_str(), 0, 2, 5, 3), (topic.as_str(), 1, 3, 3, 0)]
    );
    assert_eq!(d.partitions[0].time_lag_seconds, None);
    assert_eq!(d.partitions[1].time_lag_seconds, Some(0.0), "caught up");
    assert_eq!(d.total_offset_lag, 3);

    // After a lag pass the time lag is known.
    broker::lag::job::run_once(&b, broker::clock::now_ms())
        .await
        .unwrap();
    let d = inspect::group_detail(&b, DEFAULT, &group).await.unwrap();
    let lag = d.partitions[0]
        .time_lag_seconds
        .expect("time lag after a pass");
    assert!(lag >= 0.0);
    assert_eq!(d.max_time_lag_seconds, Some(lag));
    let listed = inspect::list_groups(&b, DEFAULT).await.unwrap();
    let g = listed.iter().find(|g| g.group_id == group).unwrap();
    assert_eq!(g.max_time_lag_seconds, Some(lag));

    // Resets.
    let moved = |r: Vec<inspect::OffsetReset>| -> Vec<(String, i32, Option<i64>, i64)> {
        r.into_iter()
            .map(|r| (r.topic, r.partition, r.previous_offset, r.new_offset))
            .collect()
    };
    let r = inspect::reset_group_offsets(&b, DEFAULT, &group, None, ResetTo::Earliest)
        .await
        .unwrap();
    assert_eq!(
        moved(r),
        [
            (topic.clone(), 0, Some(2), 0),
            (topic.clone(), 1, Some(3), 0)
        ]
    );
    let stored: Vec<i64> = b
        .meta()
        .group_offsets(DEFAULT, &group)
        .await
        .unwrap()
        .iter()
        .map(|o| o.offset)
        .collect();
    assert_eq!(stored, [0, 0], "committed");
    let r = inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&topic), ResetTo::Latest)
        .await
        .unwrap();
    assert_eq!(
        moved(r),
        [
            (topic.clone(), 0, Some(0), 5),
            (topic.clone(), 1, Some(0), 3)
        ]
    );
    let r = inspect::reset_group_offsets(&b, DEFAULT, &group, None, ResetTo::Timestamp(t0 + 2))
        .await
        .unwrap();
    assert_eq!(
        moved(r),
        [
            (topic.clone(), 0, Some(5), 2),
            (topic.clone(), 1, Some(3), 0)
        ],
        "the first batch at or after the time"
    );
    let r = inspect::reset_group_offsets(
        &b,
        DEFAULT,
        &group,
        None,
        ResetTo::Timestamp(t0 + 3_600_000),
    )
    .await
    .unwrap();
    assert_eq!(
        moved(r),
        [
            (topic.clone(), 0, Some(2), 5),
            (topic.clone(), 1, Some(0), 3)
        ],
        "after every record: the log end"
    );
    // A topic the group never committed on: all its partitions.
    let r = inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&other), ResetTo::Earliest)
        .await
        .unwrap();
    assert_eq!(
        moved(r),
        [
            (other.clone(), 0, None, 0),
            (other.clone(), 1, None, 0),
            (other.clone(), 2, None, 0)
        ]
    );
    assert_not_found(
        inspect::reset_group_offsets(&b, DEFAULT, &unique("ghost"), None, ResetTo::Earliest).await,
    );
    assert_not_found(
        inspect::reset_group_offsets(&b, DEFAULT, &group, Some("no-such-topic"), ResetTo::Latest)
            .await,
    );
    assert_invalid(
        inspect::reset_group_offsets(&b, DEFAULT, &group, None, ResetTo::Timestamp(-7)).await,
        "not a time",
    );

    // A live member: shown with its assignment, and resets are refused.
    let subscription = consumer_bytes(
        &ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_string(topic.clone())]),
    );
    let joined = b
        .groups()
        .join(
            DEFAULT,
            &group,
            Join {
                member_id: String::new(),
                instance_id: None,
                client_id: "console-test".to_string(),
                client_host: "/127.0.0.1".to_string(),
                session_timeout_ms: 30_000,
                rebalance_timeout_ms: 30_000,
                protocol_type: "consumer".to_string(),
                protocols: vec![("range".to_string(), subscription)],
                member_id_required: false,
            },
        )
        .await;
    assert_eq!(joined.error, 0);
    let assignment = consumer_bytes(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![0, 1]),
        ]),
    );
    let synced = b
        .groups()
        .sync(
            DEFAULT,
            &group,
            &joined.member_id,
            None,
            joined.generation,
            vec![(joined.member_id.clone(), assignment)],
        )
        .await;
    assert_eq!(synced.error, 0);

    let d = inspect::group_detail(&b, DEFAULT, &group).await.unwrap();
    assert_eq!(
        (d.state.as_str(), d.protocol.as_str(), d.generation),
        ("Stable", "range", Some(joined.generation))
    );
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(
        (
            m.member_id.as_str(),
            m.client_id.as_str(),
            m.client_host.as_str()
        ),
        (joined.member_id.as_str(), "console-test", "/127.0.0.1")
    );
    assert_eq!(m.assignment, vec![(topic.clone(), vec![0, 1])]);
    let listed = inspect::list_groups(&b, DEFAULT).await.unwrap();
    let g = listed.iter().find(|g| g.group_id == group).unwrap();
    assert_eq!((g.state.as_str(), g.members), ("Stable", 1));
    let mut expected_topics = vec![topic.clone(), other.clone()];
    expected_topics.sort();
    assert_eq!(g.topics, expected_topics);

    match inspect::reset_group_offsets(&b, DEFAULT, &group, None, ResetTo::Earliest).await {
        Err(InspectError::Conflict(m)) => {
            assert!(
                m.contains("1 active members; stop its consumers first"),
                "{m}"
            )
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Once the member leaves, the group can be reset again.
    assert_eq!(
        b.groups()
            .leave(DEFAULT, &group, &[(joined.member_id.clone(), None)]),
        [0]
    );
    inspect::reset_group_offsets(&b, DEFAULT, &group, Some(&topic), ResetTo::Earliest)
        .await
        .unwrap();
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let agent = super::sqlite().await;
                    super::$name(&agent).await;
                    agent.running.shutdown().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(agent) = super::postgres().await else {
                        eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set, the Postgres half of the inspect suite did not run");
                        return;
                    };
                    super::$name(&agent).await;
                    agent.running.shutdown().await;
                }
            )*
        }
    };
}

on_both_backends!(
    topic_lifecycle,
    read_records,
    log_append_time_records,
    groups_and_offset_resets,
);
