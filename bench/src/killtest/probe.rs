//! Questions asked of one particular agent over a raw Kafka connection: which agents its
//! Metadata lists, who leads each partition, which agent it names as a group's coordinator.
//!
//! librdkafka picks the broker it sends Metadata to itself; the kill test must ask a chosen
//! survivor ("is the killed agent gone as this agent sees it?"), so these requests are
//! encoded with `kafka-protocol` and sent on a connection of their own. Every call is
//! bounded by its timeout (connect, write and read).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const METADATA_VERSION: i16 = 12;
const FIND_COORDINATOR_VERSION: i16 = 2;
/// Larger responses are refused (a Metadata answer for one topic is a few KiB).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// One agent as a Metadata response lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) node_id: i32,
    pub(crate) port: i32,
}

/// What an agent's Metadata says.
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    pub(crate) brokers: Vec<Listed>,
    /// Partition -> leader node id, for the topic asked about.
    pub(crate) leaders: BTreeMap<i32, i32>,
}

impl View {
    pub(crate) fn lists(&self, node_id: i32) -> Option<&Listed> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }

    /// Partitions of the topic that `node_id` leads.
    pub(crate) fn led_by(&self, node_id: i32) -> Vec<i32> {
        self.leaders
            .iter()
            .filter(|(_, &leader)| leader == node_id)
            .map(|(&p, _)| p)
            .collect()
    }
}

/// Metadata from the agent at `addr`, for `topic` (its leaders) or for no topic.
pub(crate) fn metadata(addr: &str, topic: Option<&str>, timeout: Duration) -> Result<View> {
    let topics = topic
        .map(|t| {
            vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))]
        })
        .unwrap_or_default();
    let req = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = request(addr, ApiKey::Metadata, METADATA_VERSION, &req, timeout)?;
    let mut view = View {
        brokers: resp
            .brokers
            .iter()
            .map(|b| Listed {
                node_id: b.node_id.0,
                port: b.port,
            })
            .collect(),
        leaders: BTreeMap::new(),
    };
    for t in &resp.topics {
        if t.error_code != 0 {
            bail!(
                "Metadata from {addr}: topic {:?} has error code {}",
                topic.unwrap_or("?"),
                t.error_code
            );
        }
        for p in &t.partitions {
            view.leaders.insert(p.partition_index, p.leader_id.0);
        }
    }
    Ok(view)
}

/// The node id the agent at `addr` names as coordinator of `group`.
pub(crate) fn coordinator(addr: &str, group: &str, timeout: Duration) -> Result<i32> {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let resp: FindCoordinatorResponse = request(
        addr,
        ApiKey::FindCoordinator,
        FIND_COORDINATOR_VERSION,
        &req,
        timeout,
    )?;
    if resp.error_code != 0 {
        bail!(
            "FindCoordinator({group}) at {addr}: error code {}",
            resp.error_code
        );
    }
    Ok(resp.node_id.0)
}

/// One request, one response, on a fresh connection.
fn request<Req: Encodable, Resp: Decodable>(
    addr: &str,
    key: ApiKey,
    version: i16,
    body: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr} is not an ip:port address"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let correlation_id = 7;
    let frame = encode_request(key, version, correlation_id, body)?;
    s.write_all(&frame)
        .with_context(|| format!("sending {key:?} to {addr}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .with_context(|| format!("reading the {key:?} response from {addr}"))?;
    let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len > MAX_RESPONSE_BYTES {
        bail!("{key:?} response from {addr} claims {len} bytes");
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .with_context(|| format!("reading the {key:?} response from {addr}"))?;
    decode_response(key, version, correlation_id, Bytes::from(buf))
        .with_context(|| format!("decoding the {key:?} response from {addr}"))
}

/// A request frame: length, header, body.
fn encode_request<Req: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &Req,
) -> Result<BytesMut> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-bench-kill-test")))
        .encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4).context("request too large")?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// A response frame's header and body (without the length).
fn decode_response<Resp: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<Resp> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    if header.correlation_id != correlation_id {
        bail!(
            "correlation id {} where {correlation_id} was sent",
            header.correlation_id
        );
    }
    Resp::decode(&mut frame, version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;

    #[test]
    fn request_frame_carries_length_and_header() {
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
        let frame = encode_request(ApiKey::FindCoordinator, 2, 7, &req).unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let mut rest = Bytes::copy_from_slice(&frame[4..]);
        let header = RequestHeader::decode(&mut rest, 1).unwrap();
        assert_eq!(header.request_api_key, ApiKey::FindCoordinator as i16);
        assert_eq!(header.correlation_id, 7);
        let back = FindCoordinatorRequest::decode(&mut rest, 2).unwrap();
        assert_eq!(back.key.as_str(), "g");
    }

    #[test]
    fn metadata_response_decodes_into_a_view() {
        let resp = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_port(9001),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_port(9002),
            ])
            .with_topics(vec![MetadataResponseTopic::default().with_partitions(
                vec![
                    MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(2)),
                    MetadataResponsePartition::default()
                        .with_partition_index(1)
                        .with_leader_id(BrokerId(1)),
                    MetadataResponsePartition::default()
                        .with_partition_index(2)
                        .with_leader_id(BrokerId(2)),
                ],
            )]);
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut frame, ApiKey::Metadata.response_header_version(12))
            .unwrap();
        resp.encode(&mut frame, 12).unwrap();
        let decoded: MetadataResponse =
            decode_response(ApiKey::Metadata, 12, 7, frame.clone().freeze()).unwrap();
        assert_eq!(decoded.brokers.len(), 2);
        assert!(
            decode_response::<MetadataResponse>(ApiKey::Metadata, 12, 8, frame.freeze()).is_err()
        );
    }

    #[test]
    fn view_answers_who_leads_what() {
        let mut view = View {
            brokers: vec![Listed {
                node_id: 2,
                port: 9002,
            }],
            leaders: BTreeMap::new(),
        };
        view.leaders.extend([(0, 2), (1, 1), (2, 2)]);
        assert_eq!(view.led_by(2), vec![0, 2]);
        assert_eq!(view.lists(2).map(|b| b.port), Some(9002));
        assert!(view.lists(1).is_none());
    }
}
