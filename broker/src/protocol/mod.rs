//! Kafka wire codec without I/O: request frames in, response frames out.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. Decoding happens in
//! two steps, as cheap checks before the full parse: the api key and version are read from
//! the first four bytes and checked against what Sluice serves, then the header and body
//! are decoded by the kafka-protocol crate. ApiVersions is special: a client asking with a
//! version newer than ours must get UNSUPPORTED_VERSION in the v0 layout so it can retry.

mod legacy;
mod splice;

use splice::SpliceBuf;
pub use splice::{Frame, Pieces, Splices};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::codes::UNSUPPORTED_VERSION;

/// Every API Sluice serves with the request versions it accepts.
///
/// Produce advertises from v0 although only v3+ (message format v2) is accepted: old
/// librdkafka enables compression only when the advertised range contains v0, as Kafka
/// itself still advertises.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 17),
    // v0 (sarama 1.22, Burrow) has a hand-written codec in `legacy`.
    (ApiKey::ListOffsets, 0, 10),
    (ApiKey::Metadata, 0, 12),
    // From v0: old librdkafka enables LZ4 only when FindCoordinator v0 is advertised.
    (ApiKey::FindCoordinator, 0, 6),
    // Group APIs from v0: old librdkafka enables its balanced consumer only then.
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // v0/v1 (sarama 1.22) have a hand-written decoder in `legacy`.
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // ACLs from v1 (pattern types; the crate decodes no v0): librdkafka, kafka-clients
    // and kafka-python all speak v1+.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // From v0 because old librdkafka enables SASL only when the range contains v0 (as Kafka
    // advertises it); clients then use v1, whose tokens travel in SaslAuthenticate.
    // Transactions (KIP-98). EndTxn stops at v4: v5 means transaction version 2
    // (KIP-890), which the broker does not advertise as a feature.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The lowest version of each API that can actually be parsed (the crate's, or ours).
fn decodable_min(key: ApiKey, advertised_min: i16) -> i16 {
    match key {
        ApiKey::ListOffsets | ApiKey::OffsetCommit => advertised_min,
        _ => advertised_min.max(key.valid_versions().min),
    }
}

/// Why a frame could not be served; the connection is closed after logging it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("frame length {len} is outside 0..={max}")]
    BadLength { len: i64, max: usize },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// A decoded request.
// The small variant is rare (one per client start at most): boxing the common one would
// cost an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        api_key: ApiKey,
        body: RequestKind,
    },
    /// ApiVersions asked with a version newer than ours.
    ApiVersionsTooNew { correlation_id: i32 },
}

/// Checks a frame's length prefix before its payload is read.
pub fn check_frame_len(len: i32, max: usize) -> Result<usize, ProtocolError> {
    if len < 8 || len as i64 > max as i64 {
        return Err(ProtocolError::BadLength {
            len: len as i64,
            max,
        });
    }
    Ok(len as usize)
}

/// The advertised range of an API, if served.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// Decodes one frame payload (without its length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey(key))?;
    let Some((min, max)) = supported_range(api_key) else {
        return Err(ProtocolError::UnsupportedVersion {
            api: api_key,
            version,
        });
    };
    if api_key == ApiKey::ApiVersions && version > max {
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        return Ok(Decoded::ApiVersionsTooNew { correlation_id });
    }
    if version < decodable_min(api_key, min) || version > max {
        return Err(ProtocolError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        api: api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = if api_key == ApiKey::ListOffsets && version == 0 {
        RequestKind::ListOffsets(legacy::decode_list_offsets_v0(frame).map_err(|reason| {
            ProtocolError::Malformed {
                api: api_key,
                version,
                reason,
            }
        })?)
    } else if api_key == ApiKey::OffsetCommit && version < 2 {
        RequestKind::OffsetCommit(legacy::decode_offset_commit_v0_v1(frame, version).map_err(
            |reason| ProtocolError::Malformed {
                api: api_key,
                version,
                reason,
            },
        )?)
    } else {
        RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?
    };
    Ok(Decoded::Request {
        header,
        api_key,
        body,
    })
}

/// Encodes a response frame, length prefix included. The placeholders of `splices` (a
/// fetch's record sets) are replaced by the pieces they stand for, not copied.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: &ResponseKind,
    splices: Splices,
) -> anyhow::Result<Frame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    if !splices.is_empty() {
        let ResponseKind::Fetch(fetch) = response else {
            anyhow::bail!("only fetch answers carry spliced records");
        };
        let mut buf = SpliceBuf::new(4096, splices);
        header.encode(&mut buf, header_version)?;
        fetch.encode(&mut buf, version)?;
        return buf.finish();
    }
    // Fetch responses carry record data: size the buffer once instead of growing it by
    // copying the records again and again.
    let capacity = match response {
        ResponseKind::Fetch(r) => r.compute_size(version).unwrap_or(0) + 64,
        _ => 256,
    };
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    header.encode(&mut buf, header_version)?;
    match response {
        ResponseKind::ListOffsets(r) if version == 0 => legacy::encode_list_offsets_v0(r, &mut buf),
        // v0 and v1 share v2's layout.
        ResponseKind::OffsetCommit(r) if version < 2 => r.encode(&mut buf, 2)?,
        _ => response.encode(&mut buf, version)?,
    }
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Frame::from(buf.freeze()))
}

