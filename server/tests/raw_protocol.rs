//! Wire-level behaviour checked with raw frames: error codes, bad input, idempotence rules.

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::{Buf, Bytes, BytesMut};
use common::{
    closed_by_peer, decode, raw_on, raw_request, read_frame, read_response, send_frame,
    send_payload, Server,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn batch(n: usize, value_len: usize, producer_id: i64, first_seq: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 {
                first_seq + i as i32
            } else {
                -1
            },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn produce(addr: &str, topic: &str, records: Bytes) -> (i16, i64) {
    let resp: ProduceResponse = decode(
        raw_request(addr, ApiKey::Produce, 9, &produce_req(topic, records)),
        9,
    );
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn create_topic(addr: &str, name: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
    let resp: CreateTopicsResponse = decode(raw_request(addr, ApiKey::CreateTopics, 5, &req), 5);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

#[test]
fn missing_topic_without_auto_create_and_too_large_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--auto-create-topics", "false"]);
    assert_eq!(
        produce(&server.kafka, "nope", batch(1, 10, -1, -1)).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let md: MetadataResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("nope"))))])),
        ),
        12,
    );
    assert_eq!(
        md.topics[0].error_code, 3,
        "metadata does not create it either"
    );

    create_topic(&server.kafka, "small", &[("max.message.bytes", "1000")]);
    assert_eq!(
        produce(&server.kafka, "small", batch(1, 2000, -1, -1)).0,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&server.kafka, "small", batch(2, 100, -1, -1)),
        (0, 0)
    );
    assert_eq!(
        produce(&server.kafka, "small", batch(3, 100, -1, -1)),
        (0, 2),
        "offsets continue per record"
    );
}

#[test]
fn idempotent_sequences_dedupe_and_reject_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "seq", &[]);
    let init: InitProducerIdResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::InitProducerId,
            4,
            // A null transactional id (an empty one is INVALID_REQUEST, as in Kafka).
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        4,
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    assert_eq!(produce(&server.kafka, "seq", batch(5, 10, pid, 0)), (0, 0));
    assert_eq!(produce(&server.kafka, "seq", batch(5, 10, pid, 5)), (0, 5));
    // A retry of the first batch is answered with its original offset and not stored again.
    assert_eq!(produce(&server.kafka, "seq", batch(5, 10, pid, 0)), (0, 0));
    // A gap in the sequence is refused.
    assert_eq!(
        produce(&server.kafka, "seq", batch(1, 10, pid, 42)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&server.kafka, "seq", batch(1, 10, pid, 10)),
        (0, 10),
        "the log has no duplicate"
    );
}

#[test]
fn api_versions_too_new_gets_v0_error_layout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    // ApiVersions v99, correlation id 7, no client id.
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff])
        .unwrap();
    let body = read_frame(&mut s);
    let mut b = &body[..];
    assert_eq!(b.get_i32(), 7, "response header v0: correlation id only");
    assert_eq!(b.get_i16(), 35, "UNSUPPORTED_VERSION");
    let n = b.get_i32();
    assert!(n > 5);
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push((b.get_i16(), b.get_i16(), b.get_i16()));
    }
    assert!(
        keys.contains(&(0, 0, 13)),
        "Produce advertised from v0: {keys:?}"
    );
    // The same connection still works with a supported version.
    let ok: ApiVersionsResponse = decode(
        raw_on(
            &mut s,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
        3,
    );
    assert_eq!(ok.error_code, 0);
    assert!(ok
        .api_keys
        .iter()
        .any(|k| k.api_key == 1 && k.min_version == 4));
}

