//! Transactions through the real broker binary with librdkafka (the rdkafka crate):
//! commit and abort, read_committed against read_uncommitted, an open transaction holding
//! the last stable offset, zombie fencing, sendOffsetsToTransaction, and the operator
//! APIs. On SQLite, and again on Postgres (with the S3 bucket) when the test
//! environment names them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{consume, consumer, producer, raw_request, Server};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t} failed: {e}"));
    }
}

fn txn_producer(bootstrap: &str, id: &str) -> FutureProducer {
    let p = producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("transaction.timeout.ms", "20000"),
            ("message.timeout.ms", "20000"),
        ],
    );
    p.init_transactions(T).expect("init_transactions");
    p
}

/// Sends `values` round-robin over `partitions` and waits for every ack.
async fn send(p: &FutureProducer, topic: &str, partitions: i32, values: &[String]) {
    let mut acks = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let record = FutureRecord::to(topic)
            .key(v)
            .payload(v)
            .partition(i as i32 % partitions);
        acks.push(p.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for a in acks {
        a.await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("not acked: {e}"));
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Everything a consumer with `isolation` reads from the beginning within `wait`.
fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    wait: Duration,
) -> Vec<String> {
    let c = consumer(bootstrap, &[("isolation.level", isolation)]);
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    consume(&c, topic, &starts, usize::MAX, wait)
        .into_iter()
        .map(|g| String::from_utf8(g.value.unwrap_or_default()).unwrap())
        .collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

async fn scenario(server: &Server) {
    let kafka = &server.kafka;
    let topic = format!("txn-{}", uuid::Uuid::new_v4().simple());
    create_topic(kafka, &topic, 2).await;

    // Commit, abort, commit.
    let p = txn_producer(kafka, &format!("{topic}-a"));
    let (c1, a2, c3) = (values("c1", 10), values("a2", 10), values("c3", 10));
    p.begin_transaction().unwrap();
    send(&p, &topic, 2, &c1).await;
    p.commit_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, &topic, 2, &a2).await;
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, &topic, 2, &c3).await;
    p.commit_transaction(T).unwrap();

    let committed: Vec<String> = c1.iter().chain(&c3).cloned().collect();
    let got = read_all(kafka, &topic, 2, "read_committed", Duration::from_secs(5));
    assert_eq!(
        got.len(),
        20,
        "read_committed sees the committed records once: {got:?}"
    );
    assert_eq!(set(&got), set(&committed));
    let everything: Vec<String> = committed.iter().chain(&a2).cloned().collect();
    let got = read_all(kafka, &topic, 2, "read_uncommitted", Duration::from_secs(5));
    assert_eq!(
        set(&got),
        set(&everything),
        "read_uncommitted sees aborted records too"
    );
    assert_eq!(got.len(), 30, "markers never surface as records");

    // An open transaction holds the last stable offset until it commits.
    let q = txn_producer(kafka, &format!("{topic}-b"));
    q.begin_transaction().unwrap();
    let open = values("open", 4);
    send(&q, &topic, 2, &open).await;
    let c = consumer(kafka, &[("isolation.level", "read_committed")]);
    let starts: Vec<(i32, Offset)> = (0..2).map(|p| (p, Offset::Beginning)).collect();
    let before = consume(&c, &topic, &starts, usize::MAX, Duration::from_secs(4));
    assert_eq!(
        before.len(),
        20,
        "records of an open transaction stay invisible"
    );
    describe(kafka, &topic, &format!("{topic}-b"), "Ongoing");
    q.commit_transaction(T).unwrap();
    let mut after = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while after.len() < open.len() && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consumer error");
            after.push(String::from_utf8(rdkafka::Message::payload(&m).unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(set(&after), set(&open), "the commit releases them");
    describe(kafka, &topic, &format!("{topic}-b"), "CompleteCommit");

    // A second instance with the same transactional id fences the first.
    let zombie = txn_producer(kafka, &format!("{topic}-z"));
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, 2, &values("zombie", 1)).await;
    let fresh = txn_producer(kafka, &format!("{topic}-z"));
    let fenced = async {
        zombie
            .send_result(
                FutureRecord::to(&topic)
                    .key("z")
                    .payload("late")
                    .partition(0),
            )
            .map_err(|(e, _)| e)?
            .await
            .map_err(|_| KafkaError::Canceled)?
            .map_err(|(e, _)| e)?;
        zombie.commit_transaction(T)
    }
    .await;
    assert!(fenced.is_err(), "the old instance must be fenced");
    fresh.begin_transaction().unwrap();
    send(&fresh, &topic, 2, &values("fresh", 2)).await;
    fresh.commit_transaction(T).unwrap();
    let got = read_all(kafka, &topic, 2, "read_committed", Duration::from_secs(5));
    assert!(
        got.iter().all(|v| !v.starts_with("zombie")),
        "the fenced transaction was aborted"
    );
    assert!(got.iter().any(|v| v == "fresh-0") && !got.contains(&"late".to_string()));

    offsets_in_transaction(kafka, &topic).await;
    producers_listed(kafka, &topic);
}

/// Consume-transform-produce: offsets sent to a transaction become the group's only when
/// it commits.
async fn offsets_in_transaction(kafka: &str, topic: &str) {
    let group = format!("{topic}-g");
    let p = txn_producer(kafka, &format!("{topic}-o"));
    let c: BaseConsumer = consumer(kafka, &[("group.id", &group)]);
    let committed = |c: &BaseConsumer| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        c.committed_offsets(tpl, T)
            .unwrap()
            .find_partition(topic, 0)
            .unwrap()
            .offset()
    };
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(7))
        .unwrap();
    p.begin_transaction().unwrap();
    send(&p, topic, 2, &values("o", 1)).await;
    p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), T)
        .unwrap();
    p.abort_transaction(T).unwrap();
    assert_eq!(committed(&c), Offset::Invalid, "an abort commits no offset");
    p.begin_transaction().unwrap();
    send(&p, topic, 2, &values("o", 1)).await;
    p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), T)
        .unwrap();
    p.commit_transaction(T).unwrap();
    assert_eq!(committed(&c), Offset::Offset(7));
}

