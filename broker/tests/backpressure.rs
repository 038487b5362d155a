//! The backpressure gate against a real listener: while the produce gate is closed a
//! connection's request is not read off the socket (the client's write blocks: TCP pushes
//! back), and it is read and answered once the gate opens. The fetch gate does not stall
//! producers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use broker::{BrokerConfig, Metrics};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio_util::sync::CancellationToken;

fn produce_frame(topic: &str, value_len: usize) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from(vec![b'x'; value_len])),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut records = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut records,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.freeze()))])]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(5)
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .unwrap();
    req.encode(&mut buf, 9).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

fn read_produce_response(s: &mut TcpStream) -> ProduceResponse {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut b = Bytes::from(body);
    let h = ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(9)).unwrap();
    assert_eq!(h.correlation_id, 5);
    ProduceResponse::decode(&mut b, 9).unwrap()
}

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
    let gate = running.broker.produce_gate.clone();

    // An established connection (a closed gate also pauses accepting new ones).
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&produce_frame("pushback", 10)).unwrap();
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
    let frame = produce_frame("pushback", 32 << 20);
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
    let _fetch_full = running.broker.fetch_gate.try_acquire(1 << 20).unwrap();
    let frame = produce_frame("still-open", 100);
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
