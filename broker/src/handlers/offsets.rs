//! ListOffsets: earliest, latest, max timestamp and offsets by time.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::store_error_code;
use crate::acl::{Operation, ResourceType};
use crate::codes;
use crate::log::offset_at;
use crate::session::Session;
use crate::state::Broker;
use crate::store::TopicMeta;

pub async fn list_offsets(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let authz = broker.acls.authz(session).await;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let refused = authz
            .check(Operation::Describe, ResourceType::Topic, &t.name)
            .err();
        let found = match refused {
            Some(_) => Ok(None),
            None => broker.topics.get(&session.cluster, &t.name).await,
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                // The leader epoch exists from v4; Sluice's partitions never change leader epoch.
                .with_leader_epoch(if version >= 4 { 0 } else { -1 });
            let answer = match &found {
                _ if refused.is_some() => Err(refused.unwrap_or(codes::NONE)),
                Ok(Some(topic))
                    if p.partition_index >= 0 && p.partition_index < topic.partitions =>
                {
                    lookup(broker, topic, p.partition_index, p.timestamp).await
                }
                Ok(_) => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Err(e) => Err(store_error_code(e)),
            };
            parts.push(match answer {
                Ok((offset, timestamp)) => base.with_offset(offset).with_timestamp(timestamp),
                Err(code) => base.with_error_code(code),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for one partition; -1/-1 when no record is at or after the time.
async fn lookup(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    timestamp: i64,
) -> Result<(i64, i64), i16> {
    offset_at(broker, topic, partition, timestamp)
        .await
        .unwrap_or_else(|e| Err(store_error_code(&e)))
}