/// The UNSUPPORTED_VERSION answer to a too-new ApiVersions request: response header v0 and
/// the v0 body layout (error code, then an int32-length array of key/min/max).
pub fn encode_api_versions_too_new(correlation_id: i32) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    body.put_i16(UNSUPPORTED_VERSION);
    body.put_i32(SUPPORTED.len() as i32);
    for (key, min, max) in SUPPORTED {
        body.put_i16(*key as i16);
        body.put_i16(*min);
        body.put_i16(*max);
    }
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.put(body);
    out.freeze()
}

/// Reads the correlation id of a frame that failed to decode, to log it.
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let mut b = frame.get(4..8)?;
    Some(b.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame_of(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_supported_requests() {
        let f = frame_of(ApiKey::Metadata, 12, &MetadataRequest::default());
        match decode_request(f).unwrap() {
            Decoded::Request {
                header, api_key, ..
            } => {
                assert_eq!(api_key, ApiKey::Metadata);
                assert_eq!(header.correlation_id, 7);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn too_new_api_versions_gets_v0_error_layout() {
        let mut f = BytesMut::new();
        f.put_i16(18);
        f.put_i16(99);
        f.put_i32(42);
        f.put_i16(-1);
        match decode_request(f.freeze()).unwrap() {
            Decoded::ApiVersionsTooNew { correlation_id } => assert_eq!(correlation_id, 42),
            other => panic!("unexpected {other:?}"),
        }
        let out = encode_api_versions_too_new(42);
        let mut b = &out[..];
        assert_eq!(b.get_i32() as usize, out.len() - 4);
        assert_eq!(b.get_i32(), 42);
        assert_eq!(b.get_i16(), UNSUPPORTED_VERSION);
        assert_eq!(b.get_i32() as usize, SUPPORTED.len());
    }

    /// A cheap stand-in for the cargo-fuzz target that runs on stable in every test run:
    /// thousands of deterministic mutations of valid frames must decode or fail, never panic.
    #[test]
    fn mutated_frames_never_panic() {
        use kafka_protocol::messages::{FetchRequest, ProduceRequest};
        let seeds = [
            frame_of(ApiKey::Metadata, 12, &MetadataRequest::default()),
            frame_of(ApiKey::Metadata, 1, &MetadataRequest::default()),
            frame_of(ApiKey::Produce, 9, &ProduceRequest::default()),
            frame_of(ApiKey::Fetch, 12, &FetchRequest::default()),
            frame_of(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..20_000 {
            let seed = &seeds[i % seeds.len()];
            let mut f = BytesMut::from(&seed[..]);
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % f.len();
                f[at] = next() as u8;
            }
            let len = f.len();
            let cut = ((next() as usize) % (len + 1)).max(len.min(8));
            let _ = decode_request(f.freeze().slice(..cut));
        }
    }

    /// A fetch answer with spliced record sets is byte for byte what the encoder writes
    /// with the records in place, in every version served.
    #[test]
    fn spliced_fetch_answers_match_the_encoder() {
        use kafka_protocol::messages::fetch_response::{
            AbortedTransaction, FetchableTopicResponse, PartitionData,
        };
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let record_sets: Vec<Vec<Vec<u8>>> = vec![
            vec![vec![1; 100], vec![2; 5000], vec![3; 20_000]],
            vec![],
            vec![vec![4; 3000]],
            vec![vec![5; 10], vec![6; 10]],
        ];
        for version in 4..=17 {
            let mut splices = Splices::default();
            let mut plain = FetchResponse::default().with_throttle_time_ms(3);
            let mut spliced = plain.clone();
            for (t, sets) in record_sets.chunks(2).enumerate() {
                let mut pt = FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(format!("t{t}"))));
                let mut st = pt.clone();
                for (i, set) in sets.iter().enumerate() {
                    let mut pieces = Pieces::default();
                    let mut whole = Vec::new();
                    for piece in set {
                        pieces.push(Bytes::from(piece.clone()));
                        whole.extend_from_slice(piece);
                    }
                    let p = PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_high_watermark(77)
                        .with_aborted_transactions(Some(vec![AbortedTransaction::default()]));
                    pt.partitions
                        .push(p.clone().with_records(Some(Bytes::from(whole))));
                    st.partitions
                        .push(p.with_records(Some(splices.register(pieces))));
                }
                plain.responses.push(pt);
                spliced.responses.push(st);
            }
            let expect = encode_response(
                9,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(plain),
                Splices::default(),
            )
            .unwrap()
            .to_bytes();
            let got = encode_response(
                9,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(spliced),
                splices,
            )
            .unwrap();
            assert_eq!(got.len(), expect.len(), "v{version}");
            assert_eq!(got.to_bytes(), expect, "v{version}");
        }
    }

    #[test]
    fn refuses_bad_frames() {
        assert!(matches!(
            decode_request(Bytes::from_static(b"abc")),
            Err(ProtocolError::TooShort(3))
        ));
        let mut unknown = BytesMut::new();
        unknown.put_i16(999);
        unknown.put_i16(0);
        unknown.put_i32(1);
        assert_eq!(
            decode_request(unknown.freeze()).unwrap_err(),
            ProtocolError::UnknownApiKey(999)
        );
        let old_produce = frame_of(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
        let mut p = BytesMut::from(&old_produce[..]);
        p[0..2].copy_from_slice(&0i16.to_be_bytes());
        p[2..4].copy_from_slice(&1i16.to_be_bytes());
        assert!(matches!(
            decode_request(p.freeze()),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
        let truncated = frame_of(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        let cut = truncated.slice(..truncated.len() - 1);
        assert!(decode_request(cut).is_err());
        assert!(check_frame_len(-5, 100).is_err());
        assert!(check_frame_len(101, 100).is_err());
        assert_eq!(check_frame_len(50, 100), Ok(50));
    }
}
