//! Round trips through the real broker binary with librdkafka (the rdkafka crate).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{consume, consumer, producer, Server};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics request");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating {t} failed: {e}"));
    }
}

/// Produces `n` records round-robin over `partitions` with the given codec and checks that
/// every record comes back with its key, value and headers, with gap-free offsets.
async fn round_trip(server: &Server, topic: &str, partitions: i32, codec: &str, n: usize) {
    create_topic(&server.kafka, topic, partitions, &[]).await;
    let p = producer(
        &server.kafka,
        &[("compression.type", codec), ("acks", "all")],
    );
    let mut futures = Vec::new();
    for i in 0..n {
        let key = format!("key-{i}");
        let value = format!("value-{i}-{}", "x".repeat(i % 50));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "idx",
                value: Some(&i.to_string()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let partition = (i as i32) % partitions;
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .partition(partition);
        futures.push(p.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    let mut acked: HashMap<(i32, i64), usize> = HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        let d = f
            .await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("record {i} not acked: {e}"));
        assert_eq!(d.partition, (i as i32) % partitions);
        assert!(
            acked.insert((d.partition, d.offset), i).is_none(),
            "offset handed out twice"
        );
    }
    let c = consumer(&server.kafka, &[]);
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    let got = consume(&c, topic, &starts, n, Duration::from_secs(30));
    assert_eq!(got.len(), n, "every record is read back");
    let mut next: HashMap<i32, i64> = HashMap::new();
    for g in &got {
        let expected = next.entry(g.partition).or_insert(0);
        assert_eq!(
            g.offset, *expected,
            "offsets are contiguous in partition {}",
            g.partition
        );
        *expected += 1;
        let i = acked[&(g.partition, g.offset)];
        assert_eq!(g.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(
            g.value.as_deref(),
            Some(format!("value-{i}-{}", "x".repeat(i % 50)).as_bytes())
        );
        assert_eq!(
            g.headers[0],
            ("idx".to_string(), Some(i.to_string().into_bytes()))
        );
        assert_eq!(g.headers[1], ("empty".to_string(), None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_one_and_twelve_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        round_trip(&server, &format!("rt-{codec}-1"), 1, codec, 300).await;
        round_trip(&server, &format!("rt-{codec}-12"), 12, codec, 600).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_values_and_one_mib_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "big", 1, &[("max.message.bytes", "5000000")]).await;
    let p = producer(&server.kafka, &[("message.max.bytes", "5000000")]);
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    p.send(
        FutureRecord::to("big").key("tomb").payload(&[] as &[u8]),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    p.send(
        FutureRecord::<str, [u8]>::to("big").key("null"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        p.send(
            FutureRecord::to("big").key("big").payload(&big),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let c = consumer(
        &server.kafka,
        &[
            ("fetch.max.bytes", "1000000"),
            ("max.partition.fetch.bytes", "100000"),
        ],
    );
    let got = consume(
        &c,
        "big",
        &[(0, Offset::Beginning)],
        5,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].value.as_deref(), Some(&[][..]));
    assert_eq!(got[1].value, None, "a null value stays null");
    for g in &got[2..] {
        assert_eq!(
            g.value.as_deref(),
            Some(&big[..]),
            "1 MiB values survive, even past the fetch size limits"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_from_middle_and_tail_with_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "tail", 1, &[]).await;
    let p = producer(&server.kafka, &[]);
    for i in 0..100 {
        p.send(
            FutureRecord::to("tail").key("k").payload(&format!("m{i}")),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let c = consumer(&server.kafka, &[]);
    let got = consume(
        &c,
        "tail",
        &[(0, Offset::Offset(42))],
        58,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 58);
    assert_eq!(got[0].offset, 42);
    assert_eq!(got[0].value.as_deref(), Some(&b"m42"[..]));

    // Tail from the end: the consumer long-polls; a record produced later arrives quickly.
    let tailer = consumer(&server.kafka, &[("fetch.wait.max.ms", "5000")]);
    let waiter = tokio::task::spawn_blocking(move || {
        let got = consume(
            &tailer,
            "tail",
            &[(0, Offset::End)],
            1,
            Duration::from_secs(30),
        );
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = Instant::now();
    p.send(
        FutureRecord::to("tail").key("k").payload("late"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (got, arrived) = waiter.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, 100);
    assert_eq!(got[0].value.as_deref(), Some(&b"late"[..]));
    assert!(
        arrived.duration_since(sent) < Duration::from_secs(2),
        "long-poll woke up on the commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_has_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "idem", 3, &[]).await;
    let p = producer(
        &server.kafka,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "1"),
        ],
    );
    let mut futures = Vec::new();
    for i in 0..3000 {
        let (k, v) = (format!("{i}"), format!("v{i}"));
        let record = FutureRecord::to("idem")
            .key(&k)
            .payload(&v)
            .partition(i % 3);
        futures.push(p.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for f in futures {
        f.await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("not acked: {e}"));
    }
    let c = consumer(&server.kafka, &[]);
    let got = consume(
        &c,
        "idem",
        &[
            (0, Offset::Beginning),
            (1, Offset::Beginning),
            (2, Offset::Beginning),
        ],
        3000,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 3000);
    let mut keys: Vec<_> = got.iter().map(|g| g.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3000, "no duplicates");
    // Nothing beyond the 3000 either.
    assert!(consume(
        &c,
        "idem",
        &[
            (0, Offset::Offset(1000)),
            (1, Offset::Offset(1000)),
            (2, Offset::Offset(1000))
        ],
        1,
        Duration::from_secs(2)
    )
    .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_and_max_timestamp() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use rdkafka::consumer::Consumer;
    use rdkafka::TopicPartitionList;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "times", 1, &[]).await;
    let p = producer(&server.kafka, &[("linger.ms", "0")]);
    let base = 1_750_000_000_000i64;
    // One batch per record: each awaited before the next is sent.
    for i in 0..10i64 {
        p.send(
            FutureRecord::to("times")
                .key("k")
                .payload("v")
                .timestamp(base + i * 1000),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let c = consumer(&server.kafka, &[]);
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let found = c.offsets_for_times(tpl, Duration::from_secs(10)).unwrap();
        found.elements()[0].offset()
    };
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 5000), Offset::Offset(5));
    assert_eq!(
        lookup(base + 4500),
        Offset::Offset(5),
        "the first record at or after the time"
    );
    assert_eq!(lookup(base + 60_000), Offset::End, "nothing that late: -1");

    // Max timestamp (-3, ListOffsets v7+): the offset holding the largest timestamp.
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("times")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3)])]);
    let resp: ListOffsetsResponse = common::decode(
        common::raw_request(&server.kafka, ApiKey::ListOffsets, 7, &req),
        7,
    );
    let part = &resp.topics[0].partitions[0];
    assert_eq!(
        (part.error_code, part.offset, part.timestamp),
        (0, 9, base + 9000)
    );
}