fn describe(kafka: &str, topic: &str, id: &str, state: &str) {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.into()))]);
    let resp: DescribeTransactionsResponse =
        common::decode(raw_request(kafka, ApiKey::DescribeTransactions, 0, &req), 0);
    let t = &resp.transaction_states[0];
    assert_eq!((t.error_code, t.transaction_state.as_str()), (0, state));
    if state == "Ongoing" {
        assert_eq!(t.topics.len(), 1);
        assert_eq!(t.topics[0].topic.as_str(), topic);
    }
    let list: ListTransactionsResponse = common::decode(
        raw_request(
            kafka,
            ApiKey::ListTransactions,
            0,
            &ListTransactionsRequest::default(),
        ),
        0,
    );
    assert!(list
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.as_str() == id && t.transaction_state.as_str() == state));
}

fn producers_listed(kafka: &str, topic: &str) {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partition_indexes(vec![0])]);
    let resp: DescribeProducersResponse =
        common::decode(raw_request(kafka, ApiKey::DescribeProducers, 0, &req), 0);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.active_producers.len() >= 3, "{:?}", p.active_producers);
    assert!(p
        .active_producers
        .iter()
        .all(|a| a.current_txn_start_offset == -1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    scenario(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_postgres_and_s3() {
    if std::env::var("SLUICE_TEST_POSTGRES_URL").is_err() {
        eprintln!("SLUICE_TEST_POSTGRES_URL not set: Postgres run skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (db, bucket) = common::shared_stores(dir.path());
    let server = Server::start(
        dir.path(),
        &["--database-url", &db, "--bucket-url", &bucket],
    );
    scenario(&server).await;
}