#[test]
fn bad_frames_close_the_connection_and_the_server_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--max-frame-bytes", "1MiB"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized length", vec![0x7f, 0xff, 0xff, 0xff]),
        (
            "over the configured limit",
            (2u32 << 20).to_be_bytes().to_vec(),
        ),
        ("negative length", vec![0xff, 0xff, 0xff, 0xfe]),
        (
            "unknown api key",
            vec![0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff],
        ),
        (
            "unsupported produce v1",
            vec![0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff],
        ),
        (
            "garbage metadata body",
            vec![0, 0, 0, 12, 0, 3, 0, 12, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0x01],
        ),
    ];
    for (name, bytes) in cases {
        let mut s = TcpStream::connect(&server.kafka).unwrap();
        s.write_all(&bytes).unwrap();
        assert!(closed_by_peer(&mut s), "{name}: connection closed");
    }
    // Truncated: announces 100 bytes, sends 5, hangs up.
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    s.write_all(&[0, 0, 0, 100, 0, 3, 0, 1, 0]).unwrap();
    drop(s);
    assert!(server.alive(), "no panic, no exit");
    let md: MetadataResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        ),
        12,
    );
    assert_eq!(md.brokers.len(), 1, "still serving");
    assert!(!server.log().contains("panicked"), "no panic in the log");
}

#[test]
fn find_coordinator_names_this_agent_for_groups_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port: i32 = server.kafka.rsplit(':').next().unwrap().parse().unwrap();
    let v0: FindCoordinatorResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::FindCoordinator,
            0,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        ),
        0,
    );
    assert_eq!((v0.error_code, v0.node_id.0, v0.port), (0, 1, port));
    let v4: FindCoordinatorResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]),
        ),
        4,
    );
    assert_eq!(v4.coordinators.len(), 2);
    assert!(v4
        .coordinators
        .iter()
        .all(|c| c.error_code == 0 && c.port == port));
    let txn: FindCoordinatorResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![StrBytes::from_static_str("tx")]),
        ),
        4,
    );
    assert_eq!(
        (txn.coordinators[0].error_code, txn.coordinators[0].port),
        (0, port),
        "a transactional id's coordinator is an agent of the cluster"
    );
    let unknown: FindCoordinatorResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(7)
                .with_coordinator_keys(vec![StrBytes::from_static_str("x")]),
        ),
        4,
    );
    assert_eq!(
        unknown.coordinators[0].error_code, 42,
        "an unknown key type is refused"
    );
}

#[test]
fn acks_zero_gets_no_response_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "fire", &[]);
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let req = produce_req("fire", batch(3, 10, -1, -1)).with_acks(0);
    send_frame(&mut s, ApiKey::Produce, 9, 1, &req);
    send_frame(
        &mut s,
        ApiKey::ApiVersions,
        0,
        2,
        &ApiVersionsRequest::default(),
    );
    // The first response on the wire belongs to the ApiVersions request.
    let resp: ApiVersionsResponse = decode(read_response(&mut s, ApiKey::ApiVersions, 0, 2), 0);
    assert_eq!(resp.error_code, 0);
    // The fire-and-forget records were stored: the next produce lands after them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(produce(&server.kafka, "fire", batch(1, 10, -1, -1)), (0, 3));
}

#[test]
fn list_offsets_v0_for_old_clients() {
    use bytes::BufMut;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "old", &[]);
    assert_eq!(produce(&server.kafka, "old", batch(4, 10, -1, -1)), (0, 0));
    // ListOffsets v0 by hand: replica -1, topic "old", partition 0 latest (-1), max 1 offset.
    let mut f = BytesMut::new();
    f.put_i16(2);
    f.put_i16(0);
    f.put_i32(5);
    f.put_i16(-1);
    f.put_i32(-1);
    f.put_i32(1);
    f.put_i16(3);
    f.put_slice(b"old");
    f.put_i32(1);
    f.put_i32(0);
    f.put_i64(-1);
    f.put_i32(1);
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    send_payload(&mut s, &f);
    let body = read_frame(&mut s);
    let mut b = &body[..];
    assert_eq!(b.get_i32(), 5, "correlation id");
    assert_eq!(b.get_i32(), 1, "one topic");
    assert_eq!(b.get_i16(), 3);
    b.advance(3);
    assert_eq!(b.get_i32(), 1, "one partition");
    assert_eq!(
        (b.get_i32(), b.get_i16(), b.get_i32(), b.get_i64()),
        (0, 0, 1, 4),
        "latest offset is 4"
    );
}

