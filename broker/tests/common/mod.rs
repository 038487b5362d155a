//! Raw Produce frames and an in-process agent for the broker's integration tests.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const CORRELATION_ID: i32 = 5;

/// Starts an agent on a SQLite file in `dir`, with the test defaults changed by `tune`.
pub async fn start(
    dir: &std::path::Path,
    tune: impl FnOnce(&mut broker::BrokerConfig),
) -> broker::Running {
    let mut config =
        broker::BrokerConfig::for_tests(format!("sqlite://{}", dir.join("meta.db").display()));
    tune(&mut config);
    broker::start(
        config,
        broker::Metrics::new(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// A Produce v9 frame (length prefix included) with one batch of `n` records of
/// `value_len` bytes stamped `timestamp`, for partition 0 of `topic`.
pub fn produce_frame(topic: &str, n: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
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
            timestamp,
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_len])),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    records_frame(topic, 0, &records, Compression::None)
}

/// A Produce v9 frame (length prefix included) carrying `records` (offsets from 0, one
/// batch while their flags agree) for one partition of `topic`.
pub fn records_frame(
    topic: &str,
    partition: i32,
    records: &[Record],
    compression: Compression,
) -> Vec<u8> {
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(CORRELATION_ID)
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .unwrap();
    req.encode(&mut buf, 9).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// Reads one Produce v9 response off the socket.
pub fn read_produce_response(s: &mut TcpStream) -> ProduceResponse {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut b = Bytes::from(body);
    let h = ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(9)).unwrap();
    assert_eq!(h.correlation_id, CORRELATION_ID);
    ProduceResponse::decode(&mut b, 9).unwrap()
}