/// sarama 1.22 style: JoinGroup v1, SyncGroup v0, then OffsetCommit v1 (hand-encoded, as
/// the codec crate no longer speaks it) with the generation and member id handed out, and
/// OffsetFetch v1 reading it back with its metadata string.
#[test]
fn old_group_protocol_versions_commit_and_fetch() {
    use bytes::BufMut;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        GroupId, JoinGroupRequest, JoinGroupResponse, OffsetFetchRequest, OffsetFetchResponse,
        SyncGroupRequest, SyncGroupResponse,
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--group-initial-rebalance-delay", "0ms"]);
    create_topic(&server.kafka, "legacy", &[]);
    let group = GroupId(StrBytes::from_static_str("old-group"));
    let join: JoinGroupResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::JoinGroup,
            1,
            &JoinGroupRequest::default()
                .with_group_id(group.clone())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\0"))]),
        ),
        1,
    );
    assert_eq!(join.error_code, 0, "v1 never gets MEMBER_ID_REQUIRED");
    assert_eq!(join.generation_id, 1);
    let sync: SyncGroupResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::SyncGroup,
            0,
            &SyncGroupRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(1)
                .with_member_id(join.member_id.clone()),
        ),
        0,
    );
    assert_eq!(sync.error_code, 0);

    // OffsetCommit v1: group, generation, member, [topic [partition, offset, timestamp, metadata]].
    let mut f = BytesMut::new();
    f.put_i16(8);
    f.put_i16(1);
    f.put_i32(77);
    f.put_i16(-1);
    f.put_i16(9);
    f.put_slice(b"old-group");
    f.put_i32(join.generation_id);
    f.put_i16(join.member_id.len() as i16);
    f.put_slice(join.member_id.as_bytes());
    f.put_i32(1);
    f.put_i16(6);
    f.put_slice(b"legacy");
    f.put_i32(1);
    f.put_i32(0);
    f.put_i64(42);
    f.put_i64(-1);
    f.put_i16(4);
    f.put_slice(b"meta");
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    send_payload(&mut s, &f);
    let body = read_frame(&mut s);
    let mut b = &body[..];
    assert_eq!(b.get_i32(), 77);
    assert_eq!(b.get_i32(), 1);
    assert_eq!(b.get_i16(), 6);
    b.advance(6);
    assert_eq!(b.get_i32(), 1);
    assert_eq!((b.get_i32(), b.get_i16()), (0, 0), "partition 0 committed");

    let fetched: OffsetFetchResponse = decode(
        raw_request(
            &server.kafka,
            ApiKey::OffsetFetch,
            1,
            &OffsetFetchRequest::default()
                .with_group_id(group)
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("legacy")))
                    .with_partition_indexes(vec![0, 1])])),
        ),
        1,
    );
    let parts = &fetched.topics[0].partitions;
    assert_eq!(
        (parts[0].committed_offset, parts[0].metadata.as_deref()),
        (42, Some("meta"))
    );
    assert_eq!(parts[1].committed_offset, -1, "no commit: -1");
}

/// Responses are flushed as soon as the writer would otherwise wait: a produce answer must
/// not sit behind a pipelined long-polling fetch on the same connection.
#[test]
fn pipelined_answers_are_not_held_behind_a_long_poll() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.kafka, "pipe", &[]);
    let mut s = TcpStream::connect(&server.kafka).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // Fetching at the high watermark (1, after the produce) makes the fetch wait.
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(10_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("pipe")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(1)
                .with_partition_max_bytes(1 << 20)])]);
    let started = std::time::Instant::now();
    send_frame(
        &mut s,
        ApiKey::Produce,
        9,
        1,
        &produce_req("pipe", batch(1, 10, -1, -1)),
    );
    send_frame(&mut s, ApiKey::Fetch, 12, 2, &fetch);
    let produced: ProduceResponse = decode(read_response(&mut s, ApiKey::Produce, 9, 1), 9);
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the produce answer came at once, not after the fetch's wait: {:?}",
        started.elapsed()
    );
}
